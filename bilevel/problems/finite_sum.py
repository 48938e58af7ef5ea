r"""Finite-sum quadratic bilevel problems given by their per-sample matrices.

Each sample :math:`i` of the inner set has a quadratic (the form of benchopt's
bilevel benchmark ``simulated`` dataset, written in our ``(x, y)`` order)

.. math::

    g_i(x, y) = \tfrac12 y^\top A_i y + \tfrac12 x^\top B_i x + x^\top C_i y
                + a_i^\top y + b_i^\top x,

and likewise :math:`f_j` with the outer set's matrices; a minibatch is the mean
over its samples, the full problem the mean over all of them. Batches are
:class:`~bilevel.sampling.EpochSlices` blocks (views of the stored matrices,
no gather). The exact solution uses the mean matrices:
:math:`y^*(x) = -\bar A_s^{-1}(\bar C^\top x + \bar a)` (:math:`A_s` the symmetric part) and
:math:`\nabla\Phi(x) = \nabla_x F - \bar C\,\bar A^{-1}\nabla_y F` at
:math:`(x, y^*(x))` (outer matrices for F).

The problem's ``g_y`` (see :class:`~bilevel.problem.Problem`) is g without
:math:`\tfrac12 x^\top B_i x + b_i^\top x`: the y-oracles skip the batch's
:math:`B_i` altogether, with bit-identical results (the same operations on the
other terms, in the same order).
"""

from __future__ import annotations

import torch

from ..problem import Problem
from ..sampling import EpochSlices

__all__ = ["quadratic"]


def _check(name, t, n, dy, dx):
    shapes = {"A": (n, dy, dy), "B": (n, dx, dx), "C": (n, dx, dy), "a": (n, dy), "b": (n, dx)}
    if tuple(t.shape) != shapes[name]:
        raise ValueError(f"finite_sum.quadratic: {name} must have shape {shapes[name]} "
                         f"(samples, ...), got {tuple(t.shape)}.")


def quadratic(inner: dict, outer: dict, x0=None, y0=None, name: str = "finite_sum_quadratic") -> Problem:
    r"""The problem of per-sample matrices ``inner`` (for g) and ``outer`` (for f).

    ``inner``/``outer``: dicts of tensors ``A (n, dy, dy)``, ``B (n, dx, dx)``,
    ``C (n, dx, dy)``, ``a (n, dy)``, ``b (n, dx)`` on one device and dtype.
    ``x0``/``y0`` default to zeros.

    >>> n, d = 8, 3
    >>> gen = torch.Generator().manual_seed(0)
    >>> def mats():
    ...     m = torch.randn(n, d, d, generator=gen, dtype=torch.float64)
    ...     return dict(A=m @ m.transpose(1, 2) + torch.eye(d, dtype=torch.float64),
    ...                 B=torch.zeros(n, d, d, dtype=torch.float64),
    ...                 C=0.1 * torch.randn(n, d, d, generator=gen, dtype=torch.float64),
    ...                 a=torch.randn(n, d, generator=gen, dtype=torch.float64),
    ...                 b=torch.zeros(n, d, dtype=torch.float64))
    >>> p = quadratic(mats(), mats())
    >>> import bilevel as bl
    >>> g, _ = bl.hypergrad.implicit(p, p.x0, p.y_star(p.x0), linsys="cg", steps=10)
    >>> bool(torch.allclose(g, p.grad_phi(p.x0)))
    True
    """
    n_in, n_out = inner["A"].shape[0], outer["A"].shape[0]
    dy, dx = inner["A"].shape[1], inner["B"].shape[1]
    for mats, n in ((inner, n_in), (outer, n_out)):
        for k in ("A", "B", "C", "a", "b"):
            if k not in mats:
                raise ValueError(f"finite_sum.quadratic: missing matrix {k!r} (need A, B, C, a, b).")
            _check(k, mats[k], n, dy, dx)
    kw = dict(dtype=inner["A"].dtype, device=inner["A"].device)

    def loss(m, x, y, batch, x_terms=True):    # x_terms=False: without 1/2 x'B x + b'x, same order
        s = slice(None) if batch is None else batch
        A = m["A"][s]
        val = 0.5 * torch.einsum("i,nij,j->", y, A, y)
        if x_terms:
            val = val + 0.5 * torch.einsum("i,nij,j->", x, m["B"][s], x)
        val = val + torch.einsum("i,nij,j->", x, m["C"][s], y) + (m["a"][s] @ y).sum()
        if x_terms:
            val = val + (m["b"][s] @ x).sum()
        return val / A.shape[0]

    def g(x, y, batch=None):
        return loss(inner, x, y, batch)

    def g_y(x, y, batch=None):
        return loss(inner, x, y, batch, x_terms=False)

    def f(x, y, batch=None):
        return loss(outer, x, y, batch)

    mean = {k: {n: t.mean(0) for n, t in m.items()} for k, m in (("g", inner), ("f", outer))}

    def y_star(x):
        G = mean["g"]
        return -torch.linalg.solve(0.5 * (G["A"] + G["A"].T), G["C"].T @ x + G["a"])

    def grad_phi(x):
        G, F = mean["g"], mean["f"]
        y = y_star(x)
        Fs = {k: 0.5 * (F[k] + F[k].T) if k in ("A", "B") else F[k] for k in F}
        fy = Fs["A"] @ y + F["C"].T @ x + F["a"]
        fx = Fs["B"] @ x + F["C"] @ y + F["b"]
        v = torch.linalg.solve(0.5 * (G["A"] + G["A"].T), fy)
        return fx - G["C"] @ v

    def phi(x):
        return f(x, y_star(x))

    x0 = torch.zeros(dx, **kw) if x0 is None else x0.to(**kw)
    y0 = torch.zeros(dy, **kw) if y0 is None else y0.to(**kw)
    return Problem(f=f, g=g, g_y=g_y, x0=x0, y0=y0, y_star=y_star, grad_phi=grad_phi, phi=phi, name=name,
                   sampler=EpochSlices({"inner": n_in, "outer": n_out}),
                   n_samples={"inner": n_in, "outer": n_out})
