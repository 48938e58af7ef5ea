r"""Bilevel problems whose lower level is p-uniformly convex (paper 002).

``example3``: paper 002's synthetic problem (Example 3, Figure 1, Appendix E),
:math:`x, y\in\mathbb R`, :math:`p\ge 2` even,

.. math::

    f(x, y) = \sin\big(\operatorname{clip}(y^{p-1}, -\tfrac\pi2, \tfrac\pi2)\big),\qquad
    g(x, y) = \frac{y^p}{p} - y\sin x,

(:math:`f = \sin(y^{p-1})` on :math:`|y^{p-1}|\le\pi/2` and :math:`\pm1` outside,
the indicator form of the paper). :math:`\nabla_y g = y^{p-1} - \sin x`, so
:math:`y^*(x) = (\sin x)^{\langle 1/(p-1)\rangle}`, :math:`\Phi(x) = \sin(\sin x)`
and :math:`\nabla\Phi(x) = \cos x\cos(\sin x)`. The Hessian
:math:`\nabla^2_{yy} g = (p-1)y^{p-2}` vanishes at :math:`y^* = 0` (i.e. at
:math:`x\in\pi\mathbb Z`) for :math:`p > 2`; the generalized Hessian
:math:`\nabla_u\nabla_y g` (:math:`u = y^{\langle p-1\rangle}`) is 1 everywhere.

``lp_hypercleaning``: paper 002's Example 2 (Eq. (6)) as a finite-sum,
minibatch problem: data hyper-cleaning of an :math:`\ell_p` regression,

.. math::

    g(\lambda, w) = \frac1n\sum_{i=1}^n \sigma(\lambda_i)\,\frac{|a_i^\top w - b_i|^p}{p}
        + \frac{c}{p}\|w\|_p^p,\qquad
    f(\lambda, w) = \frac1m\sum_{j=1}^m \tfrac12 (a_j'^\top w - b_j')^2,

with a fraction of the training targets :math:`b_i` corrupted; :math:`g` is
p-uniformly convex in :math:`w` (a sum of p-uniformly convex terms, paper 002
Appendix A.2).
"""

from __future__ import annotations

import math

import torch

from ..blocks import Blocks
from ..problem import Problem
from ..sampling import EpochSlices

__all__ = ["example3", "lp_hypercleaning", "signed_power"]


def signed_power(t: torch.Tensor, q: float) -> torch.Tensor:
    r""":math:`t^{\langle q\rangle} = \operatorname{sign}(t)\,|t|^q` (element-wise)."""
    return torch.sign(t) * t.abs() ** q


def _check_p(p, even: bool):
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not math.isfinite(p) or p < 2:
        raise ValueError(f"p must be a real number >= 2, got {p!r}.")
    if even and (float(p) != int(p) or int(p) % 2):
        raise ValueError(f"example3 needs an even integer p (y^p / p must be convex), got {p!r}.")


