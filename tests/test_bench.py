"""The benchmark: its naive reference computes what the real layer computes, its FLOP counts, and
the structure and consistency of a ``--quick`` run's output (not its timings)."""

from __future__ import annotations

import json
import math

import pytest
import torch

from conftest import synthetic_dataset
from fa_core.bench import (
    BATCH_SIZES,
    MODELS,
    NAIVE,
    RULES,
    NaiveLocallyConnected2d,
    compute_targets,
    multiply_adds,
    naive_lc_network,
    render_markdown,
    step_flops,
    step_key,
    time_epoch,
)
from fa_core.cli import main
from fa_core.models import build_model
from fa_core.training import TrainConfig, model_loss


@pytest.mark.parametrize("rule", ["bp", "fa"])
def test_naive_network_equals_the_lc_network(rule):
    """Same weights, same batch: identical loss and identical gradients of every parameter (so the
    FA error reaching lc1 through lc2's B is the same in both implementations)."""
    ours = build_model("lc_cnn", "mnist", rule, seed=3).double()
    naive = naive_lc_network("mnist", rule, seed=3).double()
    assert isinstance(naive.lc1, NaiveLocallyConnected2d) and isinstance(naive.lc2, NaiveLocallyConnected2d)
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(4, 1, 28, 28, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 10, (4,), generator=gen)
    with torch.no_grad():  # give the biases values so that their layouts are checked too
        for layer in (ours.lc1, ours.lc2):
            layer.bias.normal_(generator=gen)
        for name in ("lc1", "lc2"):
            getattr(naive, name).bias.copy_(NaiveLocallyConnected2d(getattr(ours, name)).bias)
    loss_ours = model_loss("classify", ours(x), y)
    loss_naive = model_loss("classify", naive(x), y)
    torch.testing.assert_close(loss_naive, loss_ours)
    loss_ours.backward()
    loss_naive.backward()
    for name in ("lc1", "lc2"):
        layer, twin = getattr(ours, name), getattr(naive, name)
        torch.testing.assert_close(twin.weight.grad, NaiveLocallyConnected2d._naive_layout(layer, layer.weight.grad))
        torch.testing.assert_close(twin.bias.grad, layer.bias.grad.t().reshape(twin.bias.shape))
    for name in ("fc3", "fc4"):
        torch.testing.assert_close(getattr(naive, name).weight.grad, getattr(ours, name).weight.grad)
    if rule == "fa":
        assert not torch.equal(naive.lc2.feedback, naive.lc2.weight.detach())


def test_flop_counts_are_analytic():
    mlp = build_model("mlp", "mnist", "fa", seed=0)
    assert multiply_adds(mlp) == [784 * 128, 128 * 10]
    assert step_flops(mlp, 32) == 32 * (2 * 784 * 128 * 2 + 2 * 128 * 10 * 3)
    conv = build_model("conv_cnn", "mnist", "bp", seed=0)
    lc = build_model("lc_cnn", "mnist", "fa", seed=0)
    expected = [6 * 25 * 28 * 28, 16 * 150 * 14 * 14, 16 * 7 * 7 * 128, 128 * 10]
    assert multiply_adds(conv) == expected == multiply_adds(lc)
    assert multiply_adds(naive_lc_network()) == expected


def test_time_epoch_on_a_cifar_shaped_dataset():
    data = synthetic_dataset("cifar10", n_train=96, n_test=32)
    config = TrainConfig(dataset="cifar10", model="lc_cnn", rule="fa", batch_size=32, device="cpu",
                         train_limit=64, angle_points_per_epoch=1, probe_size=16)
    record = time_epoch(config, data)
    assert record["steps"] == 2 and record["full_epoch_steps"] == 3 and record["extrapolated"]
    assert 0 < record["train_s"] <= record["total_s"]
    assert record["epoch_s"] == pytest.approx(record["train_s"] * 3 / 2)
    assert record["gflops"] > 0


def test_targets_follow_the_medians():
    steps = {step_key(m, r, b): {"median_ms": 1.0} for m in MODELS for r in RULES for b in BATCH_SIZES}
    steps.update({step_key(NAIVE, "fa", b): {"median_ms": 12.0} for b in BATCH_SIZES})
    steps[step_key("mlp", "fa", 32)] = {"median_ms": 1.1}
    epochs = [{"dataset": "mnist", "model": "mlp", "rule": "fa", "batch": 32, "epoch_s": 0.9, "extrapolated": False}]
    targets = {t["name"]: t for t in compute_targets(steps, epochs)}
    assert targets["lc_cnn FA b32: naive / ours (speed-up)"]["value"] == 12.0
    assert targets["lc_cnn FA b32: naive / ours (speed-up)"]["pass"]
    assert not targets["mlp b32: FA / BP"]["pass"] and targets["dae b32: FA / BP"]["pass"]
    assert targets["mlp FA MNIST epoch (b32), s"]["pass"]


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    code = main(["bench", "--quick", "--no-cifar", "--device", "cpu",
                 "--json", str(out / "bench.json"), "--markdown", str(out / "BENCHMARKS.md")])
    assert code == 0
    return out, json.loads((out / "bench.json").read_text())


def test_quick_bench_has_every_model_rule_and_batch(quick_run):
    _, results = quick_run
    expected = {step_key(m, r, b) for m in MODELS for r in RULES for b in BATCH_SIZES}
    expected |= {step_key(NAIVE, "fa", b) for b in BATCH_SIZES}
    assert set(results["steps"]) == expected
    for key, s in results["steps"].items():
        assert s["key"] == key and s["samples"] >= 1
        assert 0 < s["min_ms"] <= s["median_ms"] and math.isfinite(s["median_ms"])
        assert s["gflops"] == pytest.approx(s["gflop_per_step"] / (s["median_ms"] / 1e3))
        assert s["peak_fraction"] == pytest.approx(s["gflops"] / results["matmul"]["gflops"])
    assert results["matmul"]["gflops"] > 0
    assert results["quick"] and results["machine"]["torch_threads"] >= 1
    assert len(results["load_average"]["start"]) == 3


