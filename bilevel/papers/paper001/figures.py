"""Figure functions of paper 001 (sharper single-loop AID/ITD): Figures 1-3 and the F2SA comparison.

Tidy tables in, a matplotlib figure out; the style table and footer are :mod:`bilevel.plots`.
"""

from __future__ import annotations

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ...plots import STYLE, footer, line, setup

__all__ = ['quadratic_figure1', 'quadratic_figure2', 'feature_learning_figure', 'reweighting_figure', 'f2sa_figure']

#: re-weighting curve key -> style key of :data:`bilevel.plots.STYLE`
_RW_STYLE = {"itd1": "ITD", "itd1_paper_lr": "ITD_paper_lr", "itdN": "ITD_N", "aidN": "AID_N"}


def quadratic_figure1(summary: pd.DataFrame, curves: pd.DataFrame, bounds_kappa: pd.DataFrame,
                               bounds_K: pd.DataFrame, kappa_right: float, profile: str,
                               deviations: str):
    """Paper 001 Figure 1: AID vs kappa (left) and vs K at ``kappa_right`` (right)."""
    setup()
    fig, (a, b) = plt.subplots(1, 2, figsize=(8, 4.2))
    s = summary[summary.method == "AID"].sort_values("kappa")
    line(a, s.kappa, s.final_grad_norm_sq, "AID", r"AID $\|\nabla\Phi(x_K)\|^2$")
    line(a, s.kappa, s.avg_grad_norm_sq, "AID", r"AID $\frac{1}{K}\sum_k\|\nabla\Phi(x_k)\|^2$",
          ls="--", marker="x")
    for curve in ("aid_ours", "aid_ji"):
        bk = bounds_kappa[bounds_kappa.curve == curve].sort_values("kappa")
        line(a, bk.kappa, bk.value, curve, bk.label.iloc[0])
    a.set(xscale="log", yscale="log", xlabel=r"$\kappa$", ylabel=r"$\|\nabla\Phi\|^2$",
          title=f"AID vs $\\kappa$ (K = {int(s.K.iloc[0])})")
    c = curves[(curves.method == "AID") & (curves.kappa == kappa_right) & (curves.k > 0)]
    line(b, c.k, c.grad_norm_sq, "AID", r"AID $\|\nabla\Phi(x_k)\|^2$", marker="")
    line(b, c.k, c.running_avg_grad_norm_sq, "AID", "AID running average", ls="--", marker="")
    for curve in ("aid_ours", "aid_ji"):
        bk = bounds_K[(bounds_K.curve == curve) & (bounds_K.kappa == kappa_right)].sort_values("K")
        line(b, bk.K, bk.value, curve, bk.label.iloc[0])
    b.set(xscale="log", yscale="log", xlabel="K (outer iterations)",
          title=f"AID vs K ($\\kappa$ = {kappa_right:g})")
    for ax in (a, b):
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=1, frameon=False)
    fig.tight_layout()
    footer(fig, profile, deviations)
    return fig


def quadratic_figure2(summary: pd.DataFrame, bounds_kappa: pd.DataFrame, profile: str,
                               deviations: str, scales=(0.32, 0.39)):
    """Paper 001 Figure 2: ITD vs kappa with the bounds (left), scaled bounds (right)."""
    setup()
    fig, (a, b) = plt.subplots(1, 2, figsize=(8, 4.2))
    s = summary[summary.method == "ITD"].sort_values("kappa")
    for ax in (a, b):
        line(ax, s.kappa, s.final_grad_norm_sq, "ITD", r"ITD $\|\nabla\Phi(x_K)\|^2$")
        lb = bounds_kappa[bounds_kappa.curve == "itd_lower"].sort_values("kappa")
        line(ax, lb.kappa, lb.value, "itd_lower", lb.label.iloc[0])
    line(a, s.kappa, s.avg_grad_norm_sq, "ITD", r"ITD $\frac{1}{K}\sum_k\|\nabla\Phi(x_k)\|^2$",
          ls="--", marker="x")
    for curve in ("itd_ours", "itd_ji", "itd_ji_floor"):
        bk = bounds_kappa[bounds_kappa.curve == curve].sort_values("kappa")
        line(a, bk.kappa, bk.value, curve, bk.label.iloc[0])
    ours = bounds_kappa[bounds_kappa.curve == "itd_ours"].sort_values("kappa")
    for sc, ls in zip(scales, ("--", (0, (5, 1)))):
        line(b, ours.kappa, sc * ours.value, "itd_ours", f"paper 001 ITD bound x {sc}", ls=ls)
    a.set(xscale="log", yscale="log", xlabel=r"$\kappa$", ylabel=r"$\|\nabla\Phi\|^2$",
          title=f"ITD vs $\\kappa$ (K = {int(s.K.iloc[0])})")
    b.set(xscale="log", yscale="log", xlabel=r"$\kappa$", title="scaled upper bound")
    for ax in (a, b):
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=1, frameon=False)
    fig.tight_layout()
    footer(fig, profile, deviations)
    return fig


