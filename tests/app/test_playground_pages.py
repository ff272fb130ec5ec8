"""The Playground pages through AppTest: Draw (canvas, upload, test digit) and Denoise.

They use the shipped checkpoints and the shipped MNIST test sample (the data folder is pointed at
an empty temporary folder, so nothing is downloaded or loaded from the full cache), and temporary
run/checkpoint folders for "models trained in this app".
"""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import pytest
import streamlit as st
from PIL import Image, ImageDraw
from streamlit.testing.v1 import AppTest

APP = Path(__file__).resolve().parents[2] / "app.py"

DRAW = "app_pages/draw.py"
DENOISE = "app_pages/denoise.py"


@pytest.fixture
def app_env(app_env: Path, monkeypatch: pytest.MonkeyPatch):
    """The shared app environment, plus an empty data folder and fresh data caches."""
    monkeypatch.setenv("FA_LAB_DATA_DIR", str(app_env / "data"))
    st.cache_data.clear()
    yield app_env
    st.cache_data.clear()


def open_page(page: str) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=60).run()
    assert not at.exception, at.exception
    at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


def all_text(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption] + [s.value for s in at.subheader]
    parts += [e.value for e in at.info] + [e.value for e in at.error] + [e.value for e in at.warning]
    return "\n".join(str(p) for p in parts)


def figures(at: AppTest) -> list[go.Figure]:
    """The plotly figures on the page (AppTest shows them as unknown elements with a JSON spec)."""
    import json

    out = []
    for el in at.main.get("plotly_chart"):
        out.append(go.Figure(json.loads(el.proto.spec)))
    return out


def three_png(size: int = 280, box=(0.25, 0.15, 0.75, 0.85), width: int = 22, bg=None) -> bytes:
    img = Image.new("RGBA", (size, size), bg or (0, 0, 0, 0))
    pts = [(0.2, 0.15), (0.7, 0.1), (0.75, 0.35), (0.45, 0.5), (0.8, 0.65), (0.7, 0.9), (0.2, 0.85)]
    x0, y0, x1, y1 = (v * size for v in box)
    ImageDraw.Draw(img).line([(x0 + px * (x1 - x0), y0 + py * (y1 - y0)) for px, py in pts],
                             fill=(0, 0, 0, 255), width=width, joint="curve")
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def draw(at: AppTest, png: bytes) -> AppTest:
    """What the canvas sends after a stroke: its Fabric JSON and the PNG of the drawing."""
    url = "data:image/png;base64," + base64.b64encode(png).decode()
    at.session_state["draw_canvas"] = {
        "drawing": {"raw": {"objects": [{"type": "path"}], "background": "#FFFFFF"}, "data": url},
        "backgroundFit": None,
    }
    return at.run()


def test_draw_page_empty_canvas_shows_a_prompt(app_env) -> None:
    at = open_page(DRAW)
    text = all_text(at)
    assert "Draw a digit in the box" in text
    assert not at.error
    assert not figures(at)
    # the six shipped classifiers are chosen by default
    assert len(at.multiselect(key="draw_models").value) == 6


def test_draw_page_predicts_a_drawn_three(app_env) -> None:
    at = open_page(DRAW)
    draw(at, three_png(bg=(255, 255, 255, 255)))
    assert not at.exception, at.exception
    text = all_text(at)
    assert len(at.image) >= 1  # the 28x28 view
    assert "of 6 models say" in text
    (fig,) = figures(at)
    bars = [t for t in fig.data if t.type == "bar"]
    assert len(bars) == 6
    for bar in bars:
        assert abs(sum(bar.y) - 1.0) < 1e-4
    # most models read a clean '3' as a 3
    assert sum(int(np.argmax(b.y)) == 3 for b in bars) >= 4
    digit = at.session_state["playground_digit"]
    assert digit.shape == (28, 28) and 0.9 < digit.max() <= 1.0


def test_draw_page_other_models_can_be_chosen(app_env) -> None:
    from fa_core.checkpoints import save_checkpoint
    from fa_core.models import build_model

    save_checkpoint(build_model("mlp", "mnist", "bp", seed=0), app_env / "user" / "untrained.safetensors",
                    {"final": {"test_accuracy": 10.0}})
    at = open_page(DRAW)
    select = at.multiselect(key="draw_models")
    assert "user:untrained.safetensors" in select.options or any("untrained" in o for o in select.options)
    option = next(o for o in select.options if "untrained" in o)
    select.set_value([option]).run()
    draw(at, three_png())
    assert not at.exception, at.exception
    (fig,) = figures(at)
    assert len([t for t in fig.data if t.type == "bar"]) == 1
    assert "1 of 1 models say" in all_text(at)


