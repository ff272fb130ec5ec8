"""The Train page in a real browser: train, watch it live, pause, resume, leave and come back, stop.

Runs on the real MNIST with the page's "quick run" slider at 1% (600 images, 19 steps an epoch).
"""

from __future__ import annotations

import json
import pytest

from .ui import chart_points, job_progress, open_train, query_param, quick_run_smallest, set_number, set_text, wait_for

pytestmark = pytest.mark.e2e


def status_on_disk(server, job: str) -> str:
    return json.loads((server.runs_dir / job / "status.json").read_text())["status"]


def click_key(page, key: str) -> None:
    page.locator(f".st-key-{key} button").click()


def test_quick_run_trains_to_the_end_and_saves_a_checkpoint(server, page) -> None:
    open_train(page, server.url)
    quick_run_smallest(page)
    set_number(page, "Epochs", 2)
    set_text(page, "Run name (optional)", "e2e quick run")
    click_key(page, "start")

    job = wait_for(lambda: query_param(page, "job"), 60, message="the job id in the URL")
    wait_for(lambda: (job_progress(page) or ("",))[0] == "finished", 180, message="the run to finish")
    assert page.get_by_text("e2e quick run").first.is_visible()
    metric_labels = page.locator('[data-testid="stMetricLabel"]').all_inner_texts()
    assert any("Test accuracy" in label for label in metric_labels), metric_labels
    assert chart_points(page, "loss_live") > 0
    assert chart_points(page, "acc_live") == 2  # one point per epoch
    assert status_on_disk(server, job) == "finished"
    assert (server.runs_dir / job / "model.safetensors").is_file()

    name = page.locator(f".st-key-ckpt_name_{job} input")
    name.fill("e2e-quick")
    name.press("Enter")
    click_key(page, f"ckpt_save_{job}")
    page.get_by_text("Saved e2e-quick.safetensors").wait_for()
    assert (server.checkpoints_dir / "e2e-quick.safetensors").is_file()


def test_live_progress_pause_resume_leave_return_and_stop(server, page) -> None:
    open_train(page, server.url)
    quick_run_smallest(page)
    set_number(page, "Epochs", 200)  # ~3,800 steps: still running when the test stops it
    click_key(page, "start")
    job = wait_for(lambda: query_param(page, "job"), 60, message="the job id in the URL")

    # The progress bar and the loss chart advance while the job runs.
    first = wait_for(
        lambda: (p := job_progress(page)) and p[0] == "running" and p[1] > 0 and p, 120,
        message="the first steps",
    )
    points = wait_for(lambda: chart_points(page, "loss_live"), 60, message="loss points")
    wait_for(lambda: (p := job_progress(page)) and p[1] > first[1], 60, message="the step count to advance")
    wait_for(lambda: chart_points(page, "loss_live") > points, 60, message="the loss chart to grow")

    # Pause: the status says so and the step count stops moving.
    click_key(page, "pause")
    page.locator(".st-key-resume button").wait_for()
    wait_for(lambda: (job_progress(page) or ("",))[0] == "paused", 30, message="paused")
    assert status_on_disk(server, job) == "paused"
    page.wait_for_timeout(1500)  # let a step that was in flight when the pause came land
    held = job_progress(page)
    page.wait_for_timeout(2000)
    assert job_progress(page) == held

    # Resume: it moves again.
    click_key(page, "resume")
    page.locator(".st-key-pause button").wait_for()
    wait_for(lambda: (p := job_progress(page)) and p[0] == "running" and p[1] > held[1], 60, message="steps after resume")

    # Leave for the Home page: the sidebar still lists the job; come back: it is still shown.
    page.locator('[data-testid="stSidebarNav"] a').filter(has_text="Home").click()
    page.get_by_role("heading", name="FA Lab").first.wait_for()
    page.locator('[data-testid="stSidebar"]').get_by_text("Your jobs").wait_for()
    sidebar_links = page.locator('[data-testid="stSidebar"] a[href*="job="]')
    wait_for(lambda: sidebar_links.count() >= 1, 30, message="the job in the sidebar")
    page.locator('[data-testid="stSidebarNav"] a').filter(has_text="Train").click()
    page.locator(".st-key-stop button").wait_for()
    wait_for(lambda: (p := job_progress(page)) and p[0] == "running", 30, message="the job shown again")
    wait_for(lambda: query_param(page, "job") == job, 15, message="the job id back in the URL")

    # A reload (a new Streamlit session with only the URL) reattaches too.
    page.reload()
    page.locator(".st-key-stop button").wait_for()
    assert query_param(page, "job") == job

    # Stop: the run ends as stopped, with its test metrics and a checkpoint.
    click_key(page, "stop")
    wait_for(lambda: (job_progress(page) or ("",))[0] == "stopped", 60, message="stopped")
    wait_for(lambda: status_on_disk(server, job) == "stopped", 30, message="stopped on disk")
    page.get_by_text("Test accuracy").first.wait_for()
    assert (server.runs_dir / job / "model.safetensors").is_file()
    wait_for(lambda: page.locator(".st-key-stop button").count() == 0, 30, message="the Stop button gone")


FREEZE_PAGE_TIMERS = """() => {
    // Stop every timer of the page's own window, as the frozen views under load behaved: the
    // fragments' auto-rerun intervals are gone, so the live view stops re-rendering.
    const newest = setTimeout(() => {}, 0);
    for (let id = 0; id <= newest + 10000; id++) { clearInterval(id); clearTimeout(id); }
    window.__faLabFrozen = true;
}"""


def reloaded(page) -> bool:
    """True once the page no longer carries the freeze marker (a new document was loaded)."""
    try:
        return page.evaluate("() => window.__faLabFrozen !== true")
    except Exception:  # noqa: BLE001 - the document is being replaced; ask again
        return False


def test_watchdog_reloads_a_live_view_that_stopped_updating(new_server, page) -> None:
    server = new_server(env={"FA_LAB_WATCHDOG_S": "8", "FA_LAB_MAX_JOBS": "1"})
    open_train(page, server.url)
    quick_run_smallest(page)
    set_number(page, "Epochs", 200)
    click_key(page, "start")
    job = wait_for(lambda: query_param(page, "job"), 60, message="the job id in the URL")
    wait_for(lambda: (p := job_progress(page)) and p[0] == "running" and p[1] > 0, 120, message="running")

    page.evaluate(FREEZE_PAGE_TIMERS)
    frozen = job_progress(page)
    page.wait_for_timeout(4000)
    assert job_progress(page) == frozen, "freezing the page's timers should stop its live view"

    # The watchdog (its own iframe window, its own timers) sees no change for 8 s and reloads.
    wait_for(lambda: reloaded(page), 60, message="the page to reload")
    assert query_param(page, "job") == job
    wait_for(lambda: (p := job_progress(page)) and p[0] == "running" and p[1] > frozen[1], 120,
             message="the reloaded live view to show the job advancing")
    click_key(page, "stop")
    wait_for(lambda: (job_progress(page) or ("",))[0] == "stopped", 60, message="stopped")
