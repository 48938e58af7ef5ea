"""Tests of the AID and ITD solvers: oracle arithmetic per outer step, convergence,
paper 001's closed-form recursions and plateaus, stacking, dtype and device."""

from __future__ import annotations

import pytest
import torch

import bilevel as bl
from bilevel.oracles import Oracles
from bilevel.problems import quadratic
from bilevel.solvers import AID, ITD

from helpers import steps_of  # noqa: E402

F64 = torch.float64
COUNT_COLS = ["grad_f_calls", "grad_g_calls", "hvp_calls", "jvp_calls"]




# -- oracle counts ---------------------------------------------------------------

def per_step_counts(solver, dim_x):
    """(grad_f, grad_g, hvp, jvp) per outer step, from each algorithm's arithmetic."""
    N = solver.inner_steps
    if isinstance(solver, AID):
        Q = solver.linsys_steps
        hvp = Q + 1 if (solver.linsys == "neumann" and solver.warm_start) else Q
        return (1, N, hvp, 1)
    if solver.mode == "reverse":
        return (1, N, N - 1, N)
    return (1, N, N * dim_x, N * dim_x)


COUNT_CASES = [
    AID(inner_steps=3, inner_lr=0.5, linsys="gd", linsys_steps=4, linsys_lr=0.5, outer_lr=0.1),
    AID(inner_steps=1, inner_lr=0.5, linsys="gd", linsys_steps=1, linsys_lr=0.5, outer_lr=0.1),
    AID(inner_steps=2, inner_lr=0.5, linsys="neumann", linsys_steps=5, linsys_lr=0.5, outer_lr=0.1),
    AID(inner_steps=2, inner_lr=0.5, linsys="neumann", linsys_steps=5, linsys_lr=0.5, outer_lr=0.1,
        warm_start=False),
    AID(inner_steps=2, inner_lr=0.5, linsys="gd", linsys_steps=3, linsys_lr=0.5, outer_lr=0.1,
        warm_start=False),
    ITD(inner_steps=1, inner_lr=0.5, outer_lr=0.1),
    ITD(inner_steps=4, inner_lr=0.5, outer_lr=0.1),
    ITD(inner_steps=3, inner_lr=0.5, outer_lr=0.1, mode="forward"),
    ITD(inner_steps=1, inner_lr=0.5, outer_lr=0.1, mode="forward"),
]


@pytest.mark.parametrize("solver", COUNT_CASES, ids=lambda s: repr(s)[:60])
def test_trace_counts_equal_per_step_arithmetic(solver):
    p = quadratic.random(3, 4, seed=0)
    K = 4
    tr = bl.run(solver, p, steps=K)
    pf, pg, ph, pj = per_step_counts(solver, p.dim_x)
    assert list(tr.k) == list(range(K + 1))
    for k, row in tr.iterrows():
        m = min(row.k + 1, K)       # row k < K: counts after step k; final row: after K steps
        assert (row.grad_f_calls, row.grad_g_calls, row.hvp_calls, row.jvp_calls) == \
            (m * pf, m * pg, m * ph, m * pj), (k, row[COUNT_COLS].tolist())
        assert row.grad_calls == m * (pf + pg)
        assert row.mv_calls == m * (ph + pj)
        assert row.samples == 0
    final = tr.iloc[-1]
    assert final.k == K and final.grad_calls == K * (pf + pg) and final.mv_calls == K * (ph + pj)


def test_aid_gd_counts_are_paper_gc_mv():
    """AID(N, Q, gd): Gc = N + 1, MV = Q + 1 per outer step (paper 003)."""
    p = quadratic.random(2, 3, seed=1)
    for N, Q in ((1, 1), (5, 2), (2, 7)):
        s = AID(inner_steps=N, inner_lr=0.5, linsys="gd", linsys_steps=Q, linsys_lr=0.5, outer_lr=0.1)
        tr = bl.run(s, p, steps=3)
        assert tr.grad_calls.iloc[-1] == 3 * (N + 1)
        assert tr.mv_calls.iloc[-1] == 3 * (Q + 1)


def test_itd_counts_with_eval_every():
    p = quadratic.random(2, 3, seed=1)
    tr = bl.run(ITD(inner_steps=3, inner_lr=0.5, outer_lr=0.1), p, steps=7, eval_every=3)
    assert list(tr.k) == [0, 3, 6, 7]
    assert list(tr.grad_g_calls) == [3, 12, 21, 21]
    assert list(tr.jvp_calls) == [3, 12, 21, 21]
    assert list(tr.hvp_calls) == [2, 8, 14, 14]


