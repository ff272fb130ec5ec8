"""The Playground latency probe runs the pages' real work on the shipped checkpoints (no timing asserts:
speed targets belong in `python -m fa_core checkpoints latency`)."""

from __future__ import annotations

import numpy as np

from fa_core import preprocess_drawing
from fa_core.playground_latency import canvas_three, denoise_latency, draw_latency


def test_canvas_three_is_a_canvas_drawing() -> None:
    rgba = canvas_three()
    assert rgba.shape == (280, 280, 4) and rgba.dtype == np.uint8
    assert rgba[:, :, 3].max() == 255 and rgba[0, 0, 3] == 0
    assert preprocess_drawing(rgba) is not None


def test_draw_latency_uses_the_six_shipped_classifiers() -> None:
    result = draw_latency(repeats=2)
    assert result["models"] == 6 and result["repeats"] == 2
    assert 0 < result["median_ms"] <= result["max_ms"]


def test_denoise_latency_uses_the_shipped_pair() -> None:
    result = denoise_latency(repeats=2, count=4)
    assert result["models"] == 2 and result["digits"] == 4
    assert 0 < result["median_ms"] <= result["max_ms"]
