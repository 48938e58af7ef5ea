r"""Single-loop methods with a warm-started linear-system variable: SOBA, MA-SOBA, SABA, SSAID.

Each step moves three variables by one stochastic step each,

.. math::

    y &\leftarrow y - \rho\,\nabla_y G(x, y),\qquad
    v \leftarrow v - \eta\,\big(\nabla^2_{yy}G(x, y)\,v - \nabla_y F(x, y)\big),\\
    x &\leftarrow x - \gamma\,\big(\nabla_x F(x, y) - \nabla^2_{xy}G(x, y)\,v\big),

where :math:`v` tracks :math:`[\nabla^2_{yy}g]^{-1}\nabla_y f` (one SGD step
on :math:`\tfrac12 v^\top\nabla^2_{yy}g\,v - \nabla_y f^\top v` per outer step).
SOBA evaluates the three directions at the same point; MA-SOBA averages the
outer direction with momentum; SABA replaces each stochastic direction by a
SAGA estimate; SSAID (paper 001's Algorithm 1 with stochastic oracles) updates
``y`` first and forms ``v`` and the hypergradient at the new ``y``.

Sign convention: :math:`v` here is :math:`+H^{-1}\nabla_y f` (Dagréou et al.
track :math:`-H^{-1}\nabla_y f`); the iterates are the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import torch

from .. import _validate as V
from .. import outer as _outer
from .. import blocks as B
from . import _stochastic as S
from .base import Solver, StepInfo, register

__all__ = ["SOBA", "MASOBA", "SABA", "SSAID", "SOBAState", "SABAState"]


class SOBAState(NamedTuple):
    x: torch.Tensor      # outer iterate x_k
    y: torch.Tensor      # inner iterate y_k
    v: torch.Tensor      # linear-system iterate v_k
    h: torch.Tensor      # moving average of the outer direction (MA-SOBA; zeros otherwise)
    outer: Any = None    # the outer update's state (Adam's moments; None for "sgd")


def _directions(o, x, y, v, size):
    """SOBA's three directions at (x, y, v) from one inner and one outer batch."""
    curv = o.curvature(x, y, S.draw(o, "inner", size), with_x=True)
    o.charge(grad_g=1)                     # curv.grad_y is used as the inner SGD direction
    fx, fy = o.grad_f(x, y, S.draw(o, "outer", size))
    jv, hv = curv.both(v)
    return curv.grad_y, hv - fy, fx - jv


def _project_ball(v, radius, blocks):
    """Project ``v`` on the ball of radius ``radius`` (per block of a batched problem; ``None``: no projection)."""
    if radius is None:
        return v
    n = blocks.norms(v, "y")
    return v * torch.clamp(radius / n.clamp_min(torch.finfo(v.dtype).tiny), max=1.0)


def _soba_init(s, problem):
    V.check_shapes(s, problem)
    return SOBAState(problem.x0.clone(), problem.y0.clone(), torch.zeros_like(problem.y0),
                     torch.zeros_like(problem.x0), s.outer_init(problem.x0))


