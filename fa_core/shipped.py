"""The checkpoints FA Lab ships, the command that builds them, and the models a page can choose.

``python -m fa_core checkpoints build`` trains every entry of :data:`SHIPPED` with the project's
own :func:`~fa_core.training.train` (fixed seeds, one CPU thread by default), evaluates the saved
weights on the whole MNIST test set and writes ``checkpoints/<name>.safetensors`` whose metadata
holds the config, the protocol's rationale and the measured test metrics. It is resumable: an
entry whose file exists with the same training config is skipped (``--force`` rebuilds).

Tensors are stored as float16 to keep all twelve files under 25 MB; the metrics in the metadata
are measured on the float16 weights as loaded back (:func:`~fa_core.checkpoints.load_checkpoint`
rebuilds the float32 model and copies the values in).

Other commands: ``checkpoints list`` (the files and their metrics), ``checkpoints verify``
(reload each and re-measure on the test set or a sample), ``checkpoints robustness`` (the
preprocessing study of :func:`fa_core.preprocess.robustness_study`, written as JSON),
``checkpoints latency`` (the Playground pages' work per interaction, :mod:`fa_core.playground_latency`).

:func:`available_models` lists the shipped checkpoints together with the models the user trained
in the app (run store) or saved as checkpoints (``checkpoints/user``), for the Playground pages.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .checkpoints import CheckpointError, load_checkpoint, read_checkpoint_metadata, save_checkpoint
from .models import MODELS, Network
from .training import ConfigError, EpochEnded, RunEnded, RunFailed, RunStarted, TrainConfig, evaluate, train

REPO_ROOT = Path(__file__).resolve().parents[1]
CHECKPOINTS_DIR_ENV = "FA_LAB_SHIPPED_DIR"
DAE_SIGMAS = (0, 100, 255)
EVAL_NOISE_SEED = 0
"""Noise seed of the denoisers' stated test BCE (one fixed draw of the test-set noise)."""
SAMPLE_FILE = "mnist_test_sample.npz"
"""A fixed random sample of MNIST test digits shipped beside the checkpoints, so the Playground
and the tests work before (or without) the MNIST download."""
SAMPLE_SIZE = 1000
SAMPLE_SEED = 2023

MLP_PROTOCOL = {
    "optimizer": "sgd", "lr": 0.1, "momentum": 0.0, "batch_size": 32, "epochs": 10, "seed": 2023,
}
MLP_NOTE = (
    "SGD lr 0.1 (10x the paper's 0.01), batch 32, 10 epochs, seed 2023, the same for all rules. "
    "A protocol search on MNIST mlp (paper SGD 0.01 / SGD 0.1 / SGD 0.05 + momentum 0.9 / Adam 1e-3) "
    "gave BP 94.5/97.9/97.9/97.9, FA 92.8/97.0/96.8/97.4, FA_EX 81.2/87.1/89.0/11.7 %: the paper's "
    "0.01 is far from converged in 10 epochs, and Adam breaks FA_EX, so SGD 0.1 is used."
)
LC_PROTOCOL = {
    "optimizer": "adam", "lr": 1e-3, "momentum": 0.0, "batch_size": 32, "epochs": 5, "seed": 2023,
}
LC_NOTE = (
    "Adam lr 1e-3, batch 32, 5 epochs, seed 2023 for BP and FA (the paper: SGD 0.01 for 10 epochs). "
    "A search on FA lc_cnn (test accuracy after epochs 1/2) gave paper SGD 0.01: 75.7/83.3 %, SGD 0.1: "
    "90.1/90.8 %, SGD 0.01 + momentum 0.9: 90.1/90.6 %, Adam 1e-3: 95.9/96.8 %: with SGD the "
    "locally connected layers barely move within a CPU budget (BP too: 90.9 % after 470 steps of "
    "SGD 0.1), Adam scales their steps. 5 epochs, not 10: ~50 ms a step on one CPU thread."
)
LC_FA_EX_PROTOCOL = {
    "optimizer": "sgd", "lr": 0.1, "momentum": 0.0, "batch_size": 32, "epochs": 5, "seed": 2023,
}
LC_FA_EX_NOTE = (
    "SGD lr 0.1, batch 32, 5 epochs, seed 2023 (the mlp protocol), an exception to the lc_cnn "
    "protocol (Adam 1e-3) on purpose: with a constant B, the error FA_EX-100% sends below the "
    "softmax output is c * sum_k (p_k - y_k) = 0, so only the output layer receives a real signal; "
    "Adam divides the remaining rounding noise by its own tiny scale and turns it into full-size "
    "random steps, which wrecks the features (FA_EX lc_cnn with Adam 1e-3: 36.6 % then 12.6 %; with "
    "Adam 3e-4: 31.1 % then 36.4 %; mlp with Adam 1e-3: 11.7 %). SGD leaves them as fixed random "
    "features under a trained read-out, which is what the paper's FA_EX numbers measure."
)
DAE_PROTOCOL = {
    "optimizer": "rmsprop", "lr": 1e-4, "momentum": 0.0, "batch_size": 128, "epochs": 10, "seed": 2023,
}
DAE_NOTE = "The paper's protocol: RMSprop lr 1e-4, batch 128, 10 epochs, seed 2023, BCE against the clean image."


