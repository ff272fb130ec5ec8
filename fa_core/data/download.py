"""Verified downloads: stream to a temporary file, check the pinned SHA-256, then move in place.

A downloaded file only ever appears under its final name after its digest matched, so nothing
downstream can open unverified bytes. A file already at the destination is reused when its
digest matches (which also lets users drop a manually downloaded copy there).
"""

import hashlib
import http.client
import logging
import urllib.error
import urllib.request
from pathlib import Path
from typing import BinaryIO

from .atomic import atomic_write
from .errors import DatasetError
from .progress import ProgressFn, report

DOWNLOAD_TIMEOUT_S = 10.0
"""Socket timeout (connect and each read) for mirror downloads."""

_CHUNK = 1 << 20
_log = logging.getLogger(__name__)


def sha256_file(path: Path, progress: ProgressFn | None = None) -> str:
    """SHA-256 (hex) of the file at ``path``, reporting progress in bytes."""
    digest = hashlib.sha256()
    total = path.stat().st_size
    done = 0
    stage = f"Checking {path.name}"
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
            done += len(chunk)
            report(progress, stage, done, total)
    return digest.hexdigest()


def download_verified(
    url: str,
    sha256: str,
    dest: Path,
    progress: ProgressFn | None = None,
    size_hint: int = 0,
) -> Path:
    """Make sure ``dest`` holds the file at ``url`` whose SHA-256 is ``sha256``; return ``dest``.

    Args:
        url: where to download from (any scheme ``urllib`` supports, ``file://`` included).
        sha256: pinned hex digest; a download that does not match is deleted.
        dest: final path; its folder is created if needed.
        progress: receives ``("Downloading <name>", bytes_done, bytes_total)``.
        size_hint: expected size, used as ``bytes_total`` when the server sends no length.

    Raises:
        DatasetError: the download failed or its digest did not match.
    """
    if dest.is_file():
        found = sha256_file(dest, progress)
        if found == sha256:
            return dest
        _log.warning("Discarding %s: SHA-256 %s does not match the pinned %s.", dest, found, sha256)
        dest.unlink()
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(dest) as out:
            found = _stream(url, out, dest.name, progress, size_hint)
            if found != sha256:
                raise DatasetError(
                    f"The file downloaded from {url} has SHA-256 {found}, but {sha256} is "
                    "pinned; it was deleted unopened. The mirror may have changed or the "
                    "download was altered on the way; try again later or use another source."
                )
    except OSError as err:
        raise DatasetError(f"Could not save the download of {url} to {dest}: {err}.") from err
    return dest


def _stream(url: str, out: BinaryIO, name: str, progress: ProgressFn | None, size_hint: int) -> str:
    """Copy ``url`` into the binary file ``out``; return the SHA-256 of what was copied."""
    digest = hashlib.sha256()
    stage = f"Downloading {name}"
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
            total = int(response.headers.get("Content-Length") or size_hint)
            done = 0
            report(progress, stage, done, total)
            while chunk := response.read(_CHUNK):
                digest.update(chunk)
                out.write(chunk)
                done += len(chunk)
                report(progress, stage, done, total)
    except (
        urllib.error.URLError,
        http.client.HTTPException,
        TimeoutError,
        ConnectionError,
        ValueError,
    ) as err:
        raise DatasetError(
            f"Could not download {url}: {getattr(err, 'reason', err)}. Check the network or "
            "proxy settings (HTTPS_PROXY), or download the file yourself and put it at "
            f"<data_dir>/downloads/{name}."
        ) from err
    return digest.hexdigest()
