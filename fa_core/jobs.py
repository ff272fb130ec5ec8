"""Background training jobs: a queue, a cap on concurrent runs, per-owner control, live snapshots.

A :class:`JobManager` owns one thread per running job. Each thread consumes the events of
:func:`fa_core.training.train`, keeps a bounded, downsampled live history, and persists the run
through a :class:`~fa_core.runs.RunStore` as it goes (config and status at submission, metrics at
every epoch end, the final checkpoint when the run ends). Pages read :meth:`JobManager.snapshot`,
a plain copy taken under the job's lock; threads never call into Streamlit.

Owners are opaque strings (the app uses one per browser session): an owner sees and controls only
its own jobs. A job's id is its run id in the store.

Jobs can be submitted as a *group* (:meth:`JobManager.submit_group`, used by the compare page):
the members share a group id (kept in their ``status.json``). A group submitted ``together``
takes one slot of the cap: its members start at the same moment and train concurrently, so their
curves grow side by side; otherwise the members queue like single jobs.

Nothing here imports Streamlit.
"""

from __future__ import annotations

import logging
import math
import os
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from .runs import AngleHistory, LossHistory, RunError, RunStore, clean_name, utc_now
from .training import (
    AnglesMeasured,
    ConfigError,
    EpochEnded,
    RunEnded,
    RunFailed,
    RunControl,
    RunStarted,
    StepLosses,
    TrainConfig,
    resolve_device,
    train,
)

DatasetLoader = Callable[..., Any]
"""``loader(name, device=..., progress=...) -> InMemoryDataset``; default :func:`fa_core.data.load_dataset`."""

JOB_STATUSES = ("queued", "running", "paused", "finished", "stopped", "failed")
DONE_STATUSES = ("finished", "stopped", "failed")


_log = logging.getLogger(__name__)

class JobError(Exception):
    """Base of the errors the job manager raises at callers (never inside a job's thread)."""


class UnknownJobError(JobError):
    """No job with that id is held by this manager."""


class JobAccessError(JobError):
    """The job exists but belongs to another owner."""


class JobStateError(JobError):
    """The job's state does not allow the operation (e.g. pausing a finished job)."""


