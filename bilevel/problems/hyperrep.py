r"""Linear hyper-representation (paper 003, Section 6, Table 3 and Appendix F; data of Sow et al.).

.. math::

    \min_{H}\ \Phi(H) = f(H, w^*(H)) = \frac{1}{2p}\|X_V H w^* - Y_V\|^2,\qquad
    w^*(H) = \arg\min_w\ g(H, w) = \frac{1}{2q}\|X_T H w - Y_T\|^2 + \frac\gamma2\|w\|^2,

with the linear representation :math:`h(X; \lambda) = X H`, :math:`H\in\mathbb R^{m\times d}`
(paper 003 writes :math:`\lambda` for :math:`H`), ``x = vec(H)`` (row-major,
``x.view(m, d)`` is :math:`H`) and ``y = w`` :math:`\in\mathbb R^d`.

Data, exactly as in Sow, Ji & Liang (arXiv 2110.07004), notebook
``HyperRepresentation.ipynb`` of ``sowmaster/esjacobians`` (``setups.md`` B.2):
``torch.manual_seed(0)``, then, in this order, :math:`H_{true}\sim N(0,1)^{m\times d}`,
:math:`w_{true}\sim N(0,1)^d`, :math:`X_T\sim N(0,1)^{q\times m}`,
:math:`Y_T = X_T H_{true} w_{true} + 0.1\,N(0,1)^q`, :math:`X_V\sim N(0,1)^{p\times m}`,
:math:`Y_V = X_V H_{true} w_{true} + 0.1\,N(0,1)^p`, all float32 from PyTorch's CPU
generator; :math:`(m, d, p = q) = (64, 128, 500)` (``size="base"``) or
:math:`(128, 256, 1000)` (``size="large"``, Sow's "higher dimension"); :math:`\gamma = 0.1`.
The initial point continues the same stream: :math:`w_0\sim N(0,1)^d`, then
:math:`H_0\sim N(0,1)^{m\times d}` (Sow's ``p0``, ``hp0``). That is ``seed=0``;
``seed = s >= 1`` draws :math:`(w_0, H_0)` in the same order from
``torch.Generator().manual_seed(s)`` (the data never change).

Exact oracles (for metrics only): :math:`w^*(H) = A^{-1} H^\top X_T^\top Y_T / q` with
:math:`A = H^\top X_T^\top X_T H / q + \gamma I`, :math:`\Phi(H)`, and :math:`\nabla\Phi(H)`
by automatic differentiation through the :math:`d\times d` solve.
"""

from __future__ import annotations

import torch

from ..blocks import Blocks
from ..problem import Problem

__all__ = ["SIZES", "sow_data", "validation_floor", "hyper_representation"]

#: (m features, d representation width, n samples per split)
SIZES = {"base": (64, 128, 500), "large": (128, 256, 1000)}
NOISE = 0.1
GAMMA = 0.1


def sow_data(size: str = "base") -> dict:
    """Sow et al.'s data and initial point (float32, CPU), drawn as described above.

    Returns a dict with ``H_true, w_true, X_T, Y_T, X_V, Y_V, w0, H0`` (seed 0's
    initial point) and ``m, d, n``.

    >>> D = sow_data()
    >>> D["X_T"].shape, D["H0"].shape, round(float(D["Y_V"][0]), 4)
    (torch.Size([500, 64]), torch.Size([64, 128]), 18.0058)
    """
    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}; choose one of {sorted(SIZES)}.")
    m, d, n = SIZES[size]
    gen = torch.Generator().manual_seed(0)   # = torch.manual_seed(0) on the CPU generator

    def rn(*shape):
        return torch.randn(*shape, generator=gen, dtype=torch.float32)

    H_true = rn(m, d)
    w_true = rn(d)
    X_T = rn(n, m)
    Y_T = X_T @ H_true @ w_true + NOISE * rn(n)
    X_V = rn(n, m)
    Y_V = X_V @ H_true @ w_true + NOISE * rn(n)
    w0 = rn(d)
    H0 = rn(m, d)
    return dict(H_true=H_true, w_true=w_true, X_T=X_T, Y_T=Y_T, X_V=X_V, Y_V=Y_V,
                w0=w0, H0=H0, m=m, d=d, n=n)


def validation_floor(size: str = "base") -> float:
    r"""The smallest validation loss any :math:`(H, w)` can reach: :math:`\min_{u\in\mathbb R^m}\frac1{2p}\|X_V u - Y_V\|^2`.

    :math:`f(H, w)` depends on :math:`(H, w)` only through :math:`u = Hw`, so this
    least-squares value (float64) bounds every entry of Table 3 from below;
    it is about the noise level :math:`0.1^2 (p - m) / (2p)`.

    >>> round(validation_floor(), 6)
    0.004863
    """
    D = sow_data(size)
    X, Y = D["X_V"].double(), D["Y_V"].double()
    u = torch.linalg.lstsq(X, Y[:, None]).solution[:, 0]
    r = X @ u - Y
    return float(0.5 * torch.dot(r, r) / len(Y))


def _initial_point(seed: int, D: dict) -> tuple[torch.Tensor, torch.Tensor]:
    if seed == 0:
        return D["w0"], D["H0"]
    gen = torch.Generator().manual_seed(seed)
    w0 = torch.randn(D["d"], generator=gen, dtype=torch.float32)
    H0 = torch.randn(D["m"], D["d"], generator=gen, dtype=torch.float32)
    return w0, H0


