"""Locked read-modify-write of shared JSON result files."""

from __future__ import annotations

import json
import multiprocessing

from fa_core.jsonstore import update_json
from fa_core.tuning import TuningStore


def _add_keys(path: str, prefix: str, count: int) -> None:
    for i in range(count):
        update_json(path, lambda data, i=i: data.__setitem__(f"{prefix}{i}", i))


def test_update_json_creates_then_merges(tmp_path):
    path = tmp_path / "sub" / "results.json"
    assert update_json(path, lambda data: data.__setitem__("a", 1)) == {"a": 1}
    assert update_json(path, lambda data: data.__setitem__("b", 2)) == {"a": 1, "b": 2}
    assert json.loads(path.read_text()) == {"a": 1, "b": 2}
    assert not [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")]


def test_processes_writing_at_once_lose_nothing(tmp_path):
    path = str(tmp_path / "shared.json")
    workers = [multiprocessing.get_context("spawn").Process(target=_add_keys, args=(path, p, 25)) for p in "xyz"]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert [w.exitcode for w in workers] == [0, 0, 0]
    data = json.loads((tmp_path / "shared.json").read_text())
    assert len(data) == 75 and all(data[f"{p}{i}"] == i for p in "xyz" for i in range(25))


def test_two_tuning_stores_on_one_file_keep_both_results(tmp_path):
    first = TuningStore.open(tmp_path / "tuning.json")
    second = TuningStore.open(tmp_path / "tuning.json")  # opened before the first writes
    first.put("mlp/FA/final", {"test": 97.0})
    second.put("lc_cnn/FA/final", {"test": 98.0})
    assert TuningStore.open(tmp_path / "tuning.json").data == {"mlp/FA/final": {"test": 97.0},
                                                                 "lc_cnn/FA/final": {"test": 98.0}}
    assert second.data == TuningStore.open(tmp_path / "tuning.json").data
