"""Bad input, through the app (AppTest): each case keeps the app running and says what is wrong.

The engine-level checks live beside the engine (``tests/test_checkpoints.py``,
``tests/test_training.py``, ``tests/test_preprocess.py``, ``tests/data/``); here each bad input
goes in where a user would put it in (an upload, a widget, the URL, a damaged data folder) and
the page must show an ``st.error``/``st.warning`` instead of an exception.

* Uploads on the Draw page: not an image, a truncated PNG, a decompression bomb, a 20 MB file,
  a 1x1 image, a blank transparent image, and a transparent-background drawing (which works).
* Checkpoints uploaded on the Inspect page: not safetensors, a pickle (never unpickled), shapes
  or metadata that do not match, a file that ends early.
* Config on the Train page: values outside the rules are refused by the widgets or by
  :meth:`TrainConfig.validate` with a message.
* Training that diverges: the page and the run's ``status.json`` say so.
* URL parameters (``?job=``, ``?sid=``) that try to reach outside the run store or another session.
* A corrupted or missing data cache: detected by checksum and re-fetched, or a clear message.
"""

from __future__ import annotations

import dataclasses
import io
import json
import pickle
import re
import struct
import sys
import tempfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import streamlit as st
import torch
from PIL import Image, ImageDraw
from streamlit.testing.v1 import AppTest

HERE = Path(__file__).resolve().parent
APP = HERE.parents[1] / "app.py"
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

DRAW = "app_pages/draw.py"
INSPECT = "app_pages/inspect_page.py"
TRAIN = "app_pages/train.py"
HOME = "app_pages/home.py"


