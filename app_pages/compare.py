"""Compare: one configuration, several learning rules, trained side by side with overlaid curves.

Every rule gets the same config except the rule (same seed, so the same initial forward weights
and batch order); the runs are submitted as one job group (``fa_core.comparison``). "Together"
runs them concurrently in one slot of the job cap; "one after another" queues them. The group id
is in the URL (``?cmp=...``), so a refresh reattaches and a finished comparison can be reopened
after a restart (from the run store). The settings are in the URL too (``?model=mlp&rules=bp,fa``),
so a configuration can be shared by link.
"""

from __future__ import annotations

import math
from typing import Any
from urllib.parse import urlencode

import streamlit as st

from fa_core.comparison import (
    DEFAULT_RULE_KEYS,
    FA_EX_P_CHOICES,
    QUICK_FRACTIONS,
    SHARE_KEYS,
    SUMMARY_COLUMNS,
    describe_config,
    entry_from_record,
    entry_from_snapshot,
    history_csv,
    paper_cell,
    parse_rule_key,
    parse_rule_keys,
    quick_train_limit,
    share_query,
    submit_comparison,
    summary_csv,
    summary_rows,
    table_protocol,
)
from fa_core.data import DATASETS, dataset_status
from fa_core.jobs import JobError
from fa_core.models import MODELS
from fa_core.plots import (
    ExportError,
    accuracy_figure,
    angles_figure,
    comparison_figure,
    export_image,
    image_export_available,
    loss_figure,
    rule_color,
    style_runs,
    thin_run,
)
from fa_core.runs import RunError
from fa_core.training import OPTIMIZERS, ConfigError, TrainConfig
from app_pages.shared import (
    STATUS_ICONS,
    format_duration,
    job_manager,
    keep_settings,
    owner_id,
    restore_settings,
    run_store,
)

RULE_OPTIONS = ["bp", "fa"] + [f"fa_ex{p}" for p in FA_EX_P_CHOICES]
# Points per curve sent to the browser on each live refresh (longer histories are downsampled).
LIVE_POINTS = 400
# The charts' camera button downloads an SVG (client-side; no server round trip).
MODEBAR = {"displaylogo": False, "toImageButtonOptions": {"format": "svg", "scale": 2}}

manager = job_manager()
store = run_store()
owner = owner_id()

st.title("Compare learning rules")
st.caption("Same data, model, protocol and seed for every rule: identical initial forward weights and "
           "batch order, so the only difference between the curves is the learning rule.")


# ---- settings <-> URL ------------------------------------------------------------------------------
def _url(name: str) -> str | None:
    value = st.query_params.get(name)
    return value if isinstance(value, str) and value != "" else None


def _url_number(name: str, cast: Any) -> Any:
    text = _url(name)
    if text is None:
        return None
    try:
        value = cast(text)
    except ValueError:
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def load_settings_from_url() -> None:
    """Preset the widgets from the query string (a shared link): on this session's first visit, and
    whenever the URL's settings are not the ones this page last wrote there (a link from another
    page, such as a run's "Open this configuration in Compare")."""
    in_url = {k: st.query_params[k] for k in SHARE_KEYS if k in st.query_params}
    if st.session_state.get("cmp_url_loaded") and (not in_url or in_url == st.session_state.get("cmp_url_written")):
        return
    st.session_state["cmp_url_loaded"] = True
    problems = []
    dataset, model = _url("dataset"), _url("model")
    if dataset in DATASETS:
        st.session_state["cmp_dataset"] = dataset
    if model in MODELS:
        st.session_state["cmp_model"] = model
    model = st.session_state.get("cmp_model", "mlp")
    if _url("rules"):
        try:
            choices = parse_rule_keys(_url("rules"))
        except ValueError as err:
            problems.append(str(err))
        else:
            st.session_state["cmp_rules"] = [c.key for c in choices]
    if _url("opt") in OPTIMIZERS:
        st.session_state[f"cmp_opt_{model}"] = _url("opt")
    for name, key, cast in (("lr", "cmp_lr", float), ("batch", "cmp_batch", int), ("epochs", "cmp_epochs", int),
                            ("seed", "cmp_seed", int)):
        value = _url_number(name, cast)
        if value is not None and value > 0 or (name == "seed" and value == 0):
            st.session_state[f"{key}_{model}" if name != "seed" else key] = value
    fraction = _url_number("frac", float)
    if fraction in QUICK_FRACTIONS:
        st.session_state["cmp_fraction"] = fraction
    sigma = _url_number("sigma", float)
    if sigma is not None and 0 <= sigma <= 255:
        st.session_state["cmp_sigma"] = int(sigma) - int(sigma) % 5
    if _url("mode") in ("together", "queued"):
        st.session_state["cmp_mode"] = _url("mode")
    if problems:
        st.session_state["cmp_notice"] = ("warning", "Ignored from the link: " + "; ".join(problems))