@dataclass(frozen=True)
class ShippedSpec:
    """One shipped checkpoint: what to train and how."""

    name: str
    model: str
    rule: str
    protocol: dict[str, Any]
    note: str
    rule_params: dict[str, float] = field(default_factory=dict)
    sigma: float = 0.0
    dataset: str = "mnist"

    @property
    def filename(self) -> str:
        return f"{self.name}.safetensors"

    @property
    def task(self) -> str:
        return MODELS[self.model].task

    def config(self, device: str = "cpu") -> TrainConfig:
        return TrainConfig(
            dataset=self.dataset, model=self.model, rule=self.rule, rule_params=dict(self.rule_params),
            sigma=float(self.sigma), device=device, **self.protocol,
        ).validate()

    def rule_label(self) -> str:
        return self.config().rule_label()


def _specs() -> list[ShippedSpec]:
    specs = []
    for model, protocol, note, ex_protocol, ex_note in (
        ("mlp", MLP_PROTOCOL, MLP_NOTE, MLP_PROTOCOL, MLP_NOTE),
        ("lc_cnn", LC_PROTOCOL, LC_NOTE, LC_FA_EX_PROTOCOL, LC_FA_EX_NOTE),
    ):
        specs.append(ShippedSpec(f"mnist_{model}_bp", model, "bp", protocol, note))
        specs.append(ShippedSpec(f"mnist_{model}_fa", model, "fa", protocol, note))
        specs.append(ShippedSpec(f"mnist_{model}_fa_ex100", model, "fa_ex", ex_protocol, ex_note, {"p": 100.0}))
    for sigma in DAE_SIGMAS:
        for rule in ("bp", "fa"):
            specs.append(ShippedSpec(f"mnist_dae_{rule}_sigma{sigma}", "dae", rule, DAE_PROTOCOL, DAE_NOTE, sigma=sigma))
    return specs


SHIPPED: list[ShippedSpec] = _specs()
SHIPPED_BY_NAME = {spec.name: spec for spec in SHIPPED}

_MATCH_KEYS = ("dataset", "model", "rule", "rule_params", "optimizer", "lr", "momentum", "batch_size",
               "epochs", "seed", "sigma", "train_limit")


def shipped_dir() -> Path:
    """``$FA_LAB_SHIPPED_DIR`` if set, else ``<repo>/checkpoints``."""
    configured = os.environ.get(CHECKPOINTS_DIR_ENV)
    return Path(configured).expanduser() if configured else REPO_ROOT / "checkpoints"


def shipped_path(spec: ShippedSpec | str, folder: str | Path | None = None) -> Path:
    spec = SHIPPED_BY_NAME[spec] if isinstance(spec, str) else spec
    return Path(folder if folder is not None else shipped_dir()) / spec.filename


def is_built(spec: ShippedSpec, folder: str | Path | None = None) -> bool:
    """Whether ``spec``'s file exists with the same training config (and measured metrics)."""
    path = shipped_path(spec, folder)
    if not path.is_file():
        return False
    try:
        meta = read_checkpoint_metadata(path)
    except CheckpointError:
        return False
    return _config_matches(meta, spec) and _complete(meta, spec)


