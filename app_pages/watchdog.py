"""A watchdog for the Train page's live view: reload the page when it stops updating.

Under heavy load (``docs/reliability.md``), a page's live view was seen to stop re-rendering while
its job ran on: the browser no longer asked for the fragments' timed reruns. A reload starts a new
Streamlit session, which reattaches to the job through ``?job=&sid=`` and shows it live again.

The watchdog is a tiny script in an ``st.iframe`` of HTML (same origin as the app, so it can
read the page; its own window, so its timers survive whatever stops the page's). Every
2 s it reads the text of the page's progress bars, which changes on every live re-render while a job
runs (the elapsed time is part of it). When some bar says ``running`` and the text has not changed
for ``stale_s`` seconds, it reloads the page, at most ``MAX_RELOADS`` times in ``RELOAD_WINDOW_S``
(remembered in ``sessionStorage``), so a server that is merely slow is not reloaded in a loop.

``FA_LAB_WATCHDOG_S`` sets ``stale_s`` (default 60; 0 turns the watchdog off).
"""

from __future__ import annotations

import json
import os

import streamlit as st

DEFAULT_STALE_S = 60.0
MAX_RELOADS = 3
RELOAD_WINDOW_S = 600
STORAGE_KEY = "fa-lab-live-view-reloads"

_SCRIPT = """<script>
(() => {
  const cfg = %(config)s;
  const doc = window.parent.document;
  let last = null;
  let since = Date.now();
  const read = () => Array.from(doc.querySelectorAll('[data-testid="stProgress"]'))
    .map((el) => el.innerText).join("\\n");
  const reloadAllowed = () => {
    const now = Date.now();
    let log = [];
    try { log = JSON.parse(window.parent.sessionStorage.getItem(cfg.key) || "[]"); } catch (e) { log = []; }
    log = log.filter((t) => now - t < cfg.windowMs);
    if (log.length >= cfg.maxReloads) return false;
    log.push(now);
    window.parent.sessionStorage.setItem(cfg.key, JSON.stringify(log));
    return true;
  };
  const tick = () => {
    const text = read();
    if (text !== last) {
      last = text;
      since = Date.now();
    } else if (/\\brunning\\b/.test(text) && Date.now() - since > cfg.staleMs && reloadAllowed()) {
      window.parent.location.reload();
      return;
    }
    setTimeout(tick, 2000);
  };
  setTimeout(tick, 2000);
})();
</script>"""


def stale_seconds() -> float:
    """``$FA_LAB_WATCHDOG_S`` as seconds (default 60; 0 or less: off); a bad value is an error."""
    raw = os.environ.get("FA_LAB_WATCHDOG_S", "").strip()
    if not raw:
        return DEFAULT_STALE_S
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"FA_LAB_WATCHDOG_S must be a number of seconds, got {raw!r}") from None


def watchdog_html(stale_s: float) -> str:
    """The watchdog's HTML (a script) for a given staleness limit in seconds."""
    if not stale_s > 0:
        raise ValueError(f"the staleness limit must be > 0 seconds, got {stale_s!r}")
    config = {"staleMs": int(stale_s * 1000), "maxReloads": MAX_RELOADS, "windowMs": RELOAD_WINDOW_S * 1000,
              "key": STORAGE_KEY}
    return _SCRIPT % {"config": json.dumps(config)}


def live_view_watchdog() -> None:
    """Place the watchdog on the page (outside any fragment, so it is not re-created every tick)."""
    try:
        stale_s = stale_seconds()
    except ValueError as err:
        st.warning(str(err))
        return
    if stale_s > 0:
        st.iframe(watchdog_html(stale_s), height="content")