# -- convergence -----------------------------------------------------------------

@pytest.mark.parametrize("linsys", ["gd", "cg", "neumann"])
def test_aid_converges_to_stationary_point_paper001(linsys):
    kappa = 2.0
    p = quadratic.kappa2d(kappa)
    L = p.info["L"]
    s = AID(inner_steps=10, inner_lr=1 / L, linsys=linsys, linsys_steps=10,
            linsys_lr=None if linsys == "cg" else 1 / L, outer_lr=1 / L)
    o = Oracles(p)
    st = s.init(p, o, torch.Generator())
    for _ in range(50):
        st, info = s.step(st, o, torch.Generator())
    gn = float((p.grad_phi(st.x) ** 2).sum())
    assert gn < 1e-10
    assert float(((info.hypergrad - p.grad_phi(info.x)) ** 2).sum()) < 1e-10
    # stationary point: Z_x x* = -0.1 [1, kappa], i.e. x* = -0.1 [1/L, kappa/mu]
    torch.testing.assert_close(st.x, torch.tensor([-0.1 / L, -0.1 * kappa / 0.1], dtype=F64),
                               rtol=0, atol=1e-5)
    tr = bl.run(s, p, steps=50, eval_every=25)
    assert tr.grad_norm_sq.iloc[0] > 1e-2
    assert tr.grad_norm_sq.iloc[-1] == gn
    assert tr.grad_norm_sq.iloc[-1] < 1e-10
    assert tr.inner_err_sq.iloc[-1] < 1e-10


def test_aid_converges_random_problem():
    p = quadratic.random(3, 5, seed=3)
    s = AID(inner_steps=10, inner_lr=0.5, linsys="cg", linsys_steps=10, outer_lr=0.8)
    tr = bl.run(s, p, steps=60, eval_every=30)
    assert tr.grad_norm_sq.iloc[-1] < 1e-10 * tr.grad_norm_sq.iloc[0]


def itd_plateau(kappa, N):
    r"""Closed-form fixed point of ITD(N, alpha=1/L) on paper 001:
    \hat\nabla\Phi = Z_x x + 0.1 L (I - (I - Z_y/L)^N) Z_y^{-1} 1, so at its zero
    \|\nabla\Phi\|^2 = (0.1 kappa (1 - 1/kappa)^N)^2 (N = 1: 0.01 (kappa - 1)^2)."""
    return (0.1 * kappa * (1 - 1 / kappa) ** N) ** 2


@pytest.mark.parametrize("kappa", [2.0, 4.0])
def test_itd_single_loop_plateau_paper001(kappa):
    p = quadratic.kappa2d(kappa)
    L = p.info["L"]
    s = ITD(inner_steps=1, inner_lr=1 / L, outer_lr=1 / L)
    tr = bl.run(s, p, steps=120, eval_every=40)
    M = p.info["M"]
    expect = M ** 2 * (kappa - 1) ** 2           # setups.md C.1
    assert expect == pytest.approx(0.01 * (kappa - 1) ** 2, rel=1e-12)
    assert tr.grad_norm_sq.iloc[-1] == pytest.approx(expect, rel=1e-9, abs=0)


@pytest.mark.parametrize("kappa", [2.0, 4.0])
def test_itd_larger_N_smaller_plateau(kappa):
    p = quadratic.kappa2d(kappa)
    L = p.info["L"]
    plateaus = []
    for N in (1, 2, 4, 8):
        tr = bl.run(ITD(inner_steps=N, inner_lr=1 / L, outer_lr=1 / L), p, steps=120, eval_every=120)
        plateaus.append(tr.grad_norm_sq.iloc[-1])
        assert plateaus[-1] == pytest.approx(itd_plateau(kappa, N), rel=1e-8)
    assert all(b < a for a, b in zip(plateaus, plateaus[1:])), plateaus