def _config_matches(meta: dict[str, Any], spec: ShippedSpec) -> bool:
    stored = meta.get("config") or {}
    wanted = spec.config().to_dict()
    return all(stored.get(k) == wanted[k] for k in _MATCH_KEYS)


def measure(
    model: Network, spec: ShippedSpec, images: torch.Tensor, labels: torch.Tensor, curve: bool = True
) -> dict[str, Any]:
    """The metrics stated in a shipped checkpoint, on ``images``/``labels`` (the full test set).

    Classifiers: ``accuracy`` (percent) and ``loss``. Denoisers (noise seed
    :data:`EVAL_NOISE_SEED`): ``bce`` at the training sigma, ``bce_by_sigma`` at the paper's 0,
    100, 255 and, with ``curve``, ``bce_curve``: ``{"sigmas": [0, 5, ..., 255], "bce": [...]}``
    (what the Denoise page plots and reads its "mean test BCE at sigma" from).
    """
    from .denoise import FINE_SIGMA_GRID, bce_curve, mean_bce

    if model.task == "classify":
        result = evaluate(model, images, labels)
        return {"accuracy": result["accuracy"], "loss": result["loss"], "n": len(images)}
    by_sigma = {str(s): mean_bce(model, images, s, EVAL_NOISE_SEED) for s in DAE_SIGMAS}
    metrics: dict[str, Any] = {
        "bce": mean_bce(model, images, spec.sigma, EVAL_NOISE_SEED),
        "sigma": float(spec.sigma),
        "noise_seed": EVAL_NOISE_SEED,
        "bce_by_sigma": by_sigma,
        "n": len(images),
    }
    if curve:
        metrics["bce_curve"] = {
            "sigmas": list(FINE_SIGMA_GRID),
            "bce": bce_curve(model, images, FINE_SIGMA_GRID, EVAL_NOISE_SEED),
        }
    return metrics


def _sample_metrics(model: Network, spec: ShippedSpec, folder: str | Path | None) -> dict[str, Any]:
    """The stated metric on the shipped test sample too (what the tests re-measure exactly)."""
    images, labels = load_test_sample(folder)
    metrics = measure(model, spec, images, labels, curve=False)
    metrics.pop("bce_by_sigma", None)
    return metrics


def _complete(meta: dict[str, Any], spec: ShippedSpec) -> bool:
    metrics = meta.get("test_metrics") or {}
    if "sample" not in metrics:
        return False
    if spec.task == "classify":
        return "accuracy" in metrics
    return "bce" in metrics and "bce_curve" in metrics


def _half(model: Network) -> Network:
    """A float16 copy of ``model`` for saving (the shipped files' storage type)."""
    import copy

    return copy.deepcopy(model).half()


def build_one(
    spec: ShippedSpec,
    folder: str | Path | None = None,
    dataset: Any = None,
    log: Any = print,
    device: str = "cpu",
) -> Path:
    """Train ``spec``, save it as float16, reload it and store its measured test metrics."""
    from .data import load_dataset

    config = spec.config(device=device)
    data = dataset if dataset is not None else load_dataset(spec.dataset)
    path = shipped_path(spec, folder)
    started = time.perf_counter()
    final: dict[str, Any] = {}
    history: list[dict[str, Any]] = []
    model: Network | None = None
    for event in train(config, dataset=data):
        if isinstance(event, RunStarted):
            log(f"[{spec.name}] {config.rule_label()} {spec.model}: {config.epochs} epochs x {event.steps_per_epoch} steps")
        elif isinstance(event, EpochEnded):
            rec = event.record
            history.append({k: rec.get(k) for k in ("epoch", "train_loss", "test_loss", "test_accuracy", "test_bce")})
            metric = (f"test acc {rec['test_accuracy']:.2f}%" if rec.get("test_accuracy") is not None
                      else f"test BCE {rec['test_bce']:.4f}")
            log(f"[{spec.name}] epoch {rec['epoch']}: train loss {rec['train_loss']:.4f}, {metric} ({event.elapsed:.0f}s)")
        elif isinstance(event, RunFailed):
            raise RuntimeError(f"{spec.name}: training failed: {event.message}")
        elif isinstance(event, RunEnded):
            final, model = event.final, event.model
    assert model is not None
    wall = time.perf_counter() - started
    meta = {
        "config": config.to_dict(),
        "final": final,
        "history": history,
        "shipped": {
            "name": spec.name,
            "protocol_note": spec.note,
            "storage_dtype": "float16",
            "command": "python -m fa_core checkpoints build",
            "train_wall_s": round(wall, 1),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
        },
    }
    save_checkpoint(_half(model), path, meta)
    reloaded, _ = load_checkpoint(path)
    metrics = measure(reloaded, spec, data.test_x, data.test_y)
    metrics["sample"] = _sample_metrics(reloaded, spec, folder)
    meta["test_metrics"] = metrics
    save_checkpoint(_half(model), path, meta)
    log(f"[{spec.name}] saved {path} ({path.stat().st_size / 1e6:.2f} MB): {format_metrics(metrics)} in {wall:.0f}s")
    return path


