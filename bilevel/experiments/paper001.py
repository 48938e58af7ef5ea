r"""Paper 001 (sharper analysis of single-loop AID/ITD): experiment drivers.

Figures 1-2: single-loop AID (paper 001, Algorithm 1) and ITD (Algorithm 2) on
the synthetic quadratic of :func:`bilevel.problems.quadratic.paper001` with
:math:`\mu = M = \rho = 0.1`, :math:`\alpha = \eta = 1/L`, and the theorems'
outer steps :math:`\beta` from :mod:`bilevel.bounds` (AID: Lemma 4's step
times the documented factor 1/3 that makes Theorem 1's bound well defined;
ITD: Lemma 7's :math:`\beta = \mu^3 / (2L(2L^2+\rho M))`).

All kappas run in one vectorised batch (:func:`~bilevel.problems.quadratic.paper001_grid`
with per-coordinate step sizes), which performs exactly the per-kappa updates.

Figure 3 and Appendix C: :func:`feature_learning_sweep` (single-loop ITD on
feature learning, Fig. 3 left) with :func:`exponent_fit`; :func:`reweighting_runs`
(MNIST data re-weighting, Fig. 3 right, with N-step ITD and AID for contrast);
:func:`f2sa_quadratic` (F²SA, Algorithm 3, next to AID/ITD on the quadratic and on
a variant with curvature of f in y, where the penalty has its 1/lambda bias).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .. import bounds
from ..problems import per_coordinate
from ..problems.quadratic import paper001_grid
from ..run import run
from ..solvers import AID, ITD

__all__ = ["quadratic_sweep", "log_spaced", "quadratic_bounds", "exponent_fit", "feature_learning_sweep",
           "reweighting_runs", "f2sa_quadratic", "quadratic001_f_curved", "penalty_gap_table"]


def log_spaced(K: int, n: int = 200) -> np.ndarray:
    """About ``n`` log-spaced iteration indices in ``[0, K]`` (always 0 and K)."""
    ks = np.unique(np.concatenate([[0, K], np.round(np.logspace(0, np.log10(max(K, 1)), n))]))
    return ks[(ks >= 0) & (ks <= K)].astype(int)


def quadratic_sweep(kappas, K: int, aid_beta_scale: float = bounds.AID_BETA_SCALE,
                    curve_points: int = 200, progress: bool = False, dtype=None, device="cpu"):
    r"""Run single-loop AID and ITD over ``kappas`` for ``K`` outer steps.

    Returns ``(summary, curves)``:

    * ``summary``: one row per (method, kappa) with the step sizes, the final
      :math:`\|\nabla\Phi(x_K)\|^2` (``final_grad_norm_sq``), the average
      :math:`\frac1K\sum_{k<K}\|\nabla\Phi(x_k)\|^2` (``avg_grad_norm_sq``, what
      the theorems bound), the final hypergradient and inner errors, the oracle
      totals and the batch's wall time;
    * ``curves``: :math:`\|\nabla\Phi(x_k)\|^2` and the running average at about
      ``curve_points`` log-spaced ``k`` per (method, kappa).
    """
    import torch
    dtype = dtype or torch.float64
    kappas = [float(k) for k in kappas]
    c = bounds.ProblemConstants.from_kappa(np.asarray(kappas))
    L = np.asarray(c.L, dtype=float)
    alpha = 1.0 / L
    betas = {"AID": np.asarray(bounds.aid_beta_001(c, scale=aid_beta_scale), dtype=float),
             "ITD": np.asarray(bounds.itd_beta_001(c), dtype=float)}
    prob = paper001_grid(kappas, dtype=dtype, device=device)
    a = per_coordinate(prob, alpha, "y")
    solvers = {
        "AID": AID(inner_steps=1, inner_lr=a, linsys="gd", linsys_steps=1, linsys_lr=a,
                   outer_lr=per_coordinate(prob, betas["AID"], "x"), warm_start=True),
        "ITD": ITD(inner_steps=1, inner_lr=a, outer_lr=per_coordinate(prob, betas["ITD"], "x"),
                   mode="reverse", warm_start=True),
    }
    keep = set(log_spaced(K, curve_points).tolist())
    summaries, curves = [], []
    for method, solver in solvers.items():
        tr = run(solver, prob, steps=K, eval_every=1, progress=progress,
                 desc=f"paper001 quadratic {method}")
        tr = tr.rename(columns={"block": "kappa"})
        tr["method"] = method
        for i, kappa in enumerate(kappas):
            t = tr[tr.kappa == kappa].sort_values("k")
            gn = t.grad_norm_sq.to_numpy()
            running = np.cumsum(gn) / np.arange(1, len(gn) + 1)  # (1/(k+1)) sum_{j<=k}
            last = t.iloc[-1]
            summaries.append({
                "method": method, "kappa": kappa, "K": K, "L": L[i], "mu": 0.1, "M": 0.1, "rho": 0.1,
                "alpha": alpha[i], "eta": alpha[i] if method == "AID" else np.nan,
                "beta": betas[method][i],
                "aid_beta_scale": aid_beta_scale if method == "AID" else np.nan,
                "final_grad_norm_sq": last.grad_norm_sq,
                "avg_grad_norm_sq": float(gn[:-1].mean()),       # k = 0..K-1
                "final_hypergrad_err_sq": t.iloc[-2].hypergrad_err_sq,
                "final_inner_err_sq": last.inner_err_sq,
                "grad_calls": int(last.grad_calls), "mv_calls": int(last.mv_calls),
                "batch_time_s": float(last.time_s),
            })
            sel = t.k.isin(keep).to_numpy()
            curves.append(pd.DataFrame({
                "method": method, "kappa": kappa, "k": t.k.to_numpy()[sel],
                "grad_norm_sq": gn[sel], "running_avg_grad_norm_sq": running[sel],
                "grad_calls": t.grad_calls.to_numpy()[sel], "mv_calls": t.mv_calls.to_numpy()[sel],
            }))
    return pd.DataFrame(summaries), pd.concat(curves, ignore_index=True)


BOUND_LABELS = {
    "aid_ours": "paper 001 AID bound (Thm 1, beta x 1/3)",
    "aid_ji": "Ji et al. AID bound (Thm 1/Cor 2, Theta=1)",
    "itd_ours": "paper 001 ITD bound (Thm 3)",
    "itd_ji": "Ji et al. ITD bound (Thm 3/Cor 6, Theta=1)",
    "itd_ji_floor": "Ji et al. ITD bound, K-independent term",
    "itd_lower": "lower bound (Ji et al. Thm 4)",
}


def quadratic_bounds(kappas, K, aid_beta_scale: float = bounds.AID_BETA_SCALE) -> pd.DataFrame:
    r"""Theory curves for the quadratic, tidy: one row per (curve, kappa, K).

    ``K`` may be a scalar or an array (a curve over K). Initial terms use the
    runs' initialisation :math:`x_0 = y_0 = v_0 = 0`. The bounds hold for the
    average :math:`\frac1K\sum_{k<K}\|\nabla\Phi(x_k)\|^2`; the lower bound is on
    :math:`\|\nabla\Phi(x_K)\|^2`.
    """
    rows = []
    Ks = np.atleast_1d(np.asarray(K))
    for kappa in [float(k) for k in kappas]:
        c = bounds.ProblemConstants.from_kappa(kappa)
        alpha = eta = 1.0 / c.L
        init = bounds.quadratic_001_initial_terms(kappa, alpha=alpha, eta=eta)
        delta_y, y0s = bounds.quadratic_001_ji_initial_terms(kappa)
        b_aid = bounds.aid_beta_001(c, alpha, eta, scale=aid_beta_scale)
        b_itd = bounds.itd_beta_001(c, alpha)
        vals = {
            "aid_ours": bounds.aid_bound_001(c, Ks, alpha, eta, b_aid, init.delta_phi, init.e0),
            "aid_ji": bounds.ji_aid_bound(c, Ks, 1, 1, init.delta_phi, y0s),
            "itd_ours": bounds.itd_bound_001(c, Ks, alpha, b_itd, init.delta_phi, init.dy0),
            "itd_ji": bounds.ji_itd_bound(c, Ks, 1, alpha, init.delta_phi, delta_y),
            "itd_ji_floor": bounds.ji_itd_bound_terms(c, Ks, 1, alpha, init.delta_phi, delta_y)["floor"],
            "itd_lower": np.full(Ks.shape, float(bounds.ji_itd_lower_bound(c, 1, alpha))),
        }
        for curve, v in vals.items():
            v = np.broadcast_to(np.asarray(v, dtype=float), Ks.shape)
            rows.append(pd.DataFrame({"curve": curve, "label": BOUND_LABELS[curve],
                                      "kappa": kappa, "K": Ks, "value": v}))
    return pd.concat(rows, ignore_index=True)


# =====================================================================================
# Figure 3 and Appendix C: feature learning, data re-weighting, F2SA
# =====================================================================================

def _t_quantile(p: float, df: int) -> float:
    """Quantile of Student's t (numerical integration of the density; no scipy needed)."""
    if df < 1:
        return float("nan")
    logc = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)

    def cdf(t):
        grid = np.linspace(0.0, t, 4001)
        dens = np.exp(logc - (df + 1) / 2 * np.log1p(grid ** 2 / df))
        return 0.5 + float(np.sum((dens[1:] + dens[:-1]) * np.diff(grid)) / 2)

    lo, hi = 0.0, 1.0
    while cdf(hi) < p:
        hi *= 2
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if cdf(mid) < p else (lo, mid)
    return 0.5 * (lo + hi)


