r"""Feature learning through a ridge head (paper 001, Figure 3 left; setups.md C.5).

A linear feature map :math:`W\in\mathbb R^{h\times d}` (the outer variable,
``x = vec(W)``) feeds a linear head :math:`y\in\mathbb R^h` (the inner variable)
fitted by ridge regression on the training set; the feature map is judged on
the validation set:

.. math::

    g(x, y) = \frac{1}{2n}\|X W^\top y - t\|^2 + \frac{\mu}{2}\|y\|^2,\qquad
    f(x, y) = \frac{1}{2n_v}\|X_v W^\top y - t_v\|^2 .

The inner problem has the closed form

.. math::

    \nabla^2_{yy} g = H(x) = W G W^\top + \mu I,\quad G = X^\top X/n,\qquad
    y^*(x) = H(x)^{-1} W X^\top t / n,

and :math:`\nabla\Phi(x)` is the gradient of :math:`f(x, y^*(x))` by autograd
through ``torch.linalg.solve`` (exact up to float64 round-off). Because
:math:`h > d`, :math:`WGW^\top` has rank :math:`\le d` and the ridge
:math:`\mu` is both what makes g strongly convex and its exact strong-convexity
constant: :math:`\lambda_{\min}(H) = \mu`, so

.. math::

    \kappa(x) = \lambda_{\max}(H(x))/\mu = 1 + \lambda_{\max}(W G W^\top)/\mu .

Following paper 001, :math:`\kappa` is controlled by modifying the singular
values of the training feature matrix, with a factor :math:`s` found so that
:math:`\kappa(x_0) =` the requested value (the same linear map is applied to the
validation features): ``kappa_control="top"`` moves only the largest singular
value (the spread of the spectrum changes, the other directions and so most of
:math:`\Phi`'s scale stay); ``"uniform"`` multiplies them all by :math:`s`, which
with a fixed ridge is the same problem as ridge :math:`\mu/s^2` on the original
data, so :math:`\Phi`'s scale itself falls with :math:`\kappa` (about
:math:`\kappa^{-2}` on space_ga). :func:`space_ga` uses ``"uniform"``.
:math:`\kappa(x)` then changes with :math:`x`; the problem's ``metrics`` record
its drift.

Several problems (a grid of kappas and seeds) are one block-separable problem
with batched tensors (:func:`grid`): a step costs about the same as one block.

Data: ``space_ga`` through :func:`bilevel.data.load_space_ga` (the registry
stand-in has 5 features instead of the LIBSVM file's 6, so the feature layer is
:math:`5\to128` instead of :math:`6\to128`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from ..blocks import Blocks
from ..problem import Problem

__all__ = ["FeatureData", "space_ga_split", "grid", "space_ga", "kappa_of", "phi_smoothness"]


@dataclass(frozen=True, eq=False)
class FeatureData:
    """One standardised train/validation split (numpy float64 arrays) and its provenance ``meta``."""

    X: np.ndarray
    t: np.ndarray
    X_val: np.ndarray
    t_val: np.ndarray
    meta: dict


def space_ga_split(n_train: int = 500, n_val: int = 500, seed: int = 0, origin="auto") -> FeatureData:
    """A random train/validation split of space_ga, standardised with the training statistics.

    Rows are drawn without replacement by ``numpy.random.default_rng(seed)``;
    features are z-scored and the target centred and scaled with the training
    mean and standard deviation (paper 001 does not state its preprocessing).
    """
    from ..data import load_space_ga
    data = load_space_ga(origin=origin)
    n = len(data)
    if n_train + n_val > n:
        raise ValueError(f"space_ga ({origin}) has {n} rows; cannot draw {n_train} + {n_val}.")
    perm = np.random.default_rng(seed).permutation(n)
    tr, va = perm[:n_train], perm[n_train:n_train + n_val]
    X, t = data.x[tr].astype(np.float64), data.y[tr].astype(np.float64)
    Xv, tv = data.x[va].astype(np.float64), data.y[va].astype(np.float64)
    mx, sx = X.mean(0), X.std(0)
    sx[sx == 0] = 1.0
    mt, st = t.mean(), t.std() or 1.0
    meta = {"n_features": int(X.shape[1]), "feature_names": list(data.meta.get("feature_names", [])),
            "source": data.meta.get("source", data.meta.get("path")), "sha256": data.meta.get("sha256"),
            "substitutions": list(data.meta.get("substitutions", [])), "rows": int(n), "seed": seed}
    return FeatureData((X - mx) / sx, (t - mt) / st, (Xv - mx) / sx, (tv - mt) / st, meta)


def _linear_init(gen, out_f, in_f, dtype):
    """``torch.nn.Linear``'s default weight init, U(-1/sqrt(in), 1/sqrt(in)), from ``gen``."""
    bound = 1.0 / math.sqrt(in_f)
    return (torch.rand(out_f, in_f, generator=gen, dtype=dtype) * 2 - 1) * bound


