r"""Hypergradient estimators: implicit (AID) and unrolled (ITD).

Both return an estimate of the hypergradient

.. math::

    \nabla\Phi(x) = \nabla_x f(x, y^*) - \nabla^2_{xy} g(x, y^*)\, v^*,
    \qquad \nabla^2_{yy} g(x, y^*)\, v^* = \nabla_y f(x, y^*),

(paper 003, Eq. (2)) and are one small plain function each, in the spirit of
hypertorch, so they can be read next to the papers. Oracle calls are counted
in the :class:`~bilevel.oracles.Oracles` passed in (a fresh one otherwise).
"""

from __future__ import annotations

import math

import torch

from . import _validate as V
from . import linsolve
from .errors import LinearSolveError
from .oracles import Oracles
from .problem import Problem, check_vector

__all__ = ["implicit", "unrolled", "implicit_estimate", "unrolled_estimate", "MODES"]

MODES = ("reverse", "forward")


def _check_point(prob: Problem, x, y, yname="y"):
    check_vector("x", x, like=prob.x0)
    check_vector(yname, y, like=prob.x0)
    if x.numel() != prob.dim_x:
        raise ValueError(f"x has {x.numel()} entries but the problem's x0 has {prob.dim_x}.")
    if y.numel() != prob.dim_y:
        raise ValueError(f"{yname} has {y.numel()} entries but the problem's y0 has {prob.dim_y}.")


