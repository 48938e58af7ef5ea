"""Exceptions raised by :mod:`bilevel`.

Every error names the offending quantity and, where one exists, the fix.
"""

from __future__ import annotations

from typing import Any

__all__ = ["BilevelError", "DivergenceError", "LinearSolveError"]


class BilevelError(RuntimeError):
    """Base class of the library's run-time errors."""


class DivergenceError(BilevelError, FloatingPointError):
    """An iterate or an estimate became NaN or infinite, or grew without bound
    (past :func:`bilevel.run`'s ``growth_limit`` or a solver's ``max_abs``).

    Attributes:
      iteration: the outer iteration ``k`` at which the non-finite value was
        detected (the value was finite at ``last_finite``).
      quantity: which tensor became non-finite (``"x"``, ``"y"``,
        ``"hypergrad"``, ...).
      solver: the solver's name.
      growth: ``(value, initial, growth_limit)`` when the quantity stayed finite
        but grew past ``growth_limit`` times its first value (see
        :func:`bilevel.run`); ``None`` for a NaN/Inf.
    """

    def __init__(self, quantity: str, iteration: int, solver: str = "",
                 last_finite: int | None = None, hint: str = "",
                 growth: tuple[float, float, float] | None = None):
        self.quantity = quantity
        self.iteration = int(iteration)
        self.solver = solver
        self.last_finite = last_finite
        self.hint = hint
        self.growth = growth
        where = f"at outer iteration k={iteration}"
        if last_finite is not None and last_finite != iteration - 1:
            where = (f"between outer iterations k={last_finite} (last finite check) "
                     f"and k={iteration}")
        if growth is None:
            # a solver guard (max_abs) says "exceeds" in its hint
            what = f"{quantity} {'exploded' if 'exceeds' in hint else 'became NaN/Inf'} {where}"
        else:
            value, initial, limit = growth
            what = (f"{quantity} = {value:.4g} at outer iteration k={iteration} exceeds "
                    f"growth_limit * max({quantity} at the first evaluated iteration, 1) = "
                    f"{limit:.4g} * max({initial:.4g}, 1)")
        msg = (f"{solver + ': ' if solver else ''}{what}. "
               "The run diverged; reduce the step sizes (outer_lr, inner_lr, linsys_lr) "
               "or check the problem's scaling.")
        if hint:
            msg += " " + hint
        super().__init__(msg)

    def __reduce__(self):  # picklable (sweeps run in worker processes)
        return (type(self), (self.quantity, self.iteration, self.solver, self.last_finite, self.hint,
                             self.growth))


class LinearSolveError(BilevelError, ArithmeticError):
    r"""The linear system :math:`H v = b` of an implicit hypergradient has no trustworthy solution.

    Raised when conjugate gradient meets a direction of non-positive curvature
    (:math:`H` is not positive definite) or when the solution :math:`v` is
    NaN/Inf. The message names the matrix and the fix.

    Attributes:
      iteration: the linear-solver iteration at which it was detected (or ``None``).
      curvature: :math:`p^\top H p` of the offending direction (or ``None``).
      block: the label of the block of a batched problem (:mod:`bilevel.blocks`), or ``None``.
    """

    def __init__(self, message: str, iteration: int | None = None,
                 curvature: float | None = None, block: Any = None):
        self.iteration = iteration
        self.curvature = curvature
        self.block = block
        super().__init__(message)

    def __reduce__(self):  # picklable like DivergenceError
        return (type(self), (str(self), self.iteration, self.curvature, self.block))
