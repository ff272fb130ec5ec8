"""Writes a run's files over and over until it is killed (for the kill -9 crash-safety test).

``python tests/e2e/crash_writer.py RUNS_DIR`` reuses the run in RUNS_DIR (or creates one) and, in
a loop, rewrites its ``metrics.json`` (a few MB, so a kill often lands mid-write), its
``model.safetensors`` (an lc_cnn, 5.5 MB) and its ``status.json``, through the same
:class:`fa_core.runs.RunStore` methods the app's jobs use. It prints ``cycle N`` after each full
cycle, counting on from the cycle the last life left in ``status.json``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from fa_core.models import build_model  # noqa: E402
from fa_core.runs import RunStore  # noqa: E402


def main(root: str) -> None:
    store = RunStore(root)
    runs = store.list_runs()
    run_id = runs[0].run_id if runs else store.create({"model": "lc_cnn", "rule": "fa"}, name="crash", status="running")
    model = build_model("lc_cnn", "mnist", "fa", seed=0)
    curve = [i * 0.001 for i in range(250_000)]
    status_file = Path(root) / run_id / "status.json"
    cycle = json.loads(status_file.read_text()).get("cycle", 0) if status_file.exists() else 0
    while True:
        cycle += 1
        store.write_metrics(run_id, {"cycle": cycle, "curves": {"loss": {"steps": curve, "values": curve}}})
        store.save_model(run_id, model, {"cycle": cycle})
        store.update_status(run_id, status="running", cycle=cycle)
        print(f"cycle {cycle}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
