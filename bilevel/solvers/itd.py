r"""ITD-BiO: iterative differentiation through N warm-started GD steps."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch

from .. import _validate as V
from .. import outer as _outer
from ..hypergrad import MODES, unrolled_estimate
from .base import Solver, StepInfo, check_finite, register

__all__ = ["ITD", "ITDState", "ITDAdamState"]


class ITDState(NamedTuple):
    x: torch.Tensor      # outer iterate x_k
    y: torch.Tensor      # inner warm start y_k^0 (= y_{k-1}^N)


class ITDAdamState(NamedTuple):
    """:class:`ITDState` plus Adam's moments (``outer_optimizer="adam"``)."""

    x: torch.Tensor
    y: torch.Tensor
    adam: _outer.AdamState


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

    With ``outer_optimizer="adam"`` the last update is Adam on
    :math:`\widehat g_k = \widehat\nabla\Phi(x_k)` with step :math:`\beta` (:mod:`bilevel.outer`
    writes it out; identical to ``torch.optim.Adam``, no oracle call, counted nowhere).

    ``warm_start=False`` starts every outer step from :math:`y_k^0 = y_0`
    (Sow et al.'s protocol, used for paper 003's Table 3).

    The warm start :math:`y_k^0` is treated as a constant, and so is the inner
    step when ``inner_lr`` is a step rule (a callable ``x -> step`` evaluated at
    :math:`x_k`, e.g. :func:`bilevel.problems.hyperparam.stable_step`). For N = 1 this is
    :math:`\nabla_x f(x_k,\hat y_k) - \alpha\nabla^2_{xy} g(x_k, y_k^0)\nabla_y f(x_k,\hat y_k)`
    (paper 001, Algorithm 2, line 5).

    ===================  ===========  ==========================================
    field                paper        meaning
    ===================  ===========  ==========================================
    ``inner_steps``      N            GD steps unrolled per outer step
    ``inner_lr``         alpha        inner GD step
    ``outer_lr``         beta         outer step (GD or Adam)
    ``mode``             -            ``"reverse"`` (backprop) or ``"forward"``
    ``warm_start``       -            start from y_{k-1}^N (else from y0)
    ``max_abs``          -            divergence guard: raise DivergenceError when
                                      y or x has an entry above it or NaN (None: off)
    ===================  ===========  ==========================================

    ``outer_optimizer`` (``"sgd"``: the paper's step; ``"adam"``), ``adam_betas``, ``adam_eps``:
    the outer update on the same direction, :mod:`bilevel.outer`.

    Oracle cost per outer step: Gc = N + 1; MV = 2N - 1 (reverse) or
    2 N dim(x) (forward). See :func:`bilevel.hypergrad.unrolled`.

    Reference: paper 003 (Ji et al. 2022), Algorithm 2 and Section 2.2;
    forward mode: paper 004 (tutorial slides).

    >>> import bilevel as bl
    >>> p = bl.problems.quadratic.kappa2d(kappa=2.0)
    >>> itd = bl.solvers.ITD(inner_steps=1, inner_lr=5.0, outer_lr=0.02)
    >>> tr = bl.run(itd, p, steps=3000, eval_every=1000)
    >>> round(float(tr.grad_norm_sq.iloc[-1]), 3)   # non-vanishing error M^2 (kappa-1)^2
    0.01
    """

    inner_steps: int = V.hyper(1, "N", V.INT1)
    inner_lr: float = V.hyper(None, "alpha", V.STEP, scales="y")
    outer_lr: float = V.hyper(None, "beta", V.STEP, scales="x")
    mode: str = V.hyper("reverse", check=V.one_of(MODES))
    warm_start: bool = V.hyper(True, check=V.BOOL)
    outer_optimizer: str = _outer.optimizer_field()
    adam_betas: tuple = _outer.betas_field()
    adam_eps: float = _outer.eps_field()
    max_abs: float | None = V.hyper(None, check=V.optional(V.POSITIVE))

    def init(self, problem, oracles, generator) -> ITDState:
        V.check_shapes(self, problem)
        x0 = problem.x0.clone()
        ostate = self.outer_init(x0)
        return ITDState(x0, problem.y0.clone()) if ostate is None else ITDAdamState(x0, problem.y0.clone(), ostate)

    def step(self, state: ITDState, oracles, generator):
        x = state.x
        y0 = state.y if self.warm_start else oracles.problem.y0
        grad, y = unrolled_estimate(oracles, x, y0, self.inner_steps,
                                    V.resolve_step(self.inner_lr, x), self.mode)
        x_new, ostate = self.outer_step(x, grad, getattr(state, "adam", None), self.outer_lr)
        if self.max_abs is not None:
            check_finite(self.max_abs, ("y (inner iterate)", y), ("x (outer iterate)", x_new))
        new = (ITDState(x_new, y) if ostate is None else ITDAdamState(x_new, y, ostate))
        return new, StepInfo(x, y, grad)
