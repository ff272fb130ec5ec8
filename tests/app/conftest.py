"""Shared fixtures for the AppTest suites: an isolated app environment on tiny synthetic data."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import streamlit as st
import torch

HERE = Path(__file__).resolve().parent
APP = HERE.parents[1] / "app.py"
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))


@pytest.fixture
def app_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Runs and checkpoints in ``tmp_path``, the synthetic dataset loader, one job at a time;
    the app's cached services are rebuilt for the test and shut down after it."""
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
