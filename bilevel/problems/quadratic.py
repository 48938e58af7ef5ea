r"""Quadratic bilevel problems with closed-form :math:`y^*` and :math:`\nabla\Phi`.

``paper001``: the synthetic problem of paper 001, Figures 1-2 (setups.md C.1):

.. math::

    f(x, y) = \tfrac12 x^\top Z_x x + \tfrac1{10}\mathbf 1^\top y,\qquad
    g(x, y) = \tfrac12 y^\top Z_y y - L x^\top y + \mathbf 1^\top y,\qquad
    Z_x = Z_y = \operatorname{diag}(L, \mu),\ x, y\in\mathbb R^2,

with :math:`\mu = M = \rho = 0.1` and :math:`L = \kappa\mu`. Then
:math:`y^*(x) = Z_y^{-1}(Lx - \mathbf 1)` and
:math:`\nabla\Phi(x) = Z_x x + \tfrac{L}{10} Z_y^{-1}\mathbf 1 = Z_x x + 0.1\,[1, \kappa]^\top`.
(Paper 001's Eq. (11) drops the factor 1/10; the value above is the correct one.)

``random``: a random strongly convex quadratic of any size,

.. math::

    g(x, y) = \tfrac12 y^\top H y - y^\top J x + b^\top y,\qquad
    f(x, y) = \tfrac12 y^\top P y + y^\top C x + \tfrac12 x^\top R x + c^\top y,

with :math:`y^*(x) = H^{-1}(Jx - b)` and
:math:`\nabla\Phi(x) = C^\top y^* + R x + J^\top H^{-1}(P y^* + C x + c)`.
"""

from __future__ import annotations

import torch

from ..blocks import Blocks
from ..problem import Problem

__all__ = ["kappa2d", "kappa2d_grid", "random"]


def kappa2d(kappa: float, mu: float = 0.1, x0=None, y0=None, dtype=torch.float64,
             device="cpu") -> Problem:
    r"""Paper 001's 2-D quadratic at condition number ``kappa`` (:math:`L = \kappa\mu`).

    ``x0 = y0 = 0`` by default (the paper does not state its initialisation;
    setups.md C.1 stand-in). ``info`` carries ``L, mu, M, rho, kappa``.

    >>> p = kappa2d(kappa=2.0)
    >>> p.grad_phi(p.x0)
    tensor([0.1000, 0.2000], dtype=torch.float64)
    """
    if not (kappa >= 1):
        raise ValueError(f"kappa must be >= 1 (L = kappa * mu >= mu), got {kappa!r}.")
    if not (mu > 0):
        raise ValueError(f"mu must be positive, got {mu!r}.")
    L = kappa * mu
    kw = dict(dtype=dtype, device=device)
    z = torch.tensor([L, mu], **kw)
    one = torch.ones(2, **kw)
    x0 = torch.zeros(2, **kw) if x0 is None else torch.as_tensor(x0, **kw)
    y0 = torch.zeros(2, **kw) if y0 is None else torch.as_tensor(y0, **kw)

    def f(x, y):
        return 0.5 * torch.dot(x * z, x) + 0.1 * y.sum()

    def g(x, y):
        return 0.5 * torch.dot(y * z, y) - L * torch.dot(x, y) + y.sum()

    def y_star(x):
        return (L * x - one) / z

    shift = 0.1 * L / z

    def grad_phi(x):
        return z * x + shift

    def phi(x):
        return f(x, y_star(x))

    return Problem(f=f, g=g, x0=x0, y0=y0, y_star=y_star, grad_phi=grad_phi, phi=phi,
                   name=f"quadratic001(kappa={kappa:g})",
                   info=dict(L=L, mu=mu, M=0.1, rho=0.1, kappa=kappa))


