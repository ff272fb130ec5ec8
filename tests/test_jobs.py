"""The job manager: queue and cap, pause/resume/stop, owner isolation, failures, bounded history."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from conftest import synthetic_dataset

from fa_core.checkpoints import load_checkpoint
from fa_core.data import DatasetError
from fa_core.jobs import (
    AngleHistory,
    DatasetFetcher,
    JobAccessError,
    JobError,
    JobManager,
    JobStateError,
    LossHistory,
    UnknownJobError,
    default_max_running,
)
from fa_core.runs import RunStore
from fa_core.training import ConfigError, TrainConfig

DATASET = synthetic_dataset("mnist", n_train=256, n_test=128)


def loader(name, device=None, progress=None):
    if progress is not None:
        progress("loading synthetic", 1, 1)
    return DATASET


def tiny(**changes) -> TrainConfig:
    base = dict(dataset="mnist", model="mlp", rule="fa", epochs=1, batch_size=32, device="cpu", probe_size=64)
    return TrainConfig(**{**base, **changes})


@pytest.fixture
def manager(tmp_path: Path):
    mgr = JobManager(RunStore(tmp_path / "runs"), max_running=1, dataset_loader=loader, torch_threads=0,
                     log_interval_s=0.02)
    yield mgr
    mgr.shutdown(wait=True)


def wait_for(predicate, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.01)


def test_run_to_completion_persists_everything(manager: JobManager) -> None:
    job = manager.submit(tiny(epochs=2), "alice", name="first")
    snap = manager.wait(job, "alice", timeout=30)
    assert snap.status == "finished", snap.error
    assert snap.step == snap.total_steps == 16
    assert snap.progress == 1.0
    assert len(snap.epoch_records) == 2
    assert snap.final["test_accuracy"] is not None
    assert snap.latest["test_accuracy"] == snap.epoch_records[-1]["test_accuracy"]
    assert snap.loss_steps and len(snap.loss_steps) == len(snap.loss_values)
    assert "fc2" in snap.weight_angles and "fc1" in snap.signal_angles
    assert snap.checkpoint_saved

    record = manager.store.load_run(job)
    assert record.state == "finished"
    assert record.status["name"] == "first"
    assert record.status["started"] and record.status["ended"] and record.status["duration_s"] > 0
    metrics = record.metrics
    assert set(metrics) >= {"config", "history", "final", "curves"}
    assert metrics["final"]["status"] == "finished"
    assert len(metrics["history"]) == 2
    assert metrics["curves"]["loss"]["values"]
    model, meta = load_checkpoint(record.model_path)
    assert meta["run_id"] == job and meta["config"]["rule"] == "fa"


def test_cap_and_queue(manager: JobManager) -> None:
    first = manager.submit(tiny(epochs=20), "alice")
    second = manager.submit(tiny(), "alice")
    third = manager.submit(tiny(), "bob")
    assert manager.snapshot(first, "alice").status == "running"
    queued = manager.snapshot(second, "alice")
    assert queued.status == "queued" and queued.queue_position == 1
    assert manager.snapshot(third, "bob").queue_position == 2
    assert manager.counts() == {"running": 1, "queued": 2, "max_running": 1}
    assert manager.store.load_run(second).state == "queued"
    manager.stop(second, "alice")  # leaves the queue without running
    assert manager.snapshot(second, "alice").status == "stopped"
    assert manager.snapshot(third, "bob").queue_position == 1
    manager.stop(first, "alice")
    assert manager.wait(first, "alice", 30).status == "stopped"
    assert manager.wait(third, "bob", 30).status == "finished"
    assert manager.snapshot(second, "alice").step == 0


def test_pause_resume_stop(manager: JobManager) -> None:
    job = manager.submit(tiny(epochs=50), "alice")
    wait_for(lambda: manager.snapshot(job, "alice", history=False).step > 0)
    manager.pause(job, "alice")
    assert manager.snapshot(job, "alice").status == "paused"
    assert manager.store.load_run(job).state == "paused"
    time.sleep(0.15)  # let the current step finish
    step = manager.snapshot(job, "alice").step
    time.sleep(0.3)
    assert manager.snapshot(job, "alice").step == step
    with pytest.raises(JobStateError):
        manager.pause(job, "alice")
    manager.resume(job, "alice")
    assert manager.snapshot(job, "alice").status == "running"
    wait_for(lambda: manager.snapshot(job, "alice", history=False).step > step)
    manager.pause(job, "alice")
    manager.stop(job, "alice")  # stopping a paused job ends it
    snap = manager.wait(job, "alice", 30)
    assert snap.status == "stopped"
    assert snap.final["status"] == "stopped"
    assert 0 < snap.step < snap.total_steps
    assert manager.store.load_run(job).has_model
    with pytest.raises(JobStateError):
        manager.stop(job, "alice")
    with pytest.raises(JobStateError):
        manager.resume(job, "alice")


def test_owner_isolation(manager: JobManager) -> None:
    job = manager.submit(tiny(), "alice")
    assert [s.job_id for s in manager.jobs_for("alice")] == [job]
    assert manager.jobs_for("mallory") == []
    for action in (manager.pause, manager.resume, manager.stop):
        with pytest.raises(JobAccessError):
            action(job, "mallory")
    with pytest.raises(JobAccessError):
        manager.snapshot(job, "mallory")
    with pytest.raises(UnknownJobError):
        manager.snapshot("20200101-000000-mlp-fa-000000", "alice")
    with pytest.raises(JobError):
        manager.submit(tiny(), "")
    manager.wait(job, "alice", 30)


def test_bad_config_refused_at_submit(manager: JobManager) -> None:
    with pytest.raises(ConfigError, match="learning rate"):
        manager.submit(tiny(lr=0.0), "alice")
    assert manager.store.list_runs() == []


def test_diverging_run_fails_with_message(manager: JobManager) -> None:
    job = manager.submit(tiny(rule="bp", lr=1e6, epochs=2), "alice")
    snap = manager.wait(job, "alice", 30)
    assert snap.status == "failed"
    assert "diverged" in snap.error
    record = manager.store.load_run(job)
    assert record.state == "failed" and "diverged" in record.status["error"]
    assert record.metrics["final"]["status"] == "failed"
    # the manager goes on running jobs
    assert manager.wait(manager.submit(tiny(), "alice"), "alice", 30).status == "finished"


def test_loader_exception_becomes_failed(tmp_path: Path) -> None:
    def broken(name, device=None, progress=None):
        raise DatasetError("no network here")

    mgr = JobManager(RunStore(tmp_path), max_running=1, dataset_loader=broken, torch_threads=0)
    job = mgr.submit(tiny(), "alice")
    snap = mgr.wait(job, "alice", 30)
    assert snap.status == "failed" and "no network here" in snap.error
    assert mgr.store.load_run(job).state == "failed"
    mgr.shutdown()


def test_history_is_bounded() -> None:
    loss = LossHistory(max_points=100)
    loss.extend(1, [float(i) for i in range(10_000)])
    steps, values = loss.points()
    assert 50 <= len(steps) <= 100
    assert steps == sorted(steps)
    assert values[0] < 100 and values[-1] > 9000  # covers the whole run evenly
    assert abs(sum(values) / len(values) - 4999.5) < 200

    angles = AngleHistory(max_points=20)
    for step in range(500):
        angles.add(step, {"fc2": 90.0 - step / 10}, {"fc1": 45.0})
    steps, weight, signal = angles.copy()
    assert len(steps) <= 21 and steps[-1] == 499
    assert len(weight["fc2"]) == len(steps) == len(signal["fc1"])


def test_snapshot_of_a_long_run_is_bounded(tmp_path: Path) -> None:
    mgr = JobManager(RunStore(tmp_path), max_running=1, dataset_loader=loader, torch_threads=0,
                     log_interval_s=0.0, max_points=16)
    job = mgr.submit(tiny(epochs=6, batch_size=8, angle_points_per_epoch=32), "alice")
    snap = mgr.wait(job, "alice", 60)
    assert snap.status == "finished", snap.error
    assert snap.total_steps == 192
    assert len(snap.loss_steps) <= 16
    assert len(snap.angle_steps) <= 9
    mgr.shutdown()


def test_default_cap() -> None:
    assert default_max_running(cuda=True) == 4
    assert 1 <= default_max_running(cuda=False) <= 2


def test_dataset_fetcher_reports_progress_and_errors() -> None:
    calls = []

    def fake_fetch(name, progress=None):
        calls.append(name)
        progress("Downloading", 5, 10)
        if name == "cifar10":
            raise DatasetError("offline")

    fetcher = DatasetFetcher(fetch=fake_fetch)
    assert fetcher.state("mnist").status == "idle"
    assert fetcher.start("mnist")
    state = fetcher.wait("mnist", 5)
    assert state.status == "done" and state.fraction == 0.5
    fetcher.start("cifar10")
    state = fetcher.wait("cifar10", 5)
    assert state.status == "failed" and "offline" in state.error
    assert json.dumps(calls) == '["mnist", "cifar10"]'


def test_group_together_takes_one_slot_and_starts_at_once(manager: JobManager) -> None:
    blocker = manager.submit(tiny(epochs=30), "bob")
    group, ids = manager.submit_group([tiny(rule="bp"), tiny(rule="fa"), tiny(rule="fa_ex")], "alice",
                                      names=["a", None, "c"], together=True, group_name="trio")
    lone = manager.submit(tiny(), "alice")
    snaps = manager.group_jobs(group, "alice", history=False)
    assert [s.job_id for s in snaps] == ids
    assert [s.status for s in snaps] == ["queued"] * 3
    assert [s.queue_position for s in snaps] == [1, 1, 1]  # a group waits as one unit
    assert manager.snapshot(lone, "alice").queue_position == 2
    assert all(s.group == group for s in snaps) and snaps[1].name is None and snaps[0].name == "a"
    assert manager.store.load_run(ids[0]).status["group"] == group
    assert manager.group_jobs(group, "bob") == []  # another owner sees nothing
    manager.stop(blocker, "bob")
    wait_for(lambda: all(manager.snapshot(i, "alice", history=False).status != "queued" for i in ids))
    assert manager.snapshot(lone, "alice").status == "queued"  # the group holds the only slot
    assert manager.slots_in_use() == 1
    for job in ids + [lone]:
        assert manager.wait(job, "alice", 60).status == "finished"
    assert manager.group_jobs(group, "alice")[0].epoch_records  # history on request


def test_group_queued_runs_one_by_one(manager: JobManager) -> None:
    group, ids = manager.submit_group([tiny(rule="bp"), tiny(rule="fa")], "alice", together=False)
    first, second = (manager.snapshot(i, "alice") for i in ids)
    assert first.status == "running" and second.status == "queued" and second.queue_position == 1
    assert manager.store.load_run(ids[1]).status["group_together"] is False
    for job in ids:
        assert manager.wait(job, "alice", 60).status == "finished"


def test_group_validation(manager: JobManager) -> None:
    with pytest.raises(JobError):
        manager.submit_group([], "alice")
    with pytest.raises(JobError, match="one name per"):
        manager.submit_group([tiny()], "alice", names=["a", "b"])
    with pytest.raises(ConfigError):
        manager.submit_group([tiny(), tiny(lr=-1.0)], "alice")
    assert manager.store.list_runs() == []  # nothing queued when one config is bad
