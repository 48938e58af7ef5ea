"""Library overhead of ``bl.run`` vs hand-written eager PyTorch loops, and the Figure 1+2 sweep time.

For AID(N, Q) and ITD(N) on paper 001's 2-D quadratic and on a random quadratic
with dim 1000, we time (a) ``bl.run`` (its ``time_s`` excludes metric
evaluation) and (b) an eager loop making exactly the same ``torch.autograd.grad``
calls, written inline without the library; the ratio (a)/(b) is the library's
overhead (target <= 1.2). A loop with closed-form gradients (no autograd) is
reported for scale. Each configuration is timed ``repeats`` times and the
median is kept. Usage: ``python -m benchmarks.core_overhead [--quick]``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import bilevel as bl

from . import save_rows

ag = torch.autograd.grad


def eager_aid(prob, K, N, Q, a, eta, b):
    f, g = prob.f, prob.g
    x, y = prob.x0.clone(), prob.y0.clone()
    v = torch.zeros_like(y)
    t0 = time.perf_counter()
    for _ in range(K):
        for _ in range(N):
            yl = y.detach().requires_grad_(True)
            y = y - a * ag(g(x, yl), yl)[0]
        xl, yl = x.detach().requires_grad_(True), y.detach().requires_grad_(True)
        fx, fy = ag(f(xl, yl), (xl, yl))
        xl, yl = x.detach().requires_grad_(True), y.detach().requires_grad_(True)
        gy = ag(g(xl, yl), yl, create_graph=True)[0]
        for _ in range(Q):
            v = v - eta * (ag(gy, yl, v, retain_graph=True)[0] - fy)
        jx = ag(gy, xl, v)[0]
        x = (x - b * (fx - jx)).detach()
        y, v = y.detach(), v.detach()
    return time.perf_counter() - t0


def eager_itd(prob, K, N, a, b):
    f, g = prob.f, prob.g
    x, y = prob.x0.clone(), prob.y0.clone()
    t0 = time.perf_counter()
    for _ in range(K):
        xl = x.detach().requires_grad_(True)
        yt = y.detach()
        for _ in range(N):
            yl = yt if yt.requires_grad else yt.requires_grad_(True)
            yt = yt - a * ag(g(xl, yl), yl, create_graph=True)[0]
        hx = ag(f(xl, yt), xl)[0]
        x = (x - b * hx).detach()
        y = yt.detach()
    return time.perf_counter() - t0


def closed_form_aid(prob, K, N, Q, a, eta, b):
    """Paper 001 quadratic only: gradients written by hand (reference scale)."""
    z, L = prob.info["z"], prob.info["L"]
    x, y = prob.x0.clone(), prob.y0.clone()
    v = torch.zeros_like(y)
    t0 = time.perf_counter()
    for _ in range(K):
        for _ in range(N):
            y = y - a * (z * y - L * x + 1)
        for _ in range(Q):
            v = v - eta * (z * v - 0.1)
        x = x - b * (z * x + L * v)
    return time.perf_counter() - t0


def lib_time(solver, prob, K):
    tr = bl.run(solver, prob, steps=K, eval_every=K)
    return float(tr.time_s.iloc[-1])


def problems():
    p2 = bl.problems.quadratic.kappa2d(kappa=2.0)
    p2.info["z"] = torch.tensor([0.2, 0.1], dtype=torch.float64)
    p1000 = bl.problems.quadratic.random(1000, 1000, seed=0)
    return {"quadratic001_2d": (p2, 1.0 / 0.2, 0.01), "random_quadratic_1000": (p1000, 0.5, 0.01)}


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default="benchmarks/results/core_overhead.csv")
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    rows = []
    configs = [("AID", 1, 1), ("AID", 10, 10), ("ITD", 1, None), ("ITD", 10, None)]
    for pname, (prob, a, b) in problems().items():
        K = 200 if args.quick else (2000 if prob.dim_x <= 2 else 300)
        for method, N, Q in configs:
            if method == "AID":
                solver = bl.solvers.AID(inner_steps=N, inner_lr=a, linsys="gd", linsys_steps=Q,
                                        linsys_lr=a, outer_lr=b)
                eager = lambda: eager_aid(prob, K, N, Q, a, a, b)  # noqa: E731
            else:
                solver = bl.solvers.ITD(inner_steps=N, inner_lr=a, outer_lr=b)
                eager = lambda: eager_itd(prob, K, N, a, b)  # noqa: E731
            lib_time(solver, prob, 20), eager()  # warm-up
            lib = np.median([lib_time(solver, prob, K) for _ in range(args.repeats)])
            ref = np.median([eager() for _ in range(args.repeats)])
            row = dict(problem=pname, method=method, N=N, Q=Q if Q else np.nan, K=K,
                       lib_us_per_step=1e6 * lib / K, eager_us_per_step=1e6 * ref / K,
                       overhead=lib / ref)
            if method == "AID" and pname == "quadratic001_2d":
                cf = np.median([closed_form_aid(prob, K, N, Q, a, a, b) for _ in range(args.repeats)])
                row["closed_form_us_per_step"] = 1e6 * cf / K
            rows.append(row)
            print({k: (round(v, 2) if isinstance(v, float) else v) for k, v in row.items()}, flush=True)
    # Figure 1+2 sweep at paper scale (9 kappas x K = 10^4, AID and ITD, metrics every step)
    from bilevel.papers.paper001 import experiments as paper001
    K = 1000 if args.quick else 10000
    t0 = time.perf_counter()
    cfg = paper001.QuadraticConfig(kappas=[2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0], steps=K,
                                   aid_beta_scale=paper001.bounds.AID_BETA_SCALE)
    summary, _ = paper001.quadratic_sweep(cfg)
    wall = time.perf_counter() - t0
    rows.append(dict(problem="paper001 Fig 1+2 sweep (9 kappas)", method="AID+ITD", N=1, Q=1, K=K,
                     sweep_wall_s=wall,
                     sweep_solver_s=float(summary.groupby("method").batch_time_s.first().sum())))
    print(rows[-1])
    df = save_rows(rows, args.out)
    print(df.to_string())


if __name__ == "__main__":
    main()
