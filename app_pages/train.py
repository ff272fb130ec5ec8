"""Train: configure a run, start it as a background job, watch it live, save its checkpoint.

The job id lives in the URL (``?job=...``) and in session state, so a refresh or a trip to
another page reattaches to it. Training never runs in this script: the job manager's thread
does it, and a fragment re-renders the progress about once a second.
"""

from __future__ import annotations

import math
from typing import Any
from urllib.parse import urlencode

import streamlit as st

from fa_core.comparison import QUICK_FRACTIONS, SHARE_KEYS, parse_share_query, share_query
from fa_core.data import DATASETS, dataset_status
from fa_core.jobs import JobAccessError, JobError, JobSnapshot, UnknownJobError
from fa_core.models import MODELS
from fa_core.plots import accuracy_figure, angles_figure, loss_figure, run_from_metrics, run_from_snapshot
from fa_core.rules import RULES
from fa_core.runs import RunError
from fa_core.training import LR_SCHEDULES, OPTIMIZERS, ConfigError, TrainConfig, paper_protocol
from app_pages.shared import (
    STATUS_ICONS,
    checkpoints_dir,
    format_duration,
    job_manager,
    keep_settings,
    owner_id,
    restore_settings,
    run_store,
)
from app_pages.watchdog import live_view_watchdog


manager = job_manager()
store = run_store()
owner = owner_id()

st.title("Train")

# ---- which job is this page showing? -----------------------------------------------------------
url_job = st.query_params.get("job")
if url_job and url_job != st.session_state.get("train_job"):
    st.session_state["train_job"] = url_job
job_id: str | None = st.session_state.get("train_job")
if job_id and st.query_params.get("job") != job_id:
    st.query_params["job"] = job_id


def detach() -> None:
    st.session_state.pop("train_job", None)
    st.query_params.pop("job", None)


def notice(message: str, kind: str = "error") -> None:
    st.session_state["train_notice"] = (kind, message)


def control(action: str, target: str) -> None:
    """Pause/resume/stop callback (runs before the script, so the page renders the new state)."""
    try:
        getattr(manager, action)(target, owner)
    except JobError as err:
        notice(str(err), "warning")


# ---- settings from a shared link (?model=...&rules=fa&lr=...), once per link ------------------------
def load_settings_from_url() -> None:
    """Preset the configuration widgets from the query string the first time this session sees it."""
    shared = {k: st.query_params[k] for k in SHARE_KEYS if k in st.query_params}
    if not shared or shared == st.session_state.get("cfg_url_applied"):
        return
    st.session_state["cfg_url_applied"] = shared
    settings, problems = parse_share_query(shared)
    for name in ("dataset", "model"):
        if name in settings:
            st.session_state[f"cfg_{name}"] = settings[name]
    model_key = st.session_state.get("cfg_model", "mlp")
    rules = settings.get("rules") or []
    if rules:
        st.session_state["cfg_rule"] = rules[0].rule
        if rules[0].rule == "fa_ex":
            st.session_state["cfg_p"] = int(rules[0].params.get("p", 100))
        if len(rules) > 1:
            problems.append("the Train page trains one rule: using the first (open Compare for several)")
    for name, key in (("optimizer", "cfg_opt"), ("lr", "cfg_lr"), ("batch_size", "cfg_batch"), ("epochs", "cfg_epochs")):
        if name in settings:
            st.session_state[f"{key}_{model_key}"] = settings[name]
    if "seed" in settings:
        st.session_state["cfg_seed"] = settings["seed"]
    if "fraction" in settings:
        st.session_state["cfg_fraction"] = settings["fraction"]
    if "sigma" in settings:
        st.session_state["cfg_sigma"] = int(settings["sigma"]) - int(settings["sigma"]) % 5
    if problems:
        notice("Ignored from the link: " + "; ".join(problems), "warning")


restore_settings("train")
load_settings_from_url()

