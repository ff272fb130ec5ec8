"""Obtain datasets through ``torchvision.datasets`` under ``<data_dir>/torchvision``.

Two sources use this module: torchvision's files already on disk (``download=False``) and
torchvision's own download from the official hosts (``download=True``). Downloads run with a
short socket timeout (:data:`SOCKET_TIMEOUT_S`) so that a machine without internet fails fast
instead of hanging.
"""

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .arrays import Arrays, labels_to_uint8
from .errors import DatasetError
from .progress import ProgressFn, report

SOCKET_TIMEOUT_S = 10.0
"""Default socket timeout while torchvision downloads (it sets none of its own)."""

_CLASS_NAMES = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST", "cifar10": "CIFAR10"}
_timeout_lock = threading.Lock()


def torchvision_dir(data_dir: Path) -> Path:
    """The ``root`` folder handed to torchvision."""
    return data_dir / "torchvision"


@contextmanager
def _socket_timeout(seconds: float) -> Iterator[None]:
    """Set the process-wide default socket timeout, restoring the previous value afterwards.

    torchvision opens its connections without a timeout, so the default is the only handle on
    it. Sockets created by other threads meanwhile get the same timeout; the lock keeps
    concurrent downloads from restoring each other's values out of order.
    """
    with _timeout_lock:
        previous = socket.getdefaulttimeout()
        socket.setdefaulttimeout(seconds)
        try:
            yield
        finally:
            socket.setdefaulttimeout(previous)


def from_torchvision(
    name: str, data_dir: Path, progress: ProgressFn | None, *, download: bool
) -> Arrays:
    """Build the arrays of ``name`` from torchvision's dataset classes.

    Args:
        download: let torchvision download missing files from the official hosts.

    Raises:
        DatasetError: the files are absent (``download=False``), the download failed, or
            torchvision rejected the files.
    """
    from torchvision import datasets  # deferred: importing torchvision takes about a second

    dataset_class = getattr(datasets, _CLASS_NAMES[name])
    root = torchvision_dir(data_dir)
    stage = f"{'Downloading' if download else 'Reading'} {name} with torchvision"
    report(progress, stage, 0, 2)
    splits = []
    try:
        with _socket_timeout(SOCKET_TIMEOUT_S):
            for done, train in enumerate((True, False), start=1):
                dataset = dataset_class(root, train=train, download=download)
                splits.append((_images(np.asarray(dataset.data)), np.asarray(dataset.targets)))
                report(progress, stage, done, 2)
    except (RuntimeError, OSError) as err:  # torchvision's "not found"/"corrupted", network errors
        action = "download failed" if download else f"no usable files in {root}"
        raise DatasetError(f"torchvision {action}: {err}".rstrip() + ".") from err
    (train_x, train_y), (test_x, test_y) = splits
    return Arrays(train_x, labels_to_uint8(train_y, 10), test_x, labels_to_uint8(test_y, 10))


def _images(data: np.ndarray) -> np.ndarray:
    """torchvision image arrays, ``(N, H, W)`` or ``(N, H, W, C)``, as uint8 ``(N, C, H, W)``."""
    if data.dtype != np.uint8 or data.ndim not in (3, 4):
        raise DatasetError(f"torchvision returned {data.dtype}{list(data.shape)} images.")
    if data.ndim == 3:
        return data[:, None]
    return np.ascontiguousarray(data.transpose(0, 3, 1, 2))
