r"""Regularization hyperparameter optimization on MNIST (paper 003, Section 6, Figures 1-3).

.. math::

    \min_\theta\ f(\theta, w) = \frac{1}{|D_{val}|}\sum_{\xi\in D_{val}}\mathcal L(w;\xi)
    \quad\text{s.t.}\quad
    w^*(\theta) = \arg\min_w\ g(\theta, w) = \frac{1}{|D_{tr}|}\sum_{\xi\in D_{tr}}\mathcal L(w;\xi)
        + \frac12\sum_j \lambda_j w_j^2,\qquad \lambda = e^{\theta},

with :math:`\mathcal L` the cross-entropy of a linear softmax classifier
:math:`\xi=(a, c)\mapsto \mathrm{CE}(W_{:, :784}\,a + W_{:, 784},\ c)`,
:math:`W\in\mathbb R^{10\times 785}` (last column: bias) and :math:`w=\operatorname{vec}(W)`
(row-major, so ``w.view(10, 785)`` is :math:`W`). ``x = theta`` has one entry
(scalar :math:`\lambda = e^{\theta}`, the paper's :math:`\frac\lambda2\|w\|^2`) or,
with ``per_parameter=True``, one entry per weight (:math:`\lambda_j = e^{\theta_j}`).
The bias is regularized too (the paper's :math:`\|w\|^2` covers all of :math:`w`).

Paper 003's Appendix E (model, sizes, steps) is lost; this is the documented
stand-in of ``setups.md`` B.1, taken from the defaults of the stocBiO code the
paper builds on: linear softmax 784 -> 10 with bias, Kaiming-normal
initialisation with ``mode="fan_out"`` of the :math:`10\times785` matrix
(standard deviation :math:`\sqrt{2/10}`), pixels scaled to [0, 1] then
normalized with mean 0.1307 and standard deviation 0.3081, 20,000 training and
5,000 validation images from the MNIST training set (images 0..19,999 and
20,000..24,999 in canonical order: fixed for every seed), the test loss on the
10,000 MNIST test images, :math:`\theta_0 = 0` (:math:`\lambda_0 = 1`). Seeds change the
initialisation of :math:`W` only.

The problem has no closed form; its ``metrics`` record the unregularized
training loss, the validation loss (the outer objective) and the test loss at
the inner iterate, and the mean of :math:`\theta`, per seed.

Several seeds are stacked into one block-separable problem (one
:math:`(\theta_s, w_s)` block per seed) whose cost is dominated by one pass
over the data for all seeds; the data products use the custom autograd pair
:class:`_XW` / :class:`_GX` so that gradients and Hessian-vector products each
take two fast GEMMs over :math:`X` (autograd's default backward of ``x @ A.T``
uses a layout that is several times slower on CPU).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import torch
import torch.nn.functional as F

from ..blocks import Blocks
from ..problem import Problem

__all__ = ["MNISTSplits", "mnist_splits", "regularization", "ce_curvature", "StableStep",
           "stable_step", "N_CLASSES", "N_FEATURES", "MEAN", "STD"]

N_CLASSES = 10
N_FEATURES = 784
#: the usual MNIST normalization (torchvision example; stocBiO's ``mnist_exp.py``)
MEAN, STD = 0.1307, 0.3081


@dataclass(frozen=True, eq=False)
class MNISTSplits:
    """Training / validation / test tensors of :func:`mnist_splits`.

    ``x_*``: float ``(n, 784)`` normalized pixels; ``y_*``: int64 labels.
    ``meta``: where the images came from (origin, indices, sha256).
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    meta: Mapping[str, Any]

    @property
    def sizes(self) -> dict:
        return {"train": len(self.y_train), "val": len(self.y_val), "test": len(self.y_test)}