restore_settings("compare")
load_settings_from_url()

# Prefixes of the form's widget keys, kept across a trip to another page (not its buttons or charts).
SETTING_KEYS = ("cmp_dataset", "cmp_model", "cmp_rules", "cmp_seed", "cmp_fraction", "cmp_sigma", "cmp_mode",
                "cmp_name", "cmp_batch_", "cmp_epochs_", "cmp_lr_", "cmp_opt_")

# ---- which comparison is attached? -------------------------------------------------------------------
url_group = _url("cmp")
if url_group and url_group != st.session_state.get("cmp_group"):
    st.session_state["cmp_group"] = url_group
group: str | None = st.session_state.get("cmp_group")


def detach() -> None:
    st.session_state.pop("cmp_group", None)
    st.query_params.pop("cmp", None)


# ---- configuration -----------------------------------------------------------------------------------
if "cmp_rules" not in st.session_state:
    st.session_state["cmp_rules"] = list(DEFAULT_RULE_KEYS)
rule_options = list(dict.fromkeys(RULE_OPTIONS + list(st.session_state["cmp_rules"])))

with st.container(border=True):
    st.markdown("**Configuration** (shared by every rule)")
    c1, c2, c3 = st.columns([1, 2, 3])
    dataset = c1.selectbox(
        "Dataset", list(DATASETS), key="cmp_dataset",
        format_func=lambda n: n if dataset_status(n) == "ready" else f"{n} (not downloaded)",
    )
    model = c2.selectbox("Model", list(MODELS), key="cmp_model",
                         format_func=lambda n: f"{n} – {MODELS[n].description}")
    rule_keys = c3.multiselect(
        "Rules", rule_options, key="cmp_rules", format_func=lambda k: parse_rule_key(k).label,
        help="FA_EX-p%: B = +c on p% of its entries and -c on the rest (c = 0.5). Several FA_EX "
             "variants are drawn in shades of green.",
    )
    protocol = table_protocol(model)
    # Defaults go through session state (never a widget's value=), so a shared link's values win
    # without Streamlit's "default value and Session State" warning.
    for key, value in ((f"cmp_opt_{model}", protocol["optimizer"]), (f"cmp_lr_{model}", float(protocol["lr"])),
                       (f"cmp_batch_{model}", int(protocol["batch_size"])),
                       (f"cmp_epochs_{model}", int(protocol["epochs"])), ("cmp_seed", int(protocol["seed"])),
                       ("cmp_fraction", 1.0), ("cmp_sigma", 0), ("cmp_mode", "together")):
        st.session_state.setdefault(key, value)
    d1, d2, d3, d4, d5 = st.columns(5)
    optimizer = d1.selectbox("Optimizer", list(OPTIMIZERS), key=f"cmp_opt_{model}")
    lr = d2.number_input("Learning rate", min_value=0.0, max_value=100.0,
                         step=float(protocol["lr"]) / 10, format="%g", key=f"cmp_lr_{model}")
    batch_size = d3.number_input("Batch size", min_value=1, max_value=4096, step=1, key=f"cmp_batch_{model}")
    epochs = d4.number_input("Epochs", min_value=1, max_value=500, step=1, key=f"cmp_epochs_{model}")
    seed = d5.number_input("Seed", min_value=0, max_value=2**31 - 1, step=1, key="cmp_seed")
    e1, e2, e3, e4 = st.columns([2, 2, 2, 3])
    fraction = e1.select_slider(
        "Quick run: part of the training set", list(QUICK_FRACTIONS), key="cmp_fraction",
        format_func=lambda f: f"{100 * f:g}%",
        help="Train on the first part of the training set only (the test set stays whole). "
             "The paper's numbers need 100%.",
    )
    sigma = 0.0
    if MODELS[model].task == "denoise":
        sigma = float(e2.slider("Noise σ (0–255)", 0, 255, step=5, key="cmp_sigma"))
    mode = e3.radio(
        "Run the rules", ["together", "queued"], key="cmp_mode", horizontal=True,
        format_func=lambda m: "together" if m == "together" else "one after another",
        help="Together: all rules train at the same time and take one slot of the job cap "
             f"({manager.max_running} at once here), so their curves grow side by side. "
             "One after another: each rule is its own job in the queue.",
    )
    name = e4.text_input("Name (optional)", key="cmp_name", max_chars=80)
    st.caption(f"Defaults: the protocol FA Lab uses to reproduce the paper's tables for `{model}` "
               f"({protocol['optimizer']} lr {protocol['lr']:g}, batch {protocol['batch_size']}, "
               f"{protocol['epochs']} epochs, seed {protocol['seed']}).")
    if dataset_status(dataset) != "ready":
        st.caption(f"`{dataset}` is {dataset_status(dataset)} here: the first run downloads and verifies it.")

    keep_settings("compare", SETTING_KEYS)

    def build_base() -> TrainConfig:
        return TrainConfig(
            dataset=dataset, model=model, optimizer=optimizer, lr=float(lr), batch_size=int(batch_size),
            epochs=int(epochs), seed=int(seed), sigma=sigma,
            train_limit=quick_train_limit(fraction, int(batch_size), DATASETS[dataset].train_size),
        )

    settings = share_query(build_base().to_dict(), rules=rule_keys, mode=mode)
    for key in SHARE_KEYS:
        if key not in settings:
            st.query_params.pop(key, None)
        elif st.query_params.get(key) != settings[key]:
            st.query_params[key] = settings[key]
    st.session_state["cmp_url_written"] = settings
    base_url = (st.context.url or "").split("?")[0]
    with st.expander("Share this configuration"):
        st.caption("The address bar always holds these settings; this link has them without your session "
                   "id, so whoever opens it gets the same form, not your jobs.")
        st.code(f"{base_url}?{urlencode(settings)}", language=None)

    b1, b2, _ = st.columns([1, 1, 5])
    if b1.button("Compare", type="primary", key="cmp_start", icon=":material/play_arrow:",
                 disabled=not rule_keys):
        try:
            choices = [parse_rule_key(k) for k in rule_keys]
            new_group, _ids = submit_comparison(manager, build_base(), choices, owner,
                                                together=(mode == "together"), name=name or None)
        except (ConfigError, JobError, RunError, ValueError) as err:
            st.error(str(err))
        else:
            st.session_state["cmp_group"] = new_group
            st.query_params["cmp"] = new_group
            st.rerun()
    if group:
        b2.button("Detach", key="cmp_detach", on_click=detach,
                  help="Stop showing this comparison here (its runs go on).")

