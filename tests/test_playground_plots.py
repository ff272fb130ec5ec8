"""Figures of the Playground: probability bars, digit grids, BCE against sigma."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from fa_core.denoise import PAPER_TABLE3
from fa_core.playground_plots import bce_sigma_figure, digit_grid_figure, pixel_image, probabilities_figure
from fa_core.plots import RULE_COLORS


def one_hot(d: int, p: float = 0.9) -> list[float]:
    probs = [(1 - p) / 9] * 10
    probs[d] = p
    return probs


def test_pixel_image_has_square_pixels() -> None:
    img = np.zeros((1, 28, 28), np.float32)
    img[0, 3, 5] = 1.0
    big = pixel_image(img, 4)
    assert big.shape == (112, 112) and big.dtype == np.uint8
    assert big[12:16, 20:24].min() == 255 and big[:12].max() == 0
    assert pixel_image(img, 2, invert=True)[0, 0] == 255


def test_probabilities_figure_panels_and_titles() -> None:
    panels = [
        {"title": "BP mlp", "rule": "bp", "probs": one_hot(3)},
        {"title": "FA mlp", "rule": "fa", "probs": one_hot(3, 0.6)},
        {"title": "FA_EX-100% mlp", "rule": "fa_ex", "probs": one_hot(5)},
        {"title": "BP lc_cnn", "rule": "bp", "probs": one_hot(3)},
    ]
    fig = probabilities_figure(panels, columns=3)
    assert isinstance(fig, go.Figure)
    bars = [t for t in fig.data if isinstance(t, go.Bar)]
    assert len(bars) == 4
    titles = [a.text for a in fig.layout.annotations]
    assert "<b>FA mlp</b>: 3 (60%)" in titles and "<b>FA_EX-100% mlp</b>: 5 (90%)" in titles
    # the predicted bar is in the rule's colour, the others lighter
    assert bars[0].marker.color[3] == RULE_COLORS["bp"] and bars[0].marker.color[0] != RULE_COLORS["bp"]
    fig.to_json()


def test_probabilities_figure_without_panels() -> None:
    fig = probabilities_figure([])
    assert "no models" in [a.text for a in fig.layout.annotations]


def test_digit_grid_figure_layout() -> None:
    k = 5
    rows = [
        {"label": "clean", "images": np.random.rand(k, 28, 28)},
        {"label": "noisy", "images": np.random.randn(k, 28, 28) * 3},  # unclipped values
        {"label": "BP", "images": np.random.rand(k, 28, 28), "captions": [f"{0.1 * i:.3f}" for i in range(k)]},
    ]
    fig = digit_grid_figure(rows, column_titles=[f"#{i}" for i in range(k)])
    heat = fig.data[0]
    z = np.asarray(heat.z, dtype=float)
    assert np.nanmin(z) >= 0 and np.nanmax(z) <= 1  # clipped for display
    texts = [a.text for a in fig.layout.annotations]
    assert "0.300" in texts and "<b>noisy</b>" in texts and "#4" in texts
    assert fig.layout.yaxis.scaleanchor == "x"  # square pixels


def test_bce_sigma_figure_marks_training_sigma_and_paper() -> None:
    sigmas = list(range(0, 256, 15))
    curves = [
        {"label": "BP dae (σ=100)", "rule": "bp", "sigmas": sigmas, "bce": [0.08 + s / 3000 for s in sigmas], "train_sigma": 100.0},
        {"label": "FA dae (σ=100)", "rule": "fa", "sigmas": sigmas, "bce": [0.09 + s / 3000 for s in sigmas], "train_sigma": 100.0},
    ]
    fig = bce_sigma_figure(curves, current_sigma=150, paper=PAPER_TABLE3)
    lines = [t for t in fig.data if t.mode == "lines"]
    diamonds = [t for t in fig.data if t.mode == "markers" and t.marker.symbol == "diamond"]
    crosses = [t for t in fig.data if t.mode == "markers" and t.marker.symbol == "x"]
    assert len(lines) == 2 and len(diamonds) == 2 and len(crosses) == 2
    assert diamonds[0].x == (100.0,) and abs(diamonds[0].y[0] - (0.08 + 100 / 3000)) < 1e-9
    assert sorted(crosses[0].y) == sorted(PAPER_TABLE3["bp"].values())
    assert lines[0].line.color == RULE_COLORS["bp"] and lines[1].line.color == RULE_COLORS["fa"]
    assert any(shape.x0 == 150 for shape in fig.layout.shapes)  # the current sigma
    fig.to_json()


def test_bce_sigma_figure_empty() -> None:
    fig = bce_sigma_figure([], paper=None)
    assert "no denoisers chosen" in [a.text for a in fig.layout.annotations]