def mnist_splits(n_train: int = 20000, n_val: int = 5000, n_test: int | None = None,
                 origin: str = "auto", normalize: bool = True, dtype=torch.float32,
                 device="cpu") -> MNISTSplits:
    """Training, validation and test sets for the MNIST hyperparameter problem.

    Training images are ``train[0:n_train]``, validation images
    ``train[n_train:n_train + n_val]`` (canonical order; the same for every
    seed), test images ``test[0:n_test]`` (all by default).

    Args:
      n_train, n_val: sizes (paper stand-in 20,000 / 5,000).
      n_test: number of test images (``None``: all of them).
      origin: passed to :func:`bilevel.data.load_mnist`: ``"auto"`` reads
        ``data/processed/mnist.npz`` (DVC stage ``prepare_mnist``),
        ``"fixture"`` the committed 1,000 + 500 images (smoke runs).
      normalize: subtract 0.1307 and divide by 0.3081 after scaling to [0, 1].

    >>> s = mnist_splits(600, 400, origin="fixture")
    >>> s.sizes, s.x_train.shape
    ({'train': 600, 'val': 400, 'test': 500}, torch.Size([600, 784]))
    """
    from ..data import load_mnist
    for nm, v in (("n_train", n_train), ("n_val", n_val)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"mnist_splits: {nm} must be an integer >= 1, got {v!r}.")
    train = load_mnist("train", origin=origin)
    test = load_mnist("test", origin=origin)
    if n_train + n_val > len(train):
        raise ValueError(f"mnist_splits: n_train + n_val = {n_train + n_val} exceeds the "
                         f"{len(train)} training images of origin={origin!r}.")
    n_test = len(test) if n_test is None else int(n_test)
    if not 1 <= n_test <= len(test):
        raise ValueError(f"mnist_splits: n_test must be in [1, {len(test)}], got {n_test}.")

    def prep(x):
        x = x.reshape(x.shape[0], -1).astype(np.float32) / np.float32(255.0)
        if normalize:
            x = (x - np.float32(MEAN)) / np.float32(STD)
        return torch.from_numpy(np.ascontiguousarray(x)).to(dtype=dtype, device=device)

    def lab(y):
        return torch.from_numpy(np.asarray(y, dtype=np.int64)).to(device)

    xt, yt = train.x, train.y
    meta = {"origin": str(origin), "sha256": train.meta.get("sha256"), "normalize": normalize,
            "train_index": [0, n_train], "val_index": [n_train, n_train + n_val],
            "test_index": [0, n_test]}
    return MNISTSplits(prep(xt[:n_train]), lab(yt[:n_train]),
                       prep(xt[n_train:n_train + n_val]), lab(yt[n_train:n_train + n_val]),
                       prep(test.x[:n_test]), lab(test.y[:n_test]), meta)


class _XW(torch.autograd.Function):
    r""":math:`A \mapsto X A^\top` for a constant data matrix :math:`X` (n x 784).

    Autograd's own backward of ``x @ A.T`` forms :math:`X^\top G` (a slow GEMM
    layout on CPU); here the weight gradient is :math:`G^\top X` and the pair
    :class:`_XW` / :class:`_GX` differentiate into each other, so gradients and
    Hessian-vector products (double backward) each take two fast passes over X.
    """

    @staticmethod
    def forward(ctx, A, X):
        ctx.save_for_backward(X)
        return X @ A.T

    @staticmethod
    def backward(ctx, G):
        X, = ctx.saved_tensors
        return _GX.apply(G, X), None


class _GX(torch.autograd.Function):
    r""":math:`G \mapsto G^\top X` (the adjoint of :class:`_XW`)."""

    @staticmethod
    def forward(ctx, G, X):
        ctx.save_for_backward(X)
        return G.T @ X

    @staticmethod
    def backward(ctx, D):
        X, = ctx.saved_tensors
        return _XW.apply(D, X), None


def _ce_sum(w: torch.Tensor, x: torch.Tensor, y: torch.Tensor, n_seeds: int) -> torch.Tensor:
    r"""Sum over the ``n_seeds`` stacked models of each model's mean cross-entropy on ``(x, y)``."""
    W = w.view(n_seeds * N_CLASSES, N_FEATURES + 1)
    logits = _XW.apply(W[:, :N_FEATURES], x) + W[:, N_FEATURES]          # (n, S*10)
    logits = logits.view(-1, n_seeds, N_CLASSES).transpose(1, 2)          # (n, 10, S)
    return F.cross_entropy(logits, y[:, None].expand(-1, n_seeds), reduction="sum") / y.shape[0]


def _ce_each(w: torch.Tensor, x: torch.Tensor, y: torch.Tensor, n_seeds: int) -> torch.Tensor:
    """Mean cross-entropy of each stacked model, shape ``(n_seeds,)`` (no graph)."""
    with torch.no_grad():
        W = w.view(n_seeds * N_CLASSES, N_FEATURES + 1)
        logits = (x @ W[:, :N_FEATURES].T + W[:, N_FEATURES]).view(-1, n_seeds, N_CLASSES)
        return F.cross_entropy(logits.transpose(1, 2), y[:, None].expand(-1, n_seeds),
                               reduction="none").mean(0)