def exponent_fit(summary: pd.DataFrame, value: str = "avg_grad_norm_sq", kappa: str = "kappa0",
                 by: str = "seed", level: float = 0.95) -> pd.DataFrame:
    r"""Log-log exponent of ``value`` against ``kappa``, with a confidence interval over ``by``.

    One least-squares slope of :math:`\log` ``value`` on :math:`\log\kappa` per
    seed; the estimate is their mean and the interval the Student-t interval
    over seeds (``level``). A pooled fit over all points (one row, ``by = "pooled"``)
    is added with its standard-error interval. Returns a tidy table with
    ``fit``, ``slope``, ``ci_low``, ``ci_high``, ``n``.

    >>> s = pd.DataFrame({"seed": [0, 0, 1, 1], "kappa0": [1.0, 10.0] * 2, "v": [1.0, 100.0, 2.0, 200.0]})
    >>> exponent_fit(s, value="v").slope.round(6).tolist()
    [2.0, 2.0, 2.0, 2.0]
    """
    rows = []
    slopes = []
    for key, d in summary.groupby(by):
        lk, lv = np.log(d[kappa].to_numpy(float)), np.log(d[value].to_numpy(float))
        slope, intercept = np.polyfit(lk, lv, 1)
        slopes.append(slope)
        rows.append({"fit": f"{by}={key}", "slope": slope, "intercept": intercept, "ci_low": np.nan,
                     "ci_high": np.nan, "n": len(d)})
    slopes = np.asarray(slopes)
    m = len(slopes)
    mean = float(slopes.mean())
    half = _t_quantile(0.5 + level / 2, m - 1) * float(slopes.std(ddof=1)) / math.sqrt(m) if m > 1 else np.nan
    rows.append({"fit": f"mean over {by}", "slope": mean, "intercept": np.nan, "ci_low": mean - half,
                 "ci_high": mean + half, "n": m})
    lk, lv = np.log(summary[kappa].to_numpy(float)), np.log(summary[value].to_numpy(float))
    (slope, intercept), cov = np.polyfit(lk, lv, 1, cov=True) if len(lk) > 3 else (np.polyfit(lk, lv, 1), None)
    half = (_t_quantile(0.5 + level / 2, len(lk) - 2) * math.sqrt(cov[0, 0])) if cov is not None else np.nan
    rows.append({"fit": "pooled", "slope": float(slope), "intercept": float(intercept),
                 "ci_low": float(slope) - half, "ci_high": float(slope) + half, "n": len(lk)})
    out = pd.DataFrame(rows)
    out["value"], out["kappa"], out["level"] = value, kappa, level
    return out


