"""Figures of the Playground pages (Draw and Denoise): pure functions of arrays, lists and dicts.

* :func:`probabilities_figure`: class-probability bars of several classifiers, one panel each;
* :func:`digit_grid_figure`: rows of 28x28 digits (clean | noisy | BP | FA) with a caption per tile;
* :func:`bce_sigma_figure`: test BCE against noise sigma, training sigmas marked, the paper's
  Table 3 overlaid;
* :func:`pixel_image`: a 28x28 image enlarged with square pixels, for ``st.image``.

Rules keep the colours of :data:`fa_core.plots.RULE_COLORS` (BP blue, FA red, FA_EX green).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go

from .plots import REFERENCE_COLOR, rgba, rule_color

DIGITS = [str(d) for d in range(10)]


def pixel_image(image: Any, scale: int = 8, invert: bool = False) -> np.ndarray:
    """A (28, 28) or (1, 28, 28) image in [0, 1] as a uint8 array ``scale`` times larger (square pixels)."""
    arr = np.asarray(image, dtype=np.float32)
    arr = arr.reshape(arr.shape[-2:])
    arr = np.clip(np.nan_to_num(arr), 0.0, 1.0)
    if invert:
        arr = 1.0 - arr
    big = np.kron(arr, np.ones((scale, scale), dtype=np.float32))
    return (big * 255.0 + 0.5).astype(np.uint8)


PLAIN_LAYOUT: dict[str, Any] = {
    "template": "none",
    "plot_bgcolor": "white",
    "paper_bgcolor": "white",
    "font": {"family": "sans-serif", "color": "#333"},
}
"""Layout defaults instead of a plotly template: a named template (``plotly_white``) is merged
into every figure and validated again by ``st.plotly_chart``, which costs ~10x a small figure's
own build time. The Playground figures redraw on every stroke or slider move, so they skip it."""
_AXIS_STYLE: dict[str, Any] = {"gridcolor": "#e5e5e5", "zerolinecolor": "#cccccc", "linecolor": "#cccccc"}


def _annotation(text: str, x: float, y: float, **extra: Any) -> dict[str, Any]:
    return {"text": text, "x": x, "y": y, "xref": "paper", "yref": "paper", "showarrow": False, **extra}


def probabilities_figure(panels: Sequence[Mapping[str, Any]], columns: int = 3, height: int | None = None) -> go.Figure:
    """Bars of P(digit) for each panel: ``{"title", "rule", "probs": 10 floats}``; grid of ``columns``.

    Each panel's title gets the predicted digit and its probability; the predicted bar is drawn in
    the rule's colour, the others lighter. Built as one dict (subplot domains computed here, not by
    ``make_subplots``): it is redrawn after every stroke on the Draw page.
    """
    n = max(1, len(panels))
    columns = max(1, min(columns, n))
    rows = math.ceil(n / columns)
    gap_x, gap_y = 0.06, (0.16 if rows > 1 else 0.1)
    width = (1.0 - gap_x * (columns - 1)) / columns
    tall = (1.0 - gap_y * (rows - 1)) / rows
    data: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    layout: dict[str, Any] = {
        **PLAIN_LAYOUT,
        "height": height or 200 * rows + 40,
        "margin": {"l": 40, "r": 10, "t": 40, "b": 20},
        "bargap": 0.15,
        "showlegend": False,
    }
    for i, panel in enumerate(panels):
        probs = np.asarray(panel["probs"], dtype=float)
        top = int(probs.argmax())
        color = rule_color(panel.get("rule"))
        suffix = "" if i == 0 else str(i + 1)
        row, col = divmod(i, columns)
        x0 = col * (width + gap_x)
        y1 = 1.0 - row * (tall + gap_y)
        data.append({
            "type": "bar", "x": DIGITS, "y": probs.tolist(), "xaxis": f"x{suffix}", "yaxis": f"y{suffix}",
            "marker": {"color": [color if d == top else rgba(color, 0.35) for d in range(10)]},
            "hovertemplate": f"{panel['title']}<br>P(%{{x}}) = %{{y:.3f}}<extra></extra>",
        })
        layout[f"xaxis{suffix}"] = {"domain": [x0, x0 + width], "anchor": f"y{suffix}", "type": "category",
                                    "tickfont": {"size": 11}, **_AXIS_STYLE}
        layout[f"yaxis{suffix}"] = {"domain": [max(0.0, y1 - tall), y1], "anchor": f"x{suffix}",
                                    "range": [0, 1.02], "tickformat": ".0%", "nticks": 3, **_AXIS_STYLE}
        annotations.append(_annotation(
            f"<b>{panel['title']}</b>: {top} ({100 * probs[top]:.0f}%)", x0 + width / 2, y1,
            xanchor="center", yanchor="bottom", font={"size": 13},
        ))
    if not panels:
        annotations.append(_annotation("no models", 0.5, 0.5, font={"color": REFERENCE_COLOR}))
    layout["annotations"] = annotations
    return go.Figure({"data": data, "layout": layout})


def digit_grid_figure(
    rows: Sequence[Mapping[str, Any]],
    column_titles: Sequence[str] | None = None,
    tile: int = 28,
    gap: int = 4,
    height: int | None = None,
) -> go.Figure:
    """A mosaic of 28x28 digits: one row per ``{"label", "images": (k, 28, 28) in [0, 1], "captions"}``.

    ``captions`` (optional, k strings, e.g. the BCE of each tile) are written under the tiles;
    ``column_titles`` above the first row. Values are clipped to [0, 1] for display (the paper's
    noisy inputs are not clipped for the model). Pixels are square; white ink on black, as the
    models see it.
    """
    n_rows = len(rows)
    n_cols = max((len(np.asarray(r["images"]).reshape(-1, tile, tile)) for r in rows), default=0)
    caption_h = 9
    row_h = tile + caption_h + gap
    width_px = max(1, n_cols * (tile + gap) - gap)
    height_px = max(1, n_rows * row_h)
    canvas = np.full((height_px, width_px), np.nan, dtype=np.float32)
    annotations: list[dict[str, Any]] = []
    for r, row in enumerate(rows):
        images = np.clip(np.nan_to_num(np.asarray(row["images"], dtype=np.float32).reshape(-1, tile, tile)), 0, 1)
        top = r * row_h
        for c, img in enumerate(images):
            left = c * (tile + gap)
            canvas[top : top + tile, left : left + tile] = img
            captions = row.get("captions")
            if captions is not None and c < len(captions) and captions[c]:
                annotations.append({
                    "x": left + tile / 2 - 0.5, "y": top + tile + caption_h / 2 - 0.5, "text": str(captions[c]),
                    "showarrow": False, "font": {"size": 11, "color": row.get("caption_color", "#333")},
                    "xref": "x", "yref": "y",
                })
        annotations.append({
            "x": -gap, "y": top + tile / 2, "text": f"<b>{row['label']}</b>", "showarrow": False,
            "xanchor": "right", "font": {"size": 12, "color": row.get("label_color", "#222")},
            "xref": "x", "yref": "y",
        })
    if column_titles:
        for c, title in enumerate(column_titles[:n_cols]):
            annotations.append({
                "x": c * (tile + gap) + tile / 2 - 0.5, "y": -4, "text": str(title), "showarrow": False,
                "font": {"size": 11, "color": "#555"}, "xref": "x", "yref": "y", "yanchor": "bottom",
            })
    heatmap = {
        "type": "heatmap", "z": canvas, "colorscale": "gray", "zmin": 0.0, "zmax": 1.0,
        "showscale": False, "hoverinfo": "skip",
    }
    layout = {
        **PLAIN_LAYOUT,
        "annotations": annotations,
        "height": height or int(110 + 2.9 * height_px),
        "margin": {"l": 0, "r": 0, "t": 0, "b": 0},
        "xaxis": {"visible": False, "range": [-0.5 - 110, width_px - 0.5], "constrain": "domain"},
        "yaxis": {"visible": False, "autorange": False, "scaleanchor": "x", "scaleratio": 1,
                  "range": [height_px - 0.5, -16 if column_titles else -0.5]},
    }
    return go.Figure({"data": [heatmap], "layout": layout})


def bce_sigma_figure(
    curves: Sequence[Mapping[str, Any]],
    current_sigma: float | None = None,
    paper: Mapping[str, Mapping[int, float]] | None = None,
    height: int = 360,
) -> go.Figure:
    """Test BCE against noise sigma: ``{"label", "rule", "sigmas", "bce", "train_sigma"}`` per curve.

    The training sigma of each model is marked on its curve (a diamond); ``paper`` (rule ->
    {sigma: BCE}, e.g. :data:`fa_core.denoise.PAPER_TABLE3`) is drawn as crosses in the rule's
    colour; ``current_sigma`` as a dotted vertical line.
    """
    data: list[dict[str, Any]] = []
    dashes = ("solid", "dash", "dot", "dashdot", "longdash")
    seen: dict[str, int] = {}
    for curve in curves:
        color = rule_color(curve.get("rule"))
        rule = str(curve.get("rule"))
        dash = dashes[seen.get(rule, 0) % len(dashes)]
        seen[rule] = seen.get(rule, 0) + 1
        sigmas = [float(x) for x in curve["sigmas"]]
        values = [float(v) for v in curve["bce"]]
        data.append({
            "type": "scatter", "x": sigmas, "y": values, "mode": "lines", "name": curve["label"],
            "line": {"color": color, "width": 2, "dash": dash},
            "hovertemplate": f"{curve['label']}<br>σ=%{{x}}: BCE %{{y:.4f}}<extra></extra>",
        })
        train_sigma = curve.get("train_sigma")
        if train_sigma is not None and sigmas:
            data.append({
                "type": "scatter", "x": [float(train_sigma)], "y": [float(np.interp(float(train_sigma), sigmas, values))],
                "mode": "markers", "showlegend": False,
                "marker": {"symbol": "diamond", "size": 12, "color": color, "line": {"color": "white", "width": 1.5}},
                "hovertemplate": f"{curve['label']}<br>trained at σ={train_sigma:g}: BCE %{{y:.4f}}<extra></extra>",
            })
    for rule, points in (paper or {}).items():
        xs = sorted(points)
        data.append({
            "type": "scatter", "x": xs, "y": [points[x] for x in xs], "mode": "markers",
            "name": f"paper Table 3 · {rule.upper()}",
            "marker": {"symbol": "x", "size": 11, "color": rgba(rule_color(rule), 0.85), "line": {"width": 0}},
            "hovertemplate": f"paper {rule.upper()}<br>σ=%{{x}}: BCE %{{y:.4f}}<extra></extra>",
        })
    shapes: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    if current_sigma is not None:
        x = float(current_sigma)
        shapes.append({"type": "line", "x0": x, "x1": x, "y0": 0, "y1": 1, "xref": "x", "yref": "paper",
                       "line": {"color": REFERENCE_COLOR, "dash": "dot", "width": 1.5}})
        annotations.append({"text": f"σ = {current_sigma:g}", "x": x, "y": 1, "xref": "x", "yref": "paper",
                            "showarrow": False, "xanchor": "right", "yanchor": "top"})
    if not curves and not paper:
        annotations.append(_annotation("no denoisers chosen", 0.5, 0.5, font={"color": REFERENCE_COLOR}))
    layout = {
        **PLAIN_LAYOUT,
        "height": height,
        "margin": {"l": 60, "r": 10, "t": 30, "b": 45},
        "xaxis": {"title": {"text": "noise σ (pixel scale 0–255)"}, "range": [-5, 260], **_AXIS_STYLE},
        "yaxis": {"title": {"text": "test BCE (per pixel)"}, **_AXIS_STYLE},
        "legend": {"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0, "font": {"size": 11}},
        "shapes": shapes,
        "annotations": annotations,
    }
    return go.Figure({"data": data, "layout": layout})
