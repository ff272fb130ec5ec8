"""``python -m fa_core``: train, fetch data, and the other commands, with progress bars."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from tqdm import tqdm

from .checkpoints import atomic_write_bytes, save_checkpoint
from .data import DatasetError, DATASETS
from .data import cli as data_cli
from . import bench
from . import reproduce
from . import tuning
from . import shipped
from .models import MODELS
from .rules import RULES
from .training import (
    LR_SCHEDULES,
    OPTIMIZERS,
    AnglesMeasured,
    ConfigError,
    EpochEnded,
    RunEnded,
    RunFailed,
    RunStarted,
    StepLosses,
    TrainConfig,
    paper_protocol,
    train,
)


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as indented JSON, atomically."""
    text = json.dumps(data, indent=2, allow_nan=True)
    atomic_write_bytes(path, lambda tmp: Path(tmp).write_text(text))


def _add_train_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train",
        help="train one model and write DIR/metrics.json and DIR/model.safetensors",
        description="Train a model. Unset optimizer/lr/batch-size/epochs/seed take the paper's "
        "protocol for the model (SGD 0.01, batch 32, 10 epochs for classifiers; RMSprop 1e-4, "
        "batch 128 for dae; seed 2023).",
    )
    p.add_argument("--dataset", default="mnist", choices=sorted(DATASETS))
    p.add_argument("--model", default="mlp", choices=sorted(MODELS))
    p.add_argument("--rule", default="fa", choices=sorted(RULES))
    p.add_argument("--p", type=float, help="fa_ex: percent of +c entries in B (0..100)")
    p.add_argument("--c", type=float, help="fa_ex: magnitude of B's entries (default 0.5)")
    p.add_argument("--optimizer", choices=sorted(OPTIMIZERS))
    p.add_argument("--lr", type=float)
    p.add_argument("--lr-schedule", default="constant", choices=sorted(LR_SCHEDULES),
                   help="constant, or cosine annealing from --lr towards 0 over the run")
    p.add_argument("--momentum", type=float, default=0.0)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--epochs", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--sigma", type=float, default=0.0, help="dae: noise sigma in pixel units (0..255)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:1, ...")
    p.add_argument("--train-limit", type=int, help="use only the first N training examples")
    p.add_argument("--test-limit", type=int, help="use only the first N test examples")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--runs-dir", type=Path, help="also record the run in this run store, which the app lists "
                   "(default $FA_LAB_RUNS_DIR, else <repo>/runs)")
    p.add_argument("--no-store", action="store_true", help="do not record the run in the run store")
    p.set_defaults(handler=_run_train)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The training config the ``train`` arguments describe (paper protocol for unset values)."""
    protocol = paper_protocol(args.model)
    chosen = {
        "optimizer": args.optimizer,
        "lr": args.lr,
        "batch_size": args.batch_size,
        "epochs": args.epochs,
        "seed": args.seed,
    }
    rule_params = {k: v for k, v in (("p", args.p), ("c", args.c)) if v is not None}
    return TrainConfig(
        dataset=args.dataset,
        model=args.model,
        rule=args.rule,
        rule_params=rule_params,
        lr_schedule=args.lr_schedule,
        momentum=args.momentum,
        sigma=args.sigma,
        device=args.device,
        train_limit=args.train_limit,
        test_limit=args.test_limit,
        **{k: (protocol[k] if v is None else v) for k, v in chosen.items()},
    ).validate()


def _run_train(args: argparse.Namespace) -> int:
    from .runs import RunRecorder, RunStore

    config = config_from_args(args)
    recorder = None if args.no_store else RunRecorder(RunStore(args.runs_dir), config, source="cli")
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    history: list[dict[str, Any]] = []
    bar: tqdm | None = None
    result: dict[str, Any] = {"config": config.to_dict(), "history": history, "final": {}}
    try:
        for event in train(config):
            if recorder is not None:
                recorder.handle(event)
            if isinstance(event, RunStarted):
                print(
                    f"{config.rule_label()} {config.model} on {config.dataset} ({event.train_size} train / "
                    f"{event.test_size} test) on {event.device}: {config.epochs} epochs x "
                    f"{event.steps_per_epoch} steps",
                    file=sys.stderr,
                )
                bar = tqdm(total=event.total_steps, unit="step", dynamic_ncols=True)
            elif isinstance(event, StepLosses) and bar is not None:
                bar.update(len(event.losses))
                bar.set_postfix(epoch=event.epoch, loss=f"{event.losses[-1]:.4f}")
            elif isinstance(event, AnglesMeasured):
                continue
            elif isinstance(event, EpochEnded):
                history.append(event.record)
                write_json(out / "metrics.json", result)
                tqdm.write(_epoch_line(event.record), file=sys.stderr)
            elif isinstance(event, RunEnded):
                result["final"] = {**event.final, "status": event.status}
                save_checkpoint(
                    event.model, out / "model.safetensors",
                    {"config": config.to_dict(), "final": result["final"]},
                )
            elif isinstance(event, RunFailed):
                result["final"] = {"status": "failed", "message": event.message, "steps": event.step}
                write_json(out / "metrics.json", result)
                print(f"error: {event.message}", file=sys.stderr)
                return 1
    except KeyboardInterrupt:
        result["final"] = {"status": "interrupted"}
        write_json(out / "metrics.json", result)
        if recorder is not None:
            recorder.interrupt()
        raise
    except Exception as err:
        if recorder is not None:
            recorder.fail(str(err))
        raise
    finally:
        if bar is not None:
            bar.close()
    write_json(out / "metrics.json", result)
    print(f"wrote {out / 'metrics.json'} and {out / 'model.safetensors'}", file=sys.stderr)
    if recorder is not None:
        print(f"recorded as run {recorder.run_id} in {recorder.store.root}", file=sys.stderr)
    return 0


def _epoch_line(record: dict[str, Any]) -> str:
    parts = [f"epoch {record['epoch']}", f"train loss {record['train_loss']:.4f}"]
    if record.get("test_accuracy") is not None:
        parts.append(f"train acc {record['train_accuracy']:.2f}%")
        parts.append(f"test acc {record['test_accuracy']:.2f}%")
    if record.get("test_bce") is not None:
        parts.append(f"test BCE {record['test_bce']:.4f}")
    angles = {k: v for k, v in record.get("angles", {}).items() if not math.isnan(v)}
    if angles:
        parts.append("W-B angles " + ", ".join(f"{k} {v:.1f}°" for k, v in angles.items()))
    return " | ".join(parts)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m fa_core", description="FA Lab engine")
    subparsers = parser.add_subparsers(dest="command", required=True)
    _add_train_parser(subparsers)
    data_cli.register(subparsers)
    reproduce.register(subparsers)
    tuning.register(subparsers)
    bench.register(subparsers)
    shipped.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except (ConfigError, DatasetError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
