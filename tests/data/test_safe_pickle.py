import io
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from fa_core.data.safe_pickle import ForbiddenGlobalError, NumpyOnlyUnpickler, load_arrays_pickle


class RunsShell:
    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, (self.command,)


def test_loads_tuples_of_arrays() -> None:
    payload = ((np.arange(6, dtype=np.float32).reshape(2, 3), np.array([1, 2])), (np.zeros(0),))
    loaded = load_arrays_pickle(io.BytesIO(pickle.dumps(payload, protocol=4)))
    np.testing.assert_array_equal(loaded[0][0], payload[0][0])
    np.testing.assert_array_equal(loaded[0][1], payload[0][1])
    assert loaded[1][0].shape == (0,)


def test_accepts_the_numpy_1_reconstructor_name() -> None:
    unpickler = NumpyOnlyUnpickler(io.BytesIO(b""))
    assert unpickler.find_class("numpy.core.multiarray", "_reconstruct") is (
        unpickler.find_class("numpy._core.multiarray", "_reconstruct")
    )


def test_refuses_code_execution(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    malicious = pickle.dumps((np.zeros(2), RunsShell(f"touch {marker}")), protocol=4)
    with pytest.raises(ForbiddenGlobalError, match="system"):
        load_arrays_pickle(io.BytesIO(malicious))
    assert not marker.exists()


@pytest.mark.parametrize(
    "module, name", [("builtins", "eval"), ("numpy", "load"), ("os", "system")]
)
def test_refuses_every_other_global(module: str, name: str) -> None:
    with pytest.raises(ForbiddenGlobalError):
        NumpyOnlyUnpickler(io.BytesIO(b"")).find_class(module, name)
