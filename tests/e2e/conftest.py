"""Fixtures for the real-browser tests: a live FA Lab server, Debian's Chromium, failure artifacts.

* ``server``: one ``streamlit run app.py`` for the whole session on a free local port, with its
  run and checkpoint folders in a temporary directory and the real MNIST from the data folder
  (CI fetches it before the tests; the runs use the Train page's "quick run" fraction).
* ``new_server``: a factory for tests that need their own server (kill -9 and restart, a job
  cap); every server it makes is stopped at the end of the test.
* ``browser`` (session) and ``page`` / ``new_page`` (per test): Playwright driving
  ``/usr/bin/chromium`` (install it with ``apt-get install -y chromium``; never
  ``playwright install``).
* On failure, every page the test opened is screenshotted and the log of every server it used
  is copied into ``test-artifacts/<test name>/`` (gitignored).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .server import CHROMIUM, CHROMIUM_ARGS, REPO, StreamlitServer

ARTIFACTS = REPO / "test-artifacts"
DEFAULT_TIMEOUT_MS = 60_000
"""Playwright's wait for any element: generous, since the CI machine may have two busy cores."""

_pages: list = []
_servers: list[StreamlitServer] = []


def _artifact_dir(item: pytest.Item) -> Path:
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", item.nodeid.split("::", 1)[-1])[:120]
    return ARTIFACTS / name


def _save_artifacts(item: pytest.Item) -> None:
    folder = _artifact_dir(item)
    folder.mkdir(parents=True, exist_ok=True)
    for i, page in enumerate(list(_pages)):
        try:
            if not page.is_closed():
                page.screenshot(path=str(folder / f"page{i}.png"), full_page=True, timeout=15_000)
                (folder / f"page{i}.url.txt").write_text(page.url + "\n", encoding="utf-8")
        except Exception as err:  # noqa: BLE001 - an artifact must never hide the real failure
            (folder / f"page{i}.error.txt").write_text(repr(err), encoding="utf-8")
    for i, server in enumerate(list(_servers)):
        if server.log_path.is_file():
            shutil.copyfile(server.log_path, folder / f"server{i}-{server.log_path.name}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.failed and report.when in ("setup", "call") and (_pages or _servers):
        _save_artifacts(item)


@pytest.fixture(autouse=True)
def _track_artifacts(request: pytest.FixtureRequest) -> Iterator[None]:
    """Start each test with empty page/server lists (what a failure's artifacts are made of)."""
    _pages.clear()
    _servers.clear()
    yield
    _pages.clear()
    _servers.clear()


@pytest.fixture(scope="session")
def e2e_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("e2e")


@pytest.fixture(scope="session")
def _session_server(e2e_root: Path) -> Iterator[StreamlitServer]:
    server = StreamlitServer(
        runs_dir=e2e_root / "runs",
        checkpoints_dir=e2e_root / "checkpoints",
        log_path=e2e_root / "server.log",
        env={"FA_LAB_MAX_JOBS": "2"},
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture
def server(_session_server: StreamlitServer) -> StreamlitServer:
    """The shared live server (its log goes into the artifacts if the test fails)."""
    if not _session_server.alive():
        raise RuntimeError(f"the shared streamlit server died:\n{_session_server.log_text()[-4000:]}")
    _servers.append(_session_server)
    return _session_server


@pytest.fixture
def new_server(tmp_path: Path) -> Iterator[Callable[..., StreamlitServer]]:
    """``new_server(runs_dir=None, env=None, start=True)``: a server of this test's own."""
    made: list[StreamlitServer] = []

    def make(runs_dir: Path | None = None, env: dict[str, str] | None = None, start: bool = True) -> StreamlitServer:
        index = len(made)
        server = StreamlitServer(
            runs_dir=runs_dir or tmp_path / "runs",
            checkpoints_dir=tmp_path / "checkpoints",
            log_path=tmp_path / f"server{index}.log",
            env=env,
        )
        made.append(server)
        _servers.append(server)
        if start:
            server.start()
        return server

    yield make
    for server in made:
        server.stop()


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).is_file():
        raise RuntimeError(f"{CHROMIUM} is missing: install Debian's Chromium (apt-get install -y chromium)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def new_page(browser) -> Iterator[Callable[[], object]]:
    """``new_page()``: a page in a fresh browser context (its own cookies: a separate session)."""
    contexts = []

    def make():
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        context.set_default_timeout(DEFAULT_TIMEOUT_MS)
        contexts.append(context)
        page = context.new_page()
        _pages.append(page)
        return page

    yield make
    for context in contexts:
        context.close()


@pytest.fixture
def page(new_page):
    return new_page()
