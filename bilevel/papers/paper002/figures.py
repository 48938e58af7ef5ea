"""Figure functions of paper 002 (UniBiO): Example 3 (Figures 1, 5) and the Appendix E.1 baselines.

Tidy tables in, a matplotlib figure out; the style table and footer are :mod:`bilevel.plots`.
"""

from __future__ import annotations

import dataclasses

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ...notebook import ExperimentConfig
from ...plots import STYLE, footer, line, setup

__all__ = ['Example3FiguresConfig', 'example3_figure1', 'rate_figure', 'baselines_figure']


@dataclasses.dataclass(frozen=True)
class Example3FiguresConfig(ExperimentConfig):
    """The values of the Example 3 figures notebook (params section ``paper002_example3_figures``): none
    (the figures read everything from the results); a key added to the section fails until it is a
    field here."""


#: plotted values are clipped at this floor (log axes)
_FLOOR = 1e-6


def _noise_title(i, var):
    letter = "abcdefgh"[i] if i < 8 else str(i)
    return f"({letter}) deterministic" if var == 0 else f"({letter}) noise variance {var:g}"


def _family(df: pd.DataFrame, lr_rule: str = "per_p", inner_schedule: str = "code") -> pd.DataFrame:
    """Rows of one run family of paper 002's Example 3 tables (tables without the columns: main runs)."""
    keep = np.ones(len(df), bool)
    for col, val, default in (("lr_rule", lr_rule, "per_p"), ("inner_schedule", inner_schedule, "code")):
        if col in df:
            keep &= (df[col] == val).to_numpy()
        elif val != default:
            keep[:] = False
    return df[keep]


def example3_figure1(curves: pd.DataFrame, profile: str, deviations: str,
                              metric: str = "hypergrad_at_y",
                              ylabel: str = r"$|\cos x_t\cos(y_t^{p-1})|$ (Thm 4.1 at own $y_t$)"):
    """Paper 002 Figure 1 (a)-(d): UniBiO's hypergradient norm per iteration (linear axis, as in
    the paper), one curve per p, one panel per noise level (``noise_variance = 0``: deterministic).
    Top row: the paper's UL step per p; bottom row (if the table has ``lr_rule = "equal"`` runs):
    the control with one UL step for every p."""
    setup()
    main, equal = _family(curves), _family(curves, "equal")
    rows = [(main, "per-p UL step")] + ([(equal, "one UL step for all p")] if len(equal) else [])
    levels = sorted(main.noise_variance.unique())
    fig, axes = plt.subplots(len(rows), len(levels), figsize=(3.3 * len(levels), 3.3 * len(rows)),
                             sharey=True, squeeze=False)
    for r, (data, what) in enumerate(rows):
        for i, (ax, var) in enumerate(zip(axes[r], levels)):
            c = data[data.noise_variance == var]
            for p in sorted(c.p.unique()):
                cp = c[c.p == p].sort_values("t")
                eta = f", $\\eta$={cp.outer_lr.iloc[0]:g}" if "outer_lr" in cp else ""
                line(ax, cp.t, cp[metric], f"p={p}", f"p = {p}{eta}", lw=0.9)
            title = _noise_title(i + r * len(levels), var)
            ax.set(xlabel="iteration t", title=f"{title}\n{what}", ylim=(0, None))
            ax.legend(loc="upper right", frameon=False)
        axes[r][0].set_ylabel(ylabel)
    fig.tight_layout()
    footer(fig, profile, deviations)
    return fig


