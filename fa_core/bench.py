"""``python -m fa_core bench``: how fast every model trains under every rule, on this machine.

Measured in one run on one device:

* **steps** -- the median time of one training step (forward, loss, backward, optimizer step) of
  each model (``mlp``, ``lc_cnn``, ``conv_cnn``, ``dae``) x rule (``bp``, ``fa``, ``fa_ex``) at
  batch 32 and 256 on MNIST-shaped random inputs, plus :class:`NaiveLocallyConnected2d`'s network
  under FA (the authors' way: the input is copied once per output channel) as the baseline to
  beat; ``conv_cnn`` under BP (shared filters) is the practical floor. The cases are timed
  round-robin, a block of steps each per round (at least 3 steps and 50 ms) in a new random order
  every round, so that a load change on a shared machine hits every case alike and no case always
  runs right after the same other one.
* **epochs** -- the wall time of one MNIST epoch per model through the real training loop
  (:func:`fa_core.training.train`, batch 32, ``dae`` 128, in-loop alignment probes included, the
  test-set evaluation reported apart), and of one CIFAR-10 ``lc_cnn`` epoch.
* **matmul** -- the machine's float32 matrix-multiply throughput ``2 n^3 / t`` (best of several),
  against which every run's achieved rate is expressed.

FLOPs are counted analytically: a layer with ``m`` multiply-adds per example costs ``2 m`` in the
forward pass, ``2 m`` for its weight gradient and ``2 m`` for its input gradient (skipped for the
first layer, whose input needs none), so a step costs ``batch * sum(2 m * (3 or 2))``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .checkpoints import atomic_write_bytes
from .data import InMemoryDataset, load_dataset
from .layers import FeedbackConv2d, FeedbackLayer, LocallyConnected2d, feedback_layers, uniform_init
from .models import Network, build_model
from .rules import LearningRule
from .training import (
    OPTIMIZERS,
    AnglesMeasured,
    EpochEnded,
    RunStarted,
    StepLosses,
    TrainConfig,
    make_step,
    paper_protocol,
    resolve_device,
    train,
)

MODELS = ("mlp", "lc_cnn", "conv_cnn", "dae")
RULES = ("bp", "fa", "fa_ex")
BATCH_SIZES = (32, 256)
NAIVE = "naive_lc_cnn"
"""Name of the naive locally connected reference network in the results."""

EPOCH_CASES: tuple[tuple[str, str, str], ...] = (
    ("mnist", "mlp", "fa"),
    ("mnist", "dae", "fa"),
    ("mnist", "conv_cnn", "bp"),
    ("mnist", "lc_cnn", "fa"),
)
CIFAR_CASE = ("cifar10", "lc_cnn", "fa")

EPOCH_TARGETS_S = {"mlp": 1.0, "dae": 2.0, "lc_cnn": 20.0}
"""Issue 6: full MNIST epoch wall time at most this many seconds (batch 32; ``dae`` 128)."""
NAIVE_SPEEDUP_TARGET = 10.0
CONV_FLOOR_TARGET = 3.0
FA_OVER_BP_TARGET = 1.05


# ---------------------------------------------------------------- naive reference


class NaiveLocalFeedback(torch.autograd.Function):
    """The authors' locally connected layer: ``y[n, o] = sum_(c, kk) P[n, c, :, :, kk] * W[o, c, :, :, kk]``.

    ``P`` (``N, C, H', W', k*k``) is broadcast against ``W`` (``O, C, H', W', k*k``), which
    materialises an ``N x O x C x H' x W' x k*k`` product: the input copied once per output
    channel. The backward pass does the same with the operand ``M`` (``W`` or ``B``) for
    ``dL/dP = sum_o dL/dy[:, o] * M[o]`` (folded back onto the input) and with ``P`` for
    ``dL/dW = sum_n dL/dy[n] * P[n]``.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        x: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor,
        operand: torch.Tensor,
        kernel_size: int,
        stride: int,
        padding: int,
    ) -> torch.Tensor:
        n, c, h, w = x.shape
        padded = F.pad(x, (padding,) * 4)
        windows = padded.unfold(2, kernel_size, stride).unfold(3, kernel_size, stride)
        patches = windows.contiguous().view(n, c, windows.shape[2], windows.shape[3], -1)
        ctx.save_for_backward(patches, operand)
        ctx.geometry = (h, w, kernel_size, stride, padding)
        return (patches.unsqueeze(1) * weight).sum((2, 5)) + bias

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor):  # type: ignore[override]
        patches, operand = ctx.saved_tensors
        h, w, k, stride, padding = ctx.geometry
        g = grad_out[:, :, None, :, :, None]
        grad_x = None
        if ctx.needs_input_grad[0]:
            grad_patches = (g * operand).sum(1)
            n, c, out_h, out_w, kk = grad_patches.shape
            columns = grad_patches.permute(0, 1, 4, 2, 3).reshape(n, c * kk, out_h * out_w)
            grad_x = F.fold(columns, (h, w), k, padding=padding, stride=stride)
        grad_w = (g * patches.unsqueeze(1)).sum(0)
        grad_b = grad_out.sum(0)
        return grad_x, grad_w, grad_b, None, None, None, None


