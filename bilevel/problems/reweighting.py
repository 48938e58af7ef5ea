r"""Data re-weighting for noisy labels (paper 001, Figure 3 right; setups.md C.6).

Per-sample weights :math:`\sigma(x_i)` (the outer variable ``x`` holds their
logits) weight the training loss of an MLP whose parameters, flattened into
one vector, are the inner variable ``y``; the weights are judged by the loss of
the trained MLP on a clean validation set:

.. math::

    g(x, y) = \frac1n\sum_{i=1}^n \sigma(x_i)\,\ell(h_y(a_i), \tilde b_i),\qquad
    f(x, y) = \frac1{n_v}\sum_{j=1}^{n_v}\ell(h_y(a^v_j), b^v_j),

with :math:`\ell` the cross-entropy, :math:`\tilde b_i` the training labels
(a fraction of them replaced by a uniformly drawn wrong label) and
:math:`h_y` the MLP :math:`784\to256\to10`,
``y = [W1 (256x784), b1 (256), W2 (10x256), b2 (10)]`` (row-major, unflattened
with ``torch.split`` + ``view``, so f and g stay ``torch.func``-friendly).

The inner problem is nonconvex: there is no exact :math:`y^*` or
:math:`\nabla\Phi`. The problem's ``metrics`` record the validation loss and
accuracy, the test loss and accuracy (clean MNIST test images), how far the
logits and the weights moved from their start (``logit_change_max`` =
:math:`\|x-x_0\|_\infty`, ``weight_change_max`` =
:math:`\|\sigma(x)-\sigma(x_0)\|_\infty`), and how well the weights single out
the corrupted samples (:func:`weight_diagnostics`).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from ..problem import Problem

__all__ = ["MLPShapes", "mlp_shapes", "mlp_logits", "init_mlp", "corrupt_labels", "mlp_problem",
           "mnist", "weight_diagnostics", "flip_metrics"]

ACTIVATIONS = {"relu": torch.relu, "elu": F.elu, "tanh": torch.tanh}


class MLPShapes(tuple):
    """``((out, in), (out,), ...)`` of each layer's weight and bias."""


def mlp_shapes(sizes) -> MLPShapes:
    """Parameter shapes of an MLP with layer sizes ``sizes`` (e.g. ``[784, 256, 10]``)."""
    shapes = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        shapes += [(b, a), (b,)]
    return MLPShapes(shapes)


def mlp_logits(y: torch.Tensor, inputs: torch.Tensor, shapes: MLPShapes, activation="relu") -> torch.Tensor:
    """Logits of the MLP whose flattened parameters are ``y`` on ``inputs`` (n, in)."""
    act = ACTIVATIONS[activation]
    sizes = [math.prod(s) for s in shapes]
    parts = [p.view(s) for p, s in zip(torch.split(y, sizes), shapes)]
    h = inputs
    n_layers = len(parts) // 2
    for i in range(n_layers):
        h = F.linear(h, parts[2 * i], parts[2 * i + 1])
        if i < n_layers - 1:
            h = act(h)
    return h


def init_mlp(shapes: MLPShapes, generator: torch.Generator, dtype=torch.float32) -> torch.Tensor:
    """``torch.nn.Linear``'s default init (weights and biases U(-1/sqrt(fan_in), 1/sqrt(fan_in))), flattened."""
    out = []
    for i in range(0, len(shapes), 2):
        fan_in = shapes[i][1]
        bound = 1.0 / math.sqrt(fan_in)
        for s in shapes[i:i + 2]:
            out.append((torch.rand(math.prod(s), generator=generator, dtype=dtype) * 2 - 1) * bound)
    return torch.cat(out)


def corrupt_labels(labels: np.ndarray, fraction: float, n_classes: int, rng: np.random.Generator):
    """Replace ``round(fraction * n)`` labels, chosen at random, by a uniformly drawn *wrong* label.

    Returns ``(noisy_labels, flipped_mask)``.
    """
    if not 0 <= fraction <= 1:
        raise ValueError(f"fraction must lie in [0, 1], got {fraction!r}.")
    n = labels.shape[0]
    flipped = np.zeros(n, dtype=bool)
    idx = rng.choice(n, size=int(round(fraction * n)), replace=False)
    flipped[idx] = True
    noisy = labels.copy()
    shift = rng.integers(1, n_classes, size=idx.size)          # 1..C-1: never the true label
    noisy[idx] = (labels[idx] + shift) % n_classes
    return noisy, flipped


