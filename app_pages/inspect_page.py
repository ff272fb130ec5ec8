"""Inspect: look inside a trained network (a stored run, a checkpoint file, or an upload).

Per layer, the W-vs-B angle and the angle between the error FA delivers and the true BP error over
training; W's entries against B's; the first layer's filters as images (for the locally
connected CNN at a grid of positions, so one sees that every position has its own filter); the
test-set confusion matrix and the most confident mistakes. ``?run=<run id>`` opens a run directly.
All computation is in :mod:`fa_core.inspection`; results are cached per checkpoint file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import streamlit as st
import torch

from fa_core.checkpoints import CheckpointError, load_checkpoint
from fa_core.comparison import describe_config
from fa_core.inspection import (
    classifier_report,
    first_layer,
    first_layer_filters,
    initial_model,
    position_similarity,
    reconstructions,
    weight_feedback_sample,
    display_image,
)
from fa_core.layers import LocallyConnected2d, feedback_layers
from fa_core.metrics import UNUSED_SUFFIX, alignment_angles, signal_alignment_angles
from fa_core.plots import (
    confusion_figure,
    filter_mosaic_figure,
    layer_angles_figure,
    rule_color,
    weight_histogram_figure,
    weight_scatter_figure,
)
from fa_core.runs import RunError, rule_display_name
from fa_core.training import model_loss, to_float
from fa_core.uploads import UploadError, stash_upload
from app_pages.shared import REPO_ROOT, checkpoints_dir, job_manager, owner_id, run_store

RUNS_PAGE = "app_pages/runs_page.py"
MODEBAR = {"displaylogo": False, "toImageButtonOptions": {"format": "svg", "scale": 2}}

store = run_store()
manager = job_manager()
owner = owner_id()

st.title("Inspect a network")


@st.cache_resource(max_entries=6, show_spinner="Loading the checkpoint…")
def cached_model(path: str, stamp: int) -> tuple[Any, dict[str, Any]]:
    model, meta = load_checkpoint(path, device="cpu")
    return model, meta


@st.cache_resource(max_entries=6, show_spinner=False)
def cached_initial_model(path: str, stamp: int, config_key: str) -> Any:
    return initial_model(json.loads(config_key))


@st.cache_resource(max_entries=4, show_spinner="Loading the test set…")
def cached_dataset(name: str) -> Any:
    return manager.dataset_loader(name, device=torch.device("cpu"), progress=None)


@st.cache_resource(max_entries=6, show_spinner="Classifying the test set…")
def cached_report(path: str, stamp: int, dataset: str, limit: int | None) -> Any:
    model, _ = cached_model(path, stamp)
    data = cached_dataset(dataset)
    return classifier_report(model, data.test_x, data.test_y, limit=limit, gallery=24)


@st.cache_resource(max_entries=6, show_spinner="Measuring angles on test images…")
def cached_current_angles(path: str, stamp: int, dataset: str) -> tuple[dict[str, float], dict[str, float]]:
    model, _ = cached_model(path, stamp)
    data = cached_dataset(dataset)
    x = to_float(data.test_x[:256])
    if model.task == "classify":
        target = data.test_y[:256]
    else:
        target = x
    signal = signal_alignment_angles(model, x, target, lambda out, t: model_loss(model.task, out, t))
    return alignment_angles(model), signal


def checkpoint_files() -> list[Path]:
    folders = [checkpoints_dir(), REPO_ROOT / "checkpoints"]
    seen: dict[Path, None] = {}
    for folder in folders:
        if folder.is_dir():
            for path in sorted(folder.rglob("*.safetensors")):
                if len(path.relative_to(folder).parts) <= 3:
                    seen.setdefault(path.resolve(), None)
    return list(seen)


# ---- choose what to inspect ------------------------------------------------------------------------
runs = [r for r in store.summaries() if r["has_model"]]
run_ids = [r["run_id"] for r in runs]
labels = {r["run_id"]: (f"{r['name']} · {r['rule_label']} {r['model']} on {r['dataset']}"
                        + (f" · {r['test_accuracy']:.2f}%" if r["test_accuracy"] is not None else "")
                        + (f" · BCE {r['test_bce']:.4f}" if r["test_bce"] is not None else ""))
          for r in runs}
url_run = st.query_params.get("run")
if isinstance(url_run, str) and url_run and st.session_state.get("insp_url_run") != url_run:
    st.session_state["insp_url_run"] = url_run
    if url_run in labels:
        st.session_state["insp_source"] = "run"
        st.session_state["insp_run"] = url_run
    else:
        st.warning(f"Run `{url_run}` has no saved checkpoint here (or does not exist).")

SOURCES = {"run": "A stored run", "file": "A checkpoint file", "upload": "Upload a checkpoint"}
st.session_state.setdefault("insp_source", "run")
source = st.radio("Inspect", list(SOURCES), key="insp_source", horizontal=True, format_func=SOURCES.get)

path: Path | None = None
record = None
if source == "run":
    if not run_ids:
        st.info("No finished run with a checkpoint yet: train one on the Train page (a quick `lc_cnn` run shows "
                "its local filters) or compare rules on the Compare page.")
    else:
        if st.session_state.get("insp_run") not in labels:
            st.session_state["insp_run"] = run_ids[0]
        run_id = st.selectbox("Run", run_ids, key="insp_run", format_func=labels.get)
        if st.query_params.get("run") != run_id:
            st.query_params["run"] = run_id
            st.session_state["insp_url_run"] = run_id
        try:
            record = store.load_run(run_id)
            path = record.model_path
        except RunError as err:
            st.error(str(err))
elif source == "file":
    st.query_params.pop("run", None)
    files = checkpoint_files()
    if not files:
        st.info(f"No .safetensors files in `{checkpoints_dir()}` or `{REPO_ROOT / 'checkpoints'}`.")
    else:
        chosen = st.selectbox("Checkpoint", [str(f) for f in files], key="insp_file",
                              format_func=lambda f: str(Path(f).relative_to(REPO_ROOT)) if Path(f).is_relative_to(REPO_ROOT) else f)
        path = Path(chosen)
else:
    st.query_params.pop("run", None)
    upload = st.file_uploader("FA Lab checkpoint (.safetensors; pickles are refused)", type=["safetensors"],
                              key="insp_upload")
    if upload is not None:
        try:
            path = stash_upload(upload.getvalue(), ".safetensors")
        except (UploadError, OSError) as err:
            st.error(f"Cannot load this checkpoint: {err}")

if path is None:
    st.stop()

try:
    stamp = path.stat().st_mtime_ns
    model, meta = cached_model(str(path), stamp)
except (CheckpointError, OSError) as err:
    st.error(f"Cannot load this checkpoint: {err}")
    st.stop()

config = (record.config if record is not None else None) or meta.get("config") or {}
dataset_name = meta.get("dataset") or config.get("dataset") or "mnist"
rule_spec = meta.get("rule") or {}
rule_name = rule_spec.get("name") if isinstance(rule_spec, dict) else str(rule_spec)
rule_label = model.rule.display_name()
color = rule_color(rule_name)
layers = feedback_layers(model)
has_feedback = any(layer.feedback is not None for _, layer in layers)

line = [rule_label, describe_config(config) if config else f"{meta.get('model')} on {dataset_name}",
        f"{meta.get('parameters', 0):,} parameters"]
st.caption(" · ".join(line))
if record is not None:
    st.page_link(RUNS_PAGE, label="Open this run's page", icon=":material/open_in_new:",
                 query_params={"run": record.run_id, "sid": owner})

tab_angles, tab_wb, tab_filters, tab_pred = st.tabs(
    ["Alignment over training", "W vs B", "First-layer filters", "Predictions"])

# ---- angles --------------------------------------------------------------------------------------------
with tab_angles:
    if not has_feedback:
        st.info(f"{rule_label} has no feedback matrix B: every layer receives the true gradient, so the W∠B "
                "angle is undefined and the δ angle is 0°.")
    curves = ((record.metrics or {}).get("curves") or {}).get("angles") if record is not None else None
    show_unused = st.checkbox("Show the first layer's W∠B angle (its B is never used)", key="insp_unused")
    if curves and curves.get("steps"):
        a1, a2 = st.columns(2)
        a1.plotly_chart(layer_angles_figure(curves["steps"], curves.get("weight") or {}, "W∠B per layer",
                                            show_unused=show_unused), key="insp_w_angles", config=MODEBAR)
        a2.plotly_chart(layer_angles_figure(curves["steps"], curves.get("signal") or {},
                                            "δFA∠δBP per hidden layer (predicts learning)"),
                        key="insp_s_angles", config=MODEBAR)
        st.caption("W∠B: angle between a layer's forward weights and its fixed feedback. δFA∠δBP: angle between "
                   "the error a hidden layer receives under this rule and the error backpropagation would send; "
                   "below 90° the layer's update still points downhill, which is what makes FA learn.")
    else:
        st.caption("No training history for this checkpoint: the angles below are the trained network's, now.")
    try:
        weight_now, signal_now = cached_current_angles(str(path), stamp, dataset_name)
    except Exception as err:  # noqa: BLE001 - e.g. the dataset is not downloaded
        st.caption(f"Current angles not measured: {err}")
    else:
        rows = []
        for name, _ in layers:
            w = weight_now.get(name, weight_now.get(name + UNUSED_SUFFIX))
            rows.append({"layer": name + (" (B unused)" if name + UNUSED_SUFFIX in weight_now else ""),
                         "W∠B now (°)": round(w, 1) if w is not None else None,
                         "δFA∠δBP now (°)": round(signal_now[name], 1) if name in signal_now else None})
        st.dataframe(rows, hide_index=True)

# ---- W vs B ----------------------------------------------------------------------------------------------
with tab_wb:
    names = [name for name, _ in layers]
    chosen_layer = st.selectbox("Layer", names, index=len(names) - 1 if names else 0, key="insp_layer")
    layer = dict(layers)[chosen_layer]
    sample = weight_feedback_sample(layer, chosen_layer, max_points=5000)
    if sample.feedback is None:
        st.info(f"{rule_label} has no B; only W's distribution is shown.")
        st.plotly_chart(weight_histogram_figure(sample.weight, None, chosen_layer, color), key="insp_hist",
                        config=MODEBAR)
    else:
        s1, s2 = st.columns(2)
        s1.plotly_chart(weight_scatter_figure(sample.weight, sample.feedback, chosen_layer, color,
                                              angle=sample.angle, correlation=sample.correlation),
                        key="insp_scatter", config=MODEBAR)
        s2.plotly_chart(weight_histogram_figure(sample.weight, sample.feedback, chosen_layer, color),
                        key="insp_hist", config=MODEBAR)
        shown = f"{len(sample.weight):,} of {sample.total:,} entries (a fixed random subset)" \
            if len(sample.weight) < sample.total else f"all {sample.total:,} entries"
        st.caption(f"Each point is one synapse: its forward weight W against its feedback weight B; {shown}. "
                   "Alignment shows as a tilt of the cloud (positive correlation). FA_EX's B takes only ±c.")
    if names and chosen_layer == names[0] and has_feedback:
        st.caption("This is the first layer: its B is never used (there is nothing below it to send an error to).")

# ---- filters ---------------------------------------------------------------------------------------------
with tab_filters:
    first_name, first = layers[0]
    local = isinstance(first, LocallyConnected2d)
    start = None
    if config.get("seed") is not None:
        try:
            start = cached_initial_model(str(path), stamp, json.dumps(config, sort_keys=True))
        except Exception:  # noqa: BLE001 - then only the trained W is offered
            start = None
    f1, f2 = st.columns([2, 3])
    shows = ["change", "trained"] if start is not None else ["trained"]
    show = f1.radio("Show", shows, key="insp_show", horizontal=True,
                    format_func=lambda v: "what training changed (W − W₀)" if v == "change" else "the trained W")
    if local:
        grid = f2.select_slider("Positions per side", [2, 3, 4, 5, 6, 7], value=4, key="insp_grid")
    else:
        grid = 4
    minus = start if show == "change" else None
    view = first_layer_filters(model, "weight", grid=grid, minus=minus)
    if view is None:
        st.info("This model's first layer cannot be drawn as images.")
    else:
        cols = 6 if view.kind != "dense" else 8
        what = "change since initialisation ΔW = W − W₀" if minus is not None else "forward weights W"
        st.plotly_chart(filter_mosaic_figure(view.mosaics, view.titles, f"{first_name}: {what}",
                                             cols=cols, zmax=view.zmax, hover=view.hover),
                        key="insp_filters", config=MODEBAR)
        st.caption(view.description)
        if minus is not None:
            st.caption("W₀ is rebuilt from the run's seed (the initial weights depend only on it). The trained W "
                       "is W₀ + ΔW; after a short run W₀ (random, ±1/k) dominates it, so ΔW is where the learned "
                       "structure shows.")
        if local:
            similarity = position_similarity(first, minus=first_layer(minus)[1] if minus is not None else None)
            if similarity is not None:
                st.metric(f"Similarity of a channel's {'changes' if minus is not None else 'filters'} across positions",
                          f"{similarity:.3f}".replace("-0.000", "0.000"),
                          help="Mean cosine similarity between one output channel's filters at different "
                               "positions, averaged over channels: 1 for a shared convolution, about 0 for "
                               "unrelated filters.")
        feedback_view = first_layer_filters(model, "feedback", grid=grid)
        if feedback_view is not None:
            with st.expander(f"The feedback B of {first_name} (fixed, never used in the first layer)"):
                st.plotly_chart(filter_mosaic_figure(feedback_view.mosaics, feedback_view.titles,
                                                     f"{first_name}: feedback B", cols=cols,
                                                     zmax=feedback_view.zmax, hover=feedback_view.hover),
                                key="insp_feedback_filters", config=MODEBAR)
                st.caption("B is drawn once and never changes. Under FA it is random; under FA_EX every entry "
                           "is +c or -c.")
            if len(layers) > 1 and isinstance(layers[1][1], LocallyConnected2d):
                st.caption(f"The next layer ({layers[1][0]}) is locally connected too; its B is the one that "
                           "carries the error down to this layer.")

# ---- predictions -----------------------------------------------------------------------------------------
with tab_pred:
    limits = {"1,000 test images": 1000, "2,000 test images": 2000, "the whole test set": None}
    choice = st.radio("Evaluate on", list(limits), index=0, key="insp_limit", horizontal=True)
    run_it = st.session_state.get("insp_pred_for") == (str(path), stamp, choice)
    if not run_it and st.button("Evaluate", key="insp_eval", icon=":material/play_arrow:"):
        st.session_state["insp_pred_for"] = (str(path), stamp, choice)
        run_it = True
    if run_it:
        try:
            if model.task == "classify":
                report = cached_report(str(path), stamp, dataset_name, limits[choice])
            else:
                report = None
        except Exception as err:  # noqa: BLE001 - dataset missing etc.
            st.error(f"Cannot evaluate: {err}")
        else:
            if report is not None:
                p1, p2 = st.columns([2, 3])
                p1.metric("Test accuracy", f"{report.accuracy:.2f}%", help=f"on {report.count:,} test images")
                p1.plotly_chart(confusion_figure(report.confusion.tolist(), report.class_names), key="insp_confusion",
                                config=MODEBAR)
                with p2:
                    st.markdown(f"**Most confident mistakes** ({len(report.mistakes)} shown; "
                                f"{int(report.count - report.confusion.trace()):,} wrong in all)")
                    if report.mistakes:
                        per_row = 6
                        for start in range(0, len(report.mistakes), per_row):
                            cols = st.columns(per_row)
                            for col, item in zip(cols, report.mistakes[start : start + per_row]):
                                guesses = ", ".join(f"{c} ({100 * p:.0f}%)" for c, p in item["top"])
                                col.image(display_image(item["image"], 3), width=84,
                                          caption=f"true {item['label_name']} → {guesses}")
                    else:
                        st.caption("No mistakes on these images.")
            else:
                sigma = float(config.get("sigma") or 0.0)
                data = cached_dataset(dataset_name)
                st.markdown(f"**Reconstructions** at σ = {sigma:g} (clean · noisy · reconstructed)")
                for item in reconstructions(model, data.test_x, sigma=sigma, count=6):
                    c1, c2, c3 = st.columns([1, 1, 6])
                    c1.image(display_image(item["clean"], 3), width=84)
                    c2.image(display_image(item["noisy"], 3), width=84)
                    c3.image(display_image(item["reconstruction"], 3), width=84)
    else:
        st.caption("Classifies test images with this network, then shows the confusion matrix and the misclassified "
                   "images with the network's top three guesses. On a CPU, 1,000 images take seconds; the whole test "
                   "set through the locally connected CNN can take a minute.")
