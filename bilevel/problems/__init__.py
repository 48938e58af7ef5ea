"""Problem families, one module each (LaTeX of f and g in each module docstring)."""

from . import quadratic
from .stack import per_coordinate, stack

__all__ = ["quadratic", "stack", "per_coordinate"]
