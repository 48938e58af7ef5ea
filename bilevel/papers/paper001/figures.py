"""Figure functions of paper 001 (sharper single-loop AID/ITD): Figures 1-3 and the F2SA comparison.

Tidy tables in, a matplotlib figure out; the style table and footer are :mod:`bilevel.plots`.
"""

from __future__ import annotations

import dataclasses

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ..._validate import POSITIVE
from ...notebook import ExperimentConfig, param
from ...plots import STYLE, footer, line, setup

__all__ = ['QuadraticFiguresConfig', 'Figure3F2SAFiguresConfig',
           'quadratic_figure1', 'quadratic_figure2', 'feature_learning_figure', 'reweighting_figure', 'f2sa_figure']


@dataclasses.dataclass(frozen=True)
class QuadraticFiguresConfig(ExperimentConfig):
    """The values of the Figures 1-2 notebook (params section ``paper001_quadratic_figures``):
    ``kappa_right``, the kappa of Figure 1's right panel (AID against K) and of the rate claims."""

    kappa_right: float = param(POSITIVE, "kappa")


@dataclasses.dataclass(frozen=True)
class Figure3F2SAFiguresConfig(ExperimentConfig):
    """The values of the Figure 3 / Appendix C figures notebook (params section
    ``paper001_figure3_f2sa_figures``): none (the figures read everything from the results); a key
    added to the section fails until it is a field here."""


#: re-weighting curve key -> style key of :data:`bilevel.plots.STYLE`
_RW_STYLE = {"itd1": "ITD", "itd1_gd": "ITD_paper_lr", "itdN": "ITD_N", "aidN": "AID_N"}


def _finish(fig, axes, profile: str, deviations: str, ncol=1):
    """Every figure's end: a legend below each panel (``ncol`` columns, one number or one per panel),
    tight layout, the profile/deviations footer; returns ``fig``."""
    for ax, n in zip(axes, ncol if isinstance(ncol, tuple) else (ncol,) * len(axes)):
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=n, frameon=False)
    fig.tight_layout()
    footer(fig, profile, deviations)
    return fig


def _bounds(ax, bounds: pd.DataFrame, curves, x: str = "kappa"):
    """One line per theory-bound ``curve`` of a :func:`~bilevel.papers.paper001.experiments.quadratic_bounds`
    table against ``x``, in the style and with the label of that curve."""
    for curve in curves:
        bk = bounds[bounds.curve == curve].sort_values(x)
        line(ax, bk[x], bk.value, curve, bk.label.iloc[0])


def _family(ax, df: pd.DataFrame, by: str, x: str, y: str, label, cmap: str = "viridis"):
    """One line of ``y`` against ``x`` per value of ``by`` (sorted), coloured along ``cmap``;
    ``label(value)`` names each."""
    values = sorted(df[by].unique())
    colours = plt.get_cmap(cmap)
    for i, v in enumerate(values):
        d = df[df[by] == v].sort_values(x)
        ax.plot(d[x], d[y], color=colours(i / max(1, len(values) - 1)), label=label(v))


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
    _bounds(a, bounds_kappa, ("aid_ours", "aid_ji"))
    a.set(xscale="log", yscale="log", xlabel=r"$\kappa$", ylabel=r"$\|\nabla\Phi\|^2$",
          title=f"AID vs $\\kappa$ (K = {int(s.K.iloc[0])})")
    c = curves[(curves.method == "AID") & (curves.kappa == kappa_right) & (curves.k > 0)]
    line(b, c.k, c.grad_norm_sq, "AID", r"AID $\|\nabla\Phi(x_k)\|^2$", marker="")
    line(b, c.k, c.running_avg_grad_norm_sq, "AID", "AID running average", ls="--", marker="")
    _bounds(b, bounds_K[bounds_K.kappa == kappa_right], ("aid_ours", "aid_ji"), x="K")
    b.set(xscale="log", yscale="log", xlabel="K (outer iterations)",
          title=f"AID vs K ($\\kappa$ = {kappa_right:g})")
    return _finish(fig, (a, b), profile, deviations)


