"""Plotly figure builders for training curves: pure functions of plain lists and dicts.

Every builder takes a list of *runs* so that one run and an overlay of several (the compare page)
use the same code. A run is a dict with at least ``"label"`` (legend text) and ``"rule"`` (a rule
name such as ``"fa"``; it picks the colour from :data:`RULE_COLORS`, so every rule keeps one
colour across all figures), plus the data each builder names:

* :func:`loss_figure`: ``"steps"`` and ``"losses"`` (per step, possibly downsampled);
* :func:`accuracy_figure`: ``"epochs"``, the epoch records (``epoch``, ``train_accuracy``,
  ``test_accuracy``, ``test_bce``, ``train_loss``);
* :func:`angles_figure`: ``"angle_steps"``, ``"weight_angles"`` (layer -> degrees, W vs B) and
  ``"signal_angles"`` (layer -> degrees, FA error vs BP error).

:func:`run_from_snapshot` and :func:`run_from_metrics` build such dicts from a live job snapshot
or a stored ``metrics.json``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go

from .metrics import UNUSED_SUFFIX
from .rules import get_rule

RULE_COLORS: dict[str, str] = {
    "bp": "#1f77b4",  # blue
    "fa": "#d62728",  # red
    "fa_ex": "#2ca02c",  # green
}
"""One colour per learning rule, shared by every figure (single runs and overlays)."""

_FALLBACK_COLORS = ("#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f")
REFERENCE_COLOR = "#888888"
UNUSED_COLOR = "#aaaaaa"

Run = Mapping[str, Any]


def rule_color(rule: str | None) -> str:
    """The colour of ``rule``: from :data:`RULE_COLORS`, else a stable pick from a spare palette."""
    rule = (rule or "").lower()
    if rule in RULE_COLORS:
        return RULE_COLORS[rule]
    return _FALLBACK_COLORS[sum(map(ord, rule)) % len(_FALLBACK_COLORS)]


def shade(color: str, amount: float) -> str:
    """``color`` (``#rrggbb``) mixed towards white (``amount`` > 0) or black (< 0), ``|amount|`` <= 1."""
    r, g, b = (int(color[i : i + 2], 16) for i in (1, 3, 5))
    target = 255 if amount > 0 else 0
    a = min(1.0, abs(amount))
    mixed = (round(c + (target - c) * a) for c in (r, g, b))
    return "#" + "".join(f"{c:02x}" for c in mixed)


def rgba(color: str, alpha: float) -> str:
    r, g, b = (int(color[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def smooth(values: Sequence[float], window: int | None = None) -> list[float]:
    """Trailing moving average (NaN-aware); ``window`` defaults to about 1/40 of the points.

    The first points average over what is available, so the output has the input's length.
    """
    n = len(values)
    if n == 0:
        return []
    if window is None:
        window = max(1, n // 40)
    window = max(1, int(window))
    out: list[float] = []
    total, count = 0.0, 0
    for i, v in enumerate(values):
        if _finite(v):
            total += v
            count += 1
        if i >= window:
            old = values[i - window]
            if _finite(old):
                total -= old
                count -= 1
        out.append(total / count if count else math.nan)
    return out


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def _layout(fig: go.Figure, title: str, x_title: str, y_title: str, height: int) -> go.Figure:
    fig.update_layout(
        title={"text": title, "x": 0.0, "xanchor": "left"},
        height=height,
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
        legend={"orientation": "h", "yanchor": "top", "y": -0.2, "x": 0},
        hovermode="x unified",
        uirevision="keep",
    )
    fig.update_xaxes(title_text=x_title)
    fig.update_yaxes(title_text=y_title)
    return fig


def _empty_note(fig: go.Figure, text: str) -> None:
    fig.add_annotation(
        text=text, xref="paper", yref="paper", x=0.5, y=0.5, showarrow=False,
        font={"color": REFERENCE_COLOR},
    )


def loss_figure(runs: Sequence[Run], smoothing: int | None = None, log_y: bool = False, height: int = 320) -> go.Figure:
    """Training loss per step: a faint raw line and a smoothed line per run, in the rule's colour."""
    fig = go.Figure()
    any_points = False
    for run in runs:
        steps, losses = list(run.get("steps") or []), list(run.get("losses") or [])
        if not steps:
            continue
        any_points = True
        color = rule_color(run.get("rule"))
        label = str(run.get("label", run.get("rule", "run")))
        fig.add_trace(
            go.Scatter(
                x=steps, y=losses, mode="lines", name=f"{label} (raw)", legendgroup=label,
                showlegend=False, line={"color": rgba(color, 0.25), "width": 1}, hoverinfo="skip",
            )
        )
        fig.add_trace(
            go.Scatter(
                x=steps, y=smooth(losses, smoothing), mode="lines", name=label, legendgroup=label,
                line={"color": color, "width": 2},
            )
        )
    if not any_points:
        _empty_note(fig, "no training steps yet")
    _layout(fig, "Training loss", "training step", "loss", height)
    if log_y:
        fig.update_yaxes(type="log")
    return fig


def accuracy_figure(
    runs: Sequence[Run], task: str = "classify", max_epoch: int | None = None, height: int = 320
) -> go.Figure:
    """Per epoch: test accuracy (solid) and train accuracy (dotted) in percent; for ``task``
    ``"denoise"``: test BCE (solid) and train loss (dotted). ``max_epoch`` fixes the x range to
    the planned epochs (a live run's axis then does not jump as epochs finish)."""
    fig = go.Figure()
    any_points = False
    denoise = task == "denoise"
    test_key, train_key = ("test_bce", "train_loss") if denoise else ("test_accuracy", "train_accuracy")
    test_name, train_name = ("test BCE", "train BCE") if denoise else ("test", "train")
    for run in runs:
        records = list(run.get("epochs") or [])
        if not records:
            continue
        color = rule_color(run.get("rule"))
        label = str(run.get("label", run.get("rule", "run")))
        epochs = [r.get("epoch") for r in records]
        for key, name, dash in ((test_key, test_name, "solid"), (train_key, train_name, "dot")):
            ys = [r.get(key) for r in records]
            if not any(_finite(y) for y in ys):
                continue
            any_points = True
            fig.add_trace(
                go.Scatter(
                    x=epochs, y=[y if _finite(y) else None for y in ys], mode="lines+markers",
                    name=f"{label} {name}", legendgroup=label,
                    line={"color": color, "width": 2, "dash": dash}, marker={"size": 6},
                )
            )
    if not any_points:
        _empty_note(fig, "no finished epoch yet")
    title = "Test BCE per epoch" if denoise else "Accuracy per epoch"
    _layout(fig, title, "epoch", "BCE" if denoise else "accuracy (%)", height)
    longest = max([len(r.get("epochs") or []) for r in runs] + [max_epoch or 0])
    if max_epoch:
        fig.update_xaxes(range=[0.5, max(max_epoch, longest) + 0.5])
    elif not any_points:
        fig.update_xaxes(range=[0.5, 10.5])
    if longest <= 20:
        fig.update_xaxes(dtick=1)
    if not any_points:
        fig.update_yaxes(range=[0, 0.3] if denoise else [0, 100])
    return fig


def angles_figure(runs: Sequence[Run], show_unused: bool = False, height: int = 320) -> go.Figure:
    """Alignment angles over steps: W vs B per layer (solid), FA error vs BP error per hidden
    layer (dashed), and a dotted 90° reference (no alignment). Layers of one run are shades of
    the rule's colour; the first layer's meaningless W-B angle ("... (B unused)") is hidden unless
    ``show_unused``, then drawn grey and dotted."""
    fig = go.Figure()
    any_points = False
    max_step = 0
    for run in runs:
        steps = list(run.get("angle_steps") or [])
        if not steps:
            continue
        max_step = max(max_step, max(steps))
        color = rule_color(run.get("rule"))
        label = str(run.get("label", run.get("rule", "run")))
        weight = dict(run.get("weight_angles") or {})
        signal = dict(run.get("signal_angles") or {})
        layers = list(dict.fromkeys([k.removesuffix(UNUSED_SUFFIX) for k in weight] + list(signal)))
        shades = {layer: shade(color, -0.35 + 0.7 * i / max(1, len(layers) - 1)) if len(layers) > 1 else color
                  for i, layer in enumerate(layers)}
        for key, values in weight.items():
            unused = key.endswith(UNUSED_SUFFIX)
            if unused and not show_unused:
                continue
            layer = key.removesuffix(UNUSED_SUFFIX)
            any_points = True
            fig.add_trace(
                go.Scatter(
                    x=steps, y=_nan_to_none(values), mode="lines", legendgroup=label,
                    name=f"{label} W∠B {key}",
                    line={"color": UNUSED_COLOR if unused else shades[layer], "width": 1 if unused else 2,
                          "dash": "dot" if unused else "solid"},
                    opacity=0.6 if unused else 1.0,
                )
            )
        for layer, values in signal.items():
            any_points = True
            fig.add_trace(
                go.Scatter(
                    x=steps, y=_nan_to_none(values), mode="lines", legendgroup=label,
                    name=f"{label} δFA∠δBP {layer}",
                    line={"color": shades.get(layer, color), "width": 2, "dash": "dash"},
                )
            )
    fig.add_hline(y=90, line={"color": REFERENCE_COLOR, "width": 1, "dash": "dot"},
                  annotation_text="90° (no alignment)", annotation_position="top left")
    if not any_points:
        _empty_note(fig, "no angles measured yet")
    _layout(fig, "Alignment angles", "training step", "angle (degrees)", height)
    fig.update_yaxes(range=[0, 120])
    return fig


def _nan_to_none(values: Sequence[float]) -> list[float | None]:
    return [v if _finite(v) else None for v in values]


def run_from_snapshot(snapshot: Any, label: str | None = None) -> dict[str, Any]:
    """The plot dict of a live :class:`~fa_core.jobs.JobSnapshot`."""
    return {
        "label": label or snapshot.rule_label,
        "rule": snapshot.config.get("rule"),
        "steps": snapshot.loss_steps,
        "losses": snapshot.loss_values,
        "epochs": snapshot.epoch_records,
        "angle_steps": snapshot.angle_steps,
        "weight_angles": snapshot.weight_angles,
        "signal_angles": snapshot.signal_angles,
    }


def run_from_metrics(metrics: Mapping[str, Any], label: str | None = None) -> dict[str, Any]:
    """The plot dict of a stored ``metrics.json`` (``config``, ``history``, ``curves``)."""
    config = metrics.get("config") or {}
    curves = metrics.get("curves") or {}
    loss = curves.get("loss") or {}
    angles = curves.get("angles") or {}
    rule = config.get("rule")
    if label is None:
        try:
            label = get_rule(str(rule), **(config.get("rule_params") or {})).display_name()
        except ValueError:
            label = str(rule)
    return {
        "label": label,
        "rule": rule,
        "steps": loss.get("steps") or [],
        "losses": loss.get("values") or [],
        "epochs": metrics.get("history") or [],
        "angle_steps": angles.get("steps") or [],
        "weight_angles": angles.get("weight") or {},
        "signal_angles": angles.get("signal") or {},
    }