# ---- configuration -------------------------------------------------------------------------------
with st.container(border=True):
    st.markdown("**Configuration**")
    c1, c2, c3, c4 = st.columns(4)
    dataset = c1.selectbox(
        "Dataset", list(DATASETS), key="cfg_dataset",
        format_func=lambda n: n if dataset_status(n) == "ready" else f"{n} (not downloaded)",
    )
    model = c2.selectbox(
        "Model", list(MODELS), key="cfg_model", format_func=lambda n: f"{n} – {MODELS[n].description}",
    )
    rule = c3.selectbox(
        "Learning rule", list(RULES), index=list(RULES).index("fa"), key="cfg_rule",
        format_func=lambda n: RULES[n].label,
    )
    rule_params: dict[str, float] = {}
    if rule == "fa_ex":
        rule_params["p"] = float(
            c4.slider("p: % of B's entries that are +c", 0, 100, 100, step=5, key="cfg_p",
                      help="FA_EX-p%: B = +c on p% of the entries, -c on the rest (c = 0.5).")
        )

    protocol = paper_protocol(model)
    d1, d2, d3, d4, d5 = st.columns(5)
    optimizers = list(OPTIMIZERS)
    optimizer = d1.selectbox(
        "Optimizer", optimizers, index=optimizers.index(protocol["optimizer"]), key=f"cfg_opt_{model}",
    )
    lr = d2.number_input(
        "Learning rate", min_value=0.0, max_value=100.0, value=float(protocol["lr"]),
        step=float(protocol["lr"]) / 10, format="%g", key=f"cfg_lr_{model}",
    )
    batch_size = d3.number_input(
        "Batch size", min_value=1, max_value=4096, value=int(protocol["batch_size"]), step=1,
        key=f"cfg_batch_{model}",
    )
    epochs = d4.number_input(
        "Epochs", min_value=1, max_value=500, value=int(protocol["epochs"]), step=1, key=f"cfg_epochs_{model}",
    )
    seed = d5.number_input(
        "Seed", min_value=0, max_value=2**31 - 1, value=int(protocol["seed"]), step=1, key="cfg_seed",
    )

    e1, e2, e3 = st.columns([2, 2, 3])
    sigma = 0.0
    if MODELS[model].task == "denoise":
        sigma = float(
            e1.slider("Noise σ (pixel units, 0–255)", 0, 255, 0, step=5, key="cfg_sigma",
                      help="Gaussian noise added to each pixel on the 0–255 scale; the paper uses 0, 100, 255.")
        )
    fraction = e2.select_slider(
        "Quick run: part of the training set", QUICK_FRACTIONS, value=1.0, key="cfg_fraction",
        format_func=lambda f: f"{100 * f:g}%",
    )
    run_name = e3.text_input("Run name (optional)", key="cfg_name", max_chars=120)
    with st.expander("Advanced"):
        a1, a2, a3 = st.columns(3)
        momentum = a1.number_input(
            "Momentum (SGD/RMSprop)", min_value=0.0, max_value=0.999, value=0.0, step=0.1, key="cfg_momentum",
        )
        lr_schedule = a2.selectbox(
            "Learning-rate schedule", list(LR_SCHEDULES), key="cfg_lr_schedule",
            help="constant: the paper's protocol; cosine: from the learning rate down towards 0 over the run.",
        )
        device = a3.selectbox("Device", ["auto", "cpu", "cuda"], key="cfg_device")

    keep_settings("train", ("cfg_",))
    status = dataset_status(dataset)
    if status != "ready":
        st.caption(f"`{dataset}` is {status} here; the run downloads and verifies it first "
                   "(or fetch it on the Home page).")

    def build_config() -> TrainConfig:
        train_limit = None
        if fraction < 1.0:
            train_limit = max(int(batch_size), math.ceil(fraction * DATASETS[dataset].train_size))
        return TrainConfig(
            dataset=dataset, model=model, rule=rule, rule_params=rule_params, optimizer=optimizer,
            lr=float(lr), lr_schedule=lr_schedule, momentum=float(momentum), batch_size=int(batch_size),
            epochs=int(epochs), seed=int(seed), sigma=sigma, device=device, train_limit=train_limit,
        )

    b1, b2, b3, b4, _ = st.columns([1, 1, 1, 1, 4])
    if b1.button("Start", type="primary", key="start", icon=":material/play_arrow:"):
        try:
            job_id = manager.submit(build_config(), owner, name=run_name or None)
        except (ConfigError, JobError, RunError) as err:
            st.error(str(err))
        else:
            st.session_state["train_job"] = job_id
            st.query_params["job"] = job_id
            st.rerun()  # so the sidebar and the buttons show the new job at once
    with st.expander("Share this configuration", icon=":material/link:"):
        try:
            shared_query = share_query(build_config().to_dict())
        except (ConfigError, ValueError) as err:
            st.caption(f"Not shareable yet: {err}")
        else:
            st.caption("Open this link (add the server's address in front) to get these settings:")
            st.code("/train?" + urlencode(shared_query), language=None)

