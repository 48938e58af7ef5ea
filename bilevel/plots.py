"""Figure helpers: one style table for every figure of the compendium.

Plots are drawn with matplotlib/seaborn from tidy tables; every figure carries
a footer naming the profile that produced it and its deviations from the paper
(stand-ins), as the compendium's house style requires.

No backend is forced here: in a Jupyter kernel figures show inline (ipykernel's default),
batch processes get theirs from ``MPLBACKEND`` (the Makefile exports ``Agg``), and the
pipeline's runner gives its kernels the inline backend so executed copies embed the figures.
"""

from __future__ import annotations

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

__all__ = ["STYLE", "setup", "footer", "loglog_slope", "paper002_example3_figure1",
           "paper002_rate_figure", "paper002_baselines_figure", "paper001_quadratic_figure1",
           "paper001_quadratic_figure2", "paper001_feature_learning_figure", "paper001_reweighting_figure",
           "paper001_f2sa_figure"]

#: colour / marker / line style per method or curve, shared by every figure
STYLE = {
    "AID": dict(color="#1f77b4", marker="o", ls="-"),
    "ITD": dict(color="#d62728", marker="s", ls="-"),
    "F2SA": dict(color="#2ca02c", marker="^", ls="-"),
    "aid_ours": dict(color="#1f77b4", ls="--", marker=""),
    "aid_ji": dict(color="#7f7f7f", ls=":", marker=""),
    "itd_ours": dict(color="#d62728", ls="--", marker=""),
    "itd_ji": dict(color="#7f7f7f", ls=":", marker=""),
    "itd_ji_floor": dict(color="#7f7f7f", ls="-.", marker=""),
    "itd_lower": dict(color="#2ca02c", ls="-.", marker=""),
    # paper 002 (UniBiO): methods and uniform-convexity exponents
    "UniBiO": dict(color="#9467bd", marker="D", ls="-"),
    "StocBiO": dict(color="#ff7f0e", marker="v", ls="-"),
    "TTSA": dict(color="#8c564b", marker="<", ls="-"),
    "MA-SOBA": dict(color="#17becf", marker=">", ls="-"),
    "p=2": dict(color="#1f77b4", marker="", ls="-"),
    "p=4": dict(color="#d62728", marker="", ls="-"),
    "p=6": dict(color="#2ca02c", marker="", ls="-"),
    "p=8": dict(color="#ff7f0e", marker="", ls="-"),
    # paper 001, Figure 3 and F2SA
    "ITD_N": dict(color="#ff7f0e", marker="D", ls="-"),
    "ITD_paper_lr": dict(color="#d62728", marker="s", ls=":"),
    "AID_N": dict(color="#1f77b4", marker="o", ls="--"),
    "reference": dict(color="#7f7f7f", ls=":", marker=""),
    "fit": dict(color="#000000", ls="--", marker=""),
}


def setup():
    """Deterministic, TeX-free matplotlib/seaborn settings."""
    sns.set_theme(context="paper", style="whitegrid", font="DejaVu Sans")
    matplotlib.rcParams.update({"svg.hashsalt": "bilevel", "pdf.compression": 6,
                                "figure.dpi": 100, "savefig.dpi": 150,
                                "axes.titlesize": 10, "axes.labelsize": 9, "legend.fontsize": 7})


def footer(fig, profile: str, deviations: str = ""):
    """Write the profile and the deviations from the paper under the figure."""
    text = f"profile: {profile}"
    if deviations:
        text += f"  |  deviations: {deviations}"
    fig.text(0.01, -0.02, text, ha="left", va="top", fontsize=6, wrap=True, color="#444444")


def _line(ax, x, y, key, label, **kw):
    st = dict(STYLE.get(key, {}))
    st.update(kw)
    ax.plot(x, y, label=label, markersize=3, **st)


