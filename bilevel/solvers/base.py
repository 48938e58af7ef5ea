"""The solver protocol and the name -> class registry.

A solver is a frozen dataclass of hyperparameters, each declared with
:func:`bilevel._validate.hyper` (symbol, constraint) and validated for every
solver in one place (:meth:`Solver.__post_init__`), with two methods, as in jaxopt:

* ``init(problem, oracles, generator) -> state``
* ``step(state, oracles, generator) -> (state, info)``

``state`` is a NamedTuple holding everything that changes (at least ``x`` and
``y``); ``info`` is a :class:`StepInfo` describing the point at which this
step's hypergradient estimate was formed. :func:`bilevel.run` owns the loop.
Solvers never choose a device, never print and never touch a global RNG: the
seeded ``torch.Generator`` passed in is the only source of randomness.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import torch

from .. import _validate as V
from .. import outer as _outer

__all__ = ["Solver", "StepInfo", "REGISTRY", "register", "make", "available", "check_finite"]


class StepInfo(NamedTuple):
    """What one outer step computed at the current outer iterate.

    ``x``: the outer iterate :math:`x_k`; ``y``: the inner iterate used by the
    estimate (:math:`y_k^N`); ``hypergrad``: the estimate
    :math:`\\widehat\\nabla\\Phi(x_k)` (``None`` if the method has none).
    """

    x: torch.Tensor
    y: torch.Tensor
    hypergrad: torch.Tensor | None


def check_finite(max_abs: float, *named: tuple[str, torch.Tensor]) -> None:
    """Raise :class:`~bilevel.DivergenceError` for the first ``(name, tensor)`` with an
    entry that is NaN/Inf or larger than ``max_abs`` in magnitude (a solver's divergence guard).

    The error's ``iteration`` is -1 here; :func:`bilevel.run` fills in the outer iteration.
    """
    from ..errors import DivergenceError
    for name, t in named:
        big = float(t.detach().abs().max()) if t.numel() else 0.0
        if not (big <= max_abs):          # also catches NaN
            raise DivergenceError(name, -1, hint=f"max |{name.split()[0]}| = {big:.4g} exceeds "
                                  f"the solver's max_abs = {max_abs:g}.")


REGISTRY: dict[str, type] = {}


def register(name: str):
    """Class decorator adding a solver to :data:`REGISTRY` under ``name``."""

    def deco(cls):
        if name in REGISTRY and REGISTRY[name] is not cls:
            raise ValueError(f"solver name {name!r} is already registered to {REGISTRY[name]}.")
        REGISTRY[name] = cls
        cls.registry_name = name
        return cls

    return deco


def available() -> list[str]:
    """Registered solver names."""
    return sorted(REGISTRY)


def make(name: str, **hyperparams: Any) -> "Solver":
    """Build a solver by registry name, e.g. ``make("aid", inner_lr=0.1, outer_lr=0.01)``.

    Unknown names and unknown hyperparameters raise ``ValueError`` listing the
    valid ones (params.yaml and notebook parameters select solvers this way).
    """
    if name not in REGISTRY:
        raise ValueError(f"unknown solver {name!r}; available: {', '.join(available())}.")
    cls = REGISTRY[name]
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(hyperparams) - fields)
    if unknown:
        raise ValueError(f"{cls.__name__} has no hyperparameter(s) {unknown}; "
                         f"valid: {sorted(fields)}.")
    return cls(**hyperparams)


class Solver:
    """Base class: subclasses are frozen dataclasses with ``init``/``step``."""

    registry_name: str = ""

    @property
    def name(self) -> str:
        return self.registry_name or type(self).__name__

    def hyperparams(self) -> dict[str, Any]:
        """The hyperparameters as a flat dict (recorded next to traces)."""
        return dataclasses.asdict(self)

    # -- validation: declared per field (bilevel._validate.hyper), checked here for every solver --
    def __post_init__(self):
        V.validate(self)
        self.check()

    def check(self) -> None:
        """Rules that tie several fields together (override); single-field constraints are declared
        with :func:`bilevel._validate.hyper` and checked by :func:`bilevel._validate.validate`."""

    # -- the outer update (bilevel.outer): "sgd" or "adam", never an oracle call ------------
    def outer_init(self, x0: torch.Tensor):
        """The outer update's state: ``None`` for ``"sgd"``, :class:`~bilevel.outer.AdamState` for ``"adam"``."""
        return _outer.outer_init(self.outer_optimizer, x0)

    def outer_step(self, x: torch.Tensor, direction: torch.Tensor, ostate, lr):
        r"""``(x - lr * direction, None)`` for ``"sgd"``, else Adam on ``direction``; returns ``(x_new, ostate)``."""
        return _outer.outer_update(self.outer_optimizer, x, direction, ostate, lr,
                                   self.adam_betas, self.adam_eps)

    def init(self, problem, oracles, generator: torch.Generator):  # pragma: no cover
        raise NotImplementedError

    def step(self, state, oracles, generator: torch.Generator):  # pragma: no cover
        raise NotImplementedError
