"""Alignment angles."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from fa_core import alignment_angles, angle_degrees, build_model, signal_alignment_angles


def test_angle_of_w_with_itself_is_0_and_with_minus_w_is_180():
    w = torch.randn(20, 30)
    assert angle_degrees(w, w) == pytest.approx(0.0, abs=1e-5)
    assert angle_degrees(w, -w) == pytest.approx(180.0, abs=1e-5)
    assert angle_degrees(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 2.0])) == pytest.approx(90.0)
    assert math.isnan(angle_degrees(w, torch.zeros_like(w)))


def test_alignment_angles_marks_first_layer_and_is_empty_under_bp():
    model = build_model("mlp", "mnist", "fa", seed=0)
    angles = alignment_angles(model)
    assert set(angles) == {"fc1 (B unused)", "fc2"}
    assert 80 < angles["fc2"] < 100  # random B is near-orthogonal to random W
    assert alignment_angles(build_model("mlp", "mnist", "bp")) == {}
    with torch.no_grad():
        model.fc2.weight.copy_(model.fc2.feedback)
    assert alignment_angles(model)["fc2"] == pytest.approx(0.0, abs=1e-3)


def test_signal_angles_are_zero_under_bp_and_positive_under_fa():
    x = torch.rand(16, 1, 28, 28)
    y = torch.randint(0, 10, (16,))
    bp = build_model("lc_cnn", "mnist", "bp", seed=0)
    fa = build_model("lc_cnn", "mnist", "fa", seed=0)
    bp_angles = signal_alignment_angles(bp, x, y, F.cross_entropy)
    fa_angles = signal_alignment_angles(fa, x, y, F.cross_entropy)
    assert list(fa_angles) == ["lc1", "lc2", "fc3"]
    assert all(v == pytest.approx(0.0, abs=1e-3) for v in bp_angles.values())
    assert all(v > 30 for v in fa_angles.values())
    assert all(p.grad is None for p in fa.parameters())


def test_signal_angle_equals_independent_computation():
    torch.manual_seed(0)
    model = build_model("mlp", "mnist", "fa", seed=1)
    x, y = torch.rand(8, 1, 28, 28), torch.randint(0, 10, (8,))
    h = model.fc1(model.flatten(x))
    delta_out = torch.autograd.grad(F.cross_entropy(model.fc2(torch.relu(h)), y), h, retain_graph=False)
    logits = model.fc2(torch.relu(h.detach()))
    e = torch.softmax(logits, 1) - F.one_hot(y, 10)
    e = e / len(y)
    fa_delta = (e @ model.fc2.feedback) * (h > 0)
    bp_delta = (e @ model.fc2.weight.detach()) * (h > 0)
    assert angle_degrees(delta_out[0], fa_delta) == pytest.approx(0.0, abs=1e-3)
    assert signal_alignment_angles(model, x, y, F.cross_entropy)["fc1"] == pytest.approx(angle_degrees(fa_delta, bp_delta), abs=1e-3)