def weight_diagnostics(x: torch.Tensor, flipped: torch.Tensor) -> dict:
    r"""How well the weights :math:`\sigma(x)` single out the corrupted samples.

    ``precision`` / ``recall``: of the :math:`m` lowest weights (:math:`m` = number
    of corrupted samples), the fraction that are corrupted / the fraction of the
    corrupted samples among them (equal, since the set has size :math:`m`);
    ``auc``: probability that a corrupted sample has a lower weight than a clean
    one (ties count 1/2; 0.5 at x = 0); ties in the lowest-m set are broken by index; mean weight of the corrupted and of the clean samples.

    >>> d = weight_diagnostics(torch.tensor([-2.0, 1.0, -1.0, 3.0]), torch.tensor([True, False, True, False]))
    >>> d["precision"], d["auc"]
    (1.0, 1.0)
    """
    flipped = flipped.bool()
    m = int(flipped.sum())
    w = torch.sigmoid(x.detach())
    if m == 0 or m == w.numel():
        return {"precision": float("nan"), "recall": float("nan"), "auc": float("nan"),
                "weight_corrupted": float(w[flipped].mean()) if m else float("nan"),
                "weight_clean": float(w[~flipped].mean()) if m < w.numel() else float("nan")}
    xd = x.detach()
    lowest = torch.argsort(xd, stable=True)[:m]                 # ties broken by index
    hits = int(flipped[lowest].sum())
    xc, xf = xd[~flipped], xd[flipped]
    cmp = (xc[None, :] > xf[:, None]).to(torch.float64) + 0.5 * (xc[None, :] == xf[:, None]).to(torch.float64)
    return {"precision": hits / m, "recall": hits / m, "auc": float(cmp.mean()),
            "weight_corrupted": float(w[flipped].mean()), "weight_clean": float(w[~flipped].mean())}


def flip_metrics(flipped: torch.Tensor, names: dict) -> dict:
    """Trace metrics ``{names[key]: fn(x, y)}`` reading ``key`` of :func:`weight_diagnostics` of ``x``
    against the ``flipped`` mask, computed once per ``x`` for all of them (in ``names``' order)."""
    cache = {"x": None, "d": None}

    def diag(x):
        if cache["x"] is not x:
            cache["x"], cache["d"] = x, weight_diagnostics(x, flipped)
        return cache["d"]

    return {out: (lambda x, y, key=key: diag(x)[key]) for key, out in names.items()}


