"""Runs: every run in the run store (from any page or the CLI), after restarts too.

A sortable, filterable table; select runs to overlay their curves, rename, delete (with
confirmation) or download their metrics (CSV, JSON) and checkpoints. A single run has its own
page at ``?run=<run id>`` (shareable, reloadable).
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import streamlit as st

from fa_core.comparison import describe_config, entry_from_record, history_csv, share_query
from fa_core.models import MODELS
from fa_core.plots import accuracy_figure, angles_figure, loss_figure, style_runs
from fa_core.runs import ACTIVE_STATUSES, RunError, RunRecord, rule_display_name
from app_pages.shared import STATUS_ICONS, TRAIN_PAGE, format_duration, job_manager, owner_id, run_store

RUNS_PAGE = "app_pages/runs_page.py"
INSPECT_PAGE = "app_pages/inspect_page.py"
COMPARE_PAGE = "app_pages/compare.py"
MAX_OVERLAY = 12
MODEBAR = {"displaylogo": False, "toImageButtonOptions": {"format": "svg", "scale": 2}}

store = run_store()
manager = job_manager()
owner = owner_id()


def _when(stamp: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(stamp)) if stamp else None
    except ValueError:
        return None


def _task(config: dict[str, Any]) -> str:
    model = config.get("model")
    return MODELS[model].task if model in MODELS else "classify"


def load_records(run_ids: list[str]) -> list[RunRecord]:
    records = []
    for run_id in run_ids:
        try:
            records.append(store.load_run(run_id))
        except RunError:
            continue
    return records


def entries_for(records: list[RunRecord]) -> list[dict[str, Any]]:
    entries = []
    for record in records:
        entry = entry_from_record(record)
        if record.status.get("name"):
            entry["label"] = f"{record.name} ({entry['label']})"
        entries.append(entry)
    return entries


def overlay_charts(records: list[RunRecord], key: str) -> None:
    entries = style_runs(entries_for(records))
    tasks = {_task(r.config) for r in records}
    task = tasks.pop() if len(tasks) == 1 else "classify"
    if len({_task(r.config) for r in records}) > 1:
        st.caption("These runs mix classifiers and autoencoders: the per-epoch chart shows accuracy only.")
    epochs = max([int(r.config.get("epochs") or 0) for r in records] + [0]) or None
    g1, g2, g3 = st.columns(3)
    g1.plotly_chart(accuracy_figure(entries, task=task, max_epoch=epochs), key=f"acc_{key}", config=MODEBAR)
    g2.plotly_chart(loss_figure(entries), key=f"loss_{key}", config=MODEBAR)
    g3.plotly_chart(angles_figure(entries, show_unused=st.session_state.get("runs_show_unused", False)),
                    key=f"angles_{key}", config=MODEBAR)


def downloads(records: list[RunRecord], key: str) -> None:
    stem = records[0].run_id if len(records) == 1 else f"fa-lab-{len(records)}-runs"
    entries = entries_for(records)
    cols = st.columns(3)
    cols[0].download_button("Metrics (CSV)", data=history_csv(entries), file_name=f"{stem}-epochs.csv",
                            mime="text/csv", key=f"dl_csv_{key}", icon=":material/table:", on_click="ignore")
    bundle: Any
    if len(records) == 1:
        bundle = records[0].metrics or {}
    else:
        bundle = {r.run_id: {"status": r.status, "metrics": r.metrics} for r in records}
    cols[1].download_button("Metrics (JSON)", data=json.dumps(bundle, indent=2, allow_nan=True),
                            file_name=f"{stem}-metrics.json", mime="application/json", key=f"dl_json_{key}",
                            icon=":material/data_object:", on_click="ignore")
    with_model = [r for r in records if r.has_model]
    if len(records) == 1 and with_model:
        path: Path = with_model[0].model_path
        cols[2].download_button("Checkpoint (.safetensors)", data=lambda: path.read_bytes(),
                                file_name=f"{records[0].run_id}.safetensors", mime="application/octet-stream",
                                key=f"dl_ckpt_{key}", icon=":material/download:", on_click="ignore")
    elif len(records) == 1:
        cols[2].caption("No checkpoint (the run has not ended or it failed).")
    elif with_model:
        cols[2].caption("Checkpoints download one run at a time (open a run's page).")


def delete_controls(run_ids: list[str], key: str, after: str = "stay") -> None:
    """A Delete button; a second, explicit confirmation deletes (active runs are refused)."""
    flag = f"confirm_delete_{key}"
    if not st.session_state.get(flag):
        if st.button(f"Delete {'this run' if len(run_ids) == 1 else f'{len(run_ids)} runs'}…", key=f"del_{key}",
                     icon=":material/delete:"):
            st.session_state[flag] = list(run_ids)
            st.rerun()
        return
    targets = st.session_state[flag]
    st.warning(f"Delete {len(targets)} run(s) permanently, with their metrics and checkpoints? This cannot be undone.")
    c1, c2, _ = st.columns([1, 1, 4])
    if c1.button("Yes, delete", type="primary", key=f"del_yes_{key}"):
        errors, deleted = [], 0
        for run_id in targets:
            try:
                store.delete(run_id)
                deleted += 1
            except RunError as err:
                errors.append(str(err))
        st.session_state.pop(flag, None)
        st.session_state["runs_notice"] = (
            "warning" if errors else "success",
            f"Deleted {deleted} run(s)." + (" " + " ".join(errors) if errors else ""),
        )
        if after == "list":
            st.query_params.pop("run", None)
        st.rerun()
    if c2.button("Cancel", key=f"del_no_{key}"):
        st.session_state.pop(flag, None)
        st.rerun()


def rename_controls(record: RunRecord, key: str) -> None:
    n1, n2 = st.columns([4, 1], vertical_alignment="bottom")
    new_name = n1.text_input("Name", value=record.status.get("name") or "", key=f"rename_{key}_{record.run_id}",
                             max_chars=120, placeholder=record.run_id)
    if n2.button("Rename", key=f"rename_btn_{key}", icon=":material/edit:"):
        try:
            store.rename(record.run_id, new_name)
        except RunError as err:
            st.error(str(err))
        else:
            st.session_state["runs_notice"] = ("success", f"Renamed to “{new_name.strip() or record.run_id}”.")
            st.rerun()


def share_controls(config: dict[str, Any]) -> None:
    """This run's settings as a Compare link (query string), to rerun or share the configuration."""
    query = share_query(config)
    with st.expander("Share this configuration"):
        st.page_link(COMPARE_PAGE, label="Open this configuration in Compare", icon=":material/compare_arrows:",
                     query_params={**query, "sid": owner})
        parts = urlsplit(st.context.url or "")
        base = f"{parts.scheme}://{parts.netloc}{parts.path.rsplit('/', 1)[0]}/compare" if parts.netloc else "/compare"
        st.caption("A link with this run's dataset, model, protocol, seed and rule (add rules there to compare):")
        st.code(f"{base}?{urlencode(query)}", language=None)


