"""Figure functions of paper 003 (Ji et al. 2022, loops): MNIST loss curves and the hyper-representation figure.

Tidy tables in, a matplotlib figure out; the style table and footer are :mod:`bilevel.plots`.
"""

from __future__ import annotations

import dataclasses

import matplotlib.pyplot as plt
import pandas as pd

from ..._validate import NONNEG, POSITIVE
from ...notebook import ExperimentConfig, param
from ...plots import STYLE, footer, line, mean_band, setup

__all__ = ['MnistFiguresConfig', 'HyperrepTablesConfig', 'loss_curves', 'hyperrep_figure']


@dataclasses.dataclass(frozen=True)
class MnistFiguresConfig(ExperimentConfig):
    """The values of the Figures 1-3 notebook (params section ``paper003_mnist_figures``):
    ``target_test_loss``, the fixed test loss of :func:`~bilevel.papers.paper003.experiments.hitting_table`;
    ``close_rtol``, the relative test-loss difference up to which Q = 1 and Q > 1 count as close
    (:func:`~bilevel.papers.paper003.experiments.mnist_claims`)."""

    target_test_loss: float = param(POSITIVE)
    close_rtol: float = param(NONNEG)


@dataclasses.dataclass(frozen=True)
class HyperrepTablesConfig(ExperimentConfig):
    """The values of the Table 3 / Appendix F notebook (params section ``paper003_hyperrep_tables``):
    ``table_rtol``, the two-sided relative tolerance of each Table 3 cell of seed 0
    (:func:`~bilevel.papers.paper003.experiments.table3_comparison`, ``rtol`` of the claims);
    ``plateau_factor``, how many times No-loop ITD's loss must exceed N-N-loop's
    (:func:`~bilevel.papers.paper003.experiments.hyperrep_claims`)."""

    plateau_factor: float = param(POSITIVE)
    table_rtol: float = param(NONNEG)


def loss_curves(curves: pd.DataFrame, variants, title: str, profile: str,
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
                xv, mean, lo, hi = mean_band(c, x, m)
                st = dict(STYLE.get(key, {}))
                ax.fill_between(xv, lo, hi, color=st.get("color"), alpha=0.15, lw=0)
                line(ax, xv, mean, key, c.label.iloc[0], lw=1.2, markevery=max(1, len(xv) // 8))
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


def hyperrep_figure(curves: pd.DataFrame, groups, profile: str, deviations: str,
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
                xv, mean, lo, hi = mean_band(c, "k", m)
                st = dict(STYLE.get(key, {}))
                ax.fill_between(xv, lo, hi, color=st.get("color"), alpha=0.15, lw=0)
                line(ax, xv, mean, key, c.label.iloc[0], lw=1.2, marker="")
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