@pytest.mark.parametrize("warm", [True, False])
def test_aid_single_loop_closed_form_recursion_paper001(warm):
    """AID(N=1, Q=1, gd) on paper 001: v_k = (I - eta Z_y) v_{k-1} + 0.1 eta 1,
    estimate = Z_x x_k + L v_k; y_k = y - alpha (Z_y y - L x_k + 1) from y_{k-1} (warm) or y0."""
    kappa, alpha, eta, beta = 3.0, 2.0, 1.5, 0.7
    p = quadratic.kappa2d(kappa, x0=[0.5, -1.0], y0=[0.3, 0.2])
    L, mu = p.info["L"], p.info["mu"]
    z = torch.tensor([L, mu], dtype=F64)
    s = AID(inner_steps=1, inner_lr=alpha, linsys="gd", linsys_steps=1, linsys_lr=eta,
            outer_lr=beta, warm_start=warm)
    K = 6
    states, infos, _ = steps_of(s, p, K)
    x, y, v = p.x0.clone(), p.y0.clone(), torch.zeros(2, dtype=F64)
    for k in range(K):
        y_in = y if warm else p.y0
        v_in = v if warm else torch.zeros(2, dtype=F64)
        y = y_in - alpha * (z * y_in - L * x + 1)
        v = (1 - eta * z) * v_in + 0.1 * eta
        est = z * x + L * v
        info = infos[k]
        torch.testing.assert_close(info.x, x, rtol=0, atol=1e-14)
        torch.testing.assert_close(info.y, y, rtol=0, atol=1e-13)
        torch.testing.assert_close(info.hypergrad, est, rtol=0, atol=1e-13)
        x = x - beta * est
        torch.testing.assert_close(states[k + 1].x, x, rtol=0, atol=1e-13)
        if warm:
            torch.testing.assert_close(states[k + 1].v, v, rtol=0, atol=1e-14)
    if not warm:
        # every estimate used v = 0.1 eta 1 and y = y0 - alpha grad g(x_k, y0)
        for info in infos:
            torch.testing.assert_close(info.hypergrad, z * info.x + L * 0.1 * eta, rtol=0, atol=1e-14)


def test_aid_warm_start_false_differs():
    p = quadratic.kappa2d(3.0, x0=[0.5, -1.0], y0=[0.3, 0.2])
    kw = dict(inner_steps=1, inner_lr=2.0, linsys="gd", linsys_steps=1, linsys_lr=1.5, outer_lr=0.7)
    _, iw, _ = steps_of(AID(**kw), p, 4)
    _, ic, _ = steps_of(AID(**kw, warm_start=False), p, 4)
    torch.testing.assert_close(iw[0].hypergrad, ic[0].hypergrad, rtol=0, atol=0)   # same first step
    assert float((iw[3].hypergrad - ic[3].hypergrad).abs().max()) > 1e-3
    assert float((iw[3].y - ic[3].y).abs().max()) > 1e-3


def test_itd_warm_start_false_restarts_from_y0():
    p = quadratic.random(2, 3, seed=4)
    p = bl.Problem(f=p.f, g=p.g, x0=p.x0, y0=torch.tensor([0.1, -0.4, 0.9], dtype=F64),
                   y_star=p.y_star, grad_phi=p.grad_phi, info=p.info)
    s = ITD(inner_steps=2, inner_lr=0.5, outer_lr=0.3, warm_start=False)
    states, infos, _ = steps_of(s, p, 3)
    for k in range(3):
        g, yN = bl.hypergrad.unrolled(p, states[k].x, p.y0, steps=2, lr=0.5)
        torch.testing.assert_close(infos[k].hypergrad, g, rtol=0, atol=0)
        torch.testing.assert_close(infos[k].y, yN, rtol=0, atol=0)
    sw = ITD(inner_steps=2, inner_lr=0.5, outer_lr=0.3)
    _, iw, _ = steps_of(sw, p, 3)
    assert float((iw[2].y - infos[2].y).abs().max()) > 1e-4


def test_itd_step_equals_hypergrad_unrolled_with_warm_start():
    p = quadratic.random(3, 4, seed=6)
    for mode in ("reverse", "forward"):
        s = ITD(inner_steps=3, inner_lr=0.4, outer_lr=0.2, mode=mode)
        states, infos, _ = steps_of(s, p, 3)
        for k in range(3):
            g, yN = bl.hypergrad.unrolled(p, states[k].x, states[k].y, steps=3, lr=0.4, mode=mode)
            torch.testing.assert_close(infos[k].hypergrad, g, rtol=0, atol=1e-15)
            torch.testing.assert_close(states[k + 1].y, yN, rtol=0, atol=1e-15)
            torch.testing.assert_close(states[k + 1].x, states[k].x - 0.2 * g, rtol=0, atol=1e-15)