def show_notice() -> None:
    notice = st.session_state.pop("runs_notice", None)
    if notice:
        getattr(st, notice[0])(notice[1])


# ---- one run's page ------------------------------------------------------------------------------------
def run_page(run_id: str) -> None:
    try:
        record = store.load_run(run_id)
    except RunError as err:
        st.error(f"No such run: {err}")
        st.page_link(RUNS_PAGE, label="All runs", icon=":material/arrow_back:", query_params={"sid": owner})
        return
    st.page_link(RUNS_PAGE, label="All runs", icon=":material/arrow_back:", query_params={"sid": owner})
    show_notice()
    config = record.config or {}
    st.subheader(f"{STATUS_ICONS.get(record.state, '')} {record.name}")
    bits = [f"`{record.run_id}`", record.state, rule_display_name(config), describe_config(config),
            f"from the {record.status.get('source') or 'app'}"]
    st.caption(" · ".join(bits))
    if record.status.get("error"):
        st.warning(record.status["error"])
    final = (record.metrics or {}).get("final") or {}
    task = _task(config)
    m = st.columns(5)
    if task == "denoise":
        m[0].metric("Test BCE", f"{final['test_bce']:.4f}" if isinstance(final.get("test_bce"), (int, float)) else "–")
    else:
        acc = final.get("test_accuracy")
        m[0].metric("Test accuracy", f"{acc:.2f}%" if isinstance(acc, (int, float)) else "–")
    loss = final.get("test_loss")
    m[1].metric("Test loss", f"{loss:.4f}" if isinstance(loss, (int, float)) else "–")
    m[2].metric("Epochs", f"{len((record.metrics or {}).get('history') or [])}/{config.get('epochs', '?')}")
    m[3].metric("Duration", format_duration(record.status.get("duration_s")))
    created = _when(record.status.get("created"))
    m[4].metric("Created (UTC)", created.strftime("%Y-%m-%d %H:%M") if created else "–")

    links = st.columns(4)
    if record.has_model:
        links[0].page_link(INSPECT_PAGE, label="Inspect this network", icon=":material/biotech:",
                           query_params={"run": record.run_id, "sid": owner})
    if record.status.get("group"):
        links[1].page_link(COMPARE_PAGE, label="Open its comparison", icon=":material/compare_arrows:",
                           query_params={"cmp": record.status["group"], "sid": owner})
    if record.state in ACTIVE_STATUSES and manager.owns(record.run_id, owner):
        links[2].page_link(TRAIN_PAGE, label="Watch it live", icon=":material/monitoring:",
                           query_params={"job": record.run_id, "sid": owner})
    if record.metrics:
        overlay_charts([record], f"run_{record.run_id}")
    else:
        st.info("No metrics yet (the first epoch has not ended).")
    with st.expander("Configuration and status"):
        st.json({"config": config, "status": record.status}, expanded=False)
    if config.get("model"):
        share_controls(config)
    st.markdown("**Download**")
    downloads([record], f"one_{record.run_id}")
    st.markdown("**Manage**")
    rename_controls(record, "one")
    delete_controls([record.run_id], f"one_{record.run_id}", after="list")


