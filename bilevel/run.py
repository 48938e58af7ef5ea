"""``run(solver, problem, steps)``: the only optimisation loop; returns a tidy trace."""

from __future__ import annotations

import math
import time
from typing import Any

import pandas as pd
import torch

from . import _validate as V
from . import blocks as B
from .errors import DivergenceError, LinearSolveError
from .oracles import Oracles
from .problem import Problem
from .solvers.base import Solver

__all__ = ["run", "TRACE_COLUMNS", "GROWTH_TRACKED", "GROWTH_LIMIT"]

TRACE_COLUMNS = ("k", "time_s", "grad_calls", "mv_calls", "grad_f_calls", "grad_g_calls",
                 "hvp_calls", "jvp_calls", "samples", "grad_norm_sq", "hypergrad_err_sq",
                 "inner_err_sq", "phi")

#: functions of the iterates -- the true hypergradient norm at x, the inner error and the
#: squared inner iterate norm ``|y|^2`` -- whose growth past ``growth_limit`` times their
#: first value stops a run. The hypergradient *estimate's* error is not tracked: where the
#: inner Hessian degenerates at y* (paper 002's uniformly convex g, p > 2) it grows by
#: design while a normalized outer step keeps the run stable.
GROWTH_TRACKED = ("grad_norm_sq", "inner_err_sq", "|y|^2")
#: default ``growth_limit`` of :func:`run`
GROWTH_LIMIT = 1e12


