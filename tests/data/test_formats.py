import io
from pathlib import Path

import numpy as np
import pytest

from fa_core.data import DatasetError
from fa_core.data.formats import iter_ar_members, open_deb_data, parse_idx

from .helpers import make_ar, make_idx, make_tar


def test_idx_uint8_images() -> None:
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    parsed = parse_idx(make_idx(images))
    assert parsed.dtype == np.uint8
    np.testing.assert_array_equal(parsed, images)


def test_idx_big_endian_int32() -> None:
    values = np.array([1, -2, 70_000], dtype=np.int32)
    parsed = parse_idx(make_idx(values))
    assert parsed.dtype == np.dtype("=i4")
    np.testing.assert_array_equal(parsed, values)


@pytest.mark.parametrize(
    "data, message",
    [
        (b"\x01\x00\x08\x01", "two zero bytes"),
        (b"\x00\x00\x42\x01\x00\x00\x00\x01\x00", "unknown element type 0x42"),
        (b"\x00\x00\x08\x02\x00\x00\x00\x01", "truncated"),
        (make_idx(np.zeros(4, dtype=np.uint8))[:-1], "should be 12 bytes"),
    ],
)
def test_idx_rejects_malformed_files(data: bytes, message: str) -> None:
    with pytest.raises(DatasetError, match=message):
        parse_idx(data)


def test_ar_members_with_gnu_names_and_odd_sizes() -> None:
    archive = make_ar([("debian-binary", b"2.0\n"), ("odd/", b"abc"), ("last", b"xy")])
    assert list(iter_ar_members(io.BytesIO(archive))) == [
        ("debian-binary", b"2.0\n"), ("odd", b"abc"), ("last", b"xy"),
    ]  # fmt: skip


@pytest.mark.parametrize(
    "data, message",
    [
        (b"PK\x03\x04", "bad magic"),
        (make_ar([("a", b"1234")])[:-2], "truncated"),
        (make_ar([("a", b"12")])[:-4], "truncated inside a member header"),
        (make_ar([("a", b"12")]).replace(b"`\n", b"!!"), "terminator"),
    ],
)
def test_ar_rejects_damaged_archives(data: bytes, message: str) -> None:
    with pytest.raises(DatasetError, match=message):
        list(iter_ar_members(io.BytesIO(data)))


@pytest.mark.parametrize("suffix, mode", [(".xz", "w:xz"), (".gz", "w:gz"), ("", "w")])
def test_open_deb_data(tmp_path: Path, suffix: str, mode: str) -> None:
    data_tar = make_tar({"./usr/share/hello.txt": b"hello"}, mode)
    deb = tmp_path / "pkg.deb"
    deb.write_bytes(
        make_ar(
            [("debian-binary", b"2.0\n"), ("control.tar.xz", b""), (f"data.tar{suffix}", data_tar)]
        )
    )
    with open_deb_data(deb) as tar:
        assert tar.extractfile("./usr/share/hello.txt").read() == b"hello"


def test_deb_without_supported_data_member(tmp_path: Path) -> None:
    deb = tmp_path / "pkg.deb"
    deb.write_bytes(make_ar([("debian-binary", b"2.0\n"), ("data.tar.zst", b"...")]))
    with pytest.raises(DatasetError, match="data.tar.zst; only"):
        open_deb_data(deb)
    deb.write_bytes(make_ar([("debian-binary", b"2.0\n")]))
    with pytest.raises(DatasetError, match="no data.tar member"):
        open_deb_data(deb)
    deb.write_bytes(make_ar([("data.tar.xz", b"not xz")]))
    with pytest.raises(DatasetError, match="unreadable"):
        open_deb_data(deb)
