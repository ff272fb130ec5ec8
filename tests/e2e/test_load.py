"""A one-minute version of the load probe (the 30-minute numbers are in docs/reliability.md).

Five browser sessions, three of them training with a cap of two jobs: every trainer progresses,
the queue is used, running never exceeds the cap, no session sees another's jobs or can control
them, and the server's memory does not run away.
"""

from __future__ import annotations

import pytest

from .load_probe import run_probe

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_five_sessions_three_training_for_a_minute(browser, tmp_path) -> None:
    result = run_probe(minutes=1.0, out=tmp_path / "load.json", epochs=20, sample_s=5.0, log=lambda line: None,
                       stale_s=30.0, browser=browser, root=tmp_path)
    summary = result["summary"]
    assert result["violations"] == [], result["violations"]
    assert summary["max_running_seen"] == 2 and summary["queue_seen"]
    assert all(summary["progressed"])
    assert all(check["refused"] and check["control_buttons"] == 0 for check in result["isolation"])
    # bounded: the server holds MNIST, torch and three jobs' curves; far below a leak's growth
    assert summary["rss_mib_max"] < 2048, summary