def feature_learning_sweep(kappas, seeds, K: int, n_train: int = 500, n_val: int = 500, width: int = 128,
                           ridge: float = 1.0, kappa_control: str = "uniform", inner_lr_scale: float = 0.5,
                           outer_lr_scale: float = 0.02, head_init: str = "ridge", curve_points: int = 200,
                           source="auto", progress: bool = False):
    r"""Single-loop ITD on feature learning over a grid of kappas and seeds (paper 001, Fig. 3 left).

    One block per (seed, kappa) of :func:`bilevel.problems.feature_learning.grid`
    (``seed`` draws the train/validation split and the initial point), all run
    in one vectorised batch. Steps per block: :math:`\alpha = ` ``inner_lr_scale``
    :math:`/L(x_0)` (:math:`L(x_0) = \kappa\mu`; 1/2 leaves room for :math:`\kappa(x)`
    to grow along the run, Ji et al.'s :math:`\alpha\le 1/(2L)`) and
    :math:`\beta = ` ``outer_lr_scale`` :math:`/L_\Phi(x_0)` (power iteration on the exact
    Hessian of :math:`\Phi`). ``head_init="ridge"`` starts the head at
    :math:`y_0 = y^*(x_0)` (paper 001 does not state its initialisation; a random head
    makes the first ITD estimates, and steps of size :math:`\beta`, far too large).

    Returns ``(summary, curves)``: one row per (seed, kappa) with the exact
    :math:`\frac1K\sum_{k<K}\|\nabla\Phi(x_k)\|^2` (``avg_grad_norm_sq``), the final
    and initial values, ITD's final hypergradient error, :math:`\kappa(x_0)`,
    :math:`\kappa(x_K)` and :math:`\max_k\kappa(x_k)`, steps, oracle totals and the
    batch's wall time; and the curves at about ``curve_points`` log-spaced ``k``.
    """
    from ..problems import feature_learning as FL
    kappas = [float(k) for k in kappas]
    seeds = [int(s) for s in seeds]
    splits = {s: FL.space_ga_split(n_train, n_val, seed=s, source=source) for s in seeds}
    pairs = [(s, k) for s in seeds for k in kappas]
    prob = FL.grid([splits[s] for s, _ in pairs], [k for _, k in pairs], width=width, ridge=ridge,
                   init_seeds=[s for s, _ in pairs], labels=list(range(len(pairs))),
                   kappa_control=kappa_control, head_init=head_init)
    L0 = np.array([b["L0"] for b in prob.info["blocks"]])
    Lphi = FL.phi_smoothness(prob).cpu().numpy()
    alpha, beta = inner_lr_scale / L0, outer_lr_scale / Lphi
    solver = ITD(inner_steps=1, inner_lr=per_coordinate(prob, alpha, "y"),
                 outer_lr=per_coordinate(prob, beta, "x"), mode="reverse", warm_start=True)
    tr = run(solver, prob, steps=K, eval_every=1, progress=progress, desc="paper001 feature learning ITD")
    keep = set(log_spaced(K, curve_points).tolist())
    summaries, curves = [], []
    for b, (seed, kappa) in enumerate(pairs):
        t = tr[tr.block == b].sort_values("k")
        gn = t.grad_norm_sq.to_numpy()
        kap = t[f"kappa_block{b}"].to_numpy()
        running = np.cumsum(gn) / np.arange(1, len(gn) + 1)
        last = t.iloc[-1]
        summaries.append({
            "seed": seed, "kappa0": kappa, "kappa_final": kap[-1], "kappa_max": kap.max(), "K": K,
            "L0": L0[b], "mu": ridge, "alpha": alpha[b], "beta": beta[b], "L_phi0": Lphi[b],
            "scale": prob.info["blocks"][b]["scale"], "kappa_control": kappa_control,
            "avg_grad_norm_sq": float(gn[:-1].mean()), "final_grad_norm_sq": float(gn[-1]),
            "initial_grad_norm_sq": float(gn[0]),
            "final_hypergrad_err_sq": float(t.iloc[-2].hypergrad_err_sq),
            "final_inner_err_sq": float(last.inner_err_sq),
            "grad_calls": int(last.grad_calls), "mv_calls": int(last.mv_calls),
            "batch_time_s": float(last.time_s), "n_train": n_train, "n_val": n_val, "width": width,
            "n_features": prob.info["n_features"], "n_blocks": len(pairs),
        })
        sel = t.k.isin(keep).to_numpy()
        curves.append(pd.DataFrame({
            "seed": seed, "kappa0": kappa, "k": t.k.to_numpy()[sel], "grad_norm_sq": gn[sel],
            "running_avg_grad_norm_sq": running[sel], "hypergrad_err_sq": t.hypergrad_err_sq.to_numpy()[sel],
            "kappa": kap[sel]}))
    return pd.DataFrame(summaries), pd.concat(curves, ignore_index=True)