# ---- the list ------------------------------------------------------------------------------------------
def sync_selection_from_table() -> None:
    state = st.session_state.get("runs_table")
    ids = st.session_state.get("runs_table_ids", [])
    rows = getattr(getattr(state, "selection", None), "rows", None)
    if rows is None and isinstance(state, dict):
        rows = state.get("selection", {}).get("rows", [])
    picked = [ids[i] for i in rows or [] if 0 <= i < len(ids)]
    st.session_state["runs_selected"] = picked


def list_page() -> None:
    st.title("Runs")
    st.caption(f"Every run from the app and from `python -m fa_core train`, kept in `{store.root}`. "
               "Click a column title to sort; select rows to overlay and manage them.")
    show_notice()
    rows = store.summaries()
    if not rows:
        st.info("No runs yet. Train one on the Train page, compare rules on the Compare page, or run "
                "`python -m fa_core train ...`.")
        return
    f1, f2, f3, f4, f5 = st.columns([3, 2, 2, 2, 2])
    search = f1.text_input("Search", key="runs_search", placeholder="name or run id")
    rules = f2.multiselect("Rule", sorted({r["rule_label"] for r in rows}), key="runs_f_rule")
    models = f3.multiselect("Model", sorted({str(r["model"]) for r in rows}), key="runs_f_model")
    datasets = f4.multiselect("Dataset", sorted({str(r["dataset"]) for r in rows}), key="runs_f_dataset")
    statuses = f5.multiselect("Status", sorted({r["status"] for r in rows}), key="runs_f_status")
    mine = st.checkbox("Only runs started in this browser session", key="runs_f_mine")

    def keep(row: dict[str, Any]) -> bool:
        text = search.strip().lower()
        return ((not text or text in str(row["name"]).lower() or text in row["run_id"].lower())
                and (not rules or row["rule_label"] in rules) and (not models or str(row["model"]) in models)
                and (not datasets or str(row["dataset"]) in datasets) and (not statuses or row["status"] in statuses)
                and (not mine or row.get("owner") == owner))

    shown = [r for r in rows if keep(r)]
    st.session_state["runs_table_ids"] = [r["run_id"] for r in shown]
    table = [{
        "Name": r["name"],
        "Rule": r["rule_label"],
        "Model": r["model"],
        "Dataset": r["dataset"],
        "Status": r["status"],
        "Test acc. (%)": r["test_accuracy"],
        "Test BCE": r["test_bce"],
        "Epochs": f"{r['epochs_done']}/{r['epochs']}",
        "Duration (s)": round(r["duration_s"], 1) if r["duration_s"] is not None else None,
        "Created (UTC)": _when(r["created"]),
        "Source": r["source"],
        "Page": f"?run={r['run_id']}",
    } for r in shown]
    selected_now = set(st.session_state.get("runs_selected", []))
    columns = [c for c in (table[0] if table else {}) if not (
        (c == "Test acc. (%)" and all(r["test_accuracy"] is None for r in shown))
        or (c == "Test BCE" and all(r["test_bce"] is None for r in shown)))]
    st.dataframe(
        table, key="runs_table", on_select=sync_selection_from_table, selection_mode="multi-row",
        hide_index=True, width="stretch", column_order=columns,
        selection_default={"selection": {"rows": [i for i, r in enumerate(shown) if r["run_id"] in selected_now]}},
        column_config={
            "Test acc. (%)": st.column_config.NumberColumn(format="%.2f"),
            "Test BCE": st.column_config.NumberColumn(format="%.4f"),
            "Duration (s)": st.column_config.NumberColumn(format="%.0f"),
            "Created (UTC)": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm"),
            "Page": st.column_config.LinkColumn(display_text="open", help="the run's own page (shareable URL)"),
        },
    )
    st.caption(f"{len(shown)} of {len(rows)} runs shown.")
    names = {r["run_id"]: f"{r['name']} · {r['rule_label']} {r['model']} · {r['status']}" for r in rows}
    valid = [r for r in st.session_state.get("runs_selected", []) if r in names]
    if valid != st.session_state.get("runs_selected", []):
        st.session_state["runs_selected"] = valid
    selected = st.multiselect("Selected runs", list(names), key="runs_selected", format_func=lambda r: names[r],
                              max_selections=MAX_OVERLAY,
                              help="Pick rows in the table above or here (up to 12 at once).")
    if not selected:
        st.caption("Select runs to overlay their curves, download or delete them.")
        return
    records = load_records(selected)
    overlay_charts(records, "overlay")
    st.checkbox("Show the first layer's W∠B angle (its B is never used)", key="runs_show_unused")
    if len(records) == 1:
        record = records[0]
        links = st.columns(3)
        links[0].page_link(RUNS_PAGE, label="Open its page", icon=":material/open_in_new:",
                           query_params={"run": record.run_id, "sid": owner})
        if record.has_model:
            links[1].page_link(INSPECT_PAGE, label="Inspect", icon=":material/biotech:",
                               query_params={"run": record.run_id, "sid": owner})
    st.markdown("**Download**")
    downloads(records, "sel")
    st.markdown("**Manage**")
    if len(records) == 1:
        rename_controls(records[0], "sel")
    delete_controls([r.run_id for r in records], "sel")


run_param = st.query_params.get("run")
if isinstance(run_param, str) and run_param:
    run_page(run_param)
else:
    list_page()
