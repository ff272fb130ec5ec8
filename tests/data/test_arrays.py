import numpy as np
import pytest

from fa_core.data import DatasetError
from fa_core.data.arrays import (
    Arrays,
    VerificationError,
    array_digest,
    labels_to_uint8,
    verify_arrays,
)

from .helpers import random_images, use_tiny_registry


def tiny(seed: int = 0) -> Arrays:
    rng = np.random.default_rng(seed)
    return Arrays(
        train_x=random_images(rng, 4, (1, 28, 28)),
        train_y=np.array([0, 1, 2, 2], dtype=np.uint8),
        test_x=random_images(rng, 2, (1, 28, 28)),
        test_y=np.array([9, 0], dtype=np.uint8),
    )


def test_digest_covers_every_array() -> None:
    arrays = tiny()
    digest = array_digest(arrays)
    assert digest == array_digest(tiny())
    changed = arrays.test_y.copy()
    changed[0] = 8
    assert array_digest(arrays._replace(test_y=changed)) != digest


def test_verify_accepts_the_expected_arrays(monkeypatch: pytest.MonkeyPatch) -> None:
    arrays = tiny()
    use_tiny_registry(monkeypatch, "mnist", arrays)
    verify_arrays("mnist", arrays)


def test_verify_reports_shape_dtype_counts_and_digest(monkeypatch: pytest.MonkeyPatch) -> None:
    arrays = tiny()
    use_tiny_registry(monkeypatch, "mnist", arrays)
    with pytest.raises(VerificationError, match=r"train_x is uint8\[3, 1, 28, 28\]"):
        verify_arrays("mnist", arrays._replace(train_x=arrays.train_x[:3]))
    with pytest.raises(VerificationError, match="test_x is int16"):
        verify_arrays("mnist", arrays._replace(test_x=arrays.test_x.astype(np.int16)))
    with pytest.raises(VerificationError, match="train_y per-class counts"):
        verify_arrays("mnist", arrays._replace(train_y=np.array([0, 1, 2, 3], dtype=np.uint8)))
    with pytest.raises(VerificationError, match="outside"):
        verify_arrays("mnist", arrays._replace(test_y=np.array([9, 10], dtype=np.uint8)))
    with pytest.raises(VerificationError, match="SHA-256"):
        verify_arrays("mnist", arrays._replace(train_x=tiny(seed=1).train_x))


def test_labels_to_uint8_checks_range_and_type() -> None:
    assert labels_to_uint8(np.array([0, 9], dtype=np.int64), 10).dtype == np.uint8
    with pytest.raises(DatasetError, match="range"):
        labels_to_uint8(np.array([0, 10]), 10)
    with pytest.raises(DatasetError, match="integer"):
        labels_to_uint8(np.array([0.5]), 10)
