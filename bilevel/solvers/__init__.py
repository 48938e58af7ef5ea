"""Bilevel solvers, one module per algorithm family; select by name with :func:`make`."""

from .base import REGISTRY, Solver, StepInfo, available, make, register
from .aid import AID
from .f2sa import F2SA
from .itd import ITD
from .neumann import BSA, TTSA, StocBiO
from .soba import MASOBA, SABA, SOBA, SSAID
from .stable import STABLE
from .unibio import UniBiO
from .variance_reduced import SUSTAIN, VRBO

__all__ = ["AID", "ITD", "F2SA", "StocBiO", "BSA", "TTSA", "SOBA", "MASOBA", "SABA", "SSAID", "SUSTAIN",
           "VRBO", "STABLE", "UniBiO", "Solver", "StepInfo", "REGISTRY", "available", "make", "register"]
