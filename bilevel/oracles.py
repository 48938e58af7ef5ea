r"""Counted first- and second-order oracles.

These counts are the papers' complexity measures (Ji et al. 2022, paper 003,
Section 3): **Gc** = number of gradient evaluations (of ``f`` or ``g``) and
**MV** = number of Jacobian- and Hessian-vector products.

========================  =========================================  ===========
oracle                    returns                                    counted as
========================  =========================================  ===========
``grad_f(x, y)``          :math:`(\nabla_x f, \nabla_y f)`            1 ``grad_f``
``grad_y_g(x, y)``        :math:`\nabla_y g`                          1 ``grad_g``
``grad_g(x, y)``          :math:`(\nabla_x g, \nabla_y g)`            1 ``grad_g``
``unroll(x, y0, N, a)``   :math:`\partial f(x, y^N(x))/\partial x`       N ``grad_g`` + 1 ``grad_f``
                          through N GD steps (one backward pass)     + N ``jvp`` + N-1 ``hvp``
``curvature(x, y)``       a :class:`Curvature` at ``(x, y)``:
  ``.hvp(v)``             :math:`\nabla^2_{yy} g\, v`                 1 ``hvp``
  ``.jvp(v)``             :math:`\nabla^2_{xy} g\, v` (shape of x)    1 ``jvp``
  ``.both(v)``            both products in one double backward       1 ``hvp`` + 1 ``jvp``
========================  =========================================  ===========

``grad_calls = grad_f + grad_g`` (Gc) and ``mv_calls = hvp + jvp`` (MV).
Every derivative of g in ``y`` (``grad_y_g``, the :class:`Curvature` products,
``unroll``) is taken from the problem's ``g_y`` when it has one (g without its
terms in x alone, see :class:`~bilevel.problem.Problem`), else from ``g``;
``grad_g`` (which needs :math:`\nabla_x g`) always evaluates ``g``. The counts
do not depend on which.
Building a :class:`Curvature` (one differentiable evaluation of
:math:`\nabla_y g`) is part of the products' cost and is not counted as a Gc.
Stochastic oracles, two kinds:

* minibatches: every oracle takes an optional ``batch``, passed as the third
  argument ``f(x, y, batch)``; :meth:`Oracles.sample` draws one with the
  problem's ``sampler`` from the ``"outer"`` or ``"inner"`` stream (separate
  seeded ``torch.Generator`` s) and adds its size to ``samples``;
* additive Gaussian noise (synthetic problems): ``noise={"grad_g": s, ...}``
  (or one float for every oracle) adds :math:`\mathcal N(0, s^2 I)` to the
  named oracle outputs (``grad_f``, ``grad_g``, ``hvp``, ``jvp``), drawn from
  the ``"noise"`` stream. ``s`` is a standard deviation (variance ``s**2``).

Streams are derived from one seed, so a run is reproducible from its seed.

HVPs use double backward (``torch.autograd.grad`` with ``create_graph``), which
is about 10x faster than eager ``torch.func.jvp(grad)`` on small problems.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .problem import Problem
from .sampling import slice_len

__all__ = ["Oracles", "Curvature", "Counts"]


@dataclass
class Counts:
    """Running oracle counts (mutable, owned by one :class:`Oracles`)."""

    grad_f: int = 0
    grad_g: int = 0
    hvp: int = 0
    jvp: int = 0
    samples: int = 0

    @property
    def grad_calls(self) -> int:
        return self.grad_f + self.grad_g

    @property
    def mv_calls(self) -> int:
        return self.hvp + self.jvp

    def as_dict(self) -> dict:
        return {"grad_calls": self.grad_calls, "mv_calls": self.mv_calls,
                "grad_f_calls": self.grad_f, "grad_g_calls": self.grad_g,
                "hvp_calls": self.hvp, "jvp_calls": self.jvp, "samples": self.samples}


def _leaf(t: torch.Tensor) -> torch.Tensor:
    return t.detach().requires_grad_(True)


def _call(fn, x, y, batch):
    return fn(x, y) if batch is None else fn(x, y, batch)


def _grads(out, inputs, **kw):
    return torch.autograd.grad(out, inputs, allow_unused=True, materialize_grads=True, **kw)


class Curvature:
    r"""Second-order information of ``g`` at a fixed point ``(x, y)`` on one batch.

    The differentiable gradient :math:`\nabla_y g(x, y)` is built once, on the
    first product, and every later product reuses its graph, so ``Q``
    linear-system steps on one batch cost one forward pass and ``Q`` backward
    passes. While only :meth:`hvp` is asked for, ``x`` is kept out of the graph
    (``x`` enters as a constant: terms of g in x alone are not recorded, no
    x-branch of the backward is built); the first :meth:`jvp` or :meth:`both`
    rebuilds it once with ``x`` as a leaf. A caller that knows it will ask for a
    :meth:`jvp` passes ``with_x=True`` and the graph is built once, with ``x``,
    from the start (AID: Q products then one jvp; ITD's reverse pass); the
    products are the same numbers either way. A product on a reused graph equals
    the product on a fresh one (tests/test_oracles_perf.py checks it in float64).
    The graph is that of the problem's ``g_y`` when it has one (terms of g in x
    alone left out altogether), else of ``g``.

    ``grad_y`` (:math:`\nabla_y g`, a free by-product, counted by the caller)
    is computed on first access. Its additive noise, if any, is drawn when the
    object is built, so the noise stream is consumed in the same order whether
    or not it is used.
    """

    def __init__(self, oracles: "Oracles", x: torch.Tensor, y: torch.Tensor, batch=None, *,
                 with_x: bool = False):
        self._counts = oracles.counts
        self._noisy = oracles.noisy
        self._g = oracles.problem.g_for_y
        self._batch = batch
        self._x0 = x.detach()
        self._y0 = y.detach()
        self._gy = None            # differentiable grad_y g
        self._with_x = False       # whether x is a leaf of that graph
        self._want_x = with_x      # build it with x from the start
        self._grad_y_noise = oracles.draw_noise("grad_g", self._y0)
        self._grad_y = None

    def _graph(self, with_x: bool):
        if self._gy is not None and (self._with_x or not with_x):
            return
        with_x = with_x or self._want_x
        self._x = _leaf(self._x0) if with_x else self._x0
        self._y = _leaf(self._y0)
        with torch.enable_grad():
            gy, = torch.autograd.grad(_call(self._g, self._x, self._y, self._batch),
                                      self._y, create_graph=True)
        self._gy = gy
        self._with_x = with_x

    @property
    def grad_y(self) -> torch.Tensor:
        r""":math:`\nabla_y g(x, y)` (detached, noised like ``grad_g``)."""
        if self._grad_y is None:
            self._graph(False)
            gy = self._gy.detach()
            self._grad_y = gy if self._grad_y_noise is None else gy + self._grad_y_noise
        return self._grad_y

    def hvp(self, v: torch.Tensor) -> torch.Tensor:
        r""":math:`\nabla^2_{yy} g(x, y)\, v`."""
        self._counts.hvp += 1
        self._graph(False)
        return self._noisy("hvp", _grads(self._gy, self._y, grad_outputs=v, retain_graph=True)[0])

    def jvp(self, v: torch.Tensor) -> torch.Tensor:
        r""":math:`\nabla^2_{xy} g(x, y)\, v` (a vector of the size of ``x``)."""
        self._counts.jvp += 1
        self._graph(True)
        return self._noisy("jvp", _grads(self._gy, self._x, grad_outputs=v, retain_graph=True)[0])

    def both(self, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        r"""``(jvp(v), hvp(v))`` from one double-backward pass."""
        self._counts.hvp += 1
        self._counts.jvp += 1
        self._graph(True)
        jx, hy = _grads(self._gy, (self._x, self._y), grad_outputs=v, retain_graph=True)
        return self._noisy("jvp", jx), self._noisy("hvp", hy)


NOISY = ("grad_f", "grad_g", "hvp", "jvp")
STREAMS = ("outer", "inner", "noise")


def _noise_spec(noise) -> dict:
    if noise is None:
        return {}
    if isinstance(noise, (int, float)) and not isinstance(noise, bool):
        noise = {k: float(noise) for k in NOISY}
    if not isinstance(noise, dict):
        raise TypeError(f"noise must be a float or a dict over {NOISY}, got {noise!r}.")
    unknown = sorted(set(noise) - set(NOISY))
    if unknown:
        raise ValueError(f"unknown noisy oracle(s) {unknown}; choose among {NOISY}.")
    for k, v in noise.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not (v >= 0) or v == float("inf"):
            raise ValueError(f"noise[{k!r}] must be a finite standard deviation >= 0, got {v!r}.")
    return {k: float(v) for k, v in noise.items() if v > 0}


class Oracles:
    """Counted oracles of a :class:`~bilevel.problem.Problem`.

    Args:
      problem: the problem.
      seed: seeds the ``"outer"``, ``"inner"`` and ``"noise"`` streams
        (``torch.Generator`` on the problem's device).
      noise: additive Gaussian noise (standard deviations) on oracle outputs.

    Example:
      >>> import torch, bilevel as bl
      >>> p = bl.problems.quadratic.kappa2d(kappa=2.0)
      >>> o = bl.oracles.Oracles(p)
      >>> _ = o.grad_y_g(p.x0, p.y0); _ = o.curvature(p.x0, p.y0).hvp(torch.ones(2, dtype=torch.float64))
      >>> o.counts.grad_calls, o.counts.mv_calls
      (1, 1)
    """

    def __init__(self, problem: Problem, seed: int = 0, noise=None):
        self.problem = problem
        self.counts = Counts()
        self.noise = _noise_spec(noise)
        self.generators = {}
        for i, name in enumerate(STREAMS):
            gen = torch.Generator(device=problem.device)
            gen.manual_seed(int(seed) * len(STREAMS) + i + 1)
            self.generators[name] = gen

    def sample(self, kind: str, batch_size: int | None = None):
        """Draw a minibatch for ``f`` (``kind="outer"``) or ``g`` (``"inner"``)."""
        if kind not in ("outer", "inner"):
            raise ValueError(f"kind must be 'outer' or 'inner', got {kind!r}.")
        if self.problem.sampler is None:
            raise ValueError(f"problem {self.problem.name!r} has no sampler: it is deterministic; "
                             "build it with a sampler to use minibatches.")
        batch = self.problem.sampler(self.generators[kind], kind, batch_size)
        n = slice_len(batch)
        if n is None:
            try:
                n = len(batch)
            except TypeError:
                n = batch_size or 1
        self.counts.samples += int(n)
        return batch

    def draw_noise(self, name: str, like: torch.Tensor) -> torch.Tensor | None:
        """The additive noise of oracle ``name`` for an output shaped like ``like`` (or ``None``)."""
        s = self.noise.get(name)
        if not s:
            return None
        return s * torch.randn(like.shape, generator=self.generators["noise"], dtype=like.dtype,
                               device=like.device)

    # -- first order -------------------------------------------------------
    def grad_f(self, x, y, batch=None) -> tuple[torch.Tensor, torch.Tensor]:
        r""":math:`(\nabla_x f(x, y), \nabla_y f(x, y))`."""
        self.counts.grad_f += 1
        return self._grad_xy(self.problem.f, "grad_f", x, y, batch)

    def grad_y_g(self, x, y, batch=None) -> torch.Tensor:
        r""":math:`\nabla_y g(x, y)` (from the problem's ``g_y`` when it has one)."""
        self.counts.grad_g += 1
        y = _leaf(y)
        with torch.enable_grad():
            gy = _grads(_call(self.problem.g_for_y, x.detach(), y, batch), y)[0]
        return self.noisy("grad_g", gy)

    def grad_g(self, x, y, batch=None) -> tuple[torch.Tensor, torch.Tensor]:
        r""":math:`(\nabla_x g(x, y), \nabla_y g(x, y))`."""
        self.counts.grad_g += 1
        return self._grad_xy(self.problem.g, "grad_g", x, y, batch)

    def _grad_xy(self, fn, name: str, x, y, batch):
        """Both partial gradients of ``fn`` at ``(x, y)``, each with oracle ``name``'s noise (counted by the caller)."""
        x, y = _leaf(x), _leaf(y)
        with torch.enable_grad():
            gx, gy = _grads(_call(fn, x, y, batch), (x, y))
        return self.noisy(name, gx), self.noisy(name, gy)

    def charge(self, grad_f: int = 0, grad_g: int = 0, hvp: int = 0, jvp: int = 0,
               samples: int = 0) -> None:
        """Count oracle calls (and samples) that a composite computation performed outside these
        methods (forward-mode unrolling, a Curvature's gradient reused as a step, SABA's own
        batches), so that every count is incremented in this module."""
        self.counts.samples += samples
        self.counts.grad_f += grad_f
        self.counts.grad_g += grad_g
        self.counts.hvp += hvp
        self.counts.jvp += jvp

    def noisy(self, name: str, t: torch.Tensor) -> torch.Tensor:
        """``t`` plus this oracle's Gaussian noise for output ``name`` (``t`` itself without noise)."""
        e = self.draw_noise(name, t)
        return t if e is None else t + e

    # -- through an unrolled inner loop ---------------------------------------
    def unroll(self, x, y0, steps: int, lr) -> tuple[torch.Tensor, torch.Tensor]:
        r"""ITD's reverse mode: :math:`\partial f(x, y^N(x))/\partial x` with
        :math:`y^{t+1} = y^t - \alpha\nabla_y g(x, y^t)` from the constant ``y0``; returns
        ``(grad, y^N)``, both detached.

        Without noise the unroll is recorded once and differentiated by a single backward pass
        (its cost is that of the products it performs: N ``grad_g``, 1 ``grad_f``, N ``jvp``,
        N-1 ``hvp``, counted so); with noisy oracles every product is a separately noised
        :class:`Curvature` call, with the same counts.
        """
        if self.noise:
            return self._unroll_products(x, y0, steps, lr)
        xl = _leaf(x)
        y = _leaf(y0)
        g = self.problem.g_for_y
        with torch.enable_grad():
            for _ in range(steps):
                gy, = torch.autograd.grad(g(xl, y), y, create_graph=True)
                y = y - lr * gy
            f = self.problem.f(xl, y)
            grad, = _grads(f, xl)
        self.charge(grad_f=1, grad_g=steps, hvp=steps - 1, jvp=steps)
        return grad.detach(), y.detach()

    def _unroll_products(self, x, y, steps, lr):
        curvs = []
        for _ in range(steps):
            c = self.curvature(x, y, with_x=True)   # differentiable grad_y g at y^t, reused backwards
            self.counts.grad_g += 1        # the GD step's gradient evaluation
            curvs.append(c)
            y = y - lr * c.grad_y
        fx, fy = self.grad_f(x, y)
        grad, v = fx, fy
        for t in range(steps - 1, -1, -1):
            u = lr * v                     # (dy^{t+1}/dy^t)^T v = v - H (alpha v)
            if t > 0:
                jx, hv = curvs[t].both(u)
                v = v - hv
            else:
                jx = curvs[t].jvp(u)
            grad = grad - jx
            curvs[t] = None                # free the graph as soon as possible
        return grad.detach(), y.detach()

    # -- second order ------------------------------------------------------
    def curvature(self, x, y, batch=None, *, with_x: bool = False) -> Curvature:
        """Second-order products of ``g`` at ``(x, y)`` (see :class:`Curvature`; ``with_x=True`` when
        a :meth:`Curvature.jvp` will be asked for: one graph instead of two)."""
        return Curvature(self, x, y, batch, with_x=with_x)
