"""fa_core.uploads: uploads kept in a private, bounded folder, never through a planted symlink."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fa_core.uploads import UploadError, stash_upload, uploads_dir


def test_same_content_same_private_file(tmp_path: Path) -> None:
    folder = tmp_path / "up"
    first = stash_upload(b"abc", ".safetensors", folder)
    again = stash_upload(b"abc", ".safetensors", folder)
    assert first == again and first.read_bytes() == b"abc" and first.parent == folder
    assert folder.stat().st_mode & 0o777 == 0o700
    assert stash_upload(b"abd", ".safetensors", folder) != first


def test_folder_keeps_at_most_keep_files(tmp_path: Path) -> None:
    folder = tmp_path / "up"
    paths = []
    for i in range(6):
        paths.append(stash_upload(f"file {i}".encode(), ".bin", folder, keep=3))
        os.utime(paths[-1], (1_000 + i, 1_000 + i))
    kept = sorted(p.name for p in folder.iterdir())
    assert kept == sorted(p.name for p in paths[-3:])


@pytest.mark.parametrize("data,suffix,fragment", [(b"", ".bin", "empty"), (b"x" * 11, ".bin", "limit"),
                                                  (b"x", "/../x", "suffix")])
def test_bad_uploads_are_refused(tmp_path: Path, data: bytes, suffix: str, fragment: str) -> None:
    with pytest.raises(UploadError, match=fragment):
        stash_upload(data, suffix, tmp_path / "up", max_bytes=10)


def test_a_planted_symlink_is_replaced_not_followed(tmp_path: Path) -> None:
    import hashlib

    folder = tmp_path / "up"
    folder.mkdir()
    victim = tmp_path / "victim"
    (folder / f"{hashlib.sha256(b'data').hexdigest()[:32]}.bin").symlink_to(victim)
    path = stash_upload(b"data", ".bin", folder)
    assert not victim.exists() and not path.is_symlink() and path.read_bytes() == b"data"


def test_uploads_dir_follows_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FA_LAB_UPLOADS_DIR", str(tmp_path / "a"))
    assert uploads_dir() == tmp_path / "a"
    monkeypatch.delenv("FA_LAB_UPLOADS_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert uploads_dir() == tmp_path / "cache" / "fa-lab" / "uploads"
