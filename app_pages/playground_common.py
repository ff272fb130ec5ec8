"""What the Playground pages (Draw, Denoise) share: cached models, test digits and model lists.

Not a page. Models are cached per file (path, size and modification time, so a rebuilt or
overwritten checkpoint is reloaded); the lists of available models are re-read at most every
few seconds, so a model trained in the Train page shows up without a restart.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st
import torch

from fa_core.checkpoints import CheckpointError, load_checkpoint
from fa_core.models import Network
from fa_core.shipped import ModelEntry, available_models, test_digits

DIGIT_KEY = "playground_digit"
"""Session key of the user's latest drawing as the models see it (28x28 floats), for Denoise."""


def file_stamp(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns


@st.cache_resource(show_spinner=False, max_entries=64)
def load_model_file(path: str, stamp: tuple[int, int]) -> Network:
    """The checkpoint at ``path`` (``stamp``: size and mtime, part of the cache key)."""
    model, _ = load_checkpoint(path)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def load_model(entry: ModelEntry) -> Network | None:
    """The model of ``entry`` (cached), or ``None`` with an ``st.warning`` when it cannot be read."""
    try:
        return load_model_file(str(entry.path), file_stamp(entry.path))
    except (CheckpointError, OSError) as err:
        st.warning(f"{entry.label}: could not load {entry.path.name}: {err}")
        return None


@st.cache_data(show_spinner=False, ttl=5)
def models_for(task: str) -> list[ModelEntry]:
    """Shipped and user models for ``task`` (re-read at most every 5 s)."""
    return available_models(task)


@st.cache_resource(show_spinner="Loading MNIST test digits…")
def digits() -> tuple[torch.Tensor, torch.Tensor, str]:
    """MNIST test digits: the whole cached test set, else the sample shipped with the checkpoints."""
    return test_digits()
