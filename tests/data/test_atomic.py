from pathlib import Path

import pytest

from fa_core.data.atomic import atomic_write


def test_replaces_only_on_success(tmp_path: Path) -> None:
    target = tmp_path / "file.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_write(target) as file:
        file.write(b"partial")
        raise RuntimeError("interrupted")
    assert target.read_bytes() == b"old"
    with atomic_write(target) as file:
        file.write(b"new")
    assert target.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["file.bin"]
