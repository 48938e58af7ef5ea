r"""Iterative solvers of the linear system :math:`H v = b` (:math:`H \succ 0`).

In AID, :math:`H = \nabla^2_{yy} g(x, y)` and :math:`b = \nabla_y f(x, y)`.
All solvers share one signature (as in jaxopt's ``linear_solve``):
``solver(matvec, b, x0=None, steps=..., lr=...) -> v``, and only touch ``H``
through ``matvec`` (each call is one counted Hessian-vector product). The step
``lr`` may be a float or a 1-D tensor (a diagonal preconditioner).

=============  ===========================================================  =================
name           iteration                                                    matvecs
=============  ===========================================================  =================
``"gd"``       :math:`v_{q+1} = v_q - \eta (H v_q - b)` from ``x0`` (or 0)  ``steps``
``"neumann"``  :math:`v = v_0 + \eta\sum_{q=0}^{Q}(I-\eta H)^q (b - Hv_0)`  ``steps`` (+1 if ``x0``)
``"cg"``       conjugate gradient, stops early at ``tol``                    <= ``steps`` (+1 if ``x0``)
=============  ===========================================================  =================

``gd`` is the papers' "Q steps of gradient descent on the quadratic"
:math:`\tfrac12 v^\top H v - b^\top v` (paper 003, Algorithm 1; paper 001,
Algorithm 1 line 6 is ``steps=1``). ``neumann`` is the truncated Neumann series
(hypertorch's ``neumann``); from ``x0 = 0`` it equals ``gd`` with one more step
and without the wasted product :math:`H\cdot 0`.
"""

from __future__ import annotations

from typing import Callable

import torch

from . import _validate as V
from .blocks import Blocks
from .errors import LinearSolveError

__all__ = ["gd", "cg", "neumann", "solve", "SOLVERS"]

MatVec = Callable[[torch.Tensor], torch.Tensor]


def _checked(name: str, steps, lr):
    """``lr`` as a step size after checking ``steps`` and ``lr`` (errors name ``name``)."""
    V.nonneg_int(name, "steps", steps)
    return V.step_size(name, "lr (linsys_lr)", lr)


def gd(matvec: MatVec, b: torch.Tensor, x0: torch.Tensor | None = None, *,
       steps: int, lr: float, check: bool = True) -> torch.Tensor:
    r"""``steps`` gradient steps :math:`v \leftarrow v - \eta(Hv - b)`.

    ``check=False`` skips the argument checks (inner loops whose arguments were checked once).

    >>> import torch
    >>> H = torch.diag(torch.tensor([1.0, 2.0], dtype=torch.float64))
    >>> gd(lambda v: H @ v, torch.ones(2, dtype=torch.float64), steps=200, lr=0.4)
    tensor([1.0000, 0.5000], dtype=torch.float64)
    """
    if check:
        lr = _checked("gd", steps, lr)
    v = torch.zeros_like(b) if x0 is None else x0
    for _ in range(steps):
        v = v - lr * (matvec(v) - b)
    return v


def neumann(matvec: MatVec, b: torch.Tensor, x0: torch.Tensor | None = None, *,
            steps: int, lr: float, check: bool = True) -> torch.Tensor:
    r"""Truncated Neumann series :math:`H^{-1} \approx \eta\sum_{q=0}^{Q}(I-\eta H)^q`.

    From ``x0`` the series corrects the residual :math:`r_0 = b - H x_0`.
    ``check=False`` skips the argument checks.

    >>> import torch
    >>> H = torch.diag(torch.tensor([1.0, 2.0], dtype=torch.float64))
    >>> neumann(lambda v: H @ v, torch.ones(2, dtype=torch.float64), steps=200, lr=0.4)
    tensor([1.0000, 0.5000], dtype=torch.float64)
    """
    if check:
        lr = _checked("neumann", steps, lr)
    r = b if x0 is None else b - matvec(x0)
    p = lr * r                      # p_q = (I - eta H)^q eta r
    v = p
    for _ in range(steps):
        p = p - lr * matvec(p)
        v = v + p
    return v if x0 is None else x0 + v


