"""Figure functions of paper 002 (UniBiO): Example 3 (Figures 1, 5) and the Appendix E.1 baselines.

Tidy tables in, a matplotlib figure out; the style table and footer are :mod:`bilevel.plots`.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ...plots import STYLE, footer, line, setup

__all__ = ['example3_figure1', 'rate_figure', 'baselines_figure']

#: plotted values are clipped at this floor (log axes)
_FLOOR = 1e-6


def _noise_title(i, var):
    letter = "abcdefgh"[i] if i < 8 else str(i)
    return f"({letter}) deterministic" if var == 0 else f"({letter}) noise variance {var:g}"


def example3_figure1(curves: pd.DataFrame, profile: str, deviations: str,
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
            line(ax, cp.t, cp[metric], f"p={p}", f"p = {p}", lw=0.9)
        ax.set(xlabel="iteration t", title=_noise_title(i, var), ylim=(0, None))
        ax.legend(loc="upper right", frameon=False)
    axes[0][0].set_ylabel(ylabel)
    fig.tight_layout()
    footer(fig, profile, deviations)
    return fig


def rate_figure(curves: pd.DataFrame, summary: pd.DataFrame, profile: str, deviations: str):
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
        line(a, T, cp.avg_hypergrad_at_y, f"p={int(row.p)}", f"p = {int(row.p)}", lw=1.2)
        line(a, T, np.exp(row.log_c) * T ** row.slope, f"p={int(row.p)}",
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


def baselines_figure(curves: pd.DataFrame, profile: str, deviations: str):
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
            line(ax, cm.t, np.maximum(cm.grad_norm, _FLOOR), label,
                  f"{label} (UL {r.outer_lr:g}, LL {r.inner_lr:g})", marker="", lw=1.0)
        ax.set(yscale="log", xlabel="iteration t", title=f"p = {int(p)}")
        ax.legend(loc="center right", frameon=True, framealpha=0.9, fontsize=6)
    axes[0][0].set_ylabel(r"$|\nabla\Phi(x_t)|$ (ground truth)")
    fig.tight_layout()
    footer(fig, profile, deviations)
    return fig
