"""Reproduce: the paper's three tables beside FA Lab's committed measurements, and a button per
cell that trains that cell here as a background job and fills its value in live."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from fa_core.jobs import JobError
from fa_core.reproduce import PAPER_SEED, TITLES, load_results, table_cells, table_view
from fa_core.training import ConfigError
from fa_core.tuning import tuned_rows
from app_pages.shared import REPO_ROOT, job_manager, owner_id

# Where ``reproduce`` and ``tune`` wrote their results (``$FA_LAB_REPRODUCTION_DIR`` moves it).
RESULTS_DIR = Path(os.environ.get("FA_LAB_REPRODUCTION_DIR") or REPO_ROOT / "reproduction")
RESULTS_PATH = RESULTS_DIR / "results.json"
TUNING_PATH = RESULTS_DIR / "tuning.json"
VERDICT_COLOURS = {
    "close": "background-color: rgba(46, 160, 67, 0.25)",
    "better": "background-color: rgba(56, 139, 253, 0.25)",
    "worse": "background-color: rgba(248, 81, 73, 0.30)",
    "none": "",
}
VERDICT_TEXT = {
    "close": "within tolerance",
    "better": "better than the paper",
    "worse": "worse than the paper",
    "none": "",
}

st.title("Reproduce the paper")
st.markdown(
    "Konishi & Miura's Tables 1-3 with **their protocol** (SGD 0.01, batch 32, 10 epochs for the "
    "CNNs; RMSprop 1e-4, batch 128 for the autoencoder; see `REPRODUCTION.md` for the FC column's "
    "protocol, which the paper does not state). *Measured* is what `python -m fa_core reproduce` "
    "committed in `reproduction/results.json` (mean ± std over seeds 2023, 2024, ...). Green: within "
    "0.5 points (accuracy) or 0.005 (BCE) of the paper; blue: better; red: worse. Rows without a "
    "paper value are the extra rows the paper lacks."
)

try:
    committed = load_results(RESULTS_PATH)
except ValueError as err:
    st.error(f"Could not read the committed results: {err}")
    committed = {}


def _fmt(value: float | None, metric: str, signed: bool = False) -> str:
    if value is None:
        return "—"
    digits = 4 if metric == "test_bce" else 2
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def committed_frame(name: str) -> pd.DataFrame:
    rows = []
    for r in table_view(name, committed):
        measured = "not run" if r["mean"] is None else f"{_fmt(r['mean'], r['metric'])} ± {_fmt(r['std'], r['metric'])}"
        rows.append(
            {
                "row": r["row"],
                "column": r["column"],
                "model": r["model"],
                "protocol": r["protocol"],
                "paper": _fmt(r["paper"], r["metric"]),
                "measured": measured,
                "seeds": r["n"],
                "difference": _fmt(r["diff"], r["metric"], signed=True),
                "verdict": VERDICT_TEXT[r["verdict"]],
                "time/seed": "—" if r["wall_s_per_seed"] is None else f"{r['wall_s_per_seed']:.0f} s",
                "_verdict": r["verdict"],
            }
        )
    frame = pd.DataFrame(rows)
    return frame


def styled(frame: pd.DataFrame) -> Any:
    verdicts = frame["_verdict"]
    shown = frame.drop(columns=["_verdict"])

    def colour(column: pd.Series) -> list[str]:
        if column.name not in ("measured", "difference", "verdict"):
            return [""] * len(column)
        return [VERDICT_COLOURS[v] for v in verdicts]

    return shown.style.apply(colour, axis=0)


def _jobs() -> dict[str, str]:
    return st.session_state.setdefault("reproduce_jobs", {})


def launch(cell_id: str, seed: int, epochs: int | None, train_limit: int | None) -> None:
    cell = next(c for c in table_cells(cell_id.split("/")[0]) if c.cell_id == cell_id)
    changes: dict[str, Any] = {"seed": seed}
    if epochs is not None:
        changes["epochs"] = epochs
    if train_limit is not None:
        changes["train_limit"] = train_limit
    config = replace(cell.config, **changes)
    try:
        job_id = job_manager().submit(config, owner_id(), name=f"{cell_id} seed {seed}")
    except (ConfigError, JobError) as err:
        st.error(f"Could not start {cell_id}: {err}")
        return
    _jobs()[cell_id] = job_id


def live_value(cell_id: str, metric: str) -> tuple[str, bool]:
    """Text for a cell's live column and whether its job is still active."""
    job_id = _jobs().get(cell_id)
    if job_id is None:
        return "", False
    try:
        snap = job_manager().snapshot(job_id, owner_id(), history=False)
    except JobError:
        _jobs().pop(cell_id, None)
        return "", False
    value = (snap.final or {}).get(metric, snap.latest.get(metric))
    shown = _fmt(value, metric) if value is not None else "…"
    if snap.status == "queued":
        return f"queued #{snap.queue_position or '?'}", True
    if snap.status in ("running", "paused"):
        return f"{shown} · epoch {snap.epoch}/{snap.epochs} · {100 * snap.progress:.0f}% ({snap.status})", True
    if snap.status == "failed":
        return f"failed: {snap.error}", False
    return f"{shown} ({snap.status})", False