def kaiming_init(seed: int, dtype=torch.float32, device="cpu", std: float | None = None) -> torch.Tensor:
    r"""``nn.init.kaiming_normal_(W, mode="fan_out")`` of :math:`W\in\mathbb R^{10\times785}`
    from ``torch.Generator().manual_seed(seed)``, flattened (std :math:`\sqrt{2/10}`).

    Drawn on the CPU in float32, so a seed gives the same numbers for every dtype and device.

    >>> w = kaiming_init(0); w.shape, round(float(w.std()), 2)
    (torch.Size([7850]), 0.45)
    """
    gen = torch.Generator().manual_seed(int(seed))
    if std is None:
        std = math.sqrt(2.0 / N_CLASSES)      # gain sqrt(2) (default), fan_out = 10 rows
    w = torch.randn(N_CLASSES * (N_FEATURES + 1), generator=gen, dtype=torch.float32) * std
    return w.to(dtype=dtype, device=device)


class _PerSeedMetrics:
    """The per-seed losses at one point, computed once for all metric columns."""

    def __init__(self, data: MNISTSplits, n_seeds: int):
        self.data, self.n_seeds = data, n_seeds
        self._key = None
        self._val = None

    def __call__(self, x, y) -> dict:
        if self._key is not None and torch.equal(self._key[0], x) and torch.equal(self._key[1], y):
            return self._val
        d, S = self.data, self.n_seeds
        theta = x.detach().view(S, -1).mean(1)
        self._val = {"train_loss": _ce_each(y, d.x_train, d.y_train, S),
                     "val_loss": _ce_each(y, d.x_val, d.y_val, S),
                     "test_loss": _ce_each(y, d.x_test, d.y_test, S),
                     "log_lambda": theta}
        self._key = (x.detach().clone(), y.detach().clone())
        return self._val


#: names of the per-seed metrics (one value per seed block)
METRICS = ("train_loss", "val_loss", "test_loss", "log_lambda")


