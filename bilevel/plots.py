"""Figure helpers: one style table for every figure of the compendium.

Plots are drawn with matplotlib/seaborn from tidy tables; every figure carries
a footer naming the profile that produced it and its deviations from the paper
(stand-ins), as the compendium's house style requires.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

__all__ = ["STYLE", "setup", "footer", "loglog_slope", "paper001_quadratic_figure1",
           "paper001_quadratic_figure2"]

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
