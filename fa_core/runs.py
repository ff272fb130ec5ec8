"""The run store: one folder per training run, written atomically, readable after a restart.

Layout of ``<root>/<run id>/``:

* ``config.json``: the :class:`~fa_core.training.TrainConfig` as a dict;
* ``metrics.json``: ``{"config", "history", "final"}`` as the CLI writes it (``history`` holds
  the epoch records), plus ``"curves"``: the downsampled per-step loss and the alignment angles
  over steps, so finished runs can be plotted and compared without the live job;
* ``status.json``: status (queued, running, paused, finished, stopped, failed, interrupted),
  created/started/ended timestamps, duration, error message, the user-visible name, owner;
* ``model.safetensors``: the final checkpoint (see :mod:`fa_core.checkpoints`).

``status.json`` also says where a run came from (``"source"``: ``"app"`` or ``"cli"``, with the
CLI's process id while it runs) and, for the runs of one comparison, their ``"group"`` id.
:class:`RunRecorder` turns the events of :func:`fa_core.training.train` into such a folder (the
CLI uses it; the app's job manager writes the same files itself).

The root is ``$FA_LAB_RUNS_DIR`` if set, else ``<repo>/runs``. Run ids are validated so that
no id can name a path outside the root. Nothing here imports Streamlit.
"""

from __future__ import annotations

import json
import math
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


class LossHistory:
    """Per-step losses, downsampled to at most ``max_points`` bucket means.

    Buckets start one step wide; whenever the buffer is full, neighbouring buckets are merged
    (the width doubles), so memory stays bounded and the whole run stays evenly covered.
    Each point is ``(mean step, mean loss)`` of its bucket.
    """

    def __init__(self, max_points: int = 2000) -> None:
        if max_points < 2:
            raise ValueError("max_points must be at least 2")
        self.max_points = max_points - max_points % 2
        self.width = 1
        self.steps: list[float] = []
        self.values: list[float] = []
        self._step_sum = 0.0
        self._value_sum = 0.0
        self._count = 0
        self.last_step = 0
        self.last_value: float | None = None

    def extend(self, first_step: int, losses: list[float]) -> None:
        for offset, loss in enumerate(losses):
            self.add(first_step + offset, float(loss))

    def add(self, step: int, loss: float) -> None:
        self.last_step, self.last_value = step, loss
        self._step_sum += step
        self._value_sum += loss
        self._count += 1
        if self._count < self.width:
            return
        self.steps.append(self._step_sum / self._count)
        self.values.append(self._value_sum / self._count)
        self._step_sum = self._value_sum = 0.0
        self._count = 0
        if len(self.steps) >= self.max_points:
            self._merge()

    def _merge(self) -> None:
        steps, values = self.steps, self.values
        self.steps = [(steps[i] + steps[i + 1]) / 2 for i in range(0, len(steps) - 1, 2)]
        self.values = [(values[i] + values[i + 1]) / 2 for i in range(0, len(values) - 1, 2)]
        self.width *= 2

    def points(self) -> tuple[list[float], list[float]]:
        """Copies of the steps and values, including the partial last bucket."""
        steps, values = list(self.steps), list(self.values)
        if self._count:
            steps.append(self._step_sum / self._count)
            values.append(self._value_sum / self._count)
        return steps, values


