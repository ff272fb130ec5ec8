"""Figure builders: traces, colours and axis titles for given plain inputs."""

from __future__ import annotations

import math

from fa_core.plots import (
    RULE_COLORS,
    accuracy_figure,
    angles_figure,
    loss_figure,
    rgba,
    rule_color,
    run_from_metrics,
    smooth,
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
