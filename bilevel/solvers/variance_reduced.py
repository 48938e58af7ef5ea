r"""Momentum-based variance reduction: SUSTAIN (STORM) and VRBO (SPIDER/SARAH).

Both correct a running estimate :math:`d_k` of a gradient with the difference of
two stochastic evaluations **on the same samples** at the current and the
previous point,

.. math::

    d_k = \nabla(z_k;\xi_k) + (1-\eta_k)\big(d_{k-1} - \nabla(z_{k-1};\xi_k)\big)
    \quad\text{(STORM; } \eta_k = 1 \text{ is plain SGD)},\qquad
    d_k = d_{k-1} + \nabla(z_k;\xi_k) - \nabla(z_{k-1};\xi_k)\quad\text{(SPIDER)},

applied to the inner gradient :math:`\nabla_y G` and to the Neumann hypergradient
(:mod:`bilevel.solvers.neumann`; the same outer batch, inner batches and random
power at both points).

.. note:: "Same samples" means the same minibatches. With additive oracle noise
   (``bl.run(..., noise=...)``) every evaluation draws fresh noise, so the
   correction differences carry twice the noise variance instead of cancelling
   it: the additive-noise model cannot express a repeated sample.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import torch

from .. import _validate as V
from .. import outer as _outer
from ..schedules import decayed
from . import _stochastic as S
from .base import Solver, StepInfo, register
from .neumann import NEUMANN_MODES, check_neumann_steps

__all__ = ["SUSTAIN", "VRBO", "SUSTAINState", "VRBOState"]


def _draw_estimate(o, mode, Q, size, rng) -> S.HGBatches:
    n = Q if mode == "sum" else rng.randint(Q)
    return S.draw_hg(o, size, n)


def _hg(o, x, y, batches, mode, Q, lr):
    return S.neumann_hypergrad(o, x, y, batches, lr, n_terms=None if mode == "sum" else Q)[0]


class SUSTAINState(NamedTuple):
    x: torch.Tensor
    y: torch.Tensor
    x_prev: torch.Tensor   # previous point, where the estimates' corrections are evaluated
    y_prev: torch.Tensor
    dx: torch.Tensor       # STORM estimate of the hypergradient
    dy: torch.Tensor       # STORM estimate of grad_y g
    k: int
    rng: Any
    outer: Any = None    # the outer update's state (Adam's moments; None for "sgd")


@register("sustain")
@dataclass(frozen=True)
class SUSTAIN(Solver):
    r"""SUSTAIN: single-loop bilevel method with STORM momentum on both levels.

    .. math::

        d^y_k &= \nabla_y G(x_k,y_k;\xi_k) + (1-\eta_k)\big(d^y_{k-1} - \nabla_y G(x_{k-1},y_{k-1};\xi_k)\big) \\
        d^x_k &= \widehat\nabla\Phi(x_k,y_k;\bar\xi_k) + (1-\eta_k)\big(d^x_{k-1} - \widehat\nabla\Phi(x_{k-1},y_{k-1};\bar\xi_k)\big) \\
        x_{k+1} &= x_k - \alpha_k d^x_k,\qquad y_{k+1} = y_k - \beta_k d^y_k,

    with :math:`d_0` the plain stochastic estimates, :math:`\widehat\nabla\Phi` the
    Neumann hypergradient (random power by default, as in Khanduri et al.),
    :math:`\alpha_k = \alpha/(k+1)^{a}`, :math:`\beta_k = \beta/(k+1)^{a}` and
    :math:`\eta_k = \min(1, \eta/(k+1)^{2a})` (the theory: :math:`a = 1/3`).

    ===================  ====================  ==============================================
    field                Khanduri et al.       meaning
    ===================  ====================  ==============================================
    ``inner_lr``         beta                  inner step
    ``outer_lr``         alpha                 outer step
    ``storm_weight``     eta (paper 002: 0.9)  weight of the fresh estimate (1: no momentum)
    ``lr_decay``         1/3                   a (0: constant steps and weight)
    ``neumann_steps``    Q                     range of the random power / products of the sum
    ``neumann_lr``       eta_N                 Neumann step
    ``neumann``          -                     ``"random"`` (paper) or ``"sum"``
    ``batch_size``       -                     minibatch size of every draw
    ===================  ====================  ==============================================

    ``outer_optimizer`` (``"sgd"``: the paper's step; ``"adam"``), ``adam_betas``, ``adam_eps``:
    the outer update on the same direction, :mod:`bilevel.outer`.

    Oracle cost per step (k > 0): Gc = 4, MV = 2 (q + 1).

    Reference: P. Khanduri, S. Zeng, M. Hong, H.-T. Wai, Z. Wang, Z. Yang, "A
    near-optimal algorithm for stochastic bilevel optimization via
    double-momentum", NeurIPS 2021 (SUSTAIN, Algorithm 1); paper 004 slides
    (bilevel momentum, Eqs. (21)-(22)).

    .. note:: Paper 002's code (setups.md A.5) resets both steps each epoch e to
       :math:`\text{lr}_0 (e+2)^{-1/3}`; here the schedule is per iteration.

    >>> import bilevel as bl
    >>> p = bl.problems.quadratic.kappa2d(kappa=2.0)
    >>> s = bl.solvers.SUSTAIN(inner_lr=5.0, outer_lr=1.0, storm_weight=0.5, neumann="sum",
    ...                        neumann_steps=10, neumann_lr=5.0)
    >>> tr = bl.run(s, p, steps=100, eval_every=50)
    >>> bool(tr.grad_norm_sq.iloc[-1] < 1e-6 * tr.grad_norm_sq.iloc[0])
    True
    """

    inner_lr: float = V.hyper(None, "beta", V.STEP, scales="y")
    outer_lr: float = V.hyper(None, "alpha", V.STEP, scales="x")
    storm_weight: float = V.hyper(0.9, "eta", V.UNIT_CLOSED)
    lr_decay: float = V.hyper(0.0, "a", V.NONNEG)
    neumann_steps: int = V.hyper(3, "Q", V.INT0)
    neumann_lr: float = V.hyper(None, "eta_N", V.STEP, scales="y")
    neumann: str = V.hyper("random", check=V.one_of(NEUMANN_MODES))
    batch_size: int | None = V.hyper(None, check=V.optional(V.INT1))
    outer_optimizer: str = _outer.optimizer_field()
    adam_betas: tuple = _outer.betas_field()
    adam_eps: float = _outer.eps_field()

    def check(self):
        if self.storm_weight == 0:
            raise V.HyperparameterError(
                "SUSTAIN: storm_weight (eta) = 0 violates 'in (0, 1]': 0 never refreshes the "
                "estimate; pass e.g. storm_weight=0.9.")
        check_neumann_steps(self)

    def init(self, problem, oracles, generator) -> SUSTAINState:
        V.check_shapes(self, problem)
        x, y = problem.x0.clone(), problem.y0.clone()
        return SUSTAINState(x, y, x, y, torch.zeros_like(x), torch.zeros_like(y), 0,
                            S.HostRNG(generator, 4), self.outer_init(x))

    def step(self, state: SUSTAINState, oracles, generator):
        o, x, y, k = oracles, state.x, state.y, state.k
        xi = S.draw(o, "inner", self.batch_size)
        bt = _draw_estimate(o, self.neumann, self.neumann_steps, self.batch_size, state.rng)
        gy = o.grad_y_g(x, y, xi)
        hx = _hg(o, x, y, bt, self.neumann, self.neumann_steps, self.neumann_lr)
        if k == 0:
            dy, dx = gy, hx
        else:
            w = min(1.0, decayed(self.storm_weight, k, 2 * self.lr_decay))
            gy_old = o.grad_y_g(state.x_prev, state.y_prev, xi)
            hx_old = _hg(o, state.x_prev, state.y_prev, bt, self.neumann, self.neumann_steps,
                         self.neumann_lr)
            dy = gy + (1 - w) * (state.dy - gy_old)
            dx = hx + (1 - w) * (state.dx - hx_old)
        a = decayed(self.outer_lr, k, self.lr_decay)
        b = decayed(self.inner_lr, k, self.lr_decay)
        x_new, ostate = self.outer_step(x, dx, state.outer, a)
        new = SUSTAINState(x_new, (y - b * dy).detach(), x, y, dx.detach(), dy.detach(), k + 1,
                           state.rng, ostate)
        return new, StepInfo(x, y, dx.detach())


class VRBOState(NamedTuple):
    x: torch.Tensor
    y: torch.Tensor
    u: torch.Tensor        # SPIDER estimate of the hypergradient (valid at (x_prev, y_prev))
    w: torch.Tensor        # SPIDER estimate of grad_y g (valid at (x_prev, y_prev))
    x_prev: torch.Tensor
    y_prev: torch.Tensor
    k: int
    outer: Any = None    # the outer update's state (Adam's moments; None for "sgd")


@register("vrbo")
@dataclass(frozen=True)
class VRBO(Solver):
    r"""VRBO: variance-reduced bilevel optimizer with SPIDER estimators and periodic checkpoints.

    .. math::

        &\text{if } k \bmod q = 0:\quad u = \widehat\nabla\Phi(x_k,y_k;\mathcal S_1),\
          w = \nabla_y G(x_k,y_k;\mathcal S_1),\ (\bar x,\bar y) = (x_k, y_k) \\
        &x_{k+1} = x_k - \alpha u,\qquad y^0 = y_k \\
        &\text{for } t = 0..m-1:\
          u \mathrel{+}= \widehat\nabla\Phi(x_{k+1},y^t;\mathcal S_2) - \widehat\nabla\Phi(\bar x,\bar y;\mathcal S_2),\
          w \mathrel{+}= \nabla_y G(x_{k+1},y^t;\mathcal S_2) - \nabla_y G(\bar x,\bar y;\mathcal S_2),\\
        &\qquad (\bar x,\bar y) = (x_{k+1}, y^t),\quad y^{t+1} = y^t - \beta w;\qquad y_{k+1} = y^m

    (:math:`\widehat\nabla\Phi`: the Neumann series with Q products, the same
    batches at both points). :math:`(\bar x,\bar y)` is the point at which the
    estimates are valid, so each correction spans exactly one move of
    :math:`x` or :math:`y`.

    ============================  ================  ===========================================
    field                         Yang, Ji, Liang   meaning
    ============================  ================  ===========================================
    ``inner_lr``                  beta              inner step
    ``outer_lr``                  alpha             outer step
    ``inner_steps``               m                 SPIDER inner steps per outer step
    ``period``                    q                 checkpoint period (outer steps)
    ``neumann_steps``             Q                 Hessian-vector products of each estimate
    ``neumann_lr``                eta               Neumann step
    ``batch_size``                S_2               batch of the corrections
    ``checkpoint_batch_size``     S_1               checkpoint batch (None: the sampler's default, e.g. full)
    ============================  ================  ===========================================

    ``outer_optimizer`` (``"sgd"``: the paper's step; ``"adam"``), ``adam_betas``, ``adam_eps``:
    the outer update on the same direction, :mod:`bilevel.outer`.

    Oracle cost: a checkpoint Gc = 2, MV = Q + 1; each inner step Gc = 4,
    MV = 2(Q + 1).

    Reference: J. Yang, K. Ji, Y. Liang, "Provably faster algorithms for bilevel
    optimization", NeurIPS 2021 (VRBO, Algorithm 2).

    .. note:: Paper 002's code uses ``period = 2``, ``inner_steps = 2`` and
       evaluates the checkpoint's F-gradients on a validation batch (setups.md
       A.5). benchopt's VRBO evaluates both corrections at the new x; here the
       old point keeps its own x, which makes the SPIDER sums exact telescopes.

    >>> import bilevel as bl
    >>> p = bl.problems.quadratic.kappa2d(kappa=2.0)
    >>> s = bl.solvers.VRBO(inner_lr=5.0, outer_lr=1.0, inner_steps=2, period=5,
    ...                     neumann_steps=10, neumann_lr=5.0)
    >>> tr = bl.run(s, p, steps=60, eval_every=30)
    >>> bool(tr.grad_norm_sq.iloc[-1] < 1e-4 * tr.grad_norm_sq.iloc[0])
    True
    """

    inner_lr: float = V.hyper(None, "beta", V.STEP, scales="y")
    outer_lr: float = V.hyper(None, "alpha", V.STEP, scales="x")
    inner_steps: int = V.hyper(2, "m", V.INT1)
    period: int = V.hyper(2, "q", V.INT1)
    neumann_steps: int = V.hyper(3, "Q", V.INT0)
    neumann_lr: float = V.hyper(None, "eta", V.STEP, scales="y")
    batch_size: int | None = V.hyper(None, "S_2", V.optional(V.INT1))
    checkpoint_batch_size: int | None = V.hyper(None, "S_1", V.optional(V.INT1))
    outer_optimizer: str = _outer.optimizer_field()
    adam_betas: tuple = _outer.betas_field()
    adam_eps: float = _outer.eps_field()

    def init(self, problem, oracles, generator) -> VRBOState:
        V.check_shapes(self, problem)
        x, y = problem.x0.clone(), problem.y0.clone()
        return VRBOState(x, y, torch.zeros_like(x), torch.zeros_like(y), x, y, 0, self.outer_init(x))

    def step(self, state: VRBOState, oracles, generator):
        o, x, y, Q, eta = oracles, state.x, state.y, self.neumann_steps, self.neumann_lr
        if state.k % self.period == 0:
            cbs = self.checkpoint_batch_size
            u = _hg(o, x, y, S.draw_hg(o, cbs, Q), "sum", Q, eta)
            w = o.grad_y_g(x, y, S.draw(o, "inner", cbs))
            xp, yp = x, y
        else:
            u, w, xp, yp = state.u, state.w, state.x_prev, state.y_prev
        used = u
        x_new, ostate = self.outer_step(x, u, state.outer, self.outer_lr)
        x_new = x_new.detach()
        yt = y
        for _ in range(self.inner_steps):
            bt = S.draw_hg(o, self.batch_size, Q)
            xi = S.draw(o, "inner", self.batch_size)
            u = u + _hg(o, x_new, yt, bt, "sum", Q, eta) - _hg(o, xp, yp, bt, "sum", Q, eta)
            w = w + o.grad_y_g(x_new, yt, xi) - o.grad_y_g(xp, yp, xi)
            xp, yp = x_new, yt
            yt = (yt - self.inner_lr * w).detach()
        new = VRBOState(x_new, yt, u.detach(), w.detach(), xp, yp, state.k + 1, ostate)
        return new, StepInfo(x, y, used.detach())
