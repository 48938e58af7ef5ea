"""Bilevel solvers, one module per algorithm family; select by name with :func:`make`."""

from .base import REGISTRY, Solver, StepInfo, available, make, register
from .aid import AID
from .itd import ITD

__all__ = ["AID", "ITD", "Solver", "StepInfo", "REGISTRY", "available", "make", "register"]
