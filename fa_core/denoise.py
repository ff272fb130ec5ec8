"""Denoising in the Playground: noisy digits, reconstructions and test BCE against noise sigma.

Everything uses the paper's noise (:func:`fa_core.training.add_noise`: + N(0, sigma^2) on the
0..255 scale, divided by 255, no clipping) and its loss (per-pixel BCE of the reconstruction
logits against the clean image, :func:`fa_core.training.model_loss`). Noise draws come from a
seeded generator, so a (sigma, seed) pair always gives the same noisy images. Nothing here
imports Streamlit; the pages cache these functions' results.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .models import Network
from .training import add_noise, evaluate, model_loss, to_float

SIGMA_MAX = 255
SIGMA_GRID: tuple[int, ...] = tuple(range(0, SIGMA_MAX + 1, 15))
"""The sigmas of a BCE-against-sigma curve: 0, 15, ..., 255 (includes the paper's 0 and 255)."""
FINE_SIGMA_GRID: tuple[int, ...] = tuple(range(0, SIGMA_MAX + 1, 5))
"""The finer grid of the shipped denoisers' stored curves (the page's slider steps by 5)."""

PAPER_TABLE3: dict[str, dict[int, float]] = {
    "bp": {0: 0.0816, 100: 0.105, 255: 0.157},
    "fa": {0: 0.0880, 100: 0.112, 255: 0.164},
}
"""Konishi & Miura, Table 3: test BCE of the MNIST denoising autoencoder at sigma 0, 100, 255."""


def noisy_images(clean: torch.Tensor, sigma: float, seed: int) -> torch.Tensor:
    """``clean`` (floats in [0, 1]) with the paper's noise at ``sigma``, drawn from ``seed``."""
    generator = torch.Generator(device=clean.device).manual_seed(int(seed))
    return add_noise(clean, float(sigma), generator)


@dataclass
class Reconstruction:
    """Clean, noisy and reconstructed images (N, 1, 28, 28), and each image's BCE."""

    clean: torch.Tensor
    noisy: torch.Tensor
    reconstructed: torch.Tensor
    bce: torch.Tensor


@torch.no_grad()
def reconstruct(model: Network, clean: torch.Tensor, noisy: torch.Tensor) -> Reconstruction:
    """Run the denoiser on ``noisy``; BCE of each reconstruction against ``clean`` (mean per pixel)."""
    if model.task != "denoise":
        raise ValueError(f"{model.model_name} is a {model.task} model, not a denoiser")
    was_training = model.training
    model.eval()
    logits = model(noisy)
    model.train(was_training)
    bce = _per_image_bce(logits, clean)
    return Reconstruction(clean=clean, noisy=noisy, reconstructed=torch.sigmoid(logits), bce=bce)


def _per_image_bce(logits: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
    """Per-image mean of :func:`model_loss`'s per-pixel BCE (its ``"mean"`` averages these)."""
    return torch.nn.functional.binary_cross_entropy_with_logits(logits, clean, reduction="none").flatten(1).mean(1)


def mean_bce(model: Network, images: torch.Tensor, sigma: float, noise_seed: int = 0) -> float:
    """Mean per-pixel test BCE of a denoiser on uint8 ``images`` at ``sigma`` (the stated metric)."""
    dummy = torch.zeros(len(images), dtype=torch.long)
    return evaluate(model, images, dummy, float(sigma), int(noise_seed))["bce"]


def bce_curve(
    model: Network,
    images: torch.Tensor,
    sigmas: Sequence[float] = SIGMA_GRID,
    noise_seed: int = 0,
) -> list[float]:
    """Mean test BCE at each of ``sigmas`` (uint8 ``images``, one fixed noise draw per sigma)."""
    return [mean_bce(model, images, s, noise_seed) for s in sigmas]


def curve_value(sigmas: Sequence[float], values: Sequence[float], sigma: float) -> float:
    """A curve's value at ``sigma``: exact on a grid point, else linearly interpolated."""
    return float(np.interp(float(sigma), np.asarray(sigmas, dtype=float), np.asarray(values, dtype=float)))


def sample_indices(labels: torch.Tensor, count: int, classes: Sequence[int] | None, seed: int) -> list[int]:
    """``count`` test-set indices drawn with ``seed`` from the given ``classes`` (all if empty).

    With classes chosen, they take turns (0, 3, 0, 3, ...) so every chosen class shows up.
    """
    gen = np.random.default_rng(int(seed))
    labels_np = labels.cpu().numpy()
    wanted = sorted({int(c) for c in classes}) if classes else list(range(10))
    pools = {c: gen.permutation(np.flatnonzero(labels_np == c)).tolist() for c in wanted}
    pools = {c: p for c, p in pools.items() if p}
    if not pools:
        return []
    if not classes:
        return gen.permutation(len(labels_np))[:count].tolist()
    out: list[int] = []
    order = list(pools)
    while len(out) < count and any(pools.values()):
        for c in order:
            if pools[c] and len(out) < count:
                out.append(pools[c].pop())
    return out


def to_float_images(images_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 1, 28, 28) to floats in [0, 1]."""
    return to_float(images_uint8.clone())
