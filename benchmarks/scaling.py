"""Time per step vs dimension, d = 1e2 ... 1e6, beside the memory-bandwidth floor and the eager loop.

Problem: :func:`benchmarks.solver_table.separable_quadratic` (float64, dim x = dim y = d,
``g = 1/2 y'diag(h)y - x'y + b'y``, ``f = 1/2 |y - c|^2 + rho/2 |x|^2``). Methods: AID
(N = 1, Q = 1, gd), ITD (N = 1, reverse) and SOBA (deterministic oracles on this problem).
For each (d, method), timed in interleaved rounds (order reversed every other round):

* ``lib``: ``solver.step`` of the library in a plain loop (no metrics);
* ``eager``: a hand-written eager loop making the same ``torch.autograd.grad`` calls
  (:func:`benchmarks.core_overhead.eager_aid` / ``eager_itd``, :func:`eager_soba` here);
* ``closed``: the same algorithm with the gradients written by hand (no autograd), unfused
  torch ops, for scale;
* ``lib_xleaf`` (AID only): the library with its curvature graph built once with ``x`` as a
  leaf (:func:`curvature_with_x`, a measurement patch; bitwise identical iterates checked).

Floor: the bytes an ideal (fully fused) implementation must stream per step, every state
vector read and written once and every constant vector read once (AID and SOBA: state x, y,
v and constants h, b, c, 9 vectors; ITD: state x, y, 7 vectors), divided by the machine's
memory bandwidth measured in the same run with torch kernels on 2^24-element float64 vectors
(copy: 2 vectors moved per element, axpy ``y += a x`` and triad ``a = b + s c``: 3), best of
the rounds (STREAM's convention). Below d ~ 1e4 the vectors fit in cache and the DRAM floor
is not the binding limit; the per-kernel cost of one torch triad at size d (median over the
rounds) is reported beside it. One torch thread. Usage: ``python -m benchmarks.scaling [--rounds 5] [--dims 100 ... ]``.
Writes ``benchmarks/results/scaling.csv`` (summary) and ``scaling_raw.csv`` (every round).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import time

import numpy as np
import pandas as pd
import torch

import bilevel as bl

from . import save_rows
from .core_overhead import eager_aid, eager_itd
from .solver_table import separable_quadratic

ag = torch.autograd.grad
RHO = 0.1
A, ETA, B = 0.5, 0.5, 0.1          # inner, linear-system and outer steps (h in [0.5, 2])
VECTORS = {"AID": 9, "ITD": 7, "SOBA": 9}   # ideal fused traffic, in vectors of d float64 per step
DIMS = [100, 1_000, 10_000, 100_000, 1_000_000]


def steps_for(d: int) -> int:
    return {100: 400, 1_000: 400, 10_000: 200, 100_000: 40}.get(d, 8)


def eager_soba(prob, K, a, eta, b):
    """SOBA written inline: one differentiable grad_y g, one grad f, one joint (JVP, HVP) backward.

    Returns (seconds, final x)."""
    f, g = prob.f, prob.g
    x, y = prob.x0.clone(), prob.y0.clone()
    v = torch.zeros_like(y)
    t0 = time.perf_counter()
    for _ in range(K):
        xl, yl = x.detach().requires_grad_(True), y.detach().requires_grad_(True)
        gy = ag(g(xl, yl), yl, create_graph=True)[0]
        xf, yf = x.detach().requires_grad_(True), y.detach().requires_grad_(True)
        fx, fy = ag(f(xf, yf), (xf, yf))
        jv, hv = ag(gy, (xl, yl), v)
        y = y - a * gy.detach()
        v = v - eta * (hv - fy)
        x = x - b * (fx - jv)
    return time.perf_counter() - t0, x


def problem_constants(d: int):
    """(h, b, c) of ``separable_quadratic(d)`` (same seed and drawing order)."""
    gen = torch.Generator().manual_seed(0)
    bb = torch.randn(d, generator=gen, dtype=torch.float64)
    c = torch.randn(d, generator=gen, dtype=torch.float64)
    return torch.linspace(0.5, 2.0, d, dtype=torch.float64), bb, c


def closed_form(method, prob, K, a, eta, b, h, bb, c):
    """The same iteration with hand-written gradients (grad_y g = h y - x + b, grad_xy g = -I).

    Returns (seconds, final x)."""
    x, y = prob.x0.clone(), prob.y0.clone()
    v = torch.zeros_like(y)
    t0 = time.perf_counter()
    for _ in range(K):
        if method == "ITD":                       # y1 = y - a(hy - x + b); d/dx f(x, y1(x))
            y = y - a * (h * y - x + bb)
            x = x - b * (RHO * x + a * (y - c))
        elif method == "AID":                     # N = 1 inner step, Q = 1 gd step on v, then x
            y = y - a * (h * y - x + bb)
            v = v - eta * (h * v - (y - c))
            x = x - b * (RHO * x + v)
        else:                                     # SOBA: all three at the same (x, y, v)
            y, v, x = (y - a * (h * y - x + bb), v - eta * (h * v - (y - c)),
                       x - b * (RHO * x + v))
    return time.perf_counter() - t0, x


def timed_steps(solver, prob, K):
    """``(seconds, state)`` of K library steps of ``solver`` on ``prob`` (seed 0), init not timed."""
    o = bl.oracles.Oracles(prob, seed=0)
    gen = torch.Generator().manual_seed(0)
    st = solver.init(prob, o, gen)
    t0 = time.perf_counter()
    for _ in range(K):
        st, _ = solver.step(st, o, gen)
    return time.perf_counter() - t0, st


def lib_loop(solver, prob, K):
    return timed_steps(solver, prob, K)[0]


@contextlib.contextmanager
def curvature_with_x():
    """Measurement only: every curvature graph is built with ``x`` as a leaf from the start.

    The library builds ``grad_y g`` without ``x`` for the Q linear-system products and rebuilds
    it once with ``x`` for AID's closing JVP (one more forward of g and create-graph backward
    per step). This patch (benchmarks only, never in the library) measures what building it
    once would save; :func:`xleaf_identical` checks the iterates stay bitwise identical.
    """
    cls = bl.oracles.Curvature
    orig = cls._graph
    cls._graph = lambda self, with_x: orig(self, True)
    try:
        yield
    finally:
        cls._graph = orig


def lib_xleaf_loop(solver, prob, K):
    with curvature_with_x():
        return lib_loop(solver, prob, K)


def xleaf_identical(prob, K: int = 20) -> bool:
    """AID's iterates after K steps with and without :func:`curvature_with_x`, compared bit for bit."""
    a = timed_steps(solver_for("AID"), prob, K)[1]
    with curvature_with_x():
        b = timed_steps(solver_for("AID"), prob, K)[1]
    return all(torch.equal(u, w) for u, w in ((a.x, b.x), (a.y, b.y), (a.v, b.v)))


