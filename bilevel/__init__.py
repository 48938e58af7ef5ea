"""bilevel: a small PyTorch library of gradient-based bilevel solvers.

>>> import bilevel as bl
>>> {"aid", "itd", "unibio"} <= set(bl.solvers.available())
True
"""

from . import hypergrad, linsolve, oracles, problems, solvers
from .errors import BilevelError, DivergenceError, LinearSolveError
from .problem import Problem
from .run import run

__all__ = ["Problem", "run", "hypergrad", "linsolve", "oracles", "solvers", "problems",
           "DivergenceError", "BilevelError", "LinearSolveError"]
__version__ = "0.1.0"