class NaiveLocallyConnected2d(FeedbackLayer):
    """A locally connected layer computed as the authors' code computes it (see
    :class:`NaiveLocalFeedback`); ``weight`` and ``feedback`` are ``(O, C, H', W', k*k)``, ``bias``
    ``(O, H', W')``. :meth:`from_layer` copies a :class:`LocallyConnected2d` (same function)."""

    def __init__(self, layer: LocallyConnected2d) -> None:
        super().__init__()
        self.kernel_size = layer.kernel_size
        self.stride = layer.stride
        self.padding = layer.padding
        self.weight = nn.Parameter(self._naive_layout(layer, layer.weight.detach()))
        bias = layer.bias.detach() if layer.bias is not None else torch.zeros(1, layer.out_channels)
        self.bias = nn.Parameter(bias.t().reshape(layer.out_channels, *layer.output_size).clone())
        self._setup_feedback(layer.rule, uniform_init(1.0 / layer.kernel_size), None)
        if layer.feedback is not None:
            self.feedback = self._naive_layout(layer, layer.feedback)

    @staticmethod
    def _naive_layout(layer: LocallyConnected2d, tensor: torch.Tensor) -> torch.Tensor:
        """(L, C*k*k, O) -> (O, C, H', W', k*k)."""
        filters = layer.filters(tensor)  # (O, C, k, k, H', W')
        o, c, k, _, out_h, out_w = filters.shape
        return filters.permute(0, 1, 4, 5, 2, 3).reshape(o, c, out_h, out_w, k * k).contiguous()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return NaiveLocalFeedback.apply(
            x, self.weight, self.bias, self.backward_operand(), self.kernel_size, self.stride, self.padding
        )


def naive_lc_network(dataset: str = "mnist", rule: str | LearningRule = "fa", seed: int = 0) -> Network:
    """The ``lc_cnn`` network of ``seed`` with every locally connected layer replaced by its naive twin."""
    model = build_model("lc_cnn", dataset, rule, seed=seed)
    for name, layer in list(model.named_children()):
        if isinstance(layer, LocallyConnected2d):
            setattr(model, name, NaiveLocallyConnected2d(layer))
    return model


# ---------------------------------------------------------------- FLOPs and timing


def multiply_adds(model: nn.Module) -> list[int]:
    """Multiply-adds per example of each rule-aware layer, in forward order."""
    layers = feedback_layers(model)
    positions: dict[str, int] = {}
    handles = [
        layer.register_forward_hook(lambda _m, _i, out, name=name: positions.__setitem__(name, out[0, 0].numel()))
        for name, layer in layers
        if isinstance(layer, FeedbackConv2d)
    ]
    try:
        with torch.no_grad():
            param = next(model.parameters())
            model(torch.zeros(1, *model.input_shape, device=param.device, dtype=param.dtype))
    finally:
        for handle in handles:
            handle.remove()
    return [layer.weight.numel() * positions.get(name, 1) for name, layer in layers]


