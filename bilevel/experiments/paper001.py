r"""Paper 001 (sharper analysis of single-loop AID/ITD): experiment drivers.

Figures 1-2: single-loop AID (paper 001, Algorithm 1) and ITD (Algorithm 2) on
the synthetic quadratic of :func:`bilevel.problems.quadratic.paper001` with
:math:`\mu = M = \rho = 0.1`, :math:`\alpha = \eta = 1/L`, and the theorems'
outer steps :math:`\beta` from :mod:`bilevel.bounds` (AID: Lemma 4's step
times the documented factor 1/3 that makes Theorem 1's bound well defined;
ITD: Lemma 7's :math:`\beta = \mu^3 / (2L(2L^2+\rho M))`).

All kappas run in one vectorised batch (:func:`~bilevel.problems.quadratic.paper001_grid`
with per-coordinate step sizes), which performs exactly the per-kappa updates.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import bounds
from ..problems import per_coordinate
from ..problems.quadratic import paper001_grid
from ..run import run
from ..solvers import AID, ITD

__all__ = ["quadratic_sweep", "log_spaced"]


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