def paper001_quadratic_figure1(summary: pd.DataFrame, curves: pd.DataFrame, bounds_kappa: pd.DataFrame,
                               bounds_K: pd.DataFrame, kappa_right: float, profile: str,
                               deviations: str):
    """Paper 001 Figure 1: AID vs kappa (left) and vs K at ``kappa_right`` (right)."""
    setup()
    fig, (a, b) = plt.subplots(1, 2, figsize=(8, 4.2))
    s = summary[summary.method == "AID"].sort_values("kappa")
    _line(a, s.kappa, s.final_grad_norm_sq, "AID", r"AID $\|\nabla\Phi(x_K)\|^2$")
    _line(a, s.kappa, s.avg_grad_norm_sq, "AID", r"AID $\frac{1}{K}\sum_k\|\nabla\Phi(x_k)\|^2$",
          ls="--", marker="x")
    for curve in ("aid_ours", "aid_ji"):
        bk = bounds_kappa[bounds_kappa.curve == curve].sort_values("kappa")
        _line(a, bk.kappa, bk.value, curve, bk.label.iloc[0])
    a.set(xscale="log", yscale="log", xlabel=r"$\kappa$", ylabel=r"$\|\nabla\Phi\|^2$",
          title=f"AID vs $\\kappa$ (K = {int(s.K.iloc[0])})")
    c = curves[(curves.method == "AID") & (curves.kappa == kappa_right) & (curves.k > 0)]
    _line(b, c.k, c.grad_norm_sq, "AID", r"AID $\|\nabla\Phi(x_k)\|^2$", marker="")
    _line(b, c.k, c.running_avg_grad_norm_sq, "AID", "AID running average", ls="--", marker="")
    for curve in ("aid_ours", "aid_ji"):
        bk = bounds_K[(bounds_K.curve == curve) & (bounds_K.kappa == kappa_right)].sort_values("K")
        _line(b, bk.K, bk.value, curve, bk.label.iloc[0])
    b.set(xscale="log", yscale="log", xlabel="K (outer iterations)",
          title=f"AID vs K ($\\kappa$ = {kappa_right:g})")
    for ax in (a, b):
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=1, frameon=False)
    fig.tight_layout()
    footer(fig, profile, deviations)
    return fig


def paper001_quadratic_figure2(summary: pd.DataFrame, bounds_kappa: pd.DataFrame, profile: str,
                               deviations: str, scales=(0.32, 0.39)):
    """Paper 001 Figure 2: ITD vs kappa with the bounds (left), scaled bounds (right)."""
    setup()
    fig, (a, b) = plt.subplots(1, 2, figsize=(8, 4.2))
    s = summary[summary.method == "ITD"].sort_values("kappa")
    for ax in (a, b):
        _line(ax, s.kappa, s.final_grad_norm_sq, "ITD", r"ITD $\|\nabla\Phi(x_K)\|^2$")
        lb = bounds_kappa[bounds_kappa.curve == "itd_lower"].sort_values("kappa")
        _line(ax, lb.kappa, lb.value, "itd_lower", lb.label.iloc[0])
    _line(a, s.kappa, s.avg_grad_norm_sq, "ITD", r"ITD $\frac{1}{K}\sum_k\|\nabla\Phi(x_k)\|^2$",
          ls="--", marker="x")
    for curve in ("itd_ours", "itd_ji", "itd_ji_floor"):
        bk = bounds_kappa[bounds_kappa.curve == curve].sort_values("kappa")
        _line(a, bk.kappa, bk.value, curve, bk.label.iloc[0])
    ours = bounds_kappa[bounds_kappa.curve == "itd_ours"].sort_values("kappa")
    for sc, ls in zip(scales, ("--", (0, (5, 1)))):
        _line(b, ours.kappa, sc * ours.value, "itd_ours", f"paper 001 ITD bound x {sc}", ls=ls)
    a.set(xscale="log", yscale="log", xlabel=r"$\kappa$", ylabel=r"$\|\nabla\Phi\|^2$",
          title=f"ITD vs $\\kappa$ (K = {int(s.K.iloc[0])})")
    b.set(xscale="log", yscale="log", xlabel=r"$\kappa$", title="scaled upper bound")
    for ax in (a, b):
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=1, frameon=False)
    fig.tight_layout()
    footer(fig, profile, deviations)
    return fig


