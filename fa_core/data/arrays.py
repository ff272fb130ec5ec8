"""The in-memory form of a converted dataset and its verification against the pinned values."""

import hashlib
from typing import NamedTuple

import numpy as np

from .errors import DatasetError
from .registry import get_expected, get_info


class Arrays(NamedTuple):
    """A converted dataset: images uint8 ``(N, C, H, W)``, labels uint8 ``(N,)``."""

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray


class VerificationError(DatasetError):
    """Converted arrays do not match the pinned description of the official dataset."""


def expected_shapes(name: str) -> dict[str, tuple[int, ...]]:
    """Shape of each of the four arrays of ``name``, keyed by :class:`Arrays` field name."""
    info = get_info(name)
    return {
        "train_x": (info.train_size, *info.shape),
        "train_y": (info.train_size,),
        "test_x": (info.test_size, *info.shape),
        "test_y": (info.test_size,),
    }


def array_digest(arrays: Arrays) -> str:
    """SHA-256 (hex) over the C-order bytes of the four arrays, in field order."""
    digest = hashlib.sha256()
    for array in arrays:
        digest.update(np.ascontiguousarray(array).data)
    return digest.hexdigest()


def labels_to_uint8(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Check that ``labels`` is 1-D, integer and in ``[0, num_classes)``; return it as uint8."""
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise DatasetError(
            "Labels must be a 1-D integer array, "
            f"got dtype {labels.dtype} and shape {labels.shape}."
        )
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise DatasetError(
            f"Labels must lie in [0, {num_classes}), found range [{labels.min()}, {labels.max()}]."
        )
    return labels.astype(np.uint8)


def verify_arrays(name: str, arrays: Arrays) -> None:
    """Check dtypes, shapes, per-class counts and the pinned digest of ``arrays``.

    Raises:
        VerificationError: listing every mismatch found (the digest is only checked when
            everything else matches, since it would fail anyway).
    """
    expected = get_expected(name)
    num_classes = len(get_info(name).classes)
    problems = []
    for field, shape in expected_shapes(name).items():
        array = getattr(arrays, field)
        if array.dtype != np.uint8 or array.shape != shape:
            problems.append(
                f"{field} is {array.dtype}{list(array.shape)}, expected uint8{list(shape)}"
            )
    if not problems:
        for field, counts in (("train_y", expected.train_counts), ("test_y", expected.test_counts)):
            labels = getattr(arrays, field)
            if labels.size and labels.max() >= num_classes:
                problems.append(f"{field} has label {labels.max()} outside [0, {num_classes})")
                continue
            found = tuple(int(c) for c in np.bincount(labels, minlength=num_classes))
            if found != counts:
                problems.append(f"{field} per-class counts are {found}, expected {counts}")
    if not problems:
        digest = array_digest(arrays)
        if digest != expected.sha256:
            problems.append(f"SHA-256 of the arrays is {digest}, expected {expected.sha256}")
    if problems:
        raise VerificationError(
            f"{name} data does not match the official set: " + "; ".join(problems) + "."
        )
