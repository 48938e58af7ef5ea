r"""UniBiO (paper 002): bilevel optimization with a p-uniformly convex lower level.

Three pieces, each usable on its own:

* :func:`epoch_schedule` / :func:`epoch_sgd`: Algorithm 1, Epoch-SGD with a
  shrinking ball (Hazan and Kale's Epoch-GD for p = 2);
* :func:`generalized_hypergradient`: Theorem 4.1's hypergradient in the variable
  :math:`u = y^{\langle p-1\rangle}` evaluated exactly (dense, small problems);
  the solver estimates it with a generalized Neumann series
  (:func:`bilevel.solvers._stochastic.neumann_hypergrad` with ``p``);
* :class:`UniBiO`: Algorithm 2 (warm start, periodic lower-level updates,
  normalized momentum on x).

Generalized derivatives (setups.md A.1, A.3). With :math:`y = u^{\langle 1/(p-1)\rangle}`,
:math:`D = \partial y/\partial u = \operatorname{diag}\big(1/((p-1)|y|^{p-2})\big)`,
:math:`\nabla_u F = D\nabla_y F` and, in gradient layout
(:math:`[\nabla_a\nabla_b g]_{ij} = \partial^2 g/\partial a_i\partial b_j`),
:math:`\nabla_u\nabla_y g = D\,\nabla^2_{yy}g`. Theorem 4.1:

.. math::

    \nabla\Phi(x) = \nabla_x f - \nabla_x\nabla_y g\,[\nabla_u\nabla_y g]^{-1}\nabla_u f
    = \nabla_x f - \nabla^2_{xy} g\,(D H)^{-1} D\,\nabla_y f,

which equals the standard formula wherever :math:`H = \nabla^2_{yy} g` is
invertible, and stays well defined where the p-uniformly convex :math:`g` has a
singular Hessian (e.g. :math:`y^* = 0` in Example 3, where
:math:`H = (p-1)y^{p-2} = 0` but :math:`DH = 1`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch

from .. import _validate as V
from .. import blocks as B
from .. import outer as _outer
from ..schedules import decayed
from . import _stochastic as S
from .base import Solver, StepInfo, register

__all__ = ["UniBiO", "UniBiOState", "epoch_schedule", "epoch_sgd", "generalized_hypergradient",
           "INNER_SOLVERS"]

INNER_SOLVERS = ("epoch_sgd", "sgd")
INNER_INITS = ("warm", "random")
MAX_EPOCHS = 50


def _check_p(owner, p):
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not math.isfinite(p) or p < 2:
        raise ValueError(f"{owner}: p (uniform-convexity exponent) must be a real number >= 2, got {p!r}.")
    return float(p)


def epoch_schedule(p: float, epoch_length: int, radius: float, lr: float, budget: int,
                   max_epochs: int = MAX_EPOCHS) -> list[tuple[int, float, float]]:
    r"""Epochs :math:`(T_k, D_k, \gamma_k)` of one Epoch-SGD call (setups.md A.2).

    .. math::

        T_k = \lfloor T_1 2^{\tau(k-1)}\rfloor,\quad D_k = D_1 2^{-(k-1)/p},\quad
        \gamma_k = \gamma_1 2^{-(k-1)},\quad \tau = \tfrac{2(p-1)}{p},

    for :math:`k = 1, 2, \dots` while :math:`\sum_{i=0}^{k-1} T_1 2^{\tau i}\le` ``budget``
    and :math:`k <` ``max_epochs`` (the loop condition of paper 002's code,
    unfloored lengths).

    >>> [(t, round(d, 3), g) for t, d, g in epoch_schedule(4, 5, 1.0, 1.0, 100)]
    [(5, 1.0, 1.0), (14, 0.841, 0.5), (40, 0.707, 0.25)]
    """
    p = _check_p("epoch_schedule", p)
    V.positive_int("epoch_schedule", "epoch_length (T_1)", epoch_length)
    V.nonneg_int("epoch_schedule", "budget", budget)
    tau = 2 * (p - 1) / p
    out, k, cum = [], 1, 0.0
    while k < max_epochs:
        cum += epoch_length * 2 ** (tau * (k - 1))
        if cum > budget:
            break
        out.append((int(epoch_length * 2 ** (tau * (k - 1))), radius * 2 ** (-(k - 1) / p),
                    lr * 2 ** (-(k - 1))))
        k += 1
    return out


def _project(w, center, radius, blocks=B.WHOLE):
    """Euclidean projection of ``w`` onto the ball ``B(center, radius)`` (per block of ``blocks``; no host sync)."""
    d = w - center
    n = blocks.norms(d, "y")
    return center + d * torch.clamp(radius / n.clamp_min(torch.finfo(w.dtype).tiny), max=1.0)


def epoch_sgd(oracles, x, w, *, p: float, lr, epoch_length: int, radius: float, budget: int,
              batch_size=None, record: list | None = None, blocks=None) -> torch.Tensor:
    r"""Algorithm 1 of paper 002: Epoch-SGD with a shrinking ball, from ``w`` at fixed ``x``.

    .. math::

        w_{t+1} = \Pi_{B(w_1^k, D_k)}\big(w_t - \gamma_k\nabla_y G(x, w_t;\zeta_t)\big),\ t = 1..T_k,
        \qquad w_1^{k+1} = \frac{1}{T_k}\sum_{t=1}^{T_k} w_{t+1},

    over the epochs of :func:`epoch_schedule`; returns the last epoch average
    (``w`` itself if the budget holds no epoch). Each step draws a fresh inner
    batch on a minibatch problem. ``record``, if a list, receives
    ``(epoch k, center, D_k, w_{t+1})`` after every step (for tests and plots).
    ``blocks`` (a :class:`~bilevel.blocks.Blocks`; default ``problem.blocks``)
    makes the balls per block of a batched problem.

    >>> import torch, bilevel as bl
    >>> prob = bl.problems.uniform_convex.example3(p=2)
    >>> o = bl.oracles.Oracles(prob)
    >>> w = epoch_sgd(o, prob.x0, prob.y0, p=2, lr=1.0, epoch_length=5, radius=1.0, budget=100)
    >>> o.counts.grad_g, bool(abs(w - prob.y_star(prob.x0)) < 1e-3)
    (75, True)
    """
    blocks = B.of(oracles.problem) if blocks is None else blocks
    for k, (T, D, gamma) in enumerate(epoch_schedule(p, epoch_length, radius, 1.0, budget), start=1):
        gamma = lr * gamma                      # gamma_k = gamma_1 2^{-(k-1)} (lr may be a tensor)
        center = w
        acc = torch.zeros_like(w)
        for _ in range(T):
            g = oracles.grad_y_g(x, w, S.draw(oracles, "inner", batch_size))
            w = _project(w - gamma * g, center, D, blocks)
            acc = acc + w
            if record is not None:
                record.append((k, center, D, w))
        w = acc / T
    return w.detach()


def generalized_hypergradient(problem, x: torch.Tensor, y: torch.Tensor, p: float = 2.0) -> torch.Tensor:
    r"""Theorem 4.1's hypergradient at ``(x, y)``, exactly (dense derivatives; small problems).

    .. math::

        \nabla_x f(x,y) - \nabla_x\nabla_y g(x,y)\,\big[D\,\nabla^2_{yy}g(x,y)\big]^{-1} D\,\nabla_y f(x,y),
        \qquad D = \operatorname{diag}\big(1/((p-1)|y|^{p-2})\big).

    At :math:`y = y^*(x)` this is :math:`\nabla\Phi(x)`; at an inexact ``y`` it is
    what :class:`UniBiO`'s estimator converges to as its Neumann series grows
    and the noise vanishes. Uses the deterministic ``f``/``g`` (no batch).

    >>> import torch, bilevel as bl
    >>> prob = bl.problems.uniform_convex.example3(p=4)
    >>> x = torch.tensor([0.3], dtype=torch.float64)
    >>> torch.allclose(generalized_hypergradient(prob, x, prob.y_star(x), p=4), prob.grad_phi(x))
    True
    """
    p = _check_p("generalized_hypergradient", p)
    xl = x.detach().requires_grad_(True)
    yl = y.detach().requires_grad_(True)
    with torch.enable_grad():
        fx, fy = torch.autograd.grad(problem.f(xl, yl), (xl, yl), allow_unused=True,
                                     materialize_grads=True)
        gy, = torch.autograd.grad(problem.g_for_y(xl, yl), yl, create_graph=True)
        rows_y, rows_x = [], []
        for i in range(gy.numel()):
            hy, hx = torch.autograd.grad(gy[i], (yl, xl), retain_graph=True, allow_unused=True,
                                         materialize_grads=True)
            rows_y.append(hy)
            rows_x.append(hx)
    H = torch.stack(rows_y)                     # H[i, j] = d^2 g / dy_i dy_j
    Jyx = torch.stack(rows_x)                   # Jyx[i, :] = d^2 g / dy_i dx
    scale = S.generalized_scale(y.detach(), p)
    if scale is None:
        w = torch.linalg.solve(H, fy)
    else:
        w = torch.linalg.solve(scale[:, None] * H, scale * fy)
    return (fx - Jyx.T @ w).detach()


class UniBiOState(NamedTuple):
    x: torch.Tensor      # outer iterate x_t
    y: torch.Tensor      # lower-level iterate y_t (updated every `interval` steps)
    m: torch.Tensor      # momentum m_{t-1}
    k: int               # outer iteration counter t
    outer: Any = None    # the outer update's state (Adam's moments; None for "sgd")


@register("unibio")
@dataclass(frozen=True)
class UniBiO(Solver):
    r"""UniBiO (paper 002, Algorithm 2): normalized momentum on x, periodic Epoch-SGD on y.

    .. math::

        y_0 &\leftarrow \mathrm{EpochSGD}(x_0, y_0;\ \text{budget } T_0)
              \qquad\text{(warm start, Algorithm 2 line 3)} \\
        y_t &= \mathrm{EpochSGD}(x_t, y_{t-1};\ \text{budget } K)\ \text{ if } t \bmod I = 0,\ t > 0;
              \quad y_t = y_{t-1}\ \text{otherwise} \\
        \widehat\nabla\Phi_t &= \nabla_x F(x_t,y_t;\xi) - \nabla_x\nabla_y G(x_t,y_t;\zeta_0)\,
           \eta_N\sum_{q=0}^{Q}\prod_{j=1}^{q}\big(I - \eta_N\nabla_u\nabla_y G(x_t,y_t;\zeta_j)\big)
           \nabla_u F(x_t,y_t;\xi) \\
        m_t &= \beta m_{t-1} + (1-\beta)\widehat\nabla\Phi_t,\qquad
        x_{t+1} = x_t - \eta_t\,\frac{m_t}{\|m_t\| + \epsilon},\qquad m_{-1} = 0,
        \qquad \eta_t = \eta/(t+1)^{a},

    with :math:`\nabla_u F = \nabla_y F\oslash((p-1)|y|^{p-2})` and
    :math:`\nabla_u\nabla_y G\,v = (\nabla^2_{yy}G\,v)\oslash((p-1)|y|^{p-2})`
    (module docstring). EpochSGD is :func:`epoch_sgd`.

    =======================  ===============  ================================================
    field                    paper 002        meaning
    =======================  ===============  ================================================
    ``p``                    p                uniform-convexity exponent (2: strongly convex)
    ``outer_lr``             eta              length of the outer step (eta_0 if decaying)
    ``outer_lr_decay``       -                a in eta_t = eta/(t+1)^a (0: constant, paper)
    ``momentum``             beta             momentum (paper: 0.9)
    ``interval``             I                LL update period (paper/code: 2)
    ``inner_lr``             gamma_1          first epoch's step (code: 1)
    ``epoch_length``         T_1              first epoch's length (code: 5)
    ``radius``               D_1              first epoch's ball radius (code: 1)
    ``inner_steps``          K                Epoch-SGD budget per periodic call (code: 100)
    ``warm_start_steps``     T_0              budget of the warm start (None: K; 0: none)
    ``neumann_steps``        Q                generalized HVPs (Q + 1 series terms)
    ``neumann_lr``           eta_N            Neumann step (needs eta_N L_u < 2)
    ``eps``                  -                normalization guard (code: 1e-8)
    ``batch_size``           -                minibatch size of every draw
    ``inner_solver``         -                ``"epoch_sgd"`` (paper) or ``"sgd"`` (hyper-cleaning code)
    ``inner_init``           -                ``"warm"`` (paper: y_{t-1}) or ``"random"`` (code: N(0, I))
    =======================  ===============  ================================================

    ``outer_optimizer`` (``"sgd"``: the paper's step; ``"adam"``), ``adam_betas``, ``adam_eps``:
    the outer update on the same direction, :mod:`bilevel.outer`.

    Oracle cost of step t: Gc = 1 + (Epoch-SGD steps if it runs), MV = Q + 1.
    On a stacked problem (``problem.blocks``) the normalization and the
    Epoch-SGD balls are per block, so one run performs every block's own UniBiO.
    With ``inner_solver="sgd"`` a periodic update is ``inner_steps`` plain SGD
    steps of size ``inner_lr`` (paper 002's hyper-cleaning code:
    ``inner_steps=3``, no epochs, no projection).

    Reference: Wu, Gong, Hao, Liu, "Bilevel optimization with lower-level
    uniform convexity: theory and algorithm", ICLR 2026 (paper 002),
    Algorithms 1-2 and Theorem 4.1; setups.md A.2-A.5.

    .. note:: Where this follows the paper rather than the authors' code
       (setups.md A.4-A.5):

       * Epoch-SGD warm-starts from :math:`y_{t-1}` (Algorithm 2); the
         synthetic script restarts every call from a standard normal draw
         (``inner_init="random"`` reproduces that).
       * The hypergradient is the generalized Neumann estimate; the synthetic
         script plots :math:`\cos x\cos(\sin x)` (the exact :math:`\nabla\Phi`,
         zeroed when :math:`|y|` leaves the clipping region) plus
         :math:`\mathcal N(0, 0.01^2)` noise, without any estimator.
       * The series keeps its :math:`q = 0` term :math:`\eta_N\nabla_u F`; the
         hyper-cleaning code drops it. The code also differentiates through the
         divisor (a term proportional to :math:`\nabla_y G`, zero at
         :math:`y^*`) and applies :math:`HD` instead of :math:`DH`; they agree
         for diagonal Hessians at :math:`y^*`.
       * ``neumann_steps`` counts products (Q + 1 terms), as for StocBiO; the
         reconstructed A.3 formula sums :math:`q = 0..Q-1`.
       * Epoch-SGD's loop condition and :math:`T_k` rounding are the code's;
         Theorem 5.1's parameter formulas (Eqs. 51, 59-62) are lost, so every
         hyperparameter here is a value to tune, not the theory's choice.

    >>> import bilevel as bl
    >>> prob = bl.problems.uniform_convex.example3(p=4)
    >>> s = bl.solvers.UniBiO(p=4, outer_lr=0.03, neumann_lr=1.0)
    >>> tr = bl.run(s, prob, steps=150, eval_every=50)
    >>> bool(tr.grad_norm_sq.iloc[-1] < 1e-2 * tr.grad_norm_sq.iloc[0])
    True
    """

    p: float = V.hyper(2.0, "p", V.at_least(2))
    outer_lr: float = V.hyper(None, "eta", V.STEP, scales="x")
    momentum: float = V.hyper(0.9, "beta", V.UNIT)
    interval: int = V.hyper(2, "I", V.INT1)
    inner_lr: float = V.hyper(1.0, "gamma_1", V.STEP, scales="y")
    epoch_length: int = V.hyper(5, "T_1", V.INT1)
    radius: float = V.hyper(1.0, "D_1", V.POSITIVE)
    inner_steps: int = V.hyper(100, "K", V.INT1)
    warm_start_steps: int | None = V.hyper(None, "T_0", V.optional(V.INT0))
    neumann_steps: int = V.hyper(3, "Q", V.INT0)
    neumann_lr: float = V.hyper(None, "eta_N", V.STEP, scales="y")
    eps: float = V.hyper(1e-8, "epsilon", V.POSITIVE)
    batch_size: int | None = V.hyper(None, check=V.optional(V.INT1))
    inner_solver: str = V.hyper("epoch_sgd", check=V.one_of(INNER_SOLVERS))
    inner_init: str = V.hyper("warm", check=V.one_of(INNER_INITS))
    outer_lr_decay: float = V.hyper(0.0, "a", V.NONNEG)
    outer_optimizer: str = _outer.optimizer_field()
    adam_betas: tuple = _outer.betas_field()
    adam_eps: float = _outer.eps_field()

    def check(self):
        if self.inner_solver == "epoch_sgd" and self.inner_steps < self.epoch_length:
            raise V.HyperparameterError(
                f"UniBiO: inner_steps (K) = {self.inner_steps} is smaller than the first epoch "
                f"(epoch_length T_1 = {self.epoch_length}): Epoch-SGD would never run; pass "
                "inner_steps >= epoch_length or a shorter epoch_length.")

    def init(self, problem, oracles, generator) -> UniBiOState:
        V.check_shapes(self, problem)
        return UniBiOState(problem.x0.clone(), problem.y0.clone(), torch.zeros_like(problem.x0), 0,
                           self.outer_init(problem.x0))

    def _lower(self, o, x, y, budget, generator):
        if self.inner_init == "random":
            y = torch.randn(y.shape, generator=generator, dtype=y.dtype, device=y.device)
        if self.inner_solver == "sgd":
            for _ in range(budget):
                y = y - self.inner_lr * o.grad_y_g(x, y, S.draw(o, "inner", self.batch_size))
            return y.detach()
        return epoch_sgd(o, x, y, p=self.p, lr=self.inner_lr, epoch_length=self.epoch_length,
                         radius=self.radius, budget=budget, batch_size=self.batch_size)

    def step(self, state: UniBiOState, oracles, generator):
        x, y, t = state.x, state.y, state.k
        if t == 0:
            warm = self.inner_steps if self.warm_start_steps is None else self.warm_start_steps
            if warm > 0:
                y = self._lower(oracles, x, y, warm, generator)
        elif t % self.interval == 0:
            y = self._lower(oracles, x, y, self.inner_steps, generator)
        batches = S.draw_hg(oracles, self.batch_size, self.neumann_steps)
        grad, _ = S.neumann_hypergrad(oracles, x, y, batches, self.neumann_lr, p=self.p)
        m = self.momentum * state.m + (1 - self.momentum) * grad
        lr = decayed(self.outer_lr, t, self.outer_lr_decay)
        blocks = B.of(oracles.problem)
        if self.outer_optimizer == "sgd":
            x_new, ostate = x - lr * m / (blocks.norms(m, "x") + self.eps), None
        else:
            x_new, ostate = self.outer_step(x, m / (blocks.norms(m, "x") + self.eps),
                                            state.outer, lr)
        return (UniBiOState(x_new.detach(), y, m.detach(), t + 1, ostate),
                StepInfo(x, y, grad))