# ---- the attached job ----------------------------------------------------------------------------
snapshot: JobSnapshot | None = None
stored = None
if job_id:
    try:
        snapshot = manager.snapshot(job_id, owner, history=False)
    except JobAccessError:
        st.error("That job belongs to another browser session.")
        detach()
        job_id = None
    except UnknownJobError:
        try:
            record = store.load_run(job_id)
        except RunError:
            record = None
        if record is not None and record.status.get("owner") == owner:
            stored = record
        else:
            st.warning("That job is not known here (the server may have restarted).")
            detach()
            job_id = None

if snapshot is not None:
    if snapshot.status == "running":
        b2.button("Pause", key="pause", icon=":material/pause:", on_click=control, args=("pause", job_id))
    elif snapshot.status == "paused":
        b2.button("Resume", key="resume", icon=":material/play_arrow:", on_click=control, args=("resume", job_id))
    if snapshot.active:
        b3.button("Stop", key="stop", icon=":material/stop:", on_click=control, args=("stop", job_id))
if job_id:
    b4.button("Detach", key="detach", on_click=detach, help="Stop showing this job here (it keeps running).")

kind_message = st.session_state.pop("train_notice", None)
if kind_message:
    getattr(st, kind_message[0])(kind_message[1])


def final_metrics(final: dict[str, Any], task: str) -> None:
    cols = st.columns(5)
    if task == "denoise":
        cols[0].metric("Test BCE", _fmt(final.get("test_bce"), "{:.4f}"))
    else:
        cols[0].metric("Test accuracy", _fmt(final.get("test_accuracy"), "{:.2f}%"))
        if final.get("train_accuracy") is not None:
            cols[1].metric("Train accuracy", _fmt(final.get("train_accuracy"), "{:.2f}%"))
    cols[2].metric("Test loss", _fmt(final.get("test_loss"), "{:.4f}"))
    cols[3].metric("Steps", _fmt(final.get("steps"), "{:,}"))
    cols[4].metric("Training time", format_duration(final.get("elapsed_s")))
    if final.get("partial_epoch"):
        st.caption(f"Stopped during epoch {final.get('epoch')}: the test numbers come from evaluating the "
                   "model at the moment it stopped.")