REWEIGHTING_METHODS = ("itd1_paper_lr", "itd1", "itdN", "aidN")


def reweighting_runs(K: int = 3000, loop_K: int = 300, loop_steps: int = 10, inner_lr: float = 5e-2,
                     outer_lr: float = 1e3, paper_outer_lr: float = 1e-3, n_train: int = 2000,
                     n_val: int = 500, n_test: int = 1000, corruption: float = 0.2, hidden: int = 256,
                     activation: str = "relu", seed: int = 0, eval_every: int = 25,
                     plateau_fraction: float = 0.2, methods=REWEIGHTING_METHODS, source="auto",
                     progress: bool = False):
    r"""MNIST data re-weighting (paper 001, Fig. 3 right) with single-loop ITD, and the loops for contrast.

    Runs on one problem (:func:`bilevel.problems.reweighting.mnist`):

    * ``itd1_paper_lr``: single-loop ITD (paper 001's Algorithm 2) with the paper's
      steps, inner ``inner_lr`` = 5e-2 and outer ``paper_outer_lr`` = 1e-3, ``K`` steps;
    * ``itd1``: the same with outer step ``outer_lr`` (with plain gradient steps and
      losses averaged over the samples, 1e-3 leaves the weights at 1/2; see the notebook);
    * ``itdN``: N-step ITD (``loop_steps`` = N unrolled steps), ``loop_K`` outer steps;
    * ``aidN``: AID with N inner steps and N gd steps on the linear system (step ``inner_lr``),
      ``loop_K`` outer steps.

    ``loop_K = K / N`` gives the loops the single-loop run's number of inner
    gradient steps. Returns ``(curves, summary)``: the problem's metrics every
    ``eval_every`` steps (validation/test loss and accuracy, weight diagnostics),
    and per run the validation-loss plateau (mean over the last
    ``plateau_fraction`` of the run, with its standard deviation and its slope per
    1000 iterations), the minimum, the final values and the precision/recall and
    AUC of the lowest weights against the corrupted labels.
    """
    from ..problems import reweighting as RW
    prob = RW.mnist(n_train=n_train, n_val=n_val, n_test=n_test, corruption=corruption, hidden=hidden,
                    activation=activation, seed=seed, source=source)
    N = int(loop_steps)
    specs = {
        "itd1_paper_lr": ("ITD N=1 (paper's outer lr)", ITD(inner_steps=1, inner_lr=inner_lr,
                                                            outer_lr=paper_outer_lr), K, 1, 0, paper_outer_lr),
        "itd1": ("ITD N=1", ITD(inner_steps=1, inner_lr=inner_lr, outer_lr=outer_lr), K, 1, 0, outer_lr),
        "itdN": (f"ITD N={N}", ITD(inner_steps=N, inner_lr=inner_lr, outer_lr=outer_lr), loop_K, N, 0, outer_lr),
        "aidN": (f"AID N=Q={N}", AID(inner_steps=N, inner_lr=inner_lr, linsys="gd", linsys_steps=N,
                                      linsys_lr=inner_lr, outer_lr=outer_lr), loop_K, N, N, outer_lr),
    }
    unknown = sorted(set(methods) - set(specs))
    if unknown:
        raise ValueError(f"unknown re-weighting method(s) {unknown}; choose among {sorted(specs)}.")
    curves, summary = [], []
    for key in methods:
        label, solver, steps, n_inner, q, lr_out = specs[key]
        tr = run(solver, prob, steps=steps, eval_every=eval_every, seed=seed, progress=progress,
                 desc=f"paper001 re-weighting {label}")
        tr = tr.drop(columns=[c for c in ("grad_norm_sq", "hypergrad_err_sq", "inner_err_sq", "phi")
                              if c in tr])
        tr["method"], tr["label"], tr["N"], tr["Q"] = key, label, n_inner, q
        tr["outer_lr"], tr["inner_lr"], tr["K"] = lr_out, inner_lr, steps
        curves.append(tr)
        tail = tr[tr.k >= (1 - plateau_fraction) * steps]
        slope = np.polyfit(tail.k.to_numpy(float), tail.val_loss.to_numpy(float), 1)[0] if len(tail) > 1 \
            else np.nan
        last = tr.iloc[-1]
        summary.append({
            "method": key, "label": label, "N": n_inner, "Q": q, "K": steps, "outer_lr": lr_out,
            "inner_lr": inner_lr, "plateau_val_loss": float(tail.val_loss.mean()),
            "plateau_val_loss_std": float(tail.val_loss.std(ddof=0)),
            "plateau_slope_per_1000": float(slope) * 1000, "plateau_fraction": plateau_fraction,
            "min_val_loss": float(tr.val_loss.min()), "final_val_loss": float(last.val_loss),
            "final_val_acc": float(last.val_acc),
            "final_test_loss": float(last.get("test_loss", np.nan)),
            "final_test_acc": float(last.get("test_acc", np.nan)),
            "precision": float(last.flip_precision), "recall": float(last.flip_precision),
            "auc": float(last.flip_auc), "weight_corrupted": float(last.flip_weight_corrupted),
            "weight_clean": float(last.flip_weight_clean), "grad_calls": int(last.grad_calls),
            "mv_calls": int(last.mv_calls), "wall_time_s": float(last.time_s),
            "n_train": n_train, "n_val": n_val, "n_test": n_test, "corruption": corruption,
            "hidden": hidden, "activation": activation, "seed": seed,
            "n_corrupted": int(prob.info["flipped"].sum()), "n_params": prob.info["n_params"],
        })
    return pd.concat(curves, ignore_index=True), pd.DataFrame(summary)


