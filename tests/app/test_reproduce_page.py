"""The Reproduce page through AppTest: committed tables render coloured by verdict, the tuned
results show, and a cell's button trains that cell live as a job."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from fa_core.reproduce import ResultStore, table_cells
from fa_core.tuning import TuningStore

APP = Path(__file__).resolve().parents[2] / "app.py"


@pytest.fixture
def results_dir(app_env: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = app_env / "reproduction"
    store = ResultStore.open(folder / "results.json")
    cell = next(c for c in table_cells("table3") if c.cell_id == "table3/FA/sigma 0")
    store.put(cell, 2023, {"status": "finished", "value": 0.0900, "wall_s": 40.0})
    store.put(cell, 2024, {"status": "finished", "value": 0.1000, "wall_s": 60.0})
    tuned = TuningStore.open(folder / "tuning.json")
    tuned.put("mlp/FA/final", {"chosen": {"candidate": "adam 0.001, batch 32", "epochs": 12, "validation": 97.9},
                               "test": 98.05, "wall_s": 100.0, "sigma": 0.0})
    monkeypatch.setenv("FA_LAB_REPRODUCTION_DIR", str(folder))
    return folder


def reproduce_page() -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=30).run()
    assert not at.exception, at.exception
    at.switch_page("app_pages/reproduce.py").run()
    assert not at.exception, at.exception
    return at


def test_tables_render_with_paper_and_measured_values(results_dir: Path) -> None:
    at = reproduce_page()
    assert len(at.dataframe) == 4  # three tables and the tuned results
    table3 = at.dataframe[2].value
    assert list(table3["paper"]) == ["0.0816", "0.1050", "0.1570", "0.0880", "0.1120", "0.1640"]
    fa0 = table3[(table3["row"] == "FA") & (table3["column"] == "sigma 0")].iloc[0]
    assert fa0["measured"] == "0.0950 ± 0.0071" and fa0["seeds"] == 2
    assert fa0["difference"] == "+0.0070" and fa0["verdict"] == "worse than the paper"
    assert (table3["measured"] == "not run").sum() == 5
    assert "BP (locally connected)" in set(at.dataframe[0].value["row"])
    tuned = at.dataframe[3].value.iloc[0]
    assert tuned["test (tuned)"] == "98.05" and tuned["paper"] == "97.69" and tuned["difference"] == "+0.36"
    assert len(at.button) >= 11  # one per cell of the selected table


def test_run_button_trains_the_cell_and_fills_it_in(results_dir: Path) -> None:
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
