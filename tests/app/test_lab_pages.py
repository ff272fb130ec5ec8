"""The lab pages through AppTest: Compare (rules side by side, paper values, exports, URL settings,
reattach after a restart), Runs (table, overlay, rename, delete with confirmation, a run's page by
URL, CLI runs listed) and Inspect (angles, W vs B, lc_cnn local filters, confusion matrix).

The ``app_env`` fixture (tests/conftest.py): a synthetic dataset and temporary folders.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

HERE = Path(__file__).resolve().parent
APP = HERE.parents[1] / "app.py"
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

COMPARE = "app_pages/compare.py"
RUNS = "app_pages/runs_page.py"
INSPECT = "app_pages/inspect_page.py"


def open_page(page: str, params: dict[str, str] | None = None) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=60)
    if params:
        at.query_params.update(params)
    at.run()
    assert not at.exception, at.exception
    at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


def texts(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption] + [s.value for s in at.subheader]
    parts += [e.value for e in at.info] + [e.value for e in at.error] + [e.value for e in at.warning]
    parts += [e.value for e in at.success]
    return "\n".join(str(p) for p in parts)


def finished_run(model: str = "mlp", rule: str = "fa", epochs: int = 1, name: str | None = None) -> str:
    """Train a tiny run through the app's own job manager (as the Train page would)."""
    from app_pages.shared import job_manager

    from fa_core.training import TrainConfig

    config = TrainConfig(model=model, rule=rule, epochs=epochs, batch_size=64, device="cpu", probe_size=32)
    job = job_manager().submit(config, "tester-owner-0000", name=name)
    assert job_manager().wait(job, "tester-owner-0000", 60).status == "finished"
    return job


# ---- Compare ---------------------------------------------------------------------------------------------
def test_compare_three_rules_overlay_summary_and_exports(app_env: Path) -> None:
    at = open_page(COMPARE)
    assert at.multiselect(key="cmp_rules").value == ["bp", "fa", "fa_ex100"]
    assert at.number_input(key="cmp_epochs_mlp").value == 10
    assert at.radio(key="cmp_mode").value == "together"
    at.number_input(key="cmp_epochs_mlp").set_value(2)
    at.button(key="cmp_start").click().run()
    assert not at.exception, at.exception
    group = at.query_params["cmp"]
    assert group == at.session_state["cmp_group"]

    from app_pages.shared import job_manager

    owner = at.session_state["owner"]
    snaps = job_manager().group_jobs(group, owner, history=False)
    assert [s.rule_label for s in snaps] == ["BP", "FA", "FA_EX-100%"]
    assert len({s.config["seed"] for s in snaps}) == 1
    for snap in snaps:
        assert job_manager().wait(snap.job_id, owner, 60).status == "finished"
    at.run()
    assert not at.exception, at.exception
    assert len(at.get("plotly_chart")) == 3
    table = at.dataframe[0].value
    assert list(table["Rule"]) == ["BP", "FA", "FA_EX-100%"]
    assert list(table["Paper: test accuracy (%)"]) == [98.10, 97.69, 88.24]
    assert all(table["Difference"].notna())
    assert "Table 1, FA, FC (protocol differs)" in list(table["Paper cell"])
    assert "2 epochs (cell: 10)" in texts(at)
    labels = [b.proto.label for b in at.get("download_button")]
    assert labels == ["Figure (PNG)", "Figure (SVG)", "Summary (CSV)", "Per-epoch metrics (CSV)"]
    # settings are in the URL, the session id is not in the share link
    assert at.query_params["rules"] == "bp,fa,fa_ex100" and at.query_params["epochs"] == "2"
    share = [c.value for c in at.code][0]
    assert "rules=bp%2Cfa%2Cfa_ex100" in share and "sid=" not in share


def test_compare_settings_come_from_a_shared_link(app_env: Path) -> None:
    at = open_page(COMPARE, {"model": "lc_cnn", "rules": "fa,fa_ex80,fa_ex50", "lr": "0.05", "epochs": "3",
                             "frac": "0.1", "mode": "queued", "seed": "7"})
    assert at.selectbox(key="cmp_model").value == "lc_cnn"
    assert at.multiselect(key="cmp_rules").value == ["fa", "fa_ex80", "fa_ex50"]
    assert at.number_input(key="cmp_lr_lc_cnn").value == pytest.approx(0.05)
    assert at.number_input(key="cmp_epochs_lc_cnn").value == 3
    assert at.number_input(key="cmp_seed").value == 7
    assert at.select_slider(key="cmp_fraction").value == 0.1
    assert at.radio(key="cmp_mode").value == "queued"
    assert not at.warning
    # a link followed within the session (e.g. from a run's page) presets the form again ...
    at.query_params.update({"model": "mlp", "rules": "bp", "epochs": "4"})
    at.run()
    assert at.selectbox(key="cmp_model").value == "mlp" and at.multiselect(key="cmp_rules").value == ["bp"]
    assert at.number_input(key="cmp_epochs_mlp").value == 4
    # ... while the user's own edits are not undone by the settings the page wrote to the URL
    at.number_input(key="cmp_epochs_mlp").set_value(6).run()
    assert at.number_input(key="cmp_epochs_mlp").value == 6 and at.query_params["epochs"] == "6"
    bad = open_page(COMPARE, {"rules": "fa,backprop"})
    assert any("Ignored from the link" in w.value for w in bad.warning)
    assert bad.multiselect(key="cmp_rules").value == ["bp", "fa", "fa_ex100"]


