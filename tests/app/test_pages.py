"""The Streamlit app through AppTest: pages render, a tiny run trains and shows its progress.

The app is pointed at a synthetic dataset (``FA_LAB_DATASET_LOADER=synthetic_loader:load``) and
at temporary run/checkpoint folders, so no download happens and nothing is left in the repo.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

APP = Path(__file__).resolve().parents[2] / "app.py"


def texts(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption] + [s.value for s in at.subheader]
    parts += [e.value for e in at.info] + [e.value for e in at.error] + [e.value for e in at.warning]
    return "\n".join(str(p) for p in parts)


def train_page(default_timeout: float = 30) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=default_timeout).run()
    assert not at.exception, at.exception
    at.switch_page("app_pages/train.py").run()
    assert not at.exception, at.exception
    return at


def wait_until_done(at: AppTest, timeout: float = 30) -> None:
    from app_pages.shared import job_manager

    owner = at.session_state["owner"]
    job = at.session_state["train_job"]
    job_manager().wait(job, owner, timeout)


def test_no_pages_folder_beside_app() -> None:
    # A ``pages/`` folder next to app.py makes a fresh server serve deep links (/train) in
    # Streamlit's old folder mode, bypassing app.py's st.navigation (see app.py).
    assert not (APP.parent / "pages").exists()


def test_home_renders(app_env: Path) -> None:
    at = AppTest.from_file(str(APP), default_timeout=30).run()
    assert not at.exception, at.exception
    text = texts(at)
    assert "FA Lab" in at.title[0].value
    for rule in ("BP", "FA", "FA_EX-p%"):
        assert rule in [s.value for s in at.subheader]
    assert any("B_{l+1}^{\\top}" in latex.value for latex in at.latex)
    assert "mnist" in text and "cifar10" in text
    assert [m.label for m in at.metric][:2] == ["Device", "CPU cores"]
    assert "No jobs yet" in text
    assert at.query_params["sid"]  # the owner id is mirrored in the URL


def test_train_page_renders_defaults(app_env: Path) -> None:
    at = train_page()
    assert at.selectbox(key="cfg_rule").value == "fa"
    assert at.number_input(key="cfg_lr_mlp").value == pytest.approx(0.01)
    assert at.number_input(key="cfg_batch_mlp").value == 32
    assert not [s for s in at.slider if s.key == "cfg_sigma"]  # sigma only for the autoencoder
    at.selectbox(key="cfg_model").set_value("dae").run()
    assert at.number_input(key="cfg_lr_dae").value == pytest.approx(1e-4)
    assert at.selectbox(key="cfg_opt_dae").value == "rmsprop"
    assert at.slider(key="cfg_sigma").value == 0
    at.selectbox(key="cfg_rule").set_value("fa_ex").run()
    assert at.slider(key="cfg_p").value == 100
    assert not at.exception


def test_train_page_takes_settings_from_a_shared_link(app_env: Path) -> None:
    at = AppTest.from_file(str(APP), default_timeout=30)
    at.query_params.update({"model": "dae", "rules": "fa_ex80", "opt": "adam", "lr": "0.003", "epochs": "3",
                            "seed": "7", "sigma": "100", "batch": "nope"})
    at.run()
    at.switch_page("app_pages/train.py").run()
    assert not at.exception, at.exception
    assert at.selectbox(key="cfg_model").value == "dae" and at.selectbox(key="cfg_rule").value == "fa_ex"
    assert at.slider(key="cfg_p").value == 80 and at.selectbox(key="cfg_opt_dae").value == "adam"
    assert at.number_input(key="cfg_lr_dae").value == pytest.approx(0.003)
    assert at.number_input(key="cfg_epochs_dae").value == 3 and at.number_input(key="cfg_seed").value == 7
    assert at.slider(key="cfg_sigma").value == 100
    assert any("batch='nope'" in w.value for w in at.warning)
    shared = next(c.value for c in at.code if c.value.startswith("/train?"))
    assert "model=dae" in shared and "rules=fa_ex80" in shared and "sigma=100" in shared


def test_bad_config_shows_error(app_env: Path) -> None:
    at = train_page()
    at.number_input(key="cfg_lr_mlp").set_value(0.0)
    at.button(key="start").click().run()
    assert not at.exception
    assert any("learning rate" in e.value for e in at.error)
    assert "job" not in at.query_params


def test_train_run_shows_progress_and_saves(app_env: Path) -> None:
    at = train_page()
    at.number_input(key="cfg_epochs_mlp").set_value(2)
    at.text_input(key="cfg_name").set_value("app test run")
    at.button(key="start").click().run()
    assert not at.exception, at.exception
    job = at.query_params.get("job")
    assert job and at.session_state["train_job"] == job
    assert len(at.get("progress")) == 1
    assert len(at.get("plotly_chart")) == 3

    wait_until_done(at)
    at.run()
    assert not at.exception, at.exception
    labels = {m.label: m.value for m in at.metric}
    assert labels["Steps"] == "16"
    assert labels["Test accuracy"].endswith("%")
    assert "app test run" in texts(at)
    assert (app_env / "runs" / job / "model.safetensors").is_file()

    at.text_input(key=f"ckpt_name_{job}").set_value("../escape")
    at.button(key=f"ckpt_save_{job}").click().run()
    assert any("invalid checkpoint name" in e.value for e in at.error)
    at.text_input(key=f"ckpt_name_{job}").set_value("my mlp")
    at.button(key=f"ckpt_save_{job}").click().run()
    assert (app_env / "user" / "my mlp.safetensors").is_file()
    assert any("Saved my mlp.safetensors" in s.value for s in at.success)


def test_refresh_reattaches_through_the_url(app_env: Path) -> None:
    at = train_page()
    at.number_input(key="cfg_epochs_mlp").set_value(40)
    at.button(key="start").click().run()
    owner, job = at.query_params["sid"], at.query_params["job"]

    # A refresh is a new session that only has the URL.
    fresh = AppTest.from_file(str(APP), default_timeout=30)
    fresh.query_params.update({"sid": owner, "job": job})
    fresh.run()
    fresh.switch_page("app_pages/train.py").run()
    assert not fresh.exception, fresh.exception
    assert fresh.session_state["owner"] == owner
    assert fresh.session_state["train_job"] == job
    assert any(b.key == "stop" for b in fresh.button)
    if any(b.key == "pause" for b in fresh.button):
        fresh.button(key="pause").click().run()
        assert any(b.key == "resume" for b in fresh.button)
    fresh.button(key="stop").click().run()
    wait_until_done(fresh)
    fresh.run()
    assert "stopped" in texts(fresh) or any("stopped" in p.proto.text for p in fresh.get("progress"))

    # Another session without the owner id cannot see the job.
    stranger = AppTest.from_file(str(APP), default_timeout=30)
    stranger.query_params.update({"job": job})
    stranger.run()
    stranger.switch_page("app_pages/train.py").run()
    assert not stranger.exception
    assert any("another browser session" in e.value for e in stranger.error)


def test_stored_run_shown_after_restart(app_env: Path) -> None:
    at = train_page()
    at.number_input(key="cfg_epochs_mlp").set_value(1)
    at.button(key="start").click().run()
    wait_until_done(at)
    owner, job = at.query_params["sid"], at.query_params["job"]

    from app_pages.shared import job_manager

    job_manager().shutdown()
    st.cache_resource.clear()  # a server restart: the job manager forgets every job
    fresh = AppTest.from_file(str(APP), default_timeout=30)
    fresh.query_params.update({"sid": owner, "job": job})
    fresh.run()
    fresh.switch_page("app_pages/train.py").run()
    assert not fresh.exception, fresh.exception
    assert f"Stored run `{job}`" in texts(fresh)
    assert "Steps" in [m.label for m in fresh.metric]
    assert len(fresh.get("plotly_chart")) == 3


def test_home_fetch_button_runs_in_background(app_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    import fa_core.data

    monkeypatch.setenv("FA_LAB_DATA_DIR", str(app_env / "data"))  # nothing downloaded there
    release = threading.Event()

    def fake_fetch(name, progress=None):
        progress(f"Downloading {name}", 3, 10)
        release.wait(10)

    monkeypatch.setattr(fa_core.data, "fetch_dataset", fake_fetch)
    st.cache_resource.clear()
    at = AppTest.from_file(str(APP), default_timeout=30).run()
    assert not at.exception, at.exception
    assert "not downloaded" in texts(at)
    at.button(key="fetch_mnist").click().run()
    assert not at.exception, at.exception
    bars = at.get("progress")
    assert bars and "Downloading mnist" in bars[0].proto.text
    assert not [b for b in at.button if b.key == "fetch_mnist"]  # no second fetch while one runs
    release.set()
    from app_pages.shared import fetcher

    assert fetcher().wait("mnist", 10).status == "done"


def test_train_settings_survive_a_trip_to_another_page(app_env: Path) -> None:
    at = train_page()
    at.number_input(key="cfg_epochs_mlp").set_value(7)
    at.number_input(key="cfg_seed").set_value(11)
    at.selectbox(key="cfg_lr_schedule").set_value("cosine")
    at.text_input(key="cfg_name").set_value("kept name")
    at.run()
    at.switch_page("app_pages/home.py").run()
    assert not at.exception, at.exception
    at.switch_page("app_pages/train.py").run()
    assert not at.exception, at.exception
    assert at.number_input(key="cfg_epochs_mlp").value == 7
    assert at.number_input(key="cfg_seed").value == 11
    assert at.selectbox(key="cfg_lr_schedule").value == "cosine"
    assert at.text_input(key="cfg_name").value == "kept name"
    assert not [w.value for w in at.warning if "Session State" in str(w.value)]


def test_page_scripts_have_no_stray_strings_for_streamlit_magic_to_print() -> None:
    """Streamlit's "magic" writes every bare expression of a page script to the page: a string
    after an assignment (an attribute docstring) would appear as text above the page's title."""
    import ast

    from app_pages.shared import HOME_PAGE, TRAIN_PAGE

    app_py = APP.read_text()
    pages = sorted({line.split('"')[1] for line in app_py.splitlines() if 'st.Page("' in line} | {HOME_PAGE, TRAIN_PAGE})
    assert len(pages) == app_py.count("st.Page("), pages
    stray = []
    for page in ["app.py", *pages]:
        tree = ast.parse((APP.parent / page).read_text())
        for index, node in enumerate(tree.body):
            if index and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
                stray.append(f"{page}:{node.lineno}")
    assert stray == []
