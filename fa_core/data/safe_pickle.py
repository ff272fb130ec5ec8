"""A restricted unpickler for pickles that hold only numpy arrays (and tuples of them).

Only the globals numpy needs to rebuild plain arrays are resolved; any other global (``os.system``,
``builtins.eval``, ...) is refused, so even a tampered pickle cannot run code. This is a second
line of defence: the archives are SHA-256 verified before they are opened at all.
"""

import io
import pickle
from typing import IO, Any

import numpy as np

# The array reconstructor, wherever this numpy version keeps it (numpy._core in numpy >= 2).
_RECONSTRUCT = np.ndarray.__reduce__(np.empty(0))[0]

_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,  # pickles written by numpy < 2
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,  # pickles written by numpy >= 2
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class ForbiddenGlobalError(pickle.UnpicklingError):
    """The pickle referenced a global outside the allow-list."""


class NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the numpy array globals in ``_ALLOWED``."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError as err:
            raise ForbiddenGlobalError(
                f"Refusing to unpickle global {module}.{name}: only numpy arrays are allowed."
            ) from err


def load_arrays_pickle(file: IO[bytes] | io.BufferedIOBase, encoding: str = "ASCII") -> Any:
    """Unpickle ``file`` with :class:`NumpyOnlyUnpickler`.

    ``encoding="latin1"`` is needed for pickles written by Python 2.

    Raises:
        pickle.UnpicklingError: the pickle is malformed or references a forbidden global
            (:class:`ForbiddenGlobalError`).
    """
    return NumpyOnlyUnpickler(file, encoding=encoding).load()