def kappa_of(W: torch.Tensor, G: torch.Tensor, ridge) -> torch.Tensor:
    r""":math:`\kappa = 1 + \lambda_{\max}(W G W^\top)/\mu` for (batched) ``W`` (..., h, d), ``G`` (..., d, d).

    Uses the d x d matrix :math:`G^{1/2}W^\top W G^{1/2}`, which has the same nonzero eigenvalues.
    """
    evals, evecs = torch.linalg.eigh(G)
    root = evecs @ torch.diag_embed(evals.clamp_min(0).sqrt()) @ evecs.transpose(-1, -2)
    small = root @ W.transpose(-1, -2) @ W @ root
    return 1.0 + torch.linalg.eigvalsh(small)[..., -1] / ridge


def grid(splits: Sequence[FeatureData], kappas: Sequence[float], width: int = 128, ridge: float = 1.0,
         init_seeds: Sequence[int] | None = None, labels: Sequence | None = None,
         kappa_control: str = "uniform", head_init: str = "linear", dtype=torch.float64, device="cpu",
         name: str = "feature_learning") -> Problem:
    r"""Block-separable feature-learning problem, one block per ``(split, kappa)`` pair.

    Block ``b`` uses ``splits[b]``, the initial point of ``init_seeds[b]``
    (``W_0`` drawn like ``torch.nn.Linear``'s default init; ``y_0`` too with
    ``head_init="linear"``, or the ridge head :math:`y^*(x_0)` with ``head_init="ridge"``) and its
    features scaled by :math:`s_b` so that :math:`\kappa(x_0) =` ``kappas[b]``
    exactly. ``splits``, ``kappas``, ``init_seeds`` and ``labels`` have one
    entry per block.

    ``info``: per block ``kappa0``, ``L0`` (:math:`=\kappa_0\mu`), ``mu``,
    ``scale`` (:math:`s_b`), ``lambda_max_WGW0``; ``labels``.
    ``metrics``: ``kappa`` = :math:`\kappa_b(x)`, one value per block (in the
    block's rows of a :func:`bilevel.run` trace; the inner condition number
    moves with :math:`x`), ``kappa_drift_max`` / ``kappa_drift_min`` =
    :math:`\max_b / \min_b\ \kappa_b(x)/\kappa_b(x_0)`.

    >>> s = space_ga_split(60, 40, seed=0, origin="fixture")
    >>> p = grid([s, s], kappas=[2.0, 10.0], width=16)
    >>> [round(b["kappa0"], 6) for b in p.info["blocks"]]
    [2.0, 10.0]
    >>> bool(torch.allclose(kappa_of(p.x0.view(2, 16, 5), p.info["G"], 1.0), torch.tensor([2.0, 10.0], dtype=torch.float64)))
    True
    """
    splits, kappas = list(splits), [float(k) for k in kappas]
    B = len(splits)
    if B == 0 or len(kappas) != B:
        raise ValueError(f"grid(): need one kappa per split, got {len(kappas)} kappas for {B} splits.")
    if min(kappas) <= 1:
        raise ValueError(f"kappas must be > 1 (kappa = 1 + lambda_max(W G W^T)/mu), got {kappas}.")
    if not (ridge > 0):
        raise ValueError(f"ridge (mu) must be positive, got {ridge!r}.")
    init_seeds = list(range(B)) if init_seeds is None else list(init_seeds)
    labels = list(range(B)) if labels is None else list(labels)
    n, d = splits[0].X.shape
    n_val = splits[0].X_val.shape[0]
    for s in splits:
        if s.X.shape != (n, d) or s.X_val.shape != (n_val, d):
            raise ValueError("grid(): all splits must have the same sizes and number of features.")
    kw = dict(dtype=dtype, device=device)
    W0s, y0s = [], []
    for sd in init_seeds:
        gen = torch.Generator().manual_seed(int(sd))
        W0s.append(_linear_init(gen, width, d, dtype))
        y0s.append(_linear_init(gen, 1, width, dtype).reshape(-1))
    W0 = torch.stack(W0s).to(device)
    X = torch.stack([torch.as_tensor(s.X, **kw) for s in splits])
    Xv = torch.stack([torch.as_tensor(s.X_val, **kw) for s in splits])
    t = torch.stack([torch.as_tensor(s.t, **kw) for s in splits])
    tv = torch.stack([torch.as_tensor(s.t_val, **kw) for s in splits])
    target = torch.tensor(kappas, **kw)
    if kappa_control == "uniform":
        G_raw = X.transpose(1, 2) @ X / n
        lam_raw = kappa_of(W0, G_raw, 1.0) - 1.0                    # lambda_max(W0 G W0^T) per block
        scale = torch.sqrt((target - 1.0) * ridge / lam_raw)         # kappa(x0) = 1 + s^2 lam_raw / mu
        X = X * scale[:, None, None]
        Xv = Xv * scale[:, None, None]
    elif kappa_control == "top":
        maps, scales = [], []
        for b in range(B):
            T, sb = _top_singular_map(X[b], W0[b], float(target[b]), float(ridge))
            maps.append(T)
            scales.append(sb)
        T = torch.stack(maps)
        scale = torch.tensor(scales, **kw)
        X = X @ T
        Xv = Xv @ T
    else:
        raise ValueError(f"kappa_control must be 'uniform' or 'top', got {kappa_control!r}.")
    G = X.transpose(1, 2) @ X / n
    Xt = (X.transpose(1, 2) @ t[..., None]).squeeze(-1) / n          # X^T t / n, (B, d)
    mu = float(ridge)
    h = width
    eye_d = torch.eye(d, **kw)

    def unpack(x):
        return x.view(B, h, d)

    def predict(Xs, x, y):
        W = unpack(x)
        u = W.transpose(1, 2) @ y.view(B, h, 1)                     # W^T y, (B, d, 1)
        return (Xs @ u).squeeze(-1)                                 # (B, n)

    def g(x, y):
        r = predict(X, x, y) - t
        return 0.5 * (r * r).sum() / n + 0.5 * mu * (y * y).sum()

    def f(x, y):
        r = predict(Xv, x, y) - tv
        return 0.5 * (r * r).sum() / n_val

    def y_star(x):
        # y* lies in range(W): y* = W c with (G W^T W + mu I_d) c = X^T t / n (a d x d solve)
        W = unpack(x)
        c = torch.linalg.solve(G @ W.transpose(1, 2) @ W + mu * eye_d, Xt.unsqueeze(-1))
        return (W @ c).reshape(-1)

    def phi(x):
        return f(x, y_star(x))

    def grad_phi(x):
        xl = x.detach().requires_grad_(True)
        with torch.enable_grad():
            gr, = torch.autograd.grad(phi(xl), xl)
        return gr

    kappa0 = kappa_of(W0, G, mu)
    cache = {"x": None, "kappa": None}

    def kappas_at(x):
        if cache["x"] is not x:                 # one batched eigendecomposition per recorded iterate
            cache["x"], cache["kappa"] = x, kappa_of(unpack(x.detach()), G, mu)
        return cache["kappa"]

    metrics = {"kappa_drift_max": lambda x, y: float((kappas_at(x) / kappa0).max()),
               "kappa_drift_min": lambda x, y: float((kappas_at(x) / kappa0).min())}
    metrics["kappa"] = lambda x, y: kappas_at(x)          # one value per block
    blocks = Blocks.contiguous(labels, [h * d] * B, [h] * B)
    info = {"blocks": [dict(kappa0=float(kappa0[b]), L0=float(kappa0[b]) * mu, mu=mu,
                            scale=float(scale[b]), kappa_control=kappa_control,
                            init_seed=int(init_seeds[b]), split_seed=splits[b].meta.get("seed"))
                       for b in range(B)],
            "labels": labels, "G": G, "width": h, "n_features": d, "n_train": n, "n_val": n_val,
            "ridge": mu, "data": splits[0].meta}
    x0 = W0.reshape(-1).clone()
    if head_init == "linear":
        y0 = torch.stack(y0s).to(device).reshape(-1)
    elif head_init == "ridge":
        y0 = y_star(x0).detach().clone()
    else:
        raise ValueError(f"head_init must be 'linear' or 'ridge', got {head_init!r}.")
    info["head_init"] = head_init
    return Problem(f=f, g=g, x0=x0, y0=y0,
                   y_star=y_star, grad_phi=grad_phi, phi=phi, metrics=metrics, name=name,
                   info=info, blocks=blocks if B > 1 else None)


