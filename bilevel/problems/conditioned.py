r"""Stochastic bilevel problems with a controlled condition number :math:`\kappa = L/\mu`.

Both families stack ``replicates`` independent copies of one problem (blocks of
``dim`` coordinates, see :func:`bilevel.problems.stack`): every copy sees its own
samples, so one vectorised run gives ``replicates`` independent runs, reported
per block by :func:`bilevel.run`. The smoothness of :math:`g` is :math:`L = 1`
and its strong convexity :math:`\mu = 1/\kappa`.

``quadratic``: a noisy quadratic (expected-risk form, Gaussian samples),

.. math::

    g(x, y; \zeta) &= \tfrac12\sum_j h_j(1 + s\,\zeta^H_j)\,y_j^2 - \sum_j h_j x_j y_j
                     + \sigma\,\zeta^g{}^\top y,\qquad
    f(x, y; \xi) = \tfrac12\|y - t\|^2 + \sigma\,\xi^\top y, \\
    h &= \operatorname{linspace}(\mu, L, d),\quad t = \mathbf 1/\sqrt d,\quad
    y^*(x) = x,\quad \nabla\Phi(x) = x - t,

with :math:`\zeta^H, \zeta^g, \xi \sim \mathcal N(0, I)` per sample. A minibatch of
size B is the mean of B samples; the sampler draws that mean directly
(:math:`\mathcal N(0, I/B)`, exact in distribution because the noise enters
linearly). ``x0 = 0``, so :math:`\|\nabla\Phi(x_0)\|^2 = 1` for every kappa.

``logistic``: :math:`\ell_2`-regularised logistic regression with a learned
regularisation centre (a non-quadratic, finite-sum inner problem),

.. math::

    g(x, y) = \frac1n\sum_{i\le n}\log\big(1 + e^{-b_i a_i^\top y}\big) + \frac\mu2\|y - x\|^2,\qquad
    f(x, y) = \frac1m\sum_{i\le m}\log\big(1 + e^{-b'_i a'^\top_i y}\big) + \frac{\lambda}{2}\|x\|^2,

minibatches are sample indices drawn uniformly with replacement (train for
``g``, validation for ``f``). The features are scaled so that
:math:`\lambda_{\max}(A^\top A/n)/4 = 1 - \mu` (hence :math:`L = 1`). The exact
:math:`y^*(x)` is Newton's method in float64 and

.. math::

    \nabla\Phi(x) = \lambda x + \mu\,v,\qquad
    \big(A^\top D A/n + \mu I\big)\,v = \nabla_y f(x, y^*(x)),\quad
    D = \operatorname{diag}\big(\sigma(z_i)\sigma(-z_i)\big),\ z = A y^*.
"""

from __future__ import annotations

import math

import torch

from ..blocks import Blocks
from ..problem import Problem

__all__ = ["quadratic", "logistic", "GaussianBatch", "newton_inner"]


class GaussianBatch:
    """A minibatch of Gaussian samples, stored as its mean (``len`` is the batch size)."""

    def __init__(self, size: int, z: torch.Tensor):
        self.size = int(size)
        self.z = z

    def __len__(self) -> int:
        return self.size


def _blocks(replicates, dim):
    return Blocks.contiguous(range(replicates), [dim] * replicates, [dim] * replicates)


def _check(kappa, replicates, dim):
    if not (kappa >= 1):
        raise ValueError(f"kappa must be >= 1, got {kappa!r}.")
    if int(replicates) < 1 or int(dim) < 1:
        raise ValueError(f"replicates and dim must be >= 1, got {replicates!r}, {dim!r}.")


def quadratic(kappa: float, replicates: int = 1, dim: int = 4, sigma: float = 1.0,
              hessian_noise: float = 0.2, dtype=torch.float64, device="cpu") -> Problem:
    r"""The noisy quadratic at condition number ``kappa`` (``replicates`` stacked copies).

    ``sigma``: standard deviation of one sample's gradient noise (per
    coordinate); ``hessian_noise``: :math:`s`, the relative noise of one
    sample's Hessian diagonal.

    >>> p = quadratic(4.0, replicates=2, dim=3)
    >>> p.dim_x, round(float((p.grad_phi(p.x0) ** 2).sum()), 12), p.info["mu"]
    (6, 2.0, 0.25)
    """
    _check(kappa, replicates, dim)
    kw = dict(dtype=dtype, device=device)
    mu, L = 1.0 / kappa, 1.0
    h = torch.linspace(mu, L, dim, **kw).repeat(replicates)
    t = torch.full((dim * replicates,), 1.0 / math.sqrt(dim), **kw)
    n = dim * replicates

    def g(x, y, batch=None):
        if batch is None:
            return 0.5 * torch.dot(h * y, y) - torch.dot(h * x, y)
        zh, zg = batch.z[0], batch.z[1]
        return 0.5 * torch.dot(h * (1 + hessian_noise * zh) * y, y) - torch.dot(h * x, y) \
            + sigma * torch.dot(zg, y)

    def f(x, y, batch=None):
        val = 0.5 * torch.dot(y - t, y - t)
        if batch is not None:
            val = val + sigma * torch.dot(batch.z[0], y)
        return val

    def sampler(gen, kind, batch_size):
        b = 1 if batch_size is None else int(batch_size)
        rows = 2 if kind == "inner" else 1
        z = torch.randn((rows, n), generator=gen, **kw) / math.sqrt(b)
        return GaussianBatch(b, z)

    def y_star(x):
        return x.clone()

    def grad_phi(x):
        return x - t

    def phi(x):
        return 0.5 * torch.dot(x - t, x - t)

    return Problem(f=f, g=g, x0=torch.zeros(n, **kw), y0=torch.zeros(n, **kw), y_star=y_star,
                   grad_phi=grad_phi, phi=phi, name=f"noisy_quadratic(kappa={kappa:g})",
                   info=dict(kappa=kappa, mu=mu, L=L, sigma=sigma, hessian_noise=hessian_noise,
                             dim=dim, replicates=replicates, grad_norm_sq0=1.0 * replicates),
                   blocks=_blocks(replicates, dim), sampler=sampler)


