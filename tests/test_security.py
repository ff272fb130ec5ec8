"""Security invariants that must stay true as the code grows.

* The server listens on this machine only unless the user changes ``.streamlit/config.toml``;
  XSRF protection and CORS stay on; uploads are capped.
* Upload size and image pixel limits are set and agree with each other.
* Nothing in the app or the engine deserialises with pickle (``torch.load``, ``pickle.load``,
  ``np.load(allow_pickle=True)``, ...) or evaluates strings; the one restricted unpickler (numpy
  arrays only, for the MNIST mirror) is the only exception, and it is named here.
* Run and checkpoint names cannot reach outside their folders, symlinks included.

(The live server's sockets and markup in user-typed names are checked in a real browser:
``tests/e2e/test_security_live.py``.)
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

from fa_core.runs import RunError, RunStore, checkpoint_path

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / ".streamlit" / "config.toml"
SOURCE_DIRS = ("fa_core", "app_pages")


def source_files() -> list[Path]:
    files = [REPO / "app.py"]
    for folder in SOURCE_DIRS:
        files += sorted((REPO / folder).rglob("*.py"))
    return files


# ---- server configuration -------------------------------------------------------------------


def test_server_config_is_local_and_guarded() -> None:
    config = tomllib.loads(CONFIG.read_text(encoding="utf-8"))
    server = config["server"]
    assert server["address"] in ("localhost", "127.0.0.1", "::1")
    assert server.get("enableXsrfProtection", True) is True
    assert server.get("enableCORS", True) is True
    assert server.get("enableStaticServing", False) is False
    assert 1 <= server["maxUploadSize"] <= 20  # MB; Streamlit's default is 200
    assert config["browser"]["gatherUsageStats"] is False


def test_streamlit_reads_the_config() -> None:
    """The options Streamlit actually resolves from the file (run from the repository root)."""
    from streamlit import config

    config.get_config_options(force_reparse=True, options_from_flags={})
    import os

    here = os.getcwd()
    try:
        os.chdir(REPO)
        config.get_config_options(force_reparse=True, options_from_flags={})
        assert config.get_option("server.address") == "localhost"
        assert config.get_option("server.maxUploadSize") <= 20
        assert config.get_option("server.enableXsrfProtection") is True
    finally:
        os.chdir(here)
        config.get_config_options(force_reparse=True, options_from_flags={})


def test_upload_limits_are_set_and_agree() -> None:
    from PIL import Image

    from fa_core import preprocess

    config = tomllib.loads(CONFIG.read_text(encoding="utf-8"))
    server_limit = config["server"]["maxUploadSize"] * 1024 * 1024
    assert 0 < preprocess.MAX_UPLOAD_BYTES <= server_limit
    assert Image.MAX_IMAGE_PIXELS is not None  # Pillow's decompression-bomb guard is on
    assert 0 < preprocess.MAX_UPLOAD_PIXELS <= Image.MAX_IMAGE_PIXELS


def test_every_file_uploader_restricts_its_types() -> None:
    """Each ``st.file_uploader`` in the app names the file types it accepts."""
    uploaders = []
    for path in source_files():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and _dotted(node.func).endswith("file_uploader"):
                uploaders.append(path.name)
                keywords = {k.arg for k in node.keywords}
                assert "type" in keywords or len(node.args) >= 2, f"{path.name}:{node.lineno}: file_uploader without type="
    assert uploaders, "no file uploader found: update this test if uploads were removed"


def test_no_code_switches_off_pillows_bomb_guard() -> None:
    for path in source_files():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    assert not _dotted(target).endswith("MAX_IMAGE_PIXELS"), f"{path.name}:{node.lineno}"


# ---- no unsafe deserialisation ---------------------------------------------------------------

FORBIDDEN = {
    "torch.load": "torch.load unpickles; use safetensors (fa_core.checkpoints)",
    "torch.jit.load": "TorchScript archives run code",
    "pickle.load": "pickle runs code",
    "pickle.loads": "pickle runs code",
    "pickle.Unpickler": "pickle runs code",
    "_pickle.load": "pickle runs code",
    "_pickle.loads": "pickle runs code",
    "dill.load": "dill runs code",
    "dill.loads": "dill runs code",
    "joblib.load": "joblib unpickles",
    "marshal.load": "marshal loads code objects",
    "marshal.loads": "marshal loads code objects",
    "shelve.open": "shelve unpickles",
    "yaml.load": "use yaml.safe_load",
    "yaml.unsafe_load": "use yaml.safe_load",
    "yaml.full_load": "use yaml.safe_load",
    "pandas.read_pickle": "unpickles",
    "pd.read_pickle": "unpickles",
    "eval": "evaluates strings",
    "exec": "executes strings",
    "os.system": "runs a shell",
    "os.popen": "runs a shell",
}
ALLOWED = {
    # The numpy-only restricted unpickler for the MNIST mirror's pickle (checked against a
    # pinned SHA-256 before it is opened; refuses every global but numpy's array builders).
    ("fa_core/data/safe_pickle.py", "pickle.Unpickler"),
}


def _dotted(node: ast.AST) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    parts.append(node.id if isinstance(node, ast.Name) else "?")  # "?": a call's or subscript's result
    return ".".join(reversed(parts))


def unsafe_calls(source: str, filename: str = "<string>") -> list[tuple[int, str]]:
    """``(line, what)`` for every forbidden reference in ``source`` (sorted)."""
    tree = ast.parse(source, filename=filename)
    aliases: dict[str, str] = {}
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                aliases[alias.asname or alias.name] = alias.name
        elif isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                aliases[alias.asname or alias.name] = full
                if full in FORBIDDEN and (filename, full) not in ALLOWED:
                    found.append((node.lineno, f"import {full}"))

    def canonical(name: str) -> str:
        head, _, rest = name.partition(".")
        head = aliases.get(head, head)
        return f"{head}.{rest}" if rest else head

    for node in ast.walk(tree):
        if isinstance(node, (ast.Attribute, ast.Name)) and isinstance(getattr(node, "ctx", None), ast.Load):
            name = canonical(_dotted(node))
            if name in FORBIDDEN and (filename, name) not in ALLOWED:
                if isinstance(node, ast.Name) and name in ("eval", "exec") and node.id != name:
                    continue
                found.append((node.lineno, name))
        if isinstance(node, ast.Call):
            name = canonical(_dotted(node.func))
            keywords = {k.arg: k.value for k in node.keywords}
            if name in ("numpy.load", "np.load"):
                flag = keywords.get("allow_pickle")
                if not (isinstance(flag, ast.Constant) and flag.value is False):
                    found.append((node.lineno, "numpy.load without allow_pickle=False"))
            if name.startswith("subprocess.") and isinstance(keywords.get("shell"), ast.Constant) and keywords["shell"].value:
                found.append((node.lineno, f"{name}(shell=True)"))
    return sorted(set(found))


def test_the_scanner_catches_what_it_should() -> None:
    sample = (
        "import torch, pickle, numpy as np\nfrom torch import load as tl\nimport subprocess\n"
        "torch.load('x')\nf = torch.load\npickle.loads(b'')\nnp.load('a.npy')\nnp.load('b', allow_pickle=True)\n"
        "eval('1')\nsubprocess.run('ls', shell=True)\nmodel.eval()\nnp.load('c', allow_pickle=False)\n"
    )
    found = unsafe_calls(sample)
    assert found == [
        (2, "import torch.load"),
        (4, "torch.load"),
        (5, "torch.load"),
        (6, "pickle.loads"),
        (7, "numpy.load without allow_pickle=False"),
        (8, "numpy.load without allow_pickle=False"),
        (9, "eval"),
        (10, "subprocess.run(shell=True)"),
    ]


def test_no_unsafe_deserialisation_or_eval_in_the_code() -> None:
    problems = []
    for path in source_files():
        rel = path.relative_to(REPO).as_posix()
        problems += [
            f"{rel}:{line}: {what} ({FORBIDDEN.get(what.removeprefix('import '), 'unpickles')})"
            for line, what in unsafe_calls(path.read_text(encoding="utf-8"), rel)
        ]
    assert not problems, "\n".join(problems)


def test_the_allowed_unpickler_is_still_restricted() -> None:
    """The one allowed unpickler refuses any global outside numpy's array builders."""
    import io
    import os
    import pickle

    from fa_core.data.safe_pickle import load_arrays_pickle

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    with pytest.raises(pickle.UnpicklingError, match="Refusing"):
        load_arrays_pickle(io.BytesIO(pickle.dumps(Evil())))


