"""Denoising helpers: seeded noise, per-image BCE, BCE-against-sigma curves, digit sampling."""

from __future__ import annotations

import pytest
import torch

from fa_core.denoise import (
    FINE_SIGMA_GRID,
    PAPER_TABLE3,
    SIGMA_GRID,
    bce_curve,
    curve_value,
    mean_bce,
    noisy_images,
    reconstruct,
    sample_indices,
)
from fa_core.models import build_model
from fa_core.training import evaluate, model_loss, to_float


@pytest.fixture
def dae():
    return build_model("dae", "mnist", "fa", seed=0).eval()


def test_noise_is_the_papers_and_seeded() -> None:
    clean = torch.rand(4, 1, 28, 28)
    assert torch.equal(noisy_images(clean, 0, 1), clean)
    a, b, c = noisy_images(clean, 100, 7), noisy_images(clean, 100, 7), noisy_images(clean, 100, 8)
    assert torch.equal(a, b) and not torch.equal(a, c)
    noise = noisy_images(torch.zeros(64, 1, 28, 28), 255, 0)
    assert abs(float(noise.std()) - 1.0) < 0.02  # sigma 255 on the 0..255 scale = std 1 after /255
    assert float(noise.min()) < 0 and float(noise.max()) > 1  # not clipped


def test_reconstruct_bce_matches_the_training_loss(dae, tiny_mnist) -> None:
    clean = to_float(tiny_mnist.test_x[:16].clone())
    noisy = noisy_images(clean, 100, 0)
    rec = reconstruct(dae, clean, noisy)
    assert rec.reconstructed.shape == clean.shape
    assert float(rec.reconstructed.min()) >= 0 and float(rec.reconstructed.max()) <= 1
    with torch.no_grad():
        expected = model_loss("denoise", dae(noisy), clean)
    assert float(rec.bce.mean()) == pytest.approx(float(expected), rel=1e-5)


def test_reconstruct_refuses_classifiers() -> None:
    with pytest.raises(ValueError, match="not a denoiser"):
        x = torch.zeros(1, 1, 28, 28)
        reconstruct(build_model("mlp", "mnist", "bp", seed=0), x, x)


def test_mean_bce_and_curve_agree_with_evaluate(dae, tiny_mnist) -> None:
    images = tiny_mnist.test_x[:64]
    labels = tiny_mnist.test_y[:64]
    assert mean_bce(dae, images, 100, 3) == pytest.approx(evaluate(dae, images, labels, 100, 3)["bce"])
    curve = bce_curve(dae, images, (0, 100, 255), noise_seed=3)
    assert curve[1] == pytest.approx(mean_bce(dae, images, 100, 3))
    assert len(curve) == 3


def test_grids() -> None:
    assert SIGMA_GRID[0] == 0 and SIGMA_GRID[-1] == 255
    assert set((0, 100, 255)) <= set(FINE_SIGMA_GRID)
    assert set(PAPER_TABLE3) == {"bp", "fa"} and PAPER_TABLE3["bp"][255] == 0.157


def test_curve_value_interpolates() -> None:
    assert curve_value([0, 10, 20], [1.0, 2.0, 4.0], 10) == 2.0
    assert curve_value([0, 10, 20], [1.0, 2.0, 4.0], 15) == 3.0


def test_sample_indices() -> None:
    labels = torch.arange(100) % 10
    all_classes = sample_indices(labels, 8, [], seed=0)
    assert len(all_classes) == 8 and len(set(all_classes)) == 8
    assert sample_indices(labels, 8, [], seed=0) == all_classes
    assert sample_indices(labels, 8, [], seed=1) != all_classes
    threes_and_sevens = sample_indices(labels, 6, [3, 7], seed=0)
    assert [int(labels[i]) for i in threes_and_sevens] == [3, 7, 3, 7, 3, 7]
    assert len(sample_indices(labels, 50, [5], seed=0)) == 10  # only ten fives exist