def test_itd_forward_equals_reverse_trajectory():
    p = quadratic.random(3, 4, seed=8)
    kw = dict(inner_steps=3, inner_lr=0.4, outer_lr=0.2)
    a = bl.run(ITD(**kw, mode="reverse"), p, steps=10)
    b = bl.run(ITD(**kw, mode="forward"), p, steps=10)
    for col in ("grad_norm_sq", "hypergrad_err_sq", "inner_err_sq", "phi"):
        torch.testing.assert_close(torch.tensor(a[col].values), torch.tensor(b[col].values),
                                   rtol=1e-10, atol=1e-14, equal_nan=True)


# -- stacking ------------------------------------------------------------------------

BLOCK_COLS = ["k", "grad_norm_sq", "hypergrad_err_sq", "inner_err_sq"]


def compare_blocks(stacked_trace, separate_traces, labels, forward=False):
    assert "block" in stacked_trace.columns
    for lab, tr in zip(labels, separate_traces):
        blk = stacked_trace[stacked_trace.block == lab].reset_index(drop=True)
        assert len(blk) == len(tr)
        assert list(blk.k) == list(tr.k)
        for col in BLOCK_COLS[1:]:
            a = torch.tensor(blk[col].values)
            b = torch.tensor(tr[col].values)
            torch.testing.assert_close(a, b, rtol=0, atol=1e-12, equal_nan=True)
            assert torch.isnan(a[-1]) == (col == "hypergrad_err_sq")
        # per-block traces have the same per-step counts (one vectorised call per oracle)
        assert list(blk.grad_calls) == list(tr.grad_calls)
        if not forward:   # forward mode costs dim_x products per inner step: dim of the stack
            assert list(blk.mv_calls) == list(tr.mv_calls)


@pytest.mark.parametrize("family", ["aid", "itd", "itd-forward"])
def test_paper001_grid_matches_separate_runs(family):
    kappas = [2.0, 4.0, 7.0]
    grid = quadratic.kappa2d_grid(kappas)
    Ls = [0.1 * k for k in kappas]
    pc = bl.problems.per_coordinate

    def build(inner, outer, lin):
        if family == "aid":
            return AID(inner_steps=2, inner_lr=inner, linsys="gd", linsys_steps=2,
                       linsys_lr=lin, outer_lr=outer)
        return ITD(inner_steps=2, inner_lr=inner, outer_lr=outer,
                   mode="forward" if family == "itd-forward" else "reverse")

    K = 15
    s = build(pc(grid, [1 / L for L in Ls], "y"), pc(grid, [0.5 / L for L in Ls], "x"),
              pc(grid, [0.8 / L for L in Ls], "y"))
    tr = bl.run(s, grid, steps=K, eval_every=4)
    assert sorted(set(tr.block)) == kappas
    seps = [bl.run(build(1 / L, 0.5 / L, 0.8 / L), quadratic.kappa2d(k), steps=K, eval_every=4)
            for k, L in zip(kappas, Ls)]
    compare_blocks(tr, seps, kappas, forward=family == "itd-forward")


def test_stack_of_random_problems_matches_separate_runs():
    probs = [quadratic.random(2, 3, seed=1), quadratic.random(3, 2, seed=2)]
    st = bl.problems.stack(probs, labels=["a", "b"])
    assert (st.dim_x, st.dim_y) == (5, 5)
    pc = bl.problems.per_coordinate
    inner, outer, lin = [0.5, 0.4], [0.3, 0.2], [0.45, 0.35]
    K = 12
    for family in ("aid", "itd"):
        def build(i, o, l):
            if family == "aid":
                return AID(inner_steps=2, inner_lr=i, linsys="neumann", linsys_steps=3,
                           linsys_lr=l, outer_lr=o)
            return ITD(inner_steps=3, inner_lr=i, outer_lr=o)
        tr = bl.run(build(pc(st, inner, "y"), pc(st, outer, "x"), pc(st, lin, "y")), st,
                    steps=K, eval_every=5)
        seps = [bl.run(build(i, o, l), p, steps=K, eval_every=5)
                for p, i, o, l in zip(probs, inner, outer, lin)]
        compare_blocks(tr, seps, ["a", "b"])


# -- dtype and device ----------------------------------------------------------------

