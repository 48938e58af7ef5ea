"""What keeping g's terms in x alone out of the y-oracles saves (issue #16; landed as ``Problem.g_y``).

On a finite-sum quadratic shaped like benchopt's ``simulated`` problem (dim 100, 1024 samples,
batch 64, float32; :func:`bilevel.problems.finite_sum.quadratic`),

    g(x, y; n) = 1/2 y'A_n y + 1/2 x'B_n x + x'C_n y + a_n'y + b_n'x,

evaluating the whole g in every ``grad_y_g``, HVP and JVP computes the per-sample term
``1/2 x'B_n x`` (a k x d x d contraction) and throws it away. ``with``: the library's problem
with ``g_y=None`` (every oracle evaluates the whole g, as before ``Problem.g_y`` landed);
``without``: the library's problem as shipped, whose ``g_y`` drops ``1/2 x'B_n x + b_n'x``;
the iterates are the same bit for bit (``grad_g`` and values still use g). ``summed``:
f and g written with the batch's matrices summed first (one k x d x d reduction per matrix,
then d x d products; the double-backward HVP then never touches the k x d x d batch), which moves
the iterates by rounding. This script checks both (bit for bit; max abs difference) and times the
three, interleaved rounds, one torch thread.
Usage: ``python -m benchmarks.x_only_terms [--rounds 5] [--steps 32]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os

import numpy as np
import pandas as pd
import torch

import bilevel as bl

from . import save_rows
from .scaling import timed_steps

SOLVERS = {
    "SOBA": dict(inner_lr=0.1, outer_lr=0.1, batch_size=64),
    "TTSA": dict(inner_lr=0.1, outer_lr=0.1, inner_lr_decay=0.4, outer_lr_decay=0.6, neumann_steps=10,
                 neumann_lr=0.1, batch_size=64),
    "StocBiO": dict(inner_lr=0.1, outer_lr=0.1, inner_steps=10, neumann_steps=10, neumann_lr=0.1,
                    batch_size=64),
}


def problems(d: int = 100, n: int = 1024, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)

    def mats():
        m = torch.randn(n, d, d, generator=gen) / d ** 0.5
        return dict(A=m @ m.transpose(1, 2) / 4 + 0.1 * torch.eye(d), B=torch.randn(n, d, d, generator=gen) / d,
                    C=torch.randn(n, d, d, generator=gen) / d, a=torch.randn(n, d, generator=gen),
                    b=torch.randn(n, d, generator=gen))

    inner, outer = mats(), mats()
    x0, y0 = -2 * torch.ones(d), torch.zeros(d)
    shipped = bl.problems.finite_sum.quadratic(inner, outer, x0=x0, y0=y0, name="simulated_like")
    full = dataclasses.replace(shipped, g_y=None)    # every oracle evaluates the whole g

    def summed_loss(m, x, y, batch):                # the batch's matrices summed first, then d x d products
        s = slice(None) if batch is None else batch
        A, B, C, a, b = (m[k][s].sum(0) for k in ("A", "B", "C", "a", "b"))
        val = 0.5 * (y @ (A @ y)) + 0.5 * (x @ (B @ x)) + x @ (C @ y) + a @ y + b @ x
        return val / m["A"][s].shape[0]

    summed = dataclasses.replace(full, g=lambda x, y, batch=None: summed_loss(inner, x, y, batch),
                                 f=lambda x, y, batch=None: summed_loss(outer, x, y, batch))
    return full, shipped, summed


run = timed_steps                        # (seconds, state) of K library steps


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=32)
    ap.add_argument("--quick", action="store_true", help="2 rounds of 4 steps")
    ap.add_argument("--out", default="benchmarks/results/x_only_terms.csv")
    args = ap.parse_args(argv)
    if args.quick:
        args.rounds, args.steps = 2, 4
    torch.set_num_threads(1)
    load0 = " ".join(f"{v:.2f}" for v in os.getloadavg())
    full, without, summed = problems()
    sides = {"with": full, "without": without, "summed": summed}
    solvers = {k: bl.solvers.make(k.lower(), **hp) for k, hp in SOLVERS.items()}
    same, moved = {}, {}
    for name, s in solvers.items():
        a, b, c = (run(s, p, args.steps)[1] for p in (full, without, summed))
        same[name] = bool(torch.equal(a.x, b.x) and torch.equal(a.y, b.y))
        moved[name] = float(max((a.x - c.x).abs().max(), (a.y - c.y).abs().max()))
    items = [(n, side) for n in solvers for side in sides]
    rows = []
    for r in range(args.rounds):
        for n, side in (items if r % 2 == 0 else items[::-1]):
            t, _ = run(solvers[n], sides[side], args.steps)
            rows.append(dict(round=r, solver=n, side=side, ms_per_step=1e3 * t / args.steps))
    load1 = " ".join(f"{v:.2f}" for v in os.getloadavg())
    raw = pd.DataFrame(rows)
    out = []
    for n in solvers:
        rr = raw[raw.solver == n].pivot(index="round", columns="side", values="ms_per_step")
        ratio = rr["without"] / rr["with"]
        ratio_s = rr["summed"] / rr["with"]
        out.append(dict(solver=n, ms_with=rr["with"].median(), ms_without=rr["without"].median(),
                        without_over_with=float(np.median(ratio)), ratio_min=float(ratio.min()),
                        ratio_max=float(ratio.max()), iterates_bitwise_equal=same[n],
                        ms_summed=rr["summed"].median(), summed_over_with=float(np.median(ratio_s)),
                        summed_ratio_min=float(ratio_s.min()), summed_ratio_max=float(ratio_s.max()),
                        summed_max_abs_diff=moved[n], steps=args.steps,
                        rounds=args.rounds, load_before=load0, load_after=load1))
    df = save_rows(out, args.out)
    print(f"load before {load0}, after {load1}")
    print(df.drop(columns=["torch", "machine", "load_before", "load_after"]).to_markdown(index=False, floatfmt=".3f"))
    return df


if __name__ == "__main__":
    main()
