import socket
from pathlib import Path

import numpy as np
import pytest

from fa_core.data import DatasetError
from fa_core.data.arrays import Arrays
from fa_core.data.torchvision_source import _socket_timeout, from_torchvision, torchvision_dir

from .helpers import make_idx, random_images


def test_reads_torchvision_files_already_on_disk(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    arrays = Arrays(
        train_x=random_images(rng, 4, (1, 28, 28)),
        train_y=np.array([1, 2, 3, 4], dtype=np.uint8),
        test_x=random_images(rng, 2, (1, 28, 28)),
        test_y=np.array([5, 6], dtype=np.uint8),
    )
    raw = torchvision_dir(tmp_path) / "MNIST" / "raw"
    raw.mkdir(parents=True)
    (raw / "train-images-idx3-ubyte").write_bytes(make_idx(arrays.train_x[:, 0]))
    (raw / "train-labels-idx1-ubyte").write_bytes(make_idx(arrays.train_y))
    (raw / "t10k-images-idx3-ubyte").write_bytes(make_idx(arrays.test_x[:, 0]))
    (raw / "t10k-labels-idx1-ubyte").write_bytes(make_idx(arrays.test_y))
    converted = from_torchvision("mnist", tmp_path, None, download=False)
    for got, want in zip(converted, arrays, strict=True):
        assert got.dtype == np.uint8
        np.testing.assert_array_equal(got, want)


def test_absent_files_are_a_dataset_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no usable files in .*torchvision"):
        from_torchvision("cifar10", tmp_path, None, download=False)


def test_socket_timeout_is_restored() -> None:
    before = socket.getdefaulttimeout()
    with _socket_timeout(3.0):
        assert socket.getdefaulttimeout() == 3.0
    assert socket.getdefaulttimeout() == before