def default_max_running(cuda: bool | None = None) -> int:
    """Jobs allowed to run at once: 4 on CUDA; on CPU one per two cores, at most 2."""
    if cuda is None:
        cuda = torch.cuda.is_available()
    if cuda:
        return 4
    return max(1, min(2, (os.cpu_count() or 1) // 2))


def default_torch_threads(max_running: int) -> int:
    """Intra-op threads per job on CPU: share all cores but one among the concurrent jobs."""
    return max(1, ((os.cpu_count() or 1) - 1) // max(1, max_running))


def _finite_or_none(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


@dataclass
class JobSnapshot:
    """A plain copy of a job's state for a page to render; never shared with the job thread."""

    job_id: str
    run_id: str
    name: str | None
    status: str
    queue_position: int | None
    config: dict[str, Any]
    rule_label: str
    task: str
    step: int
    total_steps: int
    progress: float
    epoch: int
    epochs: int
    elapsed: float
    eta: float | None
    stage: str | None
    device: str | None
    train_size: int | None
    test_size: int | None
    latest: dict[str, Any]
    loss_steps: list[float] = field(default_factory=list)
    loss_values: list[float] = field(default_factory=list)
    angle_steps: list[int] = field(default_factory=list)
    weight_angles: dict[str, list[float]] = field(default_factory=dict)
    signal_angles: dict[str, list[float]] = field(default_factory=dict)
    epoch_records: list[dict[str, Any]] = field(default_factory=list)
    final: dict[str, Any] | None = None
    error: str | None = None
    created: str | None = None
    started: str | None = None
    ended: str | None = None
    checkpoint_saved: bool = False
    group: str | None = None

    @property
    def done(self) -> bool:
        return self.status in DONE_STATUSES

    @property
    def active(self) -> bool:
        return not self.done

    @property
    def display_name(self) -> str:
        return self.name or f"{self.rule_label} {self.config.get('model')} on {self.config.get('dataset')}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Job:
    """Mutable state of one job; every field is read and written under ``lock``."""

    def __init__(
        self,
        job_id: str,
        owner: str,
        name: str | None,
        config: TrainConfig,
        max_points: int,
        group: str | None = None,
        together: bool = False,
    ) -> None:
        self.lock = threading.Lock()
        self.job_id = job_id
        self.group = group
        self.slot = group if (group and together) else job_id
        """Jobs with one slot key start together and count once against the cap."""
        self.owner = owner
        self.name = name
        self.config = config
        self.config_dict = config.to_dict()
        self.rule_label = config.rule_label()
        self.task = config.task
        self.status = "queued"
        self.thread: threading.Thread | None = None
        self.step = 0
        self.total_steps = 0
        self.epoch = 0
        self.elapsed = 0.0
        self.eta: float | None = None
        self.stage: str | None = None
        self.device: str | None = None
        self.train_size: int | None = None
        self.test_size: int | None = None
        self.loss = LossHistory(max_points)
        self.angles = AngleHistory(max(2, max_points // 2))
        self.epoch_records: list[dict[str, Any]] = []
        self.final: dict[str, Any] | None = None
        self.error: str | None = None
        self.created = utc_now()
        self.created_clock = time.monotonic()
        self.started: str | None = None
        self.ended: str | None = None
        self.checkpoint_saved = False
        self.finished_event = threading.Event()


class JobManager:
    """Runs training jobs in background threads, at most ``max_running`` at once, FIFO queue.

    ``dataset_loader(name, device=..., progress=...)`` supplies datasets (tests inject tiny
    ones). ``torch_threads`` sets ``torch.set_num_threads`` once (``None``: all cores but one
    shared among the concurrent jobs; ``0``: leave it alone). The manager persists every job
    through ``store``.
    """

    def __init__(
        self,
        store: RunStore,
        max_running: int | None = None,
        dataset_loader: DatasetLoader | None = None,
        torch_threads: int | None = None,
        log_interval_s: float = 0.5,
        max_points: int = 2000,
        keep_done_per_owner: int = 50,
    ) -> None:
        self.store = store
        self.max_running = max_running if max_running is not None else default_max_running()
        if self.max_running < 1:
            raise ValueError("max_running must be at least 1")
        if dataset_loader is None:
            from .data import load_dataset

            dataset_loader = load_dataset
        self.dataset_loader = dataset_loader
        self.log_interval_s = log_interval_s
        self.max_points = max_points
        self.keep_done_per_owner = keep_done_per_owner
        self.torch_threads = default_torch_threads(self.max_running) if torch_threads is None else torch_threads
        if self.torch_threads > 0:
            torch.set_num_threads(self.torch_threads)
        self._lock = threading.RLock()
        self._jobs: dict[str, _Job] = {}
        self._controls: dict[str, RunControl] = {}
        self._queue: list[str] = []
        self._running: set[str] = set()
        self._closed = False

    # ---- submitting and controlling --------------------------------------------------------
    def submit(self, config: TrainConfig, owner: str, name: str | None = None) -> str:
        """Validate ``config`` (raises :class:`ConfigError`), queue it for ``owner``, return its id."""
        return self._submit_all([(config, name)], owner, None, False)[0]

    def submit_group(
        self,
        configs: list[TrainConfig],
        owner: str,
        names: list[str | None] | None = None,
        together: bool = True,
        group_name: str | None = None,
    ) -> tuple[str, list[str]]:
        """Queue several runs as one group; return ``(group id, job ids)`` in the given order.

        Every config is validated first (nothing is queued if one is bad). ``together``: the
        group takes one slot of the cap and its members start and train concurrently; otherwise
        they queue one by one. The group id and ``group_name`` are stored in each run's status.
        """
        if not configs:
            raise JobError("a group needs at least one configuration")
        names = list(names) if names is not None else [None] * len(configs)
        if len(names) != len(configs):
            raise JobError("give one name per configuration (or none)")
        group = f"cmp-{utc_now()[:19].replace(':', '').replace('-', '')}-{secrets.token_hex(3)}"
        ids = self._submit_all(list(zip(configs, names)), owner, group, together, group_name)
        return group, ids

    def _submit_all(
        self,
        items: list[tuple[TrainConfig, str | None]],
        owner: str,
        group: str | None,
        together: bool,
        group_name: str | None = None,
    ) -> list[str]:
        _check_owner(owner)
        for config, _ in items:
            if not isinstance(config, TrainConfig):
                raise ConfigError(f"expected a TrainConfig, got {type(config).__name__}")
            config.validate()
        extra: dict[str, Any] = {"source": "app"}
        if group:
            extra.update(group=group, group_name=clean_name(group_name), group_together=together)
        jobs = []
        try:
            for config, name in items:
                name = clean_name(name)
                job_id = self.store.create(config.to_dict(), name=name, owner=owner, status="queued", extra=extra)
                jobs.append(_Job(job_id, owner, name, config, self.max_points, group, together))
        except RunError as err:
            raise JobError(str(err)) from None
        with self._lock:
            if self._closed:
                raise JobError("the job manager is shut down")
            for job in jobs:
                self._jobs[job.job_id] = job
                self._controls[job.job_id] = RunControl()
                self._queue.append(job.job_id)
            self._forget_old(owner)
            self._schedule()
        return [job.job_id for job in jobs]

    def pause(self, job_id: str, owner: str) -> None:
        job = self._get(job_id, owner)
        with job.lock:
            if job.status != "running":
                raise JobStateError(f"job {job_id} is {job.status}; only a running job can be paused")
            self._controls[job_id].pause()
            job.status = "paused"
        self._persist_status(job, status="paused")

    def resume(self, job_id: str, owner: str) -> None:
        job = self._get(job_id, owner)
        with job.lock:
            if job.status != "paused":
                raise JobStateError(f"job {job_id} is {job.status}; only a paused job can be resumed")
            self._controls[job_id].resume()
            job.status = "running"
        self._persist_status(job, status="running")

    def stop(self, job_id: str, owner: str) -> None:
        """Stop a job: a queued one leaves the queue; a running/paused one ends as ``stopped``
        at its next step (its checkpoint and metrics are still saved)."""
        job = self._get(job_id, owner)
        with self._lock:
            if job_id in self._queue:
                self._queue.remove(job_id)
                with job.lock:
                    job.status = "stopped"
                    job.ended = utc_now()
                    job.finished_event.set()
                self._persist_status(job, status="stopped", ended=job.ended, duration_s=0.0)
                return
        with job.lock:
            if job.status in DONE_STATUSES:
                raise JobStateError(f"job {job_id} has already {job.status}")
            self._controls[job_id].stop()
            if job.status == "paused":
                job.status = "running"

    def forget(self, job_id: str, owner: str) -> None:
        """Drop a finished job from memory (its run stays in the store)."""
        job = self._get(job_id, owner)
        with self._lock:
            if job.status not in DONE_STATUSES:
                raise JobStateError(f"job {job_id} is {job.status}; stop it first")
            self._jobs.pop(job_id, None)
            self._controls.pop(job_id, None)

    # ---- reading ---------------------------------------------------------------------------
    def snapshot(self, job_id: str, owner: str, history: bool = True) -> JobSnapshot:
        """A copy of the job's state (with the live history unless ``history=False``)."""
        job = self._get(job_id, owner)
        with self._lock:
            position = self._positions().get(job_id)
        return self._snapshot(job, position, history)

    def jobs_for(self, owner: str, history: bool = False) -> list[JobSnapshot]:
        """The owner's jobs, newest first."""
        _check_owner(owner)
        with self._lock:
            jobs = [j for j in self._jobs.values() if j.owner == owner]
            positions = self._positions()
        jobs.sort(key=lambda j: j.created_clock, reverse=True)
        return [self._snapshot(j, positions.get(j.job_id), history) for j in jobs]

    def group_jobs(self, group: str, owner: str, history: bool = True) -> list[JobSnapshot]:
        """The owner's jobs of ``group`` in submission order (empty if none is held here)."""
        _check_owner(owner)
        with self._lock:
            jobs = [j for j in self._jobs.values() if j.owner == owner and j.group == group]
            positions = self._positions()
        jobs.sort(key=lambda j: j.created_clock)
        return [self._snapshot(j, positions.get(j.job_id), history) for j in jobs]

    def owns(self, job_id: str, owner: str) -> bool:
        with self._lock:
            job = self._jobs.get(job_id)
        return job is not None and job.owner == owner

    def counts(self) -> dict[str, int]:
        """How many jobs are running (incl. paused) and queued, over all owners."""
        with self._lock:
            return {"running": len(self._running), "queued": len(self._queue), "max_running": self.max_running}

    def slots_in_use(self) -> int:
        """Slots of the cap taken now (a group running together takes one)."""
        with self._lock:
            return len({self._jobs[j].slot for j in self._running if j in self._jobs})

    def wait(self, job_id: str, owner: str, timeout: float | None = None) -> JobSnapshot:
        """Block until the job is finished/stopped/failed (or ``timeout``); return its snapshot."""
        job = self._get(job_id, owner)
        job.finished_event.wait(timeout)
        return self.snapshot(job_id, owner)

    def shutdown(self, wait: bool = True, timeout: float = 10.0) -> None:
        """Stop every job (queued ones are dropped) and, with ``wait``, join their threads."""
        with self._lock:
            self._closed = True
            queued = list(self._queue)
            self._queue.clear()
            threads = [j.thread for j in self._jobs.values() if j.thread is not None]
            for control in self._controls.values():
                control.stop()
        for job_id in queued:
            job = self._jobs[job_id]
            with job.lock:
                job.status = "stopped"
                job.ended = utc_now()
                job.finished_event.set()
            self._persist_status(job, status="stopped", ended=job.ended)
        if wait:
            deadline = time.monotonic() + timeout
            for thread in threads:
                thread.join(max(0.0, deadline - time.monotonic()))

    # ---- internals -------------------------------------------------------------------------
    def _get(self, job_id: str, owner: str) -> _Job:
        _check_owner(owner)
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise UnknownJobError(f"no job {job_id!r} (finished jobs are forgotten when the server restarts)")
        if job.owner != owner:
            raise JobAccessError(f"job {job_id!r} belongs to another session")
        return job

    def _snapshot(self, job: _Job, position: int | None, history: bool) -> JobSnapshot:
        with job.lock:
            latest: dict[str, Any] = {"loss": job.loss.last_value, "epoch": job.epoch}
            if job.epoch_records:
                last = job.epoch_records[-1]
                for key in ("train_loss", "train_accuracy", "test_loss", "test_accuracy", "test_bce"):
                    latest[key] = last.get(key)
            snap = JobSnapshot(
                job_id=job.job_id,
                run_id=job.job_id,
                name=job.name,
                status=job.status,
                queue_position=position,
                config=dict(job.config_dict),
                rule_label=job.rule_label,
                task=job.task,
                step=job.step,
                total_steps=job.total_steps,
                progress=(job.step / job.total_steps) if job.total_steps else (1.0 if job.status == "finished" else 0.0),
                epoch=job.epoch,
                epochs=job.config.epochs,
                elapsed=job.elapsed,
                eta=job.eta,
                stage=job.stage,
                device=job.device,
                train_size=job.train_size,
                test_size=job.test_size,
                latest=latest,
                final=dict(job.final) if job.final is not None else None,
                error=job.error,
                created=job.created,
                started=job.started,
                ended=job.ended,
                checkpoint_saved=job.checkpoint_saved,
                group=job.group,
            )
            if history:
                snap.loss_steps, snap.loss_values = job.loss.points()
                snap.angle_steps, snap.weight_angles, snap.signal_angles = job.angles.copy()
                snap.epoch_records = [dict(r) for r in job.epoch_records]
        return snap

    def _positions(self) -> dict[str, int]:
        """Queue position (1-based) of each queued job; a together-group shares one position.

        Called with ``self._lock`` held.
        """
        slots: dict[str, int] = {}
        positions = {}
        for job_id in self._queue:
            slot = self._jobs[job_id].slot
            slots.setdefault(slot, len(slots) + 1)
            positions[job_id] = slots[slot]
        return positions

    def _schedule(self) -> None:
        """Start queued jobs while there is room (called with ``self._lock`` held)."""
        while self._queue and not self._closed:
            running_slots = {self._jobs[j].slot for j in self._running if j in self._jobs}
            if len(running_slots) >= self.max_running:
                break
            slot = self._jobs[self._queue[0]].slot
            starting = [j for j in self._queue if self._jobs[j].slot == slot]
            self._queue = [j for j in self._queue if self._jobs[j].slot != slot]
            for job_id in starting:
                job = self._jobs[job_id]
                self._running.add(job_id)
                with job.lock:
                    job.status = "running"
                    job.started = utc_now()
                    job.stage = "starting"
                job.thread = threading.Thread(target=self._run, args=(job,), name=f"fa-job-{job_id}", daemon=True)
                job.thread.start()

    def _forget_old(self, owner: str) -> None:
        done = [j for j in self._jobs.values() if j.owner == owner and j.status in DONE_STATUSES]
        done.sort(key=lambda j: j.created_clock)
        for job in done[: max(0, len(done) - self.keep_done_per_owner)]:
            self._jobs.pop(job.job_id, None)
            self._controls.pop(job.job_id, None)

    def _persist_status(self, job: _Job, **changes: Any) -> None:
        try:
            self.store.update_status(job.job_id, **changes)
        except (RunError, OSError):
            pass  # the run folder was deleted or the disk failed; the live job goes on

    def _metrics(self, job: _Job, final: dict[str, Any] | None) -> dict[str, Any]:
        with job.lock:
            steps, values = job.loss.points()
            angle_steps, weight, signal = job.angles.copy()
            return {
                "config": dict(job.config_dict),
                "history": [dict(r) for r in job.epoch_records],
                "final": final if final is not None else {},
                "curves": {
                    "loss": {"steps": steps, "values": values},
                    "angles": {"steps": angle_steps, "weight": weight, "signal": signal},
                },
            }

    def _run(self, job: _Job) -> None:
        """The job's thread: load the data, consume train() events, persist, free the slot."""
        control = self._controls[job.job_id]
        if self.torch_threads > 0:
            torch.set_num_threads(self.torch_threads)
        started_clock = time.monotonic()
        self._persist_status(job, status="running", started=job.started)
        final_status, error, final = "failed", None, None
        try:
            device = resolve_device(job.config.device)

            def progress(stage: str, done: int, total: int) -> None:
                text = f"{stage} ({100 * done / total:.0f}%)" if total else stage
                with job.lock:
                    job.stage = text

            with job.lock:
                job.stage = f"loading {job.config.dataset}"
            dataset = self.dataset_loader(job.config.dataset, device=device, progress=progress)
            for event in train(job.config, control=control, dataset=dataset, log_interval_s=self.log_interval_s):
                if isinstance(event, StepLosses):
                    with job.lock:
                        job.loss.extend(event.first_step, event.losses)
                        job.step = event.first_step + len(event.losses) - 1
                        job.epoch = event.epoch
                        job.elapsed = event.elapsed
                        job.eta = _finite_or_none(event.eta)
                        job.stage = None
                elif isinstance(event, AnglesMeasured):
                    with job.lock:
                        job.angles.add(event.step, event.weight, event.signal)
                elif isinstance(event, EpochEnded):
                    with job.lock:
                        job.epoch_records.append(dict(event.record))
                        job.step = event.step
                        job.epoch = event.epoch
                        job.elapsed = event.elapsed
                        job.eta = _finite_or_none(event.eta)
                    self._write_metrics(job, None)
                elif isinstance(event, RunStarted):
                    with job.lock:
                        job.total_steps = event.total_steps
                        job.device = event.device
                        job.train_size = event.train_size
                        job.test_size = event.test_size
                        job.stage = "measuring initial angles"
                elif isinstance(event, RunEnded):
                    final = {**event.final, "status": event.status}
                    final_status = event.status
                    with job.lock:
                        job.step = event.step
                        job.elapsed = event.elapsed
                        job.eta = 0.0
                        job.stage = "saving checkpoint"
                    try:
                        self.store.save_model(
                            job.job_id, event.model,
                            {"config": job.config_dict, "final": final, "run_id": job.job_id},
                        )
                        with job.lock:
                            job.checkpoint_saved = True
                    except Exception as err:  # noqa: BLE001 - a failed save must not kill the job
                        error = f"the run ended but its checkpoint could not be saved: {err}"
                elif isinstance(event, RunFailed):
                    final_status, error = "failed", event.message
                    final = {"status": "failed", "message": event.message, "steps": event.step}
                    with job.lock:
                        job.elapsed = event.elapsed
        except Exception as err:  # noqa: BLE001 - any failure becomes the job's status
            final_status = "failed"
            error = str(err) if isinstance(err, (ConfigError, ValueError)) else f"{type(err).__name__}: {err}"
            final = {"status": "failed", "message": error, "steps": job.step}
        finally:
            if final is None:
                final_status = "failed"
                error = error or "the training loop ended without a result"
                final = {"status": "failed", "message": error, "steps": job.step}
            with job.lock:
                job.status = final_status
                job.final = final
                job.error = error
                job.stage = None
                job.ended = utc_now()
            self._write_metrics(job, final)
            self._persist_status(
                job, status=final_status, ended=job.ended, error=error,
                duration_s=time.monotonic() - started_clock,
            )
            with self._lock:
                self._running.discard(job.job_id)
                self._schedule()
            job.finished_event.set()

    def _write_metrics(self, job: _Job, final: dict[str, Any] | None) -> None:
        try:
            self.store.write_metrics(job.job_id, self._metrics(job, final))
        except (RunError, OSError, TypeError, ValueError) as err:
            # The job goes on (its next write may succeed); the failure is logged, not hidden.
            _log.warning("could not write the metrics of run %s: %s", job.job_id, err)


def _check_owner(owner: str) -> None:
    if not isinstance(owner, str) or not owner.strip():
        raise JobError("an owner id (non-empty text) is required")


# ---- dataset fetching in the background -----------------------------------------------------
@dataclass
class FetchState:
    """Progress of one dataset fetch: status idle/running/done/failed, current stage, counts."""

    name: str
    status: str = "idle"
    stage: str | None = None
    done: int = 0
    total: int = 0
    error: str | None = None

    @property
    def fraction(self) -> float:
        return min(1.0, self.done / self.total) if self.total else 0.0


class DatasetFetcher:
    """Fetches datasets in background threads (one per dataset at a time); shared by all sessions."""

    def __init__(self, fetch: Callable[..., Any] | None = None) -> None:
        if fetch is None:
            from .data import fetch_dataset

            fetch = fetch_dataset
        self._fetch = fetch
        self._lock = threading.Lock()
        self._states: dict[str, FetchState] = {}
        self._threads: dict[str, threading.Thread] = {}

    def start(self, name: str) -> bool:
        """Start fetching ``name`` unless a fetch of it is already running; True if started."""
        with self._lock:
            state = self._states.get(name)
            if state is not None and state.status == "running":
                return False
            self._states[name] = FetchState(name=name, status="running", stage="starting")
            thread = threading.Thread(target=self._run, args=(name,), name=f"fa-fetch-{name}", daemon=True)
            self._threads[name] = thread
        thread.start()
        return True

    def state(self, name: str) -> FetchState:
        with self._lock:
            state = self._states.get(name)
            return FetchState(**asdict(state)) if state is not None else FetchState(name=name)

    def running(self) -> list[str]:
        with self._lock:
            return [n for n, s in self._states.items() if s.status == "running"]

    def wait(self, name: str, timeout: float | None = None) -> FetchState:
        with self._lock:
            thread = self._threads.get(name)
        if thread is not None:
            thread.join(timeout)
        return self.state(name)

    def _run(self, name: str) -> None:
        def progress(stage: str, done: int, total: int) -> None:
            with self._lock:
                state = self._states[name]
                state.stage, state.done, state.total = stage, done, total

        try:
            self._fetch(name, progress=progress)
        except Exception as err:  # noqa: BLE001 - shown to the user
            with self._lock:
                self._states[name].status = "failed"
                self._states[name].error = str(err)
            return
        with self._lock:
            self._states[name].status = "done"
