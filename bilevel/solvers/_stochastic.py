r"""Building blocks shared by the stochastic solvers (private).

* :func:`draw` / :func:`draw_hg`: minibatches from the oracles' ``"inner"`` and
  ``"outer"`` streams, or ``None`` for a deterministic problem (``sampler is
  None``; additive oracle noise, if any, is then added by the oracles).
* :func:`curvatures`: one :class:`~bilevel.oracles.Curvature` per batch;
  deterministic products share one (its graph is built once).
* :func:`neumann_hypergrad`: the stochastic Neumann-series hypergradient of
  StocBiO (truncated sum) and of Ghadimi and Wang's BSA / TTSA (one random
  power), optionally in UniBiO's generalized variable :math:`u = y^{\langle p-1\rangle}`.
* :func:`cross_yx`: :math:`\nabla^2_{yx} g\,d` for an x-shaped direction ``d``
  (STABLE's correction term), counted as one Jacobian-vector product.
* :class:`HostRNG`: the solvers' algorithmic randomness (a random Neumann power,
  a SAGA batch index) drawn on the host from a stream seeded with the run's
  generator seed, so that no draw synchronises a GPU and CPU and CUDA runs draw
  the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch


__all__ = ["draw", "draw_many", "HGBatches", "draw_hg", "curvatures", "neumann_series",
           "neumann_power", "neumann_hypergrad", "cross_yx", "HostRNG",
           "generalized_scale"]


# -- batches ---------------------------------------------------------------------

def draw(o, kind: str, size):
    """A minibatch of ``kind`` (``"inner"`` for g, ``"outer"`` for f), or ``None`` if deterministic."""
    if o.problem.sampler is None:
        return None
    return o.sample(kind, size)


def draw_many(o, kind: str, size, n: int) -> list:
    return [draw(o, kind, size) for _ in range(n)]


@dataclass
class HGBatches:
    """The batches of one hypergradient estimate (reused to evaluate it at two points)."""

    outer: Any            # for grad f
    jvp: Any              # for the cross derivative
    hvps: list            # one per Hessian-vector product


def draw_hg(o, size, n_hvp: int) -> HGBatches:
    return HGBatches(draw(o, "outer", size), draw(o, "inner", size), draw_many(o, "inner", size, n_hvp))


def curvatures(o, x, y, batches: Sequence, jvp: int | None = None) -> list:
    """One Curvature per batch at ``(x, y)``; all ``None`` batches share one object. The one at
    index ``jvp`` (whose :meth:`~bilevel.oracles.Curvature.jvp` will be asked for) is built with
    ``x`` in its graph from the start."""
    shared = None
    out = []
    for i, b in enumerate(batches):
        with_x = i == jvp
        if b is None:
            if shared is None:
                shared = o.curvature(x, y, with_x=jvp is not None and batches[jvp] is None)
            out.append(shared)
        else:
            out.append(o.curvature(x, y, b, with_x=with_x))
    return out


# -- Neumann series ----------------------------------------------------------------

def generalized_scale(y: torch.Tensor, p: float) -> torch.Tensor | None:
    r""":math:`D = \operatorname{diag}(\partial y/\partial u) = 1/((p-1)|y|^{p-2})`, ``None`` for p = 2.

    The divisor is floored at the dtype's smallest normal number: exactly at
    :math:`y_i = 0` (a null set) the generalized derivative of a smooth f is
    :math:`0/0`; the floor returns 0 there instead of NaN.
    """
    if p == 2:
        return None
    c = (p - 1) * y.abs() ** (p - 2)
    return 1.0 / c.clamp_min(torch.finfo(y.dtype).tiny)


def neumann_series(curvs: Sequence, b: torch.Tensor, lr, scale=None) -> torch.Tensor:
    r""":math:`\eta\sum_{q=0}^{Q}\prod_{j=1}^{q}(I-\eta S H_j)\,b` with ``Q = len(curvs)`` products.

    ``H_j`` is the Hessian of ``curvs[j]`` (a fresh minibatch each in the
    stochastic case), ``S`` the optional diagonal ``scale`` (UniBiO's
    generalized Hessian :math:`\nabla_u\nabla_y g = D\,\nabla^2_{yy} g`).
    """
    v = p = lr * b
    for p in _powers(curvs, p, lr, scale):
        v = v + p
    return v


def neumann_power(curvs: Sequence, b: torch.Tensor, lr, n_terms: int, scale=None) -> torch.Tensor:
    r"""Ghadimi and Wang's one-power estimate :math:`Q\eta\prod_{j=1}^{q}(I-\eta S H_j)\,b`, ``q = len(curvs)``.

    With :math:`q` uniform on :math:`\{0,\dots,Q-1\}` its mean is the truncated
    series :math:`\eta\sum_{q=0}^{Q-1}(I-\eta H)^q b` (``n_terms`` = :math:`Q`).
    """
    p = b
    for p in _powers(curvs, b, lr, scale):     # keeps the last power
        pass
    return (n_terms * lr) * p


def _powers(curvs: Sequence, p: torch.Tensor, lr, scale=None):
    r"""Yields :math:`(I-\eta S H_1)p,\ (I-\eta S H_2)(I-\eta S H_1)p,\dots`, one factor per curvature."""
    for c in curvs:
        hp = c.hvp(p)
        if scale is not None:
            hp = scale * hp
        p = p - lr * hp
        yield p


def neumann_hypergrad(o, x, y, batches: HGBatches, lr, *, n_terms: int | None = None,
                      p: float = 2.0) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Stochastic Neumann hypergradient at ``(x, y)``; returns ``(grad, v)``.

    .. math::

        \widehat\nabla\Phi = \nabla_x F(x,y;\xi) - \nabla^2_{xy}G(x,y;\zeta_0)\,v,

    with :math:`v` from :func:`neumann_series` on :math:`\nabla_u F = D\nabla_y F(x,y;\xi)`
    (``n_terms is None``: ``len(batches.hvps)`` products) or from
    :func:`neumann_power` (``n_terms`` = :math:`Q`, ``len(batches.hvps)`` = the
    drawn power). ``p = 2`` is the standard formula (:math:`D = I`); ``p > 2``
    is UniBiO's generalized one. Costs 1 grad_f, ``len(hvps)`` HVPs, 1 JVP.
    """
    fx, fy = o.grad_f(x, y, batches.outer)
    scale = generalized_scale(y, p)
    b = fy if scale is None else scale * fy
    cs = curvatures(o, x, y, [batches.jvp, *batches.hvps], jvp=0)
    if n_terms is None:
        v = neumann_series(cs[1:], b, lr, scale)
    else:
        v = neumann_power(cs[1:], b, lr, n_terms, scale)
    grad = fx - cs[0].jvp(v)
    return grad.detach(), v.detach()


