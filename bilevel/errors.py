"""Exceptions raised by :mod:`bilevel`.

Every error names the offending quantity and, where one exists, the fix.
"""

from __future__ import annotations

__all__ = ["BilevelError", "DivergenceError"]


class BilevelError(RuntimeError):
    """Base class of the library's run-time errors."""


class DivergenceError(BilevelError, FloatingPointError):
    """An iterate or an estimate became NaN or infinite.

    Attributes:
      iteration: the outer iteration ``k`` at which the non-finite value was
        detected (the value was finite at ``last_finite``).
      quantity: which tensor became non-finite (``"x"``, ``"y"``,
        ``"hypergrad"``, ...).
      solver: the solver's name.
    """

    def __init__(self, quantity: str, iteration: int, solver: str = "",
                 last_finite: int | None = None, hint: str = ""):
        self.quantity = quantity
        self.iteration = int(iteration)
        self.solver = solver
        self.last_finite = last_finite
        self.hint = hint
        where = f"at outer iteration k={iteration}"
        if last_finite is not None and last_finite != iteration - 1:
            where = (f"between outer iterations k={last_finite} (last finite check) "
                     f"and k={iteration}")
        msg = (f"{solver + ': ' if solver else ''}{quantity} became NaN/Inf {where}. "
               "The run diverged; reduce the step sizes (outer_lr, inner_lr, linsys_lr) "
               "or check the problem's scaling.")
        if hint:
            msg += " " + hint
        super().__init__(msg)

    def __reduce__(self):  # picklable (sweeps run in worker processes)
        return (type(self), (self.quantity, self.iteration, self.solver, self.last_finite, self.hint))