def quadratic_figure2(summary: pd.DataFrame, bounds_kappa: pd.DataFrame, profile: str,
                      deviations: str, scales=(0.32, 0.39), fitted_scales=None):
    """Paper 001 Figure 2: ITD vs kappa with the bounds (left), scaled bounds (right).

    ``fitted_scales``: optional ``{"empirical": c1, "lower": c2}``, the least-squares factors
    (``experiments.itd_bound_scales``), drawn on the right beside the paper's ``scales``.
    """
    setup()
    fig, (a, b) = plt.subplots(1, 2, figsize=(8, 4.2))
    s = summary[summary.method == "ITD"].sort_values("kappa")
    for ax in (a, b):
        line(ax, s.kappa, s.final_grad_norm_sq, "ITD", r"ITD $\|\nabla\Phi(x_K)\|^2$")
        _bounds(ax, bounds_kappa, ("itd_lower",))
    line(a, s.kappa, s.avg_grad_norm_sq, "ITD", r"ITD $\frac{1}{K}\sum_k\|\nabla\Phi(x_k)\|^2$",
          ls="--", marker="x")
    _bounds(a, bounds_kappa, ("itd_ours", "itd_ji", "itd_ji_floor"))
    ours = bounds_kappa[bounds_kappa.curve == "itd_ours"].sort_values("kappa")
    for sc, ls in zip(scales, ("--", (0, (5, 1)))):
        line(b, ours.kappa, sc * ours.value, "itd_ours", f"paper 001 ITD bound x {sc} (paper)", ls=ls)
    fits = (("empirical", "the empirical curve", (0, (1, 1))), ("lower", "the lower bound", (0, (3, 1, 1, 1))))
    for key, what, ls in fits:
        if fitted_scales and key in fitted_scales:
            sc = fitted_scales[key]
            line(b, ours.kappa, sc * ours.value, "fit", f"paper 001 ITD bound x {sc:.3g} (fit to {what})",
                 ls=ls, marker="")
    a.set(xscale="log", yscale="log", xlabel=r"$\kappa$", ylabel=r"$\|\nabla\Phi\|^2$",
          title=f"ITD vs $\\kappa$ (K = {int(s.K.iloc[0])})")
    b.set(xscale="log", yscale="log", xlabel=r"$\kappa$", title="scaled upper bound")
    return _finish(fig, (a, b), profile, deviations)


def feature_learning_figure(summary: pd.DataFrame, curves: pd.DataFrame, fits: pd.DataFrame,
                                     profile: str, deviations: str, value: str = "avg_grad_norm_sq"):
    r"""Paper 001 Figure 3 left: ITD's :math:`\frac1K\sum_k\|\nabla\Phi(x_k)\|^2` vs kappa on feature learning.

    Left: one point per (seed, kappa), the mean over seeds, the fitted power law
    (exponent and interval from ``fits``, the row ``"mean over seed"``; line from the
    pooled fit), :math:`\|\nabla\Phi(x_0)\|^2` (the landscape's scale per kappa) and
    :math:`\kappa^2`, :math:`\kappa^3` reference slopes through the mean at the smallest kappa.
    Right: the running average over k of each kappa (first seed).
    """
    setup()
    fig, (a, b) = plt.subplots(1, 2, figsize=(8.5, 4.2))
    for seed, d in summary.groupby("seed"):
        a.plot(d.kappa0, d[value], ls="", marker=".", color="#d62728", alpha=0.5, markersize=5,
               label="ITD, one seed" if seed == summary.seed.min() else None)
    m = summary.groupby("kappa0")[value].mean()
    line(a, m.index, m.values, "ITD", "ITD, mean over seeds")
    g0 = summary.groupby("kappa0").initial_grad_norm_sq.mean()
    line(a, g0.index, g0.values, "reference", r"$\|\nabla\Phi(x_0)\|^2$, mean over seeds ($\Phi$'s scale)",
         ls="--", marker="o", markerfacecolor="none")
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
    _family(b, c, "kappa0", "k", "running_avg_grad_norm_sq", lambda kap: f"kappa0 = {kap:g}")
    b.set(xscale="log", yscale="log", xlabel="k (outer iterations)",
          ylabel=r"running average of $\|\nabla\Phi(x_k)\|^2$", title="running average, first seed")
    return _finish(fig, (a, b), profile, deviations, ncol=2)


