r"""STABLE: single-timescale stochastic bilevel optimization with a correction term."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch

from .. import _validate as V
from . import _stochastic as S
from .base import Solver, StepInfo, register

__all__ = ["STABLE", "STABLEState"]


class STABLEState(NamedTuple):
    x: torch.Tensor      # outer iterate x_k
    y: torch.Tensor      # inner iterate y_k


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

    ==================  ===============  ==========================================
    field               paper 004        meaning
    ==================  ===============  ==========================================
    ``inner_lr``        beta^k           LL step
    ``outer_lr``        alpha^k          UL step (theory: both O(1/sqrt K))
    ``neumann_steps``   -                HVPs per inverse-Hessian product
    ``neumann_lr``      -                Neumann step
    ``correction``      CT               apply the correction term (False: no CT)
    ``batch_size``      -                minibatch size of every draw
    ==================  ===============  ==========================================

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

    inner_lr: float = None
    outer_lr: float = None
    neumann_steps: int = 3
    neumann_lr: float = None
    correction: bool = True
    batch_size: int | None = None

    def __post_init__(self):
        V.step_size("STABLE", "inner_lr (beta)", self.inner_lr)
        V.step_size("STABLE", "outer_lr (alpha)", self.outer_lr)
        V.step_size("STABLE", "neumann_lr", self.neumann_lr)
        V.nonneg_int("STABLE", "neumann_steps", self.neumann_steps)
        if not isinstance(self.correction, bool):
            raise ValueError(f"STABLE: correction must be True or False, got {self.correction!r}.")
        S.batch_size("STABLE", self.batch_size)

    def init(self, problem, oracles, generator) -> STABLEState:
        V.check_step_shape("STABLE", "inner_lr", self.inner_lr, problem.x0, problem.dim_y)
        V.check_step_shape("STABLE", "neumann_lr", self.neumann_lr, problem.x0, problem.dim_y)
        V.check_step_shape("STABLE", "outer_lr", self.outer_lr, problem.x0, problem.dim_x)
        return STABLEState(problem.x0.clone(), problem.y0.clone())

    def step(self, state: STABLEState, oracles, generator):
        o, x, y, Q, eta, size = oracles, state.x, state.y, self.neumann_steps, self.neumann_lr, \
            self.batch_size
        grad, _ = S.neumann_hypergrad(o, x, y, S.draw_hg(o, size, Q), eta)
        x_new = x - self.outer_lr * grad
        y_new = y - self.inner_lr * o.grad_y_g(x, y, S.draw(o, "inner", size))
        if self.correction:
            b = S.cross_yx(o, x, y, x_new - x, S.draw(o, "inner", size))
            cs = S.curvatures(o, x, y, S.draw_many(o, "inner", size, Q))
            y_new = y_new - S.neumann_series(cs, b, eta)
        return STABLEState(x_new.detach(), y_new.detach()), StepInfo(x, y, grad)