#: names of the per-seed metrics (one value per seed block)
METRICS = ("val_loss", "train_loss", "phi")


def hyper_representation(seeds=(0,), size: str = "base", gamma: float = GAMMA,
                         dtype=torch.float64, device="cpu") -> Problem:
    r"""The hyper-representation problem for the initial points ``seeds`` (module docstring).

    The problems of all ``seeds`` (same data, different :math:`(w_0, H_0)`) are
    stacked into one block-separable problem: ``x`` concatenates the
    :math:`\operatorname{vec}(H_s)`, ``y`` the :math:`w_s`, and ``f``, ``g`` are
    sums over seeds evaluated with batched products, so every solver performs
    exactly the single-seed updates on each block at about the cost of one.
    ``problem.blocks`` is labelled by seed, so :func:`bilevel.run` reports the
    exact :math:`\|\nabla\Phi\|^2`, hypergradient and inner errors per seed.

    ``metrics`` (:data:`METRICS`, one value per seed, so in that seed's rows
    of a :func:`bilevel.run` trace): ``val_loss`` = :math:`f(H_k, w_k)` at the
    inner iterate (what paper 003's Table 3 reports), ``train_loss`` = the data
    term of :math:`g`, ``phi`` = the exact :math:`\Phi(H_k)`. ``info``:
    ``m, d, n, gamma, seeds, size``.

    >>> p = hyper_representation(seeds=(0, 1))
    >>> p.dim_x, p.dim_y, [round(float(v), 2) for v in p.metrics["val_loss"](p.x0, p.y0)][:1]
    (16384, 256, [8575.84])
    """
    seeds = [int(s) for s in seeds]
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise ValueError(f"seeds must be a non-empty list of distinct integers >= 0, got {seeds!r}.")
    if not gamma > 0:
        raise ValueError(f"gamma must be positive (strong convexity of g), got {gamma!r}.")
    D = sow_data(size)
    m, d, n = D["m"], D["d"], D["n"]
    S = len(seeds)
    kw = dict(dtype=dtype, device=device)
    X_T, Y_T, X_V, Y_V = (D[k].to(**kw) for k in ("X_T", "Y_T", "X_V", "Y_V"))
    inits = [_initial_point(s, D) for s in seeds]
    y0 = torch.cat([w for w, _ in inits]).to(**kw)
    x0 = torch.cat([H.reshape(-1) for _, H in inits]).to(**kw)
    eye = torch.eye(d, **kw)

    def residual(x, y, X, Yv):                       # (S, n): X H_s w_s - Y (metrics)
        return hw(x, y) @ X.T - Yv

    def hw(x, y):                                    # (S, m): u_s = H_s w_s
        return (x.view(S, m, d) * y.view(S, 1, d)).sum(-1)

    # 0.5 ||X u - Y||^2 / n = 0.5 u^T C u - b^T u + c with the Gram matrix C = X^T X / n:
    # the same function with m x m instead of n x m products (the oracles' hot path)
    C_T, b_T, c_T = X_T.T @ X_T / n, X_T.T @ Y_T / n, 0.5 * torch.dot(Y_T, Y_T) / n
    C_V, b_V, c_V = X_V.T @ X_V / n, X_V.T @ Y_V / n, 0.5 * torch.dot(Y_V, Y_V) / n

    def g(x, y):
        u = hw(x, y)
        return 0.5 * (u * (u @ C_T)).sum() - (u @ b_T).sum() + S * c_T + 0.5 * gamma * torch.dot(y, y)

    def f(x, y):
        u = hw(x, y)
        return 0.5 * (u * (u @ C_V)).sum() - (u @ b_V).sum() + S * c_V

    def y_star(x):
        Z = torch.matmul(X_T, x.view(S, m, d))        # (S, n, d)
        A = Z.transpose(1, 2) @ Z / n + gamma * eye
        b = (Z.transpose(1, 2) @ Y_T) / n
        return torch.linalg.solve(A, b).reshape(-1)

    def phi(x):                                      # residual form: no cancellation
        r = residual(x, y_star(x), X_V, Y_V)
        return 0.5 * (r * r).sum() / n

    def grad_phi(x):
        xx = x.detach().requires_grad_(True)
        with torch.enable_grad():
            return torch.autograd.grad(phi(xx), xx)[0]

    def per_seed(x, y, X, Yv):
        with torch.no_grad():
            r = residual(x, y, X, Yv)
            return 0.5 * (r * r).sum(1) / n

    cache = {}

    def table(x, y):
        """All per-seed metrics at (x, y), computed once per point."""
        key = cache.get("key")
        if key is None or not (torch.equal(key[0], x) and torch.equal(key[1], y)):
            with torch.no_grad():
                cache["val"] = {"val_loss": per_seed(x, y, X_V, Y_V),
                                "train_loss": per_seed(x, y, X_T, Y_T),
                                "phi": per_seed(x, y_star(x), X_V, Y_V)}
            cache["key"] = (x.detach().clone(), y.detach().clone())
        return cache["val"]

    metrics = {name: (lambda x, y, name=name: table(x, y)[name]) for name in METRICS}
    blocks = Blocks.contiguous(seeds, [m * d] * S, [d] * S)
    return Problem(f=f, g=g, x0=x0, y0=y0, y_star=y_star, grad_phi=grad_phi, phi=phi,
                   metrics=metrics, name=f"hyperrep_{size}", blocks=blocks,
                   info=dict(m=m, d=d, n=n, gamma=gamma, seeds=seeds, size=size))