class AngleHistory:
    """Alignment angles over steps, thinned (every other point dropped) beyond ``max_points``."""

    def __init__(self, max_points: int = 1000) -> None:
        self.max_points = max(2, max_points)
        self.steps: list[int] = []
        self.weight: dict[str, list[float]] = {}
        self.signal: dict[str, list[float]] = {}

    def add(self, step: int, weight: dict[str, float], signal: dict[str, float]) -> None:
        n = len(self.steps)
        for series, values in ((self.weight, weight), (self.signal, signal)):
            for layer in values:
                series.setdefault(layer, [math.nan] * n)
            for layer, points in series.items():
                points.append(float(values.get(layer, math.nan)))
        self.steps.append(step)
        if len(self.steps) > self.max_points:
            keep = list(range(0, len(self.steps) - 1, 2)) + [len(self.steps) - 1]
            self.steps = [self.steps[i] for i in keep]
            for series in (self.weight, self.signal):
                for layer, points in series.items():
                    series[layer] = [points[i] for i in keep]

    def copy(self) -> tuple[list[int], dict[str, list[float]], dict[str, list[float]]]:
        return (
            list(self.steps),
            {k: list(v) for k, v in self.weight.items()},
            {k: list(v) for k, v in self.signal.items()},
        )


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
        self._final_cache: dict[str, tuple[int, dict[str, Any]]] = {}

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
        extra: dict[str, Any] | None = None,
    ) -> str:
        """Make a new run folder with ``config.json`` and ``status.json``; return its id.

        ``extra`` (JSON-ready) is merged into ``status.json``: ``source``, ``group``, ``pid``...
        """
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
                    **(extra or {}),
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
            if record.state in ACTIVE_STATUSES and not _owned_by_live_process(record.status):
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

    def final_metrics(self, run_id: str) -> dict[str, Any]:
        """The ``final`` block of a run's ``metrics.json`` plus ``epochs_done`` ({} if none yet).

        Cached per run by the file's modification time, so listing many runs stays cheap.
        """
        path = self._existing(run_id) / "metrics.json"
        try:
            stamp = path.stat().st_mtime_ns
        except FileNotFoundError:
            return {}
        with self._lock:
            cached = self._final_cache.get(run_id)
        if cached is not None and cached[0] == stamp:
            return dict(cached[1])
        metrics = _read_optional(path) or {}
        final = dict(metrics.get("final") or {}) if isinstance(metrics, dict) else {}
        history = metrics.get("history") if isinstance(metrics, dict) else None
        final["epochs_done"] = len(history) if isinstance(history, list) else 0
        with self._lock:
            self._final_cache[run_id] = (stamp, final)
        return dict(final)

    def summaries(self, owner: str | None = None) -> list[dict[str, Any]]:
        """One flat row per run (newest first) for tables: see :func:`run_summary`."""
        rows = []
        for record in self.list_runs(owner=owner):
            try:
                final = self.final_metrics(record.run_id)
            except RunError:
                continue
            rows.append(run_summary(record, final))
        return rows

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


def _owned_by_live_process(status: dict[str, Any]) -> bool:
    """True for a CLI run whose process (``status["pid"]``) is still alive on this machine."""
    pid = status.get("pid")
    if status.get("source") != "cli" or not isinstance(pid, int) or pid <= 0 or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def rule_display_name(config: dict[str, Any]) -> str:
    """``"FA_EX-80%"`` etc. for a stored config (falls back to the raw rule name)."""
    from .rules import get_rule

    rule = config.get("rule")
    try:
        return get_rule(str(rule), **(config.get("rule_params") or {})).display_name()
    except (ValueError, TypeError):
        return str(rule)


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def run_summary(record: RunRecord, final: dict[str, Any] | None = None) -> dict[str, Any]:
    """A flat, JSON-ready row describing a run: ids, names, rule, model, dataset, status, final
    test accuracy / BCE / loss, epochs done out of planned, duration, timestamps, group, source."""
    config = record.config or {}
    status = record.status
    final = final or {}
    return {
        "run_id": record.run_id,
        "name": record.name,
        "status": record.state,
        "rule": config.get("rule"),
        "rule_label": rule_display_name(config),
        "model": config.get("model"),
        "dataset": config.get("dataset"),
        "test_accuracy": _finite(final.get("test_accuracy")),
        "test_bce": _finite(final.get("test_bce")),
        "test_loss": _finite(final.get("test_loss")),
        "epochs_done": int(final.get("epochs_done") or 0),
        "epochs": config.get("epochs"),
        "duration_s": _finite(status.get("duration_s")) if status.get("duration_s") is not None
        else _finite(final.get("elapsed_s")),
        "created": status.get("created"),
        "ended": status.get("ended"),
        "group": status.get("group"),
        "source": status.get("source") or "app",
        "owner": status.get("owner"),
        "has_model": record.has_model,
    }


