"""The Playground pages in a real browser: draw a digit with the mouse; slide the noise sigma.

Both use the checkpoints shipped in ``checkpoints/`` (no training).
"""

from __future__ import annotations

import re

import pytest

from .ui import wait_for

pytestmark = pytest.mark.e2e

# A "7" in one stroke: the top bar, then down to the lower left (canvas coordinates, 280 x 280).
SEVEN = [[(70, 60), (120, 58), (170, 56), (210, 56), (195, 105), (175, 155), (155, 205), (140, 245)]]


def draw_strokes(page, strokes: list[list[tuple[int, int]]]) -> None:
    """Draw ``strokes`` on the drawable canvas with the mouse (press, move in small steps, release)."""
    # streamlit-drawable-canvas 0.13 renders in an open shadow root (no iframe); CSS pierces it.
    target = page.locator(".stBidiComponent canvas.upper-canvas")
    target.wait_for()
    box = target.bounding_box()
    assert box and box["width"] >= 200, box
    for stroke in strokes:
        x0, y0 = stroke[0]
        page.mouse.move(box["x"] + x0, box["y"] + y0)
        page.mouse.down()
        for x, y in stroke[1:]:
            page.mouse.move(box["x"] + x, box["y"] + y, steps=8)
        page.mouse.up()


def test_draw_a_digit_with_the_mouse_and_see_a_prediction(server, page) -> None:
    page.goto(f"{server.url}/draw")
    page.get_by_text("Draw a digit in the box on the left").wait_for()
    assert page.get_by_text("models say").count() == 0
    draw_strokes(page, SEVEN)
    verdict = page.get_by_text(re.compile(r"\d of \d models say \d"))
    verdict.wait_for()
    text = verdict.inner_text()
    agree, total, digit = (int(n) for n in re.match(r"(\d) of (\d) models say (\d)", text).groups())
    assert total >= 3 and 1 <= agree <= total, text
    assert digit == 7, f"the models read the drawn 7 as {text!r}"
    assert page.get_by_text(re.compile("What the models see")).first.is_visible()
    bars = wait_for(
        lambda: page.evaluate(
            """() => {
                const p = document.querySelector('.st-key-draw_probs .js-plotly-plot');
                return p && p.data ? p.data.length : 0;
            }"""
        ),
        60, message="the probability charts",
    )
    assert bars >= total  # one probability bar chart per model


def grid_state(page) -> dict:
    """The Denoise grid: its row labels and the BCE caption under each reconstruction."""
    return page.evaluate(
        """() => {
            const p = document.querySelector('.st-key-dn_grid .js-plotly-plot');
            if (!p || !p.layout) return null;
            const texts = (p.layout.annotations || []).map(a => a.text);
            return {
                labels: texts.filter(t => t.startsWith('<b>')),
                bce: texts.filter(t => /^\\d+\\.\\d{3}$/.test(t)),
            };
        }"""
    )


def test_moving_the_sigma_slider_changes_the_reconstructions(server, page) -> None:
    page.goto(f"{server.url}/denoise")
    before = wait_for(lambda: (g := grid_state(page)) and g["bce"] and g, 90, message="the reconstruction grid")
    assert any("σ=100" in label for label in before["labels"]), before["labels"]
    slider = page.locator('[data-testid="stSlider"]').filter(has_text="Noise σ").get_by_role("slider")
    slider.focus()
    slider.press("End")  # sigma 255
    after = wait_for(
        lambda: (g := grid_state(page)) and any("σ=255" in label for label in g["labels"]) and g, 90,
        message="the grid at sigma 255",
    )
    assert len(after["bce"]) == len(before["bce"])
    assert after["bce"] != before["bce"]
    # more noise, worse reconstructions on average
    mean = lambda values: sum(float(v) for v in values) / len(values)  # noqa: E731
    assert mean(after["bce"]) > mean(before["bce"])
    page.get_by_role("heading", name=re.compile("Mean test BCE at σ = 255")).wait_for()