def step_flops(model: nn.Module, batch: int) -> int:
    """FLOPs of one training step: ``batch * sum(2 m * 3)``, the first layer ``2 m * 2`` (no input gradient)."""
    macs = multiply_adds(model)
    return batch * sum(2 * m * (2 if i == 0 else 3) for i, m in enumerate(macs))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_gflops(device: torch.device, size: int, repeats: int) -> dict[str, float]:
    """Float32 ``size x size`` matrix-multiply throughput ``2 n^3 / t`` in GFLOP/s (best and median)."""
    gen = torch.Generator().manual_seed(0)
    a = torch.rand(size, size, generator=gen).to(device)
    b = torch.rand(size, size, generator=gen).to(device)
    out = torch.empty(size, size, device=device)
    torch.mm(a, b, out=out)
    rates = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        torch.mm(a, b, out=out)
        _sync(device)
        rates.append(2 * size**3 / (time.perf_counter() - start) / 1e9)
    return {"size": size, "gflops": max(rates), "median_gflops": statistics.median(rates)}


@dataclass
class StepCase:
    """One timed configuration: a model, its optimizer and a fixed random batch."""

    model_name: str
    rule: str
    batch: int
    model: Network
    step: Callable[[], None]
    flops: int
    samples: list[float]

    @property
    def key(self) -> str:
        return step_key(self.model_name, self.rule, self.batch)


def step_key(model: str, rule: str, batch: int) -> str:
    return f"{model}/{rule}/b{batch}"


def make_step_case(model_name: str, rule: str, batch: int, device: torch.device, seed: int = 0) -> StepCase:
    """A training step of ``model_name`` under ``rule`` (the paper's optimizer) on random MNIST-shaped data."""
    if model_name == NAIVE:
        model = naive_lc_network("mnist", rule, seed)
        protocol = paper_protocol("lc_cnn")
    else:
        model = build_model(model_name, "mnist", rule, seed=seed)
        protocol = paper_protocol(model_name)
    model = model.to(device)
    model.train()
    optimizer = OPTIMIZERS[protocol["optimizer"]](model.parameters(), protocol["lr"], 0.0)
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(batch, *model.input_shape, generator=gen).to(device)
    target = torch.randint(0, 10, (batch,), generator=gen).to(device) if model.task == "classify" else x

    train_step = make_step(model, optimizer)

    def step() -> None:
        train_step(x, target)

    return StepCase(model_name, rule, batch, model, step, step_flops(model, batch), [])


def time_steps(
    cases: list[StepCase],
    device: torch.device,
    rounds: int,
    block: int,
    warmup: int,
    log: Callable[[str], None] = lambda _m: None,
    min_block_s: float = 0.0,
) -> None:
    """Round-robin timing. Each round visits every case once, in a new seeded random order (so
    no case always follows the same one), runs one untimed step (it pays for switching models),
    then times steps until at least ``block`` steps and ``min_block_s`` seconds are done (cheap
    steps get many samples, expensive ones ``block``); ``warmup`` untimed steps per case first."""
    for case in cases:
        for _ in range(warmup):
            case.step()
    _sync(device)
    order = list(cases)
    for done in range(rounds):
        log(f"  round {done + 1}/{rounds}")
        random.Random(done).shuffle(order)
        for case in order:
            case.step()
            _sync(device)
            began = time.perf_counter()
            timed = 0
            while timed < block or time.perf_counter() - began < min_block_s:
                start = time.perf_counter()
                case.step()
                _sync(device)
                case.samples.append(time.perf_counter() - start)
                timed += 1


def step_record(case: StepCase, peak_gflops: float) -> dict[str, Any]:
    samples = sorted(case.samples)
    median = statistics.median(samples)
    q1, _, q3 = statistics.quantiles(samples, n=4) if len(samples) > 1 else (median, median, median)
    gflops = case.flops / median / 1e9
    return {
        "key": case.key,
        "model": case.model_name,
        "rule": case.rule,
        "batch": case.batch,
        "median_ms": median * 1e3,
        "min_ms": samples[0] * 1e3,
        "iqr_ms": (q3 - q1) * 1e3,
        "samples": len(samples),
        "gflop_per_step": case.flops / 1e9,
        "gflops": gflops,
        "peak_fraction": gflops / peak_gflops,
    }


