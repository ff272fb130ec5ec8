"""The run store: atomic JSON files, listing after a restart, interruption, rename, delete, names."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from fa_core.checkpoints import load_checkpoint
from fa_core.models import build_model
from fa_core.runs import RunError, RunStore, checkpoint_path, default_runs_dir, validate_run_id

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
