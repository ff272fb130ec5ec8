"""Comparisons: several learning rules trained on one configuration, side by side.

A comparison is one :class:`~fa_core.training.TrainConfig` (dataset, model, protocol, seed) and a
list of rules (:class:`RuleChoice`: BP, FA, FA_EX-p% ...). :func:`comparison_configs` makes one
config per rule that differs *only* in the rule, so every run starts from the same forward weights
and sees the same batches in the same order (see :func:`fa_core.training.train`).
:func:`submit_comparison` queues them as one job group.

For the summary: :func:`paper_cell` finds the paper's table cell a configuration reproduces (and
says how the protocol differs, e.g. a quick run on part of the training set), :func:`summary_rows`
gives each rule's final numbers beside the paper's, and :func:`summary_csv` /
:func:`history_csv` export them. Nothing here imports Streamlit.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .metrics import UNUSED_SUFFIX
from .models import MODELS
from .reproduce import CNN_PROTOCOL, DAE_PROTOCOL, FC_PROTOCOL, PAPER_SEED, TITLES, table_cells
from .rules import RULES, get_rule
from .training import ConfigError, TrainConfig

DEFAULT_RULE_KEYS = ("bp", "fa", "fa_ex100")
"""The paper's three rules: BP, FA, FA_EX-100%."""

FA_EX_P_CHOICES = (100, 80, 50, 20, 0)
"""The FA_EX-p% family of Konishi, Igarashi & Miura (2023) (the reference code's values)."""

QUICK_FRACTIONS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0)
"""Parts of the training set a quick comparison may use (see :func:`quick_train_limit`)."""

SHARE_KEYS = ("dataset", "model", "rules", "opt", "lr", "batch", "epochs", "seed", "frac", "sigma", "mode")
"""The query-string keys of a shared comparison setting (see :func:`share_query`)."""


@dataclass(frozen=True)
class RuleChoice:
    """A learning rule with its parameters, e.g. ``RuleChoice("fa_ex", {"p": 100.0})``."""

    rule: str
    params: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        resolved = get_rule(self.rule, **dict(self.params))  # raises ValueError for a bad rule
        object.__setattr__(self, "params", dict(resolved.params()) if self.params else {})

    @property
    def key(self) -> str:
        """Short text for URLs and ids: ``bp``, ``fa``, ``fa_ex100``, ``fa_ex80``..."""
        if self.rule == "fa_ex":
            return f"fa_ex{float(self.params.get('p', 100.0)):g}"
        return self.rule

    @property
    def label(self) -> str:
        return get_rule(self.rule, **dict(self.params)).display_name()

    def __hash__(self) -> int:
        return hash(self.key)


def parse_rule_key(key: str) -> RuleChoice:
    """``"bp"``, ``"fa"``, ``"fa_ex"`` (p=100) or ``"fa_ex80"`` -> :class:`RuleChoice`; raises ValueError."""
    key = str(key).strip().lower()
    match = re.fullmatch(r"fa_ex(\d+(?:\.\d+)?)?", key)
    if match:
        p = float(match.group(1)) if match.group(1) else 100.0
        if not 0 <= p <= 100:
            raise ValueError(f"FA_EX's p must be between 0 and 100, got {p:g}")
        return RuleChoice("fa_ex", {"p": p})
    if key in RULES:
        return RuleChoice(key)
    raise ValueError(f"unknown rule {key!r}; use bp, fa, fa_ex or fa_ex<p> such as fa_ex80")


def parse_rule_keys(text: str) -> list[RuleChoice]:
    """A comma-separated list of rule keys, duplicates dropped, order kept."""
    seen: dict[str, RuleChoice] = {}
    for part in str(text).split(","):
        if part.strip():
            choice = parse_rule_key(part)
            seen.setdefault(choice.key, choice)
    return list(seen.values())


def table_protocol(model: str) -> dict[str, Any]:
    """The protocol FA Lab's reproduction of the paper's tables uses for ``model`` (from
    :mod:`fa_core.reproduce`): ``FC_PROTOCOL`` for the FC net (the paper does not state one),
    ``CNN_PROTOCOL`` (SGD 0.01, batch 32, 10 epochs) for the CNNs, ``DAE_PROTOCOL`` (RMSprop 1e-4,
    batch 128) for the autoencoder; seed 2023."""
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}")
    if MODELS[model].task == "denoise":
        protocol = DAE_PROTOCOL
    elif model == "mlp":
        protocol = FC_PROTOCOL
    else:
        protocol = CNN_PROTOCOL
    return {**protocol, "seed": PAPER_SEED}