def _fmt(value: Any, pattern: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return pattern.format(value)


def charts(run: dict[str, Any], task: str, key: str, epochs: int | None = None) -> None:
    show_unused = st.session_state.get("show_unused", False)
    g1, g2, g3 = st.columns(3)
    g1.plotly_chart(loss_figure([run]), key=f"loss_{key}")
    g2.plotly_chart(accuracy_figure([run], task=task, max_epoch=epochs), key=f"acc_{key}")
    g3.plotly_chart(angles_figure([run], show_unused=show_unused), key=f"angles_{key}")


def save_checkpoint_form(run_id: str, default_name: str) -> None:
    with st.container(border=True):
        st.markdown("**Save checkpoint as…**")
        folder = checkpoints_dir()
        n1, n2 = st.columns([3, 1], vertical_alignment="bottom")
        name = n1.text_input("Checkpoint name", value=default_name, key=f"ckpt_name_{run_id}",
                             help=f"Saved as <name>.safetensors in {folder}")
        if n2.button("Save", key=f"ckpt_save_{run_id}", icon=":material/save:"):
            try:
                path = store.export_checkpoint(run_id, folder, name)
            except RunError as err:
                st.error(str(err))
            else:
                st.success(f"Saved {path.name} in {folder}")
        st.caption(f"The run's own checkpoint is kept in its run folder: `runs/{run_id}/model.safetensors`.")


def live_view() -> None:
    """Progress, live metrics and charts of the attached job (re-run every second while active)."""
    if st.query_params.get("job") != job_id:
        # The browser's URL lost the job (seen after a page change through the sidebar menu):
        # put it back, so a reload or a copied link still reattaches.
        st.query_params["job"] = job_id
    try:
        snap = manager.snapshot(job_id, owner)
    except JobError as err:
        st.warning(str(err))
        return
    icon = STATUS_ICONS.get(snap.status, "")
    st.subheader(f"{icon} {snap.display_name}")
    meta = (f"{snap.rule_label} · {snap.config['model']} on {snap.config['dataset']} · "
            f"{snap.config['optimizer']} lr {snap.config['lr']:g} · batch {snap.config['batch_size']} · "
            f"seed {snap.config['seed']}")
    if snap.device:
        meta += f" · {snap.device}"
    if snap.train_size:
        meta += f" · {snap.train_size:,} train / {snap.test_size:,} test images"
    st.caption(meta)
    if snap.status == "queued":
        st.info(f"Queued: position {snap.queue_position} (at most {manager.max_running} jobs run at once).")
    elif snap.status == "failed":
        st.error(f"The run failed: {snap.error}")
    text = (f"{snap.status} · step {snap.step:,}/{snap.total_steps:,} · epoch {snap.epoch}/{snap.epochs} · "
            f"elapsed {format_duration(snap.elapsed)}")
    if snap.active and snap.eta is not None:
        text += f" · ETA {format_duration(snap.eta)}"
    if snap.stage:
        text += f" · {snap.stage}"
    st.progress(min(1.0, max(0.0, snap.progress)), text=text)
    if snap.active:
        m = st.columns(4)
        m[0].metric("Loss", _fmt(snap.latest.get("loss"), "{:.4f}"))
        if snap.task == "denoise":
            m[1].metric("Last test BCE", _fmt(snap.latest.get("test_bce"), "{:.4f}"))
        else:
            m[1].metric("Last test accuracy", _fmt(snap.latest.get("test_accuracy"), "{:.2f}%"))
        last_angles = {k: v[-1] for k, v in snap.weight_angles.items() if v and "(B unused)" not in k}
        if last_angles:
            layer, value = list(last_angles.items())[-1]
            m[2].metric(f"W∠B {layer}", _fmt(value, "{:.1f}°"))
        last_signal = {k: v[-1] for k, v in snap.signal_angles.items() if v}
        if last_signal:
            layer, value = list(last_signal.items())[0]
            m[3].metric(f"δFA∠δBP {layer}", _fmt(value, "{:.1f}°"))
    elif snap.final and snap.status in ("finished", "stopped"):
        final_metrics(snap.final, snap.task)
    charts(run_from_snapshot(snap), snap.task, "live", snap.epochs)
    if was_active and snap.done:
        st.rerun()


if snapshot is not None:
    was_active = snapshot.active
    st.fragment(live_view, run_every=1.0 if was_active else None)()
    if was_active:
        live_view_watchdog()
    st.checkbox("Show the first layer's W∠B angle (its B is never used)", key="show_unused")
    if snapshot.done and snapshot.checkpoint_saved:
        default = f"{snapshot.config['model']}-{snapshot.config['rule']}-{snapshot.config['dataset']}"
        save_checkpoint_form(snapshot.run_id, default)
elif stored is not None:
    state = stored.state
    st.subheader(f"{STATUS_ICONS.get(state, '')} {stored.name}")
    st.caption(f"Stored run `{stored.run_id}` · {state}")
    if stored.status.get("error"):
        st.warning(stored.status["error"])
    metrics = stored.metrics or {}
    task = MODELS[stored.config["model"]].task if stored.config.get("model") in MODELS else "classify"
    if metrics.get("final"):
        final_metrics(metrics["final"], task)
    if metrics:
        charts(run_from_metrics(metrics), task, "stored", stored.config.get("epochs"))
    if stored.has_model:
        default = f"{stored.config.get('model')}-{stored.config.get('rule')}-{stored.config.get('dataset')}"
        save_checkpoint_form(stored.run_id, default)
else:
    st.info("Choose a configuration and press **Start**. Defaults are the paper's protocol for the model "
            "(SGD 0.01, batch 32, 10 epochs for classifiers; RMSprop 1e-4, batch 128 for the autoencoder).")
