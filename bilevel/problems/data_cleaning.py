r"""Data hyper-cleaning of a classifier with per-example weights (paper 002, Eq. (5); setups.md A.5).

One weight logit :math:`\lambda_i` per training example (the outer variable
``x``); the weights :math:`\sigma(\lambda_i)` scale each example's
cross-entropy in the training loss of a model whose parameters, flattened into
one vector, are the inner variable ``y = \theta``; the weights are judged by the
cross-entropy of the trained model on a validation set:

.. math::

    g(\lambda, \theta) = \frac1{|B|}\sum_{i\in B}\sigma(\lambda_i)\,
        \ell\big(h_\theta(a_i), \tilde b_i\big) + c\,\|\theta\|_p^p,\qquad
    f(\lambda, \theta) = \frac1{|B'|}\sum_{j\in B'}\ell\big(h_\theta(a'_j), \tilde b'_j\big),

with :math:`\ell` the cross-entropy, :math:`B` / :math:`B'` a minibatch of
training / validation indices (all of them without a batch), :math:`c` =
``reg``, :math:`p` = ``p`` (2: weight decay; :math:`p > 2` the uniformly convex
regularizer of paper 002's theory) applied to every parameter, biases included,
and :math:`h_\theta` any model given as a function ``model(theta, *inputs) ->
logits``. ``f`` does not depend on :math:`\lambda` (:math:`\nabla_\lambda f = 0`).

:func:`cleaning_problem` builds the problem from tensors and a model;
:class:`SentencePairRNN` is the sentence-pair classifier of paper 002's SNLI
experiment (a shared tanh RNN encoder, max-pool over time,
:math:`[u, v, |u-v|, u\odot v]`, a linear layer to the classes);
:func:`flip_labels` draws the label noise once per example;
:func:`snli` assembles paper 002's noisy-SNLI problem.

The inner problem is nonconvex (a neural network): there is no exact
:math:`y^*` or :math:`\nabla\Phi`. The problem's ``metrics`` record the
accuracy on the (noisy) validation set, the accuracy and loss on a clean test
set, and how well :math:`\sigma(\lambda)` finds the flipped examples
(:func:`bilevel.problems.reweighting.weight_diagnostics`, ``flip_auc``).
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..problem import Problem
from .reweighting import flip_metrics

__all__ = ["flip_labels", "SentencePairRNN", "cleaning_problem", "snli"]


def flip_labels(labels: np.ndarray, rate: float, n_classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    r"""Flip each label independently with probability ``rate`` to one of the other classes.

    .. math::

        \tilde b_i = (b_i + s_i) \bmod C \text{ with probability } r,\ s_i\sim\mathcal U\{1..C-1\};
        \quad \tilde b_i = b_i \text{ otherwise}.

    The draw is made once per example from ``numpy.random.default_rng(seed)``
    (the same ``seed`` gives the same mask). Paper 002's code redraws the flip
    at every access of an example instead (setups.md A.5, quirk (i)).
    Returns ``(noisy_labels, flipped_mask)``.

    >>> noisy, mask = flip_labels(np.zeros(8, np.int64), 0.5, 3, seed=0)
    >>> bool(((noisy != 0) == mask).all()), bool(noisy[mask].min() >= 1)
    (True, True)
    """
    if not (isinstance(rate, (int, float)) and 0 <= rate <= 1):
        raise ValueError(f"flip_labels: rate must lie in [0, 1], got {rate!r}.")
    if not (isinstance(n_classes, int) and n_classes >= 2):
        raise ValueError(f"flip_labels: n_classes must be an int >= 2, got {n_classes!r}.")
    labels = np.asarray(labels, dtype=np.int64)
    rng = np.random.default_rng(seed)
    flipped = rng.random(labels.shape[0]) < rate
    shift = rng.integers(1, n_classes, size=labels.shape[0])
    noisy = np.where(flipped, (labels + shift) % n_classes, labels)
    return noisy.astype(np.int64), flipped


class SentencePairRNN:
    r"""Sentence-pair classifier with flattened parameters (paper 002's SNLI model, ``RNN_net.NLIRNN``).

    .. math::

        h^{(l)}_t = \tanh\big(W^{(l)}_{ih} h^{(l-1)}_t + b^{(l)}_{ih} + W^{(l)}_{hh} h^{(l)}_{t-1} + b^{(l)}_{hh}\big),
        \quad h^{(0)}_t = e(w_t),\quad u = \max_{t\le T} h^{(L)}_t,

    the same encoder for premise (:math:`u`) and hypothesis (:math:`v`),
    logits :math:`= W [u, v, |u-v|, u\odot v] + b`. The word vectors
    :math:`e(\cdot)` are fixed (not parameters); the maximum runs over the real
    tokens only (padding masked). ``theta`` stacks, per layer,
    ``W_ih (H, d_in), W_hh (H, H), b_ih (H), b_hh (H)`` and then ``W (C, 4H), b (C)``
    (row-major); ``init`` draws ``torch.nn.RNN``'s and ``torch.nn.Linear``'s
    default :math:`\mathcal U(-1/\sqrt{\text{fan}}, 1/\sqrt{\text{fan}})`.

    The encoder is ``torch.nn.RNN`` (tanh) evaluated with
    ``torch.func.functional_call`` on slices of ``theta``, with cuDNN switched
    off: cuDNN's RNN has no double backward (Hessian-vector products); paper
    002's code disables cuDNN as well.

    >>> m = SentencePairRNN(torch.zeros(5, 3), hidden=4, layers=2, n_classes=3)
    >>> m.n_params
    127
    """

    def __init__(self, vectors: torch.Tensor, hidden: int, layers: int = 1, n_classes: int = 3):
        for name, v in (("hidden", hidden), ("layers", layers), ("n_classes", n_classes)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"SentencePairRNN: {name} must be an int >= 1, got {v!r}.")
        if vectors.ndim != 2:
            raise ValueError(f"SentencePairRNN: vectors must be (vocabulary, dim), got shape {tuple(vectors.shape)}.")
        self.vectors = vectors
        self.hidden, self.layers, self.n_classes = hidden, layers, n_classes
        d = vectors.shape[1]
        shapes = []
        for layer in range(layers):
            d_in = d if layer == 0 else hidden
            shapes += [(hidden, d_in), (hidden, hidden), (hidden,), (hidden,)]
        shapes += [(n_classes, 4 * hidden), (n_classes,)]
        self.shapes = shapes
        self.sizes = [math.prod(s) for s in shapes]
        self.n_params = sum(self.sizes)
        # a template module for torch.func.functional_call (its own parameters are never used)
        self._rnn = torch.nn.RNN(d, hidden, num_layers=layers, nonlinearity="tanh", batch_first=True,
                                 device="meta")
        self._names = [f"{k}_l{layer}" for layer in range(layers) for k in ("weight_ih", "weight_hh",
                                                                            "bias_ih", "bias_hh")]

    def init(self, generator: torch.Generator, dtype=None) -> torch.Tensor:
        """``torch.nn`` default initialisation, flattened (on the vectors' device)."""
        dtype = dtype or self.vectors.dtype
        out = []
        for i, s in enumerate(self.shapes):
            fan = self.hidden if i < 4 * self.layers else 4 * self.hidden
            bound = 1.0 / math.sqrt(fan)
            out.append((torch.rand(math.prod(s), generator=generator, dtype=dtype) * 2 - 1) * bound)
        return torch.cat(out).to(self.vectors.device)

    def _parts(self, theta):
        return [p.view(s) for p, s in zip(torch.split(theta, self.sizes), self.shapes)]

    def encode(self, parts, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Max-pooled top-layer states ``(n, H)`` of token ids ``(n, T)`` with ``lengths`` ``(n,)``."""
        T = int(lengths.max())
        ids = ids[:, :T].long()
        emb = self.vectors[ids].to(parts[0].dtype)                   # (n, T, d)
        mask = torch.arange(T, device=ids.device)[None, :] < lengths[:, None]
        params = dict(zip(self._names, parts[:4 * self.layers]))
        with torch.backends.cudnn.flags(enabled=False):
            out, _ = torch.func.functional_call(self._rnn, params, (emb,))
        # unidirectional: the states at padded positions come after the real ones and are masked
        return out.masked_fill(~mask[:, :, None], float("-inf")).amax(dim=1)

    def __call__(self, theta, premise, premise_lengths, hypothesis, hypothesis_lengths):
        parts = self._parts(theta)
        u = self.encode(parts, premise, premise_lengths)
        v = self.encode(parts, hypothesis, hypothesis_lengths)
        feats = torch.cat([u, v, (u - v).abs(), u * v], dim=1)
        return F.linear(feats, parts[-2], parts[-1])


def _per_example(model, y, inputs, labels, chunk, total):
    """``sum over chunks of total(logits, labels) / n``: a per-example mean evaluated ``chunk`` rows at a time."""
    acc = 0
    with torch.no_grad():
        for s in range(0, labels.shape[0], chunk):
            part = tuple(t[s:s + chunk] for t in inputs)
            acc += total(model(y, *part), labels[s:s + chunk])
    return acc / labels.shape[0]


def _accuracy(model, y, inputs, labels, chunk):
    return _per_example(model, y, inputs, labels, chunk, lambda out, b: int((out.argmax(1) == b).sum()))


def _loss(model, y, inputs, labels, chunk):
    return _per_example(model, y, inputs, labels, chunk,
                        lambda out, b: float(F.cross_entropy(out, b, reduction="sum")))


def cleaning_problem(model: Callable, y0: torch.Tensor, train_inputs: Sequence[torch.Tensor],
                     train_labels, val_inputs: Sequence[torch.Tensor], val_labels, *,
                     reg: float = 1e-4, p: float = 2.0, x0: float = 1.0, flipped=None,
                     test_inputs: Sequence[torch.Tensor] | None = None, test_labels=None,
                     eval_chunk: int = 1000, name: str = "data_cleaning") -> Problem:
    r"""The hyper-cleaning problem (module docstring) for ``model(theta, *inputs) -> logits``.

    ``*_inputs`` are tuples of tensors indexed along dimension 0 by example;
    labels are class indices (the training and validation labels as noisy as
    they are meant to be). ``x0``: every weight logit (paper 002: 1, weights
    0.73). Minibatches: ``sampler(generator, kind, batch_size)`` draws
    ``batch_size`` indices uniformly with replacement from the training
    (``"inner"``) or validation (``"outer"``) set, all indices for ``None``;
    ``n_samples`` is set for :class:`~bilevel.solvers.SABA`.
    Metrics: ``val_acc`` (all validation examples, noisy labels), with
    ``test_*``: ``test_acc``, ``test_loss`` (clean labels), with ``flipped``
    (bool mask of the noisy training labels): ``flip_auc``, ``flip_precision``,
    ``weight_flipped``, ``weight_clean``.
    """
    if not (isinstance(reg, (int, float)) and reg >= 0 and math.isfinite(reg)):
        raise ValueError(f"cleaning_problem: reg (c) must be a finite number >= 0, got {reg!r}.")
    if not (isinstance(p, (int, float)) and p >= 2):
        raise ValueError(f"cleaning_problem: p must be >= 2 (p > 2: uniformly convex regularizer), got {p!r}.")
    dev = y0.device
    tr_in = tuple(train_inputs)
    va_in = tuple(val_inputs)
    b = torch.as_tensor(train_labels, dtype=torch.int64, device=dev)
    bv = torch.as_tensor(val_labels, dtype=torch.int64, device=dev)
    n, m = b.shape[0], bv.shape[0]
    for label, ins, k in (("train", tr_in, n), ("val", va_in, m)):
        if any(t.shape[0] != k for t in ins):
            raise ValueError(f"cleaning_problem: every {label} input needs {k} rows (one per label), "
                             f"got {[tuple(t.shape) for t in ins]}.")
    all_in = torch.arange(n, device=dev)
    all_out = torch.arange(m, device=dev)
    p = float(p)

    def penalty(y):
        return reg * (y * y).sum() if p == 2 else reg * (y.abs() ** p).sum()

    def g(x, y, idx=None):
        idx = all_in if idx is None else idx
        losses = F.cross_entropy(model(y, *(t[idx] for t in tr_in)), b[idx], reduction="none")
        return (torch.sigmoid(x[idx]) * losses).mean() + penalty(y)

    def f(x, y, idx=None):
        idx = all_out if idx is None else idx
        return F.cross_entropy(model(y, *(t[idx] for t in va_in)), bv[idx])

    def sampler(generator, kind, batch_size):
        k = n if kind == "inner" else m
        if batch_size is None:
            return torch.arange(k, device=dev)
        return torch.randint(k, (batch_size,), generator=generator, device=dev)

    metrics = {"val_acc": lambda x, y: _accuracy(model, y, va_in, bv, eval_chunk)}
    if test_inputs is not None:
        te_in = tuple(test_inputs)
        bt = torch.as_tensor(test_labels, dtype=torch.int64, device=dev)
        metrics["test_acc"] = lambda x, y: _accuracy(model, y, te_in, bt, eval_chunk)
        metrics["test_loss"] = lambda x, y: _loss(model, y, te_in, bt, eval_chunk)
    if flipped is not None:
        mask = torch.as_tensor(np.asarray(flipped), dtype=torch.bool, device=dev)
        if mask.shape[0] != n:
            raise ValueError(f"cleaning_problem: flipped needs one entry per training example ({n}), "
                             f"got {mask.shape[0]}.")
        metrics.update(flip_metrics(mask, {"auc": "flip_auc", "precision": "flip_precision",
                                            "weight_corrupted": "weight_flipped", "weight_clean": "weight_clean"}))
    x0t = torch.full((n,), float(x0), dtype=y0.dtype, device=dev)
    info = {"n_params": int(y0.numel()), "reg": reg, "p": p,
            "flipped": None if flipped is None else np.asarray(flipped, dtype=bool)}
    return Problem(f=f, g=g, x0=x0t, y0=y0, metrics=metrics, name=name, info=info, sampler=sampler,
                   n_samples={"inner": n, "outer": m})


def snli(n_train: int = 10000, n_val: int = 10000, n_test: int | None = None, flip_rate: float = 0.2,
         hidden: int = 4096, layers: int = 2, reg: float = 1e-4, p: float = 2.0, x0: float = 1.0,
         noise_seed: int = 0, seed: int = 0, max_tokens: int | None = None, origin="auto",
         dtype=torch.float32, device="cpu", eval_chunk: int = 1000) -> Problem:
    r"""Paper 002's hyper-cleaning of an RNN on noisy SNLI (Figure 4, App. E.2; setups.md A.5).

    Training / validation: the first ``n_train`` / ``n_val`` pairs of the
    ``train`` / ``dev`` splits of :func:`bilevel.data.load_snli`, each label
    flipped with probability ``flip_rate`` to one of the other two classes
    (:func:`flip_labels`, drawn once from ``noise_seed``; validation from
    ``noise_seed + 1``); test: the first ``n_test`` (``None``: all) pairs of
    ``test``, clean. Model: :class:`SentencePairRNN` on the split's word
    vectors (50-d GloVe by default; the paper: 300-d GloVe 840B), initialised
    from ``seed``. ``max_tokens`` (``None``: all) keeps only the first tokens of
    every sentence (a cost cut for CPU profiles; the paper keeps whole
    sentences). ``info["flipped"]`` is the training flip mask.

    >>> prob = snli(n_train=40, n_val=20, n_test=20, hidden=8, layers=1, origin="fixture")
    >>> prob.dim_x, prob.dim_y, int(prob.info["flipped"].sum())
    (40, 579, 8)
    """
    from ..data import load_snli
    splits = {}
    for split, k in (("train", n_train), ("dev", n_val), ("test", n_test)):
        s = load_snli(split, origin=origin)
        if k is not None and k > len(s):
            raise ValueError(f"snli: the {split} split ({origin}) has {len(s)} pairs; cannot take {k}. "
                             "Lower n_train / n_val / n_test or prepare the full data (dvc repro prepare_snli).")
        splits[split] = (s, len(s) if k is None else k)
    vec = torch.as_tensor(splits["train"][0].vectors, dtype=dtype, device=device)
    model = SentencePairRNN(vec, hidden=hidden, layers=layers, n_classes=3)

    if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int)
                                   or max_tokens < 1):
        raise ValueError(f"snli: max_tokens must be None or an int >= 1, got {max_tokens!r}.")
    cap = max_tokens or 10 ** 9

    def inputs(split):
        s, k = splits[split]
        return tuple(torch.as_tensor(np.asarray(a[:k], dtype=np.int64), device=device)
                     for a in (s.premise[:, :cap], np.clip(s.premise_lengths, 1, cap), s.hypothesis[:, :cap],
                               np.clip(s.hypothesis_lengths, 1, cap)))

    noisy, flipped = flip_labels(splits["train"][0].labels[:n_train], flip_rate, 3, noise_seed)
    noisy_v, flipped_v = flip_labels(splits["dev"][0].labels[:n_val], flip_rate, 3, noise_seed + 1)
    test, kt = splits["test"]
    gen = torch.Generator().manual_seed(int(seed))
    y0 = model.init(gen, dtype=dtype)
    prob = cleaning_problem(model, y0, inputs("train"), noisy, inputs("dev"), noisy_v, reg=reg, p=p, x0=x0,
                            flipped=flipped, test_inputs=inputs("test"), test_labels=test.labels[:kt],
                            eval_chunk=eval_chunk,
                            name=f"snli_cleaning(n={n_train},H={hidden},L={layers},flip={flip_rate:g},seed={seed})")
    prob.info.update(hidden=hidden, layers=layers, flip_rate=flip_rate, noise_seed=noise_seed, seed=seed,
                     n_train=n_train, n_val=n_val, n_test=kt, max_tokens=max_tokens, embedding_dim=int(vec.shape[1]),
                     val_flipped=flipped_v, model=model,
                     embedding=splits["train"][0].meta.get("embedding"))
    return prob
