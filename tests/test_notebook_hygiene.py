"""Guards on the committed source notebooks: stripped, canonical metadata, and a JupyterLab save of an
unchanged notebook changes no byte (so neither `git status` nor `dvc status` sees it).

Fix a failure with ``make strip`` (``python -m bilevel.notebook strip notebooks/*/*.ipynb``).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

from bilevel.notebook import CANONICAL_METADATA, KEPT_CELL_METADATA, strip_notebook

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(ROOT.glob("notebooks/*/*.ipynb"))
FIX = "run `make strip` and commit"


def problems(path: Path) -> list[str]:
    """What keeps ``path`` from being a clean source notebook (empty when clean)."""
    text = path.read_text()
    nb = nbformat.reads(text, as_version=4)
    out = []
    if (nb.nbformat, nb.nbformat_minor) != (4, 5):
        out.append(f"nbformat {nb.nbformat}.{nb.nbformat_minor}, not 4.5")
    if dict(nb.metadata) != CANONICAL_METADATA:
        out.append(f"notebook metadata {dict(nb.metadata)} is not the canonical {CANONICAL_METADATA}")
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and cell.outputs:
            out.append(f"cell {i} has {len(cell.outputs)} output(s)")
        if cell.cell_type == "code" and cell.execution_count is not None:
            out.append(f"cell {i} has execution count {cell.execution_count}")
        extra = set(cell.metadata) - set(KEPT_CELL_METADATA)
        if extra:
            out.append(f"cell {i} has editor metadata {sorted(extra)}")
    code = [c for c in nb.cells if c.cell_type == "code"]
    if not code or "parameters" not in code[0].metadata.get("tags", []):
        out.append("the first code cell is not tagged 'parameters'")
    if text != nbformat.writes(nb) + "\n":
        out.append("the file is not in the JSON layout Jupyter writes (indent 1, sorted keys, final newline)")
    return out


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.relative_to(ROOT / "notebooks").as_posix() for p in NOTEBOOKS])
def test_committed_notebook_is_clean(path):
    found = problems(path)
    assert not found, f"{path.relative_to(ROOT)}: " + "; ".join(found) + f". {FIX}."


def test_guard_catches_outputs_counts_and_metadata(tmp_path):
    """The guard can fail: an executed-looking copy is reported, and strip_notebook repairs it."""
    nb = nbformat.read(NOTEBOOKS[0], as_version=4)
    code = next(c for c in nb.cells if c.cell_type == "code" and "parameters" not in c.metadata.get("tags", []))
    code.outputs = [nbformat.v4.new_output("stream", text="hi\n")]
    code.execution_count = 3
    code.metadata["collapsed"] = True
    nb.metadata["kernelspec"]["display_name"] = "Python 3"
    nb.metadata["widgets"] = {}
    bad = tmp_path / "bad.ipynb"
    nbformat.write(nb, bad)
    found = " | ".join(problems(bad))
    for needle in ("output(s)", "execution count 3", "editor metadata ['collapsed']", "not the canonical"):
        assert needle in found, found
    subprocess.run([sys.executable, "-m", "bilevel.notebook", "strip", str(bad)], check=True, cwd=ROOT,
                   env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True)
    assert problems(bad) == []
    assert bad.read_bytes() == NOTEBOOKS[0].read_bytes()
    assert strip_notebook(nbformat.read(bad, as_version=4)) == nbformat.read(NOTEBOOKS[0], as_version=4)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _kernel_language_info() -> dict:
    from jupyter_client.manager import start_new_kernel
    km, kc = start_new_kernel(kernel_name="python3")
    try:
        return kc.kernel_info(reply=True, timeout=60)["content"]["language_info"]
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


@pytest.mark.slow
def test_jupyterlab_save_of_unchanged_notebooks_changes_no_byte(tmp_path):
    """Open (GET) and save (PUT) every notebook through the Jupyter server's contents API with the
    kernelspec and language_info a running kernel reports, as JupyterLab does; then git sees no change."""
    info = _kernel_language_info()
    if info.get("version") != CANONICAL_METADATA["language_info"]["version"]:
        pytest.skip(f"this Python is {info.get('version')}, the notebooks record "
                    f"{CANONICAL_METADATA['language_info']['version']}: JupyterLab here rewrites "
                    "language_info.version (use the project's Python, see README)")
    repo = tmp_path / "repo"
    for path in NOTEBOOKS:
        dst = repo / path.relative_to(ROOT)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, dst)
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@localhost", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@localhost")
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "notebooks"]):
        subprocess.run(cmd, cwd=repo, check=True, env=env)
    port, token = _free_port(), "hygiene-test-token"
    state = tmp_path / "jupyter"
    senv = dict(env, JUPYTER_CONFIG_DIR=str(state / "config"), JUPYTER_DATA_DIR=str(state / "data"),
                JUPYTER_RUNTIME_DIR=str(state / "runtime"), IPYTHONDIR=str(state / "ipython"))
    server = subprocess.Popen([sys.executable, "-m", "jupyter_server", "--no-browser", "--ip=127.0.0.1",
                               f"--port={port}", f"--IdentityProvider.token={token}", "--allow-root",
                               f"--ServerApp.root_dir={repo}"], env=senv, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}/api"

    def call(method, url, body=None):
        req = urllib.request.Request(base + url, method=method, data=None if body is None else json.dumps(body).encode(),
                                     headers={"Authorization": f"token {token}", "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())

    try:
        for _ in range(150):
            try:
                kernelspecs = call("GET", "/kernelspecs")
                break
            except OSError:
                time.sleep(0.2)
        else:
            pytest.fail("the Jupyter server did not start: " + server.stderr.read1().decode(errors="replace"))
        spec = kernelspecs["kernelspecs"][kernelspecs["default"]]["spec"]
        for path in NOTEBOOKS:
            rel = path.relative_to(ROOT).as_posix()
            model = call("GET", f"/contents/{rel}?content=1&type=notebook")
            content = model["content"]
            # JupyterLab sets these from the session's kernel when it opens the notebook
            content["metadata"]["kernelspec"] = {"display_name": spec["display_name"], "language": spec["language"],
                                                 "name": kernelspecs["default"]}
            content["metadata"]["language_info"] = info
            call("PUT", f"/contents/{rel}", {"type": "notebook", "format": "json", "content": content})
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo, check=True,
                                capture_output=True, text=True).stdout
        assert status == "", f"saving unchanged notebooks changed them:\n{status}\n" + subprocess.run(
            ["git", "diff"], cwd=repo, capture_output=True, text=True).stdout[:3000]
        for path in NOTEBOOKS:       # same bytes: DVC (which hashes the file itself) sees no change either
            assert (repo / path.relative_to(ROOT)).read_bytes() == path.read_bytes(), path
    finally:
        server.terminate()
        server.wait(timeout=30)
