"""Security checks against the live server: where it listens, and markup in a user-typed name."""

from __future__ import annotations

import pytest

from .ui import open_train, query_param, quick_run_smallest, set_number, set_text, wait_for

pytestmark = pytest.mark.e2e

LOOPBACK = {"0100007F", "00000000000000000000000001000000"}  # 127.0.0.1 and ::1 as /proc/net writes them


def listening_addresses(port: int) -> list[str]:
    """Local addresses (hex, as in ``/proc/net/tcp{,6}``) of the sockets listening on ``port``."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = open(table, encoding="ascii").read().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            fields = line.split()
            address, hex_port = fields[1].split(":")
            if fields[3] == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                found.append(address)
    return found


def test_the_server_listens_on_loopback_only(server) -> None:
    addresses = listening_addresses(server.port)
    assert addresses, f"nothing listens on port {server.port}"
    assert set(addresses) <= LOOPBACK, f"listening beyond this machine: {addresses}"


def test_markup_in_a_run_name_is_shown_as_text_not_run(server, page) -> None:
    name = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>'
    open_train(page, server.url)
    quick_run_smallest(page)
    set_number(page, "Epochs", 1)
    set_text(page, "Run name (optional)", name)
    page.locator(".st-key-start button").click()
    job = wait_for(lambda: query_param(page, "job"), 60, message="the job id")
    page.locator('[data-testid="stSidebar"] a[href*="job="]').first.wait_for()
    page.wait_for_timeout(1500)
    assert page.evaluate("() => window.__pwned") is None
    assert page.locator('img[src="x"]').count() == 0 and page.locator("script:text('__pwned')").count() == 0
    # The one-epoch run ends on its own (often before a Stop click could land); wait for that so
    # the next test finds the job slot free.
    page.locator(".st-key-stop button").wait_for(state="detached", timeout=120_000)
    wait_for(lambda: (server.runs_dir / job / "status.json").is_file(), 30, message="the run on disk")