def test_quick_bench_ratios_are_consistent(quick_run):
    _, results = quick_run
    steps = results["steps"]
    ratio_targets = [t for t in results["targets"] if t["kind"] == "ratio"]
    assert len(ratio_targets) == 2 + len(MODELS) * len(BATCH_SIZES)
    for t in ratio_targets + results["ratios"]:
        assert t["value"] == pytest.approx(steps[t["numerator"]]["median_ms"] / steps[t["denominator"]]["median_ms"])
    for t in results["targets"]:
        assert t["pass"] == (t["value"] <= t["threshold"] if t["op"] == "<=" else t["value"] >= t["threshold"])


def test_quick_bench_epochs(quick_run):
    _, results = quick_run
    epochs = {(e["dataset"], e["model"], e["rule"]): e for e in results["epochs"]}
    assert set(epochs) == {("mnist", "mlp", "fa"), ("mnist", "dae", "fa"), ("mnist", "conv_cnn", "bp"),
                           ("mnist", "lc_cnn", "fa")}
    assert epochs[("mnist", "dae", "fa")]["batch"] == 128 and epochs[("mnist", "mlp", "fa")]["batch"] == 32
    for e in epochs.values():
        assert 0 < e["train_s"] <= e["total_s"] and e["steps"] >= 1 and e["full_epoch_steps"] == math.ceil(60000 / e["batch"])
    epoch_targets = {t["name"] for t in results["targets"] if t["kind"] == "epoch"}
    assert len(epoch_targets) == 3


def test_markdown_report_and_rerender(quick_run, tmp_path, capsys):
    out, results = quick_run
    md = (out / "BENCHMARKS.md").read_text()
    assert md == render_markdown(results)
    assert "| lc_cnn | fa |" in md and "| naive_lc_cnn | fa |" in md and "Quick run" in md
    assert "Load average" in md
    assert main(["bench", "--from-json", str(out / "bench.json"), "--markdown", str(tmp_path / "again.md")]) == 0
    assert (tmp_path / "again.md").read_text() == md
    assert main(["bench", "--from-json", str(out / "bench.json"), "--note", "a quiet night",
                 "--json", str(tmp_path / "noted.json"), "--markdown", str(tmp_path / "noted.md")]) == 0
    assert "Note: a quiet night" in (tmp_path / "noted.md").read_text()
    assert json.loads((tmp_path / "noted.json").read_text())["note"] == "a quiet night"
    assert "lc_cnn FA b32 / conv_cnn BP b32" in capsys.readouterr().out


def test_markdown_with_a_second_run_and_the_shared_machine_remark(quick_run, tmp_path):
    """Two JSON files render as one report (the second as its own section with its targets); the
    shared-machine remark counts only load beyond the benchmark's own threads."""
    out, results = quick_run
    second = json.loads(json.dumps(results))
    second["machine"]["torch_threads"] = 1
    second["load_average"] = {"start": [1.9, 1.0, 1.0], "end": [1.2, 1.0, 1.0]}  # 0.9 beyond its thread: quiet
    (tmp_path / "one.json").write_text(json.dumps(second))
    assert main(["bench", "--from-json", str(out / "bench.json"), "--from-json", str(tmp_path / "one.json"),
                 "--markdown", str(tmp_path / "both.md")]) == 0
    both = (tmp_path / "both.md").read_text()
    head, tail = both.split("## The same benchmark with 1 torch thread", 1)
    assert "## Targets (issue 6)" in head and "### Targets" in tail and "| naive_lc_cnn | fa |" in tail
    assert "Shared machine" not in tail
    second["load_average"]["end"] = [3.5, 1.0, 1.0]  # 2.5 beyond its one thread on this machine
    busy = render_markdown(second)
    assert ("Shared machine" in busy) == (2.5 > 0.5 * (second["machine"]["cpu_count"] or 1))


def test_time_steps_blocks_shuffle_and_min_duration():
    """Every case gets at least ``rounds * block`` timed steps plus one untimed switch step per
    round; a cheap case keeps stepping until ``min_block_s`` has passed; the visiting order
    changes between rounds."""
    import time as _time

    from fa_core.bench import StepCase, time_steps

    visits: list[str] = []

    def make(name: str, seconds: float) -> StepCase:
        def step() -> None:
            visits.append(name)
            _time.sleep(seconds)

        return StepCase(name, "fa", 32, None, step, 1, [])  # type: ignore[arg-type]

    cases = [make(f"case{i}", 0.0) for i in range(5)] + [make("slow", 0.01)]
    time_steps(cases, torch.device("cpu"), rounds=4, block=2, warmup=1, min_block_s=0.005)
    for case in cases:
        assert len(case.samples) >= 4 * 2
    slow, fast = cases[-1], cases[0]
    assert len(slow.samples) == 4 * 2  # each of its steps outlasts min_block_s: block steps a round
    assert len(fast.samples) > len(slow.samples)
    runs = [name for k, name in enumerate(visits[len(cases):]) if k == 0 or visits[len(cases) + k - 1] != name]
    rounds = [tuple(runs[r * len(cases):(r + 1) * len(cases)]) for r in range(4)]
    assert all(sorted(order) == sorted(c.model_name for c in cases) for order in rounds)
    assert len(set(rounds)) > 1
