"""Hyperparameter validation shared by the solvers (clear ``ValueError``s)."""

from __future__ import annotations

import math
import operator
from typing import Iterable

__all__ = ["step_size", "resolve_step", "check_step_shape", "positive_float", "positive_int", "nonneg_int", "choice", "unit_interval"]


def positive_float(owner: str, name: str, value, allow_none: bool = False):
    if value is None:
        if allow_none:
            return None
        raise ValueError(f"{owner}: {name} is required (a finite positive number).")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{owner}: {name} must be a real number, got {value!r}.")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{owner}: {name} must be a finite positive number, got {value!r}.")
    return float(value)


def _as_int(value):
    if isinstance(value, bool):
        return None
    try:
        return operator.index(value)      # int, numpy integers
    except TypeError:
        return None


def positive_int(owner: str, name: str, value):
    v = _as_int(value)
    if v is None or v < 1:
        raise ValueError(f"{owner}: {name} must be an integer >= 1, got {value!r} "
                         f"({type(value).__name__}).")
    return v


def nonneg_int(owner: str, name: str, value):
    v = _as_int(value)
    if v is None or v < 0:
        raise ValueError(f"{owner}: {name} must be an integer >= 0, got {value!r} "
                         f"({type(value).__name__}).")
    return v


def unit_interval(owner: str, name: str, value, closed_right: bool = False):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{owner}: {name} must be a real number in [0, 1), got {value!r}.")
    ok = 0 <= value <= 1 if closed_right else 0 <= value < 1
    if not ok:
        rng = "[0, 1]" if closed_right else "[0, 1)"
        raise ValueError(f"{owner}: {name} must lie in {rng}, got {value!r}.")
    return float(value)


def choice(owner: str, name: str, value, options: Iterable[str]):
    options = tuple(options)
    if value not in options:
        raise ValueError(f"{owner}: unknown {name} {value!r}; choose one of {', '.join(map(repr, options))}.")
    return value


def step_size(owner: str, name: str, value, allow_none: bool = False):
    """A step size: a finite positive number, a 1-D tensor of them (per coordinate), or a
    step rule: a callable ``x -> step`` evaluated at the outer iterate (:func:`resolve_step`).

    Per-coordinate steps act as a diagonal preconditioner; they are how one
    run batches several independent problems stacked block-wise
    (:func:`bilevel.problems.stack`). Shapes are checked against the problem
    in the solver's ``init`` (:func:`check_step_shape`).
    """
    try:
        import torch
    except ImportError:  # pragma: no cover
        torch = None
    if callable(value) and not (torch is not None and isinstance(value, torch.Tensor)):
        return value          # a step rule x -> step (see resolve_step)
    if torch is not None and isinstance(value, torch.Tensor):
        if value.ndim != 1 or not value.is_floating_point():
            raise ValueError(f"{owner}: {name} as a tensor must be a 1-D floating tensor of "
                             f"per-coordinate steps, got shape {tuple(value.shape)}, dtype {value.dtype}.")
        if not bool(torch.isfinite(value).all()) or not bool((value > 0).all()):
            raise ValueError(f"{owner}: every entry of {name} must be finite and positive.")
        return value
    return positive_float(owner, name, value, allow_none=allow_none)


def resolve_step(value, x):
    """The step to use at outer iterate ``x``: ``value(x)`` for a step rule, else ``value``.

    A rule's result is a constant of the step (it is not differentiated through).
    """
    return value(x) if callable(value) and not hasattr(value, "dtype") else value


def check_step_shape(owner: str, name: str, value, like, size: int):
    """Check a tensor step size against the variable it scales (no-op for floats)."""
    import torch
    if isinstance(value, torch.Tensor):
        if value.numel() != size:
            raise ValueError(f"{owner}: {name} has {value.numel()} entries but the variable it "
                             f"scales has {size}; pass a float or one step per coordinate.")
        if value.dtype != like.dtype or value.device != like.device:
            raise ValueError(f"{owner}: {name} is {value.dtype} on {value.device} but the problem "
                             f"is {like.dtype} on {like.device}; use .to(x0).")
