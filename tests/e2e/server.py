"""A live ``streamlit run app.py`` for the real-browser tests and the load probe.

No pytest here, so ``load_probe.py`` can use it as a plain script. The server runs in its own
process group on a free local port, with its run and checkpoint folders wherever the caller
says, its output in a log file, and no file watcher (the tests must not rerun on file edits).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
]
"""Debian's Chromium, driven by Playwright (never ``playwright install``)."""


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def read_rss_kib(pid: int) -> int:
    """Resident set size of ``pid`` in KiB, from ``/proc/<pid>/status`` (no psutil needed)."""
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


class StreamlitServer:
    """``python -m streamlit run app.py`` on a free port; start, stop, kill -9, read the log.

    ``runs_dir`` and ``checkpoints_dir`` become ``FA_LAB_RUNS_DIR`` / ``FA_LAB_CHECKPOINTS_DIR``;
    ``env`` adds or overrides variables (e.g. ``FA_LAB_MAX_JOBS``). Without ``address`` the
    server binds where ``.streamlit/config.toml`` says (localhost).
    """

    def __init__(
        self,
        runs_dir: Path,
        checkpoints_dir: Path,
        log_path: Path,
        env: dict[str, str] | None = None,
        port: int | None = None,
    ) -> None:
        self.runs_dir = Path(runs_dir)
        self.checkpoints_dir = Path(checkpoints_dir)
        self.log_path = Path(log_path)
        self.extra_env = dict(env or {})
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://localhost:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None, "the server is not started"
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, timeout: float = 90.0) -> "StreamlitServer":
        """Start the server and wait until ``/_stcore/health`` answers ``ok``."""
        if self.alive():
            raise RuntimeError("the server is already running")
        env = dict(os.environ)
        env.update(
            {
                "FA_LAB_RUNS_DIR": str(self.runs_dir),
                "FA_LAB_CHECKPOINTS_DIR": str(self.checkpoints_dir),
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(self.extra_env)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable, "-m", "streamlit", "run", "app.py",
            "--server.port", str(self.port),
            "--server.headless", "true",
            "--server.fileWatcherType", "none",
            "--server.runOnSave", "false",
            "--browser.gatherUsageStats", "false",
        ]
        with self.log_path.open("ab") as log:
            log.write(f"\n===== {time.strftime('%H:%M:%S')} start: {' '.join(command)}\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        health = f"http://127.0.0.1:{self.port}/_stcore/health"
        while True:
            if not self.alive():
                raise RuntimeError(f"streamlit exited with {self.process.returncode}:\n{self.log_text()[-4000:]}")
            try:
                with urllib.request.urlopen(health, timeout=2) as response:
                    if response.status == 200 and response.read().strip() == b"ok":
                        return self
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"streamlit did not become healthy in {timeout:.0f} s:\n{self.log_text()[-4000:]}")
            time.sleep(0.25)

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM the server (its process group), then SIGKILL if it does not exit."""
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill9()

    def kill9(self) -> None:
        """``kill -9`` the server: no handler runs, nothing is flushed or cleaned up."""
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(15)

    def rss_kib(self) -> int:
        return read_rss_kib(self.pid)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""