tab_names = list(TITLES)
tabs = st.tabs([TITLES[name] for name in tab_names])
for name, tab in zip(tab_names, tabs):
    with tab:
        st.dataframe(styled(committed_frame(name)), hide_index=True, width="stretch")

st.divider()
st.subheader("Run a cell here")
st.caption(
    "Each button trains that cell as a background job (it keeps running if you switch pages; see "
    "the sidebar). The paper's protocol is the default; a full CNN cell takes minutes on a CPU, so "
    "you can shorten it for a preview. Your value appears beside the paper's and fills in live."
)
opt1, opt2, opt3 = st.columns(3)
seed = int(opt1.number_input("Seed", min_value=0, max_value=2**31 - 1, value=PAPER_SEED, step=1, key="repro_seed"))
preview = opt2.toggle("Quick preview (shorter than the paper)", value=False, key="repro_preview")
epochs = int(opt3.number_input("Epochs", min_value=1, max_value=100, value=1, key="repro_epochs")) if preview else None
train_limit = 10_000 if preview else None
if preview:
    st.caption("Preview: the first 10 000 training images and the epochs above; not the paper's protocol.")

table_choice = st.radio("Table", tab_names, format_func=lambda n: TITLES[n], horizontal=True, key="repro_table")
rows = table_view(table_choice, committed)
any_active = any(live_value(r["cell_id"], r["metric"])[1] for r in rows)


def cells_panel() -> None:
    active_now = False
    header = st.columns([3, 1, 2, 4, 1])
    for col, text in zip(header, ("cell", "paper", "committed", "your run", "")):
        col.markdown(f"**{text}**")
    for r in table_view(table_choice, committed):
        c1, c2, c3, c4, c5 = st.columns([3, 1, 2, 4, 1], vertical_alignment="center")
        c1.markdown(f"{r['row']} · {r['column']}  \n<small>{r['model']}, {r['protocol']}</small>", unsafe_allow_html=True)
        c2.markdown(_fmt(r["paper"], r["metric"]))
        c3.markdown("not run" if r["mean"] is None else f"{_fmt(r['mean'], r['metric'])} (n={r['n']})")
        text, active = live_value(r["cell_id"], r["metric"])
        active_now = active_now or active
        c4.markdown(text or "—")
        if c5.button("Run", key=f"run-{r['cell_id']}", disabled=active, help=f"Train {r['cell_id']} with seed {seed}"):
            launch(r["cell_id"], seed, epochs, train_limit)
            st.rerun()
    if any_active and not active_now:
        st.rerun()


st.fragment(cells_panel, run_every=1.0 if any_active else None)()

st.divider()
st.subheader("Beyond the paper: tuned per rule")
st.caption(
    "`python -m fa_core tune mlp|dae|lc_cnn`: for each rule, a small search over optimizers and "
    "learning rates, chosen on a validation split (the last 10 000 training images), then trained "
    "on all 60 000 and tested once. Compare with the paper's single protocol."
)
try:
    tuned = tuned_rows(load_results(TUNING_PATH))
except ValueError as err:
    st.error(f"Could not read the tuning results: {err}")
    tuned = []
if tuned:
    st.dataframe(
        pd.DataFrame(
            {
                "model": r["model"],
                "rule": r["rule"],
                "sigma": f"{r['sigma']:g}" if r["model"] == "dae" else "—",
                "chosen protocol": r["protocol"],
                "validation": _fmt(r["validation"], r["metric"]),
                "test (tuned)": _fmt(r["test"], r["metric"]),
                "paper": _fmt(r["paper"], r["metric"]),
                "difference": _fmt(None if r["paper"] is None else r["test"] - r["paper"], r["metric"], signed=True),
            }
            for r in tuned
        ),
        hide_index=True,
        width="stretch",
    )
else:
    st.info("No tuning results yet: run `python -m fa_core tune mlp` (a few minutes on a CPU).")
