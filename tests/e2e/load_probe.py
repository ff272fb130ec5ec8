"""Load probe: several browser sessions against one live FA Lab server, RSS sampled over time.

``python -m tests.e2e.load_probe --minutes 30 --out docs/reliability_load.json`` starts a
``streamlit run app.py`` with ``FA_LAB_MAX_JOBS`` = ``--max-jobs`` (2) and opens ``--sessions``
(5) browser sessions in Debian's Chromium, each in its own browser context (its own cookies, so
its own Streamlit session and owner id):

* ``--trainers`` (3) sessions train on the Train page (real MNIST, "quick run" 1%); each starts
  a new run as soon as its last one ends, so for the whole probe there are more jobs than the cap
  and the queue is never empty for long. Their pages stay open on the live view (a fragment that
  re-renders progress and three plotly charts every second).
* The other sessions watch: one stays on the Train page with no job, the next on Home.

Every ``--sample-s`` seconds the probe records the server's RSS (``/proc/<pid>/status``), the
running/queued counts each session's sidebar shows, and each trainer's ``(status, step)``, and
checks the invariants:

* running never exceeds the cap, and a job waits as ``queued`` when the cap is full;
* each session's sidebar lists only its own jobs (the job ids it started), watchers none;
* every trainer's step count advances or its runs finish over the probe;
* a trainer's live view that shows the same running step for ``--stale-s`` seconds is recorded
  as frozen and reloaded; one that a reload does not bring back is a violation;
* a watcher that opens a trainer's job URL is told it belongs to another session and gets no
  Pause/Stop button (checked at the start and again at the end).

The JSON written to ``--out`` holds every sample and a summary (RSS at fixed times, its linear
slope over the second half, peaks, runs finished per session, violations). The exit status is 1
when an invariant broke. ``tests/e2e/test_load.py`` runs a one-minute version.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from .server import CHROMIUM, CHROMIUM_ARGS, StreamlitServer
from .ui import job_progress, query_param, quick_run_smallest, set_number, wait_for

SERVER_RE = r"Server: (\d+) running, (\d+) queued \(at most (\d+) at once\)"


def sidebar_state(page) -> dict[str, Any]:
    """The session's sidebar: job ids it links to and the server's running/queued counts."""
    import re

    sidebar = page.locator('[data-testid="stSidebar"]')
    hrefs = sidebar.locator('a[href*="job="]').evaluate_all("els => els.map(e => e.href)")
    jobs = sorted({re.search(r"job=([^&]+)", h).group(1) for h in hrefs})
    text = sidebar.inner_text(timeout=10_000)
    match = re.search(SERVER_RE, text)
    counts = tuple(int(g) for g in match.groups()) if match else None
    return {"jobs": jobs, "counts": counts}


def start_run(page, epochs: int, first_status: list[str]) -> str:
    """Press Start on the Train page (already configured) and return the new job id; the status
    the new job's live view first shows (queued, running or paused) goes into ``first_status``.

    The URL names the new job before the live view has re-rendered: until then the page still
    shows the last job's final progress ("finished 57/57"), which a sampler would take for the new
    job ending at once (and start yet another run, leaving this one orphaned). So this returns only
    once the view shows a job that is not done (a new job is queued or running first).
    """
    before = query_param(page, "job")
    page.locator(".st-key-start button").click()
    job = wait_for(lambda: (j := query_param(page, "job")) and j != before and j, 90, message="a new job id")
    shown = wait_for(lambda: (p := job_progress(page)) and p[0] in ("queued", "running", "paused") and p, 90,
                     message=f"the live view of the new job {job}")
    first_status.append(shown[0])
    return job


def configure(page, base_url: str, epochs: int, load_times: list[float]) -> None:
    open_page(page, f"{base_url}/train", start_button, load_times)
    quick_run_smallest(page)
    set_number(page, "Epochs", epochs)


LOAD_PATIENCE_S = 180.0
"""How long a page may take to load while the machine is saturated (2 cores: the server, three
jobs and five browser pages) before the probe calls it a violation; the times are recorded."""


def open_page(page, url: str, ready: Any, load_times: list[float]) -> None:
    """Navigate to ``url`` and wait until ``ready(page)`` (a locator) is visible; the time it took
    goes into ``load_times``. Waits for the navigation to commit, not for every static file's
    "load" event, so a slow bundle download under load costs time, not a failure; one reload is
    tried after half the patience."""
    start = time.monotonic()
    half_ms = LOAD_PATIENCE_S * 500
    try:
        page.goto(url, wait_until="commit", timeout=half_ms)
        ready(page).wait_for(timeout=half_ms)
    except Exception:  # noqa: BLE001 - retried once; the second failure propagates
        page.goto(url, wait_until="commit", timeout=half_ms)
        ready(page).wait_for(timeout=half_ms)
    load_times.append(round(time.monotonic() - start, 1))


def start_button(page) -> Any:
    return page.get_by_role("button", name="Start")


def home_heading(page) -> Any:
    return page.get_by_role("heading", name="FA Lab").first


def isolation_check(watcher, base_url: str, job: str, sid: str, load_times: list[float]) -> dict[str, Any]:
    """A watcher opens another session's job URL: refused, and no control buttons appear."""
    open_page(watcher, f"{base_url}/train?job={job}", start_button, load_times)
    refused = watcher.get_by_text("That job belongs to another browser session").count() > 0 or \
        watcher.get_by_text("not known here").count() > 0
    controls = sum(watcher.locator(f".st-key-{k} button").count() for k in ("pause", "resume", "stop"))
    own_sid = query_param(watcher, "sid")
    return {"job": job, "refused": refused, "control_buttons": controls, "kept_own_sid": own_sid != sid}