def solver_for(method):
    if method == "AID":
        return bl.solvers.AID(inner_steps=1, inner_lr=A, linsys="gd", linsys_steps=1, linsys_lr=ETA,
                              outer_lr=B)
    if method == "ITD":
        return bl.solvers.ITD(inner_steps=1, inner_lr=A, outer_lr=B)
    return bl.solvers.SOBA(inner_lr=A, linsys_lr=ETA, outer_lr=B)


def bandwidth(n: int = 1 << 24, reps: int = 5) -> dict:
    """STREAM-like GB/s of torch copy, axpy and triad on float64 vectors of n elements (best of reps)."""
    a = torch.rand(n, dtype=torch.float64)
    bv = torch.rand(n, dtype=torch.float64)
    cv = torch.rand(n, dtype=torch.float64)
    kernels = {"copy": (lambda: bv.copy_(a), 2), "axpy": (lambda: bv.add_(a, alpha=1e-9), 3),
               "triad": (lambda: torch.add(bv, cv, alpha=0.5, out=a), 3)}
    out = {}
    for name, (fn, nvec) in kernels.items():
        fn()
        best = min(_timed(fn) for _ in range(reps))
        out[name] = nvec * 8 * n / best / 1e9
    return out


def _timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def triad_us(d: int, reps: int = 200) -> float:
    a, bv, cv = (torch.rand(d, dtype=torch.float64) for _ in range(3))
    torch.add(bv, cv, alpha=0.5, out=a)
    t0 = time.perf_counter()
    for _ in range(reps):
        torch.add(bv, cv, alpha=0.5, out=a)
    return 1e6 * (time.perf_counter() - t0) / reps


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--dims", type=int, nargs="+", default=DIMS)
    ap.add_argument("--methods", nargs="+", default=list(VECTORS), choices=list(VECTORS))
    ap.add_argument("--out", default="benchmarks/results/scaling.csv")
    ap.add_argument("--quick", action="store_true", help="2 rounds, d = 1e2, 1e4, 1e5")
    args = ap.parse_args(argv)
    if args.quick:
        args.rounds, args.dims = 2, [100, 10_000, 100_000]
    torch.set_num_threads(1)
    load0 = " ".join(f"{v:.2f}" for v in os.getloadavg())
    probs = {d: separable_quadratic(d) for d in args.dims}
    consts = {d: problem_constants(d) for d in args.dims}
    sides = {
        "lib": lambda m, p, K: lib_loop(solver_for(m), p, K),
        "eager": lambda m, p, K: (eager_aid(p, K, 1, 1, A, ETA, B) if m == "AID" else
                                  eager_itd(p, K, 1, A, B) if m == "ITD" else eager_soba(p, K, A, ETA, B)[0]),
        "closed": lambda m, p, K: closed_form(m, p, K, A, ETA, B, *consts[p.dim_x])[0],
        "lib_xleaf": lambda m, p, K: lib_xleaf_loop(solver_for(m), p, K),
    }
    items = [(d, m, s) for d in args.dims for m in args.methods for s in sides
             if s != "lib_xleaf" or m == "AID"]
    for d, m, s in items:                          # warm-up
        sides[s](m, probs[d], 2)
    rows, bws, triads = [], [], []
    for r in range(args.rounds):
        bws.append(bandwidth())
        triads.append({d: triad_us(d) for d in args.dims})
        order = items if r % 2 == 0 else items[::-1]
        for d, m, s in order:
            K = steps_for(d)
            t = sides[s](m, probs[d], K)
            rows.append(dict(round=r, dim=d, method=m, side=s, us_per_step=1e6 * t / K))
        print(f"round {r} done, load {os.getloadavg()[0]:.2f}", flush=True)
    load1 = " ".join(f"{v:.2f}" for v in os.getloadavg())
    raw = pd.DataFrame(rows)
    bw = pd.DataFrame(bws)
    best_bw = float(bw.max().max())
    med = raw.groupby(["dim", "method", "side"]).us_per_step.agg(["median", "min", "max"]).unstack("side")
    out = []
    for (d, m), row in med.iterrows():
        # per-round ratio lib/eager (same round), then median and range
        rr = raw[(raw.dim == d) & (raw.method == m)].pivot(index="round", columns="side", values="us_per_step")
        ratio = rr["lib"] / rr["eager"]
        floor_us = 1e6 * VECTORS[m] * 8 * d / (best_bw * 1e9)
        out.append(dict(dim=d, method=m,
                        lib_us=row[("median", "lib")], lib_min=row[("min", "lib")], lib_max=row[("max", "lib")],
                        eager_us=row[("median", "eager")], eager_min=row[("min", "eager")],
                        eager_max=row[("max", "eager")],
                        closed_us=row[("median", "closed")],
                        lib_xleaf_us=row.get(("median", "lib_xleaf"), np.nan),
                        xleaf_over_eager=(float(np.median(rr["lib_xleaf"] / rr["eager"]))
                                          if "lib_xleaf" in rr else np.nan),
                        xleaf_bitwise_equal=(xleaf_identical(probs[d]) if m == "AID" else None),
                        lib_over_eager=float(np.median(ratio)), ratio_min=float(ratio.min()),
                        ratio_max=float(ratio.max()),
                        floor_bytes=VECTORS[m] * 8 * d, floor_us=floor_us,
                        lib_over_floor=row[("median", "lib")] / floor_us,
                        closed_over_floor=row[("median", "closed")] / floor_us,
                        triad_us_at_d=float(np.median([t[d] for t in triads])),
                        bw_GBps=best_bw, bw_copy=float(bw["copy"].max()), bw_axpy=float(bw["axpy"].max()),
                        bw_triad=float(bw["triad"].max()), rounds=args.rounds,
                        load_before=load0, load_after=load1))
    df = save_rows(out, args.out)
    save_rows(rows, args.out.replace(".csv", "_raw.csv"))
    cols = ["dim", "method", "lib_us", "eager_us", "closed_us", "lib_over_eager", "ratio_min", "ratio_max",
            "lib_xleaf_us", "xleaf_over_eager", "floor_us", "lib_over_floor", "closed_over_floor", "triad_us_at_d"]
    print(f"bandwidth GB/s (best of {args.rounds}): {bw.max().round(2).to_dict()}; "
          f"median {bw.median().round(2).to_dict()}; load before {load0}, after {load1}")
    print(df[cols].to_markdown(index=False, floatfmt=".2f"))
    return df


if __name__ == "__main__":
    main()