@pytest.fixture
def app_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("FA_LAB_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("FA_LAB_CHECKPOINTS_DIR", str(tmp_path / "user"))
    monkeypatch.setenv("FA_LAB_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("FA_LAB_DATASET_LOADER", "synthetic_loader:load")
    monkeypatch.setenv("FA_LAB_MAX_JOBS", "1")
    monkeypatch.setenv("FA_LAB_UPLOADS_DIR", str(tmp_path / "uploads"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))  # gettempdir() caches its answer
    threads = torch.get_num_threads()
    st.cache_resource.clear()
    st.cache_data.clear()
    yield tmp_path
    from app_pages.shared import job_manager

    job_manager().shutdown(wait=True)
    st.cache_resource.clear()
    st.cache_data.clear()
    torch.set_num_threads(threads)


def open_page(page: str, query: dict[str, str] | None = None) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=60)
    if query:
        at.query_params.update(query)
    at.run()
    assert not at.exception, at.exception
    at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


def messages(at: AppTest) -> str:
    parts = [e.value for e in at.error] + [w.value for w in at.warning] + [i.value for i in at.info]
    parts += [m.value for m in at.markdown] + [c.value for c in at.caption]
    return "\n".join(str(p) for p in parts)


def png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def drawn_three(background=(0, 0, 0, 0), size: int = 280) -> Image.Image:
    img = Image.new("RGBA", (size, size), background)
    points = [(70, 60), (200, 40), (210, 120), (130, 150), (220, 190), (200, 250), (60, 240)]
    ImageDraw.Draw(img).line(points, fill=(0, 0, 0, 255), width=22, joint="curve")
    return img


def png_header_only(width: int, height: int) -> bytes:
    """A valid PNG signature and IHDR claiming ``width`` x ``height``, with one tiny IDAT."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


# ---- uploads (Draw page) ----------------------------------------------------------------------


def upload_on_draw(name: str, data: bytes, mime: str = "image/png") -> AppTest:
    at = open_page(DRAW)
    at.segmented_control(key="draw_source").set_value("Upload a photo").run()
    at.file_uploader(key="draw_upload").set_value((name, data, mime)).run()
    assert not at.exception, at.exception
    return at


GOOD_PNG = png_bytes(drawn_three(background=(255, 255, 255, 255)))


@pytest.mark.parametrize(
    "name,data,fragment",
    [
        ("notes.png", b"these are my notes, not a picture\n" * 20, "not an image"),
        ("cut.png", GOOD_PNG[: len(GOOD_PNG) // 2], "truncated or corrupt"),
        ("bomb.png", png_header_only(60_000, 60_000), "too large to decode safely"),
        ("wide.png", png_header_only(7_000, 7_000), "megapixels"),
        ("huge.png", GOOD_PNG + b"\x00" * (20 * 1024 * 1024), "MB"),
        ("empty.png", b"", "empty"),
    ],
    ids=["not-an-image", "truncated-png", "decompression-bomb", "49-megapixels", "20-MB", "empty"],
)
def test_bad_uploads_show_an_error_and_the_page_keeps_working(app_env, name: str, data: bytes, fragment: str) -> None:
    at = upload_on_draw(name, data)
    errors = [e.value for e in at.error]
    assert errors and f"Could not use {name}" in errors[0] and fragment in errors[0], errors
    assert "models say" not in messages(at)
    # the page still works: a good image after the bad one gets an answer
    at.file_uploader(key="draw_upload").set_value(("three.png", GOOD_PNG, "image/png")).run()
    assert not at.exception, at.exception
    assert not at.error and "models say" in messages(at)


@pytest.mark.parametrize(
    "image",
    [Image.new("RGB", (1, 1), (0, 0, 0)), Image.new("RGBA", (1, 1), (255, 255, 255, 255)),
     Image.new("RGBA", (300, 300), (0, 0, 0, 0))],
    ids=["1x1-black", "1x1-white", "blank-transparent"],
)
def test_images_without_a_digit_are_handled(app_env, image: Image.Image) -> None:
    at = upload_on_draw("tiny.png", png_bytes(image))
    assert "models say" not in messages(at)
    assert at.info or at.error or at.warning  # the page says something, it does not go blank


def test_transparent_background_drawing_is_read_like_the_canvas(app_env) -> None:
    at = upload_on_draw("three.png", png_bytes(drawn_three()))
    assert not at.error, [e.value for e in at.error]
    assert "models say" in messages(at)


# ---- checkpoints (Inspect page upload) ----------------------------------------------------------


class _Boom:
    """Unpickling this creates ``marker``: proof that a file was unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        import os

        return (os.makedirs, (self.marker,))


def _mlp_tensors() -> dict[str, torch.Tensor]:
    from fa_core.models import build_model

    return {k: v.contiguous() for k, v in build_model("mlp", "mnist", "fa", seed=0).state_dict().items()}


def _safetensors(tensors: dict[str, torch.Tensor], meta: dict | None) -> bytes:
    from safetensors.torch import save

    return save(tensors, metadata={"fa_lab": json.dumps(meta)} if meta is not None else None)


def _valid_checkpoint() -> bytes:
    from fa_core.models import build_model

    meta = build_model("mlp", "mnist", "fa", seed=0).describe()
    return _safetensors(_mlp_tensors(), {**meta, "format_version": 1})


def bad_checkpoints(marker: Path) -> dict[str, tuple[bytes, str]]:
    good = _valid_checkpoint()
    wrong_shape = _mlp_tensors()
    first = next(iter(wrong_shape))
    wrong_shape[first] = torch.zeros(3, 3)
    from fa_core.models import build_model

    meta = build_model("mlp", "mnist", "fa", seed=0).describe()
    return {
        "text": (b"not a checkpoint at all" * 10, "not a valid safetensors"),
        "pickle": (pickle.dumps(_Boom(marker)), "pickle"),
        "torch-save-zip": (b"PK\x03\x04" + b"\x00" * 200, "zip"),
        "wrong-shape": (_safetensors(wrong_shape, meta), "has shape"),
        "metadata-names-no-model": (_safetensors(_mlp_tensors(), {"model": "resnet", "dataset": "mnist", "rule": "bp"}), "no buildable model"),
        "no-fa-lab-metadata": (_safetensors(_mlp_tensors(), None), "not an FA Lab checkpoint"),
        "ends-early": (good[: len(good) - 1000], "truncated|not fully covered"),
    }


@pytest.mark.parametrize(
    "case", ["text", "pickle", "torch-save-zip", "wrong-shape", "metadata-names-no-model", "no-fa-lab-metadata", "ends-early"]
)
def test_bad_checkpoint_uploads_are_refused_with_a_reason(app_env, case: str) -> None:
    marker = app_env / "unpickled"
    data, fragment = bad_checkpoints(marker)[case]
    at = open_page(INSPECT)
    at.radio(key="insp_source").set_value("upload").run()
    at.file_uploader(key="insp_upload").set_value((f"{case}.safetensors", data, "application/octet-stream")).run()
    assert not at.exception, at.exception
    errors = [e.value for e in at.error]
    assert errors and "Cannot load this checkpoint" in errors[0] and re.search(fragment, errors[0]), errors
    assert not marker.exists(), "the pickle was unpickled"
    # a good checkpoint afterwards loads on the same page
    at.file_uploader(key="insp_upload").set_value(("good.safetensors", _valid_checkpoint(), "application/octet-stream")).run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]


