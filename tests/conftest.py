"""Shared fixtures: tiny in-memory datasets so engine tests need no download, and an isolated
app environment for the AppTest suites."""

from __future__ import annotations

import sys
from pathlib import Path

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


APP_TESTS = Path(__file__).resolve().parent / "app"


@pytest.fixture
def app_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Runs and checkpoints in ``tmp_path``, the synthetic dataset loader (``tests/app/
    synthetic_loader.py``), one job at a time; the app's cached services are rebuilt for the test
    and shut down after it."""
    import streamlit as st

    if str(APP_TESTS) not in sys.path:
        sys.path.insert(0, str(APP_TESTS))
    monkeypatch.setenv("FA_LAB_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("FA_LAB_CHECKPOINTS_DIR", str(tmp_path / "user"))
    monkeypatch.setenv("FA_LAB_DATASET_LOADER", "synthetic_loader:load")
    monkeypatch.setenv("FA_LAB_MAX_JOBS", "1")
    threads = torch.get_num_threads()  # the app's job manager sets it; other tests keep theirs
    st.cache_resource.clear()
    yield tmp_path
    from app_pages.shared import job_manager

    job_manager().shutdown(wait=True)
    st.cache_resource.clear()
    torch.set_num_threads(threads)