def example3(p: int = 2, x0: float = 1.0, y0: float = 1.0, copies: int = 1, dtype=torch.float64,
             device="cpu") -> Problem:
    r"""Paper 002's Example 3 for an even ``p`` (``x0 = y0 = 1`` as in the paper's code).

    ``copies > 1`` stacks that many independent copies (``f`` and ``g`` are sums
    over coordinates, so one vectorised evaluation serves all) with
    ``problem.blocks`` set: :func:`bilevel.run` then reports the exact metrics per
    copy, and per-coordinate step sizes run a learning-rate grid in one loop.
    The two metrics below are recorded only for ``copies = 1``.

    Metrics recorded by :func:`bilevel.run` (signed scalars):

    * ``hypergrad_at_y``: Theorem 4.1's hypergradient evaluated exactly at the
      solver's own :math:`(x_t, y_t)`, :math:`\cos x_t\cos(y_t^{p-1})` on the
      unclipped region and 0 outside (what a noise-free, untruncated estimator
      returns from :math:`y_t`; equal to :math:`\nabla\Phi(x_t)` when
      :math:`y_t = y^*(x_t)`);
    * ``reference_hypergrad``: the quantity paper 002's script plots, minus its
      :math:`\mathcal N(0, 0.01^2)` noise: :math:`\cos x_t\cos(\sin x_t)` if
      :math:`|y_t|\le(\pi/2)^{1/(p-1)}`, else 0.

    >>> prob = example3(p=4)
    >>> round(float(prob.grad_phi(prob.x0)), 6), round(float(prob.y_star(prob.x0)), 6)
    (0.360039, 0.944089)
    """
    _check_p(p, even=True)
    if isinstance(copies, bool) or not isinstance(copies, int) or copies < 1:
        raise ValueError(f"copies must be an integer >= 1, got {copies!r}.")
    p = int(p)
    kw = dict(dtype=dtype, device=device)
    half_pi = math.pi / 2
    y_thr = half_pi ** (1.0 / (p - 1))

    def f(x, y):
        return torch.sin(torch.clamp(y ** (p - 1), -half_pi, half_pi)).sum()

    def g(x, y):
        return (y ** p / p - y * torch.sin(x)).sum()

    def y_star(x):
        return signed_power(torch.sin(x), 1.0 / (p - 1))

    def grad_phi(x):
        return torch.cos(x) * torch.cos(torch.sin(x))

    def phi(x):
        return torch.sin(torch.sin(x)).sum()

    def hypergrad_at_y(x, y):
        u = y ** (p - 1)
        inside = (u.abs() <= half_pi).to(x.dtype)
        return float((torch.cos(x) * torch.cos(u) * inside).sum())

    def reference_hypergrad(x, y):
        inside = (y.abs() <= y_thr).to(x.dtype)
        return float((torch.cos(x) * torch.cos(torch.sin(x)) * inside).sum())

    if copies == 1:
        return Problem(f=f, g=g, x0=torch.tensor([float(x0)], **kw), y0=torch.tensor([float(y0)], **kw),
                       y_star=y_star, grad_phi=grad_phi, phi=phi,
                       metrics={"hypergrad_at_y": hypergrad_at_y,
                                "reference_hypergrad": reference_hypergrad},
                       name=f"example3(p={p})",
                       info=dict(p=p, L_u=1.0, y_threshold=y_thr, paper="002", example=3))
    blocks = Blocks.contiguous(range(copies), [1] * copies, [1] * copies)
    return Problem(f=f, g=g, x0=torch.full((copies,), float(x0), **kw),
                   y0=torch.full((copies,), float(y0), **kw), y_star=y_star, grad_phi=grad_phi,
                   name=f"example3(p={p},copies={copies})", blocks=blocks,
                   info=dict(p=p, L_u=1.0, y_threshold=y_thr, paper="002", example=3, copies=copies))


