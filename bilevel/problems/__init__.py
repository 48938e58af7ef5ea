"""Problem families, one module each (LaTeX of f and g in each module docstring)."""

from . import (conditioned, data_cleaning, feature_learning, finite_sum, hyperparam, hyperrep, quadratic,
               reweighting, uniform_convex)
from .stack import per_coordinate, stack

__all__ = ["quadratic", "finite_sum", "conditioned", "uniform_convex", "feature_learning", "reweighting",
           "data_cleaning", "hyperparam", "hyperrep", "stack", "per_coordinate"]
