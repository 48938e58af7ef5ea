r"""Paper 000 (SSAID, Zhou, Luo, Dai, Ye 2026): sample complexity measured against :math:`\kappa^7\epsilon^{-2}`.

The paper's claim (setups.md D; only summaries are reachable): single-loop
stochastic AID reaches an :math:`\epsilon`-stationary point,
:math:`\mathbb E\|\nabla\Phi\|^2\le\epsilon`, with :math:`\mathcal O(\kappa^7\epsilon^{-2})`
oracle calls, matching the :math:`\epsilon^{-2}` of the multi-loop stocBiO.

What is measured here (:func:`run_grid`, :func:`hitting`, :func:`bootstrap_exponents`):

* problems with a controlled condition number (:mod:`bilevel.problems.conditioned`):
  a noisy quadratic and a logistic-regression inner problem, ``replicates``
  independent copies per run (one vectorised run);
* the criterion is the theorem's: the running average over iterations of the
  mean over replicates, :math:`A_k = \frac1{|E_k|}\sum_{j\in E_k}\frac1R\sum_r\|\nabla\Phi(x^r_j)\|^2`
  (:math:`E_k`: the evaluated iterations up to k, a uniform grid), relative to
  :math:`\|\nabla\Phi(x_0)\|^2`: the cost to :math:`\epsilon` is the number of
  samples (and oracle calls, Gc + MV) at the first evaluated k with
  :math:`A_k\le\epsilon\|\nabla\Phi(x_0)\|^2`;
* step sizes from theory times ONE tuned constant per method (:func:`ssaid_solver`,
  :func:`stocbio_solver`), minibatch :math:`B = \lceil B_0/\epsilon\rceil` (the
  theory's :math:`\sigma^2/\epsilon` batch) for both methods;
* exponents: least squares of :math:`\log S = a + p\log\kappa + q\log(1/\epsilon)`
  over the grid, 95 % intervals by bootstrap over replicates.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import torch

from ... import _validate as V
from ... import claims as C
from ...notebook import NONEMPTY, ExperimentConfig, param
from ...errors import DivergenceError
from ...problems import conditioned
from ...run import run
from ...solvers import make

__all__ = ["SsaidConfig", "SsaidFiguresConfig", "tune_constants",
           "ssaid_outer_lr", "stocbio_outer_lr", "stocbio_loops", "batch_size", "ssaid_solver",
           "stocbio_solver", "predicted_steps", "run_grid", "tune_constant", "hitting",
           "fit_exponents", "bootstrap_exponents", "local_kappa_exponents", "exponent_claims", "cost_figure",
           "criterion_figure", "PAPER_KAPPA", "PAPER_EPS", "FAMILIES", "LABELS"]

PAPER_KAPPA = 7.0     #: the claimed exponent of kappa
PAPER_EPS = 2.0       #: the claimed exponent of 1/epsilon
FAMILIES = {"quadratic": conditioned.quadratic, "logistic": conditioned.logistic}
LABELS = {"ssaid": "SSAID", "stocbio": "StocBiO"}


def ssaid_outer_lr(kappa: float, c: float) -> float:
    r"""SSAID's outer step :math:`\beta = c\,\eta\mu/(2LC_2)` (paper 001's Lemma 4, the SSAID analysis' deterministic core).

    With :math:`L = 1`, :math:`\mu = 1/\kappa`, :math:`\rho = 0` and
    :math:`\alpha = \eta = 1/L`: :math:`C_0 = \kappa`, :math:`C_1 = 4\kappa^2`,
    :math:`C_2 = 4\kappa^3 + \kappa^2 + \kappa`, so :math:`\beta = c/(2\kappa C_2)\sim c\,\kappa^{-4}/8`.

    >>> round(ssaid_outer_lr(2.0, 1.0), 6)
    0.006579
    """
    k = float(kappa)
    return c / (2 * k * (4 * k ** 3 + k ** 2 + k))


def stocbio_outer_lr(kappa: float, c: float) -> float:
    r"""StocBiO's outer step :math:`\beta = c/(4L_\Phi)`, :math:`L_\Phi = L + 2L^2/\mu + L^3/\mu^2 = (1+\kappa)^2` (Ji et al. 2021 shape)."""
    return c / (4 * (1 + float(kappa)) ** 2)


