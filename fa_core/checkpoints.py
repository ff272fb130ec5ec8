"""Checkpoints: safetensors tensors plus JSON metadata in the same file's header.

Nothing here unpickles: a file is parsed as safetensors (a length-prefixed JSON header and raw
tensor bytes) or refused with a message saying what it looks like instead.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from .models import Network, build_model

METADATA_KEY = "fa_lab"
FORMAT_VERSION = 1
MAX_HEADER_BYTES = 16 * 1024 * 1024


class CheckpointError(ValueError):
    """A file that cannot be loaded as an FA Lab checkpoint; the message says why."""


def _fsync(path: str | Path) -> None:
    """Flush a file's (or a folder's) data to the disk; folders that cannot be opened are skipped."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, write: Any) -> None:
    """Call ``write(tmp_path)`` then move the file into place, so readers never see half a file.

    The temporary file is a hidden ``.<name>.*.tmp`` beside the target. Its data is flushed to
    the disk before the rename and the folder after it, so neither a killed process nor a power
    cut leaves a truncated file under the final name.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        _fsync(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync(path.parent)


def save_checkpoint(model: Network, path: str | Path, metadata: dict[str, Any] | None = None) -> Path:
    """Save weights, biases and feedback tensors ``B`` with metadata (model, dataset, rule, ...).

    ``metadata`` (JSON-serialisable: config, final metrics, ...) is stored beside the model's own
    description; the model's description wins on conflicting keys. The write is atomic.
    """
    meta = {**(metadata or {}), **model.describe(), "format_version": FORMAT_VERSION}
    try:
        header = {METADATA_KEY: json.dumps(meta, allow_nan=True)}
    except TypeError as err:
        raise CheckpointError(f"checkpoint metadata must be JSON-serialisable: {err}") from None
    tensors = {name: t.detach().to("cpu").contiguous() for name, t in model.state_dict().items()}
    path = Path(path)
    atomic_write_bytes(path, lambda tmp: save_file(tensors, tmp, metadata=header))
    return path


def _check_container(path: Path) -> None:
    """Refuse files that are clearly not safetensors before handing them to the parser.

    A safetensors file is an 8-byte little-endian header length, then a JSON header that starts
    with ``{``. That layout is checked first: the first byte of a valid file's header length can
    be ``0x80``, the byte a pickle starts with, so a file is only called a pickle (or a zip)
    when it is not a plausible safetensors file.
    """
    size = path.stat().st_size
    with path.open("rb") as fh:
        head = fh.read(9)
    header_len = int.from_bytes(head[:8], "little") if len(head) >= 8 else -1
    if 2 <= header_len <= MAX_HEADER_BYTES and 8 + header_len <= size and head[8:9] == b"{":
        return
    if head[:2] == b"PK":
        raise CheckpointError(f"{path.name} is a zip archive (a torch.save/pickle checkpoint?); FA Lab only loads safetensors files, and never unpickles")
    if head[:1] == b"\x80":
        raise CheckpointError(f"{path.name} is a Python pickle; FA Lab never unpickles files. Use a .safetensors checkpoint")
    if size < 8:
        raise CheckpointError(f"{path.name} is too short ({size} bytes) to be a safetensors file")
    if header_len > MAX_HEADER_BYTES or 8 + header_len > size:
        raise CheckpointError(f"{path.name} is not a valid safetensors file (header length {header_len} does not fit a {size}-byte file)")
    raise CheckpointError(f"{path.name} is not a valid safetensors file (its header is not JSON)")


def read_checkpoint_metadata(path: str | Path) -> dict[str, Any]:
    """The JSON metadata of a checkpoint, without loading its tensors."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint file at {path}")
    _check_container(path)
    try:
        with safe_open(str(path), framework="pt") as fh:
            header = fh.metadata() or {}
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{path.name} is not a readable safetensors file: {err}") from None
    if METADATA_KEY not in header:
        raise CheckpointError(f"{path.name} is a safetensors file but not an FA Lab checkpoint (no '{METADATA_KEY}' metadata)")
    try:
        meta = json.loads(header[METADATA_KEY])
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{path.name} has corrupt metadata: {err}") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path.name} has metadata that is not a JSON object")
    return meta


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> tuple[Network, dict[str, Any]]:
    """Rebuild the model a checkpoint describes and load its tensors (including ``B``).

    Raises :class:`CheckpointError` for anything that is not a matching FA Lab checkpoint.
    """
    path = Path(path)
    meta = read_checkpoint_metadata(path)
    missing = [k for k in ("model", "dataset", "rule") if k not in meta]
    if missing:
        raise CheckpointError(f"{path.name}: metadata lacks {', '.join(missing)}")
    try:
        model = build_model(meta["model"], dataset=meta["dataset"], rule=meta["rule"])
    except (ValueError, TypeError) as err:
        raise CheckpointError(f"{path.name}: metadata describes no buildable model: {err}") from None
    try:
        with safe_open(str(path), framework="pt", device="cpu") as fh:
            tensors = {name: fh.get_tensor(name) for name in fh.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"{path.name}: tensor data is unreadable (truncated file?): {err}") from None
    expected = model.state_dict()
    problems = [f"missing {k}" for k in expected if k not in tensors]
    problems += [f"unexpected {k}" for k in tensors if k not in expected]
    problems += [
        f"{k} has shape {tuple(tensors[k].shape)}, expected {tuple(v.shape)}"
        for k, v in expected.items()
        if k in tensors and tensors[k].shape != v.shape
    ]
    if problems:
        raise CheckpointError(f"{path.name} does not match a {meta['model']} for {meta['dataset']}: " + "; ".join(problems))
    model.load_state_dict(tensors)
    return model.to(device).eval(), meta
