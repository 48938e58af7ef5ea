r"""Hyperparameter validation: declarative field metadata checked in one place, plus the checks
the library's functions share (clear ``ValueError``s).

A solver declares each hyperparameter with :func:`hyper`, which records the
paper's symbol, a :class:`Constraint` and, for step sizes, which variable the
step scales; :func:`validate` (called by :class:`bilevel.solvers.Solver`'s
``__post_init__``) checks every such field of any solver, and
:func:`check_shapes` (called by the solvers' ``init``) checks per-coordinate
steps against the problem. A violation raises :class:`HyperparameterError`
whose message names the field and its symbol, the value, the constraint and
the fix, e.g.

>>> import bilevel as bl
>>> try:
...     bl.solvers.ITD(inner_steps=0, inner_lr=0.1, outer_lr=0.1)
... except ValueError as e:
...     print(e)
ITD: inner_steps (N) = 0 violates 'int >= 1': must be an integer >= 1; pass a whole number such as 1.

Constraints: :data:`STEP` (float > 0, per-coordinate 1-D tensor, or a step
rule ``x -> step``), :data:`POSITIVE`, :data:`NONNEG`, :data:`INT1`,
:data:`INT0`, :data:`UNIT` ([0, 1)), :data:`UNIT_CLOSED` ([0, 1]),
:data:`BOOL`, :data:`BETAS` (Adam's pair), :func:`one_of`, :func:`at_least`;
:func:`optional` lets ``None`` through. Rules that tie two fields together
stay in the solver's ``check`` method. The fields of experiment configs
(:class:`bilevel.notebook.ExperimentConfig`) use the same constraints plus
:data:`REAL`, :data:`NAME`, :data:`INTS`, :data:`NONEMPTY` and :func:`list_of`.

A constraint's ``test`` raises only for a violation (the private ``_Bad``, which
:func:`validate` turns into the message); build new constraints from the ones here
(``list_of(one_of(...))``) rather than from code that may raise other errors.
"""

from __future__ import annotations

import dataclasses
import math
import operator
from typing import Any, Callable, Iterable, NamedTuple

__all__ = ["step_size", "resolve_step", "check_step_shape", "positive_float", "positive_int", "nonneg_int",
           "choice", "unit_interval", "HyperparameterError", "Constraint", "hyper",
           "validate", "check_shapes", "one_of", "optional", "at_least", "list_of", "STEP", "POSITIVE",
           "NONNEG", "INT1", "INT0", "UNIT", "UNIT_CLOSED", "BOOL", "BETAS", "REAL", "NAME", "INTS", "NONEMPTY"]


# -- declarative hyperparameters ------------------------------------------------------------

class HyperparameterError(ValueError, TypeError):
    """A hyperparameter violates its declared constraint (a ``ValueError``; also a ``TypeError``
    because a wrongly typed value is reported the same way)."""


class Constraint(NamedTuple):
    """``test(value)`` returns the (possibly normalized) value or raises; ``name`` is the short
    form shown in messages, ``desc`` what is required, ``fix`` what to pass instead."""

    name: str
    desc: str
    fix: str
    test: Callable[[Any], Any]
    keep: bool = False           # store test's normalized value on the solver (e.g. betas -> tuple)


class _Bad(Exception):
    pass


def _real(v):
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not (isinstance(v, int) or math.isfinite(v)):
        raise _Bad
    return v


def _int(v):
    i = _as_int(v)
    if i is None:
        raise _Bad
    return i


def _require(ok: bool, v):
    if not ok:
        raise _Bad
    return v


def _step(v):
    try:
        return step_size("", "", v)
    except (TypeError, ValueError):
        raise _Bad from None


def _betas(v):
    try:
        b = tuple(v)
    except TypeError:
        raise _Bad from None
    if len(b) != 2:
        raise _Bad
    for x in b:
        _require(0.0 <= _real(x) < 1.0, x)
    return float(b[0]), float(b[1])


def _bool(v):
    return _require(isinstance(v, bool), v)


def _nonempty(v):
    return _require(isinstance(v, (list, tuple)) and len(v) > 0, v)


def _member(v, options) -> bool:
    try:
        return v in options
    except (TypeError, ValueError, RuntimeError):     # e.g. an array compared with a string
        return False


STEP = Constraint("step", "a finite positive number, a 1-D tensor of positive per-coordinate steps "
                  "or a step rule x -> step", "pass e.g. 0.1", _step)
POSITIVE = Constraint("> 0", "a finite number > 0", "pass e.g. 1.0", lambda v: _require(_real(v) > 0, v))
NONNEG = Constraint(">= 0", "a finite number >= 0", "pass e.g. 0.0 (off)", lambda v: _require(_real(v) >= 0, v))
INT1 = Constraint("int >= 1", "an integer >= 1", "pass a whole number such as 1",
                  lambda v: _require(_int(v) >= 1, v))
INT0 = Constraint("int >= 0", "an integer >= 0", "pass a whole number such as 0",
                  lambda v: _require(_int(v) >= 0, v))
UNIT = Constraint("in [0, 1)", "a real number in [0, 1)", "pass e.g. 0.9",
                  lambda v: _require(0 <= _real(v) < 1, v))
