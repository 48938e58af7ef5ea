r"""Independent runs of a parameter grid on any ``concurrent.futures``-style executor.

:func:`sweep` maps ``fn(**point)`` over the points of a grid and returns the
results in grid order. The executor is anything with ``submit(fn, *args)``
returning a future with ``result()``:

* ``None`` (default): a local :class:`~concurrent.futures.ProcessPoolExecutor`
  (``spawn`` start method, ``max_workers`` processes), each worker pinned to the
  project's reproducible runtime (:func:`bilevel.runtime.reproducible_runtime`,
  one thread) before it computes;
* a :class:`concurrent.futures.Executor` you built (threads, processes, MPI's
  ``MPIPoolExecutor``, ...);
* a ``dask.distributed.Client``: a ``LocalCluster`` on one machine, a running
  scheduler (``Client("tcp://host:8786")``) or a batch-queue cluster
  (``dask_jobqueue.SLURMCluster``); see the README.

Each point carries everything that makes its run (its seed included), and
every task first pins the runtime (``threads=1``, deterministic kernels), so a
point gives the same result whichever executor and worker runs it (tested
against a serial loop and a dask ``LocalCluster``). Workers must be able to
import ``fn`` (a module-level function of an installed package).

>>> import bilevel as bl
>>> bl.sweeps.grid(kappa=[1, 4], seed=[0, 1])[:2]
[{'kappa': 1, 'seed': 0}, {'kappa': 1, 'seed': 1}]
>>> from concurrent.futures import ThreadPoolExecutor
>>> with ThreadPoolExecutor(2) as ex:
...     bl.sweep([{"a": 1}, {"a": 2}], bl.sweeps.pow_two, executor=ex)
[2, 4]
"""

from __future__ import annotations

import itertools
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Callable, Iterable, Mapping

__all__ = ["sweep", "grid", "run_point", "pow_two"]


def grid(**axes: Iterable) -> list[dict]:
    """The Cartesian product of the axes, as a list of dicts (last axis fastest)."""
    names = list(axes)
    return [dict(zip(names, vals)) for vals in itertools.product(*(list(axes[n]) for n in names))]


def pow_two(a):
    """``2 * a`` (the doctest's task; a task must be importable by the workers)."""
    return 2 * a


def run_point(problem: str, solver: str, steps: int, seed: int = 0, eval_every: int = 1,
              problem_args: Mapping[str, Any] | None = None,
              solver_args: Mapping[str, Any] | None = None, **params):
    """One :func:`bilevel.run` from names, so that a point of a grid is plain data.

    ``problem``: ``"module.function"`` of :mod:`bilevel.problems` (e.g.
    ``"conditioned.quadratic"``) called with ``problem_args``; ``solver``: a
    registered solver name (:func:`bilevel.solvers.available`) built with
    ``solver_args``. Extra ``params`` are added as constant columns. The trace's
    ``time_s`` (wall time) is dropped, so results compare exactly.

    >>> tr = run_point("conditioned.quadratic", "soba", steps=3, seed=1,
    ...                problem_args={"kappa": 4.0}, solver_args={"inner_lr": 0.1, "outer_lr": 0.1})
    >>> list(tr.k), int(tr.seed.iloc[0])
    ([0, 1, 2, 3], 1)
    """
    import importlib

    from . import problems as _problems
    from . import solvers as _solvers
    from .run import run

    mod, _, fname = problem.rpartition(".")
    if not mod or not hasattr(_problems, mod):
        raise ValueError(f"run_point: problem must be 'module.function' of bilevel.problems, got {problem!r}.")
    factory = getattr(importlib.import_module(f"{_problems.__name__}.{mod}"), fname)
    prob = factory(**dict(problem_args or {}))
    sol = _solvers.make(solver, **dict(solver_args or {}))
    tr = run(sol, prob, steps=steps, eval_every=eval_every, seed=seed).drop(columns="time_s")
    tr["seed"] = seed
    for k, v in params.items():
        tr[k] = v
    return tr


def _task(fn: Callable, point: Mapping[str, Any], threads: int):
    from .runtime import reproducible_runtime
    reproducible_runtime(threads=threads)
    return fn(**point)


def sweep(points: Iterable[Mapping[str, Any]], fn: Callable, executor=None, *,
          max_workers: int | None = None, threads: int = 1) -> list:
    """``[fn(**p) for p in points]``, each call a task of ``executor`` (results in grid order).

    Args:
      points: the grid, an iterable of keyword dicts (see :func:`grid`).
      fn: a module-level function (workers import it by name).
      executor: ``None`` (local processes), a ``concurrent.futures.Executor`` or a
        ``dask.distributed.Client``; an executor passed in is left open.
      max_workers: processes of the default executor (``None``: the CPU count).
      threads: torch threads per task (1 keeps results bitwise reproducible).

    Raises the first task's exception (in grid order) after all tasks ended.
    """
    points = [dict(p) for p in points]
    if not callable(fn):
        raise ValueError(f"sweep: fn must be callable, got {fn!r}.")
    if not hasattr(executor, "submit") and executor is not None:
        raise ValueError(f"sweep: executor must have submit(fn, *args) (a concurrent.futures "
                         f"Executor or a dask.distributed Client), got {executor!r}.")
    own = executor is None
    if own:
        executor = ProcessPoolExecutor(max_workers=max_workers,
                                       mp_context=multiprocessing.get_context("spawn"))
    try:
        futures = [executor.submit(_task, fn, p, threads) for p in points]
        return [f.result() for f in futures]
    finally:
        if own:
            executor.shutdown()
