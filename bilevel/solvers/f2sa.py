r"""F²SA: the fully first-order penalty method, in paper 001's single-loop form and Kwon et al.'s stochastic form.

The method replaces the hypergradient by the gradient of the value-function
penalty (Kwon et al. 2023; paper 001, Eq. (16))

.. math::

    \mathcal L_\lambda(x, y) = f(x, y) + \lambda\big(g(x, y) - g^*(x)\big),\qquad
    g^*(x) = \min_z g(x, z),\qquad
    \Phi_\lambda(x) = \min_y \mathcal L_\lambda(x, y),

whose gradient (paper 001, Lemma 11) needs first-order oracles only,

.. math::

    \nabla\Phi_\lambda(x) = \nabla_x f(x, y^*_\lambda(x))
        + \lambda\big(\nabla_x g(x, y^*_\lambda(x)) - \nabla_x g(x, y^*(x))\big),
    \qquad y^*_\lambda(x) = \arg\min_y \mathcal L_\lambda(x, y),

and is within :math:`\mathcal O(\kappa^3/\lambda)` of :math:`\nabla\Phi(x)`
(paper 001, Lemma 13 = Kwon et al., Lemma 3.1). :func:`penalty_hypergrad`
evaluates :math:`\nabla\Phi_\lambda` exactly (for metrics and tests).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import torch

from .. import _validate as V
from .. import linsolve
from .. import outer as _outer
from ..schedules import decayed
from ._stochastic import draw
from .base import Solver, StepInfo, register

__all__ = ["F2SA", "F2SAState", "penalty_inner_solution", "penalty_hypergrad", "KWON_EXPONENTS"]

#: Step-size exponents :math:`e` of :math:`c/(k+1)^e` for Kwon et al.'s stochastic
#: form: ``"benchopt"`` = the third-party implementation
#: (benchopt/benchmark_bilevel, ``solvers/f2sa.py``; setups.md E), ``"paper"`` =
#: Kwon et al.'s schedule for noise in both levels (:math:`\alpha_k\propto k^{-5/7}`,
#: :math:`\gamma_k\propto k^{-4/7}`, :math:`\lambda_k\propto k^{1/7}`, x step
#: :math:`\xi\alpha_k`). Keys: y (``inner_decay``), z (``z_decay``), x
#: (``outer_decay``), lambda increment (``lmbda_decay``).
KWON_EXPONENTS = {
    "benchopt": dict(inner_decay=5 / 7, z_decay=4 / 7, outer_decay=4 / 7, lmbda_decay=1 / 7),
    "paper": dict(inner_decay=5 / 7, z_decay=4 / 7, outer_decay=5 / 7, lmbda_decay=6 / 7),
}


class F2SAState(NamedTuple):
    x: torch.Tensor      # outer iterate x_k
    y: torch.Tensor      # penalised inner iterate y_k (tracks y*_lambda(x))
    z: torch.Tensor      # inner iterate z_k (tracks y*(x))
    lmbda: float         # penalty multiplier lambda_k
    k: int               # outer iteration counter (drives the schedules)
    outer: Any = None    # the outer update's state (Adam's moments; None for "sgd")


@register("f2sa")
@dataclass(frozen=True)
class F2SA(Solver):
    r"""F²SA (Kwon et al. 2023, Algorithm 1; paper 001, Algorithm 3 for ``inner_steps=1``, fixed lambda).

    Penalty: :math:`\mathcal L_\lambda(x,y) = f(x,y) + \lambda(g(x,y) - \min_z g(x,z))`
    (see the module docstring). Each outer step :math:`k`:

    .. math::

        y_k^0 &= y_k,\quad z_k^0 = z_k,\qquad t = 0..T-1: \\
        z_k^{t+1} &= z_k^t - \gamma_k\nabla_y g(x_k, z_k^t),\qquad
        y_k^{t+1} = y_k^t - \alpha_k\big(\nabla_y f(x_k, y_k^t) + \lambda_k\nabla_y g(x_k, y_k^t)\big) \\
        \widehat\nabla\Phi(x_k) &= \nabla_x f(x_k, y_k^T)
            + \lambda_k\big(\nabla_x g(x_k, y_k^T) - \nabla_x g(x_k, z_k^T)\big),\qquad
        x_{k+1} = x_k - \beta_k\widehat\nabla\Phi(x_k) \\
        y_{k+1} &= y_k^T,\quad z_{k+1} = z_k^T,\quad
        \lambda_{k+1} = \lambda_k + \delta/(k+1)^{e_\lambda}

    with :math:`\alpha_k = \alpha/(k+1)^{e_y}`, :math:`\gamma_k = \gamma/(k+1)^{e_z}`,
    :math:`\beta_k = \beta/(k+1)^{e_x}`. Every oracle call draws its own
    minibatch of ``batch_size`` (independent batches for the y, z and x
    directions, as in Kwon et al.) when the problem has a sampler.

    * **paper 001's deterministic single-loop form** (Algorithm 3): ``inner_steps=1``,
      fixed :math:`\lambda` (``lmbda_increment=0``), constant steps, :math:`\gamma=\alpha`
      (``z_lr=None``); the paper's Theorem 5 takes :math:`\alpha = 1/((\lambda+1)L)`,
      :math:`\beta\asymp\lambda^{-2}\kappa^{-2}` (:meth:`paper001`). With a
      fixed :math:`\lambda` it converges to a stationary point of :math:`\Phi_\lambda`,
      not of :math:`\Phi`: the bias :math:`\|\nabla\Phi_\lambda-\nabla\Phi\| = \mathcal O(\kappa^3/\lambda)`.
    * **Kwon et al.'s stochastic form**: ``inner_steps`` T > 1, decaying steps,
      growing :math:`\lambda` (:meth:`kwon2023`, exponents in :data:`KWON_EXPONENTS`).

    ===================  =============  ==============  ======================================
    field                Kwon et al.    paper 001       meaning
    ===================  =============  ==============  ======================================
    ``inner_lr``         alpha          alpha           step on y (penalised inner variable)
    ``z_lr``             gamma          alpha           step on z (None: same as inner_lr)
    ``outer_lr``         xi * alpha     beta            step on x
    ``lmbda``            lambda_0       lambda          penalty multiplier (initial value)
    ``inner_steps``      T              1               y and z steps per outer step
    ``lmbda_increment``  delta          0               lambda_{k+1} = lambda_k + delta/(k+1)^e
    ``inner_decay``      5/7            0               exponent e_y of alpha_k
    ``z_decay``          4/7            0               exponent e_z of gamma_k
    ``outer_decay``      5/7            0               exponent e_x of beta_k
    ``lmbda_decay``      6/7            0               exponent e_lambda of the increment
    ``batch_size``       -              -               minibatch of each oracle call (None: full)
    ===================  =============  ==============  ======================================

    ``outer_optimizer`` (``"sgd"``: the paper's step; ``"adam"``), ``adam_betas``, ``adam_eps``:
    the outer update on the same direction, :mod:`bilevel.outer`.

    Oracle cost per outer step: Gc = 3T + 3 (T+1 ``grad_f``, 2T+2 ``grad_g``), MV = 0.

    References: J. Kwon, D. Kwon, S. Wright, R. Nowak, "A fully first-order
    method for stochastic bilevel optimization", ICML 2023 (Algorithm 1, F²SA);
    paper 001 ("Sharper analysis of single-loop methods for bilevel
    optimization"), Appendix C, Algorithm 3 and Theorem 5.

    .. note:: Paper 001's Algorithm 3 line 4 reads :math:`\nabla_y g(x_t, z_t^k)`;
       we read it as :math:`z_t^0` (its only z iterate). Kwon et al.'s :math:`\lambda_k`
       grows like :math:`k^{1/7}` (``lmbda_decay=6/7``); benchopt's increment
       :math:`\delta/(k+1)^{1/7}` makes it grow like :math:`k^{6/7}`.

    >>> import bilevel as bl
    >>> p = bl.problems.quadratic.kappa2d(kappa=2.0)
    >>> s = bl.solvers.F2SA.single_loop(lmbda=1.0, L=0.2, outer_lr=0.02)
    >>> tr = bl.run(s, p, steps=1500, eval_every=500)
    >>> bool(tr.grad_norm_sq.iloc[-1] < 1e-2 * tr.grad_norm_sq.iloc[0])
    True
    """

    inner_lr: float = V.hyper(None, "alpha", V.STEP, scales="y")
    outer_lr: float = V.hyper(None, "beta", V.STEP, scales="x")
    lmbda: float = V.hyper(None, "lambda_0", V.POSITIVE)
    z_lr: float | None = V.hyper(None, "gamma", V.optional(V.STEP), scales="y")
    inner_steps: int = V.hyper(1, "T", V.INT1)
    lmbda_increment: float = V.hyper(0.0, "delta", V.NONNEG)
    inner_decay: float = V.hyper(0.0, "e_y", V.NONNEG)
    z_decay: float = V.hyper(0.0, "e_z", V.NONNEG)
    outer_decay: float = V.hyper(0.0, "e_x", V.NONNEG)
    lmbda_decay: float = V.hyper(0.0, "e_lambda", V.NONNEG)
    batch_size: int | None = V.hyper(None, check=V.optional(V.INT1))
    outer_optimizer: str = _outer.optimizer_field()
    adam_betas: tuple = _outer.betas_field()
    adam_eps: float = _outer.eps_field()

    # -- presets ------------------------------------------------------------------
    @classmethod
    def single_loop(cls, lmbda: float, L: float, outer_lr: float) -> "F2SA":
        r"""Paper 001's Algorithm 3: T = 1, fixed :math:`\lambda`, :math:`\alpha = \gamma = 1/((\lambda+1)L)`.

        ``L`` is the smoothness constant of f and g (Theorem 5, Eq. (18));
        ``outer_lr`` is :math:`\beta` (the theorem's :math:`\beta\asymp\lambda^{-2}\kappa^{-2}`
        is a rate, not a value: pass the step to use).
        """
        V.positive_float("F2SA.single_loop", "L", L)
        return cls(inner_lr=1.0 / ((float(lmbda) + 1.0) * float(L)), outer_lr=outer_lr,
                   lmbda=lmbda, inner_steps=1)

    @classmethod
    def kwon2023(cls, step_size: float = 0.1, outer_ratio: float = 1.0, lmbda0: float = 1.0,
                 delta_lmbda: float = 0.1, inner_steps: int = 10, batch_size: int | None = 64,
                 schedule: str = "benchopt") -> "F2SA":
        r"""Kwon et al.'s stochastic F²SA with the benchopt parametrisation (setups.md E).

        Steps :math:`c/(k+1)^e`: y and z start at ``step_size``, x at
        ``step_size / outer_ratio``; :math:`\lambda_0` = ``lmbda0`` grows by
        ``delta_lmbda``:math:`/(k+1)^{e_\lambda}`; exponents from
        :data:`KWON_EXPONENTS[schedule]`. Defaults are benchopt's.
        """
        V.choice("F2SA.kwon2023", "schedule", schedule, KWON_EXPONENTS)
        V.positive_float("F2SA.kwon2023", "outer_ratio", outer_ratio)
        return cls(inner_lr=step_size, z_lr=step_size, outer_lr=step_size / outer_ratio,
                   lmbda=lmbda0, lmbda_increment=delta_lmbda, inner_steps=inner_steps,
                   batch_size=batch_size, **KWON_EXPONENTS[schedule])

    # -- protocol -----------------------------------------------------------------
    def init(self, problem, oracles, generator) -> F2SAState:
        V.check_shapes(self, problem)
        return F2SAState(problem.x0.clone(), problem.y0.clone(), problem.y0.clone(),
                         float(self.lmbda), 0, self.outer_init(problem.x0))

    def step(self, state: F2SAState, oracles, generator):
        o, k, lam = oracles, state.k, state.lmbda
        x, y, z = state.x, state.y, state.z
        alpha = decayed(self.inner_lr, k, self.inner_decay)
        gamma = decayed(self.inner_lr if self.z_lr is None else self.z_lr, k, self.z_decay)
        beta = decayed(self.outer_lr, k, self.outer_decay)
        size = self.batch_size
        for _ in range(self.inner_steps):
            gz = o.grad_y_g(x, z, draw(o, "inner", size))
            _, fy = o.grad_f(x, y, draw(o, "outer", size))
            gy = o.grad_y_g(x, y, draw(o, "inner", size))
            z = z - gamma * gz
            y = y - alpha * (fy + lam * gy)
        fx, _ = o.grad_f(x, y, draw(o, "outer", size))
        gxy, _ = o.grad_g(x, y, draw(o, "inner", size))
        gxz, _ = o.grad_g(x, z, draw(o, "inner", size))
        est = (fx + lam * (gxy - gxz)).detach()
        y, z = y.detach(), z.detach()
        lam_next = lam + decayed(self.lmbda_increment, k, self.lmbda_decay)
        x_new, ostate = self.outer_step(x, est, state.outer, beta)
        return F2SAState(x_new, y, z, lam_next, k + 1, ostate), StepInfo(x, y, est)


# -- the penalised landscape, exactly ---------------------------------------------------

def _newton_cg(fn, x, y0, steps: int, cg_steps: int, tol: float):
    """Minimise the y-function ``fn(x, y)`` by Newton-CG from ``y0`` (exact in one step for quadratics)."""
    y = y0.detach().clone()
    xd = x.detach()
    for _ in range(steps):
        yl = y.requires_grad_(True)
        with torch.enable_grad():
            gy, = torch.autograd.grad(fn(xd, yl), yl, create_graph=True)

            def hvp(v, gy=gy, yl=yl):
                return torch.autograd.grad(gy, yl, grad_outputs=v, retain_graph=True)[0]

            d = linsolve.cg(hvp, gy.detach(), steps=cg_steps, tol=tol)
        y = (yl - d).detach()
        if float(torch.linalg.vector_norm(gy.detach())) <= tol:
            break
    return y


def penalty_inner_solution(problem, x: torch.Tensor, lmbda: float, y0=None, newton_steps: int = 20,
                           cg_steps: int | None = None, tol: float = 1e-12) -> torch.Tensor:
    r""":math:`y^*_\lambda(x) = \arg\min_y f(x, y) + \lambda g(x, y)` by Newton-CG.

    Exact (to CG precision) after one Newton step when f and g are quadratic
    in y; otherwise Newton iterations continue until :math:`\|\nabla_y\mathcal L_\lambda\|\le` ``tol``.
    An evaluation utility (metrics, tests); no oracle is counted.

    >>> import torch, bilevel as bl
    >>> p = bl.problems.quadratic.kappa2d(kappa=2.0)
    >>> yl = penalty_inner_solution(p, p.x0, 10.0)
    >>> torch.allclose(yl, p.y_star(p.x0) - 0.01 / torch.tensor([0.2, 0.1], dtype=torch.float64))
    True
    """
    V.positive_float("penalty_inner_solution", "lmbda", lmbda)
    lam = float(lmbda)
    cg_steps = cg_steps or 2 * problem.dim_y

    def h(xx, yy):
        return problem.f(xx, yy) + lam * problem.g(xx, yy)

    start = problem.y0 if y0 is None else y0
    return _newton_cg(h, x, start, newton_steps, cg_steps, tol)


def penalty_hypergrad(problem, x: torch.Tensor, lmbda: float, newton_steps: int = 20,
                      cg_steps: int | None = None, tol: float = 1e-12) -> torch.Tensor:
    r"""The gradient of the penalised hyper-objective (paper 001, Lemma 11).

    .. math::

        \nabla\Phi_\lambda(x) = \nabla_x f(x, y^*_\lambda) + \lambda\big(\nabla_x g(x, y^*_\lambda)
            - \nabla_x g(x, y^*)\big),

    with :math:`y^*` from ``problem.y_star`` (Newton-CG on g otherwise) and
    :math:`y^*_\lambda` from :func:`penalty_inner_solution`.

    On paper 001's quadratic f is linear in y and :math:`\nabla^2_{yy}g` is
    constant, so :math:`y^*_\lambda = y^* - \lambda^{-1}Z^{-1}\nabla_y f` and
    :math:`\nabla\Phi_\lambda = \nabla\Phi` exactly (no penalty bias):

    >>> import torch, bilevel as bl
    >>> p = bl.problems.quadratic.kappa2d(kappa=4.0)
    >>> x = torch.tensor([0.3, -1.0], dtype=torch.float64)
    >>> torch.allclose(penalty_hypergrad(p, x, 5.0), p.grad_phi(x))
    True
    """
    V.positive_float("penalty_hypergrad", "lmbda", lmbda)
    lam = float(lmbda)
    cg_steps = cg_steps or 2 * problem.dim_y
    if problem.y_star is not None:
        ys = problem.y_star(x.detach()).detach()
    else:
        ys = _newton_cg(problem.g_for_y, x, problem.y0, newton_steps, cg_steps, tol)
    yl = penalty_inner_solution(problem, x, lam, y0=ys, newton_steps=newton_steps,
                                cg_steps=cg_steps, tol=tol)
    xl = x.detach().requires_grad_(True)
    with torch.enable_grad():
        fx, = torch.autograd.grad(problem.f(xl, yl), xl, allow_unused=True, materialize_grads=True)
        gxl, = torch.autograd.grad(problem.g(xl, yl), xl, allow_unused=True, materialize_grads=True)
        gxs, = torch.autograd.grad(problem.g(xl, ys), xl, allow_unused=True, materialize_grads=True)
    return (fx + lam * (gxl - gxs)).detach()