# -- F2SA on the quadratic ------------------------------------------------------------------

def quadratic001_f_curved(kappa: float, f_curvature: float = 0.0, mu: float = 0.1):
    r"""Paper 001's quadratic with an extra curvature of f in y (``f_curvature`` = 0: the paper's problem).

    .. math::

        f_c(x, y) = \tfrac12 x^\top Z x + \tfrac1{10}\mathbf 1^\top y + \tfrac c2\|y\|^2,\qquad
        g(x, y) = \tfrac12 y^\top Z y - L x^\top y + \mathbf 1^\top y,\qquad Z = \mathrm{diag}(L, \mu),

    :math:`\nabla\Phi(x) = Zx + LZ^{-1}(0.1\,\mathbf 1 + c\,y^*(x))`. With :math:`c = 0`, f is
    linear in y and :math:`\nabla\Phi_\lambda = \nabla\Phi` (F²SA's penalty is exact); with
    :math:`c > 0` the penalty has its :math:`\mathcal O(1/\lambda)` bias (:func:`penalty_gap_table`).

    >>> import torch
    >>> from bilevel.solvers.f2sa import penalty_hypergrad
    >>> p = quadratic001_f_curved(4.0, f_curvature=0.4)
    >>> x = torch.tensor([0.5, -0.2], dtype=torch.float64)
    >>> A, b, Al, bl = _curved_affine(4.0, 0.4, 10.0)
    >>> torch.allclose(p.grad_phi(x), torch.as_tensor(A * x.numpy() + b))
    True
    >>> torch.allclose(penalty_hypergrad(p, x, 10.0), torch.as_tensor(Al * x.numpy() + bl))
    True
    """
    import torch

    from ..problem import Problem
    from ..problems.quadratic import paper001
    base = paper001(kappa, mu=mu)
    c = float(f_curvature)
    if c < 0:
        raise ValueError(f"f_curvature must be >= 0, got {c!r}.")
    if c == 0:
        return base
    L = kappa * mu
    z = torch.tensor([L, mu], dtype=torch.float64)

    def f(x, y):
        return base.f(x, y) + 0.5 * c * torch.dot(y, y)

    def grad_phi(x):
        return z * x + L / z * (0.1 + c * base.y_star(x))

    def phi(x):
        return f(x, base.y_star(x))

    return Problem(f=f, g=base.g, x0=base.x0, y0=base.y0, y_star=base.y_star, grad_phi=grad_phi, phi=phi,
                   name=f"quadratic001(kappa={kappa:g},f_curvature={c:g})",
                   info=dict(base.info, f_curvature=c))