def recover_frozen_view(page, session: int, job: str, shown: tuple, t_s: float) -> dict[str, Any]:
    """A trainer's live view has shown the same running step for too long: reload the page (a new
    Streamlit session reattached through ``?job=&sid=``) and see whether it then shows the job."""
    page.reload(wait_until="commit", timeout=LOAD_PATIENCE_S * 1000)
    start_button(page).wait_for(timeout=LOAD_PATIENCE_S * 1000)
    try:
        after = wait_for(lambda: (p := job_progress(page)) and p != shown and p, 30, message="a live view after reload")
    except AssertionError:
        after = job_progress(page)
    return {"t_s": round(t_s, 1), "session": session, "job": job, "shown": list(shown),
            "after_reload": list(after) if after else None, "reload_recovered": bool(after) and after != shown}


def run_probe(minutes: float, out: Path | None, sessions: int = 5, trainers: int = 3, max_jobs: int = 2,
              epochs: int = 40, sample_s: float = 10.0, log: Any = print, stale_s: float = 60.0,
              browser: Any = None, root: Path | None = None) -> dict[str, Any]:
    """Run the probe; ``browser``: a Playwright Chromium already launched (the tests' session
    browser; Playwright's sync API cannot be started twice in one thread), else one is launched.
    ``root``: folder for the server's runs and log (default: a new temporary folder)."""
    from playwright.sync_api import sync_playwright

    if trainers >= sessions:
        raise ValueError("keep at least one watching session")
    root = Path(root) if root is not None else Path(tempfile.mkdtemp(prefix="fa-lab-load-"))
    server = StreamlitServer(
        runs_dir=root / "runs", checkpoints_dir=root / "checkpoints", log_path=root / "server.log",
        env={"FA_LAB_MAX_JOBS": str(max_jobs)},
    )
    violations: list[str] = []
    samples: list[dict[str, Any]] = []
    started: dict[int, list[str]] = {i: [] for i in range(trainers)}
    finished: dict[int, int] = {i: 0 for i in range(trainers)}
    isolation: list[dict[str, Any]] = []
    frozen: list[dict[str, Any]] = []
    last_change: dict[int, tuple[Any, float]] = {}
    setup_s = None
    load_times: list[float] = []
    first_status: list[str] = []
    server.start()
    t0 = time.monotonic()
    rss_start = server.rss_kib()
    try:
        with ExitStack() as stack:
            if browser is None:
                playwright = stack.enter_context(sync_playwright())
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                stack.callback(browser.close)
            pages = []
            for _ in range(sessions):
                context = browser.new_context(viewport={"width": 1400, "height": 1000})
                stack.callback(context.close)
                context.set_default_timeout(60_000)
                pages.append(context.new_page())
            for i in range(trainers):
                configure(pages[i], server.url, epochs, load_times)
            for i in range(trainers):
                started[i].append(start_run(pages[i], epochs, first_status))
            for k, page in enumerate(pages[trainers:]):
                if k % 2 == 0:
                    open_page(page, f"{server.url}/train", start_button, load_times)
                else:
                    open_page(page, server.url, home_heading, load_times)
            watcher = pages[trainers]
            isolation.append(isolation_check(watcher, server.url, started[0][-1], query_param(pages[0], "sid"), load_times))
            log(f"[{time.strftime('%H:%M:%S')}] {sessions} sessions open, {trainers} training; rss {rss_start / 1024:.0f} MiB at start")

            setup_s = round(time.monotonic() - t0, 1)
            t0 = time.monotonic()  # the probe's clock starts once every session is up
            deadline = t0 + minutes * 60
            while True:
                now = time.monotonic()
                sample: dict[str, Any] = {"t_s": round(now - t0, 1), "rss_mib": round(server.rss_kib() / 1024, 1),
                                          "sessions": []}
                for i, page in enumerate(pages):
                    try:
                        side = sidebar_state(page)
                    except Exception as err:  # noqa: BLE001 - recorded, not fatal: the page may be re-rendering
                        sample["sessions"].append({"session": i, "error": repr(err)[:200]})
                        continue
                    entry: dict[str, Any] = {"session": i, "sidebar_jobs": len(side["jobs"]), "counts": side["counts"]}
                    own = set(started.get(i, []))
                    if not set(side["jobs"]) <= own:
                        violations.append(f"t={sample['t_s']}s session {i} sidebar lists jobs it did not start: "
                                          f"{sorted(set(side['jobs']) - own)}")
                    if side["counts"]:
                        running, queued, cap = side["counts"]
                        if running > cap:
                            violations.append(f"t={sample['t_s']}s {running} jobs running, cap {cap}")
                    if i < trainers:
                        progress = job_progress(page)
                        entry["job"] = query_param(page, "job")
                        entry["progress"] = progress
                        seen = (entry["job"], progress)
                        if last_change.get(i, (None,))[0] != seen:
                            last_change[i] = (seen, now)
                        elif progress and progress[0] == "running" and now - last_change[i][1] > stale_s:
                            frozen.append(recover_frozen_view(page, i, entry["job"], progress, now - t0))
                            progress = job_progress(page)
                            last_change[i] = ((entry["job"], progress), time.monotonic())
                        if progress and progress[0] in ("finished", "stopped", "failed"):
                            if progress[0] == "failed":
                                violations.append(f"t={sample['t_s']}s session {i} job failed")
                            finished[i] += 1
                            started[i].append(start_run(page, epochs, first_status))
                    sample["sessions"].append(entry)
                samples.append(sample)
                counts = [s["counts"] for s in sample["sessions"] if s.get("counts")]
                log(f"[{time.strftime('%H:%M:%S')}] t={sample['t_s']:7.1f}s rss={sample['rss_mib']:7.1f} MiB "
                    f"counts={counts[0] if counts else None} "
                    + " ".join(f"s{s['session']}={(s.get('progress') or ('-',))[0]}:{(s.get('progress') or (0, 0))[1]}"
                               for s in sample["sessions"] if s["session"] < trainers))
                if not server.alive():
                    violations.append(f"t={sample['t_s']}s the server died")
                    break
                if now >= deadline:
                    break
                time.sleep(max(0.0, sample_s - (time.monotonic() - now)))
            isolation.append(isolation_check(watcher, server.url, started[1][-1], query_param(pages[1], "sid"), load_times))
    finally:
        server.stop()
    for event in frozen:
        if not event["reload_recovered"]:
            violations.append(f"frozen live view not recovered by a reload: {event}")
    for check in isolation:
        if not check["refused"] or check["control_buttons"] or not check["kept_own_sid"]:
            violations.append(f"isolation: {check}")
    summary = summarise(samples, trainers, max_jobs, started, finished, rss_start)
    summary["first_status_counts"] = {s: first_status.count(s) for s in sorted(set(first_status))}
    summary["queue_seen"] = summary["queue_seen"] or "queued" in first_status
    summary["setup_s"] = setup_s
    summary["frozen_views"] = len(frozen)
    summary["page_load_s"] = {"n": len(load_times), "max": max(load_times, default=None),
                              "median": sorted(load_times)[len(load_times) // 2] if load_times else None}
    for i in range(trainers):
        if not summary["progressed"][i]:
            violations.append(f"session {i} never made progress")
    if not summary["queue_seen"]:
        violations.append("no job was ever queued although more jobs than the cap were submitted")
    result = {
        "what": "FA Lab load probe (tests/e2e/load_probe.py)",
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - (time.monotonic() - t0))),
        "minutes": minutes, "sessions": sessions, "trainers": trainers, "max_jobs": max_jobs,
        "epochs_per_run": epochs, "sample_s": sample_s,
        "summary": summary, "isolation": isolation, "frozen_views": frozen, "violations": violations, "samples": samples,
    }
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    return result