notice = st.session_state.pop("cmp_notice", None)
if notice:
    getattr(st, notice[0])(notice[1])


# ---- the attached comparison -------------------------------------------------------------------------
def stored_entries(group_id: str) -> list[dict[str, Any]]:
    records = [r for r in store.list_runs() if r.status.get("group") == group_id]
    records.sort(key=lambda r: (str(r.status.get("created") or ""), r.run_id))
    out = []
    for record in records:
        try:
            out.append(entry_from_record(store.load_run(record.run_id)))
        except RunError:
            continue
    return out


def current_entries(group_id: str) -> tuple[list[dict[str, Any]], bool]:
    """The group's runs (live from the job manager if this session owns them, else stored)."""
    snaps = manager.group_jobs(group_id, owner, history=True)
    if snaps:
        return [entry_from_snapshot(s) for s in snaps], True
    return stored_entries(group_id), False


def stop_all(group_id: str) -> None:
    for snap in manager.group_jobs(group_id, owner, history=False):
        if snap.active:
            try:
                manager.stop(snap.job_id, owner)
            except JobError:
                pass


def status_line(entry: dict[str, Any]) -> str:
    status = entry.get("status")
    if status == "queued":
        pos = entry.get("queue_position")
        return f"queued #{pos}" if pos else "queued"
    if status in ("running", "paused"):
        return f"{status} · {100 * (entry.get('progress') or 0):.0f}%"
    return str(status)