def lp_hypercleaning(n_train: int = 200, n_val: int = 100, dim: int = 5, p: float = 2.0,
                     corruption: float = 0.3, reg: float = 0.1, seed: int = 0, x0: float = 0.0,
                     dtype=torch.float64, device="cpu") -> Problem:
    r"""Example 2 of paper 002 as a minibatch problem: hyper-cleaning an :math:`\ell_p` regression.

    Data (seeded, on ``device``): :math:`a_i, a'_j\sim\mathcal N(0, I_{dim})`,
    :math:`b = a^\top w_{\text{true}} + 0.1\,\varepsilon`; a ``corruption``
    fraction of the training targets is replaced by :math:`\mathcal N(0, 9)` noise.
    :math:`x = \lambda\in\mathbb R^{n}` (per-sample weights :math:`\sigma(\lambda_i)`,
    start ``x0``), :math:`y = w\in\mathbb R^{dim}` (start 0).

    Minibatches: ``sampler(generator, kind, batch_size)`` is an
    :class:`~bilevel.sampling.EpochSlices` over the training (``"inner"``) or
    validation (``"outer"``) set: blocks of ``batch_size`` consecutive samples
    in an order reshuffled every epoch (every sample once per epoch), returned
    as a ``slice``, or the whole set if ``batch_size`` is ``None``;
    ``f(x, y, batch)`` and ``g(x, y, batch)`` average over those samples (the
    regularizer is in every batch). ``n_samples = {"inner": n, "outer": m}``
    (what :class:`~bilevel.solvers.SABA` needs).

    For ``p = 2`` (weighted ridge regression, strongly convex) the problem
    carries exact ``y_star``, ``grad_phi`` and ``phi``; for ``p > 2`` it does not.

    >>> prob = lp_hypercleaning(n_train=20, n_val=10, dim=3, seed=1)
    >>> import bilevel as bl, torch
    >>> g, _ = bl.hypergrad.implicit(prob, prob.x0, prob.y_star(prob.x0), linsys="cg", steps=10)
    >>> torch.allclose(g, prob.grad_phi(prob.x0))
    True
    """
    _check_p(p, even=False)
    p = float(p)
    for name, v in (("n_train", n_train), ("n_val", n_val), ("dim", dim)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {v!r}.")
    if not (0 <= corruption <= 1):
        raise ValueError(f"corruption must lie in [0, 1], got {corruption!r}.")
    if not (reg > 0):
        raise ValueError(f"reg (c) must be > 0 (it makes g uniformly convex), got {reg!r}.")
    gen = torch.Generator().manual_seed(seed)
    kw = dict(dtype=torch.float64)
    w_true = torch.randn(dim, generator=gen, **kw)
    A = torch.randn(n_train, dim, generator=gen, **kw)
    Av = torch.randn(n_val, dim, generator=gen, **kw)
    b = A @ w_true + 0.1 * torch.randn(n_train, generator=gen, **kw)
    bv = Av @ w_true + 0.1 * torch.randn(n_val, generator=gen, **kw)
    corrupted = torch.rand(n_train, generator=gen, **kw) < corruption
    b = torch.where(corrupted, 3.0 * torch.randn(n_train, generator=gen, **kw), b)
    A, Av, b, bv = (t.to(dtype=dtype, device=device) for t in (A, Av, b, bv))
    all_in = all_out = slice(None)

    def g(x, y, idx=None):
        idx = all_in if idx is None else idx
        r = A[idx] @ y - b[idx]
        return (torch.sigmoid(x[idx]) * r.abs() ** p).mean() / p + reg * (y.abs() ** p).sum() / p

    def f(x, y, idx=None):
        idx = all_out if idx is None else idx
        r = Av[idx] @ y - bv[idx]
        return 0.5 * (r * r).mean()

    sampler = EpochSlices({"inner": n_train, "outer": n_val})

    y_star = grad_phi = phi = None
    if p == 2:
        eye = torch.eye(dim, dtype=dtype, device=device)

        def _h(x):
            s = torch.sigmoid(x)
            return (A.T * s) @ A / n_train + reg * eye, s

        def y_star(x):
            H, s = _h(x)
            return torch.linalg.solve(H, (A.T * s) @ b / n_train)

        def grad_phi(x):
            H, s = _h(x)
            w = torch.linalg.solve(H, (A.T * s) @ b / n_train)
            v = torch.linalg.solve(H, Av.T @ (Av @ w - bv) / n_val)
            r = A @ w - b
            return -(s * (1 - s)) * r * (A @ v) / n_train

        def phi(x):
            return f(x, y_star(x))

    x0t = torch.full((n_train,), float(x0), dtype=dtype, device=device)
    return Problem(f=f, g=g, x0=x0t, y0=torch.zeros(dim, dtype=dtype, device=device),
                   y_star=y_star, grad_phi=grad_phi, phi=phi, sampler=sampler,
                   n_samples={"inner": n_train, "outer": n_val},
                   name=f"lp_hypercleaning(n={n_train},m={n_val},d={dim},p={p:g},seed={seed})",
                   info=dict(p=p, reg=reg, corruption=corruption, corrupted=corrupted, paper="002", example=2))