def _remeasure(spec: ShippedSpec, folder: str | Path | None, data: Any, log: Any) -> bool:
    """A file trained with the right config but lacking some metrics gets them, without retraining."""
    path = shipped_path(spec, folder)
    try:
        meta = read_checkpoint_metadata(path)
        if not _config_matches(meta, spec):
            return False
        model, meta = load_checkpoint(path)
    except CheckpointError:
        return False
    meta["test_metrics"] = measure(model, spec, data.test_x, data.test_y)
    meta["test_metrics"]["sample"] = _sample_metrics(model, spec, folder)
    keep = {k: v for k, v in meta.items() if k in ("config", "final", "history", "shipped", "test_metrics")}
    save_checkpoint(_half(model), path, keep)
    log(f"[{spec.name}] re-measured (no retraining): {format_metrics(meta['test_metrics'])}")
    return True


def format_metrics(metrics: dict[str, Any]) -> str:
    if "accuracy" in metrics:
        return f"test accuracy {metrics['accuracy']:.2f}%"
    return f"test BCE {metrics['bce']:.4f} at sigma {metrics['sigma']:g}"


def build_all(
    names: list[str] | None = None,
    folder: str | Path | None = None,
    force: bool = False,
    threads: int = 1,
    log: Any = print,
    dataset: Any = None,
) -> list[Path]:
    """Build the shipped checkpoints (all, or ``names``), skipping ones already built unless ``force``."""
    from .data import load_dataset

    unknown = [n for n in names or [] if n not in SHIPPED_BY_NAME]
    if unknown:
        raise ConfigError(f"unknown shipped checkpoint(s): {', '.join(unknown)}; see `checkpoints list`")
    specs = [SHIPPED_BY_NAME[n] for n in names] if names else SHIPPED
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        data = dataset if dataset is not None else load_dataset("mnist")
        sample = Path(folder if folder is not None else shipped_dir()) / SAMPLE_FILE
        if force or not sample.is_file():
            log(f"writing {write_test_sample(folder, data)}")
        built = []
        for spec in specs:
            if not force and is_built(spec, folder):
                log(f"[{spec.name}] up to date, skipped")
                continue
            if not force and _remeasure(spec, folder, data, log):
                continue
            built.append(build_one(spec, folder, dataset=data, log=log))
        return built
    finally:
        torch.set_num_threads(previous_threads)


# --- the shipped test sample ----------------------------------------------------------------


def write_test_sample(folder: str | Path | None = None, dataset: Any = None) -> Path:
    """Write :data:`SAMPLE_SIZE` MNIST test digits (seeded draw) as ``<folder>/mnist_test_sample.npz``."""
    import numpy as np

    from .data import load_dataset

    data = dataset if dataset is not None else load_dataset("mnist")
    rng = np.random.default_rng(SAMPLE_SEED)
    idx = np.sort(rng.choice(len(data.test_x), size=min(SAMPLE_SIZE, len(data.test_x)), replace=False))
    path = Path(folder if folder is not None else shipped_dir()) / SAMPLE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        np.savez_compressed(
            fh, images=data.test_x[idx].cpu().numpy().astype(np.uint8),
            labels=data.test_y[idx].cpu().numpy().astype(np.int64), indices=idx.astype(np.int64),
        )
    return path