def test_compare_queued_mode_shows_queue_positions(app_env: Path) -> None:
    from app_pages.shared import job_manager
    from fa_core.training import TrainConfig

    blocker = job_manager().submit(TrainConfig(epochs=40, device="cpu", batch_size=8), "someone-else-0000")
    at = open_page(COMPARE, {"rules": "bp,fa", "mode": "queued", "epochs": "1"})
    at.button(key="cmp_start").click().run()
    assert not at.exception, at.exception
    text = texts(at)
    assert "queued #1" in text and "queued #2" in text
    assert any(b.key == "cmp_stop" for b in at.button)
    at.button(key="cmp_stop").click().run()
    job_manager().stop(blocker, "someone-else-0000")
    group, owner = at.query_params["cmp"], at.session_state["owner"]
    assert {s.status for s in job_manager().group_jobs(group, owner)} == {"stopped"}


def test_compare_reopens_after_restart(app_env: Path) -> None:
    at = open_page(COMPARE, {"rules": "bp,fa", "epochs": "1"})
    at.button(key="cmp_start").click().run()
    group, owner = at.query_params["cmp"], at.session_state["owner"]
    from app_pages.shared import job_manager

    for snap in job_manager().group_jobs(group, owner):
        job_manager().wait(snap.job_id, owner, 60)
    job_manager().shutdown()
    st.cache_resource.clear()  # a server restart
    fresh = open_page(COMPARE, {"cmp": group})  # even without the session id: read from the run store
    assert "from the run store" in texts(fresh)
    assert list(fresh.dataframe[0].value["Rule"]) == ["BP", "FA"]
    assert len(fresh.get("plotly_chart")) == 3
    home = open_page(COMPARE)
    assert "Recent comparisons" in texts(home)


# ---- Runs ------------------------------------------------------------------------------------------------
def test_runs_table_overlay_rename_and_delete(app_env: Path) -> None:
    first = finished_run(rule="bp", name="baseline")
    second = finished_run(rule="fa")
    at = open_page(RUNS)
    table = at.dataframe[0].value
    assert set(table["Rule"]) == {"BP", "FA"} and set(table["Status"]) == {"finished"}
    assert "baseline" in list(table["Name"])
    assert table["Test acc. (%)"].notna().all()
    at.multiselect(key="runs_f_rule").set_value(["FA"]).run()
    assert list(at.dataframe[0].value["Rule"]) == ["FA"]
    at.multiselect(key="runs_f_rule").set_value([]).run()

    at.multiselect(key="runs_selected").set_value([first, second]).run()
    assert not at.exception, at.exception
    assert len(at.get("plotly_chart")) == 3
    assert [b.proto.label for b in at.get("download_button")][:2] == ["Metrics (CSV)", "Metrics (JSON)"]

    at.multiselect(key="runs_selected").set_value([second]).run()
    at.text_input(key=f"rename_sel_{second}").set_value("my FA run")
    at.button(key="rename_btn_sel").click().run()
    assert not at.exception, at.exception
    assert "my FA run" in list(at.dataframe[0].value["Name"])
    assert "Checkpoint (.safetensors)" in [b.proto.label for b in at.get("download_button")]

    at.button(key="del_sel").click().run()
    assert any("permanently" in w.value for w in at.warning)
    at.button(key="del_no_sel").click().run()
    assert (app_env / "runs" / second).exists()
    at.button(key="del_sel").click().run()
    at.button(key="del_yes_sel").click().run()
    assert not at.exception, at.exception
    assert not (app_env / "runs" / second).exists()
    assert "Deleted 1 run" in texts(at)
    assert list(at.dataframe[0].value["Name"]) == ["baseline"]