UNIT_CLOSED = Constraint("in [0, 1]", "a real number in [0, 1]", "pass e.g. 0.5",
                         lambda v: _require(0 <= _real(v) <= 1, v))
BOOL = Constraint("bool", "True or False", "pass True or False", _bool)
BETAS = Constraint("betas", "two numbers (beta1, beta2), each in [0, 1)", "pass e.g. (0.9, 0.999)",
                   _betas, keep=True)
# checks of experiment configs (bilevel.notebook.ExperimentConfig) besides the ones above
REAL = Constraint("real", "a finite real number", "pass e.g. 0.0", _real)
NAME = Constraint("str", "a non-empty string", "pass e.g. 'auto'",
                  lambda v: _require(isinstance(v, str) and v != "", v))
INTS = Constraint("list[int]", "a non-empty list of integers", "pass e.g. [0, 1, 2]",
                  lambda v: _require(all(_as_int(i) is not None for i in _nonempty(v)), v))
NONEMPTY = Constraint("non-empty list", "a non-empty list", "pass e.g. [...] with one entry or more", _nonempty)


def one_of(options: Iterable) -> Constraint:
    """The value must be one of ``options``."""
    opts = tuple(options)
    shown = ", ".join(map(repr, opts))
    return Constraint(f"in {{{shown}}}", f"one of {shown}", f"choose one of {shown}",
                      lambda v: _require(_member(v, opts), v))


def at_least(lo: float) -> Constraint:
    """A finite real number >= ``lo``."""
    return Constraint(f">= {lo:g}", f"a real number >= {lo:g}", f"pass e.g. {lo:g}",
                      lambda v: _require(_real(v) >= lo, v))


def list_of(c: Constraint, nonempty: bool = True, fix: str | None = None) -> Constraint:
    """A list (non-empty unless ``nonempty`` is False) whose every entry satisfies ``c``; ``fix``
    replaces the generic advice in messages (e.g. ``"pass e.g. [0.01, 0.1]"``).

    >>> list_of(NONNEG).test([0.0, 0.1])
    [0.0, 0.1]
    >>> list_of(NONNEG).desc
    'a non-empty list, each entry a finite number >= 0'
    """
    def test(v):
        if not (isinstance(v, (list, tuple)) and (v or not nonempty)):
            raise _Bad
        for x in v:
            c.test(x)
        return v
    kind = "a non-empty list" if nonempty else "a list"
    return Constraint(f"list of {c.name}", f"{kind}, each entry {c.desc}",
                      fix or f"pass a list; for each entry, {c.fix}", test)


def optional(c: Constraint) -> Constraint:
    """``None`` or a value satisfying ``c``."""
    return c._replace(name=f"None or {c.name}", desc=f"None or {c.desc}",
                      test=lambda v: None if v is None else c.test(v))


def hyper(default=None, symbol: str = "", check: Constraint | None = None, scales: str | None = None):
    """A solver hyperparameter: a dataclass field carrying its paper symbol, its constraint and, for
    a step size, the variable it scales (``"x"`` or ``"y"``; checked by :func:`check_shapes`)."""
    return dataclasses.field(default=default,
                             metadata={"symbol": symbol, "check": check, "scales": scales})


def _label(f: dataclasses.Field) -> str:
    sym = f.metadata.get("symbol", "")
    return f"{f.name} ({sym})" if sym else f.name


def validate(obj) -> None:
    """Check every field of dataclass ``obj`` declared with a constraint (:func:`hyper`).

    Raises :class:`HyperparameterError` naming the class, the field and its symbol, the value,
    the constraint and the fix; normalizes values whose constraint says so (Adam's betas to a
    tuple of floats).
    """
    owner = type(obj).__name__
    for f in dataclasses.fields(obj):
        c = f.metadata.get("check")
        if c is None:
            continue
        value = getattr(obj, f.name)
        try:
            out = c.test(value)
        except _Bad:
            raise HyperparameterError(f"{owner}: {_label(f)} = {value!r} violates '{c.name}': "
                                      f"must be {c.desc}; {c.fix}.") from None
        if c.keep:
            object.__setattr__(obj, f.name, out)


def check_shapes(obj, problem) -> None:
    """Check each tensor step of ``obj`` (fields declared with ``scales``) against the problem."""
    owner = type(obj).__name__
    for f in dataclasses.fields(obj):
        which = f.metadata.get("scales")
        if which is not None:
            size = problem.dim_x if which == "x" else problem.dim_y
            check_step_shape(owner, _label(f), getattr(obj, f.name), problem.x0, size)


# -- checks shared by library functions -----------------------------------------------------


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


def _int_at_least(owner: str, name: str, value, low: int) -> int:
    """``value`` as an ``int`` (int or numpy integer, never a bool) that is ``>= low``, else ``ValueError``."""
    v = _as_int(value)
    if v is None or v < low:
        raise ValueError(f"{owner}: {name} must be an integer >= {low}, got {value!r} "
                         f"({type(value).__name__}).")
    return v


def positive_int(owner: str, name: str, value):
    return _int_at_least(owner, name, value, 1)


def nonneg_int(owner: str, name: str, value):
    return _int_at_least(owner, name, value, 0)


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
