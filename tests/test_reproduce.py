"""The reproduce command on a tiny budget, and its resume logic."""

from __future__ import annotations

import json

import pytest

from fa_core import reproduce
from fa_core.cli import main
from fa_core.reproduce import Budget, ResultStore, is_close, run_table, table_cells


def test_tables_hold_the_paper_cells_and_extra_rows():
    t1 = {c.cell_id: c for c in table_cells("table1")}
    assert t1["table1/FA/CNN"].paper == 98.63 and t1["table1/FA/CNN"].config.model == "lc_cnn"
    assert t1["table1/BP/CNN"].config.model == "conv_cnn"
    assert t1["table1/BP (locally connected)/CNN"].config.model == "lc_cnn" and t1["table1/BP (locally connected)/CNN"].paper is None
    assert t1["table1/FA (shared conv)/CNN"].config.rule == "fa"
    t3 = table_cells("table3")
    assert {(c.row, c.config.sigma) for c in t3} == {(r, s) for r in ("BP", "FA") for s in (0.0, 100.0, 255.0)}
    assert all(c.config.optimizer == "rmsprop" and c.config.batch_size == 128 for c in t3)
    assert {c.config.dataset for c in table_cells("table2")} == {"cifar10"}
    with pytest.raises(ValueError, match="unknown table"):
        table_cells("table9")


def test_one_cell_tiny_budget_then_resume_skips_it(tmp_path):
    budget = Budget(epochs=1, train_limit=256, test_limit=128, device="cpu")
    only = lambda cell: cell.cell_id == "table3/FA/sigma 100"  # noqa: E731
    messages: list[str] = []
    store = run_table(["table3"], 1, tmp_path, budget, only, progress=messages.append)
    entry = store.data["table3/FA/sigma 100"]
    run = entry["runs"]["2023"]
    assert run["status"] == "finished" and 0 < run["value"] < 1.0
    assert run["config"]["sigma"] == 100.0 and run["config"]["epochs"] == 1
    assert entry["paper"] == 0.112
    md = (tmp_path / "results.md").read_text()
    assert "| FA | sigma 100 |" in md and "(n=1)" in md and "not run" in md
    assert "### Table 1" in md and "### Table 2" in md  # every table, not only the one just run
    # Resume: a second call does not train again.
    messages.clear()
    run_table(["table3"], 1, tmp_path, budget, only, progress=messages.append)
    assert messages and all(m.startswith("skip") for m in messages)
    assert json.loads((tmp_path / "results.json").read_text()) == ResultStore.open(tmp_path / "results.json").data


def test_failed_runs_are_rerun_on_resume(tmp_path, monkeypatch):
    cell = next(c for c in table_cells("table3") if c.cell_id == "table3/BP/sigma 0")
    store = ResultStore.open(tmp_path / "results.json")
    store.put(cell, 2023, {"status": "failed", "message": "boom", "wall_s": 1.0})
    calls = []
    monkeypatch.setattr(reproduce, "run_cell", lambda c, cfg, on_event=None: calls.append(cfg) or {"status": "finished", "value": 0.1, "wall_s": 0.0})
    run_table(["table3"], 1, tmp_path, Budget(epochs=1, train_limit=128, test_limit=64), lambda c: c is not None and c.cell_id == cell.cell_id, progress=lambda m: None)
    assert len(calls) == 1 and calls[0].seed == 2023


def test_cli_runs_a_filtered_cell(tmp_path, capsys):
    code = main(["reproduce", "table1", "--seeds", "1", "--cell", "table1/FA/FC", "--epochs", "1",
                 "--train-limit", "320", "--test-limit", "200", "--device", "cpu", "--out", str(tmp_path)])
    assert code == 0
    data = json.loads((tmp_path / "results.json").read_text())
    assert list(data) == ["table1/FA/FC"]
    assert 0 <= data["table1/FA/FC"]["runs"]["2023"]["value"] <= 100


def test_tolerance():
    assert is_close(98.2, 98.63, "test_accuracy") and not is_close(97.9, 98.63, "test_accuracy")
    assert is_close(0.085, 0.088, "test_bce") and not is_close(0.095, 0.088, "test_bce")


def test_judge_reads_the_direction_of_each_metric():
    assert reproduce.judge(0.3, "test_accuracy") == "close"
    assert reproduce.judge(-0.8, "test_accuracy") == "worse" and reproduce.judge(0.8, "test_accuracy") == "better"
    assert reproduce.judge(0.004, "test_bce") == "close"
    assert reproduce.judge(0.01, "test_bce") == "worse" and reproduce.judge(-0.01, "test_bce") == "better"
    assert reproduce.judge(None, "test_bce") == "none"


def test_table_view_summarises_stored_runs(tmp_path):
    cell = next(c for c in table_cells("table3") if c.cell_id == "table3/BP/sigma 0")
    store = ResultStore.open(tmp_path / "results.json")
    store.put(cell, 2023, {"status": "finished", "value": 0.0810, "wall_s": 10.0})
    store.put(cell, 2024, {"status": "finished", "value": 0.0830, "wall_s": 30.0})
    store.put(cell, 2025, {"status": "failed", "message": "nan", "wall_s": 1.0})
    rows = {r["cell_id"]: r for r in reproduce.table_view("table3", reproduce.load_results(tmp_path / "results.json"))}
    row = rows["table3/BP/sigma 0"]
    assert row["n"] == 2 and row["mean"] == pytest.approx(0.082) and row["wall_s_per_seed"] == pytest.approx(20.0)
    assert row["diff"] == pytest.approx(0.082 - 0.0816) and row["verdict"] == "close"
    assert rows["table3/FA/sigma 0"]["n"] == 0 and rows["table3/FA/sigma 0"]["verdict"] == "none"
    assert len(rows) == 6


def test_load_results_missing_and_corrupt(tmp_path):
    assert reproduce.load_results(tmp_path / "absent.json") == {}
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="not a readable results file"):
        reproduce.load_results(bad)
    bad.write_text("[1, 2]")
    with pytest.raises(ValueError, match="expected a JSON object"):
        reproduce.load_results(bad)


def test_two_stores_on_one_file_merge_instead_of_overwriting(tmp_path):
    a, b = (next(c for c in table_cells("table3") if c.cell_id == f"table3/{r}/sigma 0") for r in ("BP", "FA"))
    first = ResultStore.open(tmp_path / "results.json")
    second = ResultStore.open(tmp_path / "results.json")  # opened before the first writes
    first.put(a, 2023, {"status": "finished", "value": 0.08, "wall_s": 1.0})
    second.put(b, 2023, {"status": "finished", "value": 0.09, "wall_s": 1.0})
    data = json.loads((tmp_path / "results.json").read_text())
    assert set(data) == {a.cell_id, b.cell_id}


def test_summed_loss_rows_take_the_paper_value_and_step():
    cells = {c.cell_id: c for c in table_cells("table1")}
    summed = cells["table1/FA (summed loss)/CNN"]
    assert summed.paper == 98.63 and summed.config.model == "lc_cnn"
    assert summed.config.lr == pytest.approx(0.01 * summed.config.batch_size) and summed.config.optimizer == "sgd"
    assert cells["table1/BP (summed loss)/CNN"].config.model == "conv_cnn"