def kappa2d_grid(kappas, mu: float = 0.1, dtype=torch.float64, device="cpu") -> Problem:
    r"""Paper 001's quadratic for several ``kappas`` at once, vectorised.

    The blocks are independent copies of :func:`paper001` (``x0 = y0 = 0``)
    stacked into one problem of dimension ``2 len(kappas)`` with
    ``problem.blocks`` set, so :func:`bilevel.run` reports metrics per kappa.
    Unlike the generic :func:`bilevel.problems.stack`, ``f`` and ``g`` are single
    vectorised expressions: a step costs the same as on one block. Use
    :func:`bilevel.problems.per_coordinate` for per-kappa step sizes.

    >>> p = kappa2d_grid([2.0, 4.0])
    >>> [round(v, 12) for v in p.grad_phi(p.x0).tolist()]
    [0.1, 0.2, 0.1, 0.4]
    """
    kappas = [float(k) for k in kappas]
    if not kappas or min(kappas) < 1:
        raise ValueError(f"kappas must be a non-empty list of values >= 1, got {kappas!r}.")
    kw = dict(dtype=dtype, device=device)
    Ls = torch.tensor(kappas, **kw) * mu
    z = torch.stack([Ls, torch.full_like(Ls, mu)], 1).reshape(-1)     # diag(L_i, mu) blocks
    Lcoord = Ls.repeat_interleave(2)                                    # L_i on both coords

    def f(x, y):
        return 0.5 * torch.dot(x * z, x) + 0.1 * y.sum()

    def g(x, y):
        return 0.5 * torch.dot(y * z, y) - torch.dot(Lcoord * x, y) + y.sum()

    def y_star(x):
        return (Lcoord * x - 1.0) / z

    shift = 0.1 * Lcoord / z

    def grad_phi(x):
        return z * x + shift

    def phi(x):
        return f(x, y_star(x))

    n = len(kappas)
    blocks = Blocks.contiguous(kappas, [2] * n, [2] * n)
    return Problem(f=f, g=g, x0=torch.zeros(2 * n, **kw), y0=torch.zeros(2 * n, **kw),
                   y_star=y_star, grad_phi=grad_phi, phi=phi,
                   name="quadratic001_grid",
                   info={"blocks": [dict(L=kappa * mu, mu=mu, M=0.1, rho=0.1, kappa=kappa)
                                    for kappa in kappas], "labels": kappas},
                   blocks=blocks)


def random(dim_x: int, dim_y: int, seed: int = 0, mu: float = 0.5, L: float = 2.0,
           dtype=torch.float64, device="cpu") -> Problem:
    r"""A random quadratic bilevel problem with spectrum of H in ``[mu, L]``.

    >>> p = random(3, 4, seed=1)
    >>> torch.linalg.eigvalsh(p.info["H"]).min() >= 0.5 - 1e-12
    tensor(True)
    """
    if dim_x < 1 or dim_y < 1:
        raise ValueError("dim_x and dim_y must be >= 1.")
    if not (0 < mu <= L):
        raise ValueError(f"need 0 < mu <= L, got mu={mu}, L={L}.")
    gen = torch.Generator().manual_seed(seed)
    kw = dict(dtype=torch.float64)

    def rn(*shape):
        return torch.randn(*shape, generator=gen, **kw)

    q, _ = torch.linalg.qr(rn(dim_y, dim_y))
    eig = torch.linspace(mu, L, dim_y, **kw)
    H = (q * eig) @ q.T
    H = 0.5 * (H + H.T)
    J = rn(dim_y, dim_x) / dim_x ** 0.5
    b = rn(dim_y)
    a = rn(dim_y, dim_y) / dim_y ** 0.5
    P = a @ a.T / dim_y + 0.1 * torch.eye(dim_y, **kw)
    C = rn(dim_y, dim_x) / (dim_x * dim_y) ** 0.5
    r = rn(dim_x, dim_x) / dim_x ** 0.5
    R = r @ r.T / dim_x + 0.1 * torch.eye(dim_x, **kw)
    c = rn(dim_y)
    mats = {k: v.to(dtype=dtype, device=device) for k, v in
            dict(H=H, J=J, b=b, P=P, C=C, R=R, c=c).items()}
    H, J, b, P, C, R, c = (mats[k] for k in ("H", "J", "b", "P", "C", "R", "c"))
    chol = torch.linalg.cholesky(H)

    def hinv(v):
        return torch.cholesky_solve(v.unsqueeze(-1), chol).squeeze(-1)

    def f(x, y):
        return 0.5 * y @ (P @ y) + y @ (C @ x) + 0.5 * x @ (R @ x) + c @ y

    def g(x, y):
        return 0.5 * y @ (H @ y) - y @ (J @ x) + b @ y

    def y_star(x):
        return hinv(J @ x - b)

    def grad_phi(x):
        ys = y_star(x)
        return C.T @ ys + R @ x + J.T @ hinv(P @ ys + C @ x + c)

    def phi(x):
        return f(x, y_star(x))

    x0 = torch.zeros(dim_x, dtype=dtype, device=device)
    y0 = torch.zeros(dim_y, dtype=dtype, device=device)
    return Problem(f=f, g=g, x0=x0, y0=y0, y_star=y_star, grad_phi=grad_phi, phi=phi,
                   name=f"random_quadratic({dim_x},{dim_y},seed={seed})",
                   info=dict(mats, mu=mu, L=L))
