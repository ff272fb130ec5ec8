"""Figure builders: traces, colours and axis titles for given plain inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fa_core.plots import (
    RULE_COLORS,
    ExportError,
    accuracy_figure,
    angles_figure,
    comparison_figure,
    confusion_figure,
    downsample,
    export_image,
    filter_mosaic_figure,
    image_export_available,
    layer_angles_figure,
    loss_figure,
    rgba,
    rule_color,
    run_from_metrics,
    shade,
    smooth,
    style_runs,
    thin_run,
    weight_histogram_figure,
    weight_scatter_figure,
)

FA_RUN = {
    "label": "FA",
    "rule": "fa",
    "steps": list(range(1, 101)),
    "losses": [2.3 / (1 + 0.05 * i) for i in range(100)],
    "epochs": [
        {"epoch": 1, "train_accuracy": 80.0, "test_accuracy": 85.0, "train_loss": 0.6},
        {"epoch": 2, "train_accuracy": 90.0, "test_accuracy": 91.0, "train_loss": 0.3},
    ],
    "angle_steps": [0, 50, 100],
    "weight_angles": {"fc1 (B unused)": [90.0, 89.9, 89.8], "fc2": [90.0, 60.0, 45.0]},
    "signal_angles": {"fc1": [88.0, 50.0, 40.0]},
}
BP_RUN = {**FA_RUN, "label": "BP", "rule": "bp", "weight_angles": {}, "signal_angles": {"fc1": [0.0, 0.0, 0.0]}}


def test_rule_colors_are_fixed_and_distinct() -> None:
    assert set(RULE_COLORS) >= {"bp", "fa", "fa_ex"}
    assert len(set(RULE_COLORS.values())) == len(RULE_COLORS)
    assert rule_color("FA") == RULE_COLORS["fa"]
    assert rule_color("sign_symmetry") == rule_color("sign_symmetry")  # stable fallback


def test_smooth_keeps_length_and_averages() -> None:
    assert smooth([]) == []
    assert smooth([1.0, 3.0, 5.0], window=2) == [1.0, 2.0, 4.0]
    out = smooth([1.0, math.nan, 3.0], window=3)
    assert out == [1.0, 1.0, 2.0]


def test_loss_figure_single_run() -> None:
    fig = loss_figure([FA_RUN])
    assert [t.name for t in fig.data] == ["FA (raw)", "FA"]
    raw, smoothed = fig.data
    assert smoothed.line.color == RULE_COLORS["fa"]
    assert raw.line.color == rgba(RULE_COLORS["fa"], 0.25)
    assert list(smoothed.x) == FA_RUN["steps"]
    assert fig.layout.xaxis.title.text == "training step"
    assert fig.layout.yaxis.title.text == "loss"


def test_loss_figure_overlay_uses_rule_colours() -> None:
    fig = loss_figure([FA_RUN, BP_RUN], log_y=True)
    colours = {t.name: t.line.color for t in fig.data if "raw" not in t.name}
    assert colours == {"FA": RULE_COLORS["fa"], "BP": RULE_COLORS["bp"]}
    assert fig.layout.yaxis.type == "log"


def test_loss_figure_empty_has_note() -> None:
    fig = loss_figure([{"label": "x", "rule": "fa", "steps": [], "losses": []}])
    assert not fig.data
    assert "no training steps" in fig.layout.annotations[0].text


def test_accuracy_figure_classifier() -> None:
    fig = accuracy_figure([FA_RUN])
    names = [t.name for t in fig.data]
    assert names == ["FA test", "FA train"]
    assert fig.data[0].line.dash == "solid" and fig.data[1].line.dash == "dot"
    assert all(t.line.color == RULE_COLORS["fa"] for t in fig.data)
    assert list(fig.data[0].y) == [85.0, 91.0]
    assert fig.layout.yaxis.title.text == "accuracy (%)"
    assert fig.layout.xaxis.title.text == "epoch"


def test_accuracy_figure_denoiser_shows_bce() -> None:
    run = {"label": "BP", "rule": "bp", "epochs": [
        {"epoch": 1, "train_accuracy": None, "test_accuracy": None, "train_loss": 0.2, "test_bce": 0.12},
        {"epoch": 2, "train_accuracy": None, "test_accuracy": None, "train_loss": 0.1, "test_bce": 0.09},
    ]}
    fig = accuracy_figure([run], task="denoise")
    assert [t.name for t in fig.data] == ["BP test BCE", "BP train BCE"]
    assert list(fig.data[0].y) == [0.12, 0.09]
    assert fig.layout.yaxis.title.text == "BCE"


def test_angles_figure_styles_and_reference_line() -> None:
    fig = angles_figure([FA_RUN])
    names = [t.name for t in fig.data]
    assert names == ["FA W∠B fc2", "FA δFA∠δBP fc1"]  # the unused first-layer angle is hidden
    weight, signal = fig.data
    assert weight.line.dash == "solid" and signal.line.dash == "dash"
    assert fig.layout.yaxis.title.text == "angle (degrees)"
    assert fig.layout.xaxis.title.text == "training step"
    hlines = [s for s in fig.layout.shapes if s.y0 == 90 and s.y1 == 90]
    assert hlines and hlines[0].line.dash == "dot"


def test_angles_figure_unused_layer_greyed_when_shown() -> None:
    fig = angles_figure([FA_RUN], show_unused=True)
    unused = [t for t in fig.data if "(B unused)" in t.name]
    assert len(unused) == 1
    assert unused[0].line.dash == "dot"
    assert unused[0].line.color not in RULE_COLORS.values()


def test_angles_figure_overlay_and_nan() -> None:
    fa_ex = {**FA_RUN, "label": "FA_EX-100%", "rule": "fa_ex",
             "weight_angles": {"fc1 (B unused)": [1.0, 2.0, 3.0], "fc2": [90.0, math.nan, 30.0]}}
    fig = angles_figure([fa_ex, BP_RUN])
    by_name = {t.name: t for t in fig.data}
    assert by_name["FA_EX-100% W∠B fc2"].y[1] is None
    assert by_name["FA_EX-100% W∠B fc2"].line.color.startswith("#")
    assert "BP δFA∠δBP fc1" in by_name
    assert not any(name.startswith("BP W∠B") for name in by_name)


def test_run_from_metrics_round_trip() -> None:
    metrics = {
        "config": {"rule": "fa_ex", "rule_params": {"p": 80.0}, "model": "mlp"},
        "history": FA_RUN["epochs"],
        "final": {},
        "curves": {
            "loss": {"steps": [1, 2], "values": [2.0, 1.0]},
            "angles": {"steps": [0, 10], "weight": {"fc2": [90.0, 80.0]}, "signal": {"fc1": [90.0, 70.0]}},
        },
    }
    run = run_from_metrics(metrics)
    assert run["label"] == "FA_EX-80%"
    assert run["rule"] == "fa_ex"
    fig = loss_figure([run])
    assert fig.data[1].line.color == RULE_COLORS["fa_ex"]
    assert len(angles_figure([run]).data) == 2


def test_accuracy_figure_fixed_epoch_range_and_empty_axes() -> None:
    fig = accuracy_figure([FA_RUN], max_epoch=10)
    assert list(fig.layout.xaxis.range) == [0.5, 10.5]
    empty = accuracy_figure([{"label": "FA", "rule": "fa", "epochs": []}])
    assert list(empty.layout.yaxis.range) == [0, 100]
    assert "no finished epoch" in empty.layout.annotations[0].text


# ---- the lab pages' builders ---------------------------------------------------------------------
def test_style_runs_one_colour_per_rule_and_shades_for_variants() -> None:
    runs = [{"label": "BP", "rule": "bp"}, {"label": "FA", "rule": "fa"},
            {"label": "FA_EX-100%", "rule": "fa_ex"}, {"label": "FA_EX-50%", "rule": "fa_ex"},
            {"label": "FA_EX-0%", "rule": "fa_ex"}]
    styled = style_runs(runs)
    assert styled[0]["color"] == RULE_COLORS["bp"] and styled[1]["color"] == RULE_COLORS["fa"]
    variants = [s["color"] for s in styled[2:]]
    assert len(set(variants)) == 3 and RULE_COLORS["fa_ex"] not in variants[:1]
    assert variants[0] == shade(RULE_COLORS["fa_ex"], -0.35)
    assert [s["dash"] for s in styled[2:]] == ["solid", "dash", "dot"]
    assert "color" not in runs[0]  # copies, inputs untouched
    # the colour is honoured by every builder
    run = {**FA_RUN, "color": "#123456"}
    assert loss_figure([run]).data[1].line.color == "#123456"
    assert accuracy_figure([run]).data[0].line.color == "#123456"
    assert angles_figure([run]).data[0].line.color.startswith("#")


def test_downsample_and_thin_run_bound_the_live_payload() -> None:
    xs = list(range(10_000))
    ys = [float(x) for x in xs]
    dx, dy = downsample(xs, ys, 400)
    assert len(dx) == len(dy) == 400
    assert dx[0] == pytest.approx(12, abs=1) and dy[-1] == pytest.approx(9987, abs=1)
    assert downsample([1, 2], [3.0, 4.0], 10) == ([1, 2], [3.0, 4.0])
    _, nan_y = downsample(list(range(4)), [math.nan, math.nan, 1.0, 3.0], 2)
    assert math.isnan(nan_y[0]) and nan_y[1] == 2.0
    long_run = {**FA_RUN, "steps": xs, "losses": ys, "angle_steps": list(range(0, 5000, 2)),
                "weight_angles": {"fc2": [45.0] * 2500}, "signal_angles": {"fc1": [30.0] * 2500}}
    thin = thin_run(long_run, 300)
    assert len(thin["steps"]) == 300
    assert len(thin["angle_steps"]) <= 301 and thin["angle_steps"][-1] == 4998
    assert len(thin["weight_angles"]["fc2"]) == len(thin["angle_steps"]) == len(thin["signal_angles"]["fc1"])
    assert thin_run(FA_RUN)["angle_steps"] == FA_RUN["angle_steps"]
    fig = loss_figure([thin])
    assert len(fig.data[1].x) == 300


def test_comparison_figure_has_three_panels_and_one_legend_entry_per_run() -> None:
    runs = style_runs([FA_RUN, BP_RUN])
    fig = comparison_figure(runs, title="BP vs FA")
    assert [a.text for a in fig.layout.annotations][:3] == [
        "Test accuracy per epoch", "Training loss (smoothed)", "Alignment angles (solid W∠B, dashed δFA∠δBP)"]
    legend = [t.name for t in fig.data if t.showlegend]
    assert legend == ["FA", "BP"]
    by_axis = {}
    for trace in fig.data:
        by_axis.setdefault(trace.xaxis, []).append(trace)
    assert set(by_axis) == {"x", "x2", "x3"}
    assert all(t.line.color == RULE_COLORS["fa"] for t in by_axis["x"] if t.legendgroup == "FA")
    assert fig.layout.yaxis3.range == (0, 120)
    assert fig.layout.title.text == "BP vs FA"
    dae = comparison_figure([{"label": "BP", "rule": "bp", "epochs": [{"epoch": 1, "test_bce": 0.1}]}], task="denoise")
    assert dae.layout.yaxis.title.text == "BCE" and list(dae.data[0].y) == [0.1]


def test_layer_angles_weight_scatter_histogram() -> None:
    fig = layer_angles_figure([0, 10, 20], {"fc1 (B unused)": [90, 90, 90], "fc2": [90, 70, 50], "fc3": [90, 80, 60]},
                              "W∠B per layer")
    assert [t.name for t in fig.data] == ["fc2", "fc3"]
    assert fig.data[0].line.color != fig.data[1].line.color
    assert fig.layout.yaxis.range == (0, 120)
    assert "no angles" in layer_angles_figure([], {}, "x").layout.annotations[-1].text
    scatter = weight_scatter_figure(np.arange(5.0), np.arange(5.0) * 2, "fc2", angle=12.3, correlation=0.99)
    assert list(scatter.data[0].x) == [0, 1, 2, 3, 4] and list(scatter.data[0].y) == [0, 2, 4, 6, 8]
    assert "angle 12.3°" in scatter.layout.title.text and "r = 0.99" in scatter.layout.title.text
    assert scatter.layout.xaxis.title.text == "W entry" and scatter.layout.yaxis.title.text == "B entry"
    hist = weight_histogram_figure([0.1, 0.2], [0.5, -0.5], "fc2")
    assert [t.name for t in hist.data] == ["W", "B"] and hist.layout.barmode == "overlay"
    assert [t.name for t in weight_histogram_figure([0.1], None, "fc2").data] == ["W"]


def test_filter_mosaic_and_confusion_figures() -> None:
    mosaics = [np.array([[0.1, np.nan], [-0.2, 0.3]]), np.array([[0.4, 0.0], [0.0, -0.1]])]
    fig = filter_mosaic_figure(mosaics, ["filter 1", "filter 2"], "lc1", cols=2, hover=[[["a", "b"], ["c", "d"]]] * 2)
    assert len(fig.data) == 2 and all(t.type == "heatmap" for t in fig.data)
    assert fig.data[0].z[0][1] is None  # gaps stay empty
    assert fig.data[0].zmax == pytest.approx(0.4) and fig.data[0].zmin == pytest.approx(-0.4)
    assert [a.text for a in fig.layout.annotations] == ["filter 1", "filter 2"]
    assert fig.layout.yaxis.autorange == "reversed"
    confusion = confusion_figure([[5, 1], [0, 4]], ["0", "1"])
    heat = confusion.data[0]
    assert list(heat.z[0]) == [5 / 6, 1 / 6] and list(heat.text[1]) == ["0", "4"]
    assert confusion.layout.xaxis.title.text == "predicted class"
    assert confusion.layout.yaxis.title.text == "true class"


def test_export_png_and_svg_through_chromium() -> None:
    ok, why = image_export_available()
    assert ok, why  # requirements.txt has kaleido; .ci/run installs Debian's chromium
    fig = comparison_figure(style_runs([FA_RUN, BP_RUN]), title="export", width=600, height=300)
    png = export_image(fig, "png", scale=1)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    svg = export_image(fig, "svg")
    assert svg.lstrip()[:4] == b"<svg" and b"Training loss" in svg
    with pytest.raises(ExportError, match="unsupported"):
        export_image(fig, "gif")