def test_checkpoint_upload_leaves_nothing_in_the_shared_temp_folder(app_env) -> None:
    """An uploaded checkpoint must not be left in the system temp folder (world-readable, never
    cleaned up, one file per upload: a disk filler): it goes to the private uploads folder,
    which keeps a bounded number of files."""
    at = open_page(INSPECT)
    at.radio(key="insp_source").set_value("upload").run()
    at.file_uploader(key="insp_upload").set_value(("good.safetensors", _valid_checkpoint(), "application/octet-stream")).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert sorted(p.name for p in (app_env / "tmp").iterdir()) == []
    uploads = app_env / "uploads"
    assert len(list(uploads.iterdir())) == 1 and uploads.stat().st_mode & 0o077 == 0


def test_checkpoint_upload_does_not_follow_a_planted_symlink(app_env) -> None:
    """Someone plants the upload's future name as a symlink; keeping the upload must replace
    the link, not write through it."""
    import hashlib

    data = _valid_checkpoint()
    victim = app_env / "victim.txt"
    uploads = app_env / "uploads"
    uploads.mkdir(mode=0o700)
    planted = uploads / f"{hashlib.sha256(data).hexdigest()[:32]}.safetensors"
    planted.symlink_to(victim)
    at = open_page(INSPECT)
    at.radio(key="insp_source").set_value("upload").run()
    at.file_uploader(key="insp_upload").set_value(("good.safetensors", data, "application/octet-stream")).run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert not victim.exists(), "the upload was written through a planted symlink"
    assert not planted.is_symlink() and planted.read_bytes() == data


def test_checkpoint_whose_header_length_starts_like_a_pickle_loads(tmp_path: Path) -> None:
    """Regression: a valid safetensors file whose 8-byte header length begins with 0x80 (the
    byte that starts a pickle) was refused as "a Python pickle". Header lengths are multiples of
    8, so about one checkpoint in 32 was hit (found by tests/e2e/test_faults.py)."""
    from fa_core.checkpoints import load_checkpoint, save_checkpoint
    from fa_core.models import build_model

    model = build_model("mlp", "mnist", "fa", seed=0)
    for pad in range(400):
        path = save_checkpoint(model, tmp_path / "m.safetensors", {"pad": "x" * pad})
        head = path.read_bytes()[:2]
        if head[0] == 0x80 and 2 <= head[1] <= 5:  # exactly a pickle's first two bytes
            break
    else:
        pytest.fail("no padding gave a header length starting with 0x80 0x02..0x05")
    loaded, meta = load_checkpoint(path)
    assert meta["pad"] == "x" * pad
    assert torch.equal(loaded.state_dict()["fc1.weight"], model.state_dict()["fc1.weight"])


