"""Training: a validated :class:`TrainConfig` becomes a stream of events.

:func:`train` is the only training loop in FA Lab; the CLI, the app's jobs, ``reproduce`` and
``bench`` all consume its events. The hot loop stays on the device and makes no per-step
device-to-host copy: each epoch gathers the shuffled training set once and steps take slices of
it; step losses are kept as device scalars and per-example hits (prediction == label) are written
into a device vector; both are read back only when an event is emitted (about twice a second, at
angle measurements and at epoch ends).
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from .data import InMemoryDataset, load_dataset
from .dense_step import DenseStep, is_plain_sgd
from .metrics import alignment_angles, signal_alignment_angles
from .models import DATASET_SHAPES, MODELS, Network, build_model
from .rules import get_rule

OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "sgd": lambda params, lr, momentum: torch.optim.SGD(params, lr=lr, momentum=momentum),
    "adam": lambda params, lr, momentum: torch.optim.Adam(params, lr=lr),
    "rmsprop": lambda params, lr, momentum: torch.optim.RMSprop(params, lr=lr, momentum=momentum),
}
"""Optimizer factories by name; ``momentum`` is ignored by Adam."""

LR_SCHEDULES: dict[str, Callable[[int, int], float]] = {
    "constant": lambda step, total: 1.0,
    "cosine": lambda step, total: 0.5 * (1.0 + math.cos(math.pi * step / total)),
}
"""Learning-rate schedules by name: the factor on ``lr`` before step ``step`` (0-based) of
``total``. ``cosine`` is SGDR's annealing without restarts (Loshchilov & Hutter 2017,
arXiv:1608.03983): ``lr_t = lr * (1 + cos(pi t / T)) / 2``, from ``lr`` down towards 0 over the run."""


class ConfigError(ValueError):
    """A training configuration with one or more bad values; the message lists each."""


def resolve_device(device: str) -> torch.device:
    """``"auto"`` picks CUDA when present, else the CPU; anything else must be available."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as err:
        raise ConfigError(f"unknown device {device!r}: {err}") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} was asked for but CUDA is not available here; use 'cpu' or 'auto'")
    return resolved


