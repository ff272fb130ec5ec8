"""Checkpoints: safetensors + JSON metadata, B saved, hostile files refused."""

from __future__ import annotations

import pickle

import pytest
import torch

from fa_core import CheckpointError, build_model, load_checkpoint, read_checkpoint_metadata, save_checkpoint


def test_round_trip_keeps_weights_and_feedback(tmp_path):
    model = build_model("lc_cnn", "mnist", "fa", seed=3)
    path = save_checkpoint(model, tmp_path / "m.safetensors", {"final": {"test_accuracy": 12.5}})
    loaded, meta = load_checkpoint(path)
    assert meta["model"] == "lc_cnn" and meta["rule"] == {"name": "fa"} and meta["final"]["test_accuracy"] == 12.5
    for (name, a), b in zip(model.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), name
    assert torch.equal(loaded.lc2.feedback, model.lc2.feedback)
    x = torch.rand(3, 1, 28, 28)
    torch.testing.assert_close(loaded(x), model(x))
    assert read_checkpoint_metadata(path)["dataset"] == "mnist"


def test_fa_ex_rule_parameters_survive(tmp_path):
    model = build_model("mlp", "mnist", "fa_ex", p=80)
    loaded, _ = load_checkpoint(save_checkpoint(model, tmp_path / "x.safetensors"))
    assert loaded.rule.display_name() == "FA_EX-80%"
    assert torch.equal(loaded.fc2.feedback, model.fc2.feedback)


def test_pickle_is_refused_without_unpickling(tmp_path):
    class Boom:
        def __reduce__(self):
            return (pytest.fail, ("the file was unpickled",))

    path = tmp_path / "evil.safetensors"
    path.write_bytes(pickle.dumps(Boom()))
    with pytest.raises(CheckpointError, match="pickle"):
        load_checkpoint(path)
    torch_path = tmp_path / "torch.pt"
    torch.save({"w": torch.zeros(2)}, torch_path)
    with pytest.raises(CheckpointError, match="zip"):
        load_checkpoint(torch_path)


def test_truncated_and_garbage_files_are_refused(tmp_path):
    good = save_checkpoint(build_model("mlp", "mnist", "fa"), tmp_path / "g.safetensors")
    data = good.read_bytes()
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError):
        load_checkpoint(cut)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"hello world, not a model")
    with pytest.raises(CheckpointError):
        load_checkpoint(junk)
    with pytest.raises(CheckpointError, match="no checkpoint file"):
        load_checkpoint(tmp_path / "missing.safetensors")


def test_shape_mismatch_is_refused(tmp_path):
    from safetensors.torch import save_file

    model = build_model("mlp", "mnist", "bp")
    tensors = {k: v.contiguous() for k, v in model.state_dict().items()}
    tensors["fc1.weight"] = torch.zeros(64, 784)
    path = tmp_path / "bad.safetensors"
    import json

    save_file(tensors, str(path), metadata={"fa_lab": json.dumps(model.describe())})
    with pytest.raises(CheckpointError, match="fc1.weight has shape"):
        load_checkpoint(path)


def test_metadata_that_names_no_model_is_refused(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "other.safetensors"
    save_file({"a": torch.zeros(1)}, str(path), metadata={"fa_lab": '{"model": "resnet", "dataset": "mnist", "rule": "bp"}'})
    with pytest.raises(CheckpointError, match="no buildable model"):
        load_checkpoint(path)
    plain = tmp_path / "plain.safetensors"
    save_file({"a": torch.zeros(1)}, str(plain))
    with pytest.raises(CheckpointError, match="not an FA Lab checkpoint"):
        load_checkpoint(plain)