def _top_singular_map(X: torch.Tensor, W0: torch.Tensor, kappa: float, ridge: float):
    r"""The map :math:`T = V\,\mathrm{diag}(s, 1, \dots, 1)V^	op` (``X = U S V^T``) and the factor
    :math:`s` with :math:`\kappa(x_0) = 1 + \lambda_{\max}(W_0 G_T W_0^	op)/\mu =` ``kappa``, by bisection
    (:math:`\kappa` increases with :math:`s`)."""
    _, _, Vt = torch.linalg.svd(X, full_matrices=False)
    v1 = Vt[0]
    n = X.shape[0]
    G = X.T @ X / n

    def kap(s):
        Ts = torch.eye(X.shape[1], dtype=X.dtype, device=X.device) + (s - 1.0) * torch.outer(v1, v1)
        return float(kappa_of(W0, Ts @ G @ Ts, ridge)), Ts

    lo, hi = 0.0, 1.0
    if kap(lo)[0] > kappa:
        raise ValueError(f"kappa {kappa} is below what rescaling the top singular value can reach "
                         f"({kap(lo)[0]:.3g} at s = 0); increase the ridge.")
    while kap(hi)[0] < kappa:
        hi *= 2.0
        if hi > 1e8:
            raise ValueError(f"cannot reach kappa {kappa} by rescaling the top singular value.")
    while hi - lo > 1e-13 * hi:                 # kappa(s) is smooth: relative precision 1e-13 in s
        mid = 0.5 * (lo + hi)
        if kap(mid)[0] < kappa:
            lo = mid
        else:
            hi = mid
    s = 0.5 * (lo + hi)
    return kap(s)[1], s