def colour_dot(color: str) -> str:
    return f"<span style='color:{color};font-size:1.3em'>&#9679;</span>"


def render_summary(entries: list[dict[str, Any]], task: str) -> list[dict[str, Any]]:
    rows = summary_rows(entries)
    metric = "Test BCE" if task == "denoise" else "Test accuracy (%)"
    labels = dict(SUMMARY_COLUMNS, measured=metric, paper=f"Paper: {metric.lower()}")
    display = [{labels[k]: v for k, v in row.items() if k in labels} for row in rows]
    fmt = "%.4f" if task == "denoise" else "%.2f"
    st.dataframe(
        display, hide_index=True, width="stretch",
        column_config={
            labels["measured"]: st.column_config.NumberColumn(format=fmt),
            labels["paper"]: st.column_config.NumberColumn(format=fmt),
            labels["difference"]: st.column_config.NumberColumn(format="%+.4f" if task == "denoise" else "%+.2f"),
            labels["w_angle"]: st.column_config.NumberColumn(format="%.1f",
                                                             help="mean over layers whose B is used"),
            labels["signal_angle"]: st.column_config.NumberColumn(format="%.1f",
                                                                  help="mean over hidden layers; the one that predicts learning"),
        },
    )
    return rows


def render_paper_notes(entries: list[dict[str, Any]]) -> None:
    """The paper's values in one caption: which table and column, and how this protocol differs."""
    matches = [(entry, paper_cell(entry.get("config") or {})) for entry in entries]
    matches = [(entry, match) for entry, match in matches if match is not None]
    if not matches:
        if entries:
            st.caption("None of these configurations is one of the paper's table cells (Tables 1–3), so there is "
                       "no paper value to compare with.")
        return
    cells = ", ".join(f"{m.row} {m.paper:g}" for _, m in matches)
    first = matches[0][1]
    text = f"Paper values ({first.title}, column {first.column}): {cells}."
    differences = list(dict.fromkeys(d for _, m in matches for d in m.differences))
    if differences:
        text += " This comparison's protocol differs from the cells' (" + "; ".join(differences) + \
                "): the paper's values are for orientation only."
    else:
        text += " Same protocol as the cells (the seed aside)."
    notes = list(dict.fromkeys(m.note for _, m in matches if m.note))
    if notes:
        text += " Note: " + "; ".join(notes) + "."
    st.caption(text)


def render_exports(entries: list[dict[str, Any]], task: str, config: dict[str, Any], key: str) -> None:
    styled = style_runs(entries)
    stem = f"fa-lab-compare-{config.get('model')}-{config.get('dataset')}-seed{config.get('seed')}"
    title = f"{', '.join(str(e.get('label')) for e in entries)} · {describe_config(config)}"
    rows = summary_rows(entries)
    ok, why = image_export_available()
    cols = st.columns(4)

    def image(fmt: str):
        def make() -> bytes:
            return export_image(comparison_figure(styled, task=task, title=title), fmt)
        return make

    if ok:
        cols[0].download_button("Figure (PNG)", data=image("png"), file_name=f"{stem}.png", mime="image/png",
                                key=f"cmp_png_{key}", icon=":material/image:", on_click="ignore")
        cols[1].download_button("Figure (SVG)", data=image("svg"), file_name=f"{stem}.svg",
                                mime="image/svg+xml", key=f"cmp_svg_{key}", icon=":material/image:",
                                on_click="ignore")
    else:
        cols[0].caption(f"PNG/SVG export is not available here ({why}); use the camera icon above each chart "
                        "(it downloads an SVG).")
    cols[2].download_button("Summary (CSV)", data=summary_csv(rows), file_name=f"{stem}-summary.csv",
                            mime="text/csv", key=f"cmp_csv_{key}", icon=":material/table:", on_click="ignore")
    cols[3].download_button("Per-epoch metrics (CSV)", data=history_csv(entries), file_name=f"{stem}-epochs.csv",
                            mime="text/csv", key=f"cmp_hist_{key}", icon=":material/table:", on_click="ignore")


