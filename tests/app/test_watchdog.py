"""The live-view watchdog's settings and script (its behaviour in a browser: tests/e2e/test_train_page.py)."""

from __future__ import annotations

import json
import re

import pytest

from app_pages import watchdog


def test_stale_seconds_reads_the_environment(monkeypatch):
    monkeypatch.delenv("FA_LAB_WATCHDOG_S", raising=False)
    assert watchdog.stale_seconds() == watchdog.DEFAULT_STALE_S
    monkeypatch.setenv("FA_LAB_WATCHDOG_S", "12.5")
    assert watchdog.stale_seconds() == 12.5
    monkeypatch.setenv("FA_LAB_WATCHDOG_S", "soon")
    with pytest.raises(ValueError, match="FA_LAB_WATCHDOG_S must be a number of seconds, got 'soon'"):
        watchdog.stale_seconds()


def test_script_carries_its_limits_and_refuses_a_non_positive_one():
    html = watchdog.watchdog_html(8)
    config = json.loads(re.search(r"const cfg = (\{.*?\});", html).group(1))
    assert config == {"staleMs": 8000, "maxReloads": watchdog.MAX_RELOADS,
                      "windowMs": watchdog.RELOAD_WINDOW_S * 1000, "key": watchdog.STORAGE_KEY}
    assert html.startswith("<script>") and html.rstrip().endswith("</script>")
    assert "window.parent.location.reload()" in html and 'data-testid="stProgress"' in html
    for bad in (0, -1.0):
        with pytest.raises(ValueError, match="must be > 0 seconds"):
            watchdog.watchdog_html(bad)
