"""Tests of bilevel.linsolve: gd / cg / neumann against torch.linalg.solve (float64)."""

from __future__ import annotations

import pytest
import torch

import bilevel as bl
from bilevel import linsolve

F64 = torch.float64


def spd(n, seed=0, lo=0.5, hi=2.0, eigs=None):
    """A random SPD matrix with spectrum in [lo, hi] (or exactly ``eigs``)."""
    gen = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=gen, dtype=F64))
    e = torch.linspace(lo, hi, n, dtype=F64) if eigs is None else torch.as_tensor(eigs, dtype=F64)
    H = (q * e) @ q.T
    return 0.5 * (H + H.T)


def rhs(n, seed=1):
    return torch.randn(n, generator=torch.Generator().manual_seed(seed), dtype=F64)


class Counter:
    def __init__(self, H):
        self.H, self.n = H, 0

    def __call__(self, v):
        self.n += 1
        return self.H @ v


def rel_err(a, b):
    return float(torch.linalg.norm(a - b) / torch.linalg.norm(b))


@pytest.mark.parametrize("method", ["gd", "neumann", "cg"])
@pytest.mark.parametrize("n", [1, 3, 10])
def test_matches_linalg_solve(method, n):
    H, b = spd(n, seed=n), rhs(n)
    exact = torch.linalg.solve(H, b)
    lr = 1.0 / 2.0  # 1/L, spectrum in [0.5, 2]: contraction 0.75 per step
    steps = 200 if method != "cg" else 2 * n
    v = linsolve.SOLVERS[method](lambda u: H @ u, b, steps=steps, lr=lr)
    assert v.dtype == F64 and v.shape == (n,)
    assert rel_err(v, exact) < 1e-12


@pytest.mark.parametrize("method", ["gd", "neumann", "cg"])
def test_solve_dispatch_and_warm_start(method):
    H, b = spd(6, seed=3), rhs(6, seed=4)
    exact = torch.linalg.solve(H, b)
    x0 = exact + 0.1 * rhs(6, seed=5)
    v = linsolve.solve(method, lambda u: H @ u, b, x0, steps=200, lr=0.5)
    assert rel_err(v, exact) < 1e-12


@pytest.mark.parametrize("method", ["gd", "neumann"])
def test_error_decreases_geometrically(method):
    H, b = spd(8, seed=7), rhs(8)
    exact = torch.linalg.solve(H, b)
    errs = [rel_err(linsolve.SOLVERS[method](lambda u: H @ u, b, steps=q, lr=0.5), exact)
            for q in (1, 5, 10, 20, 40, 80)]
    assert all(e1 < e0 for e0, e1 in zip(errs, errs[1:])), errs
    # contraction factor of the slowest mode is 1 - 0.5 * 0.5 = 0.75
    assert errs[-1] < 2 * 0.75 ** 80 * 10


@pytest.mark.parametrize("Q", [0, 1, 2, 7])
def test_neumann_equals_gd_with_one_more_step(Q):
    H, b = spd(5, seed=11), rhs(5, seed=12)
    cn, cg_ = Counter(H), Counter(H)
    vn = linsolve.neumann(cn, b, None, steps=Q, lr=0.3)
    vg = linsolve.gd(cg_, b, None, steps=Q + 1, lr=0.3)
    torch.testing.assert_close(vn, vg, rtol=1e-13, atol=1e-15)
    assert cn.n == Q            # no wasted H @ 0
    assert cg_.n == Q + 1


def test_neumann_closed_form_and_counts_with_x0():
    H, b = spd(4, seed=2), rhs(4, seed=3)
    x0, lr, Q = rhs(4, seed=9), 0.4, 5
    c = Counter(H)
    v = linsolve.neumann(c, b, x0, steps=Q, lr=lr)
    M = torch.eye(4, dtype=F64) - lr * H
    series = sum(torch.linalg.matrix_power(M, q) for q in range(Q + 1))
    expect = x0 + lr * series @ (b - H @ x0)
    torch.testing.assert_close(v, expect, rtol=1e-13, atol=1e-14)
    assert c.n == Q + 1


def test_gd_closed_form_and_counts():
    H, b = spd(4, seed=2), rhs(4, seed=3)
    x0, lr, Q = rhs(4, seed=9), 0.4, 6
    c = Counter(H)
    v = linsolve.gd(c, b, x0, steps=Q, lr=lr)
    M = torch.eye(4, dtype=F64) - lr * H
    exact = torch.linalg.solve(H, b)
    expect = exact + torch.linalg.matrix_power(M, Q) @ (x0 - exact)
    torch.testing.assert_close(v, expect, rtol=1e-12, atol=1e-13)
    assert c.n == Q