# ---- config (Train page) ------------------------------------------------------------------------


def test_train_widgets_refuse_out_of_range_values(app_env) -> None:
    at = open_page(TRAIN)
    for key, bad, kept in [("cfg_lr_mlp", -1.0, 0.01), ("cfg_epochs_mlp", 0, 10), ("cfg_batch_mlp", 0, 32),
                           ("cfg_batch_mlp", 100_000, 32)]:
        at.number_input(key=key).set_value(bad).run()
        assert not at.exception, at.exception
        assert at.number_input(key=key).value == pytest.approx(kept), key
    at.selectbox(key="cfg_rule").set_value("fa_ex").run()
    p = at.slider(key="cfg_p")
    assert (p.min, p.max) == (0, 100)
    at.selectbox(key="cfg_model").set_value("dae").run()
    sigma = at.slider(key="cfg_sigma")
    assert sigma.min == 0
    assert not at.exception


@pytest.mark.parametrize(
    "key,value,fragment",
    [("cfg_lr_mlp", 0.0, "learning rate must be a finite number > 0")],
)
def test_config_the_widgets_allow_but_validation_refuses(app_env, key: str, value: float, fragment: str) -> None:
    at = open_page(TRAIN)
    at.number_input(key=key).set_value(value)
    at.button(key="start").click().run()
    assert not at.exception, at.exception
    assert any(fragment in e.value for e in at.error), [e.value for e in at.error]
    assert not list((app_env / "runs").glob("*/status.json"))  # nothing was queued


def test_batch_larger_than_the_dataset_fails_the_run_with_a_reason(app_env) -> None:
    """The synthetic dataset has 256 training images; a batch of 4096 over the whole set passes
    the widgets (they cannot know the dataset's size) and is refused when the data is loaded."""
    from app_pages.shared import job_manager

    at = open_page(TRAIN)
    at.number_input(key="cfg_batch_mlp").set_value(4096)
    at.number_input(key="cfg_epochs_mlp").set_value(1)
    at.button(key="start").click().run()
    assert not at.exception, at.exception
    job, owner = at.session_state["train_job"], at.session_state["owner"]
    assert job_manager().wait(job, owner, 60).status == "failed"
    at.run()
    assert not at.exception, at.exception
    errors = "\n".join(e.value for e in at.error)
    assert "The run failed" in errors and "batch size 4096 is larger than the training set (256 examples)" in errors
    status = json.loads((app_env / "runs" / job / "status.json").read_text())
    assert status["status"] == "failed" and "larger than the training set" in status["error"]


@pytest.mark.parametrize(
    "rules,fragment",
    [("bp,nope", "unknown rule 'nope'"), ("fa,fa_ex150", "p must be between 0 and 100, got 150"),
     ("fa_ex-5", "unknown rule 'fa_ex-5'")],
)
def test_compare_link_with_a_bad_rule_is_ignored_with_a_warning(app_env, rules: str, fragment: str) -> None:
    """Rules and p come in through a shared Compare link too: a bad one is named and ignored."""
    at = open_page("app_pages/compare.py", {"rules": rules, "model": "resnet", "epochs": "-3"})
    assert not at.exception, at.exception
    warnings = "\n".join(w.value for w in at.warning)
    assert "Ignored from the link" in warnings and fragment in warnings, warnings
    assert at.selectbox(key="cmp_model").value == "mlp"  # the unknown model was not taken
    assert at.number_input(key="cmp_epochs_mlp").value >= 1
    assert all(k in ("bp", "fa") or k.startswith("fa_ex") for k in at.multiselect(key="cmp_rules").value)


