"""Small Playwright helpers for FA Lab's Streamlit pages (no pytest; the load probe uses them too)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

STEP_RE = re.compile(r"(queued|running|paused|finished|stopped|failed)\b.*?step ([\d,]+)/([\d,]+)")


def wait_for(predicate: Callable[[], Any], timeout: float = 60.0, interval: float = 0.25, message: str = "") -> Any:
    """Poll ``predicate`` until it returns something truthy; raise ``AssertionError`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = predicate()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {message or predicate!r} (last: {last!r})")
        time.sleep(interval)


def open_train(page, base_url: str, query: str = "") -> None:
    page.goto(f"{base_url}/train{query}")
    page.get_by_role("button", name="Start").wait_for()


def set_number(page, label: str, value: float | int) -> None:
    box = page.locator('[data-testid="stNumberInput"]').get_by_label(label, exact=True)
    box.fill(str(value))
    box.press("Enter")


def set_text(page, label: str, value: str) -> None:
    box = page.locator('[data-testid="stTextInput"]').get_by_label(label, exact=True)
    box.fill(value)
    box.press("Enter")


def quick_run_smallest(page) -> None:
    """Move the "Quick run" slider to its first stop (1% of the training set)."""
    slider = page.locator('input[type="range"][aria-label^="Quick run"]')
    slider.focus()
    slider.press("Home")
    wait_for(lambda: slider.get_attribute("aria-valuetext") == "1%", 10, message="quick run at 1%")


def choose(page, label: str, option: str) -> None:
    """Pick ``option`` (its visible text, or the start of it) in the selectbox labelled ``label``."""
    box = page.locator('[data-testid="stSelectbox"]').filter(has=page.get_by_text(label, exact=True))
    box.locator('[role="combobox"], input').first.click()
    page.get_by_role("option").filter(has_text=option).first.click()


def progress_text(page) -> str:
    """Text of the (last live) progress bar on the page, or ``""``."""
    bars = page.locator('[data-testid="stProgress"]')
    count = bars.count()
    for i in reversed(range(count)):
        try:
            return bars.nth(i).inner_text(timeout=2_000)
        except Exception:  # noqa: BLE001 - re-rendered while reading
            continue
    return ""


def job_progress(page) -> tuple[str, int, int] | None:
    """``(status, step, total)`` from the Train page's progress bar, or ``None``."""
    match = STEP_RE.search(progress_text(page))
    if not match:
        return None
    return match.group(1), int(match.group(2).replace(",", "")), int(match.group(3).replace(",", ""))


def chart_points(page, key: str = "loss_live") -> int:
    """Number of x values in the first trace of the plotly chart with Streamlit key ``key``."""
    return page.evaluate(
        """(key) => {
            const plots = document.querySelectorAll(`.st-key-${key} .js-plotly-plot`);
            let best = 0;
            for (const p of plots) {
                for (const t of (p.data || [])) best = Math.max(best, (t.x || []).length);
            }
            return best;
        }""",
        key,
    )


def query_param(page, name: str) -> str | None:
    from urllib.parse import parse_qs, urlparse

    # ``page.url`` is only refreshed when Playwright processes events; ask the page itself.
    values = parse_qs(urlparse(page.evaluate("() => window.location.href")).query).get(name)
    return values[0] if values else None
