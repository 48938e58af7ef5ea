r"""Stack independent problems into one block-separable problem.

.. math::

    f(x, y) = \sum_i f_i(x_{[i]}, y_{[i]}),\qquad g(x, y) = \sum_i g_i(x_{[i]}, y_{[i]}).

Because the blocks do not interact, every solver in :mod:`bilevel.solvers`
run on the stack performs exactly the updates it would perform on each block
separately, provided the step sizes are given per coordinate
(:func:`per_coordinate`). One run then covers a whole parameter grid (e.g. the
kappa sweep of paper 001's Figures 1-2) with one Python loop instead of one per
grid point. Oracle counts and time are those of the whole batch. A block with a
``g_y`` (g without its terms in x alone) keeps it: the stack's y-oracles use it.
"""

from __future__ import annotations

from typing import Sequence

import torch

from ..blocks import Blocks
from ..problem import Problem

__all__ = ["stack", "per_coordinate"]


def _cat_optional(fns, slices_in, out_sizes):
    if any(fn is None for fn in fns):
        return None

    def fn(z):
        return torch.cat([f(z[s]) for f, s in zip(fns, slices_in)])

    return fn


def stack(problems: Sequence[Problem], labels: Sequence | None = None, name: str = "stack") -> Problem:
    """Block-diagonal stack of ``problems`` (same dtype and device).

    ``labels`` (default ``0..n-1``) name the blocks in traces.

    >>> import bilevel as bl
    >>> s = bl.problems.stack([bl.problems.quadratic.kappa2d(k) for k in (2.0, 3.0)], labels=[2, 3])
    >>> s.dim_x, s.blocks.labels
    (4, (2, 3))
    """
    problems = list(problems)
    if not problems:
        raise ValueError("stack() needs at least one problem.")
    labels = list(range(len(problems))) if labels is None else list(labels)
    if len(labels) != len(problems):
        raise ValueError(f"stack(): {len(labels)} labels for {len(problems)} problems.")
    ref = problems[0]
    for p in problems:
        if p.dtype != ref.dtype or p.device != ref.device:
            raise ValueError("stack(): all problems must share dtype and device; got "
                             f"{p.dtype}/{p.device} and {ref.dtype}/{ref.device}.")
    sx, sy, ox, oy = [], [], 0, 0
    for p in problems:
        sx.append(slice(ox, ox + p.dim_x)); ox += p.dim_x
        sy.append(slice(oy, oy + p.dim_y)); oy += p.dim_y

    def f(x, y):
        return sum(p.f(x[a], y[b]) for p, a, b in zip(problems, sx, sy))

    def g(x, y):
        return sum(p.g(x[a], y[b]) for p, a, b in zip(problems, sx, sy))

    def g_y(x, y):                     # each block's g_y where it has one
        return sum(p.g_for_y(x[a], y[b]) for p, a, b in zip(problems, sx, sy))

    phis = [p.phi for p in problems]
    phi = None if any(v is None for v in phis) else (
        lambda x: sum(fn(x[a]) for fn, a in zip(phis, sx)))
    return Problem(
        f=f, g=g, g_y=None if all(p.g_y is None for p in problems) else g_y,
        x0=torch.cat([p.x0 for p in problems]), y0=torch.cat([p.y0 for p in problems]),
        y_star=_cat_optional([p.y_star for p in problems], sx, None),
        grad_phi=_cat_optional([p.grad_phi for p in problems], sx, None),
        phi=phi, name=name,
        info={"blocks": [dict(p.info) for p in problems], "labels": labels},
        blocks=Blocks(labels, sx, sy),
    )


def per_coordinate(problem: Problem, values: Sequence[float], which: str = "y") -> torch.Tensor:
    """Expand one value per block into a per-coordinate step-size tensor.

    ``which="y"`` for inner/linear-system steps, ``"x"`` for outer steps.

    >>> import bilevel as bl
    >>> s = bl.problems.stack([bl.problems.quadratic.kappa2d(k) for k in (2.0, 3.0)])
    >>> per_coordinate(s, [1.0, 2.0], "x").tolist()
    [1.0, 1.0, 2.0, 2.0]
    """
    if problem.blocks is None:
        raise ValueError("per_coordinate() needs a stacked problem (bilevel.problems.stack).")
    if which not in ("x", "y"):
        raise ValueError(f"which must be 'x' or 'y', got {which!r}.")
    values = list(values)
    if len(values) != len(problem.blocks):
        raise ValueError(f"per_coordinate(): {len(values)} values for {len(problem.blocks)} blocks.")
    per_block = torch.tensor([float(v) for v in values], dtype=problem.dtype, device=problem.device)
    return problem.blocks.spread(per_block, which)
