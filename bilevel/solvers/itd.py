r"""ITD-BiO: iterative differentiation through N warm-started GD steps."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch

from .. import _validate as V
from ..hypergrad import MODES, _unrolled_forward, _unrolled_reverse
from .base import Solver, StepInfo, register

__all__ = ["ITD", "ITDState"]


class ITDState(NamedTuple):
    x: torch.Tensor      # outer iterate x_k
    y: torch.Tensor      # inner warm start y_k^0 (= y_{k-1}^N)


@register("itd")
@dataclass(frozen=True)
class ITD(Solver):
    r"""ITD-BiO with warm start (paper 003, Algorithm 2; paper 001, Algorithm 2 for N=1).

    .. math::

        y_k^0 &= y_{k-1}^N,\qquad y_k^{t} = y_k^{t-1} - \alpha\nabla_y g(x_k, y_k^{t-1}),\ t=1..N \\
        \widehat\nabla\Phi(x_k) &= \frac{\partial f(x_k, y_k^N(x_k))}{\partial x_k}
          = \nabla_x f - \alpha\sum_{t=0}^{N-1}\nabla^2_{xy} g(x_k,y_k^t)
            \prod_{j=t+1}^{N-1}(I-\alpha\nabla^2_{yy}g(x_k,y_k^j))\,\nabla_y f(x_k,y_k^N) \\
        x_{k+1} &= x_k - \beta\,\widehat\nabla\Phi(x_k)

    The warm start :math:`y_k^0` is treated as a constant. For N = 1 this is
    :math:`\nabla_x f(x_k,\hat y_k) - \alpha\nabla^2_{xy} g(x_k, y_k^0)\nabla_y f(x_k,\hat y_k)`
    (paper 001, Algorithm 2, line 5).

    ================  ===========  ==========================================
    field             paper        meaning
    ================  ===========  ==========================================
    ``inner_steps``   N            GD steps unrolled per outer step
    ``inner_lr``      alpha        inner GD step
    ``outer_lr``      beta         outer GD step
    ``mode``          -            ``"reverse"`` (backprop) or ``"forward"``
    ``warm_start``    -            start from y_{k-1}^N (else from y0)
    ================  ===========  ==========================================

    Oracle cost per outer step: Gc = N + 1; MV = 2N - 1 (reverse) or
    2 N dim(x) (forward). See :func:`bilevel.hypergrad.unrolled`.

    Reference: paper 003 (Ji et al. 2022), Algorithm 2 and Section 2.2;
    forward mode: paper 004 (tutorial slides).

    >>> import bilevel as bl
    >>> p = bl.problems.quadratic.paper001(kappa=2.0)
    >>> itd = bl.solvers.ITD(inner_steps=1, inner_lr=5.0, outer_lr=0.02)
    >>> tr = bl.run(itd, p, steps=3000, eval_every=1000)
    >>> round(float(tr.grad_norm_sq.iloc[-1]), 3)   # non-vanishing error M^2 (kappa-1)^2
    0.01
    """

    inner_steps: int = 1
    inner_lr: float = None
    outer_lr: float = None
    mode: str = "reverse"
    warm_start: bool = True

    def __post_init__(self):
        V.positive_int("ITD", "inner_steps (N)", self.inner_steps)
        V.step_size("ITD", "inner_lr (alpha)", self.inner_lr)
        V.step_size("ITD", "outer_lr (beta)", self.outer_lr)
        V.choice("ITD", "mode", self.mode, MODES)
        if not isinstance(self.warm_start, bool):
            raise ValueError(f"ITD: warm_start must be True or False, got {self.warm_start!r}.")

    def init(self, problem, oracles, generator) -> ITDState:
        V.check_step_shape("ITD", "inner_lr (alpha)", self.inner_lr, problem.x0, problem.dim_y)
        V.check_step_shape("ITD", "outer_lr (beta)", self.outer_lr, problem.x0, problem.dim_x)
        return ITDState(problem.x0.clone(), problem.y0.clone())

    def step(self, state: ITDState, oracles, generator):
        x = state.x
        y0 = state.y if self.warm_start else oracles.problem.y0
        unroll = _unrolled_reverse if self.mode == "reverse" else _unrolled_forward
        grad, y = unroll(oracles, x, y0, self.inner_steps, self.inner_lr)
        return ITDState(x - self.outer_lr * grad, y), StepInfo(x, y, grad)