@register("soba")
@dataclass(frozen=True)
class SOBA(Solver):
    r"""SOBA: stochastic bilevel algorithm, one step on y, v and x at the same point.

    .. math::

        D_y &= \nabla_y G(x_k,y_k;\zeta),\quad
        D_v = \nabla^2_{yy}G(x_k,y_k;\zeta)\,v_k - \nabla_y F(x_k,y_k;\xi),\quad
        D_x = \nabla_x F(x_k,y_k;\xi) - \nabla^2_{xy}G(x_k,y_k;\zeta)\,v_k \\
        y_{k+1} &= y_k - \rho D_y,\qquad v_{k+1} = v_k - \eta D_v,\qquad x_{k+1} = x_k - \gamma D_x

    ===================  ===============  ======================================
    field                Dagréou et al.   meaning
    ===================  ===============  ======================================
    ``inner_lr``         rho              step on y
    ``linsys_lr``        rho              step on v (``None``: same as inner_lr)
    ``outer_lr``         gamma            step on x
    ``batch_size``       -                size of the inner and the outer batch
    ===================  ===============  ======================================

    ``outer_optimizer`` (``"sgd"``: the paper's step; ``"adam"``), ``adam_betas``, ``adam_eps``:
    the outer update on the same direction, :mod:`bilevel.outer`.

    One inner batch gives :math:`D_y`, the HVP and the JVP; one outer batch both
    gradients of F. Oracle cost per step: Gc = 2, MV = 2. :math:`v_0 = 0`.

    Reference: M. Dagréou, P. Ablin, S. Vaiter, T. Moreau, "A framework for
    bilevel optimization that enables stochastic and global variance reduction
    algorithms", NeurIPS 2022 (SOBA, Eq. (8)).

    >>> import bilevel as bl
    >>> p = bl.problems.quadratic.kappa2d(kappa=2.0)
    >>> tr = bl.run(bl.solvers.SOBA(inner_lr=5.0, outer_lr=1.0), p, steps=100, eval_every=50)
    >>> bool(tr.grad_norm_sq.iloc[-1] < 1e-6 * tr.grad_norm_sq.iloc[0])
    True
    """

    inner_lr: float = V.hyper(None, "rho", V.STEP, scales="y")
    outer_lr: float = V.hyper(None, "gamma", V.STEP, scales="x")
    linsys_lr: float | None = V.hyper(None, "rho", V.optional(V.STEP), scales="y")
    batch_size: int | None = V.hyper(None, check=V.optional(V.INT1))
    outer_optimizer: str = _outer.optimizer_field()
    adam_betas: tuple = _outer.betas_field()
    adam_eps: float = _outer.eps_field()

    def init(self, problem, oracles, generator) -> SOBAState:
        return _soba_init(self, problem)

    def step(self, state: SOBAState, oracles, generator):
        x, y, v = state.x, state.y, state.v
        dy, dv, dx = _directions(oracles, x, y, v, self.batch_size)
        eta = self.inner_lr if self.linsys_lr is None else self.linsys_lr
        x_new, ostate = self.outer_step(x, dx, state.outer, self.outer_lr)
        new = SOBAState(x_new, y - self.inner_lr * dy, v - eta * dv, state.h, ostate)
        return new, StepInfo(x, y, dx.detach())


@register("ma_soba")
@dataclass(frozen=True)
class MASOBA(Solver):
    r"""MA-SOBA: SOBA with a moving average of the outer direction.

    .. math::

        y_{k+1} &= y_k - \rho D_y,\qquad
        v_{k+1} = \Pi_{\|v\|\le r}\big(v_k - \eta D_v\big),\\
        h_k &= \beta h_{k-1} + (1-\beta) D_x,\qquad x_{k+1} = x_k - \gamma h_k,\qquad h_{-1} = 0,

    with :math:`D_y, D_v, D_x` SOBA's directions at :math:`(x_k, y_k, v_k)`.

    ===================  ====================  =========================================
    field                Chen, Xu, Zhang 2023  meaning
    ===================  ====================  =========================================
    ``inner_lr``         beta_t                step on y
    ``linsys_lr``        gamma_t               step on v (``None``: same as inner_lr)
    ``outer_lr``         alpha_t               step on x
    ``momentum``         1 - theta_t           averaging weight beta (paper 002: 0.9)
    ``linsys_radius``    rho                   radius of the ball v is projected on (None: no projection;
                                               per block on a stacked problem)
    ``batch_size``       -                     size of the inner and the outer batch
    ===================  ====================  =========================================

    ``outer_optimizer`` (``"sgd"``: the paper's step; ``"adam"``), ``adam_betas``, ``adam_eps``:
    the outer update on the same direction, :mod:`bilevel.outer`.

    Oracle cost per step: Gc = 2, MV = 2. :math:`v_0 = 0` (paper 002's App. E.1
    value is lost; setups.md A.4 stand-in).

    Reference: X. Chen, T. Xu, Y. Zhang, "Optimal algorithms for stochastic
    bilevel optimization under relaxed smoothness conditions", arXiv:2306.12067
    (2023), Algorithm 1 (MA-SOBA).

    .. note:: The update order (average, then step with :math:`h_k`) follows
       paper 002's code and heavy-ball convention; Chen et al. write the x step
       with the previous average :math:`h_{k-1}`.

    >>> import bilevel as bl
    >>> p = bl.problems.quadratic.kappa2d(kappa=2.0)
    >>> s = bl.solvers.MASOBA(inner_lr=5.0, outer_lr=1.0, momentum=0.9)
    >>> tr = bl.run(s, p, steps=200, eval_every=100)
    >>> bool(tr.grad_norm_sq.iloc[-1] < 1e-6 * tr.grad_norm_sq.iloc[0])
    True
    """

    inner_lr: float = V.hyper(None, "beta_t", V.STEP, scales="y")
    outer_lr: float = V.hyper(None, "alpha_t", V.STEP, scales="x")
    momentum: float = V.hyper(0.9, "1 - theta_t", V.UNIT)
    linsys_lr: float | None = V.hyper(None, "gamma_t", V.optional(V.STEP), scales="y")
    linsys_radius: float | None = V.hyper(None, "rho", V.optional(V.POSITIVE))
    batch_size: int | None = V.hyper(None, check=V.optional(V.INT1))
    outer_optimizer: str = _outer.optimizer_field()
    adam_betas: tuple = _outer.betas_field()
    adam_eps: float = _outer.eps_field()

    def init(self, problem, oracles, generator) -> SOBAState:
        return _soba_init(self, problem)

    def step(self, state: SOBAState, oracles, generator):
        x, y, v = state.x, state.y, state.v
        dy, dv, dx = _directions(oracles, x, y, v, self.batch_size)
        eta = self.inner_lr if self.linsys_lr is None else self.linsys_lr
        h = self.momentum * state.h + (1 - self.momentum) * dx
        x_new, ostate = self.outer_step(x, h, state.outer, self.outer_lr)
        new = SOBAState(x_new, y - self.inner_lr * dy,
                        _project_ball(v - eta * dv, self.linsys_radius, B.of(oracles.problem)), h.detach(),
                        ostate)
        return new, StepInfo(x, y, dx.detach())


