from pathlib import Path

import numpy as np
import pytest

from fa_core.data.arrays import Arrays
from fa_core.data.cache import CacheError, cache_status, read_cache, read_verified, write_cache

from .helpers import random_images, use_tiny_registry


@pytest.fixture
def arrays(monkeypatch: pytest.MonkeyPatch) -> Arrays:
    rng = np.random.default_rng(0)
    arrays = Arrays(
        train_x=random_images(rng, 3, (1, 28, 28)),
        train_y=np.array([1, 2, 3], dtype=np.uint8),
        test_x=random_images(rng, 2, (1, 28, 28)),
        test_y=np.array([4, 4], dtype=np.uint8),
    )
    use_tiny_registry(monkeypatch, "mnist", arrays)
    return arrays


def flip_last_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


def test_round_trip_leaves_only_the_four_files(tmp_path: Path, arrays: Arrays) -> None:
    write_cache(tmp_path / "mnist", arrays)
    assert sorted(p.name for p in (tmp_path / "mnist").iterdir()) == [
        "test_x.npy", "test_y.npy", "train_x.npy", "train_y.npy",
    ]  # fmt: skip
    loaded = read_verified(tmp_path / "mnist", "mnist")
    for got, want in zip(loaded, arrays, strict=True):
        np.testing.assert_array_equal(got, want)


def test_status_missing_ready_corrupt(tmp_path: Path, arrays: Arrays) -> None:
    folder = tmp_path / "mnist"
    assert cache_status(folder, "mnist") == "missing"
    write_cache(folder, arrays)
    assert cache_status(folder, "mnist") == "ready"
    (folder / "test_y.npy").unlink()
    assert cache_status(folder, "mnist") == "missing"
    write_cache(folder, arrays._replace(test_y=np.array([4, 4, 4], dtype=np.uint8)))
    assert cache_status(folder, "mnist") == "corrupt"  # wrong shape in the header
    write_cache(folder, arrays)
    with (folder / "train_x.npy").open("ab") as f:
        f.write(b"\0")
    assert cache_status(folder, "mnist") == "corrupt"  # wrong size
    (folder / "train_x.npy").write_bytes(b"garbage")
    assert cache_status(folder, "mnist") == "corrupt"  # not a .npy file


def test_flipped_byte_passes_status_but_fails_verification(tmp_path: Path, arrays: Arrays) -> None:
    folder = tmp_path / "mnist"
    write_cache(folder, arrays)
    flip_last_byte(folder / "train_x.npy")
    assert cache_status(folder, "mnist") == "ready"  # the quick check does not hash
    with pytest.raises(CacheError, match="corrupt.*SHA-256"):
        read_verified(folder, "mnist")


def test_unreadable_and_missing_files_raise_cache_error(tmp_path: Path, arrays: Arrays) -> None:
    folder = tmp_path / "mnist"
    with pytest.raises(CacheError, match="missing"):
        read_cache(folder)
    write_cache(folder, arrays)
    (folder / "test_x.npy").write_bytes(b"not numpy")
    with pytest.raises(CacheError, match="unreadable"):
        read_cache(folder)


def test_pickled_object_arrays_are_not_loaded(tmp_path: Path, arrays: Arrays) -> None:
    folder = tmp_path / "mnist"
    write_cache(folder, arrays)
    np.save(folder / "train_y.npy", np.array([object()] * 3), allow_pickle=True)
    with pytest.raises(CacheError, match="unreadable"):
        read_cache(folder)