def stocbio_loops(kappa: float, eps: float) -> tuple[int, int]:
    r"""StocBiO's loop lengths :math:`N = \lceil\kappa\ln 2\kappa\rceil` (inner SGD) and
    :math:`Q = \lceil\kappa\ln(\kappa/\epsilon)\rceil` (Neumann), the :math:`\kappa\log` forms of Ji et al. 2021."""
    k = float(kappa)
    return int(math.ceil(k * math.log(2 * k))), int(math.ceil(k * math.log(k / eps)))


def batch_size(eps: float, b0: float) -> int:
    r"""Minibatch :math:`B = \lceil B_0/\epsilon\rceil` (the theory's :math:`\sigma^2/\epsilon`)."""
    return int(math.ceil(b0 / eps))


def ssaid_solver(kappa, eps, c, b0):
    """SSAID with alpha = eta = 1/L and beta = :func:`ssaid_outer_lr`."""
    return make("ssaid", inner_lr=1.0, linsys_lr=1.0, outer_lr=ssaid_outer_lr(kappa, c),
                batch_size=batch_size(eps, b0))


def stocbio_solver(kappa, eps, c, b0):
    """StocBiO with alpha = eta_N = 1/L, N and Q of :func:`stocbio_loops`, beta = :func:`stocbio_outer_lr`."""
    n, q = stocbio_loops(kappa, eps)
    return make("stocbio", inner_steps=n, inner_lr=1.0, neumann_steps=q, neumann_lr=1.0,
                outer_lr=stocbio_outer_lr(kappa, c), batch_size=batch_size(eps, b0))


_SOLVERS = {"ssaid": ssaid_solver, "stocbio": stocbio_solver}


def predicted_steps(method, kappa, eps, c, safety: float) -> int:
    r"""Run length :math:`K = \lceil\text{safety}\cdot\tfrac12/(\beta\epsilon)\rceil`: the descent-lemma
    count :math:`(\Phi_0-\Phi^*)/(\beta\epsilon)` with the quadratic's normalised gap 1/2."""
    beta = ssaid_outer_lr(kappa, c) if method == "ssaid" else stocbio_outer_lr(kappa, c)
    return int(math.ceil(safety * 0.5 / (beta * eps)))