def loglog_slope(x, y) -> float:
    """Least-squares slope of log y against log x."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


# -- paper 002 (UniBiO) ------------------------------------------------------------------

_FLOOR = 1e-6


def _noise_title(i, var):
    letter = "abcdefgh"[i] if i < 8 else str(i)
    return f"({letter}) deterministic" if var == 0 else f"({letter}) noise variance {var:g}"


def paper002_example3_figure1(curves: pd.DataFrame, profile: str, deviations: str,
                              metric: str = "hypergrad_at_y",
                              ylabel: str = r"$|\cos x_t\cos(y_t^{p-1})|$ (Thm 4.1 at own $y_t$)"):
    """Paper 002 Figure 1 (a)-(d): UniBiO's hypergradient norm per iteration (linear axis, as in
    the paper), one curve per p, one panel per noise level (``noise_variance = 0``: deterministic)."""
    setup()
    levels = sorted(curves.noise_variance.unique())
    fig, axes = plt.subplots(1, len(levels), figsize=(3.3 * len(levels), 3.4), sharey=True, squeeze=False)
    for i, (ax, var) in enumerate(zip(axes[0], levels)):
        c = curves[curves.noise_variance == var]
        for p in sorted(c.p.unique()):
            cp = c[c.p == p].sort_values("t")
            _line(ax, cp.t, cp[metric], f"p={p}", f"p = {p}", lw=0.9)
        ax.set(xlabel="iteration t", title=_noise_title(i, var), ylim=(0, None))
        ax.legend(loc="upper right", frameon=False)
    axes[0][0].set_ylabel(ylabel)
    fig.tight_layout()
    footer(fig, profile, deviations)
    return fig


def paper002_rate_figure(curves: pd.DataFrame, summary: pd.DataFrame, profile: str, deviations: str):
    """Paper 002 Figure 5 / App. E.3 (deterministic runs): (a) averaged hypergradient
    (1/T) sum_t |h_t| vs T with the fitted power law C T^slope per p; (b) the slopes;
    (c) runtime and lower-level steps per outer iteration per p."""
    setup()
    fig, (a, b, c) = plt.subplots(1, 3, figsize=(11, 3.6), gridspec_kw=dict(width_ratios=[1.5, 1, 1]))
    det = curves[curves.noise_variance == 0]
    s = summary[summary.noise_variance == 0].sort_values("p")
    for _, row in s.iterrows():
        cp = det[det.p == row.p].sort_values("t")
        T = cp.t.to_numpy() + 1
        _line(a, T, cp.avg_hypergrad_at_y, f"p={int(row.p)}", f"p = {int(row.p)}", lw=1.2)
        _line(a, T, np.exp(row.log_c) * T ** row.slope, f"p={int(row.p)}",
              f"fit: slope {row.slope:.3f}", ls="--", lw=0.9)
    a.set(xscale="log", yscale="log", xlabel="T (outer iterations)",
          ylabel=r"$\frac{1}{T}\sum_{t<T}|h_t|$", title="(a) averaged hypergradient and power-law fit")
    a.legend(loc="lower left", frameon=False, ncol=2)
    ps = s.p.astype(int).to_numpy()
    b.bar([str(p) for p in ps], s.slope, color=[STYLE.get(f"p={p}", {}).get("color", "#777777") for p in ps])
    for x, v in enumerate(s.slope):
        b.text(x, v, f"{v:.3f}", ha="center", va="top" if v < 0 else "bottom", fontsize=7)
    b.axhline(0, color="#444444", lw=0.6)
    b.set(xlabel="p", ylabel="fitted slope", title="(b) fitted slopes (more negative = faster)")
    c.bar([str(p) for p in ps], s.runtime_s, color="#bbbbbb", label="runtime (s)")
    c.set(xlabel="p", ylabel="solver time (s)", title="(c) runtime and inner iterations")
    c2 = c.twinx()
    c2.plot([str(p) for p in ps], s.inner_steps_per_iter, color="#444444", marker="o",
            label="LL steps / outer iteration")
    c2.set_ylabel("Epoch-SGD steps per outer iteration")
    c2.grid(False)
    h1, l1 = c.get_legend_handles_labels()
    h2, l2 = c2.get_legend_handles_labels()
    c.legend(h1 + h2, l1 + l2, loc="lower right", frameon=True, fontsize=6)
    fig.tight_layout()
    footer(fig, profile, deviations)
    return fig


def paper002_baselines_figure(curves: pd.DataFrame, profile: str, deviations: str):
    """Paper 002 App. E.1: |grad Phi(x_t)| per iteration for UniBiO and the baselines at their
    grid-searched learning rates, one panel per p (values below 1e-6 drawn at 1e-6)."""
    setup()
    ps = sorted(curves.p.unique())
    fig, axes = plt.subplots(1, len(ps), figsize=(3.3 * len(ps), 3.5), sharey=True, squeeze=False)
    for ax, p in zip(axes[0], ps):
        c = curves[curves.p == p]
        for label in c.label.unique():
            cm = c[c.label == label].sort_values("t")
            r = cm.iloc[0]
            _line(ax, cm.t, np.maximum(cm.grad_norm, _FLOOR), label,
                  f"{label} (UL {r.outer_lr:g}, LL {r.inner_lr:g})", marker="", lw=1.0)
        ax.set(yscale="log", xlabel="iteration t", title=f"p = {int(p)}")
        ax.legend(loc="center right", frameon=True, framealpha=0.9, fontsize=6)
    axes[0][0].set_ylabel(r"$|\nabla\Phi(x_t)|$ (ground truth)")
    fig.tight_layout()
    footer(fig, profile, deviations)
    return fig


# -- paper 003 (Ji et al. 2022, loops) ----------------------------------------------------

STYLE.update({
    # AID-BiO variants: colour = N (red 1, blue 20, green 50), line style = Q (solid 1, dashed > 1)
    "aid_N1_Q1": dict(color="#d62728", ls="-", marker="o"),
    "aid_N1_Q20": dict(color="#d62728", ls="--", marker="v"),
    "aid_N1_Q50": dict(color="#ff7f0e", ls="--", marker="v"),
    "aid_N20_Q1": dict(color="#1f77b4", ls="-", marker="o"),
    "aid_N20_Q20": dict(color="#1f77b4", ls="--", marker="v"),
    "aid_N50_Q1": dict(color="#2ca02c", ls="-", marker="o"),
    "aid_N50_Q50": dict(color="#2ca02c", ls="--", marker="v"),
    # ITD-BiO variants
    "itd_N1": dict(color="#d62728", ls="-", marker="s"),
    "itd_N20": dict(color="#1f77b4", ls="-", marker="s"),
})
# the hyper-representation's warm-started extras (keys ``*_warm``): same colours, dotted
STYLE.update({f"{k}_warm": dict(STYLE[k], ls=":") for k in
              ("aid_N1_Q1", "aid_N1_Q20", "aid_N20_Q1", "aid_N20_Q20", "itd_N1", "itd_N20")})
__all__ += ["paper003_loss_curves", "paper003_hyperrep_figure"]


def _mean_band(c: pd.DataFrame, x: str, y: str):
    """Mean and min/max over seeds of ``y`` per ``k`` (all seeds of a variant share k and x)."""
    g = c.groupby("k")
    return (g[x].mean().to_numpy(), g[y].mean().to_numpy(), g[y].min().to_numpy(),
            g[y].max().to_numpy())


def paper003_loss_curves(curves: pd.DataFrame, variants, title: str, profile: str,
                         deviations: str, metrics=(("train_loss", "training loss"),
                                                   ("test_loss", "test loss"))):
    """Paper 003 Figures 1-3: losses of each variant against wall time, Gc and MV.

    Rows: ``metrics``; columns: wall time of the seed batch, gradient calls
    (Gc), Jacobian/Hessian-vector products (MV). Lines: mean over seeds;
    bands: min-max over seeds. ``variants``: keys of ``curves.variant`` in
    legend order.
    """
    setup()
    xs = (("time_s", f"wall time (s, batch of {curves.seed.nunique()} seeds)"),
          ("grad_calls", "gradient calls Gc"),
          ("mv_calls", "Jacobian/Hessian-vector products MV"))
    fig, axes = plt.subplots(len(metrics), len(xs), figsize=(11, 3.0 * len(metrics)),
                             squeeze=False)
    for i, (m, mlabel) in enumerate(metrics):
        for j, (x, xlabel) in enumerate(xs):
            ax = axes[i][j]
            for key in variants:
                c = curves[curves.variant == key]
                if c.empty:
                    raise KeyError(f"variant {key!r} not in the curves.")
                if x != "time_s":
                    c = c[c[x] > 0]                  # log axis: drop the initial point
                xv, mean, lo, hi = _mean_band(c, x, m)
                st = dict(STYLE.get(key, {}))
                ax.fill_between(xv, lo, hi, color=st.get("color"), alpha=0.15, lw=0)
                _line(ax, xv, mean, key, c.label.iloc[0], lw=1.2, markevery=max(1, len(xv) // 8))
            ax.set(yscale="log", xlabel=xlabel)
            if x != "time_s":
                ax.set_xscale("log")
            if j == 0:
                ax.set_ylabel(mlabel)
    axes[0][0].legend(loc="upper right", frameon=False)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    footer(fig, profile, deviations)
    return fig


def paper003_hyperrep_figure(curves: pd.DataFrame, groups, profile: str, deviations: str,
                             paper_table=None, table_k=None):
    """Paper 003 Table 3 / Appendix F as curves, one row per group of variants.

    ``groups``: ``[(row title, [variant keys]), ...]`` (e.g. ITD for Table 3, AID for
    Appendix F). Columns: validation loss f(H_k, w_k), exact Phi(H_k), ||grad Phi(H_k)||^2
    against k (mean over seeds, min-max band). The paper's Table 3 values
    (``paper_table``: {variant: values at ``table_k``}) are drawn as stars in the first
    panel of the row holding those variants.
    """
    setup()
    panels = (("val_loss", r"validation loss $f(H_k, w_k)$"),
              ("phi", r"exact $\Phi(H_k) = f(H_k, w^*(H_k))$"),
              ("grad_norm_sq", r"$\|\nabla\Phi(H_k)\|^2$"))
    fig, axes = plt.subplots(len(groups), len(panels), figsize=(12, 3.6 * len(groups)),
                             squeeze=False)
    for row, (title, keys) in zip(axes, groups):
        for ax, (m, label) in zip(row, panels):
            for key in keys:
                c = curves[(curves.variant == key) & (curves.k > 0)]
                if c.empty:
                    raise KeyError(f"variant {key!r} not in the curves.")
                xv, mean, lo, hi = _mean_band(c, "k", m)
                st = dict(STYLE.get(key, {}))
                ax.fill_between(xv, lo, hi, color=st.get("color"), alpha=0.15, lw=0)
                _line(ax, xv, mean, key, c.label.iloc[0], lw=1.2, marker="")
            ax.set(xscale="log", yscale="log", xlabel="outer iteration k", title=f"{title}: {label}")
        if paper_table:
            for key, vals in paper_table.items():
                if key in keys:
                    st = dict(STYLE.get(key, {}))
                    row[0].plot(table_k, vals, ls="", marker="*", markersize=8, color=st.get("color"),
                                label=f"paper Table 3: {key}")
        row[0].legend(loc="upper right", frameon=False, fontsize=6)
    fig.tight_layout()
    footer(fig, profile, deviations)
    return fig


# -- paper 001, Figure 3 and Appendix C (F2SA) --------------------------------------------------

def paper001_feature_learning_figure(summary: pd.DataFrame, curves: pd.DataFrame, fits: pd.DataFrame,
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
    _line(a, m.index, m.values, "ITD", "ITD, mean over seeds")
    row = fits[fits.fit == "mean over seed"].iloc[0]
    pooled = fits[fits.fit == "pooled"].iloc[0]
    k = np.asarray(m.index, float)
    _line(a, k, np.exp(pooled.intercept) * k ** pooled.slope, "fit",
          f"fit: kappa^{row.slope:.2f} [{row.ci_low:.2f}, {row.ci_high:.2f}]")
    for p, ls in ((2, ":"), (3, "-.")):
        _line(a, k, m.values[0] * (k / k[0]) ** p, "reference", f"reference kappa^{p} (through the first mean)",
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


_RW_STYLE = {"itd1": "ITD", "itd1_gd": "ITD_paper_lr", "itdN": "ITD_N", "aidN": "AID_N"}


def paper001_reweighting_figure(curves: pd.DataFrame, summary: pd.DataFrame, profile: str,
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
        _line(axes[0], steps, d.val_loss, st, lab, marker="")
        _line(axes[1], d.grad_calls.clip(lower=1), d.val_loss, st, d.label.iloc[0], marker="")
        _line(axes[2], steps, d.flip_precision, st, d.label.iloc[0], marker="")
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
    for ax in axes:
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=1, frameon=False)
    fig.tight_layout()
    footer(fig, profile, deviations)
    return fig


def paper001_f2sa_figure(curves: pd.DataFrame, summary: pd.DataFrame, gaps: pd.DataFrame, profile: str,
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
            _line(ax, d.k, d.grad_norm_sq, method, f"{method} (single loop)", marker="",
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