def regularization(data: MNISTSplits, per_parameter: bool = False, seeds=(0,),
                   theta0: float = 0.0, init_std: float | None = None) -> Problem:
    r"""The regularization hyperparameter problem for the initialisations ``seeds``.

    The models of all ``seeds`` are stacked into one problem (``y`` is the
    concatenation of the :math:`w_s`, ``x`` of the :math:`\theta_s`) whose
    ``f`` and ``g`` are the sums over seeds of the single-seed objectives. The
    blocks do not interact, so any solver performs exactly the single-seed
    updates on each block, while one pass over the data serves every seed
    (the cost is dominated by reading :math:`X`). Oracle counts and time are
    those of the whole batch.

    Args:
      data: the splits (:func:`mnist_splits`); device and dtype follow them.
      per_parameter: one :math:`\theta_j` per weight (``dim x = 7850`` per
        seed) instead of a scalar :math:`\theta`.
      seeds: seeds of the Kaiming initialisations :math:`w_0` (:func:`kaiming_init`).
      theta0: initial value of every :math:`\theta_j` (:math:`\lambda_0 = e^{\theta_0}`).
      init_std: standard deviation of the initialisation instead of Kaiming's
        :math:`\sqrt{2/10}` (``None``: Kaiming, the stand-in).

    ``problem.blocks`` (:mod:`bilevel.blocks`) is labelled by seed.
    ``metrics`` (:data:`METRICS`, one value per seed, so in that seed's rows of a
    :func:`bilevel.run` trace): ``train_loss`` (training cross-entropy without
    the regularizer), ``val_loss`` (:math:`f`), ``test_loss`` and ``log_lambda``
    (mean of :math:`\theta_s`), evaluated at the inner iterate.

    >>> p = regularization(mnist_splits(600, 400, origin="fixture"), seeds=(0, 1))
    >>> p.dim_x, p.dim_y, p.blocks.labels, sorted(p.metrics)[:2]
    (2, 15700, (0, 1), ['log_lambda', 'test_loss'])
    """
    seeds = [int(s) for s in seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be a non-empty list of distinct integers, got {seeds!r}.")
    S = len(seeds)
    dtype, device = data.x_train.dtype, data.x_train.device
    xt, yt, xv, yv = data.x_train, data.y_train, data.x_val, data.y_val
    per_seed = N_CLASSES * (N_FEATURES + 1)
    y0 = torch.cat([kaiming_init(s, dtype, device, init_std) for s in seeds])
    x0 = torch.full((S * per_seed if per_parameter else S,), float(theta0), dtype=dtype,
                    device=device)

    def g(x, y):
        lam = torch.exp(x)
        reg = torch.dot(lam, (y * y).view(S, per_seed).sum(1)) if not per_parameter \
            else torch.dot(lam, y * y)
        return _ce_sum(y, xt, yt, S) + 0.5 * reg

    def f(x, y):
        return _ce_sum(y, xv, yv, S)

    table = _PerSeedMetrics(data, S)
    metrics = {name: (lambda x, y, name=name: table(x, y)[name]) for name in METRICS}
    kind = "per_parameter" if per_parameter else "scalar"
    blocks = Blocks.contiguous(seeds, [per_seed if per_parameter else 1] * S, [per_seed] * S)
    return Problem(f=f, g=g, x0=x0, y0=y0, metrics=metrics, name=f"mnist_l2_{kind}", blocks=blocks,
                   info=dict(data.sizes, per_parameter=per_parameter, seeds=seeds,
                             theta0=float(theta0), data=dict(data.meta)))


def ce_curvature(data: MNISTSplits) -> float:
    r"""Norm of the training cross-entropy's Hessian at :math:`W = 0`: :math:`L = \lambda_{\max}(\tilde A^\top\tilde A/n)/10`.

    :math:`\tilde A = [X_{train}, \mathbf 1]` (the bias column). At :math:`W = 0` the
    softmax is uniform, the per-sample Hessian is
    :math:`(\tfrac1{10}I - \tfrac1{100}\mathbf 1\mathbf 1^\top)\otimes\tilde a\tilde a^\top`
    with norm :math:`\|\tilde a\|^2/10`, so the Hessian of the mean is exactly
    :math:`\lambda_{\max}(\tilde A^\top\tilde A/n)/10`
    (about 25.4 on the 20,000 normalized training images). Away from
    :math:`W = 0` the curvature is smaller in practice (10.2 at the Kaiming
    initialisation of seed 0, measured by power iteration); the worst case over
    :math:`W` is 5 times larger (:math:`\|\mathrm{diag}(p) - pp^\top\| \le 1/2`).

    >>> round(ce_curvature(mnist_splits(600, 400, origin="fixture")), 1)
    23.5
    """
    A = torch.cat([data.x_train, torch.ones(len(data.x_train), 1, dtype=data.x_train.dtype,
                                            device=data.x_train.device)], 1).double()
    gram = A.T @ A / A.shape[0]
    return float(torch.linalg.eigvalsh(gram)[-1]) / N_CLASSES


@dataclass(frozen=True)
class StableStep:
    r"""Step rule :math:`\theta \mapsto c / (L + \max_j e^{\theta_j})` per seed block.

    The Hessian of :math:`g` in :math:`w` is :math:`\nabla^2\mathrm{CE} + \mathrm{diag}(\lambda)`,
    of norm at most about :math:`L + \max_j\lambda_j` (:func:`ce_curvature`), so a
    gradient step (inner GD, or the GD linear-system solver of AID) with this
    step contracts for :math:`c < 2` while :math:`\lambda = e^\theta` changes; a
    fixed step stops being stable once :math:`\lambda` grows past
    :math:`2/\text{step} - L`. Called with the outer iterate ``x`` (``n_seeds``
    blocks of ``dim_x // n_seeds`` entries), it returns one step per inner
    coordinate (each seed's step repeated over that seed's 7,850 weights).
    """

    scale: float
    L: float
    n_seeds: int = 1

    def __post_init__(self):
        for nm in ("scale", "L"):
            v = getattr(self, nm)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) \
                    or v <= 0:
                raise ValueError(f"StableStep: {nm} must be a finite positive number, got {v!r}.")
        if isinstance(self.n_seeds, bool) or not isinstance(self.n_seeds, int) or self.n_seeds < 1:
            raise ValueError(f"StableStep: n_seeds must be an integer >= 1, got {self.n_seeds!r}.")

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        lam_max = torch.exp(x.detach().view(self.n_seeds, -1).amax(1))     # (S,)
        step = self.scale / (self.L + lam_max)
        return step.repeat_interleave(N_CLASSES * (N_FEATURES + 1))


def stable_step(data: MNISTSplits, scale: float = 1.0, n_seeds: int = 1,
                L: float | None = None) -> StableStep:
    r""":class:`StableStep` with :math:`L` = :func:`ce_curvature` of ``data`` (unless given).

    >>> d = mnist_splits(600, 400, origin="fixture")
    >>> rule = stable_step(d, scale=1.0, n_seeds=2)
    >>> st = rule(torch.tensor([0.0, 2.0]))
    >>> st.shape, round(float(st[0]), 4), round(float(st[-1]), 4)   # 1/(L+1), 1/(L+e^2)
    (torch.Size([15700]), 0.0409, 0.0324)
    """
    return StableStep(float(scale), float(ce_curvature(data) if L is None else L), int(n_seeds))