def feature_learning_figure(summary: pd.DataFrame, curves: pd.DataFrame, fits: pd.DataFrame,
                                     profile: str, deviations: str, value: str = "avg_grad_norm_sq"):
    r"""Paper 001 Figure 3 left: ITD's :math:`\frac1K\sum_k\|\nabla\Phi(x_k)\|^2` vs kappa on feature learning.

    Left: one point per (seed, kappa), the mean over seeds, the fitted power law
    (exponent and interval from ``fits``, the row ``"mean over seed"``; line from the
    pooled fit) and :math:`\kappa^2`, :math:`\kappa^3` reference slopes through the mean
    at the smallest kappa. Right: the running average over k of each kappa (first seed).
    """
    setup()
    fig, (a, b) = plt.subplots(1, 2, figsize=(8.5, 4.2))
    for seed, d in summary.groupby("seed"):
        a.plot(d.kappa0, d[value], ls="", marker=".", color="#d62728", alpha=0.5, markersize=5,
               label="ITD, one seed" if seed == summary.seed.min() else None)
    m = summary.groupby("kappa0")[value].mean()
    line(a, m.index, m.values, "ITD", "ITD, mean over seeds")
    row = fits[fits.fit == "mean over seed"].iloc[0]
    pooled = fits[fits.fit == "pooled"].iloc[0]
    k = np.asarray(m.index, float)
    line(a, k, np.exp(pooled.intercept) * k ** pooled.slope, "fit",
          f"fit: kappa^{row.slope:.2f} [{row.ci_low:.2f}, {row.ci_high:.2f}]")
    for p, ls in ((2, ":"), (3, "-.")):
        line(a, k, m.values[0] * (k / k[0]) ** p, "reference", f"reference kappa^{p} (through the first mean)",
              ls=ls)
    a.set(xscale="log", yscale="log", xlabel=r"$\kappa(x_0)$",
          ylabel=r"$\frac{1}{K}\sum_{k<K}\|\nabla\Phi(x_k)\|^2$",
          title=f"single-loop ITD, feature learning (K = {int(summary.K.iloc[0])})")
    a.set_xticks(k)
    a.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    a.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    c = curves[(curves.seed == curves.seed.min()) & (curves.k > 0)]
    cmap = plt.get_cmap("viridis")
    kappas = sorted(c.kappa0.unique())
    for i, kap in enumerate(kappas):
        d = c[c.kappa0 == kap].sort_values("k")
        b.plot(d.k, d.running_avg_grad_norm_sq, color=cmap(i / max(1, len(kappas) - 1)),
               label=f"kappa0 = {kap:g}")
    b.set(xscale="log", yscale="log", xlabel="k (outer iterations)",
          ylabel=r"running average of $\|\nabla\Phi(x_k)\|^2$", title="running average, first seed")
    for ax in (a, b):
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, frameon=False)
    fig.tight_layout()
    footer(fig, profile, deviations)
    return fig


def reweighting_figure(curves: pd.DataFrame, summary: pd.DataFrame, profile: str,
                                deviations: str, paper_plateau: float = 0.65):
    """Paper 001 Figure 3 right: validation loss of MNIST re-weighting, with the loops for contrast.

    Left: validation loss vs outer iteration, the measured plateau of each run
    (dashed) and the paper's 0.65; middle: the same vs gradient evaluations
    (Gc); right: precision of the lowest weights against the corrupted labels.
    """
    setup()
    fig, axes = plt.subplots(1, 3, figsize=(11, 4.0))
    for key, d in curves.groupby("method", sort=False):
        d = d.sort_values("k")
        st = _RW_STYLE.get(key, "ITD")
        lab = d.label.iloc[0]
        line(axes[0], d.k, d.val_loss, st, lab, marker="")
        line(axes[1], d.grad_calls.clip(lower=1), d.val_loss, st, lab, marker="")
        line(axes[2], d.k, d.flip_precision, st, lab, marker="")
        srow = summary[summary.method == key].iloc[0]
        axes[0].axhline(srow.plateau_val_loss, color=STYLE[st]["color"], ls="--", lw=0.8)
    axes[0].axhline(paper_plateau, color="#7f7f7f", ls=":", lw=1.2, label=f"paper's plateau ({paper_plateau})")
    axes[0].set(xlabel="k (outer iterations)", ylabel="validation loss", title="validation loss (dashed: plateau)")
    axes[1].set(xscale="log", xlabel="gradient evaluations (Gc)", ylabel="validation loss",
                title="vs. oracle cost")
    axes[2].set(xlabel="k (outer iterations)", ylabel="precision = recall",
                title="lowest weights vs. corrupted labels")
    axes[2].axhline(float(summary.n_corrupted.iloc[0]) / float(summary.n_train.iloc[0]), color="#7f7f7f",
                    ls=":", lw=1, label="chance")
    for ax in axes:
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=1, frameon=False)
    fig.tight_layout()
    footer(fig, profile, deviations)
    return fig


