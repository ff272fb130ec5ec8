"""The run store: atomic JSON files, listing after a restart, interruption, rename, delete, names."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import synthetic_dataset

from fa_core.checkpoints import load_checkpoint
from fa_core.models import build_model
from fa_core.runs import (
    RunError,
    RunRecorder,
    RunStore,
    checkpoint_path,
    default_runs_dir,
    run_summary,
    validate_run_id,
)
from fa_core.training import TrainConfig, train

CONFIG = {"dataset": "mnist", "model": "mlp", "rule": "fa_ex", "rule_params": {"p": 80.0}, "epochs": 1}


def test_create_writes_config_and_status(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    run_id = store.create(CONFIG, name="  my   first run ", owner="alice")
    assert "-mlp-fa_ex80-" in run_id
    folder = tmp_path / run_id
    assert json.loads((folder / "config.json").read_text()) == CONFIG
    status = json.loads((folder / "status.json").read_text())
    assert status["status"] == "queued"
    assert status["name"] == "my first run"
    assert status["owner"] == "alice"
    assert status["created"] and status["ended"] is None


def test_writes_are_atomic_and_leave_no_temp_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = RunStore(tmp_path)
    run_id = store.create(CONFIG)
    store.write_metrics(run_id, {"config": CONFIG, "history": [{"epoch": 1}], "final": {}})
    before = (tmp_path / run_id / "metrics.json").read_text()

    def broken_dumps(*args, **kwargs):
        raise TypeError("not serialisable")

    monkeypatch.setattr("fa_core.runs.json.dumps", broken_dumps)
    with pytest.raises(TypeError):
        store.write_metrics(run_id, {"history": [object()]})
    monkeypatch.undo()
    assert (tmp_path / run_id / "metrics.json").read_text() == before

    def failing_write(tmp: str) -> None:
        Path(tmp).write_text("half")
        raise OSError("disk full")

    from fa_core.checkpoints import atomic_write_bytes

    with pytest.raises(OSError):
        atomic_write_bytes(tmp_path / run_id / "status.json", failing_write)
    assert json.loads((tmp_path / run_id / "status.json").read_text())["status"] == "queued"
    assert not [p for p in (tmp_path / run_id).iterdir() if p.name.endswith(".tmp")]


def test_list_after_restart_and_load(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    first = store.create(CONFIG, name="a")
    second = store.create({**CONFIG, "rule": "bp", "rule_params": {}}, name="b", owner="bob")
    store.write_metrics(first, {"config": CONFIG, "history": [], "final": {"test_accuracy": 90.0}})
    (tmp_path / "not-a-run").mkdir()  # a stray folder without status.json is skipped

    reopened = RunStore(tmp_path)
    ids = [r.run_id for r in reopened.list_runs()]
    assert sorted(ids) == sorted([first, second])
    assert [r.run_id for r in reopened.list_runs(owner="bob")] == [second]
    record = reopened.load_run(first)
    assert record.name == "a"
    assert record.config == CONFIG
    assert record.metrics["final"]["test_accuracy"] == 90.0
    assert not record.has_model


def test_mark_interrupted(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    running = store.create(CONFIG, status="running")
    queued = store.create(CONFIG)
    done = store.create(CONFIG)
    store.update_status(done, status="finished")

    changed = RunStore(tmp_path).mark_interrupted()
    assert sorted(changed) == sorted([running, queued])
    assert store.load_run(running).state == "interrupted"
    assert "server stopped" in store.load_run(running).status["error"]
    assert store.load_run(done).state == "finished"
    assert RunStore(tmp_path).mark_interrupted() == []


def test_rename_and_delete(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    run_id = store.create(CONFIG, name="old")
    assert store.rename(run_id, "new name")["name"] == "new name"
    assert store.load_run(run_id).name == "new name"
    assert store.rename(run_id, "   ")["name"] is None
    assert store.load_run(run_id).name == run_id
    with pytest.raises(RunError):
        store.rename(run_id, "x" * 500)
    with pytest.raises(RunError, match="stop it"):
        store.delete(run_id)  # still queued
    store.update_status(run_id, status="stopped")
    store.delete(run_id)
    assert not (tmp_path / run_id).exists()
    with pytest.raises(RunError):
        store.load_run(run_id)


@pytest.mark.parametrize("bad", ["../evil", "..", "a/b", "/etc", "", ".hidden", "a\\b", "x" * 200, "a\x00b"])
def test_path_escape_run_ids_refused(tmp_path: Path, bad: str) -> None:
    store = RunStore(tmp_path / "runs")
    with pytest.raises(RunError):
        validate_run_id(bad)
    with pytest.raises(RunError):
        store.load_run(bad)
    with pytest.raises(RunError):
        store.delete(bad)
    with pytest.raises(RunError):
        store.rename(bad, "x")
    assert store.exists(bad) is False


@pytest.mark.parametrize("bad", ["../x", "a/b", "/tmp/x", "..", " ", ".x", "a" * 100, "x\ny"])
def test_checkpoint_names_cannot_escape(tmp_path: Path, bad: str) -> None:
    with pytest.raises(RunError):
        checkpoint_path(tmp_path, bad)


def test_export_checkpoint(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "runs")
    run_id = store.create(CONFIG)
    with pytest.raises(RunError, match="no saved model"):
        store.export_checkpoint(run_id, tmp_path / "user", "mine")
    model = build_model("mlp", "mnist", "fa", seed=1)
    store.save_model(run_id, model, {"config": CONFIG})
    target = store.export_checkpoint(run_id, tmp_path / "user", "my model.safetensors")
    assert target == (tmp_path / "user" / "my model.safetensors").resolve()
    loaded, meta = load_checkpoint(target)
    assert meta["config"] == CONFIG
    assert torch.equal(loaded.state_dict()["fc1.weight"], model.state_dict()["fc1.weight"])
    with pytest.raises(RunError, match="already exists"):
        store.export_checkpoint(run_id, tmp_path / "user", "my model")
    with pytest.raises(RunError):
        store.export_checkpoint(run_id, tmp_path / "user", "../../escape")


def test_default_root_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FA_LAB_RUNS_DIR", str(tmp_path / "elsewhere"))
    assert default_runs_dir() == tmp_path / "elsewhere"
    assert RunStore().root == (tmp_path / "elsewhere").resolve()
    monkeypatch.delenv("FA_LAB_RUNS_DIR")
    assert default_runs_dir().name == "runs"


# ---- summaries, the recorder (CLI runs) and live CLI processes ----------------------------------


def test_summaries_read_final_metrics_and_cache_them(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    run_id = store.create(CONFIG, name="x", extra={"source": "cli", "group": "g1"})
    assert store.load_run(run_id).status["source"] == "cli"
    row = store.summaries()[0]
    assert row["run_id"] == run_id and row["test_accuracy"] is None and row["epochs_done"] == 0
    assert row["rule_label"] == "FA_EX-80%" and row["group"] == "g1" and row["source"] == "cli"
    store.write_metrics(run_id, {"config": CONFIG, "history": [{"epoch": 1}], "final": {"test_accuracy": 91.5}})
    store.update_status(run_id, status="finished", duration_s=12.0)
    row = store.summaries()[0]
    assert row["test_accuracy"] == 91.5 and row["epochs_done"] == 1 and row["duration_s"] == 12.0
    assert row["status"] == "finished" and not row["has_model"]
    assert store.final_metrics(run_id)["test_accuracy"] == 91.5  # cached by mtime, still right
    summary = run_summary(store.load_run(run_id), {"test_bce": float("nan")})
    assert summary["test_bce"] is None


def test_recorder_persists_a_run_from_training_events(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    config = TrainConfig(model="mlp", rule="fa", epochs=2, batch_size=32, device="cpu", probe_size=32)
    recorder = RunRecorder(store, config, name="from the cli")
    assert store.load_run(recorder.run_id).state == "running"
    for event in train(config, dataset=synthetic_dataset("mnist", n_train=128, n_test=64), log_interval_s=0.0):
        recorder.handle(event)
    record = store.load_run(recorder.run_id)
    assert record.state == "finished" and record.name == "from the cli"
    assert record.status["source"] == "cli" and record.status["pid"] is None
    assert record.status["ended"] and record.status["duration_s"] > 0
    assert len(record.metrics["history"]) == 2 and record.metrics["final"]["status"] == "finished"
    assert record.metrics["curves"]["loss"]["values"] and "fc2" in record.metrics["curves"]["angles"]["weight"]
    model, meta = load_checkpoint(record.model_path)
    assert meta["run_id"] == recorder.run_id
    assert not recorder.errors

    interrupted = RunRecorder(store, config)
    interrupted.interrupt()
    assert store.load_run(interrupted.run_id).state == "interrupted"
    failed = RunRecorder(store, config)
    failed.fail("no data")
    assert store.load_run(failed.run_id).status["error"] == "no data"
    failed.interrupt()  # a finished recorder is left alone
    assert store.load_run(failed.run_id).state == "failed"


def test_mark_interrupted_spares_a_live_cli_process(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        live = store.create(CONFIG, status="running", extra={"source": "cli", "pid": child.pid})
        dead = store.create(CONFIG, status="running", extra={"source": "cli", "pid": 2**22 + 12345})
        app = store.create(CONFIG, status="running", extra={"source": "app", "pid": child.pid})
        assert sorted(RunStore(tmp_path).mark_interrupted()) == sorted([dead, app])
        assert store.load_run(live).state == "running"
    finally:
        child.kill()
        child.wait()
    assert RunStore(tmp_path).mark_interrupted() == [live]


def test_cli_train_records_the_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import fa_core.training
    from fa_core.cli import main

    data = synthetic_dataset("mnist", n_train=64, n_test=32)
    monkeypatch.setattr(fa_core.training, "load_dataset", lambda name, device=None: data)
    out = tmp_path / "out"
    code = main(["train", "--model", "mlp", "--rule", "fa_ex", "--p", "50", "--epochs", "1", "--device", "cpu",
                 "--out", str(out), "--runs-dir", str(tmp_path / "store")])
    assert code == 0
    assert json.loads((out / "metrics.json").read_text())["final"]["status"] == "finished"  # --out as before
    (record,) = RunStore(tmp_path / "store").list_runs()
    record = RunStore(tmp_path / "store").load_run(record.run_id)
    assert record.state == "finished" and record.status["source"] == "cli" and record.has_model
    assert record.config["rule_params"]["p"] == 50.0 and record.metrics["curves"]["loss"]["steps"]
    monkeypatch.setenv("FA_LAB_RUNS_DIR", str(tmp_path / "env-store"))
    assert main(["train", "--model", "mlp", "--epochs", "1", "--device", "cpu", "--out", str(tmp_path / "o2")]) == 0
    assert len(RunStore(tmp_path / "env-store").list_runs()) == 1
    assert main(["train", "--model", "mlp", "--epochs", "1", "--device", "cpu", "--out", str(tmp_path / "o3"),
                 "--no-store"]) == 0
    assert len(RunStore(tmp_path / "env-store").list_runs()) == 1
