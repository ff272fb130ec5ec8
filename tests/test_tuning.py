"""Per-rule tuning: validation split, choice of the best (candidate, epochs), resumable search."""

from __future__ import annotations

import pytest

from conftest import synthetic_dataset
from fa_core import tuning
from fa_core.cli import main
from fa_core.tuning import Candidate, best_choice, run_search, validation_split


def test_validation_split_holds_out_the_last_training_images():
    data = synthetic_dataset()
    split = validation_split(data, 100)
    n = len(data.train_x)
    assert len(split.train_x) == n - 100 and len(split.test_x) == 100
    assert split.test_x.data_ptr() == data.train_x[n - 100 :].data_ptr()
    with pytest.raises(ValueError, match="validation size"):
        validation_split(data, n)


def test_best_choice_reads_direction_and_prefers_fewer_epochs():
    a, b = Candidate("sgd", 0.1, 32, 3), Candidate("adam", 1e-3, 32, 3)
    assert best_choice([(a, [90.0, 95.0, 94.0]), (b, [93.0, 95.0, 95.0])], True) == (a, 2, 95.0)
    assert best_choice([(a, [0.2, 0.1]), (b, [0.15, 0.12])], False) == (a, 2, 0.1)
    assert best_choice([(a, []), (b, [0.3])], False) == (b, 1, 0.3)
    with pytest.raises(ValueError):
        best_choice([(a, [])], True)


def test_search_then_final_run_and_resume(tmp_path, monkeypatch):
    data = synthetic_dataset()
    monkeypatch.setitem(tuning.SEARCHES, "mlp", tuning.Search(
        "mlp", (("FA", "fa", ()),),
        (Candidate("sgd", 0.1, 32, 2), Candidate("sgd", 1e-6, 32, 2)),
        "test_accuracy", paper=(("FA", 97.69),),
    ))
    messages: list[str] = []
    store = run_search("mlp", tmp_path, "cpu", dataset=data, progress=messages.append)
    searched = [k for k in store.data if "/search/" in k]
    assert len(searched) == 2 and all(len(store.data[k]["validation"]) == 2 for k in searched)
    final = store.data["mlp/FA/final"]
    assert final["chosen"]["candidate"] == "sgd 0.1, batch 32"  # lr 1e-6 cannot learn in 2 epochs
    assert 0.0 <= final["test"] <= 100.0 and final["config"]["epochs"] == final["chosen"]["epochs"]
    md = (tmp_path / "tuning.md").read_text()
    assert "| FA | 0 | sgd 0.1, batch 32" in md and "97.69" in md
    rows = tuning.tuned_rows(store.data)
    assert len(rows) == 1 and rows[0]["rule"] == "FA" and rows[0]["paper"] == 97.69
    assert rows[0]["test"] == final["test"] and rows[0]["protocol"].startswith("sgd 0.1, batch 32, ")
    messages.clear()
    run_search("mlp", tmp_path, "cpu", dataset=data, progress=messages.append)
    assert messages == []  # everything was already done


def test_cli_tune_help_names_the_models(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["tune", "--help"])
    assert stop.value.code == 0
    out = capsys.readouterr().out
    assert all(model in out for model in ("mlp", "dae", "lc_cnn"))


def test_scheduled_candidate_counts_only_at_its_last_epoch():
    flat, cosine = Candidate("sgd", 0.1, 32, 3), Candidate("adam", 1e-3, 32, 3, schedule="cosine")
    assert cosine.name == "adam 0.001, batch 32, cosine over 3 ep"
    # the cosine run's best epoch (2) is not a protocol one can retrain; its last epoch is
    assert best_choice([(flat, [90.0, 94.0, 93.0]), (cosine, [91.0, 96.0, 95.0])], True) == (cosine, 3, 95.0)
    assert best_choice([(flat, [90.0, 96.0, 93.0]), (cosine, [91.0, 97.0, 95.0])], True) == (flat, 2, 96.0)


def test_capped_search_anneals_a_scheduled_candidate_over_the_cap(tmp_path, monkeypatch):
    data = synthetic_dataset()
    monkeypatch.setitem(tuning.SEARCHES, "mlp", tuning.Search(
        "mlp", (("FA", "fa", ()),),
        (Candidate("sgd", 1e-6, 32, 5), Candidate("sgd", 0.2, 32, 5, schedule="cosine")),
        "test_accuracy", paper=(("FA", 97.69),),
    ))
    store = run_search("mlp", tmp_path, "cpu", dataset=data, max_epochs=2, progress=lambda line: None)
    final = store.data["mlp/FA/final"]
    assert final["chosen"]["candidate"] == "sgd 0.2, batch 32, cosine over 2 ep"
    assert final["chosen"]["epochs"] == 2
    assert final["config"]["lr_schedule"] == "cosine" and final["config"]["epochs"] == 2
