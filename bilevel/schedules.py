r"""Step-size schedules: the one polynomial decay every solver uses.

A solver field ``*_lr`` (or a weight) :math:`a` paired with an exponent field
``*_decay`` :math:`e \ge 0` gives the value at outer iteration :math:`k = 0, 1, \dots`

.. math::

    a_k = \frac{a}{(k+1)^{e}}, \qquad a_k = a \ \text{(unchanged, bitwise) for } e = 0.

Used by :class:`~bilevel.solvers.F2SA` (``inner_decay``, ``z_decay``,
``outer_decay``, ``lmbda_decay``), :class:`~bilevel.solvers.BSA` and
:class:`~bilevel.solvers.TTSA` (``inner_lr_decay``, ``outer_lr_decay``),
:class:`~bilevel.solvers.SUSTAIN` (``lr_decay``: steps and, with exponent
:math:`2e`, the STORM weight) and :class:`~bilevel.solvers.UniBiO`
(``outer_lr_decay``). ``a`` may be a float or a per-coordinate tensor.

>>> decayed(0.5, 3, 0.5)
0.25
>>> decayed(0.5, 3, 0.0)
0.5
"""

from __future__ import annotations

__all__ = ["decayed"]


def decayed(lr, k: int, exponent: float):
    r"""The value :math:`\text{lr}/(k+1)^{e}` at iteration ``k`` (``lr`` itself for ``e = 0``)."""
    if exponent == 0:
        return lr
    return lr / float(k + 1) ** exponent
