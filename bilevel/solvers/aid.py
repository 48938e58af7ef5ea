r"""AID-BiO: approximate implicit differentiation with N- and Q-loops."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch

from .. import _validate as V
from .. import linsolve
from ..hypergrad import _implicit
from .base import Solver, StepInfo, register

__all__ = ["AID", "AIDState"]


class AIDState(NamedTuple):
    x: torch.Tensor      # outer iterate x_k
    y: torch.Tensor      # inner warm start y_k^0 (= y_{k-1}^N)
    v: torch.Tensor      # linear-system warm start v_k^0 (= v_{k-1}^Q)


@register("aid")
@dataclass(frozen=True)
class AID(Solver):
    r"""AID-BiO with double warm starts (paper 003, Algorithm 1).

    .. math::

        y_k^0 &= y_{k-1}^N \ (\text{warm start; } y_0 \text{ otherwise}),\qquad
        y_k^{t} = y_k^{t-1} - \alpha\nabla_y g(x_k, y_k^{t-1}),\ t=1..N \\
        v_k^Q &\approx [\nabla^2_{yy} g(x_k,y_k^N)]^{-1}\nabla_y f(x_k,y_k^N)
              \ \text{(Q steps of } \texttt{linsys} \text{ from } v_k^0 = v_{k-1}^Q) \\
        \widehat\nabla\Phi(x_k) &= \nabla_x f(x_k,y_k^N) - \nabla^2_{xy} g(x_k,y_k^N)\,v_k^Q,
        \qquad x_{k+1} = x_k - \beta\,\widehat\nabla\Phi(x_k)

    With ``linsys="gd"`` a step is :math:`v \leftarrow (I-\eta\nabla^2_{yy}g)v + \eta\nabla_y f`.
    ``inner_steps=linsys_steps=1`` is paper 001's single-loop AID (Algorithm 1).

    ================  ===========  ===========  ==========================
    field             paper 003    paper 001    meaning
    ================  ===========  ===========  ==========================
    ``inner_steps``   N            1            GD steps on g per outer step
    ``inner_lr``      alpha        alpha        inner GD step
    ``linsys``        -            -            ``"gd"``, ``"cg"``, ``"neumann"``
    ``linsys_steps``  Q            1            linear-system iterations
    ``linsys_lr``     eta          eta          step of gd/neumann (None for cg)
    ``outer_lr``      beta         beta         outer GD step
    ``warm_start``    -            -            warm-start y and v (else y0, 0)
    ================  ===========  ===========  ==========================

    Oracle cost per outer step (``linsys="gd"``): Gc = N + 1, MV = Q + 1.

    Reference: K. Ji, M. Liu, Y. Liang, L. Ying, "Will bilevel optimizers
    benefit from loops", NeurIPS 2022 (paper 003), Algorithm 1.

    >>> import bilevel as bl
    >>> p = bl.problems.quadratic.paper001(kappa=2.0)
    >>> aid = bl.solvers.AID(inner_steps=1, inner_lr=5.0, linsys="gd", linsys_steps=1,
    ...                      linsys_lr=5.0, outer_lr=0.02)
    >>> tr = bl.run(aid, p, steps=3000, eval_every=1000)
    >>> bool(tr.grad_norm_sq.iloc[-1] < 1e-4 * tr.grad_norm_sq.iloc[0])
    True
    """

    inner_steps: int = 1
    inner_lr: float = None
    linsys: str = "gd"
    linsys_steps: int = 1
    linsys_lr: float | None = None
    outer_lr: float = None
    warm_start: bool = True

    def __post_init__(self):
        V.positive_int("AID", "inner_steps (N)", self.inner_steps)
        V.step_size("AID", "inner_lr (alpha)", self.inner_lr)
        V.choice("AID", "linsys", self.linsys, linsolve.SOLVERS)
        V.positive_int("AID", "linsys_steps (Q)", self.linsys_steps)
        V.step_size("AID", "linsys_lr (eta)", self.linsys_lr, allow_none=self.linsys == "cg")
        V.step_size("AID", "outer_lr (beta)", self.outer_lr)
        if not isinstance(self.warm_start, bool):
            raise ValueError(f"AID: warm_start must be True or False, got {self.warm_start!r}.")

    def init(self, problem, oracles, generator) -> AIDState:
        V.check_step_shape("AID", "inner_lr (alpha)", self.inner_lr, problem.x0, problem.dim_y)
        V.check_step_shape("AID", "linsys_lr (eta)", self.linsys_lr, problem.x0, problem.dim_y)
        V.check_step_shape("AID", "outer_lr (beta)", self.outer_lr, problem.x0, problem.dim_x)
        return AIDState(problem.x0.clone(), problem.y0.clone(), torch.zeros_like(problem.y0))

    def step(self, state: AIDState, oracles, generator):
        x = state.x
        y = state.y if self.warm_start else oracles.problem.y0
        for _ in range(self.inner_steps):
            y = y - self.inner_lr * oracles.grad_y_g(x, y)
        v0 = state.v if self.warm_start else None
        grad, v = _implicit(oracles, x, y, self.linsys, self.linsys_steps, self.linsys_lr, v0)
        x_new = x - self.outer_lr * grad
        return AIDState(x_new, y.detach(), v), StepInfo(x, y, grad)
