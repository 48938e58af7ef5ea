r"""STABLE: single-timescale stochastic bilevel optimization with a correction term."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import torch

from .. import _validate as V
from .. import outer as _outer
from . import _stochastic as S
from .base import Solver, StepInfo, register

__all__ = ["STABLE", "STABLEState"]


class STABLEState(NamedTuple):
    x: torch.Tensor      # outer iterate x_k
    y: torch.Tensor      # inner iterate y_k
    outer: Any = None    # the outer update's state (Adam's moments; None for "sgd")


@register("stable")
@dataclass(frozen=True)
class STABLE(Solver):
    r"""STABLE (paper 004's Algorithms 5-6): the UL step first, then an LL step with a correction term.

    .. math::

        x_{k+1} &= x_k - \alpha\big[\nabla_x F(x_k,y_k;\xi) - \nabla^2_{xy}G(x_k,y_k;\zeta_0)\,v_k\big],
        \qquad v_k \approx [\nabla^2_{yy}g(x_k,y_k)]^{-1}\nabla_y F(x_k,y_k;\xi) \\
        y_{k+1} &= y_k - \beta\nabla_y G(x_k,y_k;\xi')
           \underbrace{-\ [\nabla^2_{yy}g(x_k,y_k)]^{-1}\nabla^2_{yx}G(x_k,y_k;\zeta')\,(x_{k+1}-x_k)}_{
           \nabla y^*(x_k)\,(x_{k+1}-x_k)\ \text{(correction term)}}

    The correction moves ``y`` along the implicit derivative of :math:`y^*` by
    the outer step, so ``y`` tracks :math:`y^*(x_{k+1})` to first order and both
    steps can be of the same order (single timescale). Both inverse-Hessian
    products are truncated Neumann series with Q stochastic HVPs
    (:mod:`bilevel.solvers.neumann`); :math:`\nabla^2_{yx}G\,d` is one double
    backward (counted as a JVP).

    ===================  ===============  ==========================================
    field                paper 004        meaning
    ===================  ===============  ==========================================
    ``inner_lr``         beta^k           LL step
    ``outer_lr``         alpha^k          UL step (theory: both O(1/sqrt K))
    ``neumann_steps``    -                HVPs per inverse-Hessian product
    ``neumann_lr``       -                Neumann step
    ``correction``       CT               apply the correction term (False: no CT)
    ``batch_size``       -                minibatch size of every draw
    ===================  ===============  ==========================================

    ``outer_optimizer`` (``"sgd"``: the paper's step; ``"adam"``), ``adam_betas``, ``adam_eps``:
    the outer update on the same direction, :mod:`bilevel.outer`.

    Oracle cost per step: Gc = 2, MV = 2 Q + 2 (Q + 1 without correction).

    Reference: T. Chen, Y. Sun, W. Yin, "A single-timescale method for
    stochastic bilevel optimization", AISTATS 2022; paper 004 slides,
    Algorithms 5-6.

    .. note:: Matrix-free deviation: Chen et al. keep explicit, variance-reduced
       (moving-average) estimates of :math:`\nabla^2_{yy}g` and
       :math:`\nabla^2_{xy}g` (Algorithm 6), which needs
       :math:`d_y^2 + d_x d_y` memory. Here each inverse product is a fresh
       stochastic Neumann series, which scales to large problems but drops the
       matrix-level variance reduction. The UL projection is the identity.

    >>> import bilevel as bl
    >>> p = bl.problems.quadratic.kappa2d(kappa=2.0)
    >>> s = bl.solvers.STABLE(inner_lr=5.0, outer_lr=1.0, neumann_steps=10, neumann_lr=5.0)
    >>> tr = bl.run(s, p, steps=100, eval_every=50)
    >>> bool(tr.grad_norm_sq.iloc[-1] < 1e-6 * tr.grad_norm_sq.iloc[0])
    True
    """

    inner_lr: float = V.hyper(None, "beta", V.STEP, scales="y")
    outer_lr: float = V.hyper(None, "alpha", V.STEP, scales="x")
    neumann_steps: int = V.hyper(3, "Q", V.INT0)
    neumann_lr: float = V.hyper(None, "eta", V.STEP, scales="y")
    correction: bool = V.hyper(True, check=V.BOOL)
    batch_size: int | None = V.hyper(None, check=V.optional(V.INT1))
    outer_optimizer: str = _outer.optimizer_field()
    adam_betas: tuple = _outer.betas_field()
    adam_eps: float = _outer.eps_field()

    def init(self, problem, oracles, generator) -> STABLEState:
        V.check_shapes(self, problem)
        return STABLEState(problem.x0.clone(), problem.y0.clone(), self.outer_init(problem.x0))

    def step(self, state: STABLEState, oracles, generator):
        o, x, y, Q, eta, size = oracles, state.x, state.y, self.neumann_steps, self.neumann_lr, \
            self.batch_size
        grad, _ = S.neumann_hypergrad(o, x, y, S.draw_hg(o, size, Q), eta)
        x_new, ostate = self.outer_step(x, grad, state.outer, self.outer_lr)
        y_new = y - self.inner_lr * o.grad_y_g(x, y, S.draw(o, "inner", size))
        if self.correction:
            b = S.cross_yx(o, x, y, x_new - x, S.draw(o, "inner", size))
            cs = S.curvatures(o, x, y, S.draw_many(o, "inner", size, Q))
            y_new = y_new - S.neumann_series(cs, b, eta)
        return STABLEState(x_new.detach(), y_new.detach(), ostate), StepInfo(x, y, grad)
