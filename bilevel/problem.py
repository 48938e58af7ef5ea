r"""The bilevel problem.

.. math::

    \min_{x} \Phi(x) := f(x, y^*(x)) \quad\text{s.t.}\quad
    y^*(x) = \arg\min_y g(x, y).

A :class:`Problem` bundles the outer objective ``f(x, y)``, the inner objective
``g(x, y)`` (both scalar torch functions of 1-D tensors, argument order always
``(x, y)``), the initial point ``(x0, y0)`` and optional exact oracles used only
for metrics: ``y_star(x)``, ``grad_phi(x)`` and ``phi(x)``. An optional ``g_y``
(g without its terms in x alone) lets the y-oracles skip those terms.

Device and dtype of every computation follow ``x0``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import torch

from .blocks import Blocks

__all__ = ["Problem", "check_vector"]

Fn = Callable[..., torch.Tensor]


def check_vector(name: str, t: Any, like: torch.Tensor | None = None) -> torch.Tensor:
    """Validate that ``t`` is a finite 1-D floating tensor (matching ``like``).

    Raises ``TypeError``/``ValueError`` naming ``name`` and the fix.
    """
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}; "
                        f"wrap it with torch.as_tensor(..., dtype=torch.float64).")
    if t.ndim != 1:
        raise ValueError(f"{name} must be 1-D (flatten parameters into a vector), "
                         f"got shape {tuple(t.shape)}.")
    if not t.is_floating_point():
        raise TypeError(f"{name} must be a floating tensor, got dtype {t.dtype}; "
                        f"use .to(torch.float64) (or float32 on GPU).")
    if like is not None:
        if t.dtype != like.dtype:
            raise TypeError(f"{name} has dtype {t.dtype} but x0 has {like.dtype}; "
                            f"all tensors of a problem share x0's dtype: use .to({like.dtype}).")
        if t.device != like.device:
            raise ValueError(f"{name} is on {t.device} but x0 is on {like.device}; "
                             f"move it with .to({str(like.device)!r}).")
    return t


@dataclass(frozen=True, eq=False)
class Problem:
    r"""A bilevel problem :math:`\min_x f(x, y^*(x))`, :math:`y^*(x)=\arg\min_y g(x,y)`.

    Args:
      f: outer objective ``f(x, y) -> scalar tensor``.
      g: inner objective ``g(x, y) -> scalar tensor``, strongly (or uniformly)
        convex in ``y``.
      x0: initial outer variable (1-D tensor); fixes device and dtype.
      y0: initial inner variable (1-D tensor, same device and dtype).
      y_star: optional exact inner solution ``y_star(x) -> y``.
      grad_phi: optional exact hypergradient ``grad_phi(x) -> (dim x,)``.
      phi: optional exact outer value ``phi(x) = f(x, y_star(x))``.
      metrics: optional extra metrics ``{name: fn(x, y) -> float}`` recorded in
        the trace (e.g. a validation or test loss); on a problem with ``blocks``
        a metric may instead return one value per block (a 1-D tensor or
        sequence of ``len(blocks)`` numbers), which :func:`bilevel.run` puts in
        the rows of those blocks.
      name: a short label recorded in traces.
      info: free-form metadata (problem constants such as ``L``, ``mu``, ``kappa``).
      blocks: for a block-separable problem (see :func:`bilevel.problems.stack`):
        a :class:`bilevel.blocks.Blocks` (labels, x and y slices); :func:`bilevel.run`
        then reports the exact metrics per block, one row per ``(k, block)``, and a
        metric may return one value per block.
      sampler: for stochastic problems, ``sampler(generator, kind, batch_size)
        -> batch`` draws a minibatch (``kind`` is ``"outer"`` for f or
        ``"inner"`` for g); the batch is passed as third argument
        ``f(x, y, batch)`` / ``g(x, y, batch)``, and its size (``len(batch)``,
        or ``batch_size``) is added to the ``samples`` count. See
        :meth:`bilevel.oracles.Oracles.sample`.
      n_samples: for finite-sum problems, ``{"inner": n, "outer": m}``: the
        number of samples of g and of f, whose ``g``/``f`` also take a ``slice``
        of consecutive samples as batch (solvers with per-sample tables, such as
        :class:`~bilevel.solvers.SABA`, cut them from these sizes); ``None``
        otherwise.
      g_y: optional ``g`` without its terms that do not depend on ``y`` (same
        signature as ``g``, batch included); ``None`` (default): ``g`` itself.
        :class:`bilevel.oracles.Oracles` take every derivative of g in ``y``
        from it: :math:`\nabla_y g` (``grad_y_g``), the products
        :math:`\nabla^2_{yy} g\,v` and :math:`\nabla^2_{xy} g\,v` of a
        :class:`~bilevel.oracles.Curvature`, the unrolled inner loop of ITD and
        the cross product :math:`\nabla^2_{yx} g\,d`; ``g`` is still used
        wherever its value or :math:`\nabla_x g` is needed (``grad_g``,
        penalty and value-function methods such as F2SA). It must satisfy
        :math:`g(x, y) - g_y(x, y) = c(x)` for all ``(x, y)`` (and every batch):
        then its first and second derivatives in ``y`` and its cross
        derivatives in ``(x, y)`` are those of ``g``, and the oracle counts are
        unchanged. For example, for :math:`g = \tfrac12 y^\top A y + x^\top C y
        + \tfrac12 x^\top B x + b^\top x`, :math:`g_y = \tfrac12 y^\top A y + x^\top C y`
        (:func:`bilevel.problems.finite_sum.quadratic`). A term such as
        :math:`e^{x}\lVert y\rVert^2` depends on ``y`` and stays in ``g_y``.
        Written with the same operations in the same order as ``g``'s
        y-dependent terms, it gives bit-identical y-oracles. Checked cheaply at
        construction (four evaluations on the full data): :math:`g - g_y` must
        take the same value (up to rounding) at ``y0`` and at a perturbed ``y``,
        for a perturbed ``x0``, which catches a ``g_y`` that drops a
        y-dependent term whose value changes there (not one that is tiny there). ``dataclasses.replace(p,
        g=...)`` keeps the old ``g_y``: replace both, or pass ``g_y=None``.

    Example:
      >>> import torch, bilevel as bl
      >>> p = bl.Problem(f=lambda x, y: ((y - 1) ** 2).sum(),
      ...                g=lambda x, y: 0.5 * ((y - x) ** 2).sum(),
      ...                x0=torch.zeros(2, dtype=torch.float64), y0=torch.zeros(2, dtype=torch.float64))
      >>> p.dim_x, p.dim_y
      (2, 2)
    """

    f: Fn
    g: Fn
    x0: torch.Tensor
    y0: torch.Tensor
    y_star: Callable[[torch.Tensor], torch.Tensor] | None = None
    grad_phi: Callable[[torch.Tensor], torch.Tensor] | None = None
    phi: Callable[[torch.Tensor], torch.Tensor] | None = None
    metrics: Mapping[str, Callable[[torch.Tensor, torch.Tensor], Any]] = field(default_factory=dict)
    name: str = "problem"
    info: Mapping[str, Any] = field(default_factory=dict)
    blocks: Blocks | None = None
    sampler: Callable[[torch.Generator, str, int | None], Any] | None = None
    g_y: Fn | None = None
    n_samples: Mapping[str, int] | None = None

    def __post_init__(self):
        for nm in ("f", "g"):
            if not callable(getattr(self, nm)):
                raise TypeError(f"Problem.{nm} must be a callable {nm}(x, y) -> scalar tensor.")
        for nm in ("y_star", "grad_phi", "phi", "sampler", "g_y"):
            v = getattr(self, nm)
            if v is not None and not callable(v):
                raise TypeError(f"Problem.{nm} must be callable or None.")
        check_vector("x0", self.x0)
        check_vector("y0", self.y0, like=self.x0)
        # the initial point is data, not a leaf of some outer autograd graph
        object.__setattr__(self, "x0", self.x0.detach())
        object.__setattr__(self, "y0", self.y0.detach())
        if not bool(torch.isfinite(self.x0).all()) or not bool(torch.isfinite(self.y0).all()):
            raise ValueError("x0 and y0 must be finite (found NaN/Inf).")
        if self.blocks is not None:
            if not isinstance(self.blocks, Blocks):
                raise TypeError("Problem.blocks must be a bilevel.blocks.Blocks (e.g. Blocks.contiguous(labels, "
                                f"sizes_x, sizes_y)) or None, got {type(self.blocks).__name__}.")
            if not self.blocks.batched:
                object.__setattr__(self, "blocks", None)
            else:
                self.blocks.check(self.dim_x, self.dim_y)
        if self.n_samples is not None:
            sizes = self.n_samples
            if not isinstance(sizes, Mapping) or set(sizes) != {"inner", "outer"} or not all(
                    isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in sizes.values()):
                raise ValueError(f"Problem.n_samples must be {{'inner': n, 'outer': m}} with integers >= 1 "
                                 f"(the sample counts of g and f), got {sizes!r}; pass None for a problem "
                                 "that is not a finite sum.")
            object.__setattr__(self, "n_samples", dict(sizes))
        for nm, fn in dict(self.metrics).items():
            if not callable(fn):
                raise TypeError(f"metric {nm!r} must be a callable fn(x, y).")
        # Evaluate f and g once: catches wrong shapes early, with a clear message.
        for nm in ("f", "g") + (("g_y",) if self.g_y is not None else ()):
            with torch.no_grad():
                try:
                    val = getattr(self, nm)(self.x0, self.y0)
                except Exception as exc:  # noqa: BLE001 - re-raised with context
                    raise ValueError(f"Problem.{nm}(x0, y0) failed: {exc!r}. "
                                     f"{nm} must accept 1-D tensors x (dim {self.x0.numel()}) "
                                     f"and y (dim {self.y0.numel()}).") from exc
            if not isinstance(val, torch.Tensor) or val.numel() != 1:
                raise ValueError(f"Problem.{nm}(x0, y0) must return a scalar tensor, got "
                                 f"{type(val).__name__} of shape {getattr(val, 'shape', None)}.")
        if self.g_y is not None:
            self._check_g_y()

    def _check_g_y(self) -> None:
        """Raise if ``g - g_y`` visibly depends on ``y`` (at a perturbed x0, y0; see ``g_y``)."""
        gen = torch.Generator(device=self.device).manual_seed(0)

        def nudge(t):
            return t + 0.5 * (1 + t.abs()) * torch.randn(t.shape, generator=gen, dtype=t.dtype,
                                                           device=t.device)
        x1, y1 = nudge(self.x0), nudge(self.y0)
        eps = torch.finfo(self.dtype).eps
        with torch.no_grad():                     # x perturbed too: y-terms such as x'Cy vanish at x0 = 0
            vals = [(float(self.g(x1, y)), float(self.g_y(x1, y))) for y in (self.y0, y1)]
        if not all(math.isfinite(v) for pair in vals for v in pair):
            return                                # outside g's domain: nothing to compare
        (g0, gy0), (g1, gy1) = vals
        scale = max(abs(g0), abs(gy0), abs(g1), abs(gy1), 1.0)
        if abs((g0 - gy0) - (g1 - gy1)) > 1e3 * eps * scale:
            raise ValueError(
                f"Problem.g_y is not g without terms in x alone: g - g_y changes with y "
                f"({g0 - gy0!r} at y0, {g1 - gy1!r} at a perturbed y). g_y must keep every "
                f"term of g that involves y (pass g_y=None to use g for the y-oracles).")

    @property
    def g_for_y(self) -> Fn:
        """The function the y-derivatives of ``g`` are taken from: ``g_y`` if given, else ``g``."""
        return self.g if self.g_y is None else self.g_y

    @property
    def dim_x(self) -> int:
        return self.x0.numel()

    @property
    def dim_y(self) -> int:
        return self.y0.numel()

    @property
    def device(self) -> torch.device:
        return self.x0.device

    @property
    def dtype(self) -> torch.dtype:
        return self.x0.dtype

    def to(self, device=None, dtype=None) -> "Problem":
        """A copy whose initial point lives on ``device``/``dtype``.

        ``f`` and ``g`` must then work on that device; problems built by
        :mod:`bilevel.problems` take ``device``/``dtype`` arguments instead.
        """
        import dataclasses
        return dataclasses.replace(self, x0=self.x0.to(device=device, dtype=dtype),
                                   y0=self.y0.to(device=device, dtype=dtype))