class _Saga:
    """SAGA memory of one direction: a table of per-batch values and their weighted mean."""

    def __init__(self, n_batches: int, like: torch.Tensor):
        self.table = like.new_zeros((n_batches, like.numel()))
        self.mean = like.new_zeros(like.numel())

    def direction(self, j: int, weight: float, g: torch.Tensor) -> torch.Tensor:
        diff = g - self.table[j]
        d = diff + self.mean
        self.mean = self.mean + weight * diff
        self.table[j] = g
        return d


class SABAState(NamedTuple):
    x: torch.Tensor
    y: torch.Tensor
    v: torch.Tensor
    memory: Any          # dict of _Saga tables (mutated in place)
    rng: Any             # host stream of batch indices
    outer: Any = None    # the outer update's state (Adam's moments; None for "sgd")


@register("saba")
@dataclass(frozen=True)
class SABA(Solver):
    r"""SABA: SOBA with SAGA variance reduction of all five stochastic quantities.

    The training sets are split into fixed batches :math:`\mathcal B_1..\mathcal B_n`
    (inner) and :math:`\mathcal C_1..\mathcal C_m` (outer) of ``batch_size``
    consecutive indices. Each step draws :math:`i` and :math:`j` uniformly and
    replaces each of :math:`\nabla_y G, \nabla^2_{yy}G\,v, \nabla^2_{xy}G\,v`
    (batch :math:`i`) and :math:`\nabla_y F, \nabla_x F` (batch :math:`j`) by
    its SAGA estimate

    .. math::

        \hat d = d_i(z_k) - m_i + \textstyle\sum_l w_l m_l,\qquad m_i \leftarrow d_i(z_k),
        \qquad w_l = |\mathcal B_l|/n_{\text{samples}},

    then takes SOBA's steps :math:`y \leftarrow y - \rho\hat D_y`,
    :math:`v \leftarrow v - \eta\hat D_v`, :math:`x \leftarrow x - \gamma\hat D_x`.
    Memories start at zero.

    ===================  ===============  ======================================
    field                Dagréou et al.   meaning
    ===================  ===============  ======================================
    ``inner_lr``         rho              step on y
    ``linsys_lr``        rho              step on v (``None``: same as inner_lr)
    ``outer_lr``         gamma            step on x
    ``batch_size``       -                size of the fixed batches
    ===================  ===============  ======================================

    ``outer_optimizer`` (``"sgd"``: the paper's step; ``"adam"``), ``adam_betas``, ``adam_eps``:
    the outer update on the same direction, :mod:`bilevel.outer`.

    Requirements: a finite-sum problem whose ``n_samples`` is
    ``{"inner": n, "outer": m}`` and whose ``f``/``g`` take a batch of
    consecutive samples as a Python ``slice`` (see :mod:`bilevel.sampling`), e.g.
    :func:`bilevel.problems.uniform_convex.lp_hypercleaning`. SABA builds its
    batches itself (not with the problem's sampler) and adds their sizes to
    the ``samples`` count. On a deterministic problem there is one "batch" and
    SABA is SOBA.

    Memory: ``n_batches x (2 dim y + dim x)`` + ``m_batches x (dim y + dim x)``.

    Reference: Dagréou et al., NeurIPS 2022 (SABA, Algorithm 1).

    .. note:: Paper 002's code keeps a window of the last 10 stochastic
       gradients instead of per-batch tables (setups.md A.5); this is the
       SAGA estimator of the paper.

    >>> import bilevel as bl
    >>> p = bl.problems.uniform_convex.lp_hypercleaning(n_train=40, n_val=20, dim=3, seed=0)
    >>> s = bl.solvers.SABA(inner_lr=0.5, outer_lr=5.0, batch_size=10)
    >>> tr = bl.run(s, p, steps=2000, eval_every=1000)
    >>> bool(tr.grad_norm_sq.iloc[-1] < 1e-2 * tr.grad_norm_sq.iloc[0])
    True
    """

    inner_lr: float = V.hyper(None, "rho", V.STEP, scales="y")
    outer_lr: float = V.hyper(None, "gamma", V.STEP, scales="x")
    linsys_lr: float | None = V.hyper(None, "rho", V.optional(V.STEP), scales="y")
    batch_size: int | None = V.hyper(None, check=V.optional(V.INT1))
    outer_optimizer: str = _outer.optimizer_field()
    adam_betas: tuple = _outer.betas_field()
    adam_eps: float = _outer.eps_field()

    def _partition(self, problem, kind):
        if problem.sampler is None:
            return None
        if problem.n_samples is None:
            raise ValueError("SABA needs a finite-sum problem: Problem.n_samples must be "
                             "{'inner': n, 'outer': m} (it is None) and f/g must take slices of "
                             "consecutive samples as batches.")
        n = problem.n_samples[kind]
        b = n if self.batch_size is None else min(self.batch_size, n)
        starts = list(range(0, n, b))
        return [(s, min(s + b, n), (min(s + b, n) - s) / n) for s in starts]

    def init(self, problem, oracles, generator) -> SABAState:
        base = _soba_init(self, problem)
        parts = {k: self._partition(problem, k) for k in ("inner", "outer")}
        nb = {k: (1 if p is None else len(p)) for k, p in parts.items()}
        y0, x0 = problem.y0, problem.x0
        memory = {"parts": parts,
                  "grad_g": _Saga(nb["inner"], y0), "hvp": _Saga(nb["inner"], y0),
                  "jvp": _Saga(nb["inner"], x0),
                  "fy": _Saga(nb["outer"], y0), "fx": _Saga(nb["outer"], x0)}
        return SABAState(base.x, base.y, base.v, memory, S.HostRNG(generator, 3), base.outer)

    def step(self, state: SABAState, oracles, generator):
        x, y, v, mem = state.x, state.y, state.v, state.memory
        picks = {}
        for kind in ("inner", "outer"):
            part = mem["parts"][kind]
            if part is None:
                picks[kind] = (0, 1.0, None)
                continue
            j = state.rng.randint(len(part))
            lo, hi, w = part[j]
            oracles.charge(samples=hi - lo)
            picks[kind] = (j, w, slice(lo, hi))   # a view of the data, no index gather
        i, wi, bi = picks["inner"]
        j, wj, bj = picks["outer"]
        curv = oracles.curvature(x, y, bi, with_x=True)
        oracles.charge(grad_g=1)
        fx, fy = oracles.grad_f(x, y, bj)
        jv, hv = curv.both(v)
        dy = mem["grad_g"].direction(i, wi, curv.grad_y)
        hv = mem["hvp"].direction(i, wi, hv.detach())
        jv = mem["jvp"].direction(i, wi, jv.detach())
        fy = mem["fy"].direction(j, wj, fy.detach())
        fx = mem["fx"].direction(j, wj, fx.detach())
        dx = fx - jv
        eta = self.inner_lr if self.linsys_lr is None else self.linsys_lr
        x_new, ostate = self.outer_step(x, dx, state.outer, self.outer_lr)
        new = SABAState(x_new, y - self.inner_lr * dy, v - eta * (hv - fy), mem, state.rng, ostate)
        return new, StepInfo(x, y, dx)