SOLVERS_SMALL = [
    AID(inner_steps=2, inner_lr=0.5, linsys="gd", linsys_steps=2, linsys_lr=0.5, outer_lr=0.2),
    AID(inner_steps=2, inner_lr=0.5, linsys="cg", linsys_steps=2, outer_lr=0.2),
    ITD(inner_steps=2, inner_lr=0.5, outer_lr=0.2),
    ITD(inner_steps=2, inner_lr=0.5, outer_lr=0.2, mode="forward"),
]


@pytest.mark.parametrize("solver", SOLVERS_SMALL, ids=lambda s: repr(s)[:50])
def test_float32_problem_gives_float32_iterates(solver):
    p = quadratic.random(3, 4, seed=0, dtype=torch.float32)
    states, infos, _ = steps_of(solver, p, 3)
    for st in states:
        for t in st:
            assert t.dtype == torch.float32
    for info in infos:
        assert info.x.dtype == info.y.dtype == info.hypergrad.dtype == torch.float32
    p64 = quadratic.random(3, 4, seed=0)
    s64, _, _ = steps_of(solver, p64, 3)
    torch.testing.assert_close(states[-1].x.double(), s64[-1].x, rtol=1e-5, atol=1e-5)
    tr = bl.run(solver, p, steps=3)
    assert tr.grad_norm_sq.notna().all()


@pytest.mark.parametrize("solver", SOLVERS_SMALL, ids=lambda s: repr(s)[:50])
def test_solvers_on_device(solver, device):
    p = quadratic.random(3, 4, seed=0, device=device)
    states, infos, _ = steps_of(solver, p, 3)
    for st in states:
        for t in st:
            assert t.device.type == device.type
    for info in infos:
        assert info.hypergrad.device.type == device.type
    tr = bl.run(solver, p, steps=3)
    tr_cpu = bl.run(solver, quadratic.random(3, 4, seed=0), steps=3)
    torch.testing.assert_close(torch.tensor(tr.grad_norm_sq.values),
                               torch.tensor(tr_cpu.grad_norm_sq.values), rtol=1e-9, atol=1e-12)


def test_per_coordinate_steps_on_device(device):
    grid = quadratic.kappa2d_grid([2.0, 3.0], device=device)
    pc = bl.problems.per_coordinate
    lr = pc(grid, [5.0, 10 / 3], "y")
    assert lr.device.type == device.type and lr.dtype == F64
    s = ITD(inner_steps=1, inner_lr=lr, outer_lr=pc(grid, [5.0, 10 / 3], "x"))
    tr = bl.run(s, grid, steps=40, eval_every=40)
    last = tr[tr.k == 40].set_index("block").grad_norm_sq
    assert last[2.0] == pytest.approx(0.01, rel=1e-6)
    assert last[3.0] == pytest.approx(0.04, rel=1e-6)


def test_make_builds_registered_solvers():
    s = bl.solvers.make("aid", inner_lr=0.5, linsys_lr=0.5, outer_lr=0.1)
    assert isinstance(s, AID) and s.name == "aid"
    s = bl.solvers.make("itd", inner_lr=0.5, outer_lr=0.1, inner_steps=3)
    assert isinstance(s, ITD) and s.inner_steps == 3 and s.name == "itd"
    assert {"aid", "itd"} <= set(bl.solvers.available())
    hp = s.hyperparams()
    assert hp == dict(inner_steps=3, inner_lr=0.5, outer_lr=0.1, mode="reverse", warm_start=True,
                      outer_optimizer="sgd", adam_betas=(0.9, 0.999), adam_eps=1e-8, max_abs=None)


def test_stack_with_truncated_cg_matches_separate_runs():
    """bilevel/problems/stack.py promises that *every* solver performs on a stack exactly
    the updates it performs on each block. Truncated CG (Q < dim y) computes its step
    lengths and stopping test from inner products over the whole stacked vector, so the
    blocks are coupled and the per-block traces differ (by ~5e-2 for Q=1 here)."""
    probs = [quadratic.random(2, 3, seed=1), quadratic.random(3, 2, seed=2)]
    st = bl.problems.stack(probs)
    pc = bl.problems.per_coordinate
    inner, outer = [0.5, 0.4], [0.3, 0.2]

    def build(i, o):
        return AID(inner_steps=2, inner_lr=i, linsys="cg", linsys_steps=1, outer_lr=o)

    tr = bl.run(build(pc(st, inner, "y"), pc(st, outer, "x")), st, steps=5)
    seps = [bl.run(build(i, o), p, steps=5) for p, i, o in zip(probs, inner, outer)]
    compare_blocks(tr, seps, [0, 1])
