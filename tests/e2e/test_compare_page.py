"""The Compare page in a real browser: BP against FA, trained side by side, curves overlaid.

The settings come from a shared link (``/compare?model=mlp&rules=bp,fa&...``), as a user
following a link would get them; the run uses 1% of MNIST for two epochs.
"""

from __future__ import annotations

import pytest

from .ui import query_param, wait_for

pytestmark = pytest.mark.e2e


def traces(page, key: str) -> list[dict]:
    """``[{name, points}]`` of the plotly chart with Streamlit key ``key``."""
    return page.evaluate(
        """(key) => {
            const p = document.querySelector(`.st-key-${key} .js-plotly-plot`);
            return p ? (p.data || []).map(t => ({name: t.name || '', points: (t.x || []).length})) : [];
        }""",
        key,
    )


def test_compare_two_rules(server, page) -> None:
    page.goto(f"{server.url}/compare?dataset=mnist&model=mlp&rules=bp,fa&epochs=2&frac=0.01&mode=together")
    start = page.locator(".st-key-cmp_start button")
    start.wait_for()
    assert query_param(page, "rules") == "bp,fa"
    start.click()
    group = wait_for(lambda: query_param(page, "cmp"), 60, message="the comparison id in the URL")

    # Both rules train at once: a live view with a Stop button, then the finished summary.
    page.locator(".st-key-cmp_stop button").or_(page.get_by_text("Summary (CSV)")).first.wait_for()
    page.get_by_text("Summary (CSV)").wait_for(timeout=180_000)
    assert page.locator(".st-key-cmp_stop button").count() == 0

    def per_rule(key: str) -> dict[str, int]:
        out: dict[str, int] = {}
        for trace in traces(page, key):
            for rule in ("BP", "FA"):
                if trace["name"].startswith(rule) and trace["points"]:
                    out[rule] = max(out.get(rule, 0), trace["points"])
        return out

    accuracy = wait_for(lambda: (a := per_rule("cmp_acc")) and len(a) == 2 and a, 30, message="both accuracy curves")
    assert accuracy == {"BP": 2, "FA": 2}, accuracy  # one point per epoch and rule
    loss = per_rule("cmp_loss")
    assert set(loss) == {"BP", "FA"} and min(loss.values()) > 2, loss
    assert "FA" in {t["name"][:2] for t in traces(page, "cmp_angles")}  # BP has no B: only FA has W∠B

    summary = page.locator('[data-testid="stDataFrame"]').first
    summary.wait_for()
    assert query_param(page, "cmp") == group
    # Both runs are in the run store, tagged with the group.
    import json

    groups = [json.loads(p.read_text()).get("group") for p in server.runs_dir.glob("*/status.json")]
    assert groups.count(group) == 2