def _sync(device: torch.device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _sq(t: torch.Tensor) -> float:
    return float(torch.dot(t.reshape(-1), t.reshape(-1)))


def _nonfinite(state, info) -> str | None:
    for name, t in (("x", info.x), ("y", info.y), ("hypergrad", info.hypergrad),
                    ("x (after the update)", state.x)):
        if t is not None and not bool(torch.isfinite(t).all()):
            return name
    return None


def _per_block(name: str, value, blocks) -> list[float]:
    """A metric's value(s) as one float per block: a number is repeated, a 1-D tensor or sequence
    of ``len(blocks)`` numbers is one value per block."""
    if isinstance(value, torch.Tensor):
        value = value.detach()
        if value.dim() == 0:
            return [float(value)] * len(blocks)
        value = value.cpu().tolist() if value.dim() == 1 else None
    elif isinstance(value, (list, tuple)) or (hasattr(value, "ndim") and getattr(value, "ndim") == 1):
        value = [float(v) for v in value]
    else:
        return [float(value)] * len(blocks)
    if value is None or len(value) != len(blocks):
        raise ValueError(f"metric {name!r} must return a number or one number per block "
                         f"({len(blocks)} on this problem), got {value if value is None else len(value)} values.")
    return [float(v) for v in value]


def run(solver: Solver, problem: Problem, steps: int, eval_every: int = 1, seed: int = 0,
        progress: bool = False, desc: str | None = None, noise=None,
        growth_limit: float | None = GROWTH_LIMIT) -> pd.DataFrame:
    r"""Run ``steps`` outer iterations of ``solver`` on ``problem``.

    Returns a tidy :class:`pandas.DataFrame`, one row per evaluated iteration
    ``k`` (every ``eval_every`` steps, plus the last), with columns

    * ``k``; ``time_s``: cumulative wall time of the solver's steps up to and
      including step ``k`` (metric evaluation excluded; CUDA is synchronised
      before the clock is read);
    * cumulative oracle counts ``grad_calls`` (Gc), ``mv_calls`` (MV) and their
      parts (see :mod:`bilevel.oracles`);
    * where the problem has exact oracles: ``grad_norm_sq`` =
      :math:`\|\nabla\Phi(x_k)\|^2`, ``hypergrad_err_sq`` =
      :math:`\|\widehat\nabla\Phi(x_k)-\nabla\Phi(x_k)\|^2`, ``inner_err_sq`` =
      :math:`\|y_k - y^*(x_k)\|^2` (``y_k`` is the inner iterate the estimate
      used; in the final row, the carried inner iterate), ``phi`` = :math:`\Phi(x_k)`; plus the problem's own ``metrics``;
    * a final row ``k = steps`` at :math:`x_K` with the metrics of ``x`` only
      (estimate columns are NaN there: no estimate is formed at :math:`x_K`);
    * ``solver``, ``problem``, ``seed``; for a stacked problem
      (:func:`bilevel.problems.stack`) one row per ``(k, block)`` with a
      ``block`` column (the block's label, :mod:`bilevel.blocks`), the exact
      metrics restricted to that block and the problem's metrics, of that
      block where a metric returns one value per block.

    Row ``k < steps`` describes the estimate formed at :math:`x_k`; its counts and
    time include step ``k`` (the cost of producing :math:`x_{k+1}`).

    Raises :class:`~bilevel.DivergenceError` naming the iteration and the
    quantity as soon as an evaluated iterate or estimate is NaN/Inf, or as soon
    as, in an evaluated row, a quantity :math:`q_k` of :data:`GROWTH_TRACKED`
    (``grad_norm_sq``, ``inner_err_sq`` where the problem has them, and
    :math:`\|y_k\|^2`; per block for a stacked problem) exceeds
    ``growth_limit`` :math:`\cdot\max(q_{k_0}, 1)`, :math:`q_{k_0}` its first
    evaluated value: a run that blows up while staying finite (the floor 1 keeps
    a zero start from tripping it). These are squares, so the default
    ``growth_limit = 1e12`` is a factor :math:`10^6` on the norms.
    ``growth_limit=None`` disables the check. The outer iterate ``x`` is not
    tracked: it may legitimately run off (paper 003's :math:`\log\lambda \to
    -\infty` when the regularizer is switched off). The check only reads
    values; it never changes a run that passes it.
    A :class:`~bilevel.LinearSolveError` of the solver's step (inner Hessian not
    positive definite) is re-raised with the outer iteration ``k``.
    A solver's own guard (AID's and ITD's ``max_abs``) that trips during step
    ``k`` is re-raised as a :class:`~bilevel.DivergenceError` naming ``k``.
    Randomness comes only from ``torch.Generator(device).manual_seed(seed)``
    (the solver's own stream) and the oracles' ``"outer"``/``"inner"``/``"noise"``
    streams derived from the same seed (:class:`~bilevel.oracles.Oracles`);
    ``noise`` adds Gaussian noise to oracle outputs (standard deviations).
    """
    if not isinstance(solver, Solver):
        raise TypeError(f"solver must be a bilevel solver (e.g. bl.solvers.AID(...)), "
                        f"got {type(solver).__name__}.")
    if not isinstance(problem, Problem):
        raise TypeError(f"problem must be a bl.Problem, got {type(problem).__name__}.")
    V.nonneg_int("run", "steps", steps)
    V.positive_int("run", "eval_every", eval_every)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"run: seed must be an int, got {seed!r}.")
    if growth_limit is not None and V.positive_float("run", "growth_limit", growth_limit) <= 1:
        raise ValueError(f"run: growth_limit must be > 1 (or None to disable), got {growth_limit!r}.")
    device = problem.device
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    oracles = Oracles(problem, seed=seed, noise=noise)
    state = solver.init(problem, oracles, gen)
    rows: list[dict[str, Any]] = []
    elapsed = 0.0
    last_ok = -1

    blocks = B.of(problem)
    first: dict[str, float] = {}

    def check_growth(k, label, row, y):
        if growth_limit is None:
            return
        values = {n: row[n] for n in GROWTH_TRACKED if n in row}
        if y is not None:
            values["|y|^2"] = _sq(y)
        for name, value in values.items():
            if math.isnan(value):
                continue
            q = name if label is None else f"{name} (block {label})"
            q0 = first.setdefault(q, value)
            if value > growth_limit * max(q0, 1.0):
                raise DivergenceError(q, k, solver.name, growth=(value, q0, growth_limit))

    def record(k, x, y, est):
        base = {"k": k, "time_s": elapsed, **oracles.counts.as_dict()}
        exact: dict[str, tuple[str, torch.Tensor | None]] = {}
        with torch.enable_grad():
            if problem.grad_phi is not None:
                gphi = problem.grad_phi(x).detach()
                exact["grad_norm_sq"] = ("x", gphi)
                exact["hypergrad_err_sq"] = ("x", None if est is None else est - gphi)
            if problem.y_star is not None:
                exact["inner_err_sq"] = ("y", None if y is None else y - problem.y_star(x).detach())
            extra = {name: _per_block(name, fn(x, y), blocks) for name, fn in problem.metrics.items()}
            if problem.phi is not None and not blocks.batched:
                extra["phi"] = [float(problem.phi(x))]
        for i, (label, sx, sy) in enumerate(blocks):
            row = dict(base) if not blocks.batched else dict(base, block=label)
            for name, (which, t) in exact.items():
                row[name] = float("nan") if t is None else _sq(t[sx] if which == "x" else t[sy])
            row.update({name: vals[i] for name, vals in extra.items()})
            rows.append(row)
            check_growth(k, label, row, None if y is None else y[sy])

    iterator = range(steps)
    if progress:
        from tqdm.auto import tqdm
        iterator = tqdm(iterator, desc=desc or f"{solver.name} on {problem.name}", leave=False)
    for k in iterator:
        _sync(device)
        t0 = time.perf_counter()
        try:
            state, info = solver.step(state, oracles, gen)
        except LinearSolveError as e:
            raise LinearSolveError(f"{solver.name}, outer iteration k={k}: {e}", e.iteration,
                                   e.curvature, e.block) from e
        except DivergenceError as e:             # a solver's guard: name the iteration
            if e.iteration >= 0:
                raise
            raise DivergenceError(e.quantity, k, solver.name, last_finite=last_ok,
                                  hint=e.hint) from None
        _sync(device)
        elapsed += time.perf_counter() - t0
        if k % eval_every == 0:
            bad = _nonfinite(state, info)
            if bad:
                raise DivergenceError(bad, k, solver.name, last_finite=last_ok)
            last_ok = k
            record(k, info.x, info.y, info.hypergrad)
    for name in ("x", "y"):
        t = getattr(state, name, None)
        if t is not None and not bool(torch.isfinite(t).all()):
            raise DivergenceError(name, steps, solver.name, last_finite=last_ok)
    # final iterate x_K with the carried inner iterate; no estimate is formed there
    record(steps, state.x, getattr(state, "y", None), None)
    df = pd.DataFrame(rows)
    df["solver"] = solver.name
    df["problem"] = problem.name
    df["seed"] = seed
    if oracles.noise:
        for name, std in sorted(oracles.noise.items()):
            df[f"noise_{name}"] = std
    return df
