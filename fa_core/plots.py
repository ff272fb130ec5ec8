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
or a stored ``metrics.json``. A run dict may also carry ``"color"`` (overrides the rule's colour)
and ``"dash"`` (the loss line's dash): :func:`style_runs` sets both so that several runs of one
rule (FA_EX with different p) get shades of that rule's colour. :func:`thin_run` downsamples a
run's curves for live charts.

The lab pages' builders: :func:`comparison_figure` (one exportable figure: accuracy, loss and
angles side by side), :func:`layer_angles_figure`, :func:`weight_scatter_figure`,
:func:`weight_histogram_figure`, :func:`filter_mosaic_figure`, :func:`confusion_figure`; and
:func:`export_image` (PNG/SVG through kaleido and the system's Chromium).
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Mapping, Sequence
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

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


def run_color(run: Run) -> str:
    """The run's own ``"color"`` if it has one, else its rule's colour."""
    return str(run.get("color") or rule_color(run.get("rule")))


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
        legend={"orientation": "h", "yanchor": "top", "y": -0.3, "x": 0},
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
        color = run_color(run)
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
                line={"color": color, "width": 2, "dash": run.get("dash") or "solid"},
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
        color = run_color(run)
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
        color = run_color(run)
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


# ---- several runs of one comparison ------------------------------------------------------------
_DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")


def style_runs(runs: Sequence[Run]) -> list[dict[str, Any]]:
    """Copies of ``runs`` with ``"color"`` and ``"dash"`` set: the rule's colour for a rule's only
    run; for several runs of one rule (FA_EX-100%, -80%, ...) shades of it from dark to light and
    different loss-line dashes. Runs that already have a ``"color"`` keep it."""
    out = [dict(run) for run in runs]
    by_rule: dict[str, list[dict[str, Any]]] = {}
    for run in out:
        by_rule.setdefault(str(run.get("rule") or ""), []).append(run)
    for rule, members in by_rule.items():
        base = rule_color(rule)
        n = len(members)
        for i, run in enumerate(members):
            if run.get("color"):
                continue
            run["color"] = base if n == 1 else shade(base, -0.35 + 0.8 * i / (n - 1))
            run["dash"] = "solid" if n == 1 else _DASHES[i % len(_DASHES)]
    return out


def downsample(xs: Sequence[float], ys: Sequence[float], max_points: int) -> tuple[list[float], list[float]]:
    """At most ``max_points`` bucket means of ``(xs, ys)`` (NaN-aware); short inputs unchanged."""
    n = min(len(xs), len(ys))
    if n <= max_points or max_points < 1:
        return list(xs[:n]), list(ys[:n])
    out_x: list[float] = []
    out_y: list[float] = []
    for b in range(max_points):
        lo, hi = b * n // max_points, (b + 1) * n // max_points
        if hi <= lo:
            continue
        bucket_x = [float(x) for x in xs[lo:hi]]
        bucket_y = [float(y) for y in ys[lo:hi] if _finite(y)]
        out_x.append(sum(bucket_x) / len(bucket_x))
        out_y.append(sum(bucket_y) / len(bucket_y) if bucket_y else math.nan)
    return out_x, out_y


def _thin_indices(n: int, max_points: int) -> list[int]:
    if n <= max_points:
        return list(range(n))
    stride = math.ceil(n / max_points)
    keep = list(range(0, n, stride))
    if keep[-1] != n - 1:
        keep.append(n - 1)
    return keep


def thin_run(run: Run, max_points: int = 400) -> dict[str, Any]:
    """A copy of ``run`` whose loss curve has at most ``max_points`` bucket means and whose angle
    curves keep at most about ``max_points`` samples (always the last): what a live chart needs,
    so each refresh sends a small, bounded figure whatever the run's length."""
    out = dict(run)
    steps, losses = downsample(list(run.get("steps") or []), list(run.get("losses") or []), max_points)
    out["steps"], out["losses"] = steps, losses
    angle_steps = list(run.get("angle_steps") or [])
    keep = _thin_indices(len(angle_steps), max_points)
    if len(keep) < len(angle_steps):
        out["angle_steps"] = [angle_steps[i] for i in keep]
        for key in ("weight_angles", "signal_angles"):
            series = dict(run.get(key) or {})
            out[key] = {layer: [values[i] for i in keep if i < len(values)] for layer, values in series.items()}
    return out


def comparison_figure(
    runs: Sequence[Run],
    task: str = "classify",
    title: str | None = None,
    show_unused: bool = False,
    width: int = 1500,
    height: int = 480,
) -> go.Figure:
    """One figure for a paper or a report: test metric per epoch, smoothed training loss, and the
    alignment angles, side by side, one colour per run (see :func:`style_runs`), one legend entry
    per run. Angles: solid W∠B, dashed δFA∠δBP (shades per layer), dotted 90° reference."""
    denoise = task == "denoise"
    metric_key = "test_bce" if denoise else "test_accuracy"
    fig = make_subplots(
        rows=1, cols=3, horizontal_spacing=0.07,
        subplot_titles=(
            "Test BCE per epoch" if denoise else "Test accuracy per epoch",
            "Training loss (smoothed)",
            "Alignment angles (solid W∠B, dashed δFA∠δBP)",
        ),
    )
    for run in runs:
        color = run_color(run)
        label = str(run.get("label", run.get("rule", "run")))
        shown = False

        def legend() -> bool:
            nonlocal shown
            first = not shown
            shown = True
            return first

        records = list(run.get("epochs") or [])
        ys = [r.get(metric_key) for r in records]
        if any(_finite(y) for y in ys):
            fig.add_trace(go.Scatter(
                x=[r.get("epoch") for r in records], y=[y if _finite(y) else None for y in ys],
                mode="lines+markers", name=label, legendgroup=label, showlegend=legend(),
                line={"color": color, "width": 2}, marker={"size": 6},
            ), row=1, col=1)
        steps, losses = list(run.get("steps") or []), list(run.get("losses") or [])
        if steps:
            fig.add_trace(go.Scatter(
                x=steps, y=smooth(losses), mode="lines", name=label, legendgroup=label, showlegend=legend(),
                line={"color": color, "width": 2, "dash": run.get("dash") or "solid"},
            ), row=1, col=2)
        angle_steps = list(run.get("angle_steps") or [])
        weight = dict(run.get("weight_angles") or {})
        signal = dict(run.get("signal_angles") or {})
        layers = list(dict.fromkeys([k.removesuffix(UNUSED_SUFFIX) for k in weight] + list(signal)))
        for series, dash in ((weight, "solid"), (signal, "dash")):
            for key, values in series.items():
                unused = key.endswith(UNUSED_SUFFIX)
                if unused and not show_unused:
                    continue
                layer = key.removesuffix(UNUSED_SUFFIX)
                i = layers.index(layer) if layer in layers else 0
                c = shade(color, -0.35 + 0.7 * i / max(1, len(layers) - 1)) if len(layers) > 1 else color
                kind = "W∠B" if dash == "solid" else "δFA∠δBP"
                fig.add_trace(go.Scatter(
                    x=angle_steps, y=_nan_to_none(values), mode="lines", name=f"{label} {kind} {key}",
                    legendgroup=label, showlegend=legend(),
                    line={"color": UNUSED_COLOR if unused else c, "width": 2, "dash": "dot" if unused else dash},
                    hovertemplate=f"{label} {kind} {key}: %{{y:.1f}}°<extra></extra>",
                ), row=1, col=3)
    fig.add_hline(y=90, line={"color": REFERENCE_COLOR, "width": 1, "dash": "dot"}, row=1, col=3)
    fig.update_xaxes(title_text="epoch", row=1, col=1)
    if max([len(run.get("epochs") or []) for run in runs] + [0]) <= 20:
        fig.update_xaxes(dtick=1, row=1, col=1)
    fig.update_yaxes(title_text="BCE" if denoise else "accuracy (%)", row=1, col=1)
    fig.update_xaxes(title_text="training step", row=1, col=2)
    fig.update_yaxes(title_text="loss", row=1, col=2)
    fig.update_xaxes(title_text="training step", row=1, col=3)
    fig.update_yaxes(title_text="angle (degrees)", range=[0, 120], row=1, col=3)
    fig.update_layout(
        title={"text": title or "", "x": 0.0, "xref": "paper", "xanchor": "left"},
        width=width, height=height, template="plotly_white",
        margin={"l": 60, "r": 20, "t": 80 if title else 50, "b": 60},
        legend={"orientation": "h", "yanchor": "top", "y": -0.18, "x": 0},
    )
    return fig


# ---- inspection ------------------------------------------------------------------------------
_LAYER_PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")


def layer_angles_figure(
    steps: Sequence[float],
    series: Mapping[str, Sequence[float]],
    title: str,
    show_unused: bool = False,
    height: int = 320,
) -> go.Figure:
    """One line per layer (its own colour) of an angle over training steps, 90° dotted."""
    fig = go.Figure()
    shown = 0
    for i, (key, values) in enumerate(series.items()):
        unused = key.endswith(UNUSED_SUFFIX)
        if unused and not show_unused:
            continue
        shown += 1
        fig.add_trace(go.Scatter(
            x=list(steps), y=_nan_to_none(values), mode="lines+markers" if len(values) < 30 else "lines",
            name=key, line={"color": UNUSED_COLOR if unused else _LAYER_PALETTE[i % len(_LAYER_PALETTE)],
                            "width": 2, "dash": "dot" if unused else "solid"},
        ))
    fig.add_hline(y=90, line={"color": REFERENCE_COLOR, "width": 1, "dash": "dot"},
                  annotation_text="90° (no alignment)", annotation_position="top left")
    if not shown:
        _empty_note(fig, "no angles recorded for this run")
    _layout(fig, title, "training step", "angle (degrees)", height)
    fig.update_yaxes(range=[0, 120])
    return fig


def weight_scatter_figure(
    weight: Sequence[float], feedback: Sequence[float], layer: str, color: str = "#d62728",
    angle: float | None = None, correlation: float | None = None, height: int = 380,
) -> go.Figure:
    """W's entries (x) against B's (y) for one layer: alignment shows as a tilted cloud."""
    fig = go.Figure(go.Scattergl(
        x=list(weight), y=list(feedback), mode="markers", name=layer,
        marker={"color": color, "size": 3, "opacity": 0.45},
        hovertemplate="W %{x:.4f}<br>B %{y:.4f}<extra></extra>",
    ))
    bits = [f"{layer}: W vs B ({len(weight):,} entries)"]
    if angle is not None and _finite(angle):
        bits.append(f"angle {angle:.1f}°")
    if correlation is not None and _finite(correlation):
        bits.append(f"r = {correlation:.2f}")
    _layout(fig, " · ".join(bits), "W entry", "B entry", height)
    fig.update_layout(hovermode="closest", showlegend=False)
    return fig


def weight_histogram_figure(
    weight: Sequence[float], feedback: Sequence[float] | None, layer: str, color: str = "#d62728",
    height: int = 380,
) -> go.Figure:
    """Distributions of W's and B's entries of one layer (B grey; absent under BP)."""
    fig = go.Figure()
    fig.add_trace(go.Histogram(x=list(weight), name="W", marker={"color": color}, opacity=0.65, nbinsx=80))
    if feedback is not None:
        fig.add_trace(go.Histogram(x=list(feedback), name="B", marker={"color": REFERENCE_COLOR},
                                   opacity=0.55, nbinsx=80))
    _layout(fig, f"{layer}: distribution of entries", "value", "count", height)
    fig.update_layout(barmode="overlay", hovermode="closest")
    return fig


def filter_mosaic_figure(
    mosaics: Sequence[Any],
    titles: Sequence[str],
    title: str,
    cols: int | None = None,
    zmax: float | None = None,
    height: int | None = None,
    hover: Sequence[Any] | None = None,
) -> go.Figure:
    """Small heatmaps side by side, one per filter (each a mosaic of that filter at several
    positions, NaN gaps between tiles), on one symmetric blue-white-red scale."""
    n = len(mosaics)
    cols = cols or min(n, 6) or 1
    rows = max(1, math.ceil(n / cols))
    if zmax is None:
        finite = [abs(float(v)) for m in mosaics for row in m for v in row if _finite(v)]
        zmax = max(finite) if finite else 1.0
    zmax = zmax or 1.0
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=list(titles),
                        horizontal_spacing=0.02, vertical_spacing=0.08 if rows > 1 else 0.0)
    for i, mosaic in enumerate(mosaics):
        r, c = divmod(i, cols)
        fig.add_trace(go.Heatmap(
            z=[[v if _finite(v) else None for v in row] for row in mosaic],
            zmin=-zmax, zmax=zmax, zmid=0, colorscale="RdBu", reversescale=True,
            showscale=(i == 0), colorbar={"thickness": 10, "len": 0.8},
            customdata=hover[i] if hover is not None else None,
            hovertemplate=("%{customdata}<br>value %{z:.3f}<extra></extra>" if hover is not None
                           else "value %{z:.3f}<extra></extra>"),
            hoverongaps=False,
        ), row=r + 1, col=c + 1)
    fig.update_xaxes(showticklabels=False, showgrid=False, zeroline=False, ticks="", showline=False)
    fig.update_yaxes(showticklabels=False, showgrid=False, zeroline=False, ticks="", showline=False,
                     autorange="reversed")
    for i in range(n):
        axis = "" if i == 0 else str(i + 1)
        fig.layout[f"yaxis{axis}"].update(scaleanchor=f"x{axis}", constrain="domain")
        fig.layout[f"xaxis{axis}"].update(constrain="domain")
    fig.update_layout(
        title={"text": title, "x": 0.0, "xanchor": "left"},
        height=height or (260 * rows + 40), margin={"l": 10, "r": 10, "t": 60, "b": 10},
        plot_bgcolor="white",
    )
    return fig


def confusion_figure(matrix: Sequence[Sequence[int]], labels: Sequence[str] | None = None,
                     title: str = "Confusion matrix (test set)", height: int = 460) -> go.Figure:
    """Counts of true (rows) against predicted (columns) classes; colour is the row share, so
    small classes read as clearly as large ones; the diagonal is correct."""
    n = len(matrix)
    labels = [str(x) for x in (labels or range(n))]
    share = []
    for row in matrix:
        total = sum(row)
        share.append([v / total if total else 0.0 for v in row])
    fig = go.Figure(go.Heatmap(
        z=share, x=labels, y=labels, text=[[str(v) for v in row] for row in matrix], texttemplate="%{text}",
        colorscale="Blues", zmin=0, zmax=1, colorbar={"title": {"text": "row share"}, "thickness": 10},
        hovertemplate="true %{y}, predicted %{x}: %{text}<extra></extra>",
    ))
    _layout(fig, title, "predicted class", "true class", height)
    fig.update_yaxes(autorange="reversed", type="category")
    fig.update_xaxes(type="category", side="bottom")
    fig.update_layout(hovermode="closest")
    return fig


# ---- static export ---------------------------------------------------------------------------
_BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")


class ExportError(RuntimeError):
    """A figure could not be turned into PNG/SVG here (kaleido or a Chrome/Chromium is missing)."""


def image_export_available() -> tuple[bool, str]:
    """Whether :func:`export_image` can work here, and if not, why (no download is attempted)."""
    try:
        import kaleido  # noqa: F401
    except ImportError:
        return False, "the kaleido package is not installed"
    if os.environ.get("BROWSER_PATH") and os.path.exists(os.environ["BROWSER_PATH"]):
        return True, ""
    if any(shutil.which(name) for name in _BROWSERS):
        return True, ""
    return False, "no Chrome or Chromium found (install Debian's chromium or set BROWSER_PATH)"


def export_image(fig: go.Figure, fmt: str = "png", scale: float = 2.0) -> bytes:
    """``fig`` as PNG or SVG bytes, rendered by kaleido in the system's Chromium (a few seconds).

    Raises :class:`ExportError` (with the reason) when that is not possible here.
    """
    fmt = fmt.lower()
    if fmt not in ("png", "svg"):
        raise ExportError(f"unsupported image format {fmt!r}: use png or svg")
    ok, why = image_export_available()
    if not ok:
        raise ExportError(why)
    try:
        return fig.to_image(format=fmt, scale=scale if fmt == "png" else 1.0)
    except Exception as err:  # noqa: BLE001 - kaleido/chromium failures reach the user as text
        raise ExportError(f"could not render the figure: {type(err).__name__}: {err}") from None
