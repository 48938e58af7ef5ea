r"""AID-BiO: approximate implicit differentiation with N- and Q-loops."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch

from .. import _validate as V
from .. import linsolve
from .. import outer as _outer
from ..hypergrad import implicit_estimate
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
    :math:`\widehat g_k = \widehat\nabla\Phi(x_k)` with step :math:`\beta` (:mod:`bilevel.outer`
    writes it out; identical to ``torch.optim.Adam``, no oracle call, counted nowhere).
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
    ``max_abs``          -            -            divergence guard (None: off)
    ===================  ===========  ===========  ==========================

    ``outer_optimizer`` (``"sgd"``: the paper's step; ``"adam"``), ``adam_betas``, ``adam_eps``:
    the outer update on the same direction, :mod:`bilevel.outer`.

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

    inner_steps: int = V.hyper(1, "N", V.INT1)
    inner_lr: float = V.hyper(None, "alpha", V.STEP, scales="y")
    linsys: str = V.hyper("gd", check=V.one_of(linsolve.SOLVERS))
    linsys_steps: int = V.hyper(1, "Q", V.INT1)
    linsys_lr: float | None = V.hyper(None, "eta", V.optional(V.STEP), scales="y")
    outer_lr: float = V.hyper(None, "beta", V.STEP, scales="x")
    warm_start: bool = V.hyper(True, check=V.BOOL)
    outer_optimizer: str = _outer.optimizer_field()
    adam_betas: tuple = _outer.betas_field()
    adam_eps: float = _outer.eps_field()
    max_abs: float | None = V.hyper(None, check=V.optional(V.POSITIVE))

    def check(self):
        if self.linsys_lr is None and self.linsys != "cg":
            raise V.HyperparameterError(
                f"AID: linsys_lr (eta) = None violates 'step' for linsys={self.linsys!r}: the "
                "linear-system iteration needs a step; pass e.g. linsys_lr=0.1 (or linsys='cg').")

    def init(self, problem, oracles, generator) -> AIDState:
        V.check_shapes(self, problem)
        x0 = problem.x0.clone()
        state = AIDState(x0, problem.y0.clone(), torch.zeros_like(problem.y0))
        ostate = self.outer_init(x0)
        return state if ostate is None else AIDAdamState(*state, ostate)

    def step(self, state: AIDState, oracles, generator):
        x = state.x
        y = state.y if self.warm_start else oracles.problem.y0
        alpha = V.resolve_step(self.inner_lr, x)
        for _ in range(self.inner_steps):
            y = y - alpha * oracles.grad_y_g(x, y)
        v0 = state.v if self.warm_start else None
        eta = V.resolve_step(self.linsys_lr, x)
        grad, v = implicit_estimate(oracles, x, y, self.linsys, self.linsys_steps, eta, v0)
        x_new, ostate = self.outer_step(x, grad, getattr(state, "adam", None), self.outer_lr)
        if self.max_abs is not None:
            check_finite(self.max_abs, ("y (inner iterate)", y), ("v (linear-system solution)", v),
                         ("x (outer iterate)", x_new))
        new = AIDState(x_new, y.detach(), v)
        return (new if ostate is None else AIDAdamState(*new, ostate)), StepInfo(x, y, grad)
