"""Denoise: BP and FA denoising autoencoders at any noise level, side by side.

Test digits get the paper's noise (N(0, sigma^2) on the 0..255 scale, not clipped) and go through
the chosen denoisers; each reconstruction shows its BCE against the clean digit. Below: each
model's mean test BCE at the current sigma and its whole BCE-against-sigma curve, with the
paper's Table 3 overlaid. Shipped models carry their curves (whole test set) in their metadata;
curves of models trained in the app are computed once on test digits and cached.
"""

from __future__ import annotations

import numpy as np
import streamlit as st
import torch

from app_pages.playground_common import DIGIT_KEY, digits, file_stamp, load_model, load_model_file, models_for
from fa_core.denoise import (
    PAPER_TABLE3,
    SIGMA_GRID,
    bce_curve,
    curve_value,
    mean_bce,
    noisy_images,
    reconstruct,
    sample_indices,
)
from fa_core.playground_plots import bce_sigma_figure, digit_grid_figure
from fa_core.shipped import DAE_SIGMAS, ModelEntry

CURVE_DIGITS = 2000  # test digits for the curves of models without a stored curve (and their BCE at σ)

st.title("Denoise")
st.markdown(
    "A denoising autoencoder (784 → 200 ReLU → 784) learns to reconstruct clean digits from noisy "
    "ones. Move **σ** and watch the **BP** and **FA** reconstructions degrade side by side. "
    "σ is on the paper's pixel scale: Gaussian noise of standard deviation σ added to pixels of "
    "0–255 (not clipped). The number under each reconstruction is its BCE against the clean digit."
)

entries = models_for("denoise")
if not entries:
    st.warning("No denoisers found: run `python -m fa_core checkpoints build`, or train a `dae` on the Train page.")
    st.stop()
by_key = {e.key: e for e in entries}


def _label(key: str) -> str:
    return by_key[key].label


c1, c2, c3 = st.columns([4, 1, 2], vertical_alignment="bottom")
with c1:
    sigma = st.slider("Noise σ", 0, 255, 100, step=5, key="dn_sigma",
                      help="Standard deviation of the Gaussian noise, in pixel units (pixels are 0–255).")
with c2:
    noise_seed = int(st.number_input("Noise seed", 0, 1_000_000, 0, step=1, key="dn_noise_seed"))
with c3:
    trained = st.segmented_control("Shipped pair trained at σ", list(DAE_SIGMAS), default=100, key="dn_pair",
                                   format_func=str)

pair = [e.key for e in entries if e.source == "shipped" and e.sigma == trained and e.rule in ("bp", "fa")]
others = [k for k in by_key if k not in pair]
with st.expander("More denoisers (other shipped ones, and those you trained in this app)", expanded=False):
    extra = st.multiselect("Also show", others, default=[], format_func=_label, key="dn_extra")
    if not any(by_key[k].source != "shipped" for k in by_key):
        st.caption("Denoisers you train on the Train page (model `dae` on MNIST) appear here too.")
chosen: list[ModelEntry] = [by_key[k] for k in pair + extra]
if not chosen:
    st.info("Choose a shipped pair or at least one denoiser.")
    st.stop()

images, labels, description = digits()

g1, g2, g3, g4 = st.columns([3, 1, 1, 2], vertical_alignment="bottom")
with g1:
    classes = st.multiselect("Digits of classes", list(range(10)), default=[], key="dn_classes",
                             placeholder="all classes")
with g2:
    count = st.number_input("How many", 1, 16, 8, key="dn_count")
with g3:
    if st.button("Reshuffle", icon=":material/shuffle:", key="dn_shuffle"):
        st.session_state["dn_digit_seed"] = st.session_state.get("dn_digit_seed", 0) + 1
with g4:
    has_drawing = DIGIT_KEY in st.session_state
    include_drawing = st.checkbox("Include my drawing", value=has_drawing, disabled=not has_drawing, key="dn_mine",
                                  help="Your latest digit from the Draw page." if has_drawing
                                  else "Draw a digit on the Draw page first.")

