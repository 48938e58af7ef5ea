"""Tests of bilevel.run: trace columns and row semantics, determinism, eval_every,
metrics, dtype and device propagation."""

from __future__ import annotations

import dataclasses
import math

import pandas as pd
import pytest
import torch

import bilevel as bl
from bilevel.oracles import Oracles
from bilevel.problems import quadratic
from bilevel.run import TRACE_COLUMNS
from bilevel.solvers import AID, ITD

from helpers import steps_of  # noqa: E402

F64 = torch.float64

AID_S = AID(inner_steps=2, inner_lr=0.5, linsys="gd", linsys_steps=3, linsys_lr=0.5, outer_lr=0.3)
ITD_S = ITD(inner_steps=3, inner_lr=0.5, outer_lr=0.3)


def manual(solver, problem, K):
    states, infos, _ = steps_of(solver, problem, K)
    return states, infos


def sq(t):
    return float((t * t).sum())


@pytest.mark.parametrize("solver", [AID_S, ITD_S], ids=["aid", "itd"])
def test_columns_present(solver):
    p = quadratic.random(2, 3, seed=0)
    tr = bl.run(solver, p, steps=3)
    assert isinstance(tr, pd.DataFrame)
    for col in TRACE_COLUMNS + ("solver", "problem", "seed"):
        assert col in tr.columns, col
    assert set(TRACE_COLUMNS) >= {"k", "time_s", "grad_calls", "mv_calls", "grad_f_calls",
                                  "grad_g_calls", "hvp_calls", "jvp_calls", "samples",
                                  "grad_norm_sq", "hypergrad_err_sq", "inner_err_sq", "phi"}
    assert "block" not in tr.columns
    assert (tr.solver == solver.name).all() and (tr.problem == p.name).all() and (tr.seed == 0).all()
    assert list(tr.k) == [0, 1, 2, 3]
    assert (tr.time_s.diff().dropna() >= 0).all() and (tr.time_s >= 0).all()


@pytest.mark.parametrize("solver", [AID_S, ITD_S], ids=["aid", "itd"])
def test_rows_describe_the_iterates(solver):
    """Row k < K: metrics at x_k and of the estimate formed there; row K: at x_K, no estimate."""
    p = quadratic.random(3, 4, seed=2)
    K = 5
    tr = bl.run(solver, p, steps=K)
    states, infos = manual(solver, p, K)
    for k in range(K):
        row = tr[tr.k == k].iloc[0]
        x, y, est = infos[k]
        assert torch.equal(x, states[k].x)
        assert row.grad_norm_sq == pytest.approx(sq(p.grad_phi(x)), rel=1e-14, abs=0)
        assert row.hypergrad_err_sq == pytest.approx(sq(est - p.grad_phi(x)), rel=1e-12, abs=1e-300)
        assert row.inner_err_sq == pytest.approx(sq(y - p.y_star(x)), rel=1e-12, abs=1e-300)
        assert row.phi == pytest.approx(float(p.phi(x)), rel=1e-14, abs=1e-15)
    last = tr.iloc[-1]
    xK, yK = states[K].x, states[K].y
    assert last.k == K
    assert last.grad_norm_sq == pytest.approx(sq(p.grad_phi(xK)), rel=1e-14, abs=0)
    assert math.isnan(last.hypergrad_err_sq)
    assert last.inner_err_sq == pytest.approx(sq(yK - p.y_star(xK)), rel=1e-12, abs=1e-300)
    assert last.phi == pytest.approx(float(p.phi(xK)), rel=1e-14, abs=1e-15)


@pytest.mark.parametrize("solver", [AID_S, ITD_S,
                                    ITD(inner_steps=2, inner_lr=0.5, outer_lr=0.3, mode="forward")],
                         ids=["aid", "itd", "itd-fwd"])
def test_deterministic_same_seed(solver):
    p = quadratic.random(3, 4, seed=1)
    a = bl.run(solver, p, steps=8, eval_every=3, seed=7)
    b = bl.run(solver, p, steps=8, eval_every=3, seed=7)
    cols = [c for c in a.columns if c != "time_s"]
    assert list(a.columns) == list(b.columns)
    pd.testing.assert_frame_equal(a[cols], b[cols], check_exact=True)
    c = bl.run(solver, p, steps=8, eval_every=3, seed=8)
    assert (c.seed == 8).all()
    # the deterministic solvers do not depend on the seed at all
    pd.testing.assert_frame_equal(a[[x for x in cols if x != "seed"]],
                                  c[[x for x in cols if x != "seed"]], check_exact=True)


@pytest.mark.parametrize("steps,every,ks", [(25, 10, [0, 10, 20, 25]), (20, 10, [0, 10, 20]),
                                            (7, 1, list(range(8))), (5, 100, [0, 5]),
                                            (1, 3, [0, 1]), (0, 1, [0])])
def test_eval_every_subsamples_and_keeps_final_row(steps, every, ks):
    p = quadratic.random(2, 2, seed=0)
    tr = bl.run(AID_S, p, steps=steps, eval_every=every)
    assert list(tr.k) == ks
    full = bl.run(AID_S, p, steps=steps)
    sub = full[full.k.isin(ks)].reset_index(drop=True)
    cols = [c for c in tr.columns if c != "time_s"]
    pd.testing.assert_frame_equal(tr[cols], sub[cols], check_exact=True)


def test_zero_steps_reports_initial_point():
    p = quadratic.kappa2d(2.0)
    tr = bl.run(AID_S, p, steps=0)
    assert len(tr) == 1
    row = tr.iloc[0]
    assert row.k == 0 and row.grad_calls == 0 and row.mv_calls == 0 and row.time_s == 0
    assert row.grad_norm_sq == pytest.approx(0.1 ** 2 + 0.2 ** 2, rel=1e-14)
    assert math.isnan(row.hypergrad_err_sq)


