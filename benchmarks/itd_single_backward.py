"""ITD reverse mode: one backward pass through the recorded unroll vs the product-by-product loop.

Times ``bl.run(ITD(N))`` with the library's reverse mode (:meth:`bilevel.oracles.Oracles.unroll`,
one backward pass) and with the product-by-product loop it replaced (N differentiable gradients,
then N-1 double-backward HVP+JVP passes and one JVP; kept as ``Oracles._unroll_products`` for
noisy oracles, patched in here), each against :func:`benchmarks.core_overhead.eager_itd` (the same
``autograd.grad`` calls written inline). Configurations are interleaved and each is timed
``repeats`` times (median kept). Usage: ``python -m benchmarks.itd_single_backward [--quick]``.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

import bilevel as bl

from . import save_rows
from bilevel.oracles import Oracles

from .core_overhead import eager_itd, lib_time, problems


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default="benchmarks/results/itd_single_backward.csv")
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    single = Oracles.unroll
    rows = []
    for pname, (prob, a, b) in problems().items():
        K = 200 if args.quick else (2000 if prob.dim_x <= 2 else 100)
        for N in (1, 10):
            solver = bl.solvers.ITD(inner_steps=N, inner_lr=a, outer_lr=b)
            times = {"single": [], "loop": [], "eager": []}
            lib_time(solver, prob, 20), eager_itd(prob, 20, N, a, b)      # warm-up
            for _ in range(args.repeats):
                Oracles.unroll = single
                times["single"].append(lib_time(solver, prob, K))
                Oracles.unroll = lambda o, x, y, n, lr: o._unroll_products(x, y, n, lr)
                times["loop"].append(lib_time(solver, prob, K))
                Oracles.unroll = single
                times["eager"].append(eager_itd(prob, K, N, a, b))
            med = {k: float(np.median(v)) for k, v in times.items()}
            row = dict(problem=pname, N=N, K=K,
                       single_us_per_step=1e6 * med["single"] / K,
                       loop_us_per_step=1e6 * med["loop"] / K,
                       eager_us_per_step=1e6 * med["eager"] / K,
                       single_over_eager=med["single"] / med["eager"],
                       loop_over_eager=med["loop"] / med["eager"],
                       single_over_loop=med["single"] / med["loop"])
            rows.append(row)
            print({k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()}, flush=True)
    Oracles.unroll = single
    df = save_rows(rows, args.out)
    print(df.to_string())


if __name__ == "__main__":
    main()
