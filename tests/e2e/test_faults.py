"""Faults: the server killed with ``kill -9`` mid-run and started again; writers killed mid-write.

After a kill, every file under its final name must parse (``*.json``) or load
(``model.safetensors``): the run store writes each file to a hidden temporary file, flushes it and
renames it into place. A restarted server marks the runs the dead one was running as
``interrupted`` and shows finished runs intact.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fa_core.checkpoints import load_checkpoint, read_checkpoint_metadata

from .server import REPO
from .ui import chart_points, job_progress, open_train, query_param, quick_run_smallest, set_number, set_text, wait_for


def check_store_files(root: Path) -> dict[str, int]:
    """Parse every JSON file and load every checkpoint under ``root``; return counts per kind."""
    counts = {"json": 0, "safetensors": 0, "tmp": 0}
    for path in sorted(root.rglob("*")):
        if not path.is_file():
            continue
        if path.name.endswith(".tmp"):
            assert path.name.startswith("."), f"a temporary file under a visible name: {path}"
            counts["tmp"] += 1
        elif path.suffix == ".json":
            json.loads(path.read_text(encoding="utf-8"))  # raises on a truncated file
            counts["json"] += 1
        elif path.suffix == ".safetensors":
            meta = read_checkpoint_metadata(path)
            if "model" in meta and "dataset" in meta:
                load_checkpoint(path)
            counts["safetensors"] += 1
    return counts


def test_kill_9_during_writes_never_leaves_a_half_written_file(tmp_path: Path) -> None:
    """A process rewriting metrics.json (9 MB), model.safetensors and status.json is killed at
    random moments, four times; every file under its final name is complete each time."""
    root = tmp_path / "runs"
    rng = random.Random(7)
    cycles_seen = []
    for _ in range(4):
        writer = subprocess.Popen(
            [sys.executable, str(REPO / "tests" / "e2e" / "crash_writer.py"), str(root)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO,
        )
        try:
            line = writer.stdout.readline()  # the first full cycle is on disk
            assert line.startswith("cycle"), line + writer.stdout.read()
            time.sleep(rng.uniform(0.05, 1.2))  # somewhere inside a later cycle
            writer.send_signal(signal.SIGKILL)
            writer.wait(10)
        finally:
            if writer.poll() is None:
                writer.kill()
                writer.wait(10)
            writer.stdout.close()
        counts = check_store_files(root)
        assert counts["json"] == 3 and counts["safetensors"] == 1, counts
        status = json.loads(next(root.glob("*/status.json")).read_text())
        cycles_seen.append(status["cycle"])
    assert cycles_seen == sorted(cycles_seen)  # each life carried on from the last


def stored_caption(page, run_id: str, state: str):
    """The Train page's "Stored run `<id>` · <state>" caption."""
    return (
        page.locator('[data-testid="stCaptionContainer"]')
        .filter(has_text="Stored run").filter(has_text=run_id).filter(has_text=state).first
    )


@pytest.mark.e2e
def test_kill_9_mid_run_then_restart(new_server, new_page, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    first = new_server(runs_dir=runs, env={"FA_LAB_MAX_JOBS": "2"})
    page = new_page()
    open_train(page, first.url)
    quick_run_smallest(page)

    # A run that finishes before the crash.
    set_number(page, "Epochs", 2)
    set_text(page, "Run name (optional)", "survivor")
    page.locator(".st-key-start button").click()
    done_job = wait_for(lambda: query_param(page, "job"), 60, message="the first job id")
    wait_for(lambda: (job_progress(page) or ("",))[0] == "finished", 180, message="the first run to finish")
    sid = query_param(page, "sid")

    # A long run, killed mid-way (after at least one epoch's metrics are on disk).
    set_number(page, "Epochs", 300)
    set_text(page, "Run name (optional)", "victim")
    page.locator(".st-key-start button").click()
    victim = wait_for(lambda: (j := query_param(page, "job")) != done_job and j, 60, message="the second job id")
    wait_for(lambda: (runs / victim / "metrics.json").is_file(), 120, message="the victim's first epoch")
    wait_for(lambda: (p := job_progress(page)) and p[0] == "running" and p[1] > 30, 60, message="the victim running")
    survivor_files = {p.name: p.read_bytes() for p in (runs / done_job).iterdir() if not p.name.startswith(".")}

    first.kill9()

    counts = check_store_files(runs)
    assert counts["safetensors"] == 1  # the survivor's; the victim never reached its end
    assert json.loads((runs / victim / "status.json").read_text())["status"] == "running"  # as the dead server left it
    victim_epochs = len(json.loads((runs / victim / "metrics.json").read_text())["history"])
    assert victim_epochs >= 1

    # Restart on the same run folder; the first page view creates the services.
    second = new_server(runs_dir=runs)
    page = new_page()
    page.goto(f"{second.url}/train?sid={sid}&job={victim}")
    stored_caption(page, victim, "interrupted").wait_for()
    page.get_by_text("the server stopped while this run was running").wait_for()
    wait_for(lambda: chart_points(page, "loss_stored") > 0, 60, message="the victim's stored loss curve")
    status = json.loads((runs / victim / "status.json").read_text())
    assert status["status"] == "interrupted" and status["ended"]

    page.goto(f"{second.url}/train?sid={sid}&job={done_job}")
    stored_caption(page, done_job, "finished").wait_for()
    page.get_by_text("Test accuracy").first.wait_for()
    assert {p.name: p.read_bytes() for p in (runs / done_job).iterdir() if not p.name.startswith(".")} == survivor_files
    check_store_files(runs)

    # Someone else's browser session cannot open these stored runs.
    stranger = new_page()
    stranger.goto(f"{second.url}/train?job={done_job}")
    stranger.get_by_text("That job is not known here").wait_for()
    wait_for(lambda: query_param(stranger, "job") is None, 30, message="the job dropped from the stranger's URL")