digit_seed = st.session_state.get("dn_digit_seed", 0)
idx = sample_indices(labels, int(count), classes, digit_seed)
clean = images[idx].float() / 255.0
titles = [f"test #{i} ({int(labels[i])})" for i in idx]
if include_drawing and has_drawing:
    mine = torch.from_numpy(np.asarray(st.session_state[DIGIT_KEY], dtype=np.float32)).reshape(1, 1, 28, 28)
    clean = torch.cat([mine, clean])
    titles = ["your drawing"] + titles
noisy = noisy_images(clean, sigma, noise_seed)

rows = [
    {"label": "clean", "images": clean[:, 0].numpy()},
    {"label": f"noisy σ={sigma}", "images": noisy[:, 0].numpy()},
]
for entry in chosen:
    model = load_model(entry)
    if model is None:
        continue
    rec = reconstruct(model, clean, noisy)
    rows.append({
        "label": entry.label, "images": rec.reconstructed[:, 0].numpy(),
        "captions": [f"{b:.3f}" for b in rec.bce.tolist()],
        "label_color": {"bp": "#1f77b4", "fa": "#d62728"}.get(entry.rule, "#222"),
    })
st.plotly_chart(digit_grid_figure(rows, column_titles=titles), key="dn_grid", config={"displayModeBar": False})
st.caption(f"Digits from the {description}. Noisy images are shown clipped to 0–255; the models see them unclipped.")


@st.cache_data(show_spinner="Measuring test BCE against σ…", max_entries=64)
def computed_curve(path: str, stamp: tuple[int, int], n: int) -> list[float]:
    return bce_curve(load_model_file(path, stamp), digits()[0][:n], SIGMA_GRID)


@st.cache_data(show_spinner=False, max_entries=512)
def computed_bce(path: str, stamp: tuple[int, int], n: int, at_sigma: int) -> float:
    return mean_bce(load_model_file(path, stamp), digits()[0][:n], at_sigma)


def curve_of(entry: ModelEntry) -> tuple[list[float], list[float], str]:
    stored = entry.metrics.get("bce_curve")
    if stored:
        return list(stored["sigmas"]), list(stored["bce"]), f"{entry.metrics.get('n', 10000):,} test digits"
    n = min(CURVE_DIGITS, len(images))
    return list(SIGMA_GRID), computed_curve(str(entry.path), file_stamp(entry.path), n), f"{n:,} test digits"


st.subheader(f"Mean test BCE at σ = {sigma}")
curves = []
cols = st.columns(min(4, len(chosen)))
for i, entry in enumerate(chosen):
    sigmas, values, basis = curve_of(entry)
    if sigma in sigmas:
        now = values[sigmas.index(sigma)]
    else:
        now = computed_bce(str(entry.path), file_stamp(entry.path), min(CURVE_DIGITS, len(images)), sigma)
    delta = None  # no delta at the training sigma itself (nor for a model whose sigma is unknown)
    if entry.sigma is not None and float(sigma) != entry.sigma:
        delta = f"{now - curve_value(sigmas, values, entry.sigma):+.4f} vs σ={entry.sigma:g} (trained)"
    cols[i % len(cols)].metric(
        entry.label, f"{now:.4f}", delta=delta, delta_color="inverse",
        help=f"Mean per-pixel BCE on {basis}, one fixed noise draw per σ.",
    )
    curves.append({"label": entry.label, "rule": entry.rule, "sigmas": sigmas, "bce": values,
                   "train_sigma": entry.sigma})

st.plotly_chart(bce_sigma_figure(curves, current_sigma=sigma, paper=PAPER_TABLE3), key="dn_curve",
                config={"displayModeBar": False})
st.caption(
    "Diamonds: the σ each model was trained at. Crosses: Konishi & Miura's Table 3 (BP and FA, each "
    "trained and tested at σ = 0, 100, 255). A model trained at one σ can be tested at any other. "
    "BCE against grey-level targets cannot reach 0: its floor on MNIST is about 0.058."
)