def comparison_view() -> None:
    """The attached comparison: status per rule, overlaid curves, summary; refreshed each second while active."""
    entries, live = current_entries(group)
    if not entries:
        st.warning("That comparison is not known here (it may have been deleted).")
        return
    config = dict(entries[0].get("config") or {})
    task = MODELS[config["model"]].task if config.get("model") in MODELS else "classify"
    active = any(e.get("status") in ("queued", "running", "paused") for e in entries)
    st.subheader(("Comparison: " + ", ".join(str(e.get("label")) for e in entries)))
    st.caption(describe_config(config) + ("" if live else " · from the run store"))

    styled = style_runs(entries)
    cols = st.columns(len(styled))
    for col, entry in zip(cols, styled):
        icon = STATUS_ICONS.get(str(entry.get("status")), "")
        col.markdown(f"{colour_dot(entry['color'])} **{entry.get('label')}** {icon} {status_line(entry)}",
                     unsafe_allow_html=True)
        if entry.get("status") in ("running", "paused"):
            col.progress(min(1.0, max(0.0, entry.get("progress") or 0.0)))
        if entry.get("status") == "failed" and entry.get("error"):
            col.caption(f"failed: {entry['error']}")
    if active and any(e.get("status") == "queued" for e in entries):
        counts = manager.counts()
        st.caption(f"Queued rules start when a slot is free: {counts['running']} running, "
                   f"{counts['queued']} queued on this server, at most {counts['max_running']} slots.")

    thin = [thin_run(e, LIVE_POINTS) for e in styled]
    show_unused = st.session_state.get("cmp_show_unused", False)
    g1, g2, g3 = st.columns(3)
    g1.plotly_chart(accuracy_figure(thin, task=task, max_epoch=int(config.get("epochs") or 0) or None),
                    key="cmp_acc", config=MODEBAR)
    g2.plotly_chart(loss_figure(thin), key="cmp_loss", config=MODEBAR)
    g3.plotly_chart(angles_figure(thin, show_unused=show_unused), key="cmp_angles", config=MODEBAR)
    st.caption("Angles: solid W∠B (forward weights vs feedback), dashed δFA∠δBP (the error a layer receives vs "
               "the true backpropagated error: below 90° the update points downhill). BP has no B, and its "
               "δ angle is 0.")
    render_summary(entries, task)
    render_paper_notes(entries)
    if active:
        if live:
            st.button("Stop all", key="cmp_stop", icon=":material/stop:", on_click=stop_all, args=(group,))
    else:
        render_exports(entries, task, config, group)
    if was_active and not active:
        st.rerun()


def recent_comparisons(limit: int = 8) -> list[tuple[str, str, str]]:
    seen: dict[str, tuple[str, str, str]] = {}
    for row in store.summaries():
        gid = row.get("group")
        if not gid:
            continue
        label = row.get("rule_label") or ""
        if gid in seen:
            g, title, created = seen[gid]
            seen[gid] = (g, f"{label}, {title}", created)
        else:
            seen[gid] = (gid, f"{label} · {row.get('model')} on {row.get('dataset')}", row.get("created") or "")
        if len(seen) > limit:
            break
    return list(seen.values())[:limit]


if group:
    first_entries, _ = current_entries(group)
    was_active = any(e.get("status") in ("queued", "running", "paused") for e in first_entries)
    st.fragment(comparison_view, run_every=1.0 if was_active else None)()
    st.checkbox("Show the first layer's W∠B angle (its B is never used)", key="cmp_show_unused")
else:
    st.info("Pick the rules and press **Compare**. Tip: MNIST · mlp · BP, FA, FA_EX-100% with a 10% quick "
            "run takes about a minute on a CPU; watch FA's δ angle fall below 90° while FA_EX-100% stays high.")
    recent = recent_comparisons()
    if recent:
        st.markdown("**Recent comparisons**")
        for gid, title, created in recent:
            st.page_link("app_pages/compare.py", label=f"{title} · {created[:16].replace('T', ' ')}",
                         icon=":material/compare_arrows:", query_params={"cmp": gid, "sid": owner})

st.caption("Colours: " + " · ".join(f"{colour_dot(rule_color(r))} {parse_rule_key(r).label}"
                                    for r in ("bp", "fa", "fa_ex")), unsafe_allow_html=True)