def time_epoch(config: TrainConfig, dataset: InMemoryDataset) -> dict[str, Any]:
    """One epoch of ``config`` through :func:`fa_core.training.train`.

    ``train_s`` runs from the first step to the last step's loss (the in-loop alignment probes
    the UI shows are included); ``total_s`` adds the end-of-epoch probe and test-set evaluation.
    ``epoch_s`` is ``train_s`` scaled to the full training set when ``train_limit`` cut it short.
    """
    config = TrainConfig(**{**config.to_dict(), "epochs": 1}).validate()
    started: RunStarted | None = None
    first = last = end = math.nan
    for event in train(config, dataset=dataset):
        now = time.perf_counter()
        if isinstance(event, RunStarted):
            started = event
        elif isinstance(event, AnglesMeasured) and event.step == 0:
            first = now
        elif isinstance(event, StepLosses) and started is not None:
            if event.first_step + len(event.losses) - 1 == started.steps_per_epoch:
                last = now
        elif isinstance(event, EpochEnded):
            end = now
    if started is None:
        raise RuntimeError("training produced no start event")
    full_steps = math.ceil(len(dataset.train_x) / config.batch_size)
    train_s = last - first
    flops = step_flops(started.model, config.batch_size) * started.steps_per_epoch
    return {
        "dataset": config.dataset,
        "model": config.model,
        "rule": config.rule,
        "batch": config.batch_size,
        "steps": started.steps_per_epoch,
        "full_epoch_steps": full_steps,
        "train_s": train_s,
        "total_s": end - first,
        "epoch_s": train_s * full_steps / started.steps_per_epoch,
        "extrapolated": started.steps_per_epoch != full_steps,
        "gflops": flops / train_s / 1e9,
    }


# ---------------------------------------------------------------- ratios and targets


def _target(name: str, value: float, op: str, threshold: float, **extra: Any) -> dict[str, Any]:
    passed = value <= threshold if op == "<=" else value >= threshold
    return {"name": name, "value": value, "op": op, "threshold": threshold, "pass": bool(passed), **extra}