def cross_yx(o, x, y, d: torch.Tensor, batch=None) -> torch.Tensor:
    r""":math:`\nabla^2_{yx} g(x, y)\, d` for ``d`` of the size of ``x`` (a vector of the size of ``y``).

    The y-gradient of :math:`\langle\nabla_x g(x,y), d\rangle` (double backward),
    counted as one ``jvp`` and noised like one; from the problem's ``g_y`` when it
    has one (the same cross derivatives, without g's terms in x alone).
    """
    xl = x.detach().requires_grad_(True)
    yl = y.detach().requires_grad_(True)
    g = o.problem.g_for_y
    with torch.enable_grad():
        val = g(xl, yl) if batch is None else g(xl, yl, batch)
        gx, = torch.autograd.grad(val, xl, create_graph=True)
        out, = torch.autograd.grad(gx, yl, grad_outputs=d, allow_unused=True, materialize_grads=True)
    o.charge(jvp=1)
    return o.noisy("jvp", out.detach())


# -- host-side randomness -----------------------------------------------------------

class HostRNG:
    """Integer draws on the host, seeded from the run's generator seed.

    ``torch.Generator.initial_seed()`` is a host-side value (no device sync), so
    the stream is the same on CPU and CUDA and drawing never blocks a GPU.
    """

    def __init__(self, generator: torch.Generator, salt: int = 0):
        self._gen = torch.Generator(device="cpu")
        self._gen.manual_seed((int(generator.initial_seed()) * 1_000_003 + 7919 * salt + 17) % (2 ** 63))

    def randint(self, high: int) -> int:
        """Uniform on ``{0, ..., high - 1}``."""
        return int(torch.randint(high, (1,), generator=self._gen))
