"""Side-by-side timings against the peers, interleaved rounds (``pip install -e .[peers]``).

1. One AID hypergradient, d = 1000, float64, CG with Q = 20: ``bl.hypergrad.implicit``
   vs TorchOpt 0.7.3's ``custom_root`` (implicit differentiation of a given inner
   solution; the backward pass solves the same linear system by CG, 20 iterations).
   Both hypergradients are checked against the closed form.
2. Stochastic solvers (SOBA, SABA, StocBiO, TTSA, F2SA, VRBO; ``--solvers`` picks a subset)
   on benchopt's bilevel benchmark problem (``simulated`` quadratic,
   dim 100, 1024 inner and 1024 outer samples, batch 64, float32, the solvers'
   class-default steps, mapped onto ours by :func:`our_solver`): the benchmark's jitted JAX solver (``one_epoch`` = ``lax.scan``
   over ``iters`` steps, ``block_until_ready``) vs ours on the same problem instance,
   exported from the benchmark's own generated matrices to
   :func:`bilevel.problems.finite_sum.quadratic`. Each side reports the benchmark's
   own metric (``value`` = squared norm of the exact hypergradient) after the same
   number of steps, so a reader sees both do the same work.

The benchmark's source is read from a local checkout: ``--benchmark-bilevel PATH`` or
the environment variable ``BENCHMARK_BILEVEL``; if neither is given it is cloned (at
``PIN``) into ``build/benchmark_bilevel`` when online. Nothing of it is copied here.

Method: ``rounds`` rounds; in each round every (case, side) is timed once, in an order
that alternates between rounds, after one untimed warm-up call per side; medians and
[min, max] over rounds. ``torch.set_num_threads(1)`` and ``XLA_FLAGS`` single-threaded
Eigen so both sides use one core. The load average is read before and after.

Usage: ``python -m benchmarks.peers [--rounds 7] [--iters 128] [--only aid|stochastic]
[--solvers TTSA,F2SA,VRBO] [--tag _run3]`` (``--tag``: suffix of the CSV names).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

import bilevel as bl  # noqa: E402
from bilevel.io import save_table  # noqa: E402

URL = "https://github.com/benchopt/benchmark_bilevel"
PIN = "3ad65dc"        # benchmark_bilevel commit measured here
ROOT = Path(__file__).resolve().parent
SOLVERS = {"SOBA": "soba", "SABA": "saba", "StocBiO": "stocbio",   # name -> module of its solvers/ folder
           "TTSA": "ttsa", "F2SA": "f2sa", "VRBO": "vrbo"}


def our_solver(name: str, params: dict, n_samples: tuple[int, int]):
    """Our solver with the benchmark solver's class defaults (same steps, schedules, batch, loops).

    TTSA: inner step c/(k+1)^0.4, outer c/ratio/(k+1)^0.6, random-power Neumann (HIA) with
    ``n_hia_steps`` and constant step c. F2SA: :meth:`bl.solvers.F2SA.kwon2023` (the benchmark's
    parametrisation). VRBO: the benchmark's checkpoint period
    ``(n_inner + n_outer) * period_frac / batch_size`` outer steps, full-batch checkpoint,
    ``n_inner_steps`` SPIDER inner steps, ``n_shia_steps`` Neumann products per estimate.
    """
    lr = float(params["step_size"])
    outer_lr = lr / float(params["outer_ratio"])
    batch = int(params["batch_size"])
    if name == "F2SA":
        return bl.solvers.F2SA.kwon2023(step_size=lr, outer_ratio=float(params["outer_ratio"]),
                                        lmbda0=float(params["lmbda0"]),
                                        delta_lmbda=float(params["delta_lmbda"]),
                                        inner_steps=int(params["n_inner_steps"]), batch_size=batch,
                                        schedule="benchopt")
    kw = dict(inner_lr=lr, outer_lr=outer_lr, batch_size=batch)
    if name == "StocBiO":                        # N inner SGD steps, Q-term Neumann series (SHIA), step lr
        kw.update(inner_steps=int(params["n_inner_steps"]), neumann_steps=int(params["n_shia_steps"]),
                  neumann_lr=lr)
    elif name == "TTSA":                         # benchopt: exponents (0.4, 0, 0.6) of (inner, hia, outer)
        kw.update(inner_lr_decay=0.4, outer_lr_decay=0.6, neumann="random",
                  neumann_steps=int(params["n_hia_steps"]), neumann_lr=lr)
    elif name == "VRBO":
        period = int(sum(n_samples) * params["period_frac"] / batch)
        kw.update(inner_steps=int(params["n_inner_steps"]), period=period,
                  neumann_steps=int(params["n_shia_steps"]), neumann_lr=lr,
                  checkpoint_batch_size=None)
    return bl.solvers.make(name.lower(), **kw)


def benchmark_path(arg: str | None) -> Path:
    path = arg or os.environ.get("BENCHMARK_BILEVEL")
    if path:
        p = Path(path)
        if not (p / "datasets" / "simulated.py").exists():
            raise ValueError(f"{p} is not a benchmark_bilevel checkout (no datasets/simulated.py); "
                             f"clone {URL} and pass its path.")
        return p
    p = ROOT.parent / "build" / "benchmark_bilevel"
    if not p.exists():
        subprocess.run(["git", "clone", URL, str(p)], check=True)
        subprocess.run(["git", "-C", str(p), "checkout", PIN], check=True)
    return p


def loadavg() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


# -- 1. AID hypergradient vs TorchOpt ------------------------------------------------------

def aid_cases(d: int = 1000, Q: int = 20):
    import torchopt

    p = bl.problems.quadratic.random(d, d, seed=0)
    x = torch.randn(d, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    y = p.y_star(x)
    H, J, b = p.info["H"], p.info["J"], p.info["b"]
    exact = p.grad_phi(x)

    def ours(_=None):
        return bl.hypergrad.implicit(p, x, y, linsys="cg", steps=Q)[0]

    def optimality(yv, xv):                       # grad_y g(x, y) = H y - J x + b
        return H @ yv - J @ xv + b

    @torchopt.diff.implicit.custom_root(optimality, argnums=1,
                                        solve=torchopt.linear_solve.solve_cg(maxiter=Q, rtol=0.0, atol=0.0))
    def inner(y_init, xv):
        return y_init                              # the given inner solution (as ours)

    def torchopt_hg(_=None):
        xl = x.detach().requires_grad_(True)
        ys = inner(y.detach(), xl)
        val = p.f(xl, ys)
        return torch.autograd.grad(val, xl)[0]

    err = {"bilevel": float((ours() - exact).norm() / exact.norm()),
           "torchopt": float((torchopt_hg() - exact).norm() / exact.norm())}
    def ours_graph_once(_=None):                  # section 6's curvature fix, benchmark-only patch
        from .scaling import curvature_with_x
        with curvature_with_x():
            return ours()

    err["bilevel_graph_once_bitwise_equal"] = bool(torch.equal(ours(), ours_graph_once()))
    none = lambda: None                                       # noqa: E731 (no untimed set-up)
    return {"AID hypergradient (d=1000, f64, CG Q=20)": {"bilevel": (none, ours),
                                                         "bilevel_graph_once": (none, ours_graph_once),
                                                         "torchopt": (none, torchopt_hg)}}, err


# -- 2. benchopt's stochastic JAX solvers --------------------------------------------------

def _closure(fn, name):
    f = fn.__wrapped__ if hasattr(fn, "__wrapped__") else fn
    cells = dict(zip(f.__code__.co_freevars, f.__closure__))
    return np.asarray(cells[name].cell_contents)


def benchopt_problem(path: Path):
    sys.path.insert(0, str(path))
    from datasets.simulated import Dataset       # noqa: E402 (the benchmark's module)

    ds = Dataset.__new__(Dataset)                # its default parameters, as benchopt sets them
    for k, v in Dataset.parameters.items():
        setattr(ds, k, v[0])
    data = ds.get_data()
    f_inner, n_in, dim_in, _ = data["pb_inner"]
    f_outer, n_out, dim_out, _ = data["pb_outer"]

    def mats(fn):                                # benchopt: (inner_var, outer_var) = (y, x)
        m = {k: _closure(fn, k) for k in ("hess_inner", "hess_outer", "cross", "linear_inner",
                                          "linear_outer")}
        t = {k: torch.from_numpy(np.array(v, dtype=np.float32)) for k, v in m.items()}
        return dict(A=t["hess_inner"], B=t["hess_outer"], C=t["cross"], a=t["linear_inner"],
                    b=t["linear_outer"])

    y0 = torch.zeros(dim_in, dtype=torch.float32)
    x0 = -2 * torch.ones(dim_out, dtype=torch.float32)   # the objective's start
    prob = bl.problems.finite_sum.quadratic(mats(f_inner), mats(f_outer), x0=x0, y0=y0,
                                            name="benchopt_simulated")
    import jax.numpy as jnp
    return dict(data=data, prob=prob, n=(n_in, n_out), x0=jnp.asarray(x0.numpy()),
                y0=jnp.asarray(y0.numpy()))


def stochastic_cases(path: Path, iters: int, names=tuple(SOLVERS)):
    import jax
    import importlib
    bp = benchopt_problem(path)
    data, prob = bp["data"], bp["prob"]
    metrics = data["metrics"]

    def index_sampler(gen, kind, size):          # uniform with replacement, as before EpochSlices
        n = prob.n_samples[kind]
        return torch.randint(n, (size,), generator=gen)

    prob_idx = dataclasses.replace(prob, sampler=index_sampler)
    cases, values = {}, []
    for name in names:
        mod = SOLVERS[name]
        Solver = importlib.import_module(f"solvers.{mod}").Solver
        params = {k: v[0] for k, v in Solver.parameters.items()}
        sol = Solver.__new__(Solver)
        for k, v in params.items():
            setattr(sol, k, v)
        sol.set_objective(data["pb_inner"][0], data["pb_outer"][0], bp["n"][0], bp["n"][1],
                          bp["y0"], bp["x0"])
        ours_solver = our_solver(name, params, bp["n"])

        def peer_setup(sol=sol):
            return jax.block_until_ready(sol.init())

        def peer_run(start, sol=sol, name=name):
            if name == "SABA":                   # SABA's init and epoch carry (memory, carry)
                memory, carry = start
                out = sol.one_epoch(carry, memory, iters)[1]
            elif name == "VRBO":                 # its epoch takes the first iteration's index
                out = sol.one_epoch(start, iters, 0)
            else:
                out = sol.one_epoch(start, iters)
            return jax.block_until_ready(out)

        def ours_setup(s=ours_solver):
            o = bl.oracles.Oracles(prob, seed=0)
            gen = torch.Generator().manual_seed(0)
            return s, o, gen, s.init(prob, o, gen)

        def ours_run(start):
            s, o, gen, st = start
            for _ in range(iters):
                st, _ = s.step(st, o, gen)
            return st

        peer = (peer_setup, peer_run)
        ours = (ours_setup, ours_run)
        if name == "SOBA":                       # before this change: index-tensor batches
            def idx_setup(s=ours_solver):
                o = bl.oracles.Oracles(prob_idx, seed=0)
                gen = torch.Generator().manual_seed(0)
                return s, o, gen, s.init(prob_idx, o, gen)
            cases[f"{name} ({iters} steps, f32, batch 64)"] = {"bilevel": ours, "benchopt": peer,
                                                           "bilevel_index_batches": (idx_setup, ours_run)}
        else:
            cases[f"{name} ({iters} steps, f32, batch 64)"] = {"bilevel": ours, "benchopt": peer}
        cp, so = peer_run(peer_setup()), ours_run(ours_setup())
        values.append(dict(solver=name, iters=iters,
                           value_benchopt=float(metrics(cp["inner_var"], cp["outer_var"])["value"]),
                           value_bilevel=float(metrics(jax.numpy.asarray(so.y.numpy()),
                                                       jax.numpy.asarray(so.x.numpy()))["value"]),
                           value_start=float(metrics(bp["y0"], bp["x0"])["value"])))

    return cases, pd.DataFrame(values)


# -- timing -----------------------------------------------------------------------------------

def interleaved(cases: dict, rounds: int, per_step: dict) -> pd.DataFrame:
    """Each side is ``(setup, run)``: ``setup()`` untimed, ``run(setup())`` timed."""
    for sides in cases.values():                   # warm-up (jit compilation, allocator)
        for setup, fn in sides.values():
            fn(setup())
    rows = []
    items = [(c, s, fn) for c, sides in cases.items() for s, fn in sides.items()]
    for r in range(rounds):
        order = items if r % 2 == 0 else items[::-1]
        for case, side, (setup, fn) in order:
            start = setup()
            t0 = time.perf_counter()
            fn(start)
            rows.append(dict(case=case, side=side, round=r,
                             ms=1e3 * (time.perf_counter() - t0) / per_step.get(case, 1)))
    return pd.DataFrame(rows)


def summarize(raw: pd.DataFrame) -> pd.DataFrame:
    s = raw.groupby(["case", "side"]).ms.agg(["median", "min", "max"]).reset_index()
    out = []
    for case, grp in s.groupby("case", sort=False):
        ours = grp[grp.side == "bilevel"].iloc[0]
        for _, row in grp.iterrows():
            out.append(dict(case=case, side=row.side, ms_median=row["median"], ms_min=row["min"],
                            ms_max=row["max"], ratio_bilevel_over_side=ours["median"] / row["median"]))
    return pd.DataFrame(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--iters", type=int, default=128)
    ap.add_argument("--only", choices=["aid", "stochastic"], default=None)
    ap.add_argument("--solvers", default=",".join(SOLVERS),
                    help=f"comma-separated subset of {', '.join(SOLVERS)} (stochastic part)")
    ap.add_argument("--tag", default="", help="suffix of the CSV names (e.g. _run3)")
    ap.add_argument("--benchmark-bilevel", default=None)
    ap.add_argument("--out", default=str(ROOT / "results"), help="folder of the CSVs")
    args = ap.parse_args(argv)
    unknown = sorted(set(n for n in args.solvers.split(",") if n) - set(SOLVERS))
    if unknown:
        ap.error(f"unknown solver(s) {unknown}; choose from {', '.join(SOLVERS)}")
    torch.set_num_threads(1)
    load0 = loadavg()
    cases, per_step, extra = {}, {}, {}
    if args.only in (None, "aid"):
        c, err = aid_cases()
        cases.update(c)
        extra["aid_rel_error"] = err
    values = None
    if args.only in (None, "stochastic"):
        c, values = stochastic_cases(benchmark_path(args.benchmark_bilevel), args.iters,
                                      [n for n in args.solvers.split(",") if n])
        cases.update(c)
        per_step.update({k: args.iters for k in c})
    raw = interleaved(cases, args.rounds, per_step)
    table = summarize(raw)
    load1 = loadavg()
    import jax
    import torchopt
    head = (f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.platform()}; "
            f"torch {torch.__version__} ({torch.get_num_threads()} thread), jax {jax.__version__}, "
            f"torchopt {torchopt.__version__}; benchmark_bilevel {PIN}; rounds {args.rounds}; "
            f"load average (1, 5, 15 min) before: {load0}, after: {load1}")
    print(head)
    print(table.to_markdown(index=False, floatfmt=".3f"))
    if values is not None:
        print(values.to_markdown(index=False, floatfmt=".4g"))
    if extra:
        print(extra)
    out = Path(args.out)
    save_table(table.assign(header=head), out / f"peers{args.tag}.csv")
    if values is not None:
        save_table(values, out / f"peers_metric{args.tag}.csv")
    return 0


if __name__ == "__main__":
    sys.exit(main())