def test_warm_start_at_solution_is_fixed_point():
    H, b = spd(5, seed=21), rhs(5, seed=22)
    exact = torch.linalg.solve(H, b)
    for method in ("gd", "neumann", "cg"):
        v = linsolve.solve(method, lambda u: H @ u, b, exact, steps=3, lr=0.5)
        torch.testing.assert_close(v, exact, rtol=1e-13, atol=1e-14)


def test_per_coordinate_lr_is_diagonal_preconditioner():
    H, b = spd(5, seed=4), rhs(5, seed=6)
    d = torch.linspace(0.2, 0.5, 5, dtype=F64)
    v = linsolve.gd(lambda u: H @ u, b, steps=3, lr=d)
    ref = torch.zeros(5, dtype=F64)
    for _ in range(3):
        ref = ref - torch.diag(d) @ (H @ ref - b)
    torch.testing.assert_close(v, ref, rtol=1e-14, atol=1e-15)
    exact = torch.linalg.solve(H, b)
    assert rel_err(linsolve.gd(lambda u: H @ u, b, steps=400, lr=d), exact) < 1e-12
    assert rel_err(linsolve.neumann(lambda u: H @ u, b, steps=400, lr=d), exact) < 1e-12


# -- conjugate gradient: early termination and exact-zero residuals ---------------

def test_cg_terminates_early_on_few_distinct_eigenvalues():
    # 3 distinct eigenvalues: CG solves exactly in 3 iterations (float64: to ~1e-15)
    H = spd(12, seed=5, eigs=[0.5] * 4 + [1.0] * 4 + [3.0] * 4)
    b = rhs(12, seed=8)
    c = Counter(H)
    v = linsolve.cg(c, b, steps=100)
    assert c.n == 3, c.n
    assert rel_err(v, torch.linalg.solve(H, b)) < 1e-12


def test_cg_exact_zero_residual_no_nan():
    H = 2.0 * torch.eye(4, dtype=F64)
    b = torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=F64)
    for tol in (1e-12, 0.0):
        c = Counter(H)
        v = linsolve.cg(c, b, steps=50, tol=tol)
        assert torch.isfinite(v).all()
        torch.testing.assert_close(v, b / 2, rtol=0, atol=0)
        assert c.n == 1


def test_cg_zero_rhs_and_exact_warm_start():
    H = spd(4, seed=1)
    c = Counter(H)
    v = linsolve.cg(c, torch.zeros(4, dtype=F64), steps=10, tol=0.0)
    assert torch.equal(v, torch.zeros(4, dtype=F64)) and c.n == 0
    b = rhs(4)
    exact = torch.linalg.solve(H, b)
    c = Counter(torch.eye(4, dtype=F64))
    v = linsolve.cg(c, torch.ones(4, dtype=F64), torch.ones(4, dtype=F64), steps=10, tol=0.0)
    assert torch.equal(v, torch.ones(4, dtype=F64)) and c.n == 1   # one product for r0 only
    v = linsolve.cg(lambda u: H @ u, b, exact, steps=10)
    assert torch.isfinite(v).all()
    assert rel_err(v, exact) < 1e-12


def test_cg_respects_step_budget():
    H, b = spd(10, seed=3), rhs(10)
    c = Counter(H)
    linsolve.cg(c, b, steps=4)
    assert c.n == 4
    c = Counter(H)
    v = linsolve.cg(c, b, steps=0)
    assert c.n == 0 and torch.equal(v, torch.zeros(10, dtype=F64))


def test_cg_ignores_lr():
    H, b = spd(5, seed=2), rhs(5)
    a = linsolve.cg(lambda u: H @ u, b, steps=10)
    bb = linsolve.cg(lambda u: H @ u, b, steps=10, lr=123.0)
    assert torch.equal(a, bb)


def test_bad_arguments():
    H, b = spd(3), rhs(3)
    with pytest.raises(ValueError, match="linsys"):
        linsolve.solve("lu", lambda u: H @ u, b, steps=3)
    with pytest.raises(ValueError, match="linsys_lr"):
        linsolve.solve("gd", lambda u: H @ u, b, steps=3)
    with pytest.raises(ValueError, match="steps"):
        linsolve.gd(lambda u: H @ u, b, steps=-1, lr=0.1)
    with pytest.raises(ValueError, match="lr"):
        linsolve.neumann(lambda u: H @ u, b, steps=2, lr=float("nan"))
    assert set(linsolve.SOLVERS) == {"gd", "cg", "neumann"}
    assert bl.linsolve is linsolve