def comparison_configs(base: TrainConfig, rules: Sequence[RuleChoice]) -> list[TrainConfig]:
    """One config per rule, identical to ``base`` except for the rule (so the same seed, initial
    forward weights and batch order). Raises :class:`ConfigError` for no rules or a bad base."""
    if not rules:
        raise ConfigError("choose at least one learning rule to compare")
    keys = [r.key for r in rules]
    if len(set(keys)) != len(keys):
        raise ConfigError("each rule can be chosen once per comparison")
    configs = [dataclasses.replace(base, rule=r.rule, rule_params=dict(r.params)) for r in rules]
    for config in configs:
        config.validate()
    return configs


def quick_train_limit(fraction: float, batch_size: int, train_size: int) -> int | None:
    """The ``train_limit`` for training on ``fraction`` of ``train_size`` examples:
    ``max(batch_size, ceil(fraction * train_size))``, or ``None`` (all of them) for 1.0."""
    if fraction >= 1.0:
        return None
    return max(int(batch_size), math.ceil(fraction * train_size))


def share_query(config: Mapping[str, Any], rules: Sequence[str] | None = None, mode: str | None = None) -> dict[str, str]:
    """A configuration as the Compare page's query string (``?dataset=mnist&model=mlp&rules=bp,fa``...).

    ``rules`` are rule keys (``bp``, ``fa_ex80``...); by default the config's own rule. The
    training-set part is written as ``frac`` only when the config's ``train_limit`` is one of
    :data:`QUICK_FRACTIONS` (as :func:`quick_train_limit` makes it); ``sigma`` only when non-zero.
    """
    from .data import DATASETS

    if rules is None:
        try:
            rules = [RuleChoice(str(config.get("rule")), dict(config.get("rule_params") or {})).key]
        except (ValueError, TypeError):
            rules = []
    query = {
        "dataset": str(config.get("dataset")),
        "model": str(config.get("model")),
        "rules": ",".join(rules),
        "opt": str(config.get("optimizer")),
        "lr": f"{float(config.get('lr') or 0):g}",
        "batch": str(config.get("batch_size")),
        "epochs": str(config.get("epochs")),
        "seed": str(config.get("seed")),
    }
    limit = config.get("train_limit")
    info = DATASETS.get(str(config.get("dataset")))
    if limit is None:
        query["frac"] = "1"
    elif info is not None and isinstance(config.get("batch_size"), int):
        for fraction in QUICK_FRACTIONS:
            if quick_train_limit(fraction, config["batch_size"], info.train_size) == limit:
                query["frac"] = f"{fraction:g}"
                break
    if config.get("sigma"):
        query["sigma"] = f"{float(config['sigma']):g}"
    if mode:
        query["mode"] = mode
    return query