def summarise(samples: list[dict[str, Any]], trainers: int, max_jobs: int, started: dict[int, list[str]],
              finished: dict[int, int], rss_start_kib: int) -> dict[str, Any]:
    """RSS at fixed times and its trend; the queue and the progress each trainer made."""
    rss = [(s["t_s"], s["rss_mib"]) for s in samples]
    at_minutes = {}
    for minute in (1, 2, 5, 10, 15, 20, 25, 30):
        after = [r for t, r in rss if t >= minute * 60]
        if after:
            at_minutes[str(minute)] = after[0]
    half = [(t, r) for t, r in rss if t >= rss[-1][0] / 2] if rss else []
    slope = None
    if len(half) >= 3:
        mt = sum(t for t, _ in half) / len(half)
        mr = sum(r for _, r in half) / len(half)
        var = sum((t - mt) ** 2 for t, _ in half)
        slope = round(sum((t - mt) * (r - mr) for t, r in half) / var * 60, 3) if var else None
    counts = [s.get("counts") for sample in samples for s in sample["sessions"] if s.get("counts")]
    steps: dict[int, list[tuple[str, int]]] = {i: [] for i in range(trainers)}
    for sample in samples:
        for s in sample["sessions"]:
            if s["session"] < trainers and s.get("progress"):
                steps[s["session"]].append((s["job"], s["progress"][1]))
    progressed = []
    for i in range(trainers):
        per_job: dict[str, list[int]] = {}
        for job, step in steps[i]:
            per_job.setdefault(job, []).append(step)
        progressed.append(finished[i] > 0 or any(max(v) > min(v) for v in per_job.values()))
    return {
        "rss_mib_start": round(rss_start_kib / 1024, 1),
        "rss_mib_at_minute": at_minutes,
        "rss_mib_max": max((r for _, r in rss), default=None),
        "rss_mib_end": rss[-1][1] if rss else None,
        "rss_slope_mib_per_min_second_half": slope,
        "max_running_seen": max((c[0] for c in counts), default=None),
        "max_queued_seen": max((c[1] for c in counts), default=None),
        "cap": max_jobs,
        "queue_seen": any(c[1] > 0 for c in counts),  # or a new job's view opened on "queued" (run_probe)
        "runs_started": {str(i): len(v) for i, v in started.items()},
        "runs_finished": {str(i): n for i, n in finished.items()},
        "progressed": progressed,
        "samples": len(samples),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--out", type=Path, default=Path("docs/reliability_load.json"))
    parser.add_argument("--sessions", type=int, default=5)
    parser.add_argument("--trainers", type=int, default=3)
    parser.add_argument("--max-jobs", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=40, help="epochs per run (quick run 1%%: 19 steps an epoch)")
    parser.add_argument("--sample-s", type=float, default=10.0)
    parser.add_argument("--stale-s", type=float, default=60.0, help="a running view unchanged this long is frozen")
    args = parser.parse_args(argv)
    result = run_probe(args.minutes, args.out, args.sessions, args.trainers, args.max_jobs, args.epochs,
                       args.sample_s, log=lambda line: print(line, flush=True), stale_s=args.stale_s)
    print(json.dumps(result["summary"], indent=1))
    for violation in result["violations"]:
        print("VIOLATION:", violation, file=sys.stderr)
    return 1 if result["violations"] else 0


if __name__ == "__main__":
    sys.exit(main())
