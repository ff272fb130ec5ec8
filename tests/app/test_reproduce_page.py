"""The Reproduce page through AppTest: committed tables render, a cell's button trains it live."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from conftest import APP


def reproduce_page() -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=30).run()
    assert not at.exception, at.exception
    at.switch_page("app_pages/reproduce.py").run()
    assert not at.exception, at.exception
    return at


def test_tables_render_with_paper_and_committed_values(app_env: Path) -> None:
    at = reproduce_page()
    assert len(at.dataframe) == 3
    table3 = at.dataframe[2].value
    assert list(table3["paper"]) == ["0.0816", "0.1050", "0.1570", "0.0880", "0.1120", "0.1640"]
    assert {"measured", "difference", "verdict", "seeds"} <= set(table3.columns)
    table1 = at.dataframe[0].value
    assert "BP (locally connected)" in set(table1["row"])
    assert len(at.button) >= 11  # one per cell of the selected table


def test_run_button_trains_the_cell_and_fills_it_in(app_env: Path) -> None:
    from app_pages.shared import job_manager

    at = reproduce_page()
    at.radio(key="repro_table").set_value("table3").run()
    at.toggle(key="repro_preview").set_value(True).run()
    at.button(key="run-table3/FA/sigma 100").click().run()
    assert not at.exception, at.exception
    job_id = at.session_state["reproduce_jobs"]["table3/FA/sigma 100"]
    snap = job_manager().wait(job_id, at.session_state["owner"], timeout=60)
    assert snap.status == "finished"
    assert snap.config["sigma"] == 100.0 and snap.config["epochs"] == 1 and snap.config["model"] == "dae"
    at.run()
    assert not at.exception, at.exception
    bce = snap.final["test_bce"]
    assert any(f"{bce:.4f} (finished)" == m.value for m in at.markdown)