def parse_share_query(query: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The settings in a shared query string (the inverse of :func:`share_query`) and the problems
    found: unknown or out-of-range values are left out and named, never raised.

    Keys of the result: ``dataset``, ``model``, ``rules`` (list of :class:`RuleChoice`),
    ``optimizer``, ``lr``, ``batch_size``, ``epochs``, ``seed``, ``fraction``, ``sigma``, ``mode``;
    only those present and valid.
    """
    from .data import DATASETS
    from .training import OPTIMIZERS

    settings: dict[str, Any] = {}
    problems: list[str] = []

    def text(name: str) -> str | None:
        value = query.get(name)
        return value if isinstance(value, str) and value != "" else None

    def number(name: str, cast: Callable[[str], Any], ok: Callable[[Any], bool], target: str) -> None:
        raw = text(name)
        if raw is None:
            return
        try:
            value = cast(raw)
        except ValueError:
            value = None
        if value is None or (isinstance(value, float) and not math.isfinite(value)) or not ok(value):
            problems.append(f"{name}={raw!r} is not a valid value")
        else:
            settings[target] = value

    for name, known in (("dataset", DATASETS), ("model", MODELS), ("opt", OPTIMIZERS)):
        raw = text(name)
        if raw is not None:
            if raw in known:
                settings["optimizer" if name == "opt" else name] = raw
            else:
                problems.append(f"unknown {name} {raw!r}")
    if text("rules") is not None:
        try:
            settings["rules"] = parse_rule_keys(text("rules"))
        except ValueError as err:
            problems.append(str(err))
    number("lr", float, lambda v: v > 0, "lr")
    number("batch", int, lambda v: v >= 1, "batch_size")
    number("epochs", int, lambda v: v >= 1, "epochs")
    number("seed", int, lambda v: v >= 0, "seed")
    number("frac", float, lambda v: v in QUICK_FRACTIONS, "fraction")
    number("sigma", float, lambda v: 0 <= v <= 255, "sigma")
    if text("mode") is not None:
        if text("mode") in ("together", "queued"):
            settings["mode"] = text("mode")
        else:
            problems.append(f"unknown mode {text('mode')!r}")
    return settings, problems


def submit_comparison(
    manager: Any,
    base: TrainConfig,
    rules: Sequence[RuleChoice],
    owner: str,
    together: bool = True,
    name: str | None = None,
) -> tuple[str, list[str]]:
    """Queue one run per rule on ``manager`` (a :class:`~fa_core.jobs.JobManager`) as a group.

    ``together``: the group takes one slot and its runs train concurrently; otherwise they queue.
    Returns ``(group id, job ids)`` in the order of ``rules``.
    """
    configs = comparison_configs(base, rules)
    names = [f"{name} · {r.label}" if name else None for r in rules]
    return manager.submit_group(configs, owner, names=names, together=together, group_name=name)


# ---- the paper's cells --------------------------------------------------------------------------
@dataclass(frozen=True)
class PaperMatch:
    """The paper's table cell a configuration corresponds to.

    ``exact`` is True when the protocol is the one the cell was reproduced with; otherwise
    ``differences`` lists how it differs (the paper's value is then only for orientation).
    """

    cell_id: str
    table: str
    title: str
    row: str
    column: str
    metric: str
    paper: float
    exact: bool
    differences: tuple[str, ...] = ()
    note: str = ""

    @property
    def where(self) -> str:
        """``"Table 1, FA, FC"``."""
        number = self.table.removeprefix("table")
        return f"Table {number}, {self.row}, {self.column}"


def _as_config(config: TrainConfig | Mapping[str, Any]) -> TrainConfig:
    if isinstance(config, TrainConfig):
        return config
    return TrainConfig.from_dict(dict(config))


def _rule_params(rule: str, params: Mapping[str, Any]) -> dict[str, Any]:
    try:
        return dict(get_rule(rule, **dict(params)).params())
    except ValueError:
        return dict(params)


def _protocol_differences(config: TrainConfig, cell: TrainConfig, train_size: int | None) -> list[str]:
    out: list[str] = []
    if config.optimizer != cell.optimizer:
        out.append(f"optimizer {config.optimizer} (cell: {cell.optimizer})")
    if not math.isclose(config.lr, cell.lr, rel_tol=1e-9):
        out.append(f"lr {config.lr:g} (cell: {cell.lr:g})")
    if config.batch_size != cell.batch_size:
        out.append(f"batch {config.batch_size} (cell: {cell.batch_size})")
    if config.epochs != cell.epochs:
        out.append(f"{config.epochs} epochs (cell: {cell.epochs})")
    if config.lr_schedule != cell.lr_schedule:
        out.append(f"{config.lr_schedule} lr schedule (cell: {cell.lr_schedule})")
    if config.momentum:
        out.append(f"momentum {config.momentum:g} (cell: 0)")
    if config.train_limit is not None:
        if train_size:
            out.append(f"{100 * config.train_limit / train_size:.3g}% of the training set "
                       f"({config.train_limit:,} of {train_size:,})")
        else:
            out.append(f"{config.train_limit:,} training examples only")
    if config.test_limit is not None:
        out.append(f"{config.test_limit:,} test examples only")
    return out


def paper_cell(config: TrainConfig | Mapping[str, Any]) -> PaperMatch | None:
    """The paper's cell (Tables 1-3, see ``PAPER_NOTES.md``) for this dataset, model, rule (and σ
    for the autoencoder), or ``None`` if the paper reports none (e.g. BP on the locally connected
    net: the paper's BP CNN is the shared-weight ``conv_cnn``). The seed is not compared."""
    try:
        config = _as_config(config)
    except (ConfigError, TypeError):
        return None
    params = _rule_params(config.rule, config.rule_params)
    from .data import DATASETS

    info = DATASETS.get(config.dataset)
    train_size = info.train_size if info is not None else None
    for table in TITLES:
        for cell in table_cells(table):
            c = cell.config
            if cell.paper is None:
                continue
            if (c.dataset, c.model, c.rule) != (config.dataset, config.model, config.rule):
                continue
            if _rule_params(c.rule, c.rule_params) != params:
                continue
            if MODELS[c.model].task == "denoise" and not math.isclose(c.sigma, config.sigma):
                continue
            differences = _protocol_differences(config, c, train_size)
            note = cell.note
            if cell.column == "FC":
                note = ("the paper does not state the FC protocol; FA Lab reproduces it with "
                        f"{FC_PROTOCOL['optimizer'].upper()} lr {FC_PROTOCOL['lr']:g}, batch "
                        f"{FC_PROTOCOL['batch_size']}, {FC_PROTOCOL['epochs']} epochs")
            return PaperMatch(
                cell_id=cell.cell_id, table=table, title=TITLES[table], row=cell.row, column=cell.column,
                metric=cell.metric, paper=float(cell.paper), exact=not differences,
                differences=tuple(differences), note=note,
            )
    return None


# ---- summary and export ------------------------------------------------------------------------
def entry_from_snapshot(snapshot: Any) -> dict[str, Any]:
    """A comparison entry (the plot dict of :func:`fa_core.plots.run_from_snapshot` plus config,
    status, final metrics, elapsed time and run id) from a live job snapshot."""
    from .plots import run_from_snapshot

    entry = run_from_snapshot(snapshot)
    entry.update(
        run_id=snapshot.run_id, config=dict(snapshot.config), status=snapshot.status,
        final=dict(snapshot.final or {}), elapsed=snapshot.elapsed, queue_position=snapshot.queue_position,
        progress=snapshot.progress, error=snapshot.error,
    )
    return entry


def entry_from_record(record: Any) -> dict[str, Any]:
    """A comparison entry from a stored run (:class:`fa_core.runs.RunRecord` with metrics)."""
    from .plots import run_from_metrics

    metrics = dict(record.metrics or {})
    metrics.setdefault("config", record.config)
    entry = run_from_metrics(metrics)
    final = dict(metrics.get("final") or {})
    entry.update(
        run_id=record.run_id, config=dict(record.config or metrics.get("config") or {}), status=record.state,
        final=final, elapsed=record.status.get("duration_s") or final.get("elapsed_s"), queue_position=None,
        progress=1.0 if record.state == "finished" else None, error=record.status.get("error"),
    )
    return entry


def _last(values: Sequence[Any]) -> float | None:
    for value in reversed(list(values or [])):
        if isinstance(value, (int, float)) and math.isfinite(value):
            return float(value)
    return None


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _round(value: Any, digits: int) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return round(float(value), digits)
    return None


def summary_rows(entries: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per rule: status, final test accuracy (or BCE), the paper's value and the
    difference where a paper cell exists, train accuracy, test loss, the last mean W∠B and
    δFA∠δBP angles, epochs done, training time, run id. While a run is going, the numbers are
    its latest epoch's."""
    rows = []
    for entry in entries:
        config = dict(entry.get("config") or {})
        model = config.get("model")
        denoise = model in MODELS and MODELS[model].task == "denoise"
        metric = "test_bce" if denoise else "test_accuracy"
        records = list(entry.get("epochs") or [])
        final = dict(entry.get("final") or {})
        latest = records[-1] if records else {}
        value = final.get(metric)
        if value is None:
            value = latest.get(metric)
        weight = [_last(v) for k, v in (entry.get("weight_angles") or {}).items() if not k.endswith(UNUSED_SUFFIX)]
        signal = [_last(v) for v in (entry.get("signal_angles") or {}).values()]
        match = paper_cell(config) if config else None
        digits = 4 if denoise else 2
        row: dict[str, Any] = {
            "rule": entry.get("label") or config.get("rule"),
            "status": entry.get("status"),
            "metric": "test BCE" if denoise else "test accuracy (%)",
            "measured": _round(value, digits),
            "paper": match.paper if match else None,
            "difference": _round(value - match.paper, digits) if (match and isinstance(value, (int, float))) else None,
            "paper_cell": (match.where + ("" if match.exact else " (protocol differs)")) if match else "",
            "train_accuracy": _round(final.get("train_accuracy", latest.get("train_accuracy")), 2),
            "test_loss": _round(final.get("test_loss", latest.get("test_loss")), 4),
            "w_angle": _round(_mean([a for a in weight if a is not None]), 1),
            "signal_angle": _round(_mean([a for a in signal if a is not None]), 1),
            "epochs": len(records),
            "time_s": _round(entry.get("elapsed"), 1),
            "run_id": entry.get("run_id"),
        }
        rows.append(row)
    return rows


SUMMARY_COLUMNS = {
    "rule": "Rule",
    "status": "Status",
    "measured": "Measured",
    "paper": "Paper",
    "difference": "Difference",
    "paper_cell": "Paper cell",
    "train_accuracy": "Train acc. (%)",
    "test_loss": "Test loss",
    "w_angle": "W∠B (°)",
    "signal_angle": "δFA∠δBP (°)",
    "epochs": "Epochs",
    "time_s": "Time (s)",
    "run_id": "Run id",
}
"""Column titles for :func:`summary_rows` (``metric`` is shown in the ``Measured`` title)."""


def _csv(header: list[str], rows: list[list[Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow(["" if v is None or (isinstance(v, float) and not math.isfinite(v)) else v for v in row])
    return buffer.getvalue()


def summary_csv(rows: Sequence[Mapping[str, Any]]) -> str:
    """:func:`summary_rows` as CSV (machine-readable column names)."""
    keys = ["rule", "status", "metric", "measured", "paper", "difference", "paper_cell", "train_accuracy",
            "test_loss", "w_angle", "signal_angle", "epochs", "time_s", "run_id"]
    return _csv(keys, [[row.get(k) for k in keys] for row in rows])


def history_csv(entries: Sequence[Mapping[str, Any]]) -> str:
    """Every epoch of every run, one row each: run id, rule, epoch, train/test loss and accuracy,
    test BCE, and per layer the W∠B angle (``angle_<layer>``) and δFA∠δBP angle
    (``signal_angle_<layer>``) at the epoch's end."""
    base = ["run_id", "rule", "model", "dataset", "seed", "epoch", "train_loss", "train_accuracy",
            "test_loss", "test_accuracy", "test_bce"]
    weight_layers: list[str] = []
    signal_layers: list[str] = []
    for entry in entries:
        for record in entry.get("epochs") or []:
            for layer in (record.get("angles") or {}):
                if layer not in weight_layers:
                    weight_layers.append(layer)
            for layer in (record.get("signal_angles") or {}):
                if layer not in signal_layers:
                    signal_layers.append(layer)
    header = base + [f"angle_{layer}" for layer in weight_layers] + [f"signal_angle_{layer}" for layer in signal_layers]
    rows = []
    for entry in entries:
        config = dict(entry.get("config") or {})
        for record in entry.get("epochs") or []:
            angles = record.get("angles") or {}
            signal = record.get("signal_angles") or {}
            rows.append(
                [entry.get("run_id"), entry.get("label") or config.get("rule"), config.get("model"),
                 config.get("dataset"), config.get("seed"), record.get("epoch"), record.get("train_loss"),
                 record.get("train_accuracy"), record.get("test_loss"), record.get("test_accuracy"),
                 record.get("test_bce")]
                + [angles.get(layer) for layer in weight_layers]
                + [signal.get(layer) for layer in signal_layers]
            )
    return _csv(header, rows)


def describe_config(config: Mapping[str, Any]) -> str:
    """One line: ``mlp on mnist · sgd lr 0.1 · batch 32 · 10 epochs · seed 2023 · 10% of train``."""
    parts = [f"{config.get('model')} on {config.get('dataset')}",
             f"{config.get('optimizer')} lr {float(config.get('lr') or 0):g}",
             f"batch {config.get('batch_size')}", f"{config.get('epochs')} epochs", f"seed {config.get('seed')}"]
    if config.get("sigma"):
        parts.append(f"σ {float(config['sigma']):g}")
    if config.get("train_limit"):
        parts.append(f"{int(config['train_limit']):,} training examples")
    return " · ".join(parts)