def mlp_problem(train_x, train_y, val_x, val_y, hidden: int = 256, activation: str = "relu",
                flipped=None, test_x=None, test_y=None, seed: int = 0, x0: float = 0.0,
                dtype=torch.float32, device="cpu", name: str = "reweighting") -> Problem:
    r"""The re-weighting problem on given tensors (inputs flattened, labels int64).

    ``y0``: ``torch.nn.Linear``'s default init drawn from ``seed``; ``x0`` =
    the constant logit ``x0`` (0: all weights 1/2). ``flipped`` (bool mask of
    corrupted training labels) enables the weight metrics; ``test_x/test_y``
    the test metrics.
    """
    kw = dict(dtype=dtype, device=device)
    A = torch.as_tensor(train_x, **kw)
    b = torch.as_tensor(train_y, dtype=torch.int64, device=device)
    Av = torch.as_tensor(val_x, **kw)
    bv = torch.as_tensor(val_y, dtype=torch.int64, device=device)
    n, d = A.shape
    n_classes = int(max(int(b.max()), int(bv.max())) + 1) if test_y is None else \
        int(max(int(b.max()), int(bv.max()), int(np.max(test_y))) + 1)
    n_classes = max(n_classes, 10)
    shapes = mlp_shapes([d, hidden, n_classes])
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}.")

    def g(x, y):
        losses = F.cross_entropy(mlp_logits(y, A, shapes, activation), b, reduction="none")
        return torch.dot(torch.sigmoid(x), losses) / n

    def f(x, y):
        return F.cross_entropy(mlp_logits(y, Av, shapes, activation), bv)

    def val_acc(x, y):
        with torch.no_grad():
            return float((mlp_logits(y, Av, shapes, activation).argmax(1) == bv).to(torch.float64).mean())

    def val_loss(x, y):
        with torch.no_grad():
            return float(f(x, y))

    x_start = torch.full((n,), float(x0), **kw)

    def logit_change_max(x, y):
        return float((x.detach() - x_start).abs().max())

    def weight_change_max(x, y):
        return float((torch.sigmoid(x.detach()) - torch.sigmoid(x_start)).abs().max())

    metrics = {"val_loss": val_loss, "val_acc": val_acc, "logit_change_max": logit_change_max,
               "weight_change_max": weight_change_max}
    if test_x is not None:
        At = torch.as_tensor(test_x, **kw)
        bt = torch.as_tensor(test_y, dtype=torch.int64, device=device)

        def test_loss(x, y):
            with torch.no_grad():
                return float(F.cross_entropy(mlp_logits(y, At, shapes, activation), bt))

        def test_acc(x, y):
            with torch.no_grad():
                return float((mlp_logits(y, At, shapes, activation).argmax(1) == bt).to(torch.float64).mean())

        metrics.update(test_loss=test_loss, test_acc=test_acc)
    if flipped is not None:
        mask = torch.as_tensor(np.asarray(flipped), dtype=torch.bool, device=device)
        metrics.update(flip_metrics(mask, {k: f"flip_{k}" for k in
                                           ("precision", "auc", "weight_corrupted", "weight_clean")}))
    gen = torch.Generator().manual_seed(int(seed))
    y0 = init_mlp(shapes, gen, dtype=dtype).to(device)
    x0t = x_start.clone()
    info = {"n_train": n, "n_val": int(Av.shape[0]), "shapes": list(shapes), "n_params": int(y0.numel()),
            "hidden": hidden, "activation": activation, "n_classes": n_classes,
            "flipped": None if flipped is None else np.asarray(flipped, dtype=bool)}
    return Problem(f=f, g=g, x0=x0t, y0=y0, metrics=metrics, name=name, info=info)


def mnist(n_train: int = 2000, n_val: int = 500, n_test: int = 1000, corruption: float = 0.2,
          hidden: int = 256, activation: str = "relu", seed: int = 0, origin="auto",
          dtype=torch.float32, device="cpu") -> Problem:
    r"""Paper 001's MNIST re-weighting problem (setups.md C.6).

    ``n_train + n_val`` images are drawn without replacement from the MNIST
    training split by ``numpy.random.default_rng(seed)``; ``corruption`` of the
    training labels are replaced by a uniformly drawn wrong label
    (:func:`corrupt_labels`); ``n_test`` images of the MNIST test split (the
    first ones, clean) give the test metrics (0: none). Pixels are scaled to
    [0, 1]. ``info["flipped"]`` is the corruption mask.

    >>> p = mnist(n_train=100, n_val=50, n_test=0, hidden=8, origin="fixture")
    >>> p.dim_x, p.dim_y, int(p.info["flipped"].sum())
    (100, 6370, 20)
    """
    from ..data import load_mnist
    train = load_mnist("train", origin=origin)
    if n_train + n_val > len(train):
        raise ValueError(f"MNIST train ({origin}) has {len(train)} images; cannot draw "
                         f"{n_train} + {n_val}.")
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(train))
    tr, va = perm[:n_train], perm[n_train:n_train + n_val]
    flat = train.flat(np.float32)
    labels = train.y
    noisy, flipped = corrupt_labels(labels[tr], corruption, 10, rng)
    test_x = test_y = None
    if n_test:
        test = load_mnist("test", origin=origin)
        n_test = min(n_test, len(test))
        test_x, test_y = test.flat(np.float32)[:n_test], test.y[:n_test]
    p = mlp_problem(flat[tr], noisy, flat[va], labels[va], hidden=hidden, activation=activation,
                    flipped=flipped, test_x=test_x, test_y=test_y, seed=seed, dtype=dtype,
                    device=device, name=f"mnist_reweighting(n={n_train},corrupt={corruption:g},seed={seed})")
    p.info.update(corruption=corruption, seed=seed, source=train.meta.get("source", train.meta.get("path")),
                  sha256=train.meta.get("sha256"), true_labels=labels[tr])
    return p
