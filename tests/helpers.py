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
