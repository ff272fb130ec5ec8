"""Shared fixtures: tiny in-memory datasets so engine tests need no download."""

from __future__ import annotations

import pytest
import torch

from fa_core.data import DATASETS, InMemoryDataset


def synthetic_dataset(name: str = "mnist", n_train: int = 512, n_test: int = 256, seed: int = 0) -> InMemoryDataset:
    """A learnable fake dataset of the real shape: each class lights up its own block of pixels."""
    info = DATASETS[name]
    gen = torch.Generator().manual_seed(seed)
    c, h, w = info.shape

    def split(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        labels = torch.randint(0, 10, (n,), generator=gen)
        images = torch.randint(0, 60, (n, c, h, w), generator=gen).to(torch.uint8)
        band = h // 10
        for k in range(10):
            rows = slice(k * band, (k + 1) * band)
            images[labels == k, :, rows, :] = 220
        return images, labels

    train_x, train_y = split(n_train)
    test_x, test_y = split(n_test)
    return InMemoryDataset(info=info, train_x=train_x, train_y=train_y, test_x=test_x, test_y=test_y)


@pytest.fixture
def tiny_mnist() -> InMemoryDataset:
    return synthetic_dataset("mnist")
