"""Shared fixtures: an isolated environment and a tiny fake MNIST mirror reachable by file://."""

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from fa_core.data import loading, mirrors
from fa_core.data.arrays import Arrays

from .helpers import mnist_wheel, random_images, use_mirror, use_tiny_registry


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No network, no repository data folder, no state shared between tests."""
    monkeypatch.setenv("FA_LAB_DATA_SOURCE", "mirror")
    monkeypatch.setenv("FA_LAB_DATA_DIR", str(tmp_path / "default-data"))
    monkeypatch.delenv("FA_LAB_KEEP_DOWNLOADS", raising=False)
    loading.clear_memory_cache()
    yield
    loading.clear_memory_cache()


@dataclass
class FakeMnist:
    data_dir: Path
    wheel: Path
    expected: Arrays
    calls: list[Path]


@pytest.fixture
def fake_mnist(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> FakeMnist:
    """A 10 + 5 image MNIST mirror: train 6, valid 4, test 5 images with pixels k/256."""
    rng = np.random.default_rng(0)
    levels = [random_images(rng, n, (784,)) for n in (6, 4, 5)]
    labels = [
        np.array(y, dtype=np.int64) for y in ([0, 1, 2, 3, 4, 5], [6, 7, 8, 9], [9, 9, 1, 0, 3])
    ]
    payload = tuple((lv.astype(np.float32) / 256, y) for lv, y in zip(levels, labels, strict=True))
    (tmp_path / "mirror").mkdir()
    wheel = mnist_wheel(tmp_path / "mirror" / "mnist_fake-py3-none-any.whl", payload)
    expected = Arrays(
        train_x=np.concatenate(levels[:2]).reshape(-1, 1, 28, 28),
        train_y=np.concatenate(labels[:2]).astype(np.uint8),
        test_x=levels[2].reshape(-1, 1, 28, 28),
        test_y=labels[2].astype(np.uint8),
    )
    use_tiny_registry(monkeypatch, "mnist", expected)
    use_mirror(monkeypatch, "mnist", wheel)
    calls: list[Path] = []
    convert = mirrors.CONVERTERS["mnist"]

    def counting_convert(path: Path, progress: object) -> Arrays:
        calls.append(path)
        return convert(path, progress)

    monkeypatch.setitem(mirrors.CONVERTERS, "mnist", counting_convert)
    return FakeMnist(data_dir=tmp_path / "data", wheel=wheel, expected=expected, calls=calls)
