r"""AID-BiO: approximate implicit differentiation with N- and Q-loops."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch

from .. import _validate as V
from .. import linsolve
from .. import outer as _outer
from ..hypergrad import _implicit
from .base import Solver, StepInfo, check_finite, register

__all__ = ["AID", "AIDState", "AIDAdamState"]


class AIDState(NamedTuple):
    x: torch.Tensor      # outer iterate x_k
    y: torch.Tensor      # inner warm start y_k^0 (= y_{k-1}^N)
    v: torch.Tensor      # linear-system warm start v_k^0 (= v_{k-1}^Q)


class AIDAdamState(NamedTuple):
    """:class:`AIDState` plus Adam's moments (``outer_optimizer="adam"``)."""

    x: torch.Tensor
    y: torch.Tensor
    v: torch.Tensor
    adam: _outer.AdamState


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

    With ``outer_optimizer="adam"`` the last update is Adam on the estimate
    :math:`\widehat g_k = \widehat\nabla\Phi(x_k)` (:mod:`bilevel.outer`;
    :math:`\beta_1, \beta_2, \epsilon` = ``adam_betas``, ``adam_eps``):

    .. math::

        m_k = \beta_1 m_{k-1} + (1-\beta_1)\widehat g_k,\quad
        s_k = \beta_2 s_{k-1} + (1-\beta_2)\widehat g_k^{\,2},\quad
        x_{k+1} = x_k - \frac{\beta}{1-\beta_1^{k+1}}
          \frac{m_k}{\sqrt{s_k/(1-\beta_2^{k+1})}+\epsilon},\quad m_{-1}=s_{-1}=0

    (identical to ``torch.optim.Adam``; no oracle call, counted nowhere).
    ``warm_start=False`` restarts every outer step from :math:`y_k^0 = y_0`
    and :math:`v_k^0 = 0` (Sow et al.'s protocol, used for paper 003's
    hyper-representation table).

    With ``linsys="gd"`` a step is :math:`v \leftarrow (I-\eta\nabla^2_{yy}g)v + \eta\nabla_y f`.
    ``inner_steps=linsys_steps=1`` is paper 001's single-loop AID (Algorithm 1).

    ===================  ===========  ===========  ==========================
    field                paper 003    paper 001    meaning
    ===================  ===========  ===========  ==========================
    ``inner_steps``      N            1            GD steps on g per outer step
    ``inner_lr``         alpha        alpha        inner GD step
    ``linsys``           -            -            ``"gd"``, ``"cg"``, ``"neumann"``
    ``linsys_steps``     Q            1            linear-system iterations
    ``linsys_lr``        eta          eta          step of gd/neumann (None for cg)
    ``outer_lr``         beta         beta         outer step (GD or Adam)
    ``warm_start``       -            -            warm-start y and v (else y0, 0)
    ``outer_optimizer``  -            -            ``"sgd"`` (the paper) or ``"adam"``
    ``adam_betas``       -            -            Adam's (beta1, beta2)
    ``adam_eps``         -            -            Adam's epsilon
    ``max_abs``          -            -            divergence guard (None: off)
    ===================  ===========  ===========  ==========================

    ``inner_lr`` and ``linsys_lr`` may also be step rules: callables
    ``x -> step`` (float or per-coordinate tensor) evaluated once per outer step
    at :math:`x_k` and used as constants, e.g. :math:`\eta_k = c/(L + \lambda(x_k))`
    (:func:`bilevel.problems.hyperparam.stable_step`) for a Hessian whose norm
    grows with the outer variable.

    ``max_abs``: raise :class:`~bilevel.DivergenceError` naming the quantity
    (``"v (linear-system solution)"``, ``"y (inner iterate)"``, ``"x (outer
    iterate)"``) as soon as one has an entry that is not finite or exceeds
    ``max_abs`` in magnitude (instead of carrying on with exploded numbers).

    Oracle cost per outer step (``linsys="gd"``): Gc = N + 1, MV = Q + 1.

    Reference: K. Ji, M. Liu, Y. Liang, L. Ying, "Will bilevel optimizers
    benefit from loops", NeurIPS 2022 (paper 003), Algorithm 1.

    >>> import bilevel as bl
    >>> p = bl.problems.quadratic.kappa2d(kappa=2.0)
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
    outer_optimizer: str = "sgd"
    adam_betas: tuple = (0.9, 0.999)
    adam_eps: float = 1e-8
    max_abs: float | None = None

    def __post_init__(self):
        V.positive_int("AID", "inner_steps (N)", self.inner_steps)
        V.step_size("AID", "inner_lr (alpha)", self.inner_lr)
        V.choice("AID", "linsys", self.linsys, linsolve.SOLVERS)
        V.positive_int("AID", "linsys_steps (Q)", self.linsys_steps)
        V.step_size("AID", "linsys_lr (eta)", self.linsys_lr, allow_none=self.linsys == "cg")
        V.step_size("AID", "outer_lr (beta)", self.outer_lr)
        if not isinstance(self.warm_start, bool):
            raise ValueError(f"AID: warm_start must be True or False, got {self.warm_start!r}.")
        V.choice("AID", "outer_optimizer", self.outer_optimizer, _outer.OUTER_OPTIMIZERS)
        object.__setattr__(self, "adam_betas",
                           _outer.validate_adam("AID", self.adam_betas, self.adam_eps))
        V.positive_float("AID", "max_abs", self.max_abs, allow_none=True)

    def init(self, problem, oracles, generator) -> AIDState:
        V.check_step_shape("AID", "inner_lr (alpha)", self.inner_lr, problem.x0, problem.dim_y)
        V.check_step_shape("AID", "linsys_lr (eta)", self.linsys_lr, problem.x0, problem.dim_y)
        V.check_step_shape("AID", "outer_lr (beta)", self.outer_lr, problem.x0, problem.dim_x)
        x0 = problem.x0.clone()
        state = AIDState(x0, problem.y0.clone(), torch.zeros_like(problem.y0))
        if self.outer_optimizer == "adam":
            return AIDAdamState(*state, _outer.adam_init(x0))
        return state

    def step(self, state: AIDState, oracles, generator):
        x = state.x
        y = state.y if self.warm_start else oracles.problem.y0
        alpha = V.resolve_step(self.inner_lr, x)
        for _ in range(self.inner_steps):
            y = y - alpha * oracles.grad_y_g(x, y)
        v0 = state.v if self.warm_start else None
        eta = V.resolve_step(self.linsys_lr, x)
        grad, v = _implicit(oracles, x, y, self.linsys, self.linsys_steps, eta, v0)
        x_new, ostate = _outer.outer_update(self.outer_optimizer, x, grad,
                                            getattr(state, "adam", None), self.outer_lr,
                                            self.adam_betas, self.adam_eps)
        if self.max_abs is not None:
            check_finite(self.max_abs, ("y (inner iterate)", y), ("v (linear-system solution)", v),
                         ("x (outer iterate)", x_new))
        new = AIDState(x_new, y.detach(), v)
        return (new if ostate is None else AIDAdamState(*new, ostate)), StepInfo(x, y, grad)
