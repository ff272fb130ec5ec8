"""Parsers for the two binary container formats the mirrors use: IDX arrays and ``ar`` archives.

* IDX (the MNIST file format): two zero bytes, a type code, the number of dimensions, one
  big-endian uint32 per dimension, then the data in big-endian C order.
* ``ar`` (the outer layer of a Debian ``.deb``): the magic ``!<arch>\\n``, then per member a
  60-byte ASCII header (name 16, mtime 12, uid 6, gid 6, mode 8, size 10, ``\\x60\\n``) followed
  by the data, padded to an even offset.
"""

import io
import math
import struct
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, Literal

import numpy as np

from .errors import DatasetError

_IDX_DTYPES: dict[int, np.dtype[Any]] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

_AR_MAGIC = b"!<arch>\n"
_AR_HEADER = struct.Struct("16s12s6s6s8s10s2s")
_AR_END = b"`\n"

# Compression of the data member of a .deb, by member name, as a tarfile mode.
_DEB_DATA_MODES: dict[str, Literal["r:", "r:gz", "r:xz", "r:bz2"]] = {
    "data.tar": "r:",
    "data.tar.gz": "r:gz",
    "data.tar.xz": "r:xz",
    "data.tar.bz2": "r:bz2",
}


def parse_idx(data: bytes) -> np.ndarray:
    """Decode an IDX file (already decompressed) into a native-endian numpy array.

    Raises:
        DatasetError: bad magic, unknown type code, or a length that does not match the header.
    """
    if len(data) < 4 or data[:2] != b"\x00\x00":
        raise DatasetError("Not an IDX file: it does not start with two zero bytes.")
    type_code, ndim = data[2], data[3]
    dtype = _IDX_DTYPES.get(type_code)
    if dtype is None:
        raise DatasetError(f"IDX file has unknown element type 0x{type_code:02x}.")
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise DatasetError("IDX file is truncated inside its header.")
    shape = struct.unpack(f">{ndim}I", data[4:header_size])
    expected = header_size + math.prod(shape) * dtype.itemsize
    if len(data) != expected:
        raise DatasetError(
            f"IDX file of shape {shape} should be {expected} bytes long, but is {len(data)}."
        )
    array = np.frombuffer(data, dtype=dtype, offset=header_size).reshape(shape)
    return array.astype(dtype.newbyteorder("="))


def iter_ar_members(file: BinaryIO) -> Iterator[tuple[str, bytes]]:
    """Yield ``(name, data)`` for each member of the ``ar`` archive ``file``, in order.

    Raises:
        DatasetError: the file is not an ``ar`` archive or is truncated.
    """
    if file.read(len(_AR_MAGIC)) != _AR_MAGIC:
        raise DatasetError("Not an ar archive (bad magic); the .deb file is damaged.")
    while header := file.read(_AR_HEADER.size):
        if len(header) != _AR_HEADER.size:
            raise DatasetError("ar archive is truncated inside a member header.")
        raw_name, _mtime, _uid, _gid, _mode, raw_size, end = _AR_HEADER.unpack(header)
        if end != _AR_END:
            raise DatasetError("ar member header is malformed (bad terminator).")
        try:
            size = int(raw_size.decode("ascii"))
        except ValueError as err:
            raise DatasetError(f"ar member header has a bad size field {raw_size!r}.") from err
        # GNU ar ends names with "/", BSD/Debian pads them with spaces.
        name = raw_name.decode("ascii", errors="replace").rstrip(" ").removesuffix("/")
        data = file.read(size)
        if len(data) != size:
            raise DatasetError(f"ar member {name!r} is truncated.")
        if size % 2:
            file.read(1)
        yield name, data


def open_deb_data(path: Path) -> tarfile.TarFile:
    """Open the ``data.tar*`` member of the Debian package at ``path`` as a tar archive.

    Raises:
        DatasetError: the package has no data member or uses an unsupported compression.
    """
    with path.open("rb") as f:
        for name, data in iter_ar_members(f):
            if name.startswith("data.tar"):
                mode = _DEB_DATA_MODES.get(name)
                if mode is None:
                    supported = ", ".join(_DEB_DATA_MODES)
                    raise DatasetError(
                        f"{path.name} stores its files as {name}; only {supported} are supported."
                    )
                try:
                    return tarfile.open(fileobj=io.BytesIO(data), mode=mode)
                except (tarfile.TarError, EOFError, OSError) as err:
                    raise DatasetError(f"{name} inside {path.name} is unreadable: {err}.") from err
    raise DatasetError(f"{path.name} has no data.tar member; it is not a valid .deb package.")