# ---- names cannot escape their folders -------------------------------------------------------


def test_a_symlinked_run_folder_cannot_lead_outside(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "status.json").write_text('{"status": "finished"}')
    store = RunStore(tmp_path / "runs")
    (store.root / "20250101-000000-mlp-fa-abcdef").symlink_to(outside, target_is_directory=True)
    with pytest.raises(RunError):
        store.load_run("20250101-000000-mlp-fa-abcdef")
    with pytest.raises(RunError):
        store.delete("20250101-000000-mlp-fa-abcdef", force=True)
    assert (outside / "status.json").is_file()
    assert [r.run_id for r in store.list_runs()] == []


def test_a_symlinked_checkpoint_name_cannot_write_outside(tmp_path: Path) -> None:
    folder = tmp_path / "user"
    folder.mkdir()
    target = tmp_path / "elsewhere.safetensors"
    (folder / "innocent.safetensors").symlink_to(target)
    with pytest.raises(RunError, match="outside"):
        checkpoint_path(folder, "innocent")
    assert not target.exists()


@pytest.mark.parametrize(
    "name",
    ["..", "../../etc/passwd", "/etc/passwd", "a/../../b", "C:\\x", "x\x00y", "~/.bashrc", "$HOME", "ok\n", "é" * 3],
)
def test_checkpoint_names_stay_plain(tmp_path: Path, name: str) -> None:
    try:
        path = checkpoint_path(tmp_path, name)
    except RunError:
        return
    assert path.parent == tmp_path.resolve() and "/" not in path.name and "\x00" not in path.name


def test_export_never_overwrites_by_accident(tmp_path: Path) -> None:
    from fa_core.models import build_model

    store = RunStore(tmp_path / "runs")
    run_id = store.create({"model": "mlp"}, status="finished")
    store.save_model(run_id, build_model("mlp", "mnist", "fa"), {"model": "mlp"})
    folder = tmp_path / "user"
    store.export_checkpoint(run_id, folder, "mine")
    before = (folder / "mine.safetensors").read_bytes()
    with pytest.raises(RunError, match="already exists"):
        store.export_checkpoint(run_id, folder, "mine.safetensors")
    assert (folder / "mine.safetensors").read_bytes() == before