def test_diverging_run_says_so_on_the_page_and_in_its_status(app_env, monkeypatch: pytest.MonkeyPatch) -> None:
    """The loss turns infinite after a few steps (as it does when a run blows up; the engine's
    detection itself is tested with lr=1e6 in tests/test_training.py): the page shows an error
    naming the divergence and the learning rate, the run's status says failed. The training step
    itself is wrapped, so this holds whichever step (hand-written or autograd) the model uses."""
    import fa_core.training as training

    from app_pages.shared import job_manager

    real_make_step = training.make_step

    def blowing_up(model, optimizer):
        step = real_make_step(model, optimizer)
        calls = {"n": 0}

        def wrapped(inputs, target):
            calls["n"] += 1
            loss, out = step(inputs, target)
            return (loss * float("inf") if calls["n"] > 5 else loss), out

        return wrapped

    monkeypatch.setattr(training, "make_step", blowing_up)
    at = open_page(TRAIN)
    at.number_input(key="cfg_lr_mlp").set_value(50.0)
    at.number_input(key="cfg_epochs_mlp").set_value(3)
    at.button(key="start").click().run()
    assert not at.exception, at.exception
    job, owner = at.session_state["train_job"], at.session_state["owner"]
    assert job_manager().wait(job, owner, 60).status == "failed"
    at.run()
    assert not at.exception, at.exception
    errors = [e.value for e in at.error]
    assert any("The run failed: training diverged" in e and "smaller learning rate" in e for e in errors), errors
    status = json.loads((app_env / "runs" / job / "status.json").read_text())
    assert status["status"] == "failed" and "diverged" in status["error"]
    metrics = json.loads((app_env / "runs" / job / "metrics.json").read_text())
    assert metrics["final"]["status"] == "failed"


# ---- URL parameters -----------------------------------------------------------------------------


@pytest.mark.parametrize("job", ["../../etc/passwd", "..", "/etc/passwd", "a/b", "%2e%2e", "x" * 300, "<script>"])
def test_job_urls_cannot_reach_outside_the_run_store(app_env, job: str) -> None:
    at = open_page(TRAIN, {"job": job})
    assert not at.exception, at.exception
    assert "not known here" in messages(at)
    assert at.query_params.get("job") in (None, [], "")


@pytest.mark.parametrize("sid", ["../../x", "<script>alert(1)</script>", "short", "a" * 500, ""])
def test_bad_session_ids_in_the_url_are_replaced(app_env, sid: str) -> None:
    at = open_page(TRAIN, {"sid": sid})
    owner = at.session_state["owner"]
    assert owner != sid and len(owner) >= 16 and owner.replace("-", "").replace("_", "").isalnum()


def test_another_sessions_stored_run_is_not_shown(app_env) -> None:
    from fa_core.runs import RunStore

    store = RunStore(app_env / "runs")
    run_id = store.create({"model": "mlp", "dataset": "mnist", "rule": "fa"}, owner="someone-else-entirely-123",
                          status="finished")
    at = open_page(TRAIN, {"job": run_id})
    assert not at.exception, at.exception
    assert "not known here" in messages(at)
    assert run_id not in messages(at).replace("not known", "")


# ---- the data cache -----------------------------------------------------------------------------


