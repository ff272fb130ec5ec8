"""Comparisons: rule keys, identical configs, group submission, paper cells, summary and CSV."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from conftest import synthetic_dataset

from fa_core.comparison import (
    RuleChoice,
    comparison_configs,
    describe_config,
    entry_from_record,
    entry_from_snapshot,
    history_csv,
    paper_cell,
    parse_rule_key,
    parse_rule_keys,
    quick_train_limit,
    share_query,
    submit_comparison,
    summary_csv,
    summary_rows,
    table_protocol,
)
from fa_core.jobs import JobManager
from fa_core.models import build_model
from fa_core.reproduce import FC_PROTOCOL
from fa_core.runs import RunStore
from fa_core.training import ConfigError, TrainConfig

DATASET = synthetic_dataset("mnist", n_train=128, n_test=64)


def loader(name, device=None, progress=None):
    return DATASET


def test_rule_keys_round_trip() -> None:
    assert parse_rule_key("bp") == RuleChoice("bp")
    fa_ex = parse_rule_key("fa_ex")
    assert fa_ex.key == "fa_ex100" and fa_ex.label == "FA_EX-100%"
    assert parse_rule_key(" FA_EX80 ").params["p"] == 80.0
    assert [c.key for c in parse_rule_keys("bp, fa,fa_ex100,fa,,fa_ex50")] == ["bp", "fa", "fa_ex100", "fa_ex50"]
    for bad in ("sgd", "fa_ex101", "fa_ex-5", ""):
        with pytest.raises(ValueError):
            parse_rule_key(bad)


def test_configs_differ_only_in_the_rule() -> None:
    base = TrainConfig(model="mlp", lr=0.05, seed=7, epochs=2, train_limit=100)
    configs = comparison_configs(base, parse_rule_keys("bp,fa,fa_ex100"))
    assert [c.rule for c in configs] == ["bp", "fa", "fa_ex"]
    for config in configs:
        data = config.to_dict()
        for key in ("rule", "rule_params"):
            data.pop(key)
        reference = base.to_dict()
        for key in ("rule", "rule_params"):
            reference.pop(key)
        assert data == reference
    # same seed -> identical initial forward weights under every rule
    weights = [build_model(c.model, c.dataset, c.rule, seed=c.seed, **c.rule_params).fc1.weight for c in configs]
    assert all((w == weights[0]).all() for w in weights)
    with pytest.raises(ConfigError, match="at least one"):
        comparison_configs(base, [])
    with pytest.raises(ConfigError, match="once"):
        comparison_configs(base, [RuleChoice("fa"), RuleChoice("fa")])
    with pytest.raises(ConfigError, match="learning rate"):
        comparison_configs(TrainConfig(lr=0.0), [RuleChoice("fa")])


def test_share_query_round_trips_the_quick_fraction() -> None:
    assert quick_train_limit(1.0, 32, 60000) is None
    assert quick_train_limit(0.1, 32, 60000) == 6000
    assert quick_train_limit(0.01, 1024, 60000) == 1024  # never fewer examples than one batch
    config = TrainConfig(model="lc_cnn", rule="fa_ex", rule_params={"p": 80.0}, lr=0.05, seed=7, epochs=3,
                         train_limit=quick_train_limit(0.05, 32, 60000)).to_dict()
    assert share_query(config) == {"dataset": "mnist", "model": "lc_cnn", "rules": "fa_ex80", "opt": "sgd",
                                   "lr": "0.05", "batch": "32", "epochs": "3", "seed": "7", "frac": "0.05"}
    both = share_query(config, rules=["bp", "fa"], mode="queued")
    assert both["rules"] == "bp,fa" and both["mode"] == "queued"
    assert share_query(TrainConfig().to_dict())["frac"] == "1"
    assert "frac" not in share_query(TrainConfig(train_limit=1234).to_dict())  # not a quick fraction
    assert share_query(TrainConfig(model="dae", sigma=100.0).to_dict())["sigma"] == "100"


def test_table_protocol() -> None:
    assert table_protocol("mlp")["lr"] == FC_PROTOCOL["lr"]
    assert table_protocol("lc_cnn") == {"optimizer": "sgd", "lr": 0.01, "batch_size": 32, "epochs": 10, "seed": 2023}
    assert table_protocol("dae")["optimizer"] == "rmsprop"


def test_paper_cells() -> None:
    exact = paper_cell(TrainConfig(model="mlp", rule="fa", **FC_PROTOCOL))
    assert exact is not None and exact.paper == 97.69 and exact.exact and exact.where == "Table 1, FA, FC"
    assert "does not state" in exact.note
    quick = paper_cell(TrainConfig(model="mlp", rule="fa_ex", rule_params={"p": 100}, **{**FC_PROTOCOL, "epochs": 3},
                                   train_limit=6000))
    assert quick.paper == 88.24 and not quick.exact
    assert any("3 epochs" in d for d in quick.differences)
    assert any("10% of the training set" in d for d in quick.differences)
    cosine = paper_cell(TrainConfig(model="lc_cnn", rule="fa", lr_schedule="cosine"))
    assert not cosine.exact and cosine.differences == ("cosine lr schedule (cell: constant)",)
    assert paper_cell(TrainConfig(model="lc_cnn", rule="fa")).paper == 98.63
    assert paper_cell(TrainConfig(model="conv_cnn", rule="bp")).paper == 98.95
    assert paper_cell(TrainConfig(model="lc_cnn", rule="bp")) is None  # the paper's BP CNN is conv_cnn
    assert paper_cell(TrainConfig(model="mlp", rule="fa_ex", rule_params={"p": 80})) is None
    assert paper_cell(TrainConfig(dataset="cifar10", model="lc_cnn", rule="fa_ex")).paper == 27.48
    dae = paper_cell({**TrainConfig(model="dae", rule="bp", sigma=255.0, optimizer="rmsprop", lr=1e-4,
                                    batch_size=128).to_dict()})
    assert dae.paper == 0.157 and dae.metric == "test_bce" and dae.exact
    assert paper_cell({"model": "nonsense"}) is None


def entry(label, rule, acc, config, weight=None, signal=None):
    return {
        "label": label, "rule": rule, "config": config, "status": "finished", "run_id": f"run-{rule}",
        "final": {"test_accuracy": acc, "train_accuracy": acc + 1, "test_loss": 0.3},
        "epochs": [{"epoch": 1, "train_loss": 0.5, "train_accuracy": acc - 5, "test_loss": 0.4,
                    "test_accuracy": acc - 2, "angles": {"fc2": 60.0}, "signal_angles": {"fc1": 50.0}},
                   {"epoch": 2, "train_loss": 0.3, "train_accuracy": acc + 1, "test_loss": 0.3,
                    "test_accuracy": acc, "angles": {"fc2": 45.0}, "signal_angles": {"fc1": 40.0}}],
        "weight_angles": weight or {}, "signal_angles": signal or {}, "elapsed": 12.34,
    }


def test_summary_rows_and_csv() -> None:
    config = TrainConfig(model="mlp", **FC_PROTOCOL).to_dict()
    entries = [
        entry("BP", "bp", 98.0, {**config, "rule": "bp"}, signal={"fc1": [0.0, 0.0]}),
        entry("FA", "fa", 97.0, {**config, "rule": "fa"},
              weight={"fc1 (B unused)": [90.0, 89.0], "fc2": [90.0, 45.0]}, signal={"fc1": [88.0, 40.0]}),
        entry("FA_EX-80%", "fa_ex", 80.0, {**config, "rule": "fa_ex", "rule_params": {"p": 80.0}}),
    ]
    rows = summary_rows(entries)
    assert [r["rule"] for r in rows] == ["BP", "FA", "FA_EX-80%"]
    assert rows[1]["measured"] == 97.0 and rows[1]["paper"] == 97.69 and rows[1]["difference"] == -0.69
    assert rows[1]["paper_cell"] == "Table 1, FA, FC"
    assert rows[1]["w_angle"] == 45.0 and rows[1]["signal_angle"] == 40.0  # the unused layer is left out
    assert rows[0]["w_angle"] is None and rows[0]["signal_angle"] == 0.0
    assert rows[2]["paper"] is None and rows[2]["difference"] is None
    assert rows[0]["epochs"] == 2 and rows[0]["time_s"] == 12.3

    parsed = list(csv.DictReader(io.StringIO(summary_csv(rows))))
    assert parsed[1]["rule"] == "FA" and parsed[1]["paper"] == "97.69" and parsed[2]["paper"] == ""
    history = list(csv.DictReader(io.StringIO(history_csv(entries))))
    assert len(history) == 6
    assert history[0]["run_id"] == "run-bp" and history[0]["epoch"] == "1"
    assert history[3]["angle_fc2"] == "45.0" and history[3]["signal_angle_fc1"] == "40.0"
    assert "sgd lr" in describe_config(config)


def test_summary_uses_latest_epoch_while_running() -> None:
    config = TrainConfig(model="mlp").to_dict()
    live = entry("FA", "fa", 90.0, config)
    live.update(status="running", final={})
    assert summary_rows([live])[0]["measured"] == 90.0


def test_submit_comparison_together_and_queued(tmp_path: Path) -> None:
    manager = JobManager(RunStore(tmp_path / "runs"), max_running=1, dataset_loader=loader, torch_threads=0,
                         log_interval_s=0.02)
    try:
        base = TrainConfig(model="mlp", epochs=1, batch_size=32, device="cpu", probe_size=32, seed=3)
        rules = parse_rule_keys("bp,fa,fa_ex100")
        group, ids = submit_comparison(manager, base, rules, "alice", together=True, name="trio")
        snaps = manager.group_jobs(group, "alice", history=False)
        assert [s.job_id for s in snaps] == ids
        assert {s.status for s in snaps} == {"running"}  # together: all three at once despite a cap of 1
        assert manager.slots_in_use() == 1
        queued_group, queued_ids = submit_comparison(manager, base, rules[:2], "alice", together=False)
        positions = [manager.snapshot(i, "alice").queue_position for i in queued_ids]
        assert positions == [1, 2]
        for job in ids + queued_ids:
            assert manager.wait(job, "alice", 60).status == "finished"
        record = manager.store.load_run(ids[2])
        assert record.status["group"] == group and record.status["group_name"] == "trio"
        assert record.name == "trio · FA_EX-100%"
        entries = [entry_from_snapshot(s) for s in manager.group_jobs(group, "alice")]
        stored = [entry_from_record(manager.store.load_run(i)) for i in ids]
        assert [e["label"] for e in entries] == [e["label"] for e in stored] == ["BP", "FA", "FA_EX-100%"]
        assert all(e["epochs"] for e in stored)
        rows = summary_rows(stored)
        assert all(r["measured"] is not None for r in rows)
        assert manager.store.load_run(queued_ids[0]).status["group_together"] is False
    finally:
        manager.shutdown(wait=True)


def test_share_query_round_trips_through_parse_share_query():
    from fa_core.comparison import parse_share_query, share_query

    config = TrainConfig(model="dae", rule="fa_ex", rule_params={"p": 80.0}, optimizer="rmsprop", lr=3e-4,
                         batch_size=128, epochs=7, seed=5, sigma=100.0)
    settings, problems = parse_share_query(share_query(config.to_dict()))
    assert problems == []
    assert settings["model"] == "dae" and settings["optimizer"] == "rmsprop" and settings["lr"] == 3e-4
    assert settings["batch_size"] == 128 and settings["epochs"] == 7 and settings["seed"] == 5
    assert settings["sigma"] == 100.0 and settings["fraction"] == 1.0
    assert [c.key for c in settings["rules"]] == ["fa_ex80"]


def test_parse_share_query_names_bad_values_instead_of_raising():
    from fa_core.comparison import parse_share_query

    settings, problems = parse_share_query({"model": "resnet", "lr": "-1", "epochs": "x", "rules": "fa_ex300",
                                            "sigma": "999", "batch": "32"})
    assert settings == {"batch_size": 32}
    assert len(problems) == 5 and any("resnet" in p for p in problems) and any("p must be" in p for p in problems)