def rate_figure(curves: pd.DataFrame, summary: pd.DataFrame, profile: str, deviations: str):
    """Paper 002 Figure 5 / App. E.3 (deterministic runs): (a) averaged hypergradient
    (1/T) sum_t |h_t| vs T with the power law C T^slope fitted over T >= fit_from, per p, at the paper's
    per-p UL steps; (b) the same at one UL step for all p (control, if run); (c) the slopes: per-p steps
    fitted over T >= fit_from and over every T, and the equal-step control; (d) lower-level steps per
    outer iteration with the code's schedule and the Theorem C.5 stand-in, with the oracle calls per outer
    iteration (gradient calls Gc, matrix-vector products MV). Runtime is not plotted: on this 1-D problem it
    measures per-call overhead, not work."""
    setup()
    fig, (a, b, c, d) = plt.subplots(1, 4, figsize=(15, 3.8), gridspec_kw=dict(width_ratios=[1.3, 1.3, 1, 1]))
    main = _family(summary)
    s = main[main.noise_variance == 0].sort_values("p")
    fit_from = int(s.fit_from.iloc[0]) if "fit_from" in s else 1
    for ax, rule, what in ((a, "per_p", "per-p UL step"), (b, "equal", "one UL step for all p")):
        ss = _family(summary, rule)
        ss = ss[ss.noise_variance == 0].sort_values("p")
        cc = _family(curves, rule)
        cc = cc[cc.noise_variance == 0]
        if not len(ss):
            ax.set_axis_off()
            continue
        for _, row in ss.iterrows():
            cp = cc[cc.p == row.p].sort_values("t")
            T = cp.t.to_numpy() + 1
            line(ax, T, cp.avg_hypergrad_at_y, f"p={int(row.p)}",
                  f"p = {int(row.p)} ($\\eta$={row.outer_lr:g})", lw=1.2)
            Tf = T[T >= fit_from]
            line(ax, Tf, np.exp(row.log_c) * Tf ** row.slope, f"p={int(row.p)}",
                  f"fit: slope {row.slope:.3f}", ls="--", lw=0.9)
        ax.axvline(fit_from, color="#888888", lw=0.6, ls=":")
        ax.set(xscale="log", yscale="log", xlabel="T (outer iterations)",
               ylabel=r"$\frac{1}{T}\sum_{t<T}|h_t|$",
               title=f"({'ab'[ax is b]}) averaged hypergradient, {what}\n(fit over T $\\geq$ {fit_from})")
        ax.legend(loc="lower left", frameon=False, ncol=2, fontsize=6)
    ps = s.p.astype(int).to_numpy()
    bars = [("slope", s.slope.to_numpy(), f"per-p $\\eta$, T$\\geq${fit_from}", "#555555")]
    if "slope_all" in s:
        bars.append(("slope_all", s.slope_all.to_numpy(), "per-p $\\eta$, every T", "#aaaaaa"))
    e = _family(summary, "equal")
    e = e[e.noise_variance == 0].sort_values("p")
    if len(e):
        bars.append(("equal", e.slope.to_numpy(), f"$\\eta$={e.outer_lr.iloc[0]:g} for all p, T$\\geq${fit_from}",
                     "#9467bd"))
    w = 0.8 / len(bars)
    xs = np.arange(len(ps))
    for j, (_, v, lab, col) in enumerate(bars):
        c.bar(xs + (j - (len(bars) - 1) / 2) * w, v, width=w, color=col, label=lab)
        for x, y in zip(xs + (j - (len(bars) - 1) / 2) * w, v):
            c.text(x, y, f"{y:.2f}", ha="center", va="top" if y < 0 else "bottom", fontsize=5)
    c.axhline(0, color="#444444", lw=0.6)
    c.set_xticks(xs, [str(p) for p in ps])
    c.set(xlabel="p", ylabel="fitted slope", title="(c) fitted slopes (more negative = faster)")
    c.legend(loc="lower right", frameon=True, fontsize=6)
    sched = [("code", "code schedule (K=100)", "#bbbbbb")]
    c5 = _family(summary, "per_p", "theorem_c5")
    c5 = c5[c5.noise_variance == 0].sort_values("p")
    if len(c5):
        sched.append(("theorem_c5", "Thm C.5 stand-in ($T_1$=5p/2)", "#444444"))
    w = 0.8 / len(sched)
    for j, (name, lab, col) in enumerate(sched):
        ss = s if name == "code" else c5
        x = xs + (j - (len(sched) - 1) / 2) * w
        d.bar(x, ss.inner_steps_per_iter, width=w, color=col, label=lab)
        for xi, (_, r) in zip(x, ss.iterrows()):
            d.text(xi, r.inner_steps_per_iter,
                   f"{r.inner_steps_per_iter:g}\nGc {r.grad_calls / r['T']:.4g}\nMV {r.mv_calls / r['T']:.4g}",
                   ha="center", va="bottom", fontsize=4.5)
    d.set_xticks(xs, [str(p) for p in ps])
    d.set(xlabel="p", ylabel="Epoch-SGD steps per outer iteration",
          title="(d) inner iterations and oracle calls\n(Gc, MV per outer iteration)")
    d.margins(y=0.25)
    d.legend(loc="upper left", frameon=True, fontsize=6)
    fig.tight_layout()
    footer(fig, profile, deviations)
    return fig


def baselines_figure(curves: pd.DataFrame, profile: str, deviations: str):
    """Paper 002 App. E.1: |grad Phi(x_t)| per iteration for UniBiO and the baselines at their
    grid-searched learning rates, one panel per p. Values below 1e-6 are clipped to 1e-6 (the
    dotted line, labelled as a clip: the curves below it are not drawn as they are)."""
    setup()
    ps = sorted(curves.p.unique())
    fig, axes = plt.subplots(1, len(ps), figsize=(3.3 * len(ps), 3.5), sharey=True, squeeze=False)
    for ax, p in zip(axes[0], ps):
        c = curves[curves.p == p]
        for label in c.label.unique():
            cm = c[c.label == label].sort_values("t")
            r = cm.iloc[0]
            decay = f", decay {r.outer_lr_decay:g}" if "outer_lr_decay" in cm and r.outer_lr_decay else ""
            line(ax, cm.t, np.maximum(cm.grad_norm, _FLOOR), label,
                  f"{label} (UL {r.outer_lr:g}{decay}, LL {r.inner_lr:g})", marker="", lw=1.0)
        ax.axhline(_FLOOR, color="#444444", lw=0.6, ls=":")
        ax.text(0.98, _FLOOR * 2.5, f"clip: values < {_FLOOR:g} drawn at {_FLOOR:g}", fontsize=5.5, ha="right",
                color="#444444", transform=ax.get_yaxis_transform(),
                bbox=dict(facecolor="white", edgecolor="none", alpha=0.85, pad=1))
        ax.set(yscale="log", xlabel="iteration t", title=f"p = {int(p)}")
        ax.legend(loc="center right", frameon=True, framealpha=0.9, fontsize=5.5)
    axes[0][0].set_ylabel(r"$|\nabla\Phi(x_t)|$ (ground truth, clipped at $10^{-6}$)")
    fig.tight_layout()
    footer(fig, profile, deviations)
    return fig
