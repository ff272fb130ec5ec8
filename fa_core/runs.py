"""The run store: one folder per training run, written atomically, readable after a restart.

Layout of ``<root>/<run id>/``:

* ``config.json``: the :class:`~fa_core.training.TrainConfig` as a dict;
* ``metrics.json``: ``{"config", "history", "final"}`` as the CLI writes it (``history`` holds
  the epoch records), plus ``"curves"``: the downsampled per-step loss and the alignment angles
  over steps, so finished runs can be plotted and compared without the live job;
* ``status.json``: status (queued, running, paused, finished, stopped, failed, interrupted),
  created/started/ended timestamps, duration, error message, the user-visible name, owner;
* ``model.safetensors``: the final checkpoint (see :mod:`fa_core.checkpoints`).

The root is ``$FA_LAB_RUNS_DIR`` if set, else ``<repo>/runs``. Run ids are validated so that
no id can name a path outside the root. Nothing here imports Streamlit.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .checkpoints import atomic_write_bytes, save_checkpoint

RUNS_DIR_ENV = "FA_LAB_RUNS_DIR"

ACTIVE_STATUSES = ("queued", "running", "paused")
"""Statuses of a run that a live job still owns; a restarted server turns them into ``interrupted``."""
FINAL_STATUSES = ("finished", "stopped", "failed", "interrupted")
STATUSES = ACTIVE_STATUSES + FINAL_STATUSES

_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_CHECKPOINT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.-]{0,79}$")
MAX_NAME_LENGTH = 120


class RunError(ValueError):
    """A run that does not exist, a bad run id or name, or an operation a run's state forbids."""


def default_runs_dir() -> Path:
    """``$FA_LAB_RUNS_DIR`` if set, else ``<repo root>/runs`` (the folder above ``fa_core``)."""
    configured = os.environ.get(RUNS_DIR_ENV)
    if configured:
        return Path(configured).expanduser()
    return Path(__file__).resolve().parents[1] / "runs"


