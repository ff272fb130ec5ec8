"""Shipped checkpoints: every file reloads and reproduces its stated metric; the build machinery.

The stated metrics are on the whole MNIST test set; CI re-measures them on the 1,000-digit test
sample shipped beside the checkpoints (exactly, against the sample metric stored at build time,
and statistically, against the full-test-set metric).
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from fa_core import shipped
from fa_core.checkpoints import load_checkpoint, read_checkpoint_metadata, save_checkpoint
from fa_core.cli import main as cli_main
from fa_core.models import build_model
from fa_core.shipped import (
    SHIPPED,
    ShippedSpec,
    available_models,
    build_all,
    is_built,
    load_test_sample,
    measure,
    shipped_dir,
    shipped_path,
    user_entries,
)

MAX_TOTAL_BYTES = 25 * 1024 * 1024


@pytest.fixture(scope="module")
def sample() -> tuple[torch.Tensor, torch.Tensor]:
    return load_test_sample()


def test_registry() -> None:
    names = [s.name for s in SHIPPED]
    assert len(names) == len(set(names)) == 12
    classifiers = {(s.model, s.rule, s.rule_params.get("p")) for s in SHIPPED if s.task == "classify"}
    assert classifiers == {(m, r, p) for m in ("mlp", "lc_cnn") for r, p in (("bp", None), ("fa", None), ("fa_ex", 100.0))}
    daes = {(s.rule, s.sigma) for s in SHIPPED if s.task == "denoise"}
    assert daes == {(r, s) for r in ("bp", "fa") for s in (0, 100, 255)}
    for model in ("mlp", "lc_cnn", "dae"):  # BP and FA of an architecture share one protocol
        protocols = {tuple(sorted(s.protocol.items())) for s in SHIPPED if s.model == model and s.rule != "fa_ex"}
        assert len(protocols) == 1
    # the one documented exception: FA_EX lc_cnn uses the mlp protocol (Adam wrecks FA_EX)
    by_name = {s.name: s for s in SHIPPED}
    assert by_name["mnist_mlp_fa_ex100"].protocol == by_name["mnist_mlp_bp"].protocol
    assert by_name["mnist_lc_cnn_fa_ex100"].protocol["optimizer"] == "sgd"
    assert by_name["mnist_lc_cnn_bp"].protocol["optimizer"] == "adam"
    assert all(s.config().seed == 2023 for s in SHIPPED)


def test_total_size_within_budget() -> None:
    files = [shipped_path(s) for s in SHIPPED] + [shipped_dir() / shipped.SAMPLE_FILE]
    assert all(f.is_file() for f in files), [f.name for f in files if not f.is_file()]
    assert sum(f.stat().st_size for f in files) <= MAX_TOTAL_BYTES


def _tolerance(metric: str, value: float, n: int) -> float:
    """Four standard errors of a mean over ``n`` test digits (plus a little slack)."""
    if metric == "accuracy":
        p = value / 100
        return 100 * 4 * math.sqrt(p * (1 - p) / n) + 0.2
    return 0.08 * value  # per-image BCE varies by roughly +-40% around its mean: 4 SE ~ 5%


@pytest.mark.parametrize("spec", SHIPPED, ids=lambda s: s.name)
def test_shipped_checkpoint_reloads_and_reproduces_its_metric(spec: ShippedSpec, sample) -> None:
    path = shipped_path(spec)
    model, meta = load_checkpoint(path)
    assert is_built(spec), f"{path.name} is stale: rebuild with `python -m fa_core checkpoints build`"
    assert meta["model"] == spec.model and meta["dataset"] == "mnist"
    assert meta["shipped"]["command"] == "python -m fa_core checkpoints build"
    stated = meta["test_metrics"]
    assert stated["n"] == 10000
    images, labels = sample
    got = measure(model, spec, images, labels, curve=False)
    key = "accuracy" if spec.task == "classify" else "bce"
    # exactly what the build measured on the same sample
    assert got[key] == pytest.approx(stated["sample"][key], abs=1e-3 if key == "accuracy" else 1e-5)
    # and statistically consistent with the whole-test-set number
    assert abs(got[key] - stated[key]) <= _tolerance(key, stated[key], len(images))
    if spec.task == "denoise":
        curve = stated["bce_curve"]
        assert curve["sigmas"][0] == 0 and curve["sigmas"][-1] == 255
        assert curve["bce"][curve["sigmas"].index(int(spec.sigma))] == pytest.approx(stated["bce"], rel=1e-6)


def test_shipped_models_are_good_enough() -> None:
    """Sanity floors: the paper's protocol-level results, not the tuned ones."""
    metrics = {s.name: read_checkpoint_metadata(shipped_path(s))["test_metrics"] for s in SHIPPED}
    assert metrics["mnist_mlp_bp"]["accuracy"] > 97 and metrics["mnist_mlp_fa"]["accuracy"] > 96
    assert metrics["mnist_lc_cnn_bp"]["accuracy"] > 97.5 and metrics["mnist_lc_cnn_fa"]["accuracy"] > 97
    assert metrics["mnist_mlp_fa_ex100"]["accuracy"] > 80
    for sigma, bp_paper in ((0, 0.0816), (100, 0.105), (255, 0.157)):
        assert metrics[f"mnist_dae_bp_sigma{sigma}"]["bce"] < bp_paper * 1.1
        assert metrics[f"mnist_dae_fa_sigma{sigma}"]["bce"] < bp_paper * 1.25


