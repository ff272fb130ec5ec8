"""How long the Playground pages' own work takes per interaction, on the shipped checkpoints.

:func:`draw_latency` times what the Draw page does after a stroke: :func:`~fa_core.preprocess_drawing`
on a canvas-sized RGBA drawing, a forward pass of each classifier, the probability-bar figure and
what ``st.plotly_chart`` does with it (validation, JSON). :func:`denoise_latency` times what the Denoise page does
when the sigma slider moves: the noisy digits, each denoiser's reconstructions and BCEs, the digit
grid and the BCE-against-sigma figure. Models are loaded once beforehand (the pages cache them with
``st.cache_resource``), and the stored BCE curves of shipped denoisers are read, not recomputed.

Reported: the median and the maximum over ``repeats`` runs, in milliseconds. Streamlit's own
overhead (rerunning the script or fragment, sending the deltas, the browser drawing) comes on
top. ``python -m fa_core checkpoints latency`` prints both.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw

from .checkpoints import load_checkpoint
from .denoise import PAPER_TABLE3, noisy_images, reconstruct
from .playground_plots import bce_sigma_figure, digit_grid_figure, probabilities_figure
from .preprocess import preprocess_drawing
from .shipped import SHIPPED, load_test_sample, shipped_path

CANVAS_SIDE = 280
"""The Draw page's canvas side in pixels."""


def canvas_three(side: int = CANVAS_SIDE, width: int = 22) -> np.ndarray:
    """A '3' drawn on a transparent ``side`` x ``side`` RGBA canvas, as the canvas returns it."""
    img = Image.new("RGBA", (side, side), (0, 0, 0, 0))
    points = [(0.3, 0.22), (0.6, 0.18), (0.64, 0.4), (0.45, 0.5), (0.68, 0.62), (0.6, 0.82), (0.3, 0.8)]
    ImageDraw.Draw(img).line([(x * side, y * side) for x, y in points], fill=(0, 0, 0, 255), width=width, joint="curve")
    return np.asarray(img)


def _as_streamlit_sends(figure: Any) -> str:
    """What ``st.plotly_chart`` does with a figure: validate it again, then serialise it."""
    import plotly.io
    import plotly.tools

    return plotly.io.to_json(plotly.tools.return_figure_from_figure_or_data(figure, validate_figure=True), validate=False)


def _timed(step: Callable[[], Any], repeats: int) -> dict[str, float]:
    step()  # warm-up: lazy imports, first-call allocations
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        step()
        times.append(1000.0 * (time.perf_counter() - started))
    return {"median_ms": statistics.median(times), "max_ms": max(times), "repeats": repeats}


def draw_latency(repeats: int = 20, folder: Any = None) -> dict[str, Any]:
    """Milliseconds from a stroke's image to the six shipped classifiers' answers and their figure."""
    entries = [(spec, load_checkpoint(shipped_path(spec, folder))[0].eval()) for spec in SHIPPED if spec.task == "classify"]
    drawing = canvas_three()

    def step() -> None:
        digit = preprocess_drawing(drawing)
        assert digit is not None
        panels = []
        with torch.no_grad():
            for spec, model in entries:
                panels.append({"title": spec.name, "rule": spec.rule, "probs": model.predict(digit.unsqueeze(0))[0].tolist()})
        _as_streamlit_sends(probabilities_figure(panels))

    return {"models": len(entries), **_timed(step, repeats)}


def denoise_latency(repeats: int = 20, count: int = 8, folder: Any = None) -> dict[str, Any]:
    """Milliseconds to redraw the Denoise page's grid and curve for a new sigma (shipped pair at sigma 100)."""
    pair = []
    for spec in SHIPPED:
        if spec.task == "denoise" and spec.sigma == 100:
            model, meta = load_checkpoint(shipped_path(spec, folder))
            pair.append((spec, model.eval(), meta["test_metrics"]["bce_curve"]))
    images, _ = load_test_sample(folder)
    clean = images[:count].float() / 255.0
    sigmas = iter(range(0, 10_000))

    def step() -> None:
        sigma = (next(sigmas) * 35) % 256
        noisy = noisy_images(clean, sigma, 0)
        rows = [{"label": "clean", "images": clean[:, 0].numpy()}, {"label": "noisy", "images": noisy[:, 0].numpy()}]
        curves = []
        for spec, model, curve in pair:
            rec = reconstruct(model, clean, noisy)
            rows.append({"label": spec.name, "images": rec.reconstructed[:, 0].numpy(),
                         "captions": [f"{b:.3f}" for b in rec.bce.tolist()]})
            curves.append({"label": spec.name, "rule": spec.rule, "sigmas": curve["sigmas"], "bce": curve["bce"],
                           "train_sigma": spec.sigma})
        _as_streamlit_sends(digit_grid_figure(rows, column_titles=[str(i) for i in range(count)]))
        _as_streamlit_sends(bce_sigma_figure(curves, current_sigma=sigma, paper=PAPER_TABLE3))

    return {"models": len(pair), "digits": count, **_timed(step, repeats)}