def utc_now() -> str:
    """The current time as an ISO 8601 UTC timestamp with seconds."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def write_json_atomic(path: Path, data: Any) -> None:
    """Write ``data`` as indented JSON, atomically (NaN stays NaN, as the CLI writes it)."""
    text = json.dumps(data, indent=2, allow_nan=True)
    atomic_write_bytes(Path(path), lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def validate_run_id(run_id: str) -> str:
    """Return ``run_id`` if it is a plain folder name (letters, digits, ``_ . -``), else raise."""
    if not isinstance(run_id, str) or not _RUN_ID.fullmatch(run_id) or ".." in run_id:
        raise RunError(f"invalid run id {run_id!r}: use letters, digits, '_', '.' and '-' only")
    return run_id


def clean_name(name: str | None) -> str | None:
    """A user-visible run name: stripped, no control characters, at most 120 characters."""
    if name is None:
        return None
    if not isinstance(name, str):
        raise RunError(f"a run name must be text, got {type(name).__name__}")
    name = " ".join(name.split())
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        raise RunError("a run name cannot contain control characters")
    if len(name) > MAX_NAME_LENGTH:
        raise RunError(f"a run name can have at most {MAX_NAME_LENGTH} characters ({len(name)} given)")
    return name or None


def checkpoint_path(folder: str | Path, name: str) -> Path:
    """``folder/<name>.safetensors`` for a user-chosen checkpoint name, refusing names that escape.

    A name is 1-80 characters of letters, digits, spaces, ``_ . -``, starting with a letter or
    digit; a trailing ``.safetensors`` is optional.
    """
    if not isinstance(name, str):
        raise RunError("a checkpoint name must be text")
    stem = name.strip()
    if stem.lower().endswith(".safetensors"):
        stem = stem[: -len(".safetensors")]
    if not _CHECKPOINT_NAME.fullmatch(stem) or ".." in stem:
        raise RunError(
            f"invalid checkpoint name {name!r}: use 1-80 letters, digits, spaces, '_', '.' or '-', "
            "starting with a letter or digit"
        )
    base = Path(folder).resolve()
    path = (base / f"{stem}.safetensors").resolve()
    if path.parent != base:
        raise RunError(f"checkpoint name {name!r} points outside {base}")
    return path


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9_]+", "-", text.lower()).strip("-") or "run"


@dataclass
class RunRecord:
    """What the store knows about one run (plain data; safe to hand to a page)."""

    run_id: str
    path: Path
    status: dict[str, Any]
    config: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] | None = None

    @property
    def state(self) -> str:
        return str(self.status.get("status", "unknown"))

    @property
    def name(self) -> str:
        return self.status.get("name") or self.run_id

    @property
    def model_path(self) -> Path:
        return self.path / "model.safetensors"

    @property
    def has_model(self) -> bool:
        return self.model_path.is_file()


class RunStore:
    """Run folders under ``root`` (default :func:`default_runs_dir`). Thread-safe."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root if root is not None else default_runs_dir()).expanduser().resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()

    # ---- paths and ids -------------------------------------------------------------------
    def run_path(self, run_id: str) -> Path:
        """The folder of ``run_id`` (validated; never outside the root)."""
        path = (self.root / validate_run_id(run_id)).resolve()
        if path.parent != self.root:
            raise RunError(f"run id {run_id!r} points outside the run store")
        return path

    def new_run_id(self, config: dict[str, Any]) -> str:
        """``<UTC timestamp>-<model>-<rule label>-<6 random hex>``, e.g. ``20250101-120000-mlp-fa-3f9a1c``."""
        stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
        model = _slug(str(config.get("model", "model")))
        rule = _slug(_rule_label(config))
        while True:
            run_id = f"{stamp}-{model}-{rule}-{secrets.token_hex(3)}"
            if not (self.root / run_id).exists():
                return run_id

    # ---- writing -------------------------------------------------------------------------
    def create(
        self,
        config: dict[str, Any],
        name: str | None = None,
        owner: str | None = None,
        status: str = "queued",
    ) -> str:
        """Make a new run folder with ``config.json`` and ``status.json``; return its id."""
        if status not in STATUSES:
            raise RunError(f"unknown run status {status!r}")
        name = clean_name(name)
        with self._lock:
            run_id = self.new_run_id(config)
            path = self.run_path(run_id)
            path.mkdir(parents=True)
            write_json_atomic(path / "config.json", config)
            write_json_atomic(
                path / "status.json",
                {
                    "run_id": run_id,
                    "name": name,
                    "owner": owner,
                    "status": status,
                    "created": utc_now(),
                    "started": None,
                    "ended": None,
                    "duration_s": None,
                    "error": None,
                },
            )
        return run_id

    def update_status(self, run_id: str, **changes: Any) -> dict[str, Any]:
        """Merge ``changes`` into ``status.json`` (atomically) and return the new status."""
        if "status" in changes and changes["status"] not in STATUSES:
            raise RunError(f"unknown run status {changes['status']!r}")
        with self._lock:
            path = self.run_path(run_id) / "status.json"
            status = self._read_status(run_id)
            status.update(changes)
            write_json_atomic(path, status)
            return status

    def write_metrics(self, run_id: str, metrics: dict[str, Any]) -> None:
        """Replace ``metrics.json`` (``{"config", "history", "final", "curves"}``) atomically."""
        with self._lock:
            write_json_atomic(self._existing(run_id) / "metrics.json", metrics)

    def save_model(self, run_id: str, model: Any, metadata: dict[str, Any]) -> Path:
        """Save the run's final checkpoint as ``model.safetensors`` in its folder."""
        return save_checkpoint(model, self._existing(run_id) / "model.safetensors", metadata)

    def rename(self, run_id: str, name: str | None) -> dict[str, Any]:
        """Set the user-visible name (``None`` or blank clears it)."""
        return self.update_status(run_id, name=clean_name(name))

    def delete(self, run_id: str, force: bool = False) -> None:
        """Remove a run's folder. A queued/running/paused run is refused unless ``force``."""
        with self._lock:
            path = self._existing(run_id)
            state = self._read_status(run_id).get("status")
            if state in ACTIVE_STATUSES and not force:
                raise RunError(f"run {run_id} is {state}; stop it before deleting it")
            shutil.rmtree(path)

    def mark_interrupted(self) -> list[str]:
        """Turn runs left queued/running/paused by a dead server into ``interrupted``.

        Call once at startup, before any job runs. Returns the ids changed.
        """
        changed = []
        for record in self.list_runs():
            if record.state in ACTIVE_STATUSES:
                self.update_status(
                    record.run_id,
                    status="interrupted",
                    ended=record.status.get("ended") or utc_now(),
                    error=record.status.get("error") or "the server stopped while this run was "
                    f"{record.state}",
                )
                changed.append(record.run_id)
        return changed

    def export_checkpoint(self, run_id: str, folder: str | Path, name: str, overwrite: bool = False) -> Path:
        """Copy the run's ``model.safetensors`` to ``folder/<name>.safetensors`` (name validated)."""
        source = self._existing(run_id) / "model.safetensors"
        if not source.is_file():
            raise RunError(f"run {run_id} has no saved model yet")
        target = checkpoint_path(folder, name)
        if target.exists() and not overwrite:
            raise RunError(f"a checkpoint named {target.name} already exists; choose another name")
        atomic_write_bytes(target, lambda tmp: shutil.copyfile(source, tmp))
        return target

    # ---- reading -------------------------------------------------------------------------
    def exists(self, run_id: str) -> bool:
        try:
            return (self.run_path(run_id) / "status.json").is_file()
        except RunError:
            return False

    def load_run(self, run_id: str, with_metrics: bool = True) -> RunRecord:
        """Status, config and (by default) metrics of one run."""
        path = self._existing(run_id)
        status = self._read_status(run_id)
        config = _read_optional(path / "config.json") or {}
        metrics = _read_optional(path / "metrics.json") if with_metrics else None
        return RunRecord(run_id=run_id, path=path, status=status, config=config, metrics=metrics)

    def list_runs(self, owner: str | None = None) -> list[RunRecord]:
        """All readable runs, newest first (without metrics; :meth:`load_run` reads them).

        With ``owner``, only the runs created by that owner.
        """
        records = []
        for path in self.root.iterdir():
            if not path.is_dir() or not _RUN_ID.fullmatch(path.name):
                continue
            try:
                record = self.load_run(path.name, with_metrics=False)
            except (RunError, OSError, ValueError):
                continue
            if owner is not None and record.status.get("owner") != owner:
                continue
            records.append(record)
        records.sort(key=lambda r: (str(r.status.get("created") or ""), r.run_id), reverse=True)
        return records

    # ---- internals -----------------------------------------------------------------------
    def _existing(self, run_id: str) -> Path:
        path = self.run_path(run_id)
        if not (path / "status.json").is_file():
            raise RunError(f"no run {run_id!r} in {self.root}")
        return path

    def _read_status(self, run_id: str) -> dict[str, Any]:
        path = self._existing(run_id) / "status.json"
        try:
            status = _read_json(path)
        except (OSError, json.JSONDecodeError) as err:
            raise RunError(f"run {run_id}: unreadable status.json: {err}") from None
        if not isinstance(status, dict):
            raise RunError(f"run {run_id}: status.json is not a JSON object")
        return status


def _read_optional(path: Path) -> Any:
    try:
        return _read_json(path)
    except FileNotFoundError:
        return None
    except (OSError, json.JSONDecodeError):
        return None


def _rule_label(config: dict[str, Any]) -> str:
    rule = str(config.get("rule", "rule"))
    params = config.get("rule_params") or {}
    if "p" in params:
        return f"{rule}{float(params['p']):g}"
    return rule