def test_problem_metrics_are_columns():
    p = quadratic.random(2, 3, seed=3)
    calls = []

    def val(x, y):
        calls.append(1)
        return (x.sum() + 2 * y.sum())

    p = dataclasses.replace(p, metrics={"val_loss": val, "ynorm": lambda x, y: float(y.norm())})
    K = 4
    tr = bl.run(ITD_S, p, steps=K, eval_every=2)
    assert "val_loss" in tr.columns and "ynorm" in tr.columns
    states, infos = manual(ITD_S, p, K)
    for k in (0, 2):
        row = tr[tr.k == k].iloc[0]
        assert row.val_loss == pytest.approx(float(infos[k].x.sum() + 2 * infos[k].y.sum()), rel=1e-14)
    assert tr.iloc[-1].val_loss == pytest.approx(float(states[K].x.sum() + 2 * states[K].y.sum()),
                                                 rel=1e-14)
    assert len(calls) == 3   # evaluated only at the recorded rows


def test_problem_without_exact_oracles():
    p = quadratic.random(2, 3, seed=3)
    bare = bl.Problem(f=p.f, g=p.g, x0=p.x0, y0=p.y0, name="bare")
    tr = bl.run(AID_S, bare, steps=3)
    assert list(tr.k) == [0, 1, 2, 3]
    assert tr.grad_calls.iloc[-1] == 3 * 3
    for col in ("grad_norm_sq", "hypergrad_err_sq", "inner_err_sq", "phi"):
        assert col not in tr.columns or tr[col].isna().all()


def test_stacked_problem_one_row_per_block():
    st = bl.problems.stack([quadratic.random(2, 3, seed=1), quadratic.random(3, 2, seed=2)],
                           labels=["a", "b"])
    tr = bl.run(AID_S, st, steps=4, eval_every=2)
    assert list(tr.k) == [0, 0, 2, 2, 4, 4]
    assert list(tr.block) == ["a", "b"] * 3
    # block rows share the counts of the whole batch
    assert (tr.groupby("k").grad_calls.nunique() == 1).all()
    # per-block metrics add up to the whole-problem metric
    whole = bl.run(AID_S, dataclasses.replace(st, blocks=None), steps=4, eval_every=2)
    summed = tr.groupby("k")[["grad_norm_sq", "inner_err_sq"]].sum().reset_index()
    for col in ("grad_norm_sq", "inner_err_sq"):
        torch.testing.assert_close(torch.tensor(summed[col].values), torch.tensor(whole[col].values),
                                   rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("solver", [AID_S, ITD_S], ids=["aid", "itd"])
def test_float32_run(solver):
    p = quadratic.kappa2d(2.0, dtype=torch.float32)
    assert p.dtype == torch.float32
    states, infos = manual(solver, p, 2)
    assert states[-1].x.dtype == torch.float32 and states[-1].y.dtype == torch.float32
    assert infos[-1].hypergrad.dtype == torch.float32
    tr = bl.run(solver, p, steps=5)
    tr64 = bl.run(solver, quadratic.kappa2d(2.0), steps=5)
    torch.testing.assert_close(torch.tensor(tr.grad_norm_sq.values),
                               torch.tensor(tr64.grad_norm_sq.values), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("solver", [AID_S, ITD_S,
                                    AID(inner_steps=2, inner_lr=0.5, linsys="cg", linsys_steps=3,
                                        outer_lr=0.3),
                                    ITD(inner_steps=2, inner_lr=0.5, outer_lr=0.3, mode="forward")],
                         ids=["aid", "itd", "aid-cg", "itd-fwd"])
def test_run_on_device(solver, device):
    p = quadratic.kappa2d(2.0, device=device)
    assert p.device.type == device.type
    states, infos = manual(solver, p, 2)
    for t in (*states[-1], infos[-1].hypergrad, infos[-1].y):
        assert t.device.type == device.type
    tr = bl.run(solver, p, steps=4)
    ref = bl.run(solver, quadratic.kappa2d(2.0), steps=4)
    cols = ["grad_norm_sq", "hypergrad_err_sq", "inner_err_sq", "phi"]
    torch.testing.assert_close(torch.tensor(tr[cols].values), torch.tensor(ref[cols].values),
                               rtol=1e-10, atol=1e-14, equal_nan=True)
    assert list(tr.grad_calls) == list(ref.grad_calls)


def test_progress_bar_does_not_change_trace():
    p = quadratic.random(2, 2, seed=0)
    a = bl.run(AID_S, p, steps=3, progress=True, desc="x")
    b = bl.run(AID_S, p, steps=3)
    cols = [c for c in a.columns if c != "time_s"]
    pd.testing.assert_frame_equal(a[cols], b[cols], check_exact=True)


@pytest.mark.parametrize("solver", [AID_S, ITD_S], ids=["aid", "itd"])
def test_iterates_detached_when_x0_requires_grad(solver):
    """An x0 with requires_grad=True (e.g. taken from an nn.Parameter) must not make the
    iterates carry an autograd graph that grows by one node per outer step."""
    import warnings

    p = quadratic.random(2, 3, seed=0)
    try:
        p = dataclasses.replace(p, x0=p.x0.clone().requires_grad_(True))
    except (TypeError, ValueError):
        return                      # rejecting such an x0 with a clear error is fine too
    states, infos = manual(solver, p, 3)
    assert not states[-1].x.requires_grad and states[-1].x.grad_fn is None
    assert not infos[-1].x.requires_grad
    with warnings.catch_warnings():
        warnings.simplefilter("error")      # no "Converting a tensor with requires_grad" warning
        bl.run(solver, p, steps=2)