def test_available_models_lists_shipped_and_user_models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_mnist) -> None:
    runs, user = tmp_path / "runs", tmp_path / "user"
    monkeypatch.setenv("FA_LAB_RUNS_DIR", str(runs))
    monkeypatch.setenv("FA_LAB_CHECKPOINTS_DIR", str(user))
    from fa_core.runs import RunStore

    store = RunStore(runs)
    run_id = store.create({"model": "dae", "rule": "fa", "dataset": "mnist", "sigma": 50.0}, name="my dae")
    store.save_model(run_id, build_model("dae", "mnist", "fa", seed=0),
                     {"config": {"sigma": 50.0}, "final": {"test_bce": 0.2}})
    save_checkpoint(build_model("mlp", "mnist", "fa", seed=0), user / "mine.safetensors",
                    {"final": {"test_accuracy": 91.0}})
    save_checkpoint(build_model("mlp", "cifar10", "fa", seed=0), user / "cifar.safetensors", {})
    (user / "junk.safetensors").write_bytes(b"\x80\x04 not a checkpoint")

    daes = available_models("denoise")
    assert [e.source for e in daes].count("shipped") == 6
    mine = [e for e in daes if e.source == "run"]
    assert len(mine) == 1 and mine[0].sigma == 50.0 and mine[0].rule == "fa" and "my dae" in mine[0].label
    classifiers = available_models("classify")
    assert [e.source for e in classifiers].count("shipped") == 6
    users = [e for e in classifiers if e.source == "user"]
    assert [e.label for e in users] == ["saved · mine"] and users[0].metrics == {"accuracy": 91.0}
    assert len(user_entries()) == 2  # the CIFAR model and the junk file are left out


def test_build_is_resumable_and_remeasures(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_mnist) -> None:
    proto = {"optimizer": "sgd", "lr": 0.1, "momentum": 0.0, "batch_size": 64, "epochs": 1, "seed": 1}
    specs = [
        ShippedSpec("t_mlp_fa", "mlp", "fa", proto, "test"),
        ShippedSpec("t_dae_bp", "dae", "bp", proto, "test", sigma=100),
    ]
    monkeypatch.setattr(shipped, "SHIPPED", specs)
    monkeypatch.setattr(shipped, "SHIPPED_BY_NAME", {s.name: s for s in specs})
    logs: list[str] = []
    built = build_all(folder=tmp_path, log=logs.append, dataset=tiny_mnist)
    assert [p.name for p in built] == ["t_mlp_fa.safetensors", "t_dae_bp.safetensors"]
    assert (tmp_path / shipped.SAMPLE_FILE).is_file()
    meta = read_checkpoint_metadata(tmp_path / "t_dae_bp.safetensors")
    assert meta["shipped"]["storage_dtype"] == "float16"
    assert set(meta["test_metrics"]) >= {"bce", "bce_by_sigma", "bce_curve", "sample"}
    with open(tmp_path / "t_dae_bp.safetensors", "rb") as fh:
        assert b'"F16"' in fh.read(4096)  # stored as float16
    model, _ = load_checkpoint(tmp_path / "t_mlp_fa.safetensors")
    assert model.fc1.weight.dtype == torch.float32  # loaded back as float32

    assert build_all(folder=tmp_path, log=logs.append, dataset=tiny_mnist) == []
    assert sum("up to date" in line for line in logs) == 2

    # a file with the right config but missing metrics is re-measured, not retrained
    model, meta = load_checkpoint(tmp_path / "t_mlp_fa.safetensors")
    save_checkpoint(model, tmp_path / "t_mlp_fa.safetensors", {"config": meta["config"], "shipped": meta["shipped"]})
    assert not is_built(specs[0], tmp_path)
    assert build_all(folder=tmp_path, log=logs.append, dataset=tiny_mnist) == []
    assert any("re-measured" in line for line in logs) and is_built(specs[0], tmp_path)

    # a changed protocol makes the file stale
    changed = ShippedSpec("t_mlp_fa", "mlp", "fa", {**proto, "lr": 0.05}, "test")
    assert not is_built(changed, tmp_path)


def test_cli_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["checkpoints", "list", "--markdown"]) == 0
    out = capsys.readouterr().out
    assert "`mnist_lc_cnn_fa.safetensors`" in out and "Total:" in out