@register("ssaid")
@dataclass(frozen=True)
class SSAID(Solver):
    r"""SSAID: single-loop stochastic AID (paper 001's Algorithm 1 with stochastic oracles).

    .. math::

        y_{k+1} &= y_k - \alpha\nabla_y G(x_k, y_k;\xi_k) \\
        v_{k+1} &= v_k - \eta\big(\nabla^2_{yy}G(x_k, y_{k+1};\zeta_k)\,v_k - \nabla_y F(x_k, y_{k+1};\psi_k)\big) \\
        x_{k+1} &= x_k - \beta\big(\nabla_x F(x_k, y_{k+1};\psi_k) - \nabla^2_{xy}G(x_k, y_{k+1};\zeta_k)\,v_{k+1}\big)

    ===================  ===========  ==========================================
    field                paper 001    meaning
    ===================  ===========  ==========================================
    ``inner_lr``         alpha        inner SGD step
    ``linsys_lr``        eta          step of the v recursion
    ``outer_lr``         beta         outer step (the theory scales it by kappa powers)
    ``batch_size``       -            size of xi, zeta, psi (three independent batches)
    ===================  ===========  ==========================================

    ``outer_optimizer`` (``"sgd"``: the paper's step; ``"adam"``), ``adam_betas``, ``adam_eps``:
    the outer update on the same direction, :mod:`bilevel.outer`.

    Oracle cost per step: Gc = 2, MV = 2 (one HVP at :math:`v_k`, one JVP at
    :math:`v_{k+1}`, both on batch :math:`\zeta_k`). With exact oracles this is
    :class:`~bilevel.solvers.AID` with ``inner_steps = linsys_steps = 1, linsys="gd"``.

    Reference: Y. Zhou, L. Luo, G. Dai, H. Ye, "On the convergence of
    single-loop stochastic bilevel optimization with approximate implicit
    differentiation", arXiv:2602.23633 (2026). The algorithm statement is not in
    any reachable source; this is the reconstruction of setups.md D (paper 001's
    Algorithm 1, whose analysis SSAID extends to stochastic oracles).

    >>> import bilevel as bl
    >>> p = bl.problems.quadratic.kappa2d(kappa=2.0)
    >>> tr = bl.run(bl.solvers.SSAID(inner_lr=5.0, linsys_lr=5.0, outer_lr=1.0), p, steps=100,
    ...             eval_every=50)
    >>> bool(tr.grad_norm_sq.iloc[-1] < 1e-6 * tr.grad_norm_sq.iloc[0])
    True
    """

    inner_lr: float = V.hyper(None, "alpha", V.STEP, scales="y")
    linsys_lr: float = V.hyper(None, "eta", V.STEP, scales="y")
    outer_lr: float = V.hyper(None, "beta", V.STEP, scales="x")
    batch_size: int | None = V.hyper(None, check=V.optional(V.INT1))
    outer_optimizer: str = _outer.optimizer_field()
    adam_betas: tuple = _outer.betas_field()
    adam_eps: float = _outer.eps_field()

    def init(self, problem, oracles, generator) -> SOBAState:
        return _soba_init(self, problem)

    def step(self, state: SOBAState, oracles, generator):
        x = state.x
        size = self.batch_size
        y = state.y - self.inner_lr * oracles.grad_y_g(x, state.y, S.draw(oracles, "inner", size))
        fx, fy = oracles.grad_f(x, y, S.draw(oracles, "outer", size))
        curv = oracles.curvature(x, y, S.draw(oracles, "inner", size), with_x=True)
        v = state.v - self.linsys_lr * (curv.hvp(state.v) - fy)
        grad = (fx - curv.jvp(v)).detach()
        x_new, ostate = self.outer_step(x, grad, state.outer, self.outer_lr)
        return (SOBAState(x_new, y.detach(), v.detach(), state.h, ostate),
                StepInfo(x, y, grad))