def f2sa_figure(curves: pd.DataFrame, summary: pd.DataFrame, gaps: pd.DataFrame, profile: str,
                         deviations: str):
    r"""F²SA next to single-loop AID and ITD on the quadratic, and the penalty's 1/lambda bias.

    (a) paper 001's quadratic (f linear in y: no penalty bias; AID dashed, under
    the F²SA curves); (b) the variant (y axis cut below the F²SA plateaus; AID goes on to 0)
    with curvature of f in y, dashed: :math:`\|\nabla\Phi(x^*_\lambda)\|^2` at the
    stationary point of :math:`\Phi_\lambda`; (c) the exact gap
    :math:`\|\nabla\Phi_\lambda(x_0)-\nabla\Phi(x_0)\|` vs lambda for several kappa, and
    F²SA's final :math:`\|\nabla\Phi(x_K)\|` in (b).
    """
    setup()
    fig, axes = plt.subplots(1, 3, figsize=(12, 4.2))
    ratios = sorted(curves.f_curvature_over_L.unique())
    lams = sorted(curves.lmbda.dropna().unique())
    cmap = plt.get_cmap("Greens")
    for ax, ratio in zip(axes[:2], ratios):
        c = curves[(curves.f_curvature_over_L == ratio) & (curves.k > 0)]
        for i, lam in enumerate(lams):
            col = cmap(0.35 + 0.65 * i / max(1, len(lams) - 1))
            d = c[(c.method == "F2SA") & (c.lmbda == lam)].sort_values("k")
            ax.plot(d.k, d.grad_norm_sq, color=col, label=f"F2SA lambda = {lam:g}")
            s = summary[(summary.method == "F2SA") & (summary.lmbda == lam) & (summary.f_curvature_over_L == ratio)]
            if ratio > 0 and len(s):
                ax.axhline(float(s.stationary_grad_norm_sq.iloc[0]), color=col, ls="--", lw=0.8)
        for method in ("AID", "ITD"):
            d = c[c.method == method].sort_values("k")
            line(ax, d.k, d.grad_norm_sq, method, f"{method} (single loop)", marker="",
                  ls="--" if method == "AID" else "-")
        st = summary[(summary.method == "F2SA") & (summary.f_curvature_over_L == ratio)]
        if ratio > 0 and len(st):
            ax.set_ylim(bottom=0.1 * float(st.stationary_grad_norm_sq.min()))
        kappa = float(c.kappa.iloc[0])
        title = ("paper 001 quadratic (f linear in y)" if ratio == 0 else
                 f"f + (c/2)|y|^2, c = {ratio:g} L")
        ax.set(xscale="log", yscale="log", xlabel="k (outer iterations)", ylabel=r"$\|\nabla\Phi(x_k)\|^2$",
               title=f"{title}, kappa = {kappa:g}")
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, frameon=False)
    ax = axes[2]
    kap_cmap = plt.get_cmap("viridis")
    kappas = sorted(gaps.kappa.unique())
    for i, kap in enumerate(kappas):
        d = gaps[gaps.kappa == kap].sort_values("lmbda")
        ax.plot(d.lmbda, d.gap_x0, color=kap_cmap(i / max(1, len(kappas) - 1)),
                label=rf"$\|\nabla\Phi_\lambda-\nabla\Phi\|(x_0)$, kappa = {kap:g}")
    s = summary[(summary.method == "F2SA") & (summary.f_curvature_over_L > 0)].sort_values("lmbda")
    if len(s):
        ax.plot(s.lmbda, np.sqrt(s.final_grad_norm_sq), ls="", marker="^", color=STYLE["F2SA"]["color"],
                label=r"F2SA $\|\nabla\Phi(x_K)\|$ (panel b)")
        ax.plot(s.lmbda, np.sqrt(s.stationary_grad_norm_sq), ls=":", color=STYLE["F2SA"]["color"],
                label=r"exact $\|\nabla\Phi(x^*_\lambda)\|$")
    ax.set(xscale="log", yscale="log", xlabel=r"$\lambda$", title=r"penalty bias $\propto 1/\lambda$")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=1, frameon=False)
    fig.tight_layout()
    footer(fig, profile, deviations)
    return fig
