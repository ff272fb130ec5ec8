"""Datasets for FA Lab: MNIST, Fashion-MNIST and CIFAR-10 as verified uint8 tensors.

Data is converted once into ``<data_dir>/<name>/*.npy`` (see :mod:`.cache`), verified against
pinned SHA-256 digests and per-class counts, and loaded whole onto the training device.

Environment variables:

* ``FA_LAB_DATA_DIR``: data folder (default ``<repo root>/data``).
* ``FA_LAB_DATA_SOURCE``: ``auto`` (default), ``torchvision`` or ``mirror`` (see :mod:`.fetch`).
* ``FA_LAB_KEEP_DOWNLOADS=1``: keep the mirror archives in ``<data_dir>/downloads`` after
  conversion (by default they are deleted once the cache is written).
"""

from .errors import DatasetError
from .fetch import dataset_status, default_data_dir, fetch_dataset, verify_dataset
from .loading import InMemoryDataset, clear_memory_cache, load_dataset
from .progress import ProgressFn
from .registry import DATASETS, DatasetInfo

__all__ = [
    "DATASETS",
    "DatasetError",
    "DatasetInfo",
    "InMemoryDataset",
    "ProgressFn",
    "clear_memory_cache",
    "dataset_status",
    "default_data_dir",
    "fetch_dataset",
    "load_dataset",
    "verify_dataset",
]