def load_test_sample(folder: str | Path | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The shipped test sample: uint8 images (N, 1, 28, 28) and int64 labels (no pickles)."""
    import numpy as np

    path = Path(folder if folder is not None else shipped_dir()) / SAMPLE_FILE
    with np.load(path, allow_pickle=False) as npz:
        images, labels = npz["images"], npz["labels"]
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != (1, 28, 28) or len(labels) != len(images):
        raise ValueError(f"{path} is not an MNIST test sample (images {images.shape} {images.dtype})")
    return torch.from_numpy(images.copy()), torch.from_numpy(labels.astype(np.int64))


def test_digits(folder: str | Path | None = None) -> tuple[torch.Tensor, torch.Tensor, str]:
    """MNIST test digits for the Playground: the full test set when it is cached, else the shipped sample.

    Returns ``(images uint8 (N, 1, 28, 28), labels, description)``.
    """
    from .data import DatasetError, dataset_status, load_dataset

    try:
        if dataset_status("mnist") == "ready":
            data = load_dataset("mnist")
            return data.test_x.cpu(), data.test_y.cpu(), f"MNIST test set ({len(data.test_x):,} digits)"
    except (DatasetError, OSError, ValueError):
        pass
    images, labels = load_test_sample(folder)
    return images, labels, f"shipped sample of {len(images):,} MNIST test digits"


# --- the models a Playground page can choose ------------------------------------------------


@dataclass(frozen=True)
class ModelEntry:
    """A model the Playground can load: a shipped checkpoint, a run of this app, or a user checkpoint."""

    key: str
    label: str
    path: Path
    source: str
    model: str
    rule: str
    rule_label: str
    task: str
    sigma: float | None
    metrics: dict[str, Any]


def _rule_label_of(meta: dict[str, Any]) -> str:
    from .rules import get_rule

    rule = meta.get("rule")
    try:
        return get_rule(rule).display_name() if rule is not None else "?"
    except (ValueError, TypeError):
        return str(rule)


def _entry_from_meta(key: str, label: str, path: Path, source: str, meta: dict[str, Any]) -> ModelEntry | None:
    if meta.get("dataset") != "mnist" or meta.get("model") not in MODELS:
        return None
    config = meta.get("config") or {}
    rule = meta.get("rule")
    rule_name = rule.get("name") if isinstance(rule, dict) else str(rule)
    task = MODELS[meta["model"]].task
    sigma = config.get("sigma") if task == "denoise" else None
    metrics = meta.get("test_metrics") or {}
    if not metrics:
        final = meta.get("final") or {}
        if final.get("test_accuracy") is not None:
            metrics = {"accuracy": final["test_accuracy"]}
        elif final.get("test_bce") is not None:
            metrics = {"bce": final["test_bce"], "sigma": sigma}
    return ModelEntry(
        key=key, label=label, path=path, source=source, model=meta["model"], rule=rule_name,
        rule_label=_rule_label_of(meta), task=task, sigma=float(sigma) if sigma is not None else None,
        metrics=metrics,
    )


def shipped_entries(folder: str | Path | None = None) -> list[ModelEntry]:
    """The shipped checkpoints present on disk, in :data:`SHIPPED` order."""
    entries = []
    for spec in SHIPPED:
        path = shipped_path(spec, folder)
        try:
            meta = read_checkpoint_metadata(path)
        except CheckpointError:
            continue
        entry = _entry_from_meta(f"shipped:{spec.name}", f"{spec.rule_label()} {spec.model}"
                                 + (f" (σ={spec.sigma:g})" if spec.task == "denoise" else ""),
                                 path, "shipped", meta)
        if entry is not None:
            entries.append(entry)
    return entries


def user_entries(runs_dir: str | Path | None = None, user_dir: str | Path | None = None) -> list[ModelEntry]:
    """MNIST models trained in this app: finished runs with a model file, and saved user checkpoints.

    ``runs_dir`` defaults to the run store's folder, ``user_dir`` to ``$FA_LAB_CHECKPOINTS_DIR`` or
    ``<repo>/checkpoints/user``. Unreadable files are skipped (only metadata is read here).
    """
    from .runs import RunError, RunStore, default_runs_dir

    entries: list[ModelEntry] = []
    root = Path(runs_dir) if runs_dir is not None else default_runs_dir()
    if root.is_dir():
        try:
            records = RunStore(root).list_runs()
        except (OSError, RunError):
            records = []
        for record in records:
            if not record.has_model:
                continue
            try:
                meta = read_checkpoint_metadata(record.model_path)
            except CheckpointError:
                continue
            entry = _entry_from_meta(
                f"run:{record.run_id}", f"run · {record.name}", record.model_path, "run", meta
            )
            if entry is not None:
                entries.append(entry)
    if user_dir is None:
        configured = os.environ.get("FA_LAB_CHECKPOINTS_DIR")
        user_dir = Path(configured).expanduser() if configured else REPO_ROOT / "checkpoints" / "user"
    user_dir = Path(user_dir)
    if user_dir.is_dir():
        for path in sorted(user_dir.glob("*.safetensors")):
            try:
                meta = read_checkpoint_metadata(path)
            except CheckpointError:
                continue
            entry = _entry_from_meta(f"user:{path.name}", f"saved · {path.stem}", path, "user", meta)
            if entry is not None:
                entries.append(entry)
    return entries


def available_models(task: str, folder: str | Path | None = None, include_user: bool = True) -> list[ModelEntry]:
    """Shipped then user models for ``task`` (``"classify"`` or ``"denoise"``) on MNIST."""
    entries = shipped_entries(folder) + (user_entries() if include_user else [])
    return [e for e in entries if e.task == task]


# --- CLI --------------------------------------------------------------------------------------


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``checkpoints build|list|verify|robustness`` to the ``python -m fa_core`` parser."""
    p = subparsers.add_parser("checkpoints", help="build, list and verify the shipped checkpoints")
    sub = p.add_subparsers(dest="checkpoints_command", required=True)

    b = sub.add_parser("build", help="train the shipped checkpoints (resumable; skips up-to-date files)")
    b.add_argument("names", nargs="*", help="only these (default: all); see `checkpoints list`")
    b.add_argument("--out", type=Path, help="folder (default: <repo>/checkpoints)")
    b.add_argument("--force", action="store_true", help="rebuild even when a file is up to date")
    b.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    b.set_defaults(handler=_cmd_build)

    ls = sub.add_parser("list", help="the shipped checkpoints, their metrics and sizes")
    ls.add_argument("--out", type=Path, help="folder (default: <repo>/checkpoints)")
    ls.add_argument("--markdown", action="store_true", help="print a markdown table (as in docs/playground.md)")
    ls.set_defaults(handler=_cmd_list)

    v = sub.add_parser("verify", help="reload each checkpoint and re-measure its metric on the test set")
    v.add_argument("--out", type=Path, help="folder (default: <repo>/checkpoints)")
    v.add_argument("--limit", type=int, help="use only the first N test images")
    v.set_defaults(handler=_cmd_verify)

    r = sub.add_parser("robustness", help="preprocessing study: distorted MNIST test digits, raw vs preprocessed")
    r.add_argument("--n", type=int, default=2000, help="test digits (default 2000)")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--json", type=Path, help="write the results here as JSON")
    r.set_defaults(handler=_cmd_robustness)

    lat = sub.add_parser("latency", help="time the Draw and Denoise pages' work per stroke / slider move")
    lat.add_argument("--repeats", type=int, default=20)
    lat.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    lat.set_defaults(handler=_cmd_latency)


def _cmd_build(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    built = build_all(args.names or None, args.out, args.force, args.threads,
                      log=lambda m: print(m, file=sys.stderr, flush=True))
    print(f"built {len(built)} checkpoint(s) in {time.perf_counter() - started:.0f}s", file=sys.stderr)
    return 0


def _describe_rows(folder: Path | None) -> list[dict[str, Any]]:
    rows = []
    for spec in SHIPPED:
        path = shipped_path(spec, folder)
        row: dict[str, Any] = {"name": spec.name, "model": spec.model, "rule": spec.rule_label(),
                               "sigma": spec.sigma if spec.task == "denoise" else None, "file": path.name}
        if path.is_file():
            meta = read_checkpoint_metadata(path)
            row.update(size_mb=path.stat().st_size / 1e6, metrics=meta.get("test_metrics") or {},
                       config=meta.get("config") or {}, up_to_date=is_built(spec, folder))
        rows.append(row)
    return rows


def _cmd_list(args: argparse.Namespace) -> int:
    rows = _describe_rows(args.out)
    if args.markdown:
        print("| file | model | rule | σ (train) | protocol | test metric (full test set) | size |")
        print("|---|---|---|---|---|---|---|")
    total = 0.0
    for row in rows:
        if "size_mb" not in row:
            print(f"{row['name']}: not built", file=sys.stdout)
            continue
        total += row["size_mb"]
        m, c = row["metrics"], row["config"]
        proto = f"{c.get('optimizer')} {c.get('lr'):g}" + (f" m{c.get('momentum'):g}" if c.get("momentum") else "") \
            + f", batch {c.get('batch_size')}, {c.get('epochs')} ep"
        if "accuracy" in m:
            metric = f"accuracy {m['accuracy']:.2f}%"
        elif "bce" in m:
            per = ", ".join(f"σ{s}: {v:.4f}" for s, v in m.get("bce_by_sigma", {}).items())
            metric = f"BCE {m['bce']:.4f} ({per})"
        else:
            metric = "?"
        sigma = "" if row["sigma"] is None else f"{row['sigma']:g}"
        if args.markdown:
            print(f"| `{row['file']}` | {row['model']} | {row['rule']} | {sigma} | {proto} | {metric} | {row['size_mb']:.2f} MB |")
        else:
            print(f"{row['name']:28s} {metric:60s} {row['size_mb']:.2f} MB {'' if row['up_to_date'] else '(stale)'}")
    print(f"\ntotal {total:.2f} MB" if not args.markdown else f"\nTotal: {total:.1f} MB.")
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    from .data import load_dataset

    data = load_dataset("mnist")
    images, labels = data.test_x[: args.limit], data.test_y[: args.limit]
    bad = 0
    for spec in SHIPPED:
        path = shipped_path(spec, args.out)
        try:
            model, meta = load_checkpoint(path)
        except CheckpointError as err:
            print(f"{spec.name}: {err}")
            bad += 1
            continue
        got = measure(model, spec, images, labels)
        stated = meta.get("test_metrics", {})
        key = "accuracy" if "accuracy" in got else "bce"
        print(f"{spec.name:28s} stated {stated.get(key, float('nan')):.4f}  measured {got[key]:.4f} on {len(images)}")
    return 1 if bad else 0


def _cmd_robustness(args: argparse.Namespace) -> int:
    from .data import load_dataset
    from .preprocess import robustness_study

    torch.set_num_threads(1)
    data = load_dataset("mnist")
    models = {}
    for spec in SHIPPED:
        if spec.task != "classify":
            continue
        try:
            models[f"{spec.rule_label()} {spec.model}"] = load_checkpoint(shipped_path(spec))[0]
        except CheckpointError as err:
            print(f"skipping {spec.name}: {err}", file=sys.stderr)
    if not models:
        print("error: no shipped classifiers; run `python -m fa_core checkpoints build` first", file=sys.stderr)
        return 1
    result = robustness_study(models, data.test_x, data.test_y, n=args.n, seed=args.seed)
    print(f"{result['n']} MNIST test digits, seed {result['seed']}, distortion {result['distortion']}")
    print(f"{'model':22s} {'clean':>8s} {'clean+pre':>10s} {'distorted raw':>14s} {'distorted+pre':>14s}")
    for name, r in result["results"].items():
        print(f"{name:22s} {r['clean']:8.2f} {r['clean_preprocessed']:10.2f} {r['distorted_raw']:14.2f} {r['distorted_preprocessed']:14.2f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
    return 0


def _cmd_latency(args: argparse.Namespace) -> int:
    from .playground_latency import denoise_latency, draw_latency

    torch.set_num_threads(args.threads)
    try:
        draw = draw_latency(args.repeats)
        denoise = denoise_latency(args.repeats)
    except CheckpointError as err:
        print(f"error: {err}; run `python -m fa_core checkpoints build` first", file=sys.stderr)
        return 1
    print(f"Draw, per stroke ({draw['models']} classifiers: preprocess, predict, figure): "
          f"median {draw['median_ms']:.0f} ms, max {draw['max_ms']:.0f} ms")
    print(f"Denoise, per sigma ({denoise['models']} denoisers x {denoise['digits']} digits: noise, reconstruct, "
          f"grid + curve figures): median {denoise['median_ms']:.0f} ms, max {denoise['max_ms']:.0f} ms")
    print(f"({args.repeats} repeats, {torch.get_num_threads()} torch thread(s); Streamlit's rerun and the browser come on top)")
    return 0
