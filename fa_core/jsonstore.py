"""Read-modify-write of a shared JSON file under an exclusive lock, written atomically.

Several processes (``reproduce`` and ``tune`` runs in parallel) may record results in one file:
each update re-reads the file under ``fcntl.flock`` on a ``<name>.lock`` beside it, applies its
change to what is there now, and replaces the file atomically, so no process loses another's
results (the lost update a plain "load once, write all" store would cause).
"""

from __future__ import annotations

import fcntl
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .checkpoints import atomic_write_bytes


def update_json(path: Path, change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """Apply ``change`` (which mutates the mapping in place) to the JSON object in ``path`` (an
    empty one when the file does not exist yet) under the lock; return the new contents."""
    path = Path(path)
    lock_path = path.with_name(path.name + ".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            data = json.loads(path.read_text()) if path.exists() else {}
            change(data)
            text = json.dumps(data, indent=2, sort_keys=True)
            atomic_write_bytes(path, lambda tmp: Path(tmp).write_text(text))
            return data
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