def test_draw_page_upload_photo_and_bad_file(app_env) -> None:
    at = open_page(DRAW)
    at.segmented_control(key="draw_source").set_value("Upload a photo").run()
    assert "Choose an image" in all_text(at)
    # a photo: dark ink on light paper, opaque
    alpha = np.asarray(Image.open(io.BytesIO(three_png())))[:, :, 3]
    photo = np.stack([230 - (alpha * 0.8).astype(np.uint8)] * 3, axis=-1)
    buf = io.BytesIO()
    Image.fromarray(photo).save(buf, format="JPEG")
    at.file_uploader(key="draw_upload").set_value(("three.jpg", buf.getvalue(), "image/jpeg")).run()
    assert not at.exception, at.exception
    assert "of 6 models say" in all_text(at)
    # not an image: a clear error, and the app keeps running
    at.file_uploader(key="draw_upload").set_value(("evil.png", b"\x80\x04not an image", "image/png")).run()
    assert not at.exception, at.exception
    assert at.error and "Could not use evil.png" in at.error[0].value


def test_draw_page_test_digit(app_env) -> None:
    at = open_page(DRAW)
    at.segmented_control(key="draw_source").set_value("MNIST test digit").run()
    assert not at.exception, at.exception
    assert "True label" in all_text(at) and "of 6 models say" in all_text(at)
    at.button(key="draw_next_digit").click().run()
    assert not at.exception, at.exception


def test_denoise_page_grid_metrics_and_curve(app_env) -> None:
    at = open_page(DENOISE)
    assert not at.error
    grid, curve = figures(at)
    row_labels = [a.text for a in grid.layout.annotations if a.text.startswith("<b>")]
    assert row_labels == ["<b>clean</b>", "<b>noisy σ=100</b>", "<b>BP dae (σ=100)</b>", "<b>FA dae (σ=100)</b>"]
    captions = [a.text for a in grid.layout.annotations if a.text.replace(".", "").isdigit()]
    assert len(captions) == 16  # a BCE under each of 8 BP and 8 FA reconstructions
    metrics = {m.label: float(m.value) for m in at.metric}
    assert set(metrics) == {"BP dae (σ=100)", "FA dae (σ=100)"}
    assert 0.09 < metrics["BP dae (σ=100)"] < 0.13
    assert len([t for t in curve.data if t.mode == "lines"]) == 2
    assert len([t for t in curve.data if t.mode == "markers" and t.marker.symbol == "x"]) == 2  # paper points

    at.slider(key="dn_sigma").set_value(255).run()
    assert not at.exception, at.exception
    worse = {m.label: float(m.value) for m in at.metric}
    assert all(worse[k] > metrics[k] for k in metrics)
    grid = figures(at)[0]
    assert "<b>noisy σ=255</b>" in [a.text for a in grid.layout.annotations]

    # the shipped pair trained at sigma 0, tried at 255
    at.segmented_control(key="dn_pair").set_value(0).run()
    assert {m.label for m in at.metric} == {"BP dae (σ=0)", "FA dae (σ=0)"}


def test_denoise_page_classes_reshuffle_and_drawing(app_env) -> None:
    at = open_page(DRAW)
    draw(at, three_png())
    at.switch_page(DENOISE).run()
    assert not at.exception, at.exception
    titles = lambda: [a.text for a in figures(at)[0].layout.annotations if a.yanchor == "bottom"]  # noqa: E731
    assert titles()[0] == "your drawing"
    at.multiselect(key="dn_classes").set_value([7]).run()
    assert all(t.endswith("(7)") for t in titles()[1:]) and len(titles()) == 9
    before = titles()
    at.button(key="dn_shuffle").click().run()
    assert titles() != before
    at.checkbox(key="dn_mine").uncheck().run()
    assert "your drawing" not in titles()


def test_denoise_page_with_a_user_trained_dae(app_env) -> None:
    from fa_core.models import build_model
    from fa_core.runs import RunStore

    store = RunStore(app_env / "runs")
    run_id = store.create({"model": "dae", "rule": "fa", "dataset": "mnist", "sigma": 50.0}, name="my dae")
    store.save_model(run_id, build_model("dae", "mnist", "fa", seed=0), {"config": {"sigma": 50.0}, "final": {}})
    from fa_core.checkpoints import save_checkpoint

    # a saved denoiser without a training config: its training sigma is unknown
    save_checkpoint(build_model("dae", "mnist", "bp", seed=1), app_env / "user" / "bare.safetensors", {})
    at = open_page(DENOISE)
    extra = at.multiselect(key="dn_extra")
    options = [o for o in extra.options if "my dae" in o or "bare" in o]
    assert len(options) == 2
    extra.set_value(options).run()
    assert not at.exception, at.exception
    assert {"run · my dae", "saved · bare"} <= {m.label for m in at.metric}
    grid, curve = figures(at)
    assert "<b>run · my dae</b>" in [a.text for a in grid.layout.annotations]
    assert len([t for t in curve.data if t.mode == "lines"]) == 4
    assert len([t for t in curve.data if t.mode == "markers" and t.marker.symbol == "diamond"]) == 3