def reweighting_figure(curves: pd.DataFrame, summary: pd.DataFrame, profile: str,
                       deviations: str, paper_plateau: float = 0.65):
    """Paper 001 Figure 3 right: validation loss of MNIST re-weighting, with the loops for contrast.

    Left: validation loss vs inner gradient steps (``k`` for single-loop ITD,
    ``N k`` for the N-step loops), each run's plateau level over its last
    ``plateau_fraction`` (dashed; the legend gives the level, its fitted relative
    change and whether that is within ``plateau_threshold``) and the paper's 0.65;
    the title says how far the plain-GD run's weights moved. Middle: the same vs
    gradient evaluations (Gc); right: precision of the lowest weights against the
    corrupted labels.
    """
    setup()
    fig, axes = plt.subplots(1, 3, figsize=(11, 4.3))
    for key, d in curves.groupby("method", sort=False):
        d = d.sort_values("k")
        st = _RW_STYLE.get(key, "ITD")
        srow = summary[summary.method == key].iloc[0]
        steps = d.k * int(srow.N)
        lab = (f"{d.label.iloc[0]}: level {srow.plateau_val_loss:.3f}, change {srow.plateau_change_rel:.1%} "
               f"({'plateau' if srow.has_plateau else 'no plateau'} at <= {srow.plateau_threshold:.0%})")
        line(axes[0], steps, d.val_loss, st, lab, marker="")
        line(axes[1], d.grad_calls.clip(lower=1), d.val_loss, st, d.label.iloc[0], marker="")
        line(axes[2], steps, d.flip_precision, st, d.label.iloc[0], marker="")
        w0 = (1 - float(srow.plateau_fraction)) * float(steps.max())
        axes[0].hlines(srow.plateau_val_loss, w0, float(steps.max()), color=STYLE[st]["color"], ls="--", lw=1.0)
    axes[0].axhline(paper_plateau, color="#7f7f7f", ls=":", lw=1.2, label=f"paper's plateau ({paper_plateau})")
    gd = summary[summary.outer_optimizer == "sgd"]
    if len(gd):
        g = gd.iloc[0]
        fig.suptitle(f"plain GD at outer lr {g.outer_lr:g}: the weights moved by at most {g.weight_change_max:.1e} "
                     f"(logits {g.logit_change_max:.1e}), so its level {g.plateau_val_loss:.3f} is the un-reweighted "
                     "MLP's validation loss, not a re-weighting plateau", fontsize=8, y=1.0)
    axes[0].set(xlabel="inner gradient steps (k for N=1, N k for the loops)", ylabel="validation loss",
                title="validation loss (dashed: level over the last 20%)")
    axes[1].set(xscale="log", xlabel="gradient evaluations (Gc)", ylabel="validation loss",
                title="vs. oracle cost")
    axes[2].set(xlabel="inner gradient steps", ylabel="precision = recall",
                title="lowest weights vs. corrupted labels")
    axes[2].axhline(float(summary.n_corrupted.iloc[0]) / float(summary.n_train.iloc[0]), color="#7f7f7f",
                    ls=":", lw=1, label="chance")
    return _finish(fig, axes, profile, deviations)


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
    ax = axes[2]
    _family(ax, gaps, "kappa", "lmbda", "gap_x0",
            lambda kap: rf"$\|\nabla\Phi_\lambda-\nabla\Phi\|(x_0)$, kappa = {kap:g}")
    s = summary[(summary.method == "F2SA") & (summary.f_curvature_over_L > 0)].sort_values("lmbda")
    if len(s):
        ax.plot(s.lmbda, np.sqrt(s.final_grad_norm_sq), ls="", marker="^", color=STYLE["F2SA"]["color"],
                label=r"F2SA $\|\nabla\Phi(x_K)\|$ (panel b)")
        ax.plot(s.lmbda, np.sqrt(s.stationary_grad_norm_sq), ls=":", color=STYLE["F2SA"]["color"],
                label=r"exact $\|\nabla\Phi(x^*_\lambda)\|$")
    ax.set(xscale="log", yscale="log", xlabel=r"$\lambda$", title=r"penalty bias $\propto 1/\lambda$")
    return _finish(fig, axes, profile, deviations, ncol=(2, 2, 1))