def compute_targets(steps: dict[str, dict[str, Any]], epochs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Issue 6's targets from the measured step medians and epoch times.

    A ratio entry names its ``numerator`` and ``denominator`` step keys; its ``value`` is the
    quotient of their median times.
    """

    def ratio(name: str, num: str, den: str, op: str, threshold: float) -> dict[str, Any]:
        value = steps[num]["median_ms"] / steps[den]["median_ms"]
        return _target(name, value, op, threshold, kind="ratio", numerator=num, denominator=den)

    lc_fa = step_key("lc_cnn", "fa", 32)
    targets = [
        ratio("lc_cnn FA b32: naive / ours (speed-up)", step_key(NAIVE, "fa", 32), lc_fa, ">=", NAIVE_SPEEDUP_TARGET),
        ratio("lc_cnn FA b32 / conv_cnn BP b32", lc_fa, step_key("conv_cnn", "bp", 32), "<=", CONV_FLOOR_TARGET),
    ]
    for batch in BATCH_SIZES:
        for model in MODELS:
            targets.append(
                ratio(f"{model} b{batch}: FA / BP", step_key(model, "fa", batch), step_key(model, "bp", batch),
                      "<=", FA_OVER_BP_TARGET)
            )
    for record in epochs:
        limit = EPOCH_TARGETS_S.get(record["model"])
        if record["dataset"] == "mnist" and limit is not None:
            targets.append(
                _target(f"{record['model']} {record['rule'].upper()} MNIST epoch (b{record['batch']}), s",
                        record["epoch_s"], "<=", limit, kind="epoch", extrapolated=record["extrapolated"])
            )
    return targets


def informational_ratios(steps: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Ratios without a target: FA_EX / BP per model and batch, naive / ours at batch 256."""
    out = []
    pairs = [(step_key(m, "fa_ex", b), step_key(m, "bp", b), f"{m} b{b}: FA_EX / BP") for b in BATCH_SIZES for m in MODELS]
    pairs.append((step_key(NAIVE, "fa", 256), step_key("lc_cnn", "fa", 256), "lc_cnn FA b256: naive / ours"))
    pairs.append((step_key("lc_cnn", "fa", 256), step_key("conv_cnn", "bp", 256), "lc_cnn FA b256 / conv_cnn BP b256"))
    for num, den, name in pairs:
        out.append({"name": name, "numerator": num, "denominator": den,
                    "value": steps[num]["median_ms"] / steps[den]["median_ms"]})
    return out


# ---------------------------------------------------------------- the run


@dataclass(frozen=True)
class BenchPlan:
    """How long to measure: the full plan, or ``--quick`` (structure only, seconds)."""

    rounds: int
    block: int
    warmup: int
    matmul_size: int
    matmul_repeats: int
    mnist_train_limit: int | None
    cifar_train_limit: int | None
    test_limit: int | None
    angle_points_per_epoch: int
    probe_size: int
    min_block_s: float = 0.0

    @classmethod
    def for_mode(cls, quick: bool) -> "BenchPlan":
        if quick:
            return cls(rounds=2, block=1, warmup=0, matmul_size=256, matmul_repeats=5,
                       mnist_train_limit=256, cifar_train_limit=64, test_limit=128,
                       angle_points_per_epoch=2, probe_size=64)
        defaults = TrainConfig()
        return cls(rounds=12, block=3, warmup=3, matmul_size=1024, matmul_repeats=20, min_block_s=0.05,
                   mnist_train_limit=None, cifar_train_limit=None, test_limit=None,
                   angle_points_per_epoch=defaults.angle_points_per_epoch, probe_size=defaults.probe_size)


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             cwd=Path(__file__).resolve().parent, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(device: torch.device) -> dict[str, Any]:
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "cpu": _cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def run_bench(
    quick: bool = False,
    device: str = "auto",
    threads: int | None = None,
    cifar: bool = True,
    log: Callable[[str], None] = lambda _m: None,
    command: str = "python -m fa_core bench",
) -> dict[str, Any]:
    """Measure everything (see the module docstring) and return the JSON-ready results."""
    plan = BenchPlan.for_mode(quick)
    torch_device = resolve_device(device)
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads or os.cpu_count() or 1)
    load_start = os.getloadavg()
    started = time.perf_counter()
    if torch.get_num_threads() > 1 and load_start[0] > 0.5 * (os.cpu_count() or 1):
        log(f"warning: load average {load_start[0]:.1f} on {os.cpu_count()} CPUs; with {torch.get_num_threads()} "
            "threads every parallel region waits for descheduled threads (try --threads 1)")
    try:
        machine = machine_info(torch_device)
        log(f"matmul throughput ({plan.matmul_size}x{plan.matmul_size} float32)")
        matmul = matmul_gflops(torch_device, plan.matmul_size, plan.matmul_repeats)
        peak = matmul["gflops"]
        cases = [make_step_case(m, r, b, torch_device) for b in BATCH_SIZES for m in MODELS for r in RULES]
        cases += [make_step_case(NAIVE, "fa", b, torch_device) for b in BATCH_SIZES]
        log(f"training steps: {len(cases)} cases x {plan.rounds} rounds")
        time_steps(cases, torch_device, plan.rounds, plan.block, plan.warmup, log, plan.min_block_s)
        steps = {case.key: step_record(case, peak) for case in cases}
        del cases
        epochs = []
        epoch_cases: list[tuple[str, str, str]] = list(EPOCH_CASES) + ([CIFAR_CASE] if cifar else [])
        for dataset_name, model, rule in epoch_cases:
            limit = plan.cifar_train_limit if dataset_name == "cifar10" else plan.mnist_train_limit
            log(f"one {dataset_name} epoch: {model} {rule}" + (f" (first {limit} examples)" if limit else ""))
            dataset = load_dataset(dataset_name, device=torch_device)
            config = TrainConfig(dataset=dataset_name, model=model, rule=rule, device=str(torch_device),
                                 train_limit=limit, test_limit=plan.test_limit,
                                 angle_points_per_epoch=plan.angle_points_per_epoch, probe_size=plan.probe_size,
                                 **paper_protocol(model))
            record = time_epoch(config, dataset)
            record["peak_fraction"] = record["gflops"] / peak
            epochs.append(record)
        load_end = os.getloadavg()
    finally:
        torch.set_num_threads(previous_threads)
    return {
        "schema": 1,
        "quick": quick,
        "command": command,
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "duration_s": time.perf_counter() - started,
        "machine": machine,
        "load_average": {"start": list(load_start), "end": list(load_end)},
        "versions": {"python": platform.python_version(), "torch": torch.__version__, "commit": _git_commit()},
        "plan": plan.__dict__,
        "matmul": matmul,
        "steps": steps,
        "epochs": epochs,
        "targets": compute_targets(steps, epochs),
        "ratios": informational_ratios(steps),
    }


