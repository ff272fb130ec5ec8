"""What every FA Lab page shares: the cached services, the session's owner id, the sidebar.

Not a page itself (``app.py`` registers the pages explicitly with ``st.navigation``; see there why
this folder is not called ``pages/``). The services are
created once per server process with ``st.cache_resource``; the training and fetch threads they
own never call Streamlit.

Environment variables read when the services are first created:

* ``FA_LAB_RUNS_DIR``: run store folder (default ``<repo>/runs``);
* ``FA_LAB_CHECKPOINTS_DIR``: folder for "Save checkpoint as..." (default ``<repo>/checkpoints/user``);
* ``FA_LAB_MAX_JOBS``: concurrent training jobs (default 4 on CUDA, 1-2 on CPU);
* ``FA_LAB_DATASET_LOADER``: ``module:function`` replacing :func:`fa_core.data.load_dataset`
  (tests use it to train on tiny synthetic data).
"""

from __future__ import annotations

import importlib
import os
import re
import secrets
from pathlib import Path
from typing import Any

import streamlit as st
import torch

from fa_core.jobs import DatasetFetcher, JobManager, JobSnapshot
from fa_core.runs import RunStore

REPO_ROOT = Path(__file__).resolve().parents[1]
TRAIN_PAGE = "app_pages/train.py"
HOME_PAGE = "app_pages/home.py"

_OWNER_RE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")

STATUS_ICONS = {
    "queued": ":material/schedule:",
    "running": ":material/play_circle:",
    "paused": ":material/pause_circle:",
    "finished": ":material/check_circle:",
    "stopped": ":material/stop_circle:",
    "failed": ":material/error:",
    "interrupted": ":material/warning:",
}
"""Material icons (rendered by Streamlit in labels and markdown; no emoji font needed)."""


def _dataset_loader_from_env() -> Any:
    spec = os.environ.get("FA_LAB_DATASET_LOADER", "").strip()
    if not spec:
        return None
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise RuntimeError(f"FA_LAB_DATASET_LOADER must look like 'module:function', got {spec!r}")
    return getattr(importlib.import_module(module_name), attr)


@st.cache_resource(show_spinner=False)
def services() -> tuple[RunStore, JobManager, DatasetFetcher]:
    """The process-wide run store, job manager and dataset fetcher (created once).

    On creation, runs a previous server left queued/running are marked ``interrupted``.
    """
    store = RunStore()
    store.mark_interrupted()
    max_jobs = os.environ.get("FA_LAB_MAX_JOBS")
    manager = JobManager(
        store,
        max_running=int(max_jobs) if max_jobs else None,
        dataset_loader=_dataset_loader_from_env(),
    )
    return store, manager, DatasetFetcher()


def run_store() -> RunStore:
    return services()[0]


def job_manager() -> JobManager:
    return services()[1]


def fetcher() -> DatasetFetcher:
    return services()[2]


def checkpoints_dir() -> Path:
    """Where "Save checkpoint as..." writes: ``$FA_LAB_CHECKPOINTS_DIR`` or ``<repo>/checkpoints/user``."""
    configured = os.environ.get("FA_LAB_CHECKPOINTS_DIR")
    return Path(configured).expanduser() if configured else REPO_ROOT / "checkpoints" / "user"


def owner_id() -> str:
    """This browser session's owner id for the job manager.

    Kept in ``st.session_state`` and mirrored in the URL (``?sid=...``) so that a page refresh,
    which starts a new Streamlit session, keeps control of the jobs started before it.
    """
    owner = st.session_state.get("owner")
    if owner is None:
        sid = st.query_params.get("sid")
        owner = sid if isinstance(sid, str) and _OWNER_RE.fullmatch(sid) else secrets.token_urlsafe(18)
        st.session_state["owner"] = owner
    if st.query_params.get("sid") != owner:
        st.query_params["sid"] = owner
    return owner


_KEPT = "_kept_settings_"


def restore_settings(page: str) -> None:
    """Put back ``page``'s settings that Streamlit dropped while another page was shown.

    Streamlit deletes a widget's value at the end of every run that did not draw the widget, so a
    trip to another page resets a form. :func:`keep_settings` copies the values into a plain
    session key (which is never deleted); call this before the page draws its widgets.
    """
    for key, value in st.session_state.get(_KEPT + page, {}).items():
        if key not in st.session_state:
            st.session_state[key] = value


def keep_settings(page: str, prefixes: tuple[str, ...]) -> None:
    """Remember, for ``page``, the values of the widgets whose keys start with one of ``prefixes``
    (call it after the page drew them; leave buttons and charts out: their values cannot be set)."""
    st.session_state[_KEPT + page] = {
        key: value for key, value in st.session_state.items()
        if isinstance(key, str) and key.startswith(prefixes)
    }


def device_summary() -> dict[str, str]:
    """Compute device facts for display."""
    if torch.cuda.is_available():
        index = torch.cuda.current_device()
        device = f"CUDA · {torch.cuda.get_device_name(index)}"
    else:
        device = "CPU"
    return {
        "device": device,
        "cpu_cores": str(os.cpu_count() or 1),
        "torch_threads": str(torch.get_num_threads()),
        "max_jobs": str(job_manager().max_running),
    }


def format_duration(seconds: float | None) -> str:
    """``75.2`` -> ``"1m 15s"``; ``None``/NaN -> ``"–"``."""
    if seconds is None or seconds != seconds or seconds < 0:
        return "–"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def job_line(job: JobSnapshot) -> str:
    """One line describing a job: name and progress, queue position or final status."""
    if job.status == "queued":
        detail = f"queued #{job.queue_position}" if job.queue_position else "queued"
    elif job.status in ("running", "paused"):
        detail = f"{100 * job.progress:.0f}%"
    else:
        detail = job.status
    return f"{job.display_name} · {detail}"


def render_sidebar() -> None:
    """The session's jobs in the sidebar (refreshing every 2 s while one is active)."""
    manager = job_manager()
    owner = owner_id()
    jobs = manager.jobs_for(owner)
    active = any(job.active for job in jobs)

    def jobs_panel() -> None:
        current = manager.jobs_for(owner)
        st.markdown("**Your jobs**")
        if not current:
            st.caption("No jobs yet. Start one on the Train page.")
        for job in current[:12]:
            st.page_link(
                TRAIN_PAGE, label=job_line(job), icon=STATUS_ICONS.get(job.status),
                query_params={"job": job.job_id, "sid": owner},
            )
        counts = manager.counts()
        st.caption(
            f"Server: {counts['running']} running, {counts['queued']} queued "
            f"(at most {counts['max_running']} at once)"
        )
        if active and not any(job.active for job in current):
            st.rerun()

    with st.sidebar:
        st.fragment(jobs_panel, run_every=2.0 if active else None)()
