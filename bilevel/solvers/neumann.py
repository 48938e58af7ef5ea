r"""Stochastic AID with Neumann-series inverse-Hessian products: StocBiO, BSA, TTSA.

All three estimate the hypergradient

.. math::

    \widehat\nabla\Phi(x, y) = \nabla_x F(x,y;\xi) - \nabla^2_{xy} G(x,y;\zeta_0)\, v,\qquad
    v \approx [\nabla^2_{yy} g(x,y)]^{-1}\nabla_y F(x,y;\xi),

with stochastic Hessian-vector products (a fresh inner minibatch per product,
paper 004's "stochastic Neumann approximation"):

* **truncated series** (StocBiO): :math:`v = \eta\sum_{q=0}^{Q}\prod_{j=1}^{q}(I-\eta\nabla^2_{yy}G(\zeta_j))\nabla_y F`,
  Q products;
* **one random power** (BSA, TTSA; Ghadimi and Wang 2018, Algorithm 3):
  :math:`v = Q\eta\prod_{j=1}^{q}(I-\eta\nabla^2_{yy}G(\zeta_j))\nabla_y F` with
  :math:`q` uniform on :math:`\{0,\dots,Q-1\}`, whose mean is the series with Q terms.

They differ in how ``y`` follows :math:`y^*(x)`: N warm-started SGD steps per
outer step (StocBiO, BSA: double loop) or one step (TTSA: single loop, two
time scales). On a deterministic problem (no sampler) the oracles are exact
unless :func:`bilevel.run` adds ``noise``.
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

__all__ = ["StocBiO", "BSA", "TTSA", "DoubleLoopState", "TTSAState"]

NEUMANN_MODES = ("sum", "random")


class DoubleLoopState(NamedTuple):
    x: torch.Tensor      # outer iterate x_k
    y: torch.Tensor      # inner warm start (y_{k-1}^N)
    k: int               # outer iteration counter (step-size schedules)
    rng: Any             # host stream of the random Neumann power (BSA)
    outer: Any = None    # the outer update's state (Adam's moments; None for "sgd")


def _inner_sgd(o, x, y, steps, lr, size):
    for _ in range(steps):
        y = y - lr * o.grad_y_g(x, y, S.draw(o, "inner", size))
    return y


def _estimate(o, x, y, mode, steps, lr, size, rng):
    """Neumann hypergradient: ``"sum"`` (Q products) or ``"random"`` (a random power < Q)."""
    if mode == "sum":
        return S.neumann_hypergrad(o, x, y, S.draw_hg(o, size, steps), lr)
    q = rng.randint(steps)
    return S.neumann_hypergrad(o, x, y, S.draw_hg(o, size, q), lr, n_terms=steps)


def check_neumann_steps(s):
    """``neumann="random"`` draws a power in {0..Q-1}: it needs Q >= 1 (the sum allows Q = 0)."""
    if s.neumann == "random" and s.neumann_steps == 0:
        raise V.HyperparameterError(
            f"{type(s).__name__}: neumann_steps (Q) = 0 violates 'int >= 1' for neumann='random' "
            "(a power drawn from {0..Q-1}); pass neumann_steps >= 1 or neumann='sum'.")


@register("stocbio")
@dataclass(frozen=True)
class StocBiO(Solver):
    r"""StocBiO: N warm-started inner SGD steps, then a Neumann-series hypergradient.

    .. math::

        y_k^{t+1} &= y_k^t - \alpha\nabla_y G(x_k, y_k^t; \mathcal S_t),\quad t = 0..N-1,
            \qquad y_k^0 = y_{k-1}^N \\
        v_k &= \eta\sum_{q=0}^{Q}\prod_{j=1}^{q}\big(I - \eta\nabla^2_{yy}G(x_k, y_k^N;\mathcal B_j)\big)
            \nabla_y F(x_k, y_k^N; \mathcal D_F) \\
        \widehat\nabla\Phi(x_k) &= \nabla_x F(x_k, y_k^N;\mathcal D_F)
            - \nabla^2_{xy} G(x_k, y_k^N;\mathcal D_G)\,v_k,
        \qquad x_{k+1} = x_k - \beta\,\widehat\nabla\Phi(x_k)

    ===================  ===============  ====================================
    field                Ji et al. 2021   meaning
    ===================  ===============  ====================================
    ``inner_steps``      D (here N)       inner SGD steps per outer step
    ``inner_lr``         alpha            inner SGD step
    ``neumann_steps``    Q                Hessian-vector products (Q+1 terms)
    ``neumann_lr``       eta              Neumann step (needs eta L < 2)
    ``outer_lr``         beta             outer step
    ``batch_size``       S, B, D_F, D_G   minibatch size of every draw
    ``warm_start``       -                start from y_{k-1}^N (else y0)
    ===================  ===============  ====================================

    ``outer_optimizer`` (``"sgd"``: the paper's step; ``"adam"``), ``adam_betas``, ``adam_eps``:
    the outer update on the same direction, :mod:`bilevel.outer`.

    Oracle cost per outer step: Gc = N + 1, MV = Q + 1; samples =
    (N + Q + 2) batch_size on a minibatch problem (every product draws its own batch).

    Reference: K. Ji, J. Yang, Y. Liang, "Bilevel optimization: convergence
    analysis and enhanced design", ICML 2021, Algorithms 2-3 (stocBiO).

    .. note:: Paper 002's code (setups.md A.5) drops the :math:`q = 0` term
       :math:`\eta\nabla_y F` of the series and lets the inner-loop gradients
       accumulate (no ``zero_grad``); both quirks are not reproduced.

    >>> import bilevel as bl
    >>> p = bl.problems.quadratic.kappa2d(kappa=2.0)
    >>> s = bl.solvers.StocBiO(inner_steps=2, inner_lr=5.0, neumann_steps=10, neumann_lr=5.0,
    ...                        outer_lr=1.0)
    >>> tr = bl.run(s, p, steps=100, eval_every=50)
    >>> bool(tr.grad_norm_sq.iloc[-1] < 1e-6 * tr.grad_norm_sq.iloc[0])
    True
    """

    inner_steps: int = V.hyper(3, "N", V.INT1)
    inner_lr: float = V.hyper(None, "alpha", V.STEP, scales="y")
    neumann_steps: int = V.hyper(3, "Q", V.INT0)
    neumann_lr: float = V.hyper(None, "eta", V.STEP, scales="y")
    outer_lr: float = V.hyper(None, "beta", V.STEP, scales="x")
    batch_size: int | None = V.hyper(None, check=V.optional(V.INT1))
    warm_start: bool = V.hyper(True, check=V.BOOL)
    outer_optimizer: str = _outer.optimizer_field()
    adam_betas: tuple = _outer.betas_field()
    adam_eps: float = _outer.eps_field()

    def init(self, problem, oracles, generator) -> DoubleLoopState:
        V.check_shapes(self, problem)
        return DoubleLoopState(problem.x0.clone(), problem.y0.clone(), 0, None,
                               self.outer_init(problem.x0))

    def step(self, state: DoubleLoopState, oracles, generator):
        x = state.x
        y = state.y if self.warm_start else oracles.problem.y0
        y = _inner_sgd(oracles, x, y, self.inner_steps, self.inner_lr, self.batch_size)
        grad, _ = _estimate(oracles, x, y, "sum", self.neumann_steps, self.neumann_lr,
                            self.batch_size, None)
        x_new, ostate = self.outer_step(x, grad, state.outer, self.outer_lr)
        return DoubleLoopState(x_new, y.detach(), state.k + 1, None, ostate), StepInfo(x, y, grad)


@register("bsa")
@dataclass(frozen=True)
class BSA(Solver):
    r"""BSA: double-loop bilevel stochastic approximation with a random Neumann power.

    .. math::

        y_k^{t+1} &= y_k^t - \alpha_k\nabla_y G(x_k, y_k^t;\xi_t),\quad t=0..N-1,\qquad y_k^0 = y_{k-1}^N \\
        q &\sim \mathcal U\{0,\dots,Q-1\},\qquad
        v_k = Q\eta\prod_{j=1}^{q}\big(I-\eta\nabla^2_{yy}G(x_k,y_k^N;\zeta_j)\big)\nabla_y F(x_k,y_k^N;\xi') \\
        x_{k+1} &= x_k - \beta_k\big[\nabla_x F(x_k,y_k^N;\xi') - \nabla^2_{xy}G(x_k,y_k^N;\zeta_0)\,v_k\big],
        \qquad \alpha_k = \frac{\alpha}{(k+1)^{a}},\ \beta_k = \frac{\beta}{(k+1)^{b}}

    ======================  ================  ==============================================
    field                   paper 004 / G-W   meaning
    ======================  ================  ==============================================
    ``inner_steps``         T (t_k)           inner SGD steps per outer step
    ``inner_lr``            beta^0            inner step (slides: LL rate beta^k)
    ``inner_lr_decay``      -                 a in alpha_k = alpha/(k+1)^a (0: constant)
    ``neumann_steps``       Q (t_max)         range of the random power q
    ``neumann_lr``          eta (1/L)         Neumann step
    ``outer_lr``            alpha^0           outer step (slides: UL rate alpha^k)
    ``outer_lr_decay``      -                 b in beta_k = beta/(k+1)^b (0: constant)
    ``batch_size``          -                 minibatch size of every draw
    ======================  ================  ==============================================

    ``outer_optimizer`` (``"sgd"``: the paper's step; ``"adam"``), ``adam_betas``, ``adam_eps``:
    the outer update on the same direction, :mod:`bilevel.outer`.

    Ghadimi and Wang's theory takes :math:`\beta_k\propto k^{-1/2}` and inner
    loops growing with k; the decays are left to the user (defaults constant).
    Oracle cost per outer step: Gc = N + 1, MV = q + 1 (q random, mean (Q-1)/2).

    Reference: S. Ghadimi, M. Wang, "Approximation methods for bilevel
    programming", arXiv:1802.02246 (2018), Algorithms 2-3; paper 004 slides,
    Algorithm 2 (inner loop at :math:`x_k`, then the UL step at :math:`y_{k+1}`).

    >>> import bilevel as bl
    >>> p = bl.problems.quadratic.kappa2d(kappa=2.0)
    >>> s = bl.solvers.BSA(inner_steps=2, inner_lr=5.0, neumann_steps=10, neumann_lr=5.0,
    ...                    outer_lr=0.5, outer_lr_decay=0.5)
    >>> tr = bl.run(s, p, steps=200, eval_every=100)
    >>> bool(tr.grad_norm_sq.iloc[-1] < 0.2 * tr.grad_norm_sq.iloc[0])
    True
    """

    inner_steps: int = V.hyper(3, "T", V.INT1)
    inner_lr: float = V.hyper(None, "beta", V.STEP, scales="y")
    neumann_steps: int = V.hyper(3, "Q", V.INT1)
    neumann_lr: float = V.hyper(None, "eta", V.STEP, scales="y")
    outer_lr: float = V.hyper(None, "alpha", V.STEP, scales="x")
    inner_lr_decay: float = V.hyper(0.0, "a", V.NONNEG)
    outer_lr_decay: float = V.hyper(0.0, "b", V.NONNEG)
    batch_size: int | None = V.hyper(None, check=V.optional(V.INT1))
    outer_optimizer: str = _outer.optimizer_field()
    adam_betas: tuple = _outer.betas_field()
    adam_eps: float = _outer.eps_field()

    def init(self, problem, oracles, generator) -> DoubleLoopState:
        V.check_shapes(self, problem)
        return DoubleLoopState(problem.x0.clone(), problem.y0.clone(), 0, S.HostRNG(generator, 1),
                               self.outer_init(problem.x0))

    def step(self, state: DoubleLoopState, oracles, generator):
        x, k = state.x, state.k
        lr_in = decayed(self.inner_lr, k, self.inner_lr_decay)
        y = _inner_sgd(oracles, x, state.y, self.inner_steps, lr_in, self.batch_size)
        grad, _ = _estimate(oracles, x, y, "random", self.neumann_steps, self.neumann_lr,
                            self.batch_size, state.rng)
        x_new, ostate = self.outer_step(x, grad, state.outer,
                                        decayed(self.outer_lr, k, self.outer_lr_decay))
        return DoubleLoopState(x_new, y.detach(), k + 1, state.rng, ostate), StepInfo(x, y, grad)


class TTSAState(NamedTuple):
    x: torch.Tensor      # outer iterate x_k
    y: torch.Tensor      # inner iterate y_k
    k: int               # iteration counter (step-size schedules)
    rng: Any             # host stream of the random Neumann power
    outer: Any = None    # the outer update's state (Adam's moments; None for "sgd")


@register("ttsa")
@dataclass(frozen=True)
class TTSA(Solver):
    r"""TTSA: two-timescale single-loop stochastic approximation.

    .. math::

        y_{k+1} &= y_k - \beta_k\nabla_y G(x_k, y_k;\xi_k) \\
        x_{k+1} &= x_k - \alpha_k\big[\nabla_x F(x_k,y_{k+1};\xi'_k)
                   - \nabla^2_{xy}G(x_k,y_{k+1};\zeta_0)\,v_k\big],\\
        v_k &= Q\eta\prod_{j=1}^{q}\big(I-\eta\nabla^2_{yy}G(x_k,y_{k+1};\zeta_j)\big)\nabla_y F(x_k,y_{k+1};\xi'_k),
        \quad q\sim\mathcal U\{0..Q-1\}

    with :math:`\alpha_k = \alpha/(k+1)^{a}`, :math:`\beta_k = \beta/(k+1)^{b}`;
    the theory takes :math:`\alpha_k\ll\beta_k`, e.g. :math:`a = 3/5, b = 2/5`
    (weakly convex :math:`\Phi`, paper 004) or :math:`a = 1, b = 2/3` (strongly
    convex :math:`\Phi`). ``neumann="sum"`` uses the deterministic truncated series
    (Q products) instead of the random power.

    ======================  ===============  ==============================================
    field                   Hong et al.      meaning
    ======================  ===============  ==============================================
    ``inner_lr``            beta             inner (fast) step
    ``inner_lr_decay``      -                b in beta_k = beta/(k+1)^b (0: constant)
    ``outer_lr``            alpha            outer (slow) step
    ``outer_lr_decay``      -                a in alpha_k = alpha/(k+1)^a (0: constant)
    ``neumann_steps``       t_max (Q)        range of the random power / products of the sum
    ``neumann_lr``          c_h (eta)        Neumann step
    ``neumann``             -                ``"random"`` (paper) or ``"sum"``
    ``batch_size``          -                minibatch size of every draw
    ======================  ===============  ==============================================

    ``outer_optimizer`` (``"sgd"``: the paper's step; ``"adam"``), ``adam_betas``, ``adam_eps``:
    the outer update on the same direction, :mod:`bilevel.outer`.

    The UL projection :math:`P_\Theta` of the slides is the identity here
    (unconstrained problems). Oracle cost per step: Gc = 2, MV = q + 1.

    Reference: M. Hong, H.-T. Wai, Z. Wang, Z. Yang, "A two-timescale stochastic
    algorithm framework for bilevel optimization", SIAM J. Optim. 33 (2023);
    paper 004 slides, Algorithms 4 and 8.

    .. note:: Paper 002's code (setups.md A.5) draws the power in {1..Q} and
       does not rescale by Q; here the power and the factor :math:`Q\eta` follow
       Ghadimi and Wang's unbiased construction.

    >>> import bilevel as bl
    >>> p = bl.problems.quadratic.kappa2d(kappa=2.0)
    >>> s = bl.solvers.TTSA(inner_lr=5.0, outer_lr=0.5, neumann_steps=10, neumann_lr=5.0,
    ...                     outer_lr_decay=0.5)
    >>> tr = bl.run(s, p, steps=200, eval_every=100)
    >>> bool(tr.grad_norm_sq.iloc[-1] < 0.5 * tr.grad_norm_sq.iloc[0])
    True
    """

    inner_lr: float = V.hyper(None, "beta", V.STEP, scales="y")
    outer_lr: float = V.hyper(None, "alpha", V.STEP, scales="x")
    neumann_steps: int = V.hyper(3, "Q", V.INT0)
    neumann_lr: float = V.hyper(None, "eta", V.STEP, scales="y")
    neumann: str = V.hyper("random", check=V.one_of(NEUMANN_MODES))
    inner_lr_decay: float = V.hyper(0.0, "b", V.NONNEG)
    outer_lr_decay: float = V.hyper(0.0, "a", V.NONNEG)
    batch_size: int | None = V.hyper(None, check=V.optional(V.INT1))
    outer_optimizer: str = _outer.optimizer_field()
    adam_betas: tuple = _outer.betas_field()
    adam_eps: float = _outer.eps_field()

    def check(self):
        check_neumann_steps(self)

    def init(self, problem, oracles, generator) -> TTSAState:
        V.check_shapes(self, problem)
        return TTSAState(problem.x0.clone(), problem.y0.clone(), 0, S.HostRNG(generator, 2),
                         self.outer_init(problem.x0))

    def step(self, state: TTSAState, oracles, generator):
        x, k = state.x, state.k
        y = state.y - decayed(self.inner_lr, k, self.inner_lr_decay) * oracles.grad_y_g(
            x, state.y, S.draw(oracles, "inner", self.batch_size))
        grad, _ = _estimate(oracles, x, y, self.neumann, self.neumann_steps, self.neumann_lr,
                            self.batch_size, state.rng)
        x_new, ostate = self.outer_step(x, grad, state.outer,
                                        decayed(self.outer_lr, k, self.outer_lr_decay))
        return TTSAState(x_new, y.detach(), k + 1, state.rng, ostate), StepInfo(x, y, grad)