class RunRecorder:
    """Persist one run from the events of :func:`fa_core.training.train` into a :class:`RunStore`.

    ``RunRecorder(store, config).handle(event)`` for every event; :meth:`interrupt` when the
    process is interrupted (Ctrl-C). Writes the same files as the app's jobs: config and status at
    creation, metrics (with downsampled curves) at every epoch end and at the end, the final
    checkpoint. The status is ``running`` while it goes, then ``finished``, ``stopped``,
    ``failed`` or ``interrupted``. Store errors never stop training: they are kept in ``errors``.
    """

    def __init__(
        self,
        store: RunStore,
        config: Any,
        name: str | None = None,
        source: str = "cli",
        owner: str | None = None,
        max_points: int = 2000,
    ) -> None:
        import time

        self._time = time
        self.store = store
        self.config = config.to_dict() if hasattr(config, "to_dict") else dict(config)
        self.run_id = store.create(
            self.config, name=name, owner=owner, status="running",
            extra={"source": source, "pid": os.getpid(), "started": utc_now()},
        )
        self.loss = LossHistory(max_points)
        self.angles = AngleHistory(max(2, max_points // 2))
        self.history: list[dict[str, Any]] = []
        self.final: dict[str, Any] = {}
        self.status = "running"
        self.errors: list[str] = []
        self._clock = time.monotonic()

    @property
    def path(self) -> Path:
        return self.store.run_path(self.run_id)

    def metrics(self) -> dict[str, Any]:
        steps, values = self.loss.points()
        angle_steps, weight, signal = self.angles.copy()
        return {
            "config": dict(self.config),
            "history": [dict(r) for r in self.history],
            "final": dict(self.final),
            "curves": {
                "loss": {"steps": steps, "values": values},
                "angles": {"steps": angle_steps, "weight": weight, "signal": signal},
            },
        }

    def handle(self, event: Any) -> None:
        kind = getattr(event, "kind", None)
        if kind == "steps":
            self.loss.extend(event.first_step, event.losses)
        elif kind == "angles":
            self.angles.add(event.step, event.weight, event.signal)
        elif kind == "epoch":
            self.history.append(dict(event.record))
            self._write_metrics()
        elif kind == "ended":
            self.final = {**event.final, "status": event.status}
            try:
                self.store.save_model(self.run_id, event.model,
                                      {"config": self.config, "final": self.final, "run_id": self.run_id})
            except Exception as err:  # noqa: BLE001 - recorded, the run's result still counts
                self.errors.append(f"checkpoint not saved: {err}")
            self._end(event.status, error="; ".join(self.errors) or None)
        elif kind == "failed":
            self.final = {"status": "failed", "message": event.message, "steps": event.step}
            self._end("failed", error=event.message)

    def interrupt(self, message: str = "interrupted (Ctrl-C)") -> None:
        """Mark the run ``interrupted`` (e.g. on KeyboardInterrupt), keeping what was recorded."""
        if self.status == "running":
            self.final = {**self.final, "status": "interrupted"}
            self._end("interrupted", error=message)

    def fail(self, message: str) -> None:
        """Mark the run ``failed`` with ``message`` (an exception outside the training events)."""
        if self.status == "running":
            self.final = {**self.final, "status": "failed", "message": message}
            self._end("failed", error=message)

    def _end(self, status: str, error: str | None) -> None:
        self.status = status
        self._write_metrics()
        self._update(status=status, ended=utc_now(), error=error, pid=None,
                     duration_s=self._time.monotonic() - self._clock)

    def _write_metrics(self) -> None:
        try:
            self.store.write_metrics(self.run_id, self.metrics())
        except (RunError, OSError, TypeError, ValueError) as err:
            self.errors.append(f"metrics not written: {err}")

    def _update(self, **changes: Any) -> None:
        try:
            self.store.update_status(self.run_id, **changes)
        except (RunError, OSError) as err:
            self.errors.append(f"status not written: {err}")
