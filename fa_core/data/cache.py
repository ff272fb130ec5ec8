"""The on-disk cache: ``<data_dir>/<name>/{train_x,train_y,test_x,test_y}.npy``.

Each file is written atomically (temporary file in the same folder, then ``os.replace``), so a
crash never leaves a half-written ``.npy`` under its final name. Files are read with
``allow_pickle=False`` and checked against the pinned values of :mod:`fa_core.data.registry`.
"""

import math
from pathlib import Path
from typing import Literal

import numpy as np

from .arrays import Arrays, VerificationError, expected_shapes, verify_arrays
from .atomic import atomic_write
from .errors import DatasetError

Status = Literal["ready", "missing", "corrupt"]


class CacheError(DatasetError):
    """The cache of a dataset is missing, unreadable or does not verify."""


def cache_dir(data_dir: Path, name: str) -> Path:
    """Folder holding the cached arrays of ``name``."""
    return data_dir / name


def _array_path(folder: Path, field: str) -> Path:
    return folder / f"{field}.npy"


def write_cache(folder: Path, arrays: Arrays) -> None:
    """Write the four arrays of ``arrays`` into ``folder``, each atomically."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for field, array in zip(Arrays._fields, arrays, strict=True):
            _write_array(_array_path(folder, field), array)
    except OSError as err:
        raise DatasetError(
            f"Could not write the dataset cache in {folder}: {err}. "
            "Check that the folder is writable and the disk has free space, "
            "or point FA_LAB_DATA_DIR somewhere else."
        ) from err


def _write_array(path: Path, array: np.ndarray) -> None:
    with atomic_write(path) as file:
        np.save(file, np.ascontiguousarray(array), allow_pickle=False)


def read_cache(folder: Path) -> Arrays:
    """Load the four arrays from ``folder`` (no verification).

    Raises:
        CacheError: a file is missing or is not a valid ``.npy`` file.
    """
    loaded = []
    for field in Arrays._fields:
        path = _array_path(folder, field)
        try:
            loaded.append(np.load(path, allow_pickle=False))
        except FileNotFoundError as err:
            raise CacheError(f"Cache file {path} is missing.") from err
        except (OSError, ValueError, EOFError) as err:
            raise CacheError(f"Cache file {path} is unreadable: {err}.") from err
    return Arrays(*loaded)


def read_verified(folder: Path, name: str) -> Arrays:
    """Load the cache of ``name`` from ``folder`` and check it against the pinned values.

    Raises:
        CacheError: the cache is missing, unreadable or does not verify.
    """
    arrays = read_cache(folder)
    try:
        verify_arrays(name, arrays)
    except VerificationError as err:
        raise CacheError(f"Cache in {folder} is corrupt: {err}") from err
    return arrays


def cache_status(folder: Path, name: str) -> Status:
    """Quick check of the cache of ``name``: file presence, ``.npy`` headers and sizes.

    Returns ``"missing"`` if any of the four files is absent, ``"corrupt"`` if one has the wrong
    header, dtype, shape or length, else ``"ready"``. Contents are not hashed; use
    :func:`read_verified` for the full check.
    """
    shapes = expected_shapes(name)
    paths = {field: _array_path(folder, field) for field in shapes}
    if not all(path.is_file() for path in paths.values()):
        return "missing"
    for field, path in paths.items():
        if not _npy_matches(path, shapes[field]):
            return "corrupt"
    return "ready"


def _npy_matches(path: Path, shape: tuple[int, ...]) -> bool:
    """Whether ``path`` has a uint8 C-order ``.npy`` header of ``shape`` and the matching size."""
    try:
        with path.open("rb") as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                header = np.lib.format.read_array_header_1_0(f)
            elif version == (2, 0):
                header = np.lib.format.read_array_header_2_0(f)
            else:
                return False
            data_offset = f.tell()
        size = path.stat().st_size
    except (OSError, ValueError):  # unreadable or not a valid .npy header: corrupt
        return False
    found_shape, fortran_order, dtype = header
    return (
        tuple(found_shape) == shape
        and not fortran_order
        and dtype == np.uint8
        and size == data_offset + math.prod(shape)
    )
