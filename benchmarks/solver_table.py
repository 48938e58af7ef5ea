"""Time per outer step of every stochastic-family solver on a problem of dimension 10^5.

Problem: a separable quadratic with ``dim x = dim y = d`` (default 10^5),

    g(x, y) = 1/2 sum_i h_i y_i^2 - sum_i x_i y_i + b^T y,   f(x, y) = 1/2 ||y - c||^2 + rho/2 ||x||^2,

h_i in [0.5, 2], so every oracle call (gradient, HVP, JVP by double backward) is O(d)
and the time per step is the solver's oracle arithmetic times the per-call cost plus its
own vector work. Each solver runs with representative hyperparameters (Neumann Q = 3,
StocBiO/BSA N = 3, VRBO m = 2, q = 2, UniBiO with paper 002's Epoch-SGD budget K = 100
every I = 2 steps, i.e. 37.5 inner steps per outer step on average, and a cheaper K = 10);
``bl.run``'s ``time_s`` (solver time only, CUDA synchronised) over ``--steps`` steps after
a warm-up, median of ``--repeats``. Reported per solver: microseconds per outer step,
oracle calls (Gc, MV) per step, microseconds per oracle call. CUDA rows are added when a
GPU is available (or ``--device cuda``).

Usage: ``python -m benchmarks.solver_table [--quick] [--dim 100000] [--device cpu cuda] [--threads 1]``.
Writes ``benchmarks/results/solver_table.csv`` and prints a markdown table.
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
import torch

import bilevel as bl

from . import save_rows

Q3 = dict(neumann_steps=3, neumann_lr=0.5)

#: registry name -> (label, hyperparameters)
CONFIGS = {
    "aid": ("AID (N=1, Q=1, gd)", dict(inner_steps=1, inner_lr=0.5, linsys="gd", linsys_steps=1, linsys_lr=0.5,
                                       outer_lr=0.1)),
    "itd": ("ITD (N=1, reverse)", dict(inner_steps=1, inner_lr=0.5, outer_lr=0.1)),
    "stocbio": ("StocBiO (N=3, Q=3)", dict(inner_steps=3, inner_lr=0.5, outer_lr=0.1, **Q3)),
    "bsa": ("BSA (N=3, random power < 3)", dict(inner_steps=3, inner_lr=0.5, outer_lr=0.1, **Q3)),
    "ttsa": ("TTSA (random power < 3)", dict(inner_lr=0.5, outer_lr=0.1, **Q3)),
    "soba": ("SOBA", dict(inner_lr=0.5, outer_lr=0.1)),
    "ma_soba": ("MA-SOBA (beta=0.9)", dict(inner_lr=0.5, outer_lr=0.1)),
    "saba": ("SABA", dict(inner_lr=0.5, outer_lr=0.1)),
    "ssaid": ("SSAID", dict(inner_lr=0.5, linsys_lr=0.5, outer_lr=0.1)),
    "sustain": ("SUSTAIN (random power < 3)", dict(inner_lr=0.5, outer_lr=0.1, storm_weight=0.9, **Q3)),
    "vrbo": ("VRBO (m=2, q=2, Q=3)", dict(inner_lr=0.5, outer_lr=0.1, inner_steps=2, period=2, **Q3)),
    "stable": ("STABLE (Q=3)", dict(inner_lr=0.5, outer_lr=0.1, **Q3)),
    "unibio": ("UniBiO (p=2, K=100, I=2, Q=3)", dict(p=2, outer_lr=0.01, inner_lr=0.5, **Q3)),
    "unibio_k10": ("UniBiO (p=2, K=10, I=2, Q=3)", dict(p=2, outer_lr=0.01, inner_lr=0.5, inner_steps=10, **Q3)),
}


def separable_quadratic(d: int, rho: float = 0.1, seed: int = 0, device="cpu", dtype=torch.float64) -> bl.Problem:
    gen = torch.Generator().manual_seed(seed)
    kw = dict(dtype=dtype, device=device)
    h = torch.linspace(0.5, 2.0, d, dtype=torch.float64).to(**kw)
    b = torch.randn(d, generator=gen, dtype=torch.float64).to(**kw)
    c = torch.randn(d, generator=gen, dtype=torch.float64).to(**kw)

    def g(x, y):
        return 0.5 * torch.dot(h * y, y) - torch.dot(x, y) + torch.dot(b, y)

    def f(x, y):
        r = y - c
        return 0.5 * torch.dot(r, r) + 0.5 * rho * torch.dot(x, x)

    def y_star(x):
        return (x - b) / h

    def grad_phi(x):
        return (y_star(x) - c) / h + rho * x

    z = torch.zeros(d, **kw)
    return bl.Problem(f=f, g=g, x0=z, y0=z.clone(), y_star=y_star, grad_phi=grad_phi,
                      name=f"separable_quadratic(d={d})")


def time_solver(name, hp, prob, steps, repeats):
    solver = bl.solvers.make(name.split("_k10")[0], **hp)
    bl.run(solver, prob, steps=3, eval_every=3)                        # warm-up
    times, tr = [], None
    for r in range(repeats):
        tr = bl.run(solver, prob, steps=steps, eval_every=steps, seed=r)
        times.append(float(tr.time_s.iloc[-1]))
    last = tr.iloc[-1]
    t = float(np.median(times))
    calls = (last.grad_calls + last.mv_calls) / steps
    return dict(us_per_step=1e6 * t / steps, gc_per_step=last.grad_calls / steps,
                mv_per_step=last.mv_calls / steps, us_per_oracle_call=1e6 * t / steps / calls,
                grad_norm_sq_ratio=float(tr.grad_norm_sq.iloc[-1] / tr.grad_norm_sq.iloc[0]))


def markdown(df: pd.DataFrame) -> str:
    devices = list(df.device.unique())
    lines = ["| solver | Gc / step | MV / step | " + " | ".join(f"{d}: ms / step" for d in devices)
             + " | " + " | ".join(f"{d}: us / oracle call" for d in devices) + " |",
             "|---|---:|---:|" + "---:|" * (2 * len(devices))]
    for label, sub in df.groupby("label", sort=False):
        s = sub.set_index("device")
        r0 = sub.iloc[0]
        lines.append(f"| {label} | {r0.gc_per_step:.1f} | {r0.mv_per_step:.1f} | "
                     + " | ".join(f"{s.loc[d].us_per_step / 1e3:.2f}" if d in s.index else "-" for d in devices)
                     + " | "
                     + " | ".join(f"{s.loc[d].us_per_oracle_call:.0f}" if d in s.index else "-" for d in devices)
                     + " |")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="d = 10^4, 5 steps, 1 repeat")
    ap.add_argument("--dim", type=int, default=100_000)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", nargs="*", default=None, help="default: cpu, plus cuda if available")
    ap.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    ap.add_argument("--threads", type=int, default=1,
                    help="torch intra-op threads (1: on a shared 2-core machine more threads oversubscribe)")
    ap.add_argument("--out", default="benchmarks/results/solver_table.csv")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.quick:
        args.dim, args.steps, args.repeats = 10_000, 5, 1
    devices = args.device or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    dtype = getattr(torch, args.dtype)
    rows = []
    for device in devices:
        prob = separable_quadratic(args.dim, device=device, dtype=dtype)
        for name, (label, hp) in CONFIGS.items():
            row = dict(solver=name, label=label, device=device, dim=args.dim, dtype=args.dtype,
                       steps=args.steps, repeats=args.repeats,
                       **time_solver(name, hp, prob, args.steps, args.repeats))
            rows.append(row)
            print({k: (round(v, 2) if isinstance(v, float) else v) for k, v in row.items()}, flush=True)
    df = save_rows(rows, args.out,
                   f", {torch.cuda.get_device_name()}" if "cuda" in devices else "")
    print()
    print(markdown(df))
    return df


if __name__ == "__main__":
    main()
