"""Principled per-rule tuning on MNIST, beyond the paper's single protocol.

For each rule, every candidate protocol (optimizer, learning rate, momentum, schedule) trains on the first
50 000 training images for up to ``max_epochs`` epochs and is scored after every epoch on the
held-out last 10 000 training images (the validation split; the test set is never looked at while
choosing). The best (candidate, epoch count) by validation accuracy, or validation BCE for the
denoiser, is then trained again from scratch on all 60 000 training images for that many epochs
and evaluated once on the test set. Results go to ``tuning.json`` (resumable, atomic) and
``tuning.md`` beside the reproduction results.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .checkpoints import atomic_write_bytes
from .jsonstore import update_json
from .data import InMemoryDataset, load_dataset
from .reproduce import PAPER_SEED, environment
from .training import EpochEnded, RunEnded, RunFailed, TrainConfig, train

VALIDATION_SIZE = 10_000


@dataclass(frozen=True)
class Candidate:
    """One protocol to try: optimizer, learning rate, momentum, batch size, most epochs, and the
    learning-rate schedule. A scheduled candidate (``cosine``) anneals over exactly ``max_epochs``,
    so only its last epoch is a protocol one can retrain: it is judged at that epoch alone."""

    optimizer: str
    lr: float
    batch_size: int
    max_epochs: int
    momentum: float = 0.0
    schedule: str = "constant"

    @property
    def name(self) -> str:
        momentum = f" m{self.momentum:g}" if self.momentum else ""
        schedule = "" if self.schedule == "constant" else f", {self.schedule} over {self.max_epochs} ep"
        return f"{self.optimizer} {self.lr:g}{momentum}, batch {self.batch_size}{schedule}"


@dataclass(frozen=True)
class Search:
    """What to tune for one model: rules (label, name, params), candidates, the noise levels.

    ``search_sigma`` is the noise level the denoiser's protocol is chosen at; the winner is then
    trained at every sigma in ``sigmas``.
    """

    model: str
    rules: tuple[tuple[str, str, tuple[tuple[str, float], ...]], ...]
    candidates: tuple[Candidate, ...]
    metric: str
    sigmas: tuple[float, ...] = (0.0,)
    search_sigma: float = 0.0
    paper: tuple[tuple[str, float], ...] = ()

    @property
    def higher_is_better(self) -> bool:
        return self.metric != "test_bce"


_CLASSIFIER_RULES = (("BP", "bp", ()), ("FA", "fa", ()), ("FA_EX-100%", "fa_ex", (("p", 100.0),)))

SEARCHES: dict[str, Search] = {
    "mlp": Search(
        "mlp",
        _CLASSIFIER_RULES,
        (
            Candidate("sgd", 0.1, 32, 20),
            Candidate("sgd", 0.2, 32, 20),
            Candidate("sgd", 0.05, 32, 20, momentum=0.9),
            Candidate("adam", 1e-3, 32, 20),
            Candidate("adam", 3e-4, 32, 20),
            Candidate("adam", 1e-3, 32, 30, schedule="cosine"),
            Candidate("sgd", 0.05, 32, 30, momentum=0.9, schedule="cosine"),
        ),
        "test_accuracy",
        paper=(("BP", 98.10), ("FA", 97.69), ("FA_EX-100%", 88.24)),
    ),
    "dae": Search(
        "dae",
        (("BP", "bp", ()), ("FA", "fa", ())),
        (
            Candidate("rmsprop", 1e-4, 128, 20),
            Candidate("rmsprop", 3e-4, 128, 20),
            Candidate("rmsprop", 1e-3, 128, 20),
            Candidate("adam", 1e-3, 128, 20),
        ),
        "test_bce",
        sigmas=(0.0, 100.0, 255.0),
        search_sigma=100.0,
        paper=(("BP/0", 0.0816), ("BP/100", 0.105), ("BP/255", 0.157), ("FA/0", 0.0880), ("FA/100", 0.112), ("FA/255", 0.164)),
    ),
    "lc_cnn": Search(
        "lc_cnn",
        (("FA", "fa", ()),),
        (
            Candidate("sgd", 0.05, 32, 15, momentum=0.9),
            Candidate("adam", 3e-4, 32, 15),
            Candidate("adam", 1e-3, 32, 20, schedule="cosine"),
            Candidate("sgd", 0.05, 32, 20, momentum=0.9, schedule="cosine"),
            Candidate("adam", 3e-4, 32, 30, schedule="cosine"),
        ),
        "test_accuracy",
        paper=(("FA", 98.63),),
    ),
}


def validation_split(dataset: InMemoryDataset, size: int = VALIDATION_SIZE) -> InMemoryDataset:
    """The training set split in two: the first ``N - size`` images train, the last ``size`` validate
    (stored as the split's test set, so :func:`~fa_core.training.train` scores on them)."""
    n = len(dataset.train_x)
    if not 0 < size < n:
        raise ValueError(f"validation size must be between 1 and {n - 1}, got {size}")
    cut = n - size
    return InMemoryDataset(
        info=dataset.info,
        train_x=dataset.train_x[:cut], train_y=dataset.train_y[:cut],
        test_x=dataset.train_x[cut:], test_y=dataset.train_y[cut:],
    )


def _train_history(config: TrainConfig, dataset: InMemoryDataset, metric: str) -> tuple[list[float], dict[str, Any], float]:
    """Per-epoch values of ``metric`` on ``dataset``'s test split, the final metrics, wall seconds."""
    start = time.perf_counter()
    values: list[float] = []
    for event in train(config, dataset=dataset):
        if isinstance(event, EpochEnded):
            values.append(float(event.record[metric]))
        elif isinstance(event, RunFailed):
            raise RuntimeError(f"{config.model} {config.rule_label()} diverged: {event.message}")
        elif isinstance(event, RunEnded):
            return values, dict(event.final), time.perf_counter() - start
    raise RuntimeError("training ended without a final event")


@dataclass
class TuningStore:
    """``tuning.json``: result key -> result, merged and rewritten atomically after every run."""

    path: Path
    data: dict[str, Any]

    @classmethod
    def open(cls, path: Path) -> "TuningStore":
        return cls(path, json.loads(path.read_text()) if path.exists() else {})

    def put(self, key: str, value: dict[str, Any]) -> None:
        """Record one result, merged into the file as it is now (several ``tune`` processes, e.g.
        for different models, may share it; see :func:`~fa_core.jsonstore.update_json`)."""
        self.data = update_json(self.path, lambda data: data.__setitem__(key, value))


def best_choice(results: Iterable[tuple[Candidate, list[float]]], higher_is_better: bool) -> tuple[Candidate, int, float]:
    """The (candidate, epochs, value) with the best validation value; ties go to fewer epochs,
    then to the earlier candidate. A scheduled candidate counts only at its last scheduled epoch
    (earlier epochs ran under a schedule that a shorter run would not have)."""
    best: tuple[Candidate, int, float] | None = None
    for candidate, values in results:
        epochs = enumerate(values, start=1)
        if candidate.schedule != "constant":
            epochs = [(e, v) for e, v in epochs if e == candidate.max_epochs]
        for epoch, value in epochs:
            if best is None:
                better = True
            elif higher_is_better:
                better = value > best[2] or (value == best[2] and epoch < best[1])
            else:
                better = value < best[2] or (value == best[2] and epoch < best[1])
            if better:
                best = (candidate, epoch, value)
    if best is None:
        raise ValueError("no validation results to choose from")
    return best


def run_search(
    model: str,
    out: Path,
    device: str = "auto",
    rules: Iterable[str] | None = None,
    dataset: InMemoryDataset | None = None,
    max_epochs: int | None = None,
    progress: Callable[[str], None] = print,
) -> TuningStore:
    """Tune ``model`` per rule (see the module docstring); resumable through ``out/tuning.json``.

    ``rules`` limits the search to some rule labels; ``max_epochs`` caps every candidate (quick
    previews and tests); ``dataset`` replaces MNIST (tests).
    """
    search = SEARCHES[model]
    out.mkdir(parents=True, exist_ok=True)
    store = TuningStore.open(out / "tuning.json")
    full = dataset if dataset is not None else load_dataset("mnist", device="cpu")
    split = validation_split(full, min(VALIDATION_SIZE, len(full.train_x) // 6))
    wanted = None if rules is None else set(rules)
    for label, rule, params in search.rules:
        if wanted is not None and label not in wanted:
            continue
        base = TrainConfig(dataset="mnist", model=model, rule=rule, rule_params=dict(params), seed=PAPER_SEED,
                           device=device, angle_points_per_epoch=1)
        tried: list[tuple[Candidate, list[float]]] = []
        for candidate in search.candidates:
            epochs = candidate.max_epochs if max_epochs is None else min(max_epochs, candidate.max_epochs)
            candidate = replace(candidate, max_epochs=epochs)  # a capped schedule anneals over the cap
            key = f"{model}/{label}/search/{candidate.name}/{epochs} ep"
            if key not in store.data:
                config = replace(base, optimizer=candidate.optimizer, lr=candidate.lr, momentum=candidate.momentum,
                                 lr_schedule=candidate.schedule, batch_size=candidate.batch_size, epochs=epochs,
                                 sigma=search.search_sigma).validate()
                progress(f"search {key}")
                try:
                    values, _, wall = _train_history(config, split, search.metric)
                    store.put(key, {"validation": values, "wall_s": wall, "sigma": search.search_sigma})
                except RuntimeError as err:
                    store.put(key, {"validation": [], "error": str(err), "sigma": search.search_sigma})
            tried.append((candidate, store.data[key]["validation"]))
        candidate, epochs, value = best_choice(tried, search.higher_is_better)
        for sigma in search.sigmas:
            final_key = f"{model}/{label}/final/sigma {sigma:g}" if model == "dae" else f"{model}/{label}/final"
            chosen = {"candidate": candidate.name, "epochs": epochs, "validation": value}
            done = store.data.get(final_key)
            if done is not None and done.get("chosen") == chosen:
                continue
            config = replace(base, optimizer=candidate.optimizer, lr=candidate.lr, momentum=candidate.momentum,
                             lr_schedule=candidate.schedule, batch_size=candidate.batch_size, epochs=epochs,
                             sigma=sigma).validate()
            progress(f"final  {final_key}: {candidate.name}, {epochs} ep")
            _, final, wall = _train_history(config, full, search.metric)
            store.put(final_key, {"chosen": chosen, "test": final[search.metric], "wall_s": wall, "sigma": sigma,
                                  "config": config.to_dict()})
    write_markdown(store, out / "tuning.md")
    return store


def tuned_rows(data: dict[str, Any]) -> list[dict[str, Any]]:
    """One plain dict per tuned (model, rule, sigma) in a ``tuning.json`` mapping, for display:
    the chosen protocol, its validation and test values, and the paper's value for that rule."""
    rows = []
    for key, r in sorted(data.items()):
        parts = key.split("/")
        if len(parts) < 3 or parts[2] != "final" or parts[0] not in SEARCHES:
            continue
        search = SEARCHES[parts[0]]
        sigma = float(r.get("sigma", 0.0))
        paper = dict(search.paper)
        rows.append(
            {
                "model": parts[0],
                "rule": parts[1],
                "sigma": sigma,
                "metric": search.metric,
                "protocol": f"{r['chosen']['candidate']}, {r['chosen']['epochs']} ep",
                "validation": r["chosen"]["validation"],
                "test": r["test"],
                "paper": paper.get(f"{parts[1]}/{sigma:g}", paper.get(parts[1])),
                "wall_s": r.get("wall_s"),
            }
        )
    return rows


def markdown_lines(store: TuningStore) -> list[str]:
    """The tuned results beside the paper's, one table per model, plus every search run."""
    lines = ["# Principled tuning (MNIST)", "", "Environment: " + ", ".join(f"{k} {v}" for k, v in environment().items()), ""]
    for model, search in SEARCHES.items():
        finals = {k: v for k, v in store.data.items() if k.startswith(f"{model}/") and "/final" in k}
        if not finals:
            continue
        paper = dict(search.paper)
        digits = 4 if search.metric == "test_bce" else 2
        lines += [f"## {model}", "", "| rule | sigma | chosen protocol (by validation) | validation | test | paper | wall time |",
                  "|---|---|---|---|---|---|---|"]
        for key, r in sorted(finals.items()):
            label = key.split("/")[1]
            sigma = r.get("sigma", 0.0)
            ref = paper.get(f"{label}/{sigma:g}", paper.get(label))
            lines.append(
                f"| {label} | {sigma:g} | {r['chosen']['candidate']}, {r['chosen']['epochs']} ep | "
                f"{r['chosen']['validation']:.{digits}f} | {r['test']:.{digits}f} | "
                f"{'—' if ref is None else f'{ref:.{digits}f}'} | {r['wall_s']:.0f} s |"
            )
        lines += ["", "Search runs (validation value after each epoch):", ""]
        for key, r in sorted(store.data.items()):
            if key.startswith(f"{model}/") and "/search/" in key:
                shown = ", ".join(f"{v:.{digits}f}" for v in r["validation"]) or r.get("error", "")
                lines.append(f"- `{key}`: {shown}")
        lines.append("")
    return lines


def write_markdown(store: TuningStore, path: Path) -> None:
    text = "\n".join(markdown_lines(store)) + "\n"
    atomic_write_bytes(path, lambda tmp: Path(tmp).write_text(text))


def register(subparsers: Any) -> None:
    """Add ``tune`` to the CLI."""
    p = subparsers.add_parser("tune", help="per-rule protocol search on a validation split, then a test run (resumable)")
    p.add_argument("model", choices=list(SEARCHES))
    p.add_argument("--rule", action="append", help="only these rule labels (BP, FA, FA_EX-100%%); repeatable")
    p.add_argument("--device", default="auto")
    p.add_argument("--out", type=Path, default=Path("reproduction"))
    p.add_argument("--max-epochs", type=int, help="cap every candidate's epochs (quick preview)")
    p.set_defaults(handler=_run)


def _run(args: Any) -> int:
    run_search(args.model, args.out, args.device, args.rule, max_epochs=args.max_epochs)
    print(f"wrote {args.out / 'tuning.json'} and {args.out / 'tuning.md'}")
    return 0
