"""Where uploaded files are kept while a page uses them: a private folder, never the shared temp.

Pages that need an uploaded file on disk (the Inspect page's checkpoint upload: safetensors is
read from a file) call :func:`stash_upload`. The shared system temp folder is the wrong place:
other local users can read it and plant symlinks in it, and nothing there is ever cleaned up.
The uploads folder instead is

* ``$FA_LAB_UPLOADS_DIR`` or ``$XDG_CACHE_HOME/fa-lab/uploads`` (``~/.cache/fa-lab/uploads``),
  created with mode ``0700``;
* written only through a fresh private temporary file renamed into place (a planted symlink
  under the final name is replaced, never followed);
* bounded: at most ``keep`` files (the least recently used go first), each at most
  ``max_bytes``.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

MAX_UPLOAD_FILE_BYTES = 10 * 1024 * 1024
"""Matches ``server.maxUploadSize`` in ``.streamlit/config.toml`` (10 MB)."""


class UploadError(ValueError):
    """An upload that cannot be kept; the message says why."""


def uploads_dir() -> Path:
    """``$FA_LAB_UPLOADS_DIR``, else ``$XDG_CACHE_HOME/fa-lab/uploads`` (default ``~/.cache``)."""
    configured = os.environ.get("FA_LAB_UPLOADS_DIR")
    if configured:
        return Path(configured).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache).expanduser() / "fa-lab" / "uploads"


def stash_upload(
    data: bytes,
    suffix: str,
    folder: Path | None = None,
    keep: int = 8,
    max_bytes: int = MAX_UPLOAD_FILE_BYTES,
) -> Path:
    """Keep ``data`` as ``<folder>/<sha256[:32]><suffix>`` and return that path.

    The name depends only on the content, so the same upload maps to the same file (and to the
    same cache entries keyed by path). Raises :class:`UploadError` for an empty or oversized
    upload or a suffix that is not a plain extension.
    """
    if not data:
        raise UploadError("the uploaded file is empty")
    if len(data) > max_bytes:
        raise UploadError(f"the uploaded file is {len(data) / 2**20:.1f} MB; the limit is {max_bytes / 2**20:.0f} MB")
    if not (suffix.startswith(".") and suffix[1:].isalnum()):
        raise UploadError(f"bad file suffix {suffix!r}")
    folder = Path(folder) if folder is not None else uploads_dir()
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    if folder.is_symlink() or not folder.is_dir():
        raise UploadError(f"the uploads folder {folder} is not a plain folder")
    os.chmod(folder, 0o700)
    target = folder / f"{hashlib.sha256(data).hexdigest()[:32]}{suffix}"
    if target.is_file() and not target.is_symlink() and target.stat().st_size == len(data):
        os.utime(target)  # most recently used
    else:
        fd, tmp = tempfile.mkstemp(prefix=".upload.", suffix=".tmp", dir=folder)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, target)  # replaces a planted symlink instead of writing through it
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    _prune(folder, keep, target)
    return target


def _prune(folder: Path, keep: int, current: Path) -> None:
    """Delete all but the ``keep`` most recently used files (never ``current``)."""
    entries = []
    for path in folder.iterdir():
        try:
            if path != current and not path.name.startswith("."):
                entries.append((path.lstat().st_mtime, path))
        except FileNotFoundError:
            continue
    entries.sort(reverse=True)
    for _, path in entries[max(0, keep - 1):]:
        path.unlink(missing_ok=True)
