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
``curvature(x, y)``       a :class:`Curvature` at ``(x, y)``:
  ``.hvp(v)``             :math:`\nabla^2_{yy} g\, v`                 1 ``hvp``
  ``.jvp(v)``             :math:`\nabla^2_{xy} g\, v` (shape of x)    1 ``jvp``
  ``.both(v)``            both products in one double backward       1 ``hvp`` + 1 ``jvp``
========================  =========================================  ===========

``grad_calls = grad_f + grad_g`` (Gc) and ``mv_calls = hvp + jvp`` (MV).
Building a :class:`Curvature` (one differentiable evaluation of
:math:`\nabla_y g`) is part of the products' cost and is not counted as a Gc.
Every oracle takes an optional ``batch``; when given, it is passed as the third
argument ``f(x, y, batch)`` (stochastic problems), and ``samples`` counts the
batch sizes reported by the problem.

HVPs use double backward (``torch.autograd.grad`` with ``create_graph``), which
is about 10x faster than eager ``torch.func.jvp(grad)`` on small problems.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .problem import Problem

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
    r"""Second-order information of ``g`` at a fixed point ``(x, y)``.

    The differentiable gradient :math:`\nabla_y g(x, y)` is built once and every
    product reuses its graph, so ``Q`` linear-system steps cost ``Q`` backward
    passes and no extra forward pass.
    """

    def __init__(self, oracles: "Oracles", x: torch.Tensor, y: torch.Tensor, batch=None):
        self._counts = oracles.counts
        self._x = _leaf(x)
        self._y = _leaf(y)
        with torch.enable_grad():
            gy, = torch.autograd.grad(_call(oracles.problem.g, self._x, self._y, batch),
                                      self._y, create_graph=True)
        self._gy = gy
        self.grad_y = gy.detach()  # \nabla_y g(x, y), free by-product

    def hvp(self, v: torch.Tensor) -> torch.Tensor:
        r""":math:`\nabla^2_{yy} g(x, y)\, v`."""
        self._counts.hvp += 1
        return _grads(self._gy, self._y, grad_outputs=v, retain_graph=True)[0]

    def jvp(self, v: torch.Tensor) -> torch.Tensor:
        r""":math:`\nabla^2_{xy} g(x, y)\, v` (a vector of the size of ``x``)."""
        self._counts.jvp += 1
        return _grads(self._gy, self._x, grad_outputs=v, retain_graph=True)[0]

    def both(self, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        r"""``(jvp(v), hvp(v))`` from one double-backward pass."""
        self._counts.hvp += 1
        self._counts.jvp += 1
        jx, hy = _grads(self._gy, (self._x, self._y), grad_outputs=v, retain_graph=True)
        return jx, hy


class Oracles:
    """Counted oracles of a :class:`~bilevel.problem.Problem`.

    Example:
      >>> import torch, bilevel as bl
      >>> p = bl.problems.quadratic.paper001(kappa=2.0)
      >>> o = bl.oracles.Oracles(p)
      >>> _ = o.grad_y_g(p.x0, p.y0); _ = o.curvature(p.x0, p.y0).hvp(torch.ones(2, dtype=torch.float64))
      >>> o.counts.grad_calls, o.counts.mv_calls
      (1, 1)
    """

    def __init__(self, problem: Problem):
        self.problem = problem
        self.counts = Counts()

    # -- first order -------------------------------------------------------
    def grad_f(self, x, y, batch=None) -> tuple[torch.Tensor, torch.Tensor]:
        r""":math:`(\nabla_x f(x, y), \nabla_y f(x, y))`."""
        self.counts.grad_f += 1
        x, y = _leaf(x), _leaf(y)
        with torch.enable_grad():
            return _grads(_call(self.problem.f, x, y, batch), (x, y))

    def grad_y_g(self, x, y, batch=None) -> torch.Tensor:
        r""":math:`\nabla_y g(x, y)`."""
        self.counts.grad_g += 1
        y = _leaf(y)
        with torch.enable_grad():
            return _grads(_call(self.problem.g, x.detach(), y, batch), y)[0]

    def grad_g(self, x, y, batch=None) -> tuple[torch.Tensor, torch.Tensor]:
        r""":math:`(\nabla_x g(x, y), \nabla_y g(x, y))`."""
        self.counts.grad_g += 1
        x, y = _leaf(x), _leaf(y)
        with torch.enable_grad():
            return _grads(_call(self.problem.g, x, y, batch), (x, y))

    # -- second order ------------------------------------------------------
    def curvature(self, x, y, batch=None) -> Curvature:
        """Second-order products of ``g`` at ``(x, y)`` (see :class:`Curvature`)."""
        return Curvature(self, x, y, batch)
