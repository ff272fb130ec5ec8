"""Draw: sketch a digit (or upload a photo) and see BP, FA and FA_EX classifiers answer.

The drawing goes through :func:`fa_core.preprocess_drawing` (MNIST's recipe: crop, fit to 20 px,
centre by mass in 28x28); the page shows that 28x28 image and every chosen model's class
probabilities. The canvas and the answers live in a fragment, so a stroke reruns only them.
"""

from __future__ import annotations

import numpy as np
import streamlit as st
import torch
from streamlit_drawable_canvas import st_canvas

from app_pages.playground_common import DIGIT_KEY, digits, load_model, models_for
from fa_core import preprocess_drawing
from fa_core.playground_plots import pixel_image, probabilities_figure
from fa_core.preprocess import ImageError, read_image_file

CANVAS_KEY = "draw_canvas"
SOURCES = ("Draw", "Upload a photo", "MNIST test digit")

st.title("Draw a digit")
st.markdown(
    "Draw a digit from 0 to 9 and watch networks trained with **backpropagation (BP)**, "
    "**feedback alignment (FA)** and **FA_EX-100%** (a constant feedback matrix) read it. "
    "Nothing needs training: these are the checkpoints shipped with FA Lab."
)


def choose_models() -> list:
    entries = models_for("classify")
    if not entries:
        st.warning("No classifiers found: run `python -m fa_core checkpoints build`, or train one on the Train page.")
        return []
    by_key = {e.key: e for e in entries}
    default = [e.key for e in entries if e.source == "shipped"] or [entries[0].key]
    keys = st.multiselect(
        "Classifiers", list(by_key), default=default, key="draw_models",
        format_func=lambda k: by_key[k].label + (f" · {by_key[k].metrics['accuracy']:.1f}%" if "accuracy" in by_key[k].metrics else ""),
        help="The six shipped MNIST classifiers, plus any MNIST classifier you trained in this app.",
    )
    return [by_key[k] for k in keys]


def input_image(source: str) -> tuple[np.ndarray | None, str | None]:
    """The raw image from the chosen input, and the true label when known."""
    if source == "Draw":
        stroke = st.slider("Pen width", 8, 40, 22, key="draw_pen")
        result = st_canvas(
            stroke_width=stroke, stroke_color="#000000", background_color="#FFFFFF",
            height=280, width=280, drawing_mode="freedraw", return_image_data=True, key=CANVAS_KEY,
        )
        st.caption("Draw with the mouse or a finger. The toolbar above the canvas has **Undo**, **Redo** and **Reset** (clear).")
        return result.image_data, None
    if source == "Upload a photo":
        upload = st.file_uploader(
            "A photo or scan of one digit", type=["png", "jpg", "jpeg", "webp", "bmp", "gif", "tif", "tiff"],
            key="draw_upload", help="Dark ink on light paper is inverted automatically. Up to 10 MB.",
        )
        if upload is None:
            return None, None
        try:
            image = read_image_file(upload.getvalue())
        except ImageError as err:
            st.error(f"Could not use {upload.name}: {err}")
            return None, None
        st.image(image, caption=upload.name, width=200)
        return image, None
    images, labels, description = digits()
    if st.button("Another test digit", icon=":material/shuffle:", key="draw_next_digit"):
        st.session_state["draw_digit_index"] = int(np.random.default_rng().integers(len(images)))
    index = st.session_state.setdefault("draw_digit_index", 0) % len(images)
    image = images[index, 0].numpy()
    st.image(pixel_image(image / 255.0, 8), caption=f"#{index} of the {description}", width=224)
    return image, str(int(labels[index]))


@st.fragment
def playground() -> None:
    left, right = st.columns([2, 3], gap="large")
    with left:
        source = st.segmented_control("Input", SOURCES, default=SOURCES[0], key="draw_source") or SOURCES[0]
        raw, truth = input_image(source)
    with right:
        entries = choose_models()
        digit = preprocess_drawing(raw) if raw is not None else None
        if digit is None:
            st.info(
                "Draw a digit in the box on the left (a **3**, say): the models' answers appear here "
                "after each stroke." if source == "Draw" else "Choose an image to see the models' answers.",
                icon=":material/draw:",
            )
            return
        st.session_state[DIGIT_KEY] = digit[0].numpy().copy()
        view, info = st.columns([1, 2], vertical_alignment="center")
        with view:
            st.image(pixel_image(digit, 6), caption="What the models see (28×28)", width=168)
        panels = []
        x = digit.unsqueeze(0)
        for entry in entries:
            model = load_model(entry)
            if model is None:
                continue
            with torch.no_grad():
                probs = model.predict(x)[0].tolist()
            panels.append({"title": entry.label, "rule": entry.rule, "probs": probs})
        with info:
            if panels:
                votes = [int(np.argmax(p["probs"])) for p in panels]
                answer = max(set(votes), key=votes.count)
                agree = votes.count(answer)
                st.markdown(f"### {agree} of {len(votes)} models say **{answer}**")
            if truth is not None:
                st.caption(f"True label: **{truth}**")
            st.caption("Cropped to the ink, fitted into 20×20 px and centred by mass in 28×28, as MNIST was made.")
        if panels:
            st.plotly_chart(probabilities_figure(panels, columns=3), key="draw_probs", config={"displayModeBar": False})
        else:
            st.info("Choose at least one classifier above.")


playground()