def space_ga(kappa: float, seed: int = 0, n_train: int = 500, n_val: int = 500, width: int = 128,
             ridge: float = 1.0, origin="auto", dtype=torch.float64, device="cpu") -> Problem:
    r"""One feature-learning problem on space_ga at :math:`\kappa(x_0) =` ``kappa``.

    ``seed`` draws the train/validation split and the initial point.

    >>> p = space_ga(5.0, n_train=100, n_val=50, width=32, origin="fixture")
    >>> x = p.x0
    >>> gp = p.grad_phi(x)
    >>> v = torch.randn(x.shape, generator=torch.Generator().manual_seed(1), dtype=x.dtype)
    >>> eps = 1e-6
    >>> fd = (p.phi(x + eps * v) - p.phi(x - eps * v)) / (2 * eps)
    >>> bool(abs(float(gp @ v) - float(fd)) < 1e-7 * max(1.0, abs(float(fd))))
    True
    """
    split = space_ga_split(n_train, n_val, seed=seed, origin=origin)
    return grid([split], [kappa], width=width, ridge=ridge, init_seeds=[seed], labels=[kappa],
                dtype=dtype, device=device, name=f"feature_learning(kappa={kappa:g},seed={seed})")


def phi_smoothness(problem: Problem, x=None, iters: int = 50, seed: int = 0) -> torch.Tensor:
    r"""Per-block :math:`\|\nabla^2\Phi(x)\|_2` (power iteration on exact Hessian-vector products).

    Used to set the outer step relative to the local smoothness of
    :math:`\Phi` (:math:`\beta = c/L_\Phi(x_0)`). Returns one value per block
    (a 1-element tensor for an unstacked problem).
    """
    x = problem.x0 if x is None else x
    nb = len(problem.blocks) if problem.blocks is not None else 1
    gen = torch.Generator().manual_seed(seed)
    v = torch.randn(x.shape, generator=gen, dtype=x.dtype).to(x.device)
    xl = x.detach().requires_grad_(True)
    with torch.enable_grad():
        gphi, = torch.autograd.grad(problem.phi(xl), xl, create_graph=True)
        norms = torch.ones(nb, dtype=x.dtype, device=x.device)
        for _ in range(iters):
            hv, = torch.autograd.grad(gphi, xl, grad_outputs=v, retain_graph=True)
            hv = hv.view(nb, -1)
            norms = torch.linalg.vector_norm(hv, dim=1)
            v = (hv / norms.clamp_min(torch.finfo(x.dtype).tiny)[:, None]).reshape(-1)
    return norms.detach()
