from pathlib import Path

import pytest

from fa_core.data import DatasetError
from fa_core.data.download import download_verified

from .helpers import sha256_of


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "source.bin"
    path.write_bytes(bytes(range(256)) * 10_000)
    return path


def test_downloads_verifies_and_reports_progress(tmp_path: Path, source: Path) -> None:
    calls: list[tuple[str, int, int]] = []
    dest = tmp_path / "downloads" / "file.bin"
    result = download_verified(source.as_uri(), sha256_of(source), dest, lambda *a: calls.append(a))
    assert result == dest
    assert dest.read_bytes() == source.read_bytes()
    assert calls[-1] == ("Downloading file.bin", 2_560_000, 2_560_000)
    assert [p.name for p in dest.parent.iterdir()] == ["file.bin"]


def test_digest_mismatch_leaves_nothing_behind(tmp_path: Path, source: Path) -> None:
    dest = tmp_path / "downloads" / "file.bin"
    with pytest.raises(DatasetError, match="deleted unopened"):
        download_verified(source.as_uri(), "0" * 64, dest)
    assert list(dest.parent.iterdir()) == []


def test_reuses_a_matching_file_without_downloading(tmp_path: Path, source: Path) -> None:
    dest = tmp_path / "file.bin"
    dest.write_bytes(source.read_bytes())
    assert download_verified("file:///nonexistent/url", sha256_of(source), dest) == dest


def test_replaces_a_stale_file(tmp_path: Path, source: Path) -> None:
    dest = tmp_path / "file.bin"
    dest.write_bytes(b"truncated")
    download_verified(source.as_uri(), sha256_of(source), dest)
    assert dest.read_bytes() == source.read_bytes()


def test_unreachable_url_is_a_dataset_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="Could not download .*downloads/file.bin"):
        download_verified((tmp_path / "absent.bin").as_uri(), "0" * 64, tmp_path / "file.bin")
    with pytest.raises(DatasetError, match="Could not download"):
        download_verified("nonsense://x", "0" * 64, tmp_path / "file.bin")