def _one_run(method, family, kappa, eps, c, b0, replicates, seed, steps, eval_points, **problem_kw):
    prob = FAMILIES[family](kappa, replicates=replicates, **problem_kw)
    solver = _SOLVERS[method](kappa, eps, c, b0)
    every = max(1, steps // eval_points)
    tr = run(solver, prob, steps=steps, eval_every=every, seed=seed)
    tr = tr[tr.k < steps]
    out = pd.DataFrame({
        "method": method, "problem": family, "kappa": float(kappa), "eps": float(eps),
        "replicate": tr.block.astype(int).to_numpy(), "k": tr.k.to_numpy(),
        "samples": tr.samples.to_numpy(), "oracle_calls": (tr.grad_calls + tr.mv_calls).to_numpy(),
        "grad_norm_sq": tr.grad_norm_sq.to_numpy() * replicates / prob.info["grad_norm_sq0"]})
    meta = {"method": method, "problem": family, "kappa": float(kappa), "eps": float(eps), "c": c,
            "steps": steps, "eval_every": every, "batch_size": solver.batch_size,
            "outer_lr": float(solver.outer_lr), "seed": seed, "time_s": float(tr.time_s.max()),
            "grad_norm_sq0": prob.info["grad_norm_sq0"] / replicates}
    if method == "stocbio":
        meta.update(inner_steps=solver.inner_steps, neumann_steps=solver.neumann_steps)
    return out, meta


@dataclasses.dataclass(frozen=True)
class SsaidConfig(ExperimentConfig):
    """The values of :func:`tune_constants` and :func:`run_grid` (params section ``paper000_ssaid_runs``):
    the grid (``methods`` x ``families`` x ``kappas`` x ``eps_list``, ``replicates`` copies each), the
    minibatch rule ``b0``, the run length (``safety``, ``min_steps``, ``max_steps``), and the pilot runs that
    tune each method's constant (``ssaid_grid``, ``stocbio_grid`` at ``tune_kappa``, ``tune_eps``)."""

    methods: list = param(V.Constraint("methods", "a non-empty list of 'ssaid', 'stocbio'", "pass e.g. ['ssaid']",
                                       lambda v: [V.one_of(("ssaid", "stocbio")).test(m) for m in NONEMPTY.test(v)]))
    families: list = param(NONEMPTY)
    kappas: list = param(NONEMPTY)
    eps_list: list = param(NONEMPTY)
    replicates: int = param(V.INT1)
    b0: float = param(V.POSITIVE)
    safety: float = param(V.POSITIVE)
    min_steps: int = param(V.INT1)
    max_steps: int = param(V.INT1)
    eval_points: int = param(V.INT1)
    ssaid_grid: list = param(NONEMPTY, "c")
    stocbio_grid: list = param(NONEMPTY, "c")
    tune_kappa: float = param(V.POSITIVE)
    tune_eps: float = param(V.POSITIVE)
    tune_steps: int = param(V.INT1)
    tune_replicates: int = param(V.INT1)
    seed: int = param(V.INT0)


@dataclasses.dataclass(frozen=True)
class SsaidFiguresConfig(ExperimentConfig):
    """The values of the figures notebook (params section ``paper000_ssaid_figures``): ``n_boot``
    bootstrap draws of :func:`bootstrap_exponents`; ``eps_tol`` and ``kappa_tol``, the half-widths of
    :func:`exponent_claims`' bands around the paper's eps and kappa exponents."""

    n_boot: int = param(V.INT1)
    eps_tol: float = param(V.NONNEG)
    kappa_tol: float = param(V.NONNEG)


def tune_constants(cfg: SsaidConfig) -> tuple[dict, pd.DataFrame]:
    """:func:`tune_constant` for each method of ``cfg`` over its grid; returns ``(constants, tuning)``:
    the chosen constant per method and one row per candidate (``chosen`` marks the choice)."""
    grids = {"ssaid": cfg.ssaid_grid, "stocbio": cfg.stocbio_grid}
    constants, tuning = {}, []
    for m in cfg.methods:
        best, table = tune_constant(m, grids[m], kappa=cfg.tune_kappa, eps=cfg.tune_eps, b0=cfg.b0,
                                    replicates=cfg.tune_replicates, max_steps=cfg.tune_steps)
        constants[m] = best
        tuning.append(table.assign(chosen=table.c == best))
    return constants, pd.concat(tuning, ignore_index=True)


def run_grid(cfg: SsaidConfig, constants: dict, *, progress: bool = False):
    r"""One vectorised run of ``cfg.replicates`` copies per (method, family, kappa, eps) of ``cfg``.

    ``constants``: the tuned constant per method (:func:`tune_constants`). The run length is
    :func:`predicted_steps` clipped to ``[min_steps, max_steps]``; ``eval_points`` evaluations of
    :math:`\|\nabla\Phi(x_k)\|^2` per run (the criterion's grid). Returns
    ``(curves, runs)``: ``curves`` one row per (run, replicate, evaluated k) with
    ``grad_norm_sq`` relative to :math:`\|\nabla\Phi(x_0)\|^2`, cumulative
    per-replicate ``samples`` and ``oracle_calls``; ``runs`` one row per run.
    """
    methods, families, kappas, eps_list = cfg.methods, cfg.families, cfg.kappas, cfg.eps_list
    b0, replicates, seed, safety, min_steps = cfg.b0, cfg.replicates, cfg.seed, cfg.safety, cfg.min_steps
    max_steps, eval_points = cfg.max_steps, cfg.eval_points
    curves, runs = [], []
    items = [(m, fam, k, e) for m in methods for fam in families for k in kappas for e in eps_list]
    if progress:
        from tqdm.auto import tqdm
        items = tqdm(items, desc="paper000 grid")
    for i, (m, fam, k, e) in enumerate(items):
        steps = min(max_steps, max(min_steps, predicted_steps(m, k, e, constants[m], safety)))
        cur, meta = _one_run(m, fam, k, e, constants[m], b0, replicates, seed + 1000 * i, steps, eval_points)
        meta["capped"] = steps == max_steps
        curves.append(cur)
        runs.append(meta)
    return pd.concat(curves, ignore_index=True), pd.DataFrame(runs)


def tune_constant(method, grid, kappa: float, eps: float, b0: float = 4.0, replicates: int = 3,
                  max_steps: int = 3000, eval_points: int = 60, seed: int = 12345, family="quadratic"):
    r"""Pilot runs of ``method`` at one (kappa, eps) for each constant in ``grid``.

    Every candidate runs ``max_steps`` steps. Returns ``(best, table)``: the
    constant with the fewest samples to :math:`\epsilon` (runs that diverge or do
    not reach it within ``max_steps`` are excluded) and one row per candidate.
    """
    rows = []
    for c in grid:
        steps = max_steps
        try:
            cur, _ = _one_run(method, family, kappa, eps, float(c), b0, replicates, seed, steps, eval_points)
            h = hitting(cur)
            s, diverged = float(h.samples_to_eps.iloc[0]), False
        except DivergenceError:          # a diverging candidate is recorded, not raised
            s, diverged = float("nan"), True
        rows.append({"method": method, "c": float(c), "kappa": kappa, "eps": eps, "steps": steps,
                     "samples_to_eps": s, "diverged": diverged})
    table = pd.DataFrame(rows)
    ok = table.dropna(subset=["samples_to_eps"])
    if ok.empty:
        raise ValueError(f"{method}: no constant in {list(grid)} reached eps={eps} at kappa={kappa}; "
                         "widen the grid or raise max_steps.")
    best = float(ok.sort_values(["samples_to_eps", "c"]).c.iloc[0])
    return best, table


def _criterion(g: np.ndarray) -> np.ndarray:
    """Running average over evaluated k of the replicate mean; ``g`` is (replicates, points)."""
    m = g.mean(0)
    return np.cumsum(m) / np.arange(1, m.size + 1)


def _cells(curves):
    keys = ["method", "problem", "kappa", "eps"]
    for key, d in curves.groupby(keys, sort=True):
        piv = d.pivot(index="replicate", columns="k", values="grad_norm_sq")
        first = d[d.replicate == d.replicate.min()].sort_values("k")
        yield dict(zip(keys, key)), piv.to_numpy(), first.samples.to_numpy(), first.oracle_calls.to_numpy()


def _hit(g, samples, calls, eps):
    crit = _criterion(g)
    idx = np.flatnonzero(crit <= eps)
    if idx.size == 0:
        return float("nan"), float("nan"), float(crit[-1])
    j = int(idx[0])
    return float(samples[j]), float(calls[j]), float(crit[j])


def hitting(curves: pd.DataFrame) -> pd.DataFrame:
    """Samples and oracle calls to reach the criterion, one row per (method, problem, kappa, eps).

    ``samples_to_eps`` is NaN where the run ended before the criterion reached eps
    (``criterion_end`` then gives the last value).
    """
    rows = []
    for key, g, s, c in _cells(curves):
        smp, calls, crit = _hit(g, s, c, key["eps"])
        rows.append({**key, "samples_to_eps": smp, "oracle_calls_to_eps": calls, "criterion_end": crit,
                     "reached": bool(np.isfinite(smp)), "replicates": g.shape[0]})
    return pd.DataFrame(rows)


def fit_exponents(kappa, eps, cost) -> tuple[float, float, float]:
    r"""``(p, q, a)`` of :math:`\log S = a + p\log\kappa + q\log(1/\epsilon)` by least squares (finite S only).

    >>> k, e = np.meshgrid([2.0, 4.0, 8.0], [0.1, 0.01])
    >>> p, q, a = fit_exponents(k.ravel(), e.ravel(), 3 * k.ravel() ** 7 / e.ravel() ** 2)
    >>> round(p, 6), round(q, 6)
    (7.0, 2.0)
    """
    kappa, eps, cost = (np.asarray(v, float) for v in (kappa, eps, cost))
    ok = np.isfinite(cost) & (cost > 0)
    if ok.sum() < 3 or np.unique(kappa[ok]).size < 2 or np.unique(eps[ok]).size < 2:
        return float("nan"), float("nan"), float("nan")
    X = np.column_stack([np.ones(ok.sum()), np.log(kappa[ok]), np.log(1 / eps[ok])])
    coef, *_ = np.linalg.lstsq(X, np.log(cost[ok]), rcond=None)
    return float(coef[1]), float(coef[2]), float(coef[0])


def bootstrap_exponents(curves: pd.DataFrame, n_boot: int = 300, seed: int = 0,
                        cost: str = "samples") -> pd.DataFrame:
    """Exponent fits per (method, problem): point estimate and a 95 % percentile bootstrap interval.

    Each draw resamples the replicates of every (kappa, eps) run with replacement
    and recomputes the hitting costs and the fit. ``cost``: ``"samples"`` or ``"oracle_calls"``.
    """
    rng = np.random.default_rng(seed)
    col = 0 if cost == "samples" else 1
    out = []
    cells = list(_cells(curves))
    for (m, prob) in sorted({(k["method"], k["problem"]) for k, *_ in cells}):
        sub = [c for c in cells if c[0]["method"] == m and c[0]["problem"] == prob]
        kap = np.array([c[0]["kappa"] for c in sub])
        eps = np.array([c[0]["eps"] for c in sub])
        full = np.array([_hit(g, s, ca, c["eps"])[col] for c, g, s, ca in sub])
        p, q, a = fit_exponents(kap, eps, full)
        draws = []
        for _ in range(n_boot):
            vals = []
            for c, g, s, ca in sub:
                idx = rng.integers(0, g.shape[0], g.shape[0])
                vals.append(_hit(g[idx], s, ca, c["eps"])[col])
            draws.append(fit_exponents(kap, eps, np.array(vals))[:2])
        d = np.array(draws)
        good = np.isfinite(d).all(1)
        lo = np.percentile(d[good], 2.5, axis=0) if good.any() else [np.nan, np.nan]
        hi = np.percentile(d[good], 97.5, axis=0) if good.any() else [np.nan, np.nan]
        out.append({"method": m, "problem": prob, "cost": cost, "kappa_exp": p, "kappa_lo": lo[0],
                    "kappa_hi": hi[0], "eps_exp": q, "eps_lo": lo[1], "eps_hi": hi[1], "log_const": a,
                    "cells": len(sub), "cells_reached": int(np.isfinite(full).sum()),
                    "boot_ok": int(good.sum()), "n_boot": n_boot})
    return pd.DataFrame(out)


_EPS_REASON = ("the theory's rule (batch B ~ 1/eps, K ~ 1/(beta eps) steps) gives eps^-2; an interval off 2 comes "
               "from few eps values, the min_steps floor at large eps or the criterion's evaluation grid")
_EPS_REASON_STOCBIO = ("StocBiO's Neumann length Q = ceil(kappa ln(kappa/eps)) adds a log(1/eps) factor per step (the "
                       "theory's O~(eps^-2)); over eps in [0.05, 0.2] it alone adds about +0.15 to the fitted exponent")
_KAPPA_REASON = ("O(kappa^7) is an upper bound over a problem class, not the cost on a given family. Here beta ~ "
                 "kappa^-4 (Lemma-4 shape) predicts kappa^4 steps once beta is below the noise-limited step: the "
                 "local exponent between the two largest kappa is close to 4 (printed), while at small kappa the "
                 "tuned step is large and the cost nearly flat, so one power law over the grid is shallower")


def local_kappa_exponents(hits: pd.DataFrame, cost: str = "samples_to_eps") -> pd.DataFrame:
    """Slope of log cost vs log kappa between the two largest kappas, per (method, problem, eps)."""
    rows = []
    for (m, prob, e), d in hits.groupby(["method", "problem", "eps"]):
        d = d.sort_values("kappa").tail(2)
        if len(d) < 2:
            continue
        k0, k1 = d.kappa.to_numpy()
        c0, c1 = d[cost].to_numpy()
        rows.append({"method": m, "problem": prob, "eps": e, "kappa_from": k0, "kappa_to": k1,
                     "local_kappa_exp": float(np.log(c1 / c0) / np.log(k1 / k0))})
    return pd.DataFrame(rows)


def _fit_row(fits, method, problem, cost="samples"):
    r = fits[(fits.method == method) & (fits.problem == problem) & (fits.cost == cost)]
    return None if r.empty else r.iloc[0]


def exponent_claims(fits: pd.DataFrame, hits: pd.DataFrame, eps_tol: float = 0.3,
                    kappa_tol: float = 1.0) -> list:
    """The claims table of paper 000 on measured exponents (see the figures notebook)."""
    cs = []
    reached = hits.reached.to_numpy()
    labels = [f"{r.method}/{r.problem}/kappa={r.kappa:g}/eps={r.eps:g}" for r in hits.itertuples()]
    cs.append(C.all_true("all_cells_reached", "every (method, problem, kappa, eps) run reaches the "
                         "criterion within its run length", reached, labels,
                         reason="" if reached.all() else "unreached cells are left out of the fits"))
    for prob in sorted(fits.problem.unique()):
        s = _fit_row(fits, "ssaid", prob)
        b = _fit_row(fits, "stocbio", prob)
        for name, r in (("ssaid", s), ("stocbio", b)):
            if r is None:
                continue
            if not (np.isfinite(r.eps_lo) and np.isfinite(r.kappa_lo)):
                cs.append(C.Claim(f"{name}_{prob}_exponents", "exponents fitted", "too few reached cells",
                                  None, reason="fewer than two kappas or two eps reached the criterion"))
                continue
            cs.append(C.interval_within(
                f"{name}_{prob}_eps_exponent",
                f"{LABELS[name]} on the {prob} family: samples grow as eps^-2",
                r.eps_exp, (r.eps_lo, r.eps_hi), PAPER_EPS - eps_tol, PAPER_EPS + eps_tol, paper="2",
                reason=(_EPS_REASON_STOCBIO if name == "stocbio" else _EPS_REASON)))
            if name == "ssaid":
                cs.append(C.interval_within(
                    f"ssaid_{prob}_kappa_exponent",
                    f"SSAID on the {prob} family: samples grow as kappa^7",
                    r.kappa_exp, (r.kappa_lo, r.kappa_hi), PAPER_KAPPA - kappa_tol, PAPER_KAPPA + kappa_tol,
                    paper="7",
                    reason="O(kappa^7) is an upper bound over the problem class; on a given family the "
                           "cost follows the step-size schedule (beta ~ kappa^-4 here) and the family's "
                           "own conditioning"))
                cs.append(C.Claim(
                    f"ssaid_{prob}_kappa_at_most_7",
                    f"SSAID on the {prob} family: the kappa exponent is not shown to exceed the bound's 7",
                    f"{r.kappa_exp:.3g} [{r.kappa_lo:.3g}, {r.kappa_hi:.3g}]", bool(r.kappa_lo <= PAPER_KAPPA),
                    "<= 7", "interval's lower end <= 7 (one-sided: the bound is an upper bound)"))
        if s is not None and b is not None and np.isfinite(s.eps_exp) and np.isfinite(b.eps_exp):
            gap = abs(s.eps_exp - b.eps_exp)
            cs.append(C.within(f"ssaid_matches_stocbio_eps_{prob}",
                               f"single-loop SSAID matches multi-loop StocBiO's eps-dependence ({prob}): "
                               "|q_SSAID - q_StocBiO|", gap, 0.0, eps_tol, paper="same eps^-2"))
    return cs


# -- figures -----------------------------------------------------------------------------

def cost_figure(hits: pd.DataFrame, fits: pd.DataFrame, profile: str, deviations: str, cost="samples"):
    """Samples to eps vs 1/eps (one line per kappa) and vs kappa (one line per eps), per problem family,
    SSAID solid, StocBiO dashed; fitted exponents in the titles."""
    import matplotlib.pyplot as plt

    from ...plots import footer, setup
    setup()
    probs = sorted(hits.problem.unique())
    fig, axes = plt.subplots(len(probs), 2, figsize=(9, 3.4 * len(probs)), squeeze=False)
    col = "samples_to_eps" if cost == "samples" else "oracle_calls_to_eps"
    kap = sorted(hits.kappa.unique())
    eps = sorted(hits.eps.unique())
    cmap = plt.get_cmap("viridis")
    for i, prob in enumerate(probs):
        a, b = axes[i]
        for m, ls, mk in (("ssaid", "-", "o"), ("stocbio", "--", "s")):
            h = hits[(hits.problem == prob) & (hits.method == m)]
            if h.empty:
                continue
            for j, k in enumerate(kap):
                d = h[h.kappa == k].sort_values("eps")
                a.plot(1 / d.eps, d[col], ls=ls, marker=mk, ms=3, color=cmap(j / max(1, len(kap) - 1)),
                       label=f"{LABELS[m]} κ={k:g}")
            for j, e in enumerate(eps):
                d = h[h.eps == e].sort_values("kappa")
                b.plot(d.kappa, d[col], ls=ls, marker=mk, ms=3, color=cmap(j / max(1, len(eps) - 1)),
                       label=f"{LABELS[m]} ε={e:g}")
        t = []
        for m in ("ssaid", "stocbio"):
            r = _fit_row(fits, m, prob, cost)
            if r is not None and np.isfinite(r.eps_exp):
                t.append(f"{LABELS[m]}: ε^-{r.eps_exp:.2f} [{r.eps_lo:.2f},{r.eps_hi:.2f}], "
                         f"κ^{r.kappa_exp:.2f} [{r.kappa_lo:.2f},{r.kappa_hi:.2f}]")
        a.set(xscale="log", yscale="log", xlabel="1/ε (relative)", ylabel=f"{cost} to ε",
              title=f"{prob}: cost vs 1/ε (claim ε^-2)")
        b.set(xscale="log", yscale="log", xlabel="κ", title=f"{prob}: cost vs κ (claim κ^7)")
        for ax in (a, b):
            ax.legend(fontsize=5, ncol=2, frameon=False)
        a.text(0.0, -0.28, "\n".join(t), transform=a.transAxes, fontsize=6, va="top")
    fig.tight_layout()
    footer(fig, profile, deviations)
    return fig


def criterion_figure(curves: pd.DataFrame, runs: pd.DataFrame, problem: str, eps: float, profile: str,
                     deviations: str):
    """The criterion (running average of the replicate mean of ||grad Phi||^2) vs samples, per kappa,
    SSAID and StocBiO, at one eps; the horizontal line is eps."""
    import matplotlib.pyplot as plt

    from ...plots import footer, setup
    setup()
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    cmap = plt.get_cmap("viridis")
    kap = sorted(curves.kappa.unique())
    for m, ls in (("ssaid", "-"), ("stocbio", "--")):
        for j, k in enumerate(kap):
            d = curves[(curves.method == m) & (curves.problem == problem) & (curves.kappa == k)
                       & (curves.eps == eps)]
            if d.empty:
                continue
            piv = d.pivot(index="replicate", columns="k", values="grad_norm_sq").to_numpy()
            s = d[d.replicate == d.replicate.min()].sort_values("k").samples.to_numpy()
            ax.plot(np.maximum(s, 1), _criterion(piv), ls=ls, color=cmap(j / max(1, len(kap) - 1)),
                    label=f"{LABELS[m]} κ={k:g}")
    ax.axhline(eps, color="#444444", lw=0.8, ls=":")
    ax.set(xscale="log", yscale="log", xlabel="samples per replicate",
           ylabel=r"running avg of mean$_r\|\nabla\Phi(x_k)\|^2/\|\nabla\Phi(x_0)\|^2$",
           title=f"{problem}, ε = {eps:g}")
    ax.legend(fontsize=5, ncol=2, frameon=False)
    fig.tight_layout()
    footer(fig, profile, deviations)
    return fig