def implicit(prob: Problem, x: torch.Tensor, y: torch.Tensor, linsys: str = "cg",
             steps: int = 100, lr: float | None = None, v0: torch.Tensor | None = None,
             oracles: Oracles | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    r"""AID estimate at the inner iterate ``y`` (paper 003, Eq. (3)).

    .. math::

        v^Q \approx [\nabla^2_{yy} g(x,y)]^{-1}\nabla_y f(x,y)\ \text{(Q steps of ``linsys`` from } v^0),
        \qquad \widehat\nabla\Phi = \nabla_x f(x,y) - \nabla^2_{xy} g(x,y)\, v^Q .

    Args:
      prob: the problem.
      x, y: outer variable and inner approximation (:math:`y_k^N`).
      linsys: ``"gd"``, ``"cg"`` or ``"neumann"`` (see :mod:`bilevel.linsolve`).
      steps: :math:`Q`, number of linear-system iterations.
      lr: :math:`\eta`, the step of ``"gd"``/``"neumann"`` (``None`` for ``"cg"``).
      v0: warm start :math:`v^0` (zeros if ``None``).
      oracles: counted oracles to charge (Gc: 1, MV: products of the solver + 1).

    Returns:
      ``(grad, v)``: the estimate and :math:`v^Q`.

    Raises:
      LinearSolveError: ``H_yy`` is not positive definite (CG met non-positive
        curvature), or :math:`v^Q` is NaN/Inf although ``x``, ``y`` and
        :math:`\nabla_y f` are finite (``linsys_lr`` too large, or ``H_yy`` not
        positive definite).

    >>> import torch, bilevel as bl
    >>> p = bl.problems.quadratic.kappa2d(kappa=2.0)
    >>> g, v = bl.hypergrad.implicit(p, p.x0, p.y_star(p.x0), linsys="cg", steps=10)
    >>> torch.allclose(g, p.grad_phi(p.x0))
    True
    """
    _check_point(prob, x, y)
    V.choice("implicit", "linsys", linsys, linsolve.SOLVERS)
    V.nonneg_int("implicit", "steps", steps)
    if v0 is not None:
        check_vector("v0", v0, like=prob.x0)
        if v0.numel() != prob.dim_y:
            raise ValueError(f"v0 must have the size of y ({prob.dim_y}), got {v0.numel()}.")
    if linsys != "cg":
        lr = V.step_size("implicit", "lr (linsys_lr)", lr)
        V.check_step_shape("implicit", "lr (linsys_lr)", lr, prob.x0, prob.dim_y)
    o = oracles if oracles is not None else Oracles(prob)
    return implicit_estimate(o, x, y, linsys, steps, lr, None if v0 is None else v0.detach())


def implicit_estimate(o: Oracles, x, y, linsys, steps, lr, v0, batch=None):
    """:func:`implicit` without argument checks (the solvers' inner call)."""
    fx, fy = o.grad_f(x, y, batch)
    curv = o.curvature(x, y, batch, with_x=True)   # Q products, then the jvp: one graph
    if linsys == "cg":
        v = linsolve.cg(curv.hvp, fy, v0, steps=steps, blocks=o.problem.blocks, check=False)
    else:
        v = linsolve.SOLVERS[linsys](curv.hvp, fy, v0, steps=steps, lr=lr, check=False)
    if not math.isfinite(float(v.sum())):      # one reduction (isfinite + all: 3-20x the time)
        _check_solution(o, x, y, fy, v, linsys, steps, lr)
    grad = fx - curv.jvp(v)
    return grad.detach(), v.detach()


def _check_solution(o: Oracles, x, y, fy, v, linsys, steps, lr):
    """Raise :class:`LinearSolveError` for a NaN/Inf ``v`` computed from finite ``x``, ``y``, ``grad_y f``.

    Non-finite inputs are an upstream divergence, reported by :func:`bilevel.run`; a finite ``v``
    whose sum overflowed (the caller's cheap test) passes.
    """
    if bool(torch.isfinite(v).all()):
        return
    if not all(bool(torch.isfinite(t).all()) for t in (x, y, fy)):
        return
    where = ""
    if o.problem.blocks is not None:
        where = f" in block(s) {o.problem.blocks.labels_where(~torch.isfinite(v), 'y')}"
    step = "" if linsys == "cg" else f", linsys_lr={lr}"
    raise LinearSolveError(
        f"implicit: the solution v of H_yy v = grad_y f is NaN/Inf{where} after {steps} steps of "
        f"linsys={linsys!r}{step}, from finite x, y and grad_y f: the inner Hessian H_yy = d^2 g/dy^2 "
        "is not positive definite at this (x, y), or linsys_lr is too large for it (gd/neumann need "
        "0 < linsys_lr < 2/L, L the largest eigenvalue of H_yy). g must be strongly convex in y; "
        "reduce linsys_lr or fix g.")


def unrolled(prob: Problem, x: torch.Tensor, y0: torch.Tensor, steps: int, lr: float,
             mode: str = "reverse", oracles: Oracles | None = None
             ) -> tuple[torch.Tensor, torch.Tensor]:
    r"""ITD estimate: the derivative of :math:`f(x, y^N(x))` through N GD steps.

    .. math::

        y^{t+1} = y^t - \alpha\nabla_y g(x, y^t),\quad t = 0..N-1, \\
        \frac{\partial f(x, y^N)}{\partial x} = \nabla_x f(x, y^N)
          - \alpha\sum_{t=0}^{N-1}\nabla^2_{xy} g(x, y^t)
            \prod_{j=t+1}^{N-1}\big(I - \alpha\nabla^2_{yy} g(x, y^j)\big)\nabla_y f(x, y^N)

    (paper 003, Section 2.2; ``y0`` is a constant, e.g. the warm start).

    * ``mode="reverse"`` evaluates the sum backwards (backpropagation): the unroll is
      recorded once and differentiated by a single backward pass
      (:meth:`~bilevel.oracles.Oracles.unroll`), counted as the products it performs:
      N Gc, N Jacobian- and N-1 Hessian-vector products; memory O(N dim y). With
      noisy oracles each product is a separately noised oracle call.
    * ``mode="forward"`` propagates the Jacobian :math:`Z_t = \partial y^t/\partial x`,
      :math:`Z_{t+1} = Z_t - \alpha(\nabla^2_{yy} g\,Z_t + \nabla^2_{yx} g)`,
      with forward-mode AD (``torch.func.jvp``, one column per coordinate of
      ``x``; paper 004's slides): N Gc and 2 N dim(x) products, memory
      O(dim x dim y), independent of N. ``f`` and ``g`` must be
      ``torch.func``-compatible (no ``.item()``, no in-place ops on inputs).

    Returns ``(grad, y^N)``.

    >>> import torch, bilevel as bl
    >>> p = bl.problems.quadratic.kappa2d(kappa=2.0)
    >>> gr, _ = bl.hypergrad.unrolled(p, p.x0, p.y0, steps=5, lr=1.0, mode="reverse")
    >>> gf, _ = bl.hypergrad.unrolled(p, p.x0, p.y0, steps=5, lr=1.0, mode="forward")
    >>> torch.allclose(gr, gf)
    True
    """
    _check_point(prob, x, y0, "y0")
    V.choice("unrolled", "mode", mode, MODES)
    V.positive_int("unrolled", "steps (inner_steps)", steps)
    lr = V.step_size("unrolled", "lr (inner_lr)", lr)
    V.check_step_shape("unrolled", "lr (inner_lr)", lr, prob.x0, prob.dim_y)
    o = oracles if oracles is not None else Oracles(prob)
    return unrolled_estimate(o, x.detach(), y0.detach(), steps, lr, mode)


def unrolled_estimate(o: Oracles, x, y, steps, lr, mode: str = "reverse"):
    """:func:`unrolled` without argument checks (the solvers' inner call); ``y`` is a constant."""
    if mode == "reverse":
        return o.unroll(x, y, steps, lr)
    return _unrolled_forward(o, x, y, steps, lr)


def _unrolled_forward(o: Oracles, x, y, steps, lr):
    g = o.problem.g_for_y                      # g_y when given: the same derivatives in y and (x, y)
    grad_y_g = torch.func.grad(g, argnums=1)
    dx = x.numel()
    eye = torch.eye(dx, dtype=x.dtype, device=x.device)
    Z = torch.zeros(dx, y.numel(), dtype=x.dtype, device=x.device)   # rows: d y^t / d x_i

    def tangent(ex, z):
        return torch.func.jvp(lambda xx, yy: grad_y_g(xx, yy), (x, y), (ex, z))

    for _ in range(steps):
        gy, dgy = torch.func.vmap(tangent)(eye, Z)
        o.charge(grad_g=1, hvp=dx, jvp=dx)
        Z = Z - lr * dgy
        y = y - lr * gy[0]
    fx, fy = o.grad_f(x, y)
    return (fx + Z @ fy).detach(), y.detach()
