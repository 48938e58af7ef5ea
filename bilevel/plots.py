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
import numpy as np
import pandas as pd
import seaborn as sns

__all__ = ["STYLE", "setup", "footer", "line", "mean_band"]

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
    "UniBiO (decaying UL step)": dict(color="#9467bd", marker="", ls="--"),
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


def line(ax, x, y, key, label, **kw):
    st = dict(STYLE.get(key, {}))
    st.update(kw)
    ax.plot(x, y, label=label, markersize=3, **st)


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


def mean_band(c: pd.DataFrame, x: str, y: str):
    """Mean and min/max over seeds of ``y`` per ``k`` (all seeds of a variant share k and x)."""
    g = c.groupby("k")
    return (g[x].mean().to_numpy(), g[y].mean().to_numpy(), g[y].min().to_numpy(),
            g[y].max().to_numpy())



