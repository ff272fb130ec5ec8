"""Atomic file writes: write a hidden temporary file next to the target, then ``os.replace``."""

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO


@contextmanager
def atomic_write(path: Path) -> Iterator[BinaryIO]:
    """Open a new temporary file in ``path``'s folder for binary writing.

    If the ``with`` block completes, the file is flushed to disk and renamed onto ``path`` in one
    step; if it raises, the temporary file is deleted and ``path`` is left untouched. Readers
    therefore see either the old file or the complete new one.
    """
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    try:
        with tmp.open("xb") as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
