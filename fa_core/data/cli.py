"""The ``data`` command line: ``data fetch NAME|all [--data-dir DIR] [--force]`` and
``data status [--data-dir DIR] [--verify]``.

:func:`register` adds the command to an ``argparse`` sub-parser set; each sub-command stores its
handler as ``args.handler``, which takes the parsed arguments and returns the exit status
(0 on success, 2 with the :class:`DatasetError` message on stderr on failure).
"""

import argparse
import sys
import time
from pathlib import Path
from types import TracebackType

from tqdm import tqdm

from .errors import DatasetError
from .fetch import dataset_status, fetch_dataset, resolve_data_dir, verify_dataset
from .registry import DATASETS

EXIT_FAILURE = 2


class TqdmProgress:
    """A :data:`~fa_core.data.progress.ProgressFn` drawing one tqdm bar per stage."""

    def __init__(self) -> None:
        self._stage: str | None = None
        self._bar: tqdm | None = None

    def __call__(self, stage: str, done: int, total: int) -> None:
        if stage != self._stage or self._bar is None:
            self.close()
            self._stage = stage
            self._bar = tqdm(desc=stage, total=total or None, unit_scale=total > 10_000)
        if total and self._bar.total != total:
            self._bar.total = total
        self._bar.update(done - self._bar.n)

    def close(self) -> None:
        """Finish the current bar, if any."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> "TqdmProgress":
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def register(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add the ``data`` command (with ``fetch`` and ``status``) to ``subparsers``."""
    data = subparsers.add_parser("data", help="download, verify and inspect the datasets")
    commands = data.add_subparsers(dest="data_command", required=True)

    fetch = commands.add_parser("fetch", help="download, convert and verify datasets")
    fetch.add_argument("name", choices=[*DATASETS, "all"], help="dataset to fetch, or all")
    fetch.add_argument(
        "--data-dir", type=Path, help="data folder (default: FA_LAB_DATA_DIR or ./data)"
    )
    fetch.add_argument("--force", action="store_true", help="rebuild even a valid cache")
    fetch.set_defaults(handler=run_fetch)

    status = commands.add_parser("status", help="show which datasets are ready")
    status.add_argument(
        "--data-dir", type=Path, help="data folder (default: FA_LAB_DATA_DIR or ./data)"
    )
    status.add_argument("--verify", action="store_true", help="also hash the cached arrays")
    status.set_defaults(handler=run_status)


def run_fetch(args: argparse.Namespace) -> int:
    """Handler of ``data fetch``: fetch each requested dataset, report time and folder."""
    names = list(DATASETS) if args.name == "all" else [args.name]
    failed = False
    for name in names:
        start = time.perf_counter()
        try:
            with TqdmProgress() as progress:
                folder = fetch_dataset(name, args.data_dir, progress, force=args.force)
        except DatasetError as err:
            print(f"error: {name}: {err}", file=sys.stderr)
            failed = True
            continue
        print(f"{name}: ready in {folder} ({time.perf_counter() - start:.1f} s)")
    return EXIT_FAILURE if failed else 0


def run_status(args: argparse.Namespace) -> int:
    """Handler of ``data status``: one line per dataset; with ``--verify`` a full check."""
    root = resolve_data_dir(args.data_dir)
    print(f"data folder: {root}")
    failed = False
    for name in DATASETS:
        status = dataset_status(name, root)
        line = f"{name:<14} {status}"
        if args.verify and status != "missing":
            try:
                verify_dataset(name, root)
                line += ", verified"
            except DatasetError as err:
                line += f", verification failed: {err}"
                failed = True
        print(line)
    return EXIT_FAILURE if failed else 0
