"""Loading a dataset into memory on the training device, once per process.

Loaded datasets are kept in an in-process cache keyed by ``(name, device, data_dir)``. Each key
has its own lock, so several training threads asking for the same dataset share one load, while
different datasets load in parallel.
"""

import threading
from dataclasses import dataclass
from pathlib import Path

import torch

from .errors import DatasetError
from .fetch import load_verified_arrays, resolve_data_dir
from .progress import ProgressFn, report
from .registry import DatasetInfo, get_info


@dataclass
class InMemoryDataset:
    """A whole dataset as tensors on one device.

    Attributes:
        info: the dataset's description.
        train_x: uint8 ``(N, C, H, W)``.
        train_y: int64 ``(N,)``.
        test_x: uint8 ``(M, C, H, W)``.
        test_y: int64 ``(M,)``.
    """

    info: DatasetInfo
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor


_Key = tuple[str, str, Path]
_memory_guard = threading.Lock()
_memory: dict[_Key, InMemoryDataset] = {}
_key_locks: dict[_Key, threading.Lock] = {}


def _normalise_device(device: str | torch.device) -> torch.device:
    """``device`` checked, with an explicit index for CUDA so ``"cuda"`` and ``"cuda:0"`` match."""
    try:
        device = torch.device(device)
    except RuntimeError as err:  # torch's error for an unknown device string
        raise DatasetError(
            f"{device!r} is not a valid torch device, e.g. 'cpu' or 'cuda:0'."
        ) from err
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DatasetError(
                f"Device {str(device)!r} was requested but CUDA is not available "
                "(no GPU, or a CPU-only torch build); use 'cpu'."
            )
        if device.index is None:
            return torch.device("cuda", torch.cuda.current_device())
    return device


def load_dataset(
    name: str,
    device: str | torch.device = "cpu",
    data_dir: Path | None = None,
    progress: ProgressFn | None = None,
) -> InMemoryDataset:
    """Return dataset ``name`` in memory on ``device``, fetching it on first use.

    The on-disk cache is verified (shapes, per-class counts, SHA-256) every time it is read; a
    missing or corrupt cache is rebuilt once. Repeated calls with the same arguments return the
    same object. Thread-safe.

    Raises:
        DatasetError: unknown name, invalid or unavailable device, not enough device memory,
            or the data could not be obtained and verified.
    """
    info = get_info(name)
    torch_device = _normalise_device(device)
    root = resolve_data_dir(data_dir)
    key = (name, str(torch_device), root)
    with _memory_guard:
        key_lock = _key_locks.setdefault(key, threading.Lock())
    with key_lock:
        loaded = _memory.get(key)
        if loaded is not None:
            return loaded
        arrays = load_verified_arrays(name, root, progress)
        stage = f"Moving {name} to {torch_device}"
        report(progress, stage, 0, 1)
        try:
            loaded = InMemoryDataset(
                info=info,
                train_x=torch.from_numpy(arrays.train_x).to(torch_device),
                train_y=torch.from_numpy(arrays.train_y).to(torch_device, torch.int64),
                test_x=torch.from_numpy(arrays.test_x).to(torch_device),
                test_y=torch.from_numpy(arrays.test_y).to(torch_device, torch.int64),
            )
        except torch.OutOfMemoryError as err:
            raise DatasetError(
                f"Not enough memory on {torch_device} for {name}; free memory (stop other "
                "training runs) or load it on 'cpu'."
            ) from err
        report(progress, stage, 1, 1)
        with _memory_guard:
            _memory[key] = loaded
        return loaded


def clear_memory_cache() -> None:
    """Forget every loaded dataset (their tensors are freed once no one else holds them)."""
    with _memory_guard:
        _memory.clear()