@dataclass
class TrainConfig:
    """Everything that defines a run. Defaults are the paper's classifier protocol.

    ``sigma`` is the denoising noise in pixel units (0..255 scale; only for ``dae``).
    ``train_limit``/``test_limit`` use only the first N examples (quick runs and tests).
    """

    dataset: str = "mnist"
    model: str = "mlp"
    rule: str = "fa"
    rule_params: dict[str, float] = field(default_factory=dict)
    optimizer: str = "sgd"
    lr: float = 0.01
    lr_schedule: str = "constant"
    momentum: float = 0.0
    batch_size: int = 32
    epochs: int = 10
    seed: int = 2023
    sigma: float = 0.0
    device: str = "auto"
    train_limit: int | None = None
    test_limit: int | None = None
    probe_size: int = 256
    angle_points_per_epoch: int = 10

    def validate(self) -> "TrainConfig":
        """Raise :class:`ConfigError` naming every bad value; return ``self`` when all are good."""
        problems: list[str] = []

        def positive_int(name: str, value: Any, allow_none: bool = False) -> None:
            if value is None and allow_none:
                return
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                problems.append(f"{name} must be a whole number >= 1, got {value!r}")

        if self.dataset not in DATASET_SHAPES:
            problems.append(f"unknown dataset {self.dataset!r}; choose one of {', '.join(DATASET_SHAPES)}")
        if self.model not in MODELS:
            problems.append(f"unknown model {self.model!r}; choose one of {', '.join(MODELS)}")
        try:
            get_rule(self.rule, **self.rule_params)
        except ValueError as err:
            problems.append(str(err))
        if self.optimizer not in OPTIMIZERS:
            problems.append(f"unknown optimizer {self.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
        if not isinstance(self.lr, (int, float)) or not math.isfinite(self.lr) or self.lr <= 0:
            problems.append(f"learning rate must be a finite number > 0, got {self.lr!r}")
        if not isinstance(self.lr_schedule, str) or self.lr_schedule not in LR_SCHEDULES:
            problems.append(f"unknown learning-rate schedule {self.lr_schedule!r}; choose one of {', '.join(LR_SCHEDULES)}")
        if not isinstance(self.momentum, (int, float)) or not 0 <= self.momentum < 1:
            problems.append(f"momentum must be in [0, 1), got {self.momentum!r}")
        positive_int("batch size", self.batch_size)
        positive_int("epochs", self.epochs)
        positive_int("train limit", self.train_limit, allow_none=True)
        positive_int("test limit", self.test_limit, allow_none=True)
        positive_int("probe size", self.probe_size)
        positive_int("angle points per epoch", self.angle_points_per_epoch)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            problems.append(f"seed must be a whole number >= 0, got {self.seed!r}")
        if not isinstance(self.sigma, (int, float)) or not math.isfinite(self.sigma) or self.sigma < 0:
            problems.append(f"noise sigma must be a finite number >= 0 (pixel units, 0..255), got {self.sigma!r}")
        if (
            isinstance(self.train_limit, int)
            and isinstance(self.batch_size, int)
            and 0 < self.train_limit < self.batch_size
        ):
            problems.append(f"batch size {self.batch_size} is larger than the {self.train_limit} training examples used")
        try:
            resolve_device(self.device)
        except ConfigError as err:
            problems.append(str(err))
        if problems:
            raise ConfigError("invalid training configuration:\n- " + "\n- ".join(problems))
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        """Build from a dict, refusing unknown keys with a clear message."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown configuration keys: {', '.join(unknown)}")
        return cls(**data)

    @property
    def task(self) -> str:
        return MODELS[self.model].task

    def rule_label(self) -> str:
        return get_rule(self.rule, **self.rule_params).display_name()


def paper_protocol(model: str) -> dict[str, Any]:
    """The reference code's protocol: SGD 0.01 / batch 32 for classifiers, RMSprop 1e-4 / 128 for the DAE."""
    if MODELS[model].task == "denoise":
        return {"optimizer": "rmsprop", "lr": 1e-4, "batch_size": 128, "epochs": 10, "seed": 2023}
    return {"optimizer": "sgd", "lr": 0.01, "batch_size": 32, "epochs": 10, "seed": 2023}


class RunControl:
    """Thread-safe stop/pause switches that a running :func:`train` checks at every step."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._running = threading.Event()
        self._running.set()

    def stop(self) -> None:
        self._stop.set()
        self._running.set()

    def pause(self) -> None:
        if not self._stop.is_set():
            self._running.clear()

    def resume(self) -> None:
        self._running.set()

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    def wait_while_paused(self) -> float:
        """Block while paused; return the seconds spent waiting."""
        if self._running.is_set():
            return 0.0
        start = time.perf_counter()
        self._running.wait()
        return time.perf_counter() - start


@dataclass
class Event:
    """Base of the events :func:`train` yields; ``kind`` names the event type."""

    kind: ClassVar[str] = "event"

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "model"}
        return {"kind": self.kind, **data}


@dataclass
class RunStarted(Event):
    kind: ClassVar[str] = "started"
    config: dict[str, Any]
    device: str
    steps_per_epoch: int
    total_steps: int
    train_size: int
    test_size: int
    model: Network


@dataclass
class StepLosses(Event):
    """Training losses of steps ``first_step .. first_step + len(losses) - 1`` (1-based)."""

    kind: ClassVar[str] = "steps"
    epoch: int
    first_step: int
    losses: list[float]
    elapsed: float
    eta: float


@dataclass
class AnglesMeasured(Event):
    """Weight angles (W vs B) and error-signal angles (FA vs BP) after ``step`` steps."""

    kind: ClassVar[str] = "angles"
    epoch: int
    step: int
    weight: dict[str, float]
    signal: dict[str, float]


@dataclass
class EpochEnded(Event):
    """``record`` holds epoch, train/test loss and accuracy (percent), angles, test_bce (dae)."""

    kind: ClassVar[str] = "epoch"
    epoch: int
    step: int
    record: dict[str, Any]
    elapsed: float
    eta: float


@dataclass
class RunEnded(Event):
    """The run finished or was stopped; ``final`` holds the last metrics and timings."""

    kind: ClassVar[str] = "ended"
    status: str
    step: int
    final: dict[str, Any]
    elapsed: float
    model: Network


@dataclass
class RunFailed(Event):
    """The run could not go on (for example the loss became NaN); ``message`` says why."""

    kind: ClassVar[str] = "failed"
    step: int
    message: str
    elapsed: float


def add_noise(clean: torch.Tensor, sigma: float, generator: torch.Generator | None) -> torch.Tensor:
    """The paper's noise: pixel + N(0, sigma^2) on the 0..255 scale, divided by 255, no clipping."""
    if sigma == 0:
        return clean
    noise = torch.randn(clean.shape, generator=generator, device=clean.device, dtype=clean.dtype)
    return clean + noise * (sigma / 255.0)


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 pixels to float32 in [0, 1] (divide by 255, as torchvision's ToTensor)."""
    return images.float().div_(255.0)


def model_loss(task: str, output: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy for classifiers; per-pixel binary cross-entropy against the clean image for denoisers."""
    if task == "classify":
        return F.cross_entropy(output, target, reduction=reduction)
    loss = F.binary_cross_entropy_with_logits(output, target, reduction="none").flatten(1).mean(1)
    return loss.mean() if reduction == "mean" else loss.sum()


StepFn = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def make_step(model: Network, optimizer: torch.optim.Optimizer) -> StepFn:
    """The training step for ``model``: ``step(inputs, target) -> (loss, output)`` updates the
    model once. Fully connected networks take the hand-written :class:`DenseStep` (the same
    update without an autograd graph); every other network runs forward and ``backward()``, then
    plain SGD in place (:func:`_plain_sgd_step`) or the optimizer's ``step()``."""
    dense = DenseStep.for_model(model, model.task, optimizer)
    if dense is not None:
        return dense
    if is_plain_sgd(optimizer):
        return _plain_sgd_step(model, optimizer)

    def step(inputs: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = model(inputs)
        loss = model_loss(model.task, out, target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.detach(), out

    return step


def _plain_sgd_step(model: Network, optimizer: torch.optim.Optimizer) -> StepFn:
    """Autograd step with plain SGD applied in place: ``p -= lr * p.grad`` per parameter (with its
    group's current ``lr``), the same update as ``torch.optim.SGD`` at a fraction of the cost
    of its ``step``/``zero_grad`` bookkeeping (0.6 ms a step of the MNIST ``lc_cnn``)."""
    groups = optimizer.param_groups

    def step(inputs: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = model(inputs)
        loss = model_loss(model.task, out, target)
        for group in groups:
            for p in group["params"]:
                p.grad = None
        loss.backward()
        with torch.no_grad():
            for group in groups:
                for p in group["params"]:
                    if p.grad is not None:
                        p.add_(p.grad, alpha=-group["lr"])
        return loss.detach(), out

    return step


@torch.no_grad()
def evaluate(
    model: Network,
    images: torch.Tensor,
    labels: torch.Tensor,
    sigma: float = 0.0,
    noise_seed: int = 0,
    batch_size: int = 1000,
) -> dict[str, float]:
    """Mean loss and accuracy (percent) of a classifier, or mean test BCE of a denoiser at ``sigma``.

    Denoisers see a fixed noise draw (``noise_seed``) so that repeated evaluations agree.
    """
    was_training = model.training
    model.eval()
    device = images.device
    generator = torch.Generator(device=device).manual_seed(noise_seed)
    total_loss = torch.zeros((), device=device, dtype=torch.float64)
    correct = torch.zeros((), device=device, dtype=torch.int64)
    for start in range(0, len(images), batch_size):
        clean = to_float(images[start : start + batch_size])
        if model.task == "classify":
            out = model(clean)
            y = labels[start : start + batch_size]
            total_loss += F.cross_entropy(out, y, reduction="sum")
            correct += (out.argmax(1) == y).sum()
        else:
            out = model(add_noise(clean, sigma, generator))
            total_loss += model_loss("denoise", out, clean, reduction="sum")
    model.train(was_training)
    n = len(images)
    if model.task == "classify":
        return {"loss": float(total_loss) / n, "accuracy": 100.0 * float(correct) / n}
    return {"loss": float(total_loss) / n, "bce": float(total_loss) / n}


class _Clock:
    """Active (unpaused) time and an ETA from the steps done so far."""

    def __init__(self, total_steps: int) -> None:
        self.start = time.perf_counter()
        self.paused = 0.0
        self.total_steps = total_steps

    def elapsed(self) -> float:
        return time.perf_counter() - self.start - self.paused

    def eta(self, steps_done: int) -> float:
        if steps_done == 0:
            return math.nan
        return self.elapsed() / steps_done * (self.total_steps - steps_done)


def _slice(dataset: InMemoryDataset, limit_train: int | None, limit_test: int | None):
    train_x, train_y = dataset.train_x[:limit_train], dataset.train_y[:limit_train]
    test_x, test_y = dataset.test_x[:limit_test], dataset.test_y[:limit_test]
    return train_x, train_y, test_x, test_y


def train(
    config: TrainConfig,
    control: RunControl | None = None,
    dataset: InMemoryDataset | None = None,
    log_interval_s: float = 0.5,
) -> Iterator[Event]:
    """Run ``config`` and yield events: started, step losses, angles, epoch ends, then ended/failed.

    Deterministic for a seed: the forward weights, the batch order and the noise depend only on
    the seed, so BP, FA and FA_EX runs with one seed see the same batches in the same order.
    """
    config.validate()
    control = control or RunControl()
    device = resolve_device(config.device)
    if dataset is None:
        dataset = load_dataset(config.dataset, device=device)
    train_x, train_y, test_x, test_y = _slice(dataset, config.train_limit, config.test_limit)
    train_x, train_y = train_x.to(device), train_y.to(device)
    test_x, test_y = test_x.to(device), test_y.to(device)
    n_train = len(train_x)
    if config.batch_size > n_train:
        raise ConfigError(f"batch size {config.batch_size} is larger than the training set ({n_train} examples)")

    model = build_model(config.model, config.dataset, config.rule, seed=config.seed, **config.rule_params).to(device)
    optimizer = OPTIMIZERS[config.optimizer](model.parameters(), config.lr, config.momentum)
    task = model.task
    step_fn = make_step(model, optimizer)
    order_gen = torch.Generator().manual_seed(config.seed)
    noise_gen = torch.Generator(device=device).manual_seed(config.seed + 1)
    noise_seed = config.seed + 2

    probe_x = to_float(test_x[: config.probe_size])
    if task == "classify":
        probe_in, probe_target = probe_x, test_y[: config.probe_size]
    else:
        probe_gen = torch.Generator(device=device).manual_seed(noise_seed)
        probe_in, probe_target = add_noise(probe_x, config.sigma, probe_gen), probe_x

    def loss_fn(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return model_loss(task, out, target)

    def measure_angles(epoch: int, step: int) -> AnglesMeasured:
        signal = signal_alignment_angles(model, probe_in, probe_target, loss_fn)
        return AnglesMeasured(epoch=epoch, step=step, weight=alignment_angles(model), signal=signal)

    steps_per_epoch = math.ceil(n_train / config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    angle_every = max(1, steps_per_epoch // config.angle_points_per_epoch)
    clock = _Clock(total_steps)
    yield RunStarted(
        config=config.to_dict(), device=str(device), steps_per_epoch=steps_per_epoch,
        total_steps=total_steps, train_size=n_train, test_size=len(test_x), model=model,
    )
    last_angles = measure_angles(0, 0)
    yield last_angles

    schedule = None if config.lr_schedule == "constant" else LR_SCHEDULES[config.lr_schedule]
    step = 0
    history: list[dict[str, Any]] = []
    losses = torch.zeros(steps_per_epoch, device=device)
    model.train()
    for epoch in range(1, config.epochs + 1):
        order = torch.randperm(n_train, generator=order_gen).to(device)
        # One gather per epoch; each step then takes a slice (a view) of the shuffled set.
        epoch_x, epoch_y = train_x[order], train_y[order]
        hits = torch.zeros(n_train, dtype=torch.bool, device=device)
        pending: list[torch.Tensor] = []
        emitted = 0
        last_emit = time.perf_counter()
        for i in range(steps_per_epoch):
            clock.paused += control.wait_while_paused()
            if control.stop_requested:
                if pending:
                    losses[emitted:i] = torch.stack(pending)
                yield from _finish(
                    "stopped", model, history, step, clock, config, test_x, test_y, noise_seed,
                    losses[:i] if i else None,
                )
                return
            start = i * config.batch_size
            clean = to_float(epoch_x[start : start + config.batch_size])
            if task == "classify":
                target, inputs = epoch_y[start : start + config.batch_size], clean
            else:
                target, inputs = clean, add_noise(clean, config.sigma, noise_gen)
            if schedule is not None:
                for group in optimizer.param_groups:
                    group["lr"] = config.lr * schedule(step, total_steps)
            loss, out = step_fn(inputs, target)
            pending.append(loss.detach())
            if task == "classify":
                torch.eq(out.argmax(1), target, out=hits[start : start + len(target)])
            step += 1
            now = time.perf_counter()
            if now - last_emit >= log_interval_s or i == steps_per_epoch - 1:
                losses[emitted : i + 1] = torch.stack(pending)
                pending.clear()
                chunk = losses[emitted : i + 1].tolist()
                if not all(math.isfinite(v) for v in chunk):
                    bad = next(emitted + 1 + j for j, v in enumerate(chunk) if not math.isfinite(v))
                    yield RunFailed(
                        step=(epoch - 1) * steps_per_epoch + bad,
                        message=(
                            f"training diverged: the loss became {chunk[bad - emitted - 1]} at epoch {epoch}, "
                            f"step {bad}. Try a smaller learning rate (now {config.lr:g})."
                        ),
                        elapsed=clock.elapsed(),
                    )
                    return
                yield StepLosses(
                    epoch=epoch, first_step=(epoch - 1) * steps_per_epoch + emitted + 1,
                    losses=chunk, elapsed=clock.elapsed(), eta=clock.eta(step),
                )
                emitted = i + 1
                last_emit = now
            if (i + 1) % angle_every == 0 and i != steps_per_epoch - 1:
                last_angles = measure_angles(epoch, step)
                yield last_angles
        last_angles = measure_angles(epoch, step)
        yield last_angles
        record = _epoch_record(
            epoch, model, losses, hits.sum(), n_train, test_x, test_y, config, noise_seed, last_angles
        )
        history.append(record)
        yield EpochEnded(epoch=epoch, step=step, record=record, elapsed=clock.elapsed(), eta=clock.eta(step))
    yield from _finish("finished", model, history, step, clock, config, test_x, test_y, noise_seed, None)


def _epoch_record(
    epoch: int,
    model: Network,
    losses: torch.Tensor,
    correct: torch.Tensor,
    n_train: int,
    test_x: torch.Tensor,
    test_y: torch.Tensor,
    config: TrainConfig,
    noise_seed: int,
    angles: AnglesMeasured,
) -> dict[str, Any]:
    test = evaluate(model, test_x, test_y, config.sigma, noise_seed)
    record: dict[str, Any] = {
        "epoch": epoch,
        "train_loss": float(losses.mean()),
        "train_accuracy": 100.0 * float(correct) / n_train if model.task == "classify" else None,
        "test_loss": test["loss"],
        "test_accuracy": test.get("accuracy"),
        "angles": angles.weight,
        "signal_angles": angles.signal,
    }
    if model.task == "denoise":
        record["test_bce"] = test["bce"]
    return record


def _finish(
    status: str,
    model: Network,
    history: list[dict[str, Any]],
    step: int,
    clock: _Clock,
    config: TrainConfig,
    test_x: torch.Tensor,
    test_y: torch.Tensor,
    noise_seed: int,
    partial_losses: torch.Tensor | None,
) -> Iterator[Event]:
    """End the run: the final metrics are the last epoch's, or a fresh test evaluation if stopped mid-epoch."""
    if partial_losses is not None or not history:
        test = evaluate(model, test_x, test_y, config.sigma, noise_seed)
        final: dict[str, Any] = {
            "epoch": len(history) + (1 if partial_losses is not None else 0),
            "partial_epoch": partial_losses is not None,
            "test_loss": test["loss"],
            "test_accuracy": test.get("accuracy"),
            "angles": alignment_angles(model),
        }
        if model.task == "denoise":
            final["test_bce"] = test["bce"]
    else:
        final = dict(history[-1])
        final["partial_epoch"] = False
    final["steps"] = step
    final["elapsed_s"] = clock.elapsed()
    yield RunEnded(status=status, step=step, final=final, elapsed=clock.elapsed(), model=model)