def _curved_affine(kappa: float, c: float, lmbda: float, mu: float = 0.1):
    r"""Closed forms (diagonal, per coordinate) of :math:`\nabla\Phi = Ax + b` and
    :math:`\nabla\Phi_\lambda = A_\lambda x + b_\lambda` for :func:`quadratic001_f_curved`.

    :math:`y^*_\lambda = (cI + \lambda Z)^{-1}(\lambda(Lx - \mathbf 1) - 0.1\,\mathbf 1)` and
    :math:`\nabla\Phi_\lambda = Zx - \lambda L(y^*_\lambda - y^*)` (paper 001, Lemma 11).
    """
    L = kappa * mu
    z = np.array([L, mu])
    A = z + L * L * c / z ** 2
    b = L / z * (0.1 - c / z)
    r = lmbda / (c + lmbda * z) - 1.0 / z
    A_l = z - lmbda * L * L * r
    b_l = lmbda * L * (r + 0.1 / (c + lmbda * z))
    return A, b, A_l, b_l


def penalty_gap_table(kappas, lambdas, f_curvature_over_L: float = 1.0, mu: float = 0.1) -> pd.DataFrame:
    r"""Exact penalty bias on :func:`quadratic001_f_curved` with :math:`c` = ``f_curvature_over_L`` :math:`\cdot L`.

    One row per (kappa, lambda): ``gap_x0`` = :math:`\|\nabla\Phi_\lambda(x_0) - \nabla\Phi(x_0)\|`
    at :math:`x_0 = 0` (Kwon et al.'s Lemma 3.1 bounds it by :math:`\mathcal O(\kappa^3/\lambda)`),
    ``stationary_grad_norm_sq`` = :math:`\|\nabla\Phi(x^*_\lambda)\|^2` at the stationary point
    :math:`x^*_\lambda` of :math:`\Phi_\lambda` (where F²SA with fixed :math:`\lambda` converges).
    """
    rows = []
    for kappa in [float(k) for k in kappas]:
        c = f_curvature_over_L * kappa * mu
        for lam in [float(v) for v in lambdas]:
            A, b, A_l, b_l = _curved_affine(kappa, c, lam, mu)
            x_l = -b_l / A_l
            rows.append({"kappa": kappa, "lmbda": lam, "f_curvature": c,
                         "f_curvature_over_L": f_curvature_over_L,
                         "gap_x0": float(np.linalg.norm(b_l - b)),
                         "stationary_grad_norm_sq": float(np.sum((A * x_l + b) ** 2)),
                         "x_lambda_0": x_l[0], "x_lambda_1": x_l[1]})
    return pd.DataFrame(rows)