# ---------------------------------------------------------------- reports


def _mark(passed: bool) -> str:
    return "PASS" if passed else "FAIL"


def step_table(results: dict[str, Any]) -> list[str]:
    """Markdown rows: one per model x rule, columns per batch (median ms, GFLOP/s, % of peak)."""
    steps = results["steps"]
    header = "| model | rule | " + " | ".join(f"b{b} ms | b{b} GFLOP/s | b{b} % peak" for b in BATCH_SIZES) + " |"
    lines = [header, "|" + "---|" * (2 + 3 * len(BATCH_SIZES))]
    rows = [(m, r) for m in MODELS for r in RULES] + [(NAIVE, "fa")]
    for model, rule in rows:
        cells = []
        for batch in BATCH_SIZES:
            s = steps[step_key(model, rule, batch)]
            cells += [f"{s['median_ms']:.2f}", f"{s['gflops']:.1f}", f"{100 * s['peak_fraction']:.1f}"]
        lines.append(f"| {model} | {rule} | " + " | ".join(cells) + " |")
    return lines


def epoch_table(results: dict[str, Any]) -> list[str]:
    lines = ["| dataset | model | rule | batch | steps | epoch s | incl. test eval s | GFLOP/s | % peak |",
             "|---|---|---|---|---|---|---|---|---|"]
    for e in results["epochs"]:
        est = " (extrapolated)" if e["extrapolated"] else ""
        lines.append(
            f"| {e['dataset']} | {e['model']} | {e['rule']} | {e['batch']} | {e['steps']} | {e['epoch_s']:.2f}{est} | "
            f"{e['total_s']:.2f} | {e['gflops']:.1f} | {100 * e['peak_fraction']:.1f} |"
        )
    return lines


def target_table(results: dict[str, Any]) -> list[str]:
    lines = ["| target | measured | required | result |", "|---|---|---|---|"]
    for t in results["targets"]:
        lines.append(f"| {t['name']} | {t['value']:.2f} | {t['op']} {t['threshold']:g} | {_mark(t['pass'])} |")
    for r in results["ratios"]:
        lines.append(f"| {r['name']} | {r['value']:.2f} | (report) | |")
    return lines


def render_text(results: dict[str, Any]) -> str:
    """The console report: step table, epoch table, targets."""
    load = results["load_average"]
    head = [
        f"device {results['machine']['device']}, {results['machine']['torch_threads']} torch threads, "
        f"matmul peak {results['matmul']['gflops']:.1f} GFLOP/s, load average {load['start'][0]:.2f} -> {load['end'][0]:.2f}"
        + (" (quick: structure only, timings not meaningful)" if results["quick"] else ""),
        "",
        "training step, median",
    ]
    return "\n".join(head + step_table(results) + ["", "one epoch"] + epoch_table(results)
                     + ["", "targets"] + target_table(results)) + "\n"


def _run_summary(results: dict[str, Any]) -> list[str]:
    """The bullet list that says how, where and under what load a run was measured."""
    m, v, load = results["machine"], results["versions"], results["load_average"]
    passed = sum(t["pass"] for t in results["targets"])
    lines = [
        f"- Machine: {m['cpu']}, {m['cpu_count']} CPUs, {m['platform']}; device `{m['device']}`"
        + (f" ({m['gpu']})" if m.get("gpu") else "") + f", {m['torch_threads']} torch threads.",
        f"- Versions: Python {v['python']}, torch {v['torch']}; commit {v['commit']}.",
        f"- Matrix-multiply throughput ({results['matmul']['size']}^2 float32): best "
        f"{results['matmul']['gflops']:.1f} GFLOP/s, median {results['matmul']['median_gflops']:.1f}.",
        f"- Load average (1/5/15 min) at start {', '.join(f'{x:.2f}' for x in load['start'])}, at end "
        f"{', '.join(f'{x:.2f}' for x in load['end'])}; run took {results['duration_s']:.0f} s.",
        f"- Targets met: {passed} of {len(results['targets'])}.",
    ]
    if results["quick"]:
        lines.append("- **Quick run**: tiny repeats and epoch subsets; the timings are not meaningful.")
    # The benchmark's own threads count in the load average; what is left is other work.
    others = max(load["start"][0], load["end"][0]) - (m.get("torch_threads") or 1)
    if others > 0.5 * (m["cpu_count"] or 1):
        lines.append(
            f"- **Shared machine**: the 1-minute load average exceeded the benchmark's own {m['torch_threads']} "
            f"threads by {others:.1f} on {m['cpu_count']} CPUs, so other processes ran during the measurement. "
            "Absolute times are inflated and noisy; the step ratios are steadier because the cases are timed "
            "round-robin under the same load."
        )
    if results.get("note"):
        lines += ["", f"Note: {results['note']}"]
    return lines


