r"""Paper 004 (tutorial slides on stochastic bilevel algorithms): every algorithm checked numerically.

The helpers of ``notebooks/paper004/01_tutorial.ipynb``, one per section of the
slides; each returns a tidy table that the notebook plots and checks:

* :func:`fd_check`: the implicit-function hypergradient (slides, Eqs. (13)-(16))
  against central finite differences of :math:`\Phi(x) = f(x, y^*(x))`;
* :class:`BA`: Ghadimi and Wang's BA (Algorithm 1) with the *explicit* inverse
  Hessian, run by :func:`bilevel.run` (:func:`ba_runs`);
* :func:`linsys_error_vs_q`: AID-BiO's hypergradient error after Q steps of CG
  or of the Neumann series (slides, Algorithm 7 and Eq. (24));
* :func:`itd_cost_vs_T`: ITD in reverse and forward mode (slides, Eqs. (30)-(32)),
  bytes saved for the backward pass and time against the number of unrolled
  steps T (:class:`SavedBytes`, :func:`itd_forward_autograd`);
* :func:`tracking_runs`: TTSA vs STABLE (Algorithms 4-6), the tracking error
  :math:`\|y_k - y^*(x_k)\|^2`;
* :func:`momentum_runs`: SOBA, MA-SOBA and SUSTAIN's bilevel momentum (Eqs. (20)-(22)).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch

from ... import _validate as V
from ... import hypergrad, stats
from ...notebook import NONEMPTY, ExperimentConfig, config_section, param, solver_section
from ...oracles import Oracles
from ...problems import conditioned
from ...run import run
from ...solvers import make
from ...solvers.base import Solver, StepInfo

__all__ = ["TutorialConfig", "BAConfig", "TrackingConfig", "MomentumConfig", "fd_check", "BA", "ba_runs",
           "linsys_error_vs_q", "SavedBytes", "itd_forward_autograd", "itd_cost_vs_T", "tracking_runs",
           "momentum_runs", "floor_table", "ratio_interval", "loglog_fit",
           "fd_figure", "ba_figure", "linsys_figure", "itd_figure", "tracking_figure", "momentum_figure"]


# -- 1. the implicit-function hypergradient -----------------------------------------------------

def fd_check(problems: dict, xs: dict, h: float = 1e-5, cg_steps: int = 100) -> pd.DataFrame:
    r"""Per coordinate: the AID hypergradient at the exact :math:`y^*(x)` (CG to convergence),
    the central difference :math:`(\Phi(x + h e_i) - \Phi(x - h e_i))/2h`, and the problem's
    exact ``grad_phi`` (closed form or Newton). ``problems``/``xs``: dicts by name."""
    rows = []
    for name, p in problems.items():
        x = xs[name]
        g_aid, _ = hypergrad.implicit(p, x, p.y_star(x), linsys="cg", steps=cg_steps)
        exact = p.grad_phi(x)
        for i in range(p.dim_x):
            e = torch.zeros_like(x)
            e[i] = h
            fd = (float(p.phi(x + e)) - float(p.phi(x - e))) / (2 * h)
            rows.append({"problem": name, "coordinate": i, "implicit": float(g_aid[i]), "finite_difference": fd,
                         "exact": float(exact[i]), "h": h})
    return pd.DataFrame(rows)


# -- 2. BA with the explicit inverse Hessian -------------------------------------------------------

class BAState(NamedTuple):
    x: torch.Tensor
    y: torch.Tensor


@dataclass(frozen=True)
class BA(Solver):
    r"""BA (Ghadimi and Wang 2018; slides, Algorithm 1) with the explicit inverse Hessian.

    .. math::

        \phi^{t+1} = \phi^t - \beta\nabla_\phi f_l(\theta^k, \phi^t),\ t < T,\qquad
        \theta^{k+1} = \theta^k - \alpha\big[\nabla_\theta f_u - \nabla^2_{\theta\phi}f_l\,
        [\nabla^2_{\phi\phi}f_l]^{-1}\nabla_\phi f_u\big](\theta^k, \phi^{k+1})

    (slides' :math:`\theta, \phi` = our ``x, y``). The Hessian and the cross
    derivative are formed as dense matrices (``torch.autograd.functional``) and
    the system is solved by Cholesky: exact, and :math:`O(d_y^3)` per step. The
    matrices are not counted as oracle calls.

    ==================  ==========  ===========================
    field               slides      meaning
    ==================  ==========  ===========================
    ``inner_steps``     T           LL gradient steps per UL step
    ``inner_lr``        beta        LL step
    ``outer_lr``        alpha       UL step
    ==================  ==========  ===========================
    """

    inner_steps: int = 10
    inner_lr: float = None
    outer_lr: float = None

    def __post_init__(self):
        if not isinstance(self.inner_steps, int) or self.inner_steps < 1:
            raise ValueError(f"BA: inner_steps must be a positive int, got {self.inner_steps!r}.")
        for nm in ("inner_lr", "outer_lr"):
            v = getattr(self, nm)
            if not isinstance(v, (int, float)) or not v > 0:
                raise ValueError(f"BA: {nm} must be a positive number, got {v!r}.")

    def init(self, problem, oracles, generator) -> BAState:
        return BAState(problem.x0.clone(), problem.y0.clone())

    def step(self, state, oracles, generator):
        x, y = state.x, state.y
        for _ in range(self.inner_steps):
            y = y - self.inner_lr * oracles.grad_y_g(x, y)
        g = oracles.problem.g
        H = torch.autograd.functional.hessian(lambda yy: g(x, yy), y)
        Jxy = torch.autograd.functional.jacobian(
            lambda xx: torch.autograd.functional.jacobian(lambda yy: g(xx, yy), y, create_graph=True), x)
        fx, fy = oracles.grad_f(x, y)                        # Jxy[i, j] = d^2 g / dy_i dx_j
        v = torch.cholesky_solve(fy.unsqueeze(-1), torch.linalg.cholesky(H)).squeeze(-1)
        grad = (fx - Jxy.T @ v).detach()
        return BAState((x - self.outer_lr * grad).detach(), y.detach()), StepInfo(x, y, grad)


def ba_runs(problem, steps: int, inner_steps: int, inner_lr: float, outer_lr: float) -> pd.DataFrame:
    """BA (explicit inverse) and AID-BiO (CG, ``dim y`` steps, same loops) on ``problem``, ``steps``
    outer steps each (the slides' K; :func:`bilevel.run`'s ``steps``)."""
    ba = BA(inner_steps=inner_steps, inner_lr=inner_lr, outer_lr=outer_lr)
    aid = make("aid", inner_steps=inner_steps, inner_lr=inner_lr, linsys="cg", linsys_steps=problem.dim_y,
               outer_lr=outer_lr)
    out = []
    for label, s in (("BA (explicit inverse)", ba), ("AID-BiO (CG)", aid)):
        tr = run(s, problem, steps=steps)
        out.append(tr.assign(method=label))
    return pd.concat(out, ignore_index=True)


# -- 3. AID-BiO: CG and Neumann ----------------------------------------------------------------------

def linsys_error_vs_q(problem, x, qs, neumann_lr: float) -> pd.DataFrame:
    r""":math:`\|\widehat\nabla\Phi_Q - \nabla\Phi(x)\|` at the exact :math:`y^*(x)` after Q steps of CG and
    of the Neumann series (step ``neumann_lr``), for every Q in ``qs``."""
    y = problem.y_star(x)
    exact = problem.grad_phi(x)
    e0 = float(torch.linalg.vector_norm(exact))
    rows = []
    for q in qs:
        for method, kw in (("CG", dict(linsys="cg")), ("Neumann", dict(linsys="neumann", lr=neumann_lr))):
            o = Oracles(problem)
            g, _ = hypergrad.implicit(problem, x, y, steps=int(q), oracles=o, **kw)
            rows.append({"method": method, "Q": int(q), "error": float(torch.linalg.vector_norm(g - exact)),
                         "relative_error": float(torch.linalg.vector_norm(g - exact)) / e0,
                         "hvp_calls": o.counts.hvp})
    return pd.DataFrame(rows)


def loglog_fit(x, y, log_x: bool = True) -> tuple[float, float]:
    """Least-squares ``(slope, intercept)`` of log y on log x (or on x when ``log_x`` is False):
    :func:`bilevel.stats.loglog_fit` without its interval (the tutorial's name for it)."""
    f = stats.loglog_fit(x, y, log_x=log_x)
    return f.slope, f.intercept


# -- 4. ITD: forward vs reverse mode ---------------------------------------------------------------------

class SavedBytes:
    """Bytes of the tensors autograd saves for the backward pass, live and peak.

    Use as ``with torch.autograd.graph.saved_tensors_hooks(m.pack, m.unpack)``: every
    saved tensor is wrapped in a box whose finaliser subtracts its bytes when the
    graph releases it, so ``peak`` is the largest amount held at once. Tensors saved
    twice (by two operations) count twice.
    """

    def __init__(self):
        self.live = 0
        self.peak = 0
        self.total = 0

    def pack(self, t):
        n = t.numel() * t.element_size()
        self.live += n
        self.total += n
        self.peak = max(self.peak, self.live)
        return _Box(t, n, self)

    def unpack(self, box):
        return box.t


class _Box:
    __slots__ = ("t", "n", "meter")

    def __init__(self, t, n, meter):
        self.t, self.n, self.meter = t, n, meter

    def __del__(self):
        self.meter.live -= self.n


def itd_forward_autograd(problem, x, y0, steps: int, lr: float):
    r"""Forward-mode ITD with plain reverse-mode products (the slides' :math:`Z_t = A_tZ_{t-1} + B_t`).

    Each step forms :math:`\nabla_y g(x, y^t)` with a graph, applies it to the columns of
    :math:`Z_t` (``dim x`` Hessian-vector products) and to the identity (the cross
    derivative, ``dim y`` products), then drops the graph: memory does not grow with T. Returns
    ``(grad, y^T)``; equals :func:`bilevel.hypergrad.unrolled` in either mode.
    """
    g = problem.g
    x = x.detach()
    y = y0.detach()
    dx, dy = x.numel(), y.numel()
    Z = torch.zeros(dy, dx, dtype=x.dtype, device=x.device)           # d y^t / d x
    for _ in range(steps):
        xl = x.clone().requires_grad_(True)
        yl = y.clone().requires_grad_(True)
        with torch.enable_grad():
            gy, = torch.autograd.grad(g(xl, yl), yl, create_graph=True)
            cols = [torch.autograd.grad(gy, yl, grad_outputs=Z[:, j], retain_graph=True)[0]
                    for j in range(dx)]                              # H Z, column by column
            B = torch.stack([torch.autograd.grad(gy, xl, grad_outputs=e, retain_graph=True)[0]
                             for e in torch.eye(dy, dtype=x.dtype, device=x.device)])   # d(grad_y g)/dx
        HZ = torch.stack(cols, 1)
        Z = (Z - lr * (HZ + B)).detach()
        y = (y - lr * gy).detach()
        del gy, xl, yl
    xl = x.clone().requires_grad_(True)
    yl = y.clone().requires_grad_(True)
    with torch.enable_grad():
        fx, fy = torch.autograd.grad(problem.f(xl, yl), (xl, yl), allow_unused=True, materialize_grads=True)
    return (fx + Z.T @ fy).detach(), y


def _timed(fn, repeats):
    best = float("inf")
    out = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return out, best


MODES_ITD = ("reverse", "forward (autograd)", "forward (torch.func)")


def _itd_call(problem, x, T, lr, mode):
    if mode == "reverse":
        return hypergrad.unrolled(problem, x, problem.y0, steps=T, lr=lr, mode="reverse")
    if mode == "forward (torch.func)":
        return hypergrad.unrolled(problem, x, problem.y0, steps=T, lr=lr, mode="forward")
    return itd_forward_autograd(problem, x, problem.y0, T, lr)


def itd_cost_vs_T(problem, x, Ts, lr: float, repeats: int = 3) -> pd.DataFrame:
    r"""ITD's hypergradient through T GD steps from ``problem.y0`` in three implementations:

    * ``reverse`` (:func:`bilevel.hypergrad.unrolled`, backpropagation through the unrolled steps),
    * ``forward (autograd)`` (:func:`itd_forward_autograd`),
    * ``forward (torch.func)`` (:func:`bilevel.hypergrad.unrolled`, ``mode="forward"``; its memory
      cannot be metered by saved-tensor hooks, which ``torch.func`` disables: NaN).

    Columns: ``peak_saved_bytes`` (:class:`SavedBytes`), ``time_s`` (best of ``repeats``, after
    one warm-up call per mode),
    ``grad_diff``: max abs difference of the estimate from the reverse-mode one.
    """
    rows = []
    for mode in MODES_ITD:                      # warm-up: first calls pay one-off set-up costs
        _itd_call(problem, x, min(int(t) for t in Ts), lr, mode)
    for T in Ts:
        T = int(T)
        ref = None
        for mode in MODES_ITD:
            def fn(mode=mode, T=T):
                return _itd_call(problem, x, T, lr, mode)
            (grad, _), secs = _timed(fn, repeats)
            peak = float("nan")
            if mode != "forward (torch.func)":
                m = SavedBytes()
                with torch.autograd.graph.saved_tensors_hooks(m.pack, m.unpack):
                    fn()
                peak = m.peak
            if ref is None:
                ref = grad
            rows.append({"mode": mode, "T": T, "peak_saved_bytes": peak, "time_s": secs,
                         "grad_diff": float((grad - ref).abs().max()), "dim_x": problem.dim_x,
                         "dim_y": problem.dim_y})
    return pd.DataFrame(rows)


# -- 5-6. stochastic single-loop methods ------------------------------------------------------------------

def _tidy(tr, label, steps):
    t = tr[tr.k < steps]
    return pd.DataFrame({"method": label, "k": t.k.to_numpy(), "replicate": t.block.astype(int).to_numpy(),
                         "inner_err_sq": t.inner_err_sq.to_numpy(), "grad_norm_sq": t.grad_norm_sq.to_numpy()})


def _same(owner, a: str, da: dict, b: str, db: dict, keys: str):
    """ValueError unless the solver sub-sections ``a`` and ``b`` agree on ``keys`` (same step sizes)."""
    for k in keys.split():
        if da[k] != db[k]:
            raise ValueError(f"{owner}: {a}.{k} = {da[k]!r} and {b}.{k} = {db[k]!r} differ; the comparison runs "
                             "both at the same values: set them equal.")


@dataclasses.dataclass(frozen=True)
class BAConfig(ExperimentConfig):
    """Sub-section ``ba`` of ``paper004_tutorial``: ``steps`` (K), the outer steps of :func:`ba_runs`,
    and ``ba`` the hyperparameters of :class:`BA` (AID-BiO runs with the same ones)."""

    steps: int = param(V.INT1, "K")
    ba: dict = solver_section(BA, "inner_steps inner_lr outer_lr")


@dataclasses.dataclass(frozen=True)
class TrackingConfig(ExperimentConfig):
    """Sub-section ``tracking`` of ``paper004_tutorial`` (:func:`tracking_runs`): ``steps`` (K), the number
    of steps; ``ttsa`` and ``stable``, the fields of :class:`~bilevel.solvers.TTSA` and
    :class:`~bilevel.solvers.STABLE` (same step sizes, Neumann series and batch: checked)."""

    steps: int = param(V.INT1, "K")
    ttsa: dict = solver_section("ttsa", "inner_lr outer_lr neumann neumann_steps neumann_lr batch_size")
    stable: dict = solver_section("stable", "inner_lr outer_lr correction neumann_steps neumann_lr batch_size")

    def __post_init__(self):
        super().__post_init__()
        _same("TrackingConfig", "ttsa", self.ttsa, "stable", self.stable,
              "inner_lr outer_lr neumann_steps neumann_lr batch_size")


@dataclasses.dataclass(frozen=True)
class MomentumConfig(ExperimentConfig):
    """Sub-section ``momentum`` of ``paper004_tutorial`` (:func:`momentum_runs`): ``steps`` (K), the number
    of steps; ``soba``, ``ma_soba`` and ``sustain``, the fields of :class:`~bilevel.solvers.SOBA`,
    :class:`~bilevel.solvers.MASOBA` and :class:`~bilevel.solvers.SUSTAIN` (same step sizes and batch:
    checked)."""

    steps: int = param(V.INT1, "K")
    soba: dict = solver_section("soba", "inner_lr outer_lr linsys_lr batch_size")
    ma_soba: dict = solver_section("ma_soba", "inner_lr outer_lr linsys_lr momentum batch_size")
    sustain: dict = solver_section("sustain", "inner_lr outer_lr storm_weight neumann neumann_steps neumann_lr "
                                              "batch_size")

    def __post_init__(self):
        super().__post_init__()
        _same("MomentumConfig", "soba", self.soba, "ma_soba", self.ma_soba, "inner_lr outer_lr linsys_lr batch_size")
        _same("MomentumConfig", "soba", self.soba, "sustain", self.sustain, "inner_lr outer_lr batch_size")


@dataclasses.dataclass(frozen=True)
class TutorialConfig(ExperimentConfig):
    """The values of the tutorial notebook (params section ``paper004_tutorial``), one block per section
    of the notebook: ``fd_h`` (finite differences), ``ba`` (:class:`BAConfig`, :func:`ba_runs`),
    ``linsys_*`` and ``q_max`` (:func:`linsys_error_vs_q`), ``itd_*`` (:func:`itd_cost_vs_T`), the noisy
    quadratic of :func:`tracking_runs` and :func:`momentum_runs` (``stoch_kappa``, ``replicates``) and
    their sub-sections ``tracking`` (:class:`TrackingConfig`) and ``momentum`` (:class:`MomentumConfig`).
    The sub-sections use the names of the functions they reach: ``steps`` is :func:`bilevel.run`'s, and
    the solver sub-sections (:func:`~bilevel.notebook.solver_section`) hold the solvers' own field names,
    passed to them unrenamed."""

    fd_h: float = param(V.POSITIVE, "h")
    ba: BAConfig = config_section(BAConfig)
    linsys_kappa: float = param(V.at_least(1.0), "kappa")
    linsys_dim_y: int = param(V.INT1, "d_y")
    q_max: int = param(V.INT1, "Q")
    itd_Ts: list = param(NONEMPTY, "T")
    itd_repeats: int = param(V.INT1)
    stoch_kappa: float = param(V.at_least(1.0), "kappa")
    replicates: int = param(V.INT1)
    tracking: TrackingConfig = config_section(TrackingConfig)
    momentum: MomentumConfig = config_section(MomentumConfig)
    seed: int = param(V.INT0)


def tracking_runs(cfg: TutorialConfig, *, eval_every: int = 1):
    r"""TTSA vs STABLE (without and with the correction term) on the noisy quadratic, with the
    hyperparameters of ``cfg.tracking`` (kappa ``cfg.stoch_kappa``, ``cfg.replicates`` copies),
    :math:`K` = ``cfg.tracking.steps`` steps each.

    TTSA and STABLE use the same step sizes, Neumann series and minibatch (:class:`TrackingConfig`
    checks it); STABLE without correction is ``cfg.tracking.stable`` with ``correction=False``.
    Returns ``(curves, final)``: per (method, k, replicate) ``inner_err_sq`` (the inner
    iterate each estimate used, against :math:`y^*(x_k)`) and per (method,
    replicate) the final state's :math:`\|y_K - y^*(x_K)\|^2`.
    """
    t, seed = cfg.tracking, cfg.seed
    p = conditioned.quadratic(cfg.stoch_kappa, replicates=cfg.replicates)
    solvers = {"TTSA": make("ttsa", **t.ttsa),
               "STABLE without correction": make("stable", **{**t.stable, "correction": False}),
               "STABLE": make("stable", **t.stable)}
    curves, final = [], []
    for label, s in solvers.items():
        tr = run(s, p, steps=t.steps, seed=seed, eval_every=eval_every)
        curves.append(_tidy(tr, label, t.steps))
        last = tr[tr.k == t.steps]
        final.append(pd.DataFrame({"method": label, "replicate": last.block.astype(int).to_numpy(),
                                   "final_inner_err_sq": last.inner_err_sq.to_numpy(),
                                   "final_grad_norm_sq": last.grad_norm_sq.to_numpy()}))
    return pd.concat(curves, ignore_index=True), pd.concat(final, ignore_index=True)


def momentum_runs(cfg: TutorialConfig, *, eval_every: int = 1) -> pd.DataFrame:
    r"""SOBA and MA-SOBA (momentum on the UL direction, slides Eq. (20)), and SUSTAIN with its
    ``storm_weight`` (bilevel momentum, Eqs. (21)-(22)) vs SUSTAIN with weight 1 (no momentum), with the
    hyperparameters of ``cfg.momentum`` (same step sizes: :class:`MomentumConfig` checks it), ``cfg.momentum.steps``
    steps each on the noisy quadratic. Per (method, k, replicate) ``grad_norm_sq``."""
    m, seed = cfg.momentum, cfg.seed
    p = conditioned.quadratic(cfg.stoch_kappa, replicates=cfg.replicates)
    solvers = {"SOBA": make("soba", **m.soba),
               "MA-SOBA": make("ma_soba", **m.ma_soba),
               "SUSTAIN, no momentum (weight 1)": make("sustain", **{**m.sustain, "storm_weight": 1.0}),
               "SUSTAIN": make("sustain", **m.sustain)}
    out = []
    for label, s in solvers.items():
        tr = run(s, p, steps=m.steps, seed=seed, eval_every=eval_every)
        out.append(_tidy(tr, label, m.steps))
    return pd.concat(out, ignore_index=True)


def floor_table(curves: pd.DataFrame, column: str, start: int) -> pd.DataFrame:
    """Mean of ``column`` over k >= ``start`` per method: per-replicate means, their mean and a
    95 % bootstrap interval over replicates (1000 draws, seed 0)."""
    rng = np.random.default_rng(0)
    rows = []
    for m, d in curves[curves.k >= start].groupby("method", sort=False):
        per = d.groupby("replicate")[column].mean().to_numpy()
        boots = rng.choice(per, size=(1000, per.size), replace=True).mean(1)
        rows.append({"method": m, "mean": float(per.mean()), "lo": float(np.percentile(boots, 2.5)),
                     "hi": float(np.percentile(boots, 97.5)), "replicates": per.size, "from_k": start})
    return pd.DataFrame(rows)


# -- figures ----------------------------------------------------------------------------------------------

def _fig(ncols=1, w=4.2, h=3.3):
    import matplotlib.pyplot as plt

    from ...plots import setup
    setup()
    fig, axes = plt.subplots(1, ncols, figsize=(w * ncols, h), squeeze=False)
    return fig, axes[0]


def _finish(fig, profile, deviations):
    from ...plots import footer
    fig.tight_layout()
    footer(fig, profile, deviations)
    return fig


def fd_figure(df, profile, deviations=""):
    """Implicit-function hypergradient vs central finite differences, one point per coordinate."""
    fig, (ax,) = _fig()
    for name, d in df.groupby("problem"):
        ax.plot(d.finite_difference, d.implicit, "o", ms=4, label=name)
    lim = [min(df.finite_difference.min(), df.implicit.min()), max(df.finite_difference.max(), df.implicit.max())]
    ax.plot(lim, lim, color="#444444", lw=0.7, ls=":")
    ax.set(xlabel="central finite difference of Φ", ylabel="implicit-function hypergradient",
           title="∇Φ: implicit function theorem vs finite differences")
    ax.legend(frameon=False)
    return _finish(fig, profile, deviations)


def ba_figure(df, profile, deviations=""):
    """||grad Phi(x_k)||^2 of BA (explicit inverse) and AID-BiO (CG) vs k."""
    fig, (ax,) = _fig()
    for (m, ls) in (("BA (explicit inverse)", "-"), ("AID-BiO (CG)", "--")):
        d = df[df.method == m]
        ax.plot(d.k, d.grad_norm_sq, ls=ls, label=m)
    ax.set(yscale="log", xlabel="outer iteration k", ylabel="‖∇Φ(x_k)‖²", title="BA with the explicit inverse Hessian")
    ax.legend(frameon=False)
    return _finish(fig, profile, deviations)


def linsys_figure(df, rate, profile, deviations=""):
    """Hypergradient error vs Q for CG and Neumann, with the Neumann rate (1 - mu/L)^Q."""
    fig, (ax,) = _fig()
    for m, mk in (("CG", "o"), ("Neumann", "s")):
        d = df[df.method == m]
        ax.plot(d.Q, np.maximum(d.relative_error, 1e-17), marker=mk, ms=3, label=m)
    d = df[df.method == "Neumann"]
    ax.plot(d.Q, d.relative_error.iloc[0] * (1 - rate) ** (d.Q - d.Q.iloc[0]), color="#7f7f7f", ls=":",
            label=f"(1 - μ/L)^Q, μ/L = {rate:.3g}")
    ax.set(yscale="log", xlabel="Q (Hessian-vector products)", ylabel="‖∇̂Φ_Q − ∇Φ‖ / ‖∇Φ‖",
           title="AID-BiO: CG vs Neumann series")
    ax.legend(frameon=False)
    return _finish(fig, profile, deviations)


def itd_figure(df, profile, deviations=""):
    """ITD forward vs reverse: peak saved bytes (left) and time (right) vs T."""
    fig, (a, b) = _fig(2)
    for mode, d in df.groupby("mode", sort=False):
        if d.peak_saved_bytes.notna().any():
            a.plot(d["T"], d.peak_saved_bytes, marker="o", ms=3, label=mode)
        b.plot(d["T"], d.time_s, marker="o", ms=3, label=mode)
    a.set(xscale="log", yscale="log", xlabel="unrolled steps T", ylabel="peak bytes saved for backward",
          title="ITD memory")
    b.set(xscale="log", yscale="log", xlabel="unrolled steps T", ylabel="time (s, best of repeats)", title="ITD time")
    for ax in (a, b):
        ax.legend(frameon=False)
    return _finish(fig, profile, deviations)


def _mean_curve(ax, curves, column, method, **kw):
    d = curves[curves.method == method].groupby("k")[column].mean()
    ax.plot(d.index, d.to_numpy(), label=method, **kw)


def tracking_figure(curves, profile, deviations=""):
    """Replicate-mean tracking error ||y_k - y*(x_k)||^2 vs k: TTSA, STABLE without and with CT."""
    fig, (ax,) = _fig()
    for m in curves.method.unique():
        _mean_curve(ax, curves, "inner_err_sq", m, lw=0.9)
    ax.set(yscale="log", xlabel="iteration k", ylabel="mean ‖y_k − y*(x_k)‖²", title="TTSA vs STABLE: tracking error")
    ax.legend(frameon=False)
    return _finish(fig, profile, deviations)


def momentum_figure(curves, profile, deviations=""):
    """Replicate-mean ||grad Phi(x_k)||^2 vs k: SOBA, MA-SOBA, SUSTAIN with and without momentum."""
    fig, (ax,) = _fig()
    for m in curves.method.unique():
        _mean_curve(ax, curves, "grad_norm_sq", m, lw=0.9)
    ax.set(yscale="log", xlabel="iteration k", ylabel="mean ‖∇Φ(x_k)‖²", title="bilevel momentum vs plain")
    ax.legend(frameon=False, fontsize=6)
    return _finish(fig, profile, deviations)


def ratio_interval(curves: pd.DataFrame, column: str, start: int, num: str, den: str, n_boot: int = 1000):
    """``(ratio, lo, hi)``: mean over k >= ``start`` and replicates of ``column`` for method ``num``
    divided by that of ``den``, with a 95 % bootstrap interval (replicates resampled per method)."""
    rng = np.random.default_rng(0)
    d = curves[curves.k >= start]
    a = d[d.method == num].groupby("replicate")[column].mean().to_numpy()
    b = d[d.method == den].groupby("replicate")[column].mean().to_numpy()
    ra = rng.choice(a, size=(n_boot, a.size)).mean(1)
    rb = rng.choice(b, size=(n_boot, b.size)).mean(1)
    r = ra / rb
    return float(a.mean() / b.mean()), float(np.percentile(r, 2.5)), float(np.percentile(r, 97.5))