def test_run_page_by_url_and_cli_runs_listed(app_env: Path) -> None:
    from synthetic_loader import load

    from fa_core.runs import RunRecorder, RunStore
    from fa_core.training import TrainConfig, train

    config = TrainConfig(model="mlp", rule="fa_ex", rule_params={"p": 80.0}, epochs=1, batch_size=64, device="cpu",
                         probe_size=32)
    recorder = RunRecorder(RunStore(app_env / "runs"), config)
    for event in train(config, dataset=load("mnist")):
        recorder.handle(event)
    at = open_page(RUNS)
    row = at.dataframe[0].value.iloc[0]
    assert row["Rule"] == "FA_EX-80%" and row["Source"] == "cli"

    page = open_page(RUNS, {"run": recorder.run_id})
    assert recorder.run_id in texts(page)
    labels = {m.label: m.value for m in page.metric}
    assert labels["Test accuracy"].endswith("%") and labels["Epochs"] == "1/1"
    assert len(page.get("plotly_chart")) == 3
    share = [c.value for c in page.code]
    assert any("/compare?" in c and "rules=fa_ex80" in c and "model=mlp" in c and "sid=" not in c for c in share)
    page.button(key=f"del_one_{recorder.run_id}").click().run()
    page.button(key=f"del_yes_one_{recorder.run_id}").click().run()
    assert not page.exception, page.exception
    assert "run" not in page.query_params
    assert "No runs yet" in texts(page)

    missing = open_page(RUNS, {"run": "20200101-000000-mlp-fa-000000"})
    assert any("No such run" in e.value for e in missing.error)
    escape = open_page(RUNS, {"run": "../../etc"})
    assert any("No such run" in e.value for e in escape.error)


# ---- Inspect ---------------------------------------------------------------------------------------------
def test_inspect_lc_cnn_filters_angles_and_predictions(app_env: Path) -> None:
    job = finished_run(model="lc_cnn", rule="fa")
    at = open_page(INSPECT, {"run": job})
    assert at.radio(key="insp_source").value == "run"
    assert at.selectbox(key="insp_run").value == job
    charts = at.get("plotly_chart")
    # angles (W∠B, δ), W-vs-B scatter and histogram, W filters, B filters
    assert len(charts) == 6, len(charts)
    text = texts(at)
    assert "lc1: each panel is one of 6 output channels" in text
    assert "rows [3, 10, 17, 24]" in text
    assert at.radio(key="insp_show").value == "change"  # W - W0 by default: what training changed
    assert any(m.label.startswith("Similarity of a channel's changes") for m in at.metric)
    assert "W₀ is rebuilt from the run's seed" in text
    assert at.dataframe[0].value["layer"].tolist()[0] == "lc1 (B unused)"
    at.radio(key="insp_show").set_value("trained").run()
    assert any(m.label.startswith("Similarity of a channel's filters") for m in at.metric)

    at.select_slider(key="insp_grid").set_value(2).run()
    assert "rows [7, 21]" in texts(at)
    at.selectbox(key="insp_layer").set_value("lc2").run()
    assert not at.exception, at.exception

    at.button(key="insp_eval").click().run()
    assert not at.exception, at.exception
    assert any(m.label == "Test accuracy" for m in at.metric)
    assert len(at.get("plotly_chart")) == 7  # + the confusion matrix
    assert "Most confident mistakes" in texts(at)


def test_inspect_bp_mlp_and_checkpoint_file(app_env: Path) -> None:
    job = finished_run(model="mlp", rule="bp")
    at = open_page(INSPECT, {"run": job})
    assert "has no feedback matrix B" in texts(at)
    assert "hidden units" in texts(at)

    from app_pages.shared import run_store

    run_store().export_checkpoint(job, app_env / "user", "exported")
    at.radio(key="insp_source").set_value("file").run()
    assert not at.exception, at.exception
    assert at.selectbox(key="insp_file").value.endswith("exported.safetensors")
    assert "run" not in at.query_params
    assert len(at.get("plotly_chart")) == 2  # W histogram (BP: no B) and filters; no history in a bare file
    assert "No training history for this checkpoint" in texts(at)

    empty = open_page(INSPECT, {"run": "20200101-000000-mlp-fa-000000"})
    assert any("no saved checkpoint" in w.value for w in empty.warning)


def test_compare_settings_survive_a_trip_to_another_page(app_env: Path) -> None:
    at = open_page(COMPARE)
    at.number_input(key="cmp_epochs_mlp").set_value(5)
    at.number_input(key="cmp_seed").set_value(9)
    at.multiselect(key="cmp_rules").set_value(["bp", "fa"])
    at.run()
    at.switch_page("app_pages/home.py").run()
    for key in [k for k in at.query_params if k != "sid"]:
        del at.query_params[key]  # the sidebar menu's link carries none of the page's settings
    at.switch_page(COMPARE).run()
    assert not at.exception, at.exception
    assert at.number_input(key="cmp_epochs_mlp").value == 5
    assert at.number_input(key="cmp_seed").value == 9
    assert at.multiselect(key="cmp_rules").value == ["bp", "fa"]