def cg(matvec: MatVec, b: torch.Tensor, x0: torch.Tensor | None = None, *,
       steps: int, lr: float | None = None, tol: float = 1e-12,
       blocks: Blocks | None = None, check: bool = True) -> torch.Tensor:
    r"""Conjugate gradient for symmetric positive definite ``H``.

    Stops after ``steps`` iterations or when :math:`\|r\| \le tol\,\|b\|`
    (the stopping test reads one norm per iteration: a host synchronisation
    on CUDA). ``lr`` is ignored (accepted for a uniform signature).
    ``check=False`` skips the argument checks.

    ``blocks`` (a :class:`~bilevel.blocks.Blocks` whose ``y`` slices partition
    ``b``, for block-diagonal ``H`` such as the :math:`H_{yy}` of a
    :func:`bilevel.problems.stack`) runs one independent CG per block: step
    lengths and stopping tests use per-block inner products
    (:meth:`~bilevel.blocks.Blocks.dot`), so a batched run equals separate runs
    even when CG is truncated.

    Raises :class:`~bilevel.LinearSolveError` (naming the iteration, the block's label
    and :math:`p^\top H p`) when a search direction ``p`` has non-positive
    curvature, :math:`p^\top H p \le \epsilon\,\|p\|\,\|Hp\|` with
    :math:`\epsilon` the dtype's machine epsilon: ``H`` is then not positive
    definite and CG would return NaN or a finite wrong answer. For a positive
    definite ``H`` the left side is at least :math:`2\sqrt\kappa/(1+\kappa)\,
    \|p\|\,\|Hp\|`, so the test only fires beyond condition numbers
    :math:`\kappa \approx 4/\epsilon^2`, where CG is meaningless anyway.

    >>> import torch
    >>> H = torch.tensor([[2.0, 1.0], [1.0, 3.0]], dtype=torch.float64)
    >>> cg(lambda v: H @ v, torch.tensor([1.0, 2.0], dtype=torch.float64), steps=10)
    tensor([0.2000, 0.6000], dtype=torch.float64)
    """
    if check:
        V.nonneg_int("cg", "steps", steps)
        if blocks is not None and blocks.batched and blocks.size("y") != b.numel():
            raise ValueError(f"cg: blocks cover {blocks.size('y')} coordinates (their y slices), "
                             f"b has {b.numel()}.")
    if x0 is None:
        v = torch.zeros_like(b)
        r = b.clone()
    else:
        v = x0
        r = b - matvec(x0)
    p = r
    eps = torch.finfo(b.dtype).eps
    if blocks is None or not blocks.batched:
        rr = torch.dot(r, r)
        thresh = (tol ** 2) * float(torch.dot(b, b))
        for k in range(steps):
            if float(rr) <= thresh:
                break
            hp = matvec(p)
            php = torch.dot(p, hp)
            pp, hphp = torch.dot(p, p), torch.dot(hp, hp)
            if bool(_nonpositive(php, pp, hphp, eps)):
                raise _not_pd(float(php), float(pp), float(hphp), k)
            alpha = rr / php
            v = v + alpha * p
            r = r - alpha * hp
            rr_new = torch.dot(r, r)
            p = r + (rr_new / rr) * p
            rr = rr_new
        return v

    def dot(a, c):
        return blocks.dot(a, c, "y")

    rr = dot(r, r)
    thresh = (tol ** 2) * dot(b, b)
    for k in range(steps):
        active = rr > thresh
        if not bool(active.any()):
            break
        hp = matvec(p)
        php = dot(p, hp)
        pp, hphp = dot(p, p), dot(hp, hp)
        bad = active & _nonpositive(php, pp, hphp, eps)
        if bool(bad.any()):
            i = int(bad.nonzero()[0, 0])
            raise _not_pd(float(php[i]), float(pp[i]), float(hphp[i]), k, blocks.labels[i])
        alpha = torch.where(active, rr / torch.where(active, php, torch.ones_like(php)), 0.0)
        v = v + blocks.spread(alpha, "y") * p
        r = r - blocks.spread(alpha, "y") * hp
        rr_new = dot(r, r)
        beta = torch.where(active, rr_new / torch.where(active, rr, torch.ones_like(rr)), 0.0)
        p = r + blocks.spread(beta, "y") * p
        rr = torch.where(active, rr_new, rr)
    return v


def _nonpositive(php, pp, hphp, eps):
    """``p^T H p <= eps |p| |Hp|`` (finite values only: NaN/Inf are reported by the caller's checks)."""
    return torch.isfinite(php) & (php <= eps * torch.sqrt(pp) * torch.sqrt(hphp))


def _not_pd(php, pp, hphp, k, block=None):
    where = f" in block {block}" if block is not None else ""
    return LinearSolveError(
        f"CG met non-positive curvature p^T H p = {php:.4g} (|p|^2 = {pp:.4g}, |Hp|^2 = {hphp:.4g}) "
        f"at iteration {k}{where}: H is not positive definite. In an implicit hypergradient H is the "
        "inner Hessian H_yy = d^2 g/dy^2 at this (x, y); g must be strongly convex in y "
        "(fix g, or use linsys='gd'/'neumann' with a small linsys_lr).", k, php, block)


SOLVERS = {"gd": gd, "cg": cg, "neumann": neumann}


def solve(method: str, matvec: MatVec, b: torch.Tensor, x0=None, *, steps: int,
          lr: float | None = None) -> torch.Tensor:
    """Dispatch to :func:`gd`, :func:`cg` or :func:`neumann` by name."""
    V.choice("linsolve", "linsys", method, SOLVERS)
    if method != "cg" and lr is None:
        raise ValueError(f"linsys={method!r} needs a step size: pass linsys_lr (eta), e.g. 1/L; "
                         f"only 'cg' works without one.")
    return SOLVERS[method](matvec, b, x0, steps=steps, lr=lr)