def f2sa_quadratic(kappa: float, lambdas, K: int, outer_lr: float, f_curvatures_over_L=(0.0, 1.0),
                   z_coupling: str = "kwon", curve_points: int = 200, progress: bool = False):
    r"""F²SA for several fixed lambdas next to single-loop AID and ITD (paper 001, Appendix C).

    On :func:`quadratic001_f_curved` for each ``c/L`` in ``f_curvatures_over_L``
    (0 = paper 001's quadratic), ``K`` steps from :math:`x_0 = y_0 = 0`, the same
    outer step :math:`\beta` = ``outer_lr`` for every method:

    * AID (Algorithm 1) and ITD (Algorithm 2) with :math:`\alpha = \eta = 1/L`;
    * F²SA (Algorithm 3, T = 1, fixed :math:`\lambda`) with :math:`\alpha = 1/((\lambda+1)L)`
      (Theorem 5) and z step :math:`\gamma = \lambda\alpha` (``z_coupling="kwon"``: Kwon
      et al.'s coupling :math:`\gamma_k\asymp\lambda_k\alpha_k`, which lets :math:`\beta`
      stay fixed as :math:`\lambda` grows) or :math:`\gamma = \alpha` (``"paper"``: Algorithm 3
      as printed, stable only for :math:`\beta\lesssim\lambda^{-2}\kappa^{-2}`).

    Returns ``(curves, summary)``; the summary has, for F²SA, the exact
    :math:`\|\nabla\Phi(x^*_\lambda)\|^2` at the stationary point of
    :math:`\Phi_\lambda` next to the measured final value.
    """
    from ..solvers.f2sa import F2SA
    if z_coupling not in ("kwon", "paper"):
        raise ValueError(f"z_coupling must be 'kwon' or 'paper', got {z_coupling!r}.")
    L = kappa * 0.1
    keep = set(log_spaced(K, curve_points).tolist())
    curves, summary = [], []
    for ratio in [float(r) for r in f_curvatures_over_L]:
        prob = quadratic001_f_curved(kappa, ratio * L)
        runs = [("AID", None, AID(inner_steps=1, inner_lr=1 / L, linsys="gd", linsys_steps=1,
                                  linsys_lr=1 / L, outer_lr=outer_lr)),
                ("ITD", None, ITD(inner_steps=1, inner_lr=1 / L, outer_lr=outer_lr))]
        for lam in [float(v) for v in lambdas]:
            a = 1.0 / ((lam + 1.0) * L)
            runs.append(("F2SA", lam, F2SA(inner_lr=a, z_lr=lam * a if z_coupling == "kwon" else a,
                                           outer_lr=outer_lr, lmbda=lam)))
        for method, lam, solver in runs:
            tr = run(solver, prob, steps=K, eval_every=1, progress=progress,
                     desc=f"paper001 F2SA comparison {method} {lam}")
            gn = tr.grad_norm_sq.to_numpy()
            exact = np.nan
            if lam is not None:
                gap = penalty_gap_table([kappa], [lam], ratio)
                exact = float(gap.stationary_grad_norm_sq.iloc[0])
            last = tr.iloc[-1]
            summary.append({"method": method, "lmbda": lam, "kappa": kappa, "f_curvature_over_L": ratio,
                            "f_curvature": ratio * L, "K": K, "outer_lr": outer_lr, "z_coupling": z_coupling,
                            "final_grad_norm_sq": float(gn[-1]), "avg_grad_norm_sq": float(gn[:-1].mean()),
                            "stationary_grad_norm_sq": exact,
                            "final_hypergrad_err_sq": float(tr.iloc[-2].hypergrad_err_sq),
                            "grad_calls": int(last.grad_calls), "mv_calls": int(last.mv_calls),
                            "wall_time_s": float(last.time_s)})
            sel = tr.k.isin(keep).to_numpy()
            curves.append(pd.DataFrame({"method": method, "lmbda": lam, "kappa": kappa,
                                        "f_curvature_over_L": ratio, "k": tr.k.to_numpy()[sel],
                                        "grad_norm_sq": gn[sel],
                                        "grad_calls": tr.grad_calls.to_numpy()[sel]}))
    return pd.concat(curves, ignore_index=True), pd.DataFrame(summary)
