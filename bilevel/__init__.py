"""bilevel: a small PyTorch library of gradient-based bilevel solvers.

>>> import bilevel as bl
>>> {"aid", "itd", "unibio"} <= set(bl.solvers.available())
True
"""

from . import blocks, hypergrad, linsolve, oracles, problems, sampling, solvers, sweeps
from .errors import BilevelError, DivergenceError, LinearSolveError
from .blocks import Blocks
from .problem import Problem
from .run import run
from .sweeps import sweep

__all__ = ["Problem", "Blocks", "blocks", "run", "sweep", "sweeps", "sampling", "hypergrad", "linsolve", "oracles",
           "solvers", "problems", "DivergenceError", "BilevelError", "LinearSolveError"]
__version__ = "0.1.0"