@pytest.fixture
def tiny_mnist_registry(app_env, monkeypatch: pytest.MonkeyPatch):
    """Make "mnist" a 200 + 100 image dataset with its own pinned digest; return its arrays.

    The app loads it with the real :func:`fa_core.data.load_dataset` (no synthetic loader) from
    a cache in the test's data folder, and its only source is a fake that counts its calls.
    """
    from fa_core.data import fetch, registry
    from fa_core.data.arrays import Arrays, array_digest
    from fa_core.data.errors import DatasetError

    monkeypatch.delenv("FA_LAB_DATASET_LOADER")
    monkeypatch.setenv("FA_LAB_DATA_SOURCE", "auto")
    rng = np.random.default_rng(0)
    train_y = np.arange(200, dtype=np.uint8) % 10
    test_y = np.arange(100, dtype=np.uint8) % 10
    arrays = Arrays(
        train_x=rng.integers(0, 256, (200, 1, 28, 28), dtype=np.uint8), train_y=train_y,
        test_x=rng.integers(0, 256, (100, 1, 28, 28), dtype=np.uint8), test_y=test_y,
    )
    info = registry.DATASETS["mnist"]
    monkeypatch.setitem(registry.DATASETS, "mnist", dataclasses.replace(info, train_size=200, test_size=100))
    monkeypatch.setitem(
        registry.EXPECTED, "mnist",
        registry.Expected(
            train_counts=tuple(np.bincount(train_y, minlength=10).tolist()),
            test_counts=tuple(np.bincount(test_y, minlength=10).tolist()),
            sha256=array_digest(arrays),
        ),
    )
    state = {"calls": 0, "works": True}

    def fake_source(name, data_dir, progress):
        state["calls"] += 1
        if not state["works"]:
            raise DatasetError("the network is down (test)")
        return arrays

    monkeypatch.setitem(fetch.SOURCE_ORDERS, "auto", (fetch.Source("test source", fake_source),))
    from fa_core.data.cache import write_cache

    folder = app_env / "data" / "mnist"
    write_cache(folder, arrays)
    return folder, state


def _start_quick_mnist_run(at: AppTest) -> tuple[str, str]:
    at.number_input(key="cfg_epochs_mlp").set_value(1)
    at.button(key="start").click().run()
    assert not at.exception, at.exception
    return at.session_state["train_job"], at.session_state["owner"]


def test_corrupted_cache_is_caught_by_its_checksum_and_refetched(app_env, tiny_mnist_registry) -> None:
    from app_pages.shared import job_manager

    folder, state = tiny_mnist_registry
    with open(folder / "train_x.npy", "r+b") as fh:  # one flipped pixel: sizes and headers still fine
        fh.seek(-5, 2)
        byte = fh.read(1)
        fh.seek(-5, 2)
        fh.write(bytes([byte[0] ^ 0xFF]))
    at = open_page(TRAIN)
    job, owner = _start_quick_mnist_run(at)
    snap = job_manager().wait(job, owner, 60)
    assert snap.status == "finished", snap.error
    assert state["calls"] == 1  # the checksum failed, so the data was fetched again
    from fa_core.data import verify_dataset

    verify_dataset("mnist", app_env / "data")  # and the cache is whole again


def test_corrupted_cache_that_cannot_be_refetched_gives_a_clear_message(app_env, tiny_mnist_registry) -> None:
    from app_pages.shared import job_manager

    folder, state = tiny_mnist_registry
    state["works"] = False
    (folder / "test_y.npy").write_bytes(b"garbage")
    at = open_page(HOME)
    assert "cache is corrupt" in messages(at)  # the Home page says so before anyone trains
    at.switch_page(TRAIN).run()
    job, owner = _start_quick_mnist_run(at)
    snap = job_manager().wait(job, owner, 60)
    assert snap.status == "failed"
    at.run()
    assert not at.exception, at.exception
    errors = "\n".join(e.value for e in at.error)
    assert "The run failed" in errors and "Could not obtain mnist" in errors and "network is down" in errors
    assert json.loads((app_env / "runs" / job / "status.json").read_text())["status"] == "failed"


def test_missing_cache_is_fetched_on_first_use(app_env, tiny_mnist_registry) -> None:
    from app_pages.shared import job_manager

    folder, state = tiny_mnist_registry
    for path in folder.iterdir():
        path.unlink()
    at = open_page(HOME)
    assert "not downloaded" in messages(at)
    at.switch_page(TRAIN).run()
    job, owner = _start_quick_mnist_run(at)
    assert job_manager().wait(job, owner, 60).status == "finished"
    assert state["calls"] == 1
