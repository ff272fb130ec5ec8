"""A dataset loader for app tests: FA_LAB_DATASET_LOADER=synthetic_loader:load.

Builds a tiny learnable dataset of the real image shape (like tests/conftest.py's
``synthetic_dataset``), so the app trains in well under a second without the download.
"""

from __future__ import annotations

import torch

from fa_core.data import DATASETS, InMemoryDataset

_CACHE: dict[str, InMemoryDataset] = {}


def load(name: str, device: object = "cpu", progress: object = None, n_train: int = 256, n_test: int = 128) -> InMemoryDataset:
    if name not in _CACHE:
        info = DATASETS[name]
        gen = torch.Generator().manual_seed(0)
        c, h, w = info.shape

        def split(n: int) -> tuple[torch.Tensor, torch.Tensor]:
            labels = torch.randint(0, 10, (n,), generator=gen)
            images = torch.randint(0, 60, (n, c, h, w), generator=gen).to(torch.uint8)
            band = h // 10
            for k in range(10):
                images[labels == k, :, k * band : (k + 1) * band, :] = 220
            return images, labels

        train_x, train_y = split(n_train)
        test_x, test_y = split(n_test)
        _CACHE[name] = InMemoryDataset(info=info, train_x=train_x, train_y=train_y, test_x=test_x, test_y=test_y)
    return _CACHE[name]