def _softplus_neg(z):
    return torch.nn.functional.softplus(-z)


def newton_inner(A, b, mu, x, steps: int = 50, tol: float = 1e-13):
    r"""Exact :math:`y^*(x)` of the logistic inner problem, per replicate (rows of ``x``).

    ``x``: ``(R, d)``; returns ``(y, H)`` with ``H`` the ``(R, d, d)`` Hessians at ``y``.
    """
    n = A.shape[0]
    y = x.clone()
    eye = torch.eye(A.shape[1], dtype=A.dtype, device=A.device)
    for _ in range(steps):
        z = y @ A.T * b                                       # (R, n) margins
        s = torch.sigmoid(-z)
        grad = -(s * b) @ A / n + mu * (y - x)
        w = s * (1 - s)                                       # sigma(z) sigma(-z)
        H = torch.einsum("rn,ni,nj->rij", w, A, A) / n + mu * eye
        step = torch.linalg.solve(H, grad.unsqueeze(-1)).squeeze(-1)
        y = y - step
        if float(step.abs().max()) < tol:
            break
    z = y @ A.T * b
    s = torch.sigmoid(-z)
    H = torch.einsum("rn,ni,nj->rij", s * (1 - s), A, A) / n + mu * eye
    return y, H


def logistic(kappa: float, replicates: int = 1, dim: int = 5, n_train: int = 200,
             n_val: int = 100, reg_x: float = 1.0, seed: int = 0, dtype=torch.float64,
             device="cpu") -> Problem:
    r"""Logistic regression with a learned regularisation centre at condition number ``kappa``.

    The data (Gaussian features, labels of a random linear model with 10 %
    flipped) are drawn from ``seed`` and shared by the replicates; the
    replicates differ by their minibatches. ``reg_x``: :math:`\lambda`.

    >>> p = logistic(4.0, replicates=2)
    >>> p.info["L"], p.dim_y
    (1.0, 10)
    """
    _check(kappa, replicates, dim)
    kw = dict(dtype=dtype, device=device)
    gen = torch.Generator().manual_seed(int(seed))
    a_all = torch.randn(n_train + n_val, dim, generator=gen, dtype=torch.float64)
    w = torch.randn(dim, generator=gen, dtype=torch.float64)
    lab = torch.sign(a_all @ w + 1e-12)
    flip = torch.rand(n_train + n_val, generator=gen, dtype=torch.float64) < 0.1
    lab = torch.where(flip, -lab, lab)
    mu = 1.0 / kappa
    A0 = a_all[:n_train]
    lam = float(torch.linalg.eigvalsh(A0.T @ A0 / n_train).max())
    scale = math.sqrt(4 * (1 - mu) / lam) if kappa > 1 else 0.0
    A = (A0 * scale).to(**kw)
    Av = (a_all[n_train:] * scale).to(**kw)
    b = lab[:n_train].to(**kw)
    bv = lab[n_train:].to(**kw)
    R, d = int(replicates), int(dim)

    def _loss(Amat, lab_, Y, idx):
        if idx is None:
            z = (Y @ Amat.T) * lab_                          # (R, n)
            return _softplus_neg(z).mean(1).sum()
        Ab = Amat[idx]                                       # (B, R, d)
        z = torch.einsum("brd,rd->br", Ab, Y) * lab_[idx]
        return _softplus_neg(z).mean(0).sum()

    def g(x, y, batch=None):
        return _loss(A, b, y.view(R, d), batch) + 0.5 * mu * torch.dot(y - x, y - x)

    def f(x, y, batch=None):
        return _loss(Av, bv, y.view(R, d), batch) + 0.5 * reg_x * torch.dot(x, x)

    def sampler(gen_, kind, batch_size):
        bs = 1 if batch_size is None else int(batch_size)
        high = n_train if kind == "inner" else n_val
        return torch.randint(high, (bs, R), generator=gen_, device=device)

    def y_star(x):
        return newton_inner(A, b, mu, x.detach().view(R, d))[0].reshape(-1)

    def grad_phi(x):
        X = x.detach().view(R, d)
        Y, H = newton_inner(A, b, mu, X)
        s = torch.sigmoid(-(Y @ Av.T) * bv)
        fy = -(s * bv) @ Av / Av.shape[0]
        v = torch.linalg.solve(H, fy.unsqueeze(-1)).squeeze(-1)
        return (reg_x * X + mu * v).reshape(-1)

    def phi(x):
        return f(x.detach(), y_star(x))

    x0 = torch.zeros(R * d, **kw)
    prob = Problem(f=f, g=g, x0=x0, y0=torch.zeros(R * d, **kw), y_star=y_star, grad_phi=grad_phi,
                   phi=phi, name=f"logistic(kappa={kappa:g})",
                   info=dict(kappa=kappa, mu=mu, L=1.0, reg_x=reg_x, dim=d, replicates=R),
                   blocks=_blocks(R, d), sampler=sampler, n_samples={"inner": n_train, "outer": n_val})
    g0 = float((grad_phi(x0) ** 2).sum())
    prob.info["grad_norm_sq0"] = g0
    return prob
