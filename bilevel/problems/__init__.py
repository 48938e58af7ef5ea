"""Problem families, one module each (LaTeX of f and g in each module docstring)."""

from . import conditioned, data_cleaning, feature_learning, hyperparam, hyperrep, quadratic, reweighting, uniform_convex
from .stack import per_coordinate, stack

__all__ = ["quadratic", "conditioned", "uniform_convex", "feature_learning", "reweighting", "data_cleaning",
           "hyperparam", "hyperrep", "stack", "per_coordinate"]