def render_markdown(results: dict[str, Any], others: list[dict[str, Any]] | tuple = ()) -> str:
    """``BENCHMARKS.md`` from a results dict; each of ``others`` (e.g. the same benchmark with
    another thread count) follows as a section with its own summary, step table and targets."""
    lines = [
        "# Benchmarks",
        "",
        f"Generated by `{results['command']}` on {results['date']}; render again from the JSON with "
        "`python -m fa_core bench --from-json FILE [--from-json FILE2 ...] --markdown BENCHMARKS.md`.",
        "",
        *_run_summary(results),
    ]
    lines += ["", "## Training step (forward, backward, optimizer), median of the timed steps", ""]
    lines += step_table(results)
    lines += ["", "## One epoch through the training loop", ""]
    lines += epoch_table(results)
    lines += ["", "## Targets (issue 6)", ""]
    lines += target_table(results)
    for other in others:
        threads = other["machine"].get("torch_threads")
        lines += ["", f"## The same benchmark with {threads} torch thread{'s' if threads != 1 else ''}", "",
                  f"Generated by `{other['command']}` on {other['date']}.", "", *_run_summary(other)]
        lines += ["", "### Training step", ""] + step_table(other)
        lines += ["", "### One epoch", ""] + epoch_table(other)
        lines += ["", "### Targets", ""] + target_table(other)
    return "\n".join(lines) + "\n"


def _write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, lambda tmp: Path(tmp).write_text(text))


def register(subparsers: Any) -> None:
    """Add ``bench`` to the CLI."""
    p = subparsers.add_parser(
        "bench",
        help="time training steps and epochs of every model x rule; print a table, write JSON/Markdown",
        description="Training speed: median step times (batch 32 and 256), epoch times, a naive "
        "locally connected reference, the shared-conv floor and the matmul peak, with issue 6's targets.",
    )
    p.add_argument("--quick", action="store_true", help="tiny repeats and epoch subsets (checks the output, not the speed)")
    p.add_argument("--json", type=Path, help="write the results as JSON here")
    p.add_argument("--markdown", type=Path, help="write the results as Markdown here (e.g. BENCHMARKS.md)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, ...")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: every core)")
    p.add_argument("--no-cifar", action="store_true", help="skip the CIFAR-10 lc_cnn epoch")
    p.add_argument("--from-json", type=Path, action="append",
                   help="do not measure: report the results in this JSON file (repeatable: later files become "
                   "extra sections of the Markdown, e.g. another thread count)")
    p.add_argument("--note", help="a remark about the conditions, kept in the JSON and shown in the Markdown")
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    others: list[dict[str, Any]] = []
    if args.from_json:
        results, *others = [json.loads(path.read_text()) for path in args.from_json]
    else:
        if args.threads is not None and args.threads < 1:
            raise ValueError("--threads must be at least 1")
        command = " ".join(["python -m fa_core", *sys.argv[1:]]) if sys.argv[1:2] == ["bench"] else "python -m fa_core bench"
        results = run_bench(
            quick=args.quick, device=args.device, threads=args.threads, cifar=not args.no_cifar,
            log=lambda msg: print(msg, file=sys.stderr, flush=True), command=command,
        )
    if args.note is not None:
        results["note"] = args.note
    print(render_text(results), end="")
    if args.json is not None:
        _write_text(args.json, json.dumps(results, indent=2))
        print(f"wrote {args.json}", file=sys.stderr)
    if args.markdown is not None:
        _write_text(args.markdown, render_markdown(results, others))
        print(f"wrote {args.markdown}", file=sys.stderr)
    return 0

