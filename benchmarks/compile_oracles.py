"""Does ``torch.compile`` of a problem's oracles pay? Compile time and time per AID step, with and without.

One AID step (N = 1 inner step, Q = 1 gd step on v, then x; the iteration of
:mod:`benchmarks.scaling`) on :func:`benchmarks.solver_table.separable_quadratic` (float64)
and on :func:`bilevel.problems.quadratic.random` (dense, d = 300), written five ways:

* ``library``: ``bl.solvers.AID.step`` (autograd, double backward);
* ``eager``: the hand-written autograd loop :func:`benchmarks.core_overhead.eager_aid`;
* ``func``: the oracles as ``torch.func`` transforms (``grad``, ``jvp`` of ``grad``), eager;
* ``func_compiled``: the same oracles, each wrapped in ``torch.compile`` (inductor; what
  "compiling a problem's oracles" can mean: ``torch.compile`` of ``f``/``g`` themselves cannot
  run under the library's double backward, AOTAutograd has no double backward);
* ``step_compiled``: the whole step (the three updates and their oracles) in one
  ``torch.compile`` graph, the most inductor can fuse.

Compile time: wall time of the first call of the compiled variant minus the median step.
Interleaved rounds, one torch thread, medians and [min, max]. Needs a C++ compiler
(inductor's CPU backend); without one the compiled rows are skipped with the reason.
Usage: ``python -m benchmarks.compile_oracles [--rounds 5] [--dims 100 10000 1000000]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import time

import numpy as np
import pandas as pd
import torch

import bilevel as bl

from . import save_rows
from .core_overhead import eager_aid
from .scaling import A, B, ETA, lib_loop, solver_for
from .solver_table import separable_quadratic


def func_oracles(prob, compiled: bool):
    """grad f, grad_y g, H v, J^T v of ``prob`` by torch.func; optionally each ``torch.compile``-d."""
    f, g = prob.f, prob.g
    grad_f = torch.func.grad(f, argnums=(0, 1))
    grad_y_g = torch.func.grad(g, argnums=1)

    def hvp(x, y, v):
        return torch.func.jvp(lambda yy: grad_y_g(x, yy), (y,), (v,))[1]

    def jtv(x, y, v):                     # grad_x <grad_y g(x, y), v> = (d^2 g / dx dy) v
        return torch.func.grad(lambda xx: torch.dot(grad_y_g(xx, y), v))(x)

    fns = dict(grad_f=grad_f, grad_y_g=grad_y_g, hvp=hvp, jtv=jtv)
    if compiled:
        fns = {k: torch.compile(fn, dynamic=False) for k, fn in fns.items()}
    return fns


def aid_step(fns, x, y, v):
    y = y - A * fns["grad_y_g"](x, y)
    fx, fy = fns["grad_f"](x, y)
    v = v - ETA * (fns["hvp"](x, y, v) - fy)
    x = x - B * (fx - fns["jtv"](x, y, v))
    return x, y, v


def func_loop(step, prob, K):
    x, y = prob.x0.clone(), prob.y0.clone()
    v = torch.zeros_like(y)
    t0 = time.perf_counter()
    for _ in range(K):
        x, y, v = step(x, y, v)
    return time.perf_counter() - t0, (x, y, v)


def steps_for(d: int) -> int:
    return 200 if d <= 10_000 else (40 if d <= 100_000 else 8)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--dims", type=int, nargs="+", default=[100, 10_000, 1_000_000])
    ap.add_argument("--out", default="benchmarks/results/compile_oracles.csv")
    ap.add_argument("--quick", action="store_true", help="2 rounds, d = 1e2 and 1e4")
    args = ap.parse_args(argv)
    if args.quick:
        args.rounds, args.dims = 2, [100, 10_000]
    torch.set_num_threads(1)
    load0 = " ".join(f"{v:.2f}" for v in os.getloadavg())
    cxx = shutil.which(os.environ.get("CXX", "g++")) or shutil.which("c++")
    probs = {f"separable d={d}": separable_quadratic(d) for d in args.dims}
    probs["random dense d=300"] = bl.problems.quadratic.random(300, 300, seed=0)
    rows, compile_s, agree = [], {}, {}
    variants = {}
    for name, p in probs.items():
        eager_fns = func_oracles(p, compiled=False)
        v = {"library": lambda K, p=p: lib_loop(solver_for("AID"), p, K),
             "eager": lambda K, p=p: eager_aid(p, K, 1, 1, A, ETA, B),
             "func": lambda K, p=p, fns=eager_fns: func_loop(lambda *s: aid_step(fns, *s), p, K)[0]}
        ref = func_loop(lambda *s: aid_step(eager_fns, *s), p, 5)[1]
        if cxx:
            comp_fns = func_oracles(p, compiled=True)
            whole = torch.compile(lambda x, y, vv, fns=eager_fns: aid_step(fns, x, y, vv), dynamic=False)
            for label, step in (("func_compiled", lambda *s, fns=comp_fns: aid_step(fns, *s)),
                                ("step_compiled", whole)):
                t0 = time.perf_counter()
                _, out = func_loop(step, p, 5)                 # first call compiles
                compile_s[(name, label)] = time.perf_counter() - t0
                agree[(name, label)] = max(float((a - b).abs().max()) for a, b in zip(out, ref))
                v[label] = lambda K, p=p, step=step: func_loop(step, p, K)[0]
        variants[name] = v
    items = [(n, s) for n, v in variants.items() for s in v]
    for n, s in items:
        variants[n][s](2)
    for r in range(args.rounds):
        for n, s in (items if r % 2 == 0 else items[::-1]):
            d = probs[n].dim_x
            K = steps_for(d)
            rows.append(dict(round=r, problem=n, variant=s, us_per_step=1e6 * variants[n][s](K) / K))
        print(f"round {r} done, load {os.getloadavg()[0]:.2f}", flush=True)
    load1 = " ".join(f"{v:.2f}" for v in os.getloadavg())
    raw = pd.DataFrame(rows)
    summ = raw.groupby(["problem", "variant"], sort=False).us_per_step.agg(["median", "min", "max"]).reset_index()
    out = []
    for _, row in summ.iterrows():
        lib = summ[(summ.problem == row.problem) & (summ.variant == "library")]["median"].iloc[0]
        key = (row.problem, row.variant)
        out.append(dict(problem=row.problem, variant=row.variant, us_median=row["median"], us_min=row["min"],
                        us_max=row["max"], over_library=row["median"] / lib,
                        compile_s=(compile_s[key] - 5e-6 * row["median"]) if key in compile_s else np.nan,
                        max_abs_diff_vs_func=agree.get(key, np.nan),
                        cxx=cxx or "none", rounds=args.rounds, load_before=load0, load_after=load1))
    df = save_rows(out, args.out)
    print(f"load before {load0}, after {load1}; C++ compiler: {cxx}")
    print(df[["problem", "variant", "us_median", "us_min", "us_max", "over_library", "compile_s",
              "max_abs_diff_vs_func"]].to_markdown(index=False, floatfmt=".3g"))
    return df


if __name__ == "__main__":
    main()
