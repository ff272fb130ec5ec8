"""Inspection: W-vs-B samples, first-layer filter images, position similarity, confusion matrix,
misclassified gallery, reconstructions — pure functions over small models."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import synthetic_dataset

from fa_core.inspection import (
    classifier_report,
    confusion_matrix,
    display_image,
    first_layer,
    first_layer_filters,
    grid_positions,
    initial_model,
    misclassified,
    position_similarity,
    readable_weight,
    reconstructions,
    weight_feedback_sample,
)
from fa_core.metrics import angle_degrees
from fa_core.models import build_model


def test_weight_feedback_sample_pairs_entries_and_caps_points() -> None:
    model = build_model("lc_cnn", "mnist", "fa", seed=0)
    name, layer = first_layer(model)
    sample = weight_feedback_sample(layer, name, max_points=5000, seed=1)
    assert sample.layer == "lc1"
    assert sample.total == layer.weight.numel()
    assert len(sample.weight) == len(sample.feedback) == 5000
    assert sample.angle == pytest.approx(angle_degrees(layer.weight, layer.feedback))
    assert -1 <= sample.correlation <= 1
    # pairs are (W, B) at the same synapse: with B := 2 W every pair lies on y = 2x
    with torch.no_grad():
        layer.feedback.copy_(2 * layer.weight)
    paired = weight_feedback_sample(layer, name, max_points=300)
    np.testing.assert_allclose(paired.feedback, 2 * paired.weight, rtol=1e-5, atol=1e-7)
    assert paired.angle == pytest.approx(0.0, abs=1e-3) and paired.correlation == pytest.approx(1.0)
    # small layers are taken whole; BP has no B
    small = build_model("mlp", "mnist", "bp", seed=0)
    bp = weight_feedback_sample(small.fc2, "fc2")
    assert bp.total == len(bp.weight) == 1280 and bp.feedback is None and bp.angle is None


def test_grid_positions() -> None:
    assert grid_positions(28, 4) == [3, 10, 17, 24]
    assert grid_positions(3, 5) == [0, 1, 2]
    assert grid_positions(10, 1) == [5]


def test_local_filters_at_positions_come_from_filters_view() -> None:
    model = build_model("lc_cnn", "mnist", "fa", seed=0)
    _, layer = first_layer(model)
    view = first_layer_filters(model, "weight", grid=4)
    assert view.kind == "local" and len(view.mosaics) == 6 and len(view.titles) == 6
    assert view.mosaics[0].shape == (4 * 5 + 3, 4 * 5 + 3)
    assert np.isnan(view.mosaics[0][5, 0]) and np.isnan(view.mosaics[0][0, 5])  # gaps between tiles
    filters = layer.filters().detach()
    rows = cols = grid_positions(28, 4)
    # tile (1, 2) of channel 3 is the 5x5 filter of channel 3 at output position (rows[1], cols[2])
    np.testing.assert_allclose(view.mosaics[3][6:11, 12:17], filters[3, 0, :, :, rows[1], cols[2]].numpy(), rtol=1e-6)
    assert view.positions[0] == (3, 3) and len(view.positions) == 16
    assert "position (10, 17), pixel (0, 0)" == view.hover[0][6][12]
    assert view.zmax == pytest.approx(float(np.nanmax(np.abs(np.stack(view.mosaics)))))
    feedback = first_layer_filters(model, "feedback", grid=2)
    np.testing.assert_allclose(feedback.mosaics[0][:5, :5],
                               layer.filters(layer.feedback)[0, 0, :, :, 7, 7].numpy(), rtol=1e-6)
    assert first_layer_filters(build_model("lc_cnn", "mnist", "bp", seed=0), "feedback") is None


def test_dense_and_conv_first_layers() -> None:
    mlp = first_layer_filters(build_model("mlp", "mnist", "fa", seed=0), units=16)
    assert mlp.kind == "dense" and len(mlp.mosaics) == 16 and mlp.mosaics[0].shape == (28, 28)
    model = build_model("mlp", "mnist", "fa", seed=0)
    np.testing.assert_allclose(mlp.mosaics[2], model.fc1.weight[2].detach().reshape(28, 28).numpy(), rtol=1e-6)
    conv = first_layer_filters(build_model("conv_cnn", "cifar10", "fa", seed=0))
    assert conv.kind == "conv" and len(conv.mosaics) == 32 and conv.mosaics[0].shape == (5, 5)
    local_cifar = first_layer_filters(build_model("lc_cnn", "cifar10", "fa", seed=0), grid=3)
    assert len(local_cifar.mosaics) == 32 and local_cifar.mosaics[0].shape == (17, 17)


def test_position_similarity_separates_shared_from_local() -> None:
    model = build_model("lc_cnn", "mnist", "fa", seed=0)
    _, layer = first_layer(model)
    random_similarity = position_similarity(layer)
    assert abs(random_similarity) < 0.05  # independent random filters
    with torch.no_grad():
        filters = layer.filters()  # a view: writing through it makes every position share one filter
        shared = filters[..., :1, :1].clone()
        weight = torch.empty_like(layer.weight)
        view = layer.filters(weight)
        view.copy_(shared.expand_as(view))
        layer.weight.copy_(weight)
    assert position_similarity(layer) == pytest.approx(1.0, abs=1e-9)
    assert readable_weight(layer, "feedback").shape == (6, 1, 5, 5, 28, 28)
    with pytest.raises(ValueError):
        readable_weight(layer, "bias")


def test_confusion_matrix_counts() -> None:
    matrix = confusion_matrix([0, 1, 1, 2, 2, 2], [0, 1, 2, 2, 2, 0], classes=3)
    assert matrix.tolist() == [[1, 0, 0], [0, 1, 1], [1, 0, 2]]
    assert matrix.sum() == 6
    with pytest.raises(ValueError):
        confusion_matrix([0, 1], [0], classes=2)


def test_misclassified_most_confident_first_with_top_guesses() -> None:
    images = np.arange(4 * 1 * 2 * 2, dtype=np.uint8).reshape(4, 1, 2, 2)
    labels = [0, 1, 2, 0]
    probs = [[0.9, 0.05, 0.05], [0.6, 0.3, 0.1], [0.1, 0.2, 0.7], [0.05, 0.15, 0.8]]
    out = misclassified(images, labels, probs, limit=5, top=2)
    assert [item["index"] for item in out] == [3, 1]  # 0.8 confident mistake before 0.6
    assert out[0]["label"] == 0 and out[0]["predicted"] == 2
    assert out[0]["top"][0] == ("2", pytest.approx(0.8)) and out[0]["top"][1][0] == "1"
    assert out[0]["image"].shape == (1, 2, 2)
    assert misclassified(images, labels, probs, limit=1)[0]["index"] == 3
    assert misclassified(images[:0], [], np.zeros((0, 3))) == []


def test_classifier_report_and_display_image() -> None:
    data = synthetic_dataset("mnist", n_train=16, n_test=64)
    model = build_model("mlp", "mnist", "fa", seed=0)
    report = classifier_report(model, data.test_x, data.test_y, limit=50, gallery=5)
    assert report.count == 50 and report.confusion.shape == (10, 10) and report.confusion.sum() == 50
    wrong = 50 - int(np.trace(report.confusion))
    assert math.isclose(report.accuracy, 100 * (50 - wrong) / 50)
    assert len(report.mistakes) == min(5, wrong)
    assert all(len(m["top"]) == 3 for m in report.mistakes)
    img = display_image(report.mistakes[0]["image"], scale=3)
    assert img.shape == (84, 84) and img.dtype == np.uint8
    rgb = display_image(np.zeros((3, 32, 32), dtype=np.uint8), scale=2)
    assert rgb.shape == (64, 64, 3)
    assert display_image(np.full((1, 2, 2), 0.5), scale=1).tolist() == [[127, 127], [127, 127]]
    with pytest.raises(ValueError, match="classifier"):
        classifier_report(build_model("dae", "mnist", "fa", seed=0), data.test_x, data.test_y)


def test_reconstructions() -> None:
    data = synthetic_dataset("mnist", n_train=16, n_test=8)
    model = build_model("dae", "mnist", "fa", seed=0)
    items = reconstructions(model, data.test_x, sigma=100, count=3)
    assert len(items) == 3
    for item in items:
        assert item["clean"].shape == item["noisy"].shape == item["reconstruction"].shape == (1, 28, 28)
        assert 0 <= item["noisy"].min() and item["noisy"].max() <= 1
        assert 0 <= item["reconstruction"].min() and item["reconstruction"].max() <= 1


def test_change_since_initialisation() -> None:
    from fa_core.training import TrainConfig, train

    config = TrainConfig(model="lc_cnn", rule="fa", epochs=1, batch_size=32, device="cpu", probe_size=16, seed=5)
    trained = None
    for event in train(config, dataset=synthetic_dataset("mnist", n_train=64, n_test=32)):
        if event.kind == "ended":
            trained = event.model
    start = initial_model(config.to_dict())
    _, layer = first_layer(trained)
    _, layer0 = first_layer(start)
    delta = (layer.filters() - layer0.filters()).detach()
    assert 0 < float(delta.abs().max()) < 0.1  # the seed rebuilds W0 exactly; training moved it a little
    view = first_layer_filters(trained, grid=4, minus=start)
    assert view.titles[0] == "ΔW filter 1"
    np.testing.assert_allclose(view.mosaics[1][:5, :5], delta[1, 0, :, :, 3, 3].numpy(), rtol=1e-4, atol=1e-7)
    assert view.zmax == pytest.approx(float(np.nanmax(np.abs(np.stack(view.mosaics)))))
    similarity = position_similarity(layer, minus=layer0)
    assert -1 <= similarity <= 1
    assert initial_model({"model": "mlp"}) is None  # no seed: nothing to rebuild
