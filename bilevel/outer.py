r"""Outer-variable update rules: plain gradient steps and Adam, as pure ``init``/``update`` pairs.

Every solver with an outer step takes ``outer_optimizer="sgd" | "adam"``
(with ``adam_betas``, ``adam_eps``). The default ``"sgd"`` is the papers' step
:math:`x_{k+1} = x_k - \beta_k\,d_k` along the solver's outer direction
:math:`d_k` (the hypergradient estimate :math:`\widehat\nabla\Phi(x_k)`, or the
solver's momentum / variance-reduced / normalized direction) and carries no
state; ``"adam"`` is Kingma & Ba's Adam applied to that same direction,
:math:`\widehat g_k = d_k`, with step :math:`\beta_k` (the solver's ``outer_lr``,
after its schedule if it has one)
(paper 003's hyper-representation experiment follows Sow et al., who update the
representation with ``torch.optim.Adam(lr=0.05)``):

.. math::

    m_k &= \beta_1 m_{k-1} + (1-\beta_1)\,\widehat g_k,\qquad
    s_k = \beta_2 s_{k-1} + (1-\beta_2)\,\widehat g_k^{\,2},\qquad m_0 = s_0 = 0, \\
    x_{k+1} &= x_k - \frac{\beta}{1-\beta_1^{k}}\,
        \frac{m_k}{\sqrt{s_k}/\sqrt{1-\beta_2^{k}} + \epsilon}
    \qquad (k = 1, 2, \dots \text{ counts the updates}),

written with the same floating-point operations, in the same order, as
``torch.optim.Adam`` (single-tensor path, no weight decay, no AMSGrad), so
both give identical iterates for the same gradient sequence.

=====================  ======================  ==============  ====================================
solver field           argument here           symbol          meaning
=====================  ======================  ==============  ====================================
``outer_optimizer``    ``kind``                -               ``"sgd"`` (the papers' step) or ``"adam"``
``outer_lr``           ``lr``                  :math:`\beta`   outer step (after the solver's schedule)
``adam_betas``         ``betas``               (b1, b2)        moment decay rates, each in [0, 1)
``adam_eps``           ``eps``                 epsilon         added to the denominator
=====================  ======================  ==============  ====================================

This table is the one place the three outer-update fields are described: each solver
declares them with :func:`optimizer_field`, :func:`betas_field` and :func:`eps_field`
(default and validation declared once, here), its docstring refers here, and
:class:`bilevel.solvers.base.Solver` provides ``outer_init`` / ``outer_step``
(:func:`outer_init`, :func:`outer_update` with the solver's fields).

An Adam update costs no oracle call (it only rescales the estimate), so it is
counted nowhere in Gc or MV. The moments are coordinatewise, so on a problem
stacked block-wise (several seeds in one run) every block follows exactly its
own single-seed Adam trajectory.

Reference: D. P. Kingma, J. Ba, "Adam: a method for stochastic optimization",
ICLR 2015, Algorithm 1; ``torch.optim.Adam``.

>>> import torch
>>> x, g = torch.tensor([1.0, -2.0], dtype=torch.float64), torch.tensor([0.5, 0.5], dtype=torch.float64)
>>> st = adam_init(x)
>>> x1, st = adam_update(x, g, st, lr=0.1)
>>> [round(float(t), 6) for t in x1], st.count      # first step: -lr * sign(g)
([0.9, -2.1], 1)
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from . import _validate as V

__all__ = ["OUTER_OPTIMIZERS", "AdamState", "adam_init", "adam_update", "optimizer_field",
           "betas_field", "eps_field", "outer_init", "outer_update"]

#: names accepted by the solvers' ``outer_optimizer`` field
OUTER_OPTIMIZERS = ("sgd", "adam")


class AdamState(NamedTuple):
    count: int            # number of updates taken (k above)
    m: torch.Tensor       # first moment m_k
    s: torch.Tensor       # second moment s_k


def optimizer_field():
    """A fresh ``outer_optimizer`` dataclass field (``"sgd"`` default, declared constraint)."""
    return V.hyper("sgd", check=V.one_of(OUTER_OPTIMIZERS))


def betas_field():
    """A fresh ``adam_betas`` dataclass field: two numbers in [0, 1), stored as a tuple."""
    return V.hyper((0.9, 0.999), "beta1, beta2", V.BETAS)


def eps_field():
    """A fresh ``adam_eps`` dataclass field: a finite number > 0."""
    return V.hyper(1e-8, "epsilon", V.POSITIVE)


def adam_init(x: torch.Tensor) -> AdamState:
    """Zero moments shaped like ``x``."""
    return AdamState(0, torch.zeros_like(x), torch.zeros_like(x))


def adam_update(x: torch.Tensor, grad: torch.Tensor, state: AdamState, lr,
                betas=(0.9, 0.999), eps: float = 1e-8) -> tuple[torch.Tensor, AdamState]:
    r"""One Adam step on ``x`` with gradient ``grad``; returns ``(x_new, state)`` (inputs untouched).

    ``lr`` is a float or a tensor shaped like ``x`` (per-coordinate steps, as
    the solvers accept for stacked problems).
    """
    b1, b2 = betas
    count = state.count + 1
    m = state.m.lerp(grad, 1 - b1)
    s = state.s.mul(b2).addcmul_(grad, grad, value=1 - b2)
    bc1 = 1 - b1 ** count
    bc2_sqrt = (1 - b2 ** count) ** 0.5
    denom = (s.sqrt() / bc2_sqrt).add_(eps)
    if isinstance(lr, torch.Tensor):
        x_new = x - (lr / bc1) * (m / denom)
    else:
        x_new = torch.addcdiv(x, m, denom, value=-(lr / bc1))
    return x_new, AdamState(count, m, s)


def outer_init(kind: str, x: torch.Tensor):
    """The state of outer update ``kind``: ``None`` for ``"sgd"``, :class:`AdamState` for ``"adam"``."""
    return adam_init(x) if kind == "adam" else None


def outer_update(kind: str, x, grad, state, lr, betas=(0.9, 0.999), eps: float = 1e-8):
    r"""``x - lr * grad`` (``"sgd"``, state ``None``) or :func:`adam_update`; returns ``(x_new, state)``."""
    if kind == "sgd":
        return x - lr * grad, None
    return adam_update(x, grad, state, lr, betas, eps)
