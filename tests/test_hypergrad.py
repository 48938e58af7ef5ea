"""Tests of bilevel.hypergrad: implicit (AID) and unrolled (ITD) estimates in float64
against closed forms, torch.autograd through an explicit unroll and finite differences."""

from __future__ import annotations

import pytest
import torch

import bilevel as bl
from bilevel.oracles import Oracles
from bilevel.problems import quadratic

F64 = torch.float64


def randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=F64)


def rel_err(a, b):
    return float(torch.linalg.norm(a - b) / torch.linalg.norm(b))


RANDOM_SHAPES = [(1, 1, 0), (3, 5, 1), (6, 4, 2)]


# -- implicit (AID) ----------------------------------------------------------------

@pytest.mark.parametrize("dx,dy,seed", RANDOM_SHAPES)
def test_implicit_cg_exact_at_y_star_random(dx, dy, seed):
    p = quadratic.random(dx, dy, seed=seed)
    x = randn(dx, seed=seed + 10)
    g, v = bl.hypergrad.implicit(p, x, p.y_star(x), linsys="cg", steps=100)
    exact = p.grad_phi(x)
    # relative error (and absolute, the gradients are O(1))
    assert rel_err(g, exact) < 1e-8
    assert float((g - exact).abs().max()) < 1e-8
    H, J, P, C, c = (p.info[k] for k in ("H", "J", "P", "C", "c"))
    ys = p.y_star(x)
    torch.testing.assert_close(v, torch.linalg.solve(H, P @ ys + C @ x + c), rtol=1e-9, atol=1e-10)
    assert g.dtype == F64 and g.shape == (dx,) and v.shape == (dy,)
    assert not g.requires_grad and not v.requires_grad


@pytest.mark.parametrize("kappa", [1.0, 2.0, 10.0])
def test_implicit_cg_exact_paper001(kappa):
    p = quadratic.kappa2d(kappa)
    x = torch.tensor([0.3, -1.2], dtype=F64)
    g, _ = bl.hypergrad.implicit(p, x, p.y_star(x), linsys="cg", steps=10)
    L, mu = kappa * 0.1, 0.1
    closed = torch.tensor([L, mu], dtype=F64) * x + 0.1 * torch.tensor([1.0, kappa], dtype=F64)
    torch.testing.assert_close(p.grad_phi(x), closed, rtol=0, atol=1e-15)
    assert float((g - closed).abs().max()) < 1e-12


@pytest.mark.parametrize("linsys", ["gd", "neumann"])
def test_implicit_gd_neumann_converge_in_steps(linsys):
    p = quadratic.random(3, 6, seed=4)
    x = randn(3, seed=5)
    exact = p.grad_phi(x)
    lr = 1.0 / p.info["L"]                  # spectrum of H in [0.5, 2]
    errs = []
    for q in (1, 5, 10, 20, 40, 80, 160):
        g, _ = bl.hypergrad.implicit(p, x, p.y_star(x), linsys=linsys, steps=q, lr=lr)
        errs.append(rel_err(g, exact))
    assert all(e1 < e0 for e0, e1 in zip(errs, errs[1:])), errs
    assert errs[0] > 1e-2            # not trivially exact
    assert errs[-1] < 1e-8           # relative error


def test_implicit_warm_start_exact_solution():
    p = quadratic.random(4, 5, seed=7)
    x = randn(4, seed=8)
    ys = p.y_star(x)
    H, P, C, c = (p.info[k] for k in ("H", "P", "C", "c"))
    vstar = torch.linalg.solve(H, P @ ys + C @ x + c)
    exact = p.grad_phi(x)
    for linsys, steps in (("gd", 1), ("neumann", 0), ("neumann", 1), ("cg", 1), ("gd", 0)):
        g, v = bl.hypergrad.implicit(p, x, ys, linsys=linsys, steps=steps, lr=0.5, v0=vstar)
        assert rel_err(g, exact) < 1e-12, (linsys, steps)
        torch.testing.assert_close(v, vstar, rtol=1e-12, atol=1e-13)
    # without the warm start the same budget is far off
    g, _ = bl.hypergrad.implicit(p, x, ys, linsys="gd", steps=1, lr=0.5)
    assert rel_err(g, exact) > 1e-2


def test_implicit_at_inexact_y_uses_that_y():
    """The estimate is formed at y (not y*): closed form with the quadratic's matrices."""
    p = quadratic.random(3, 4, seed=3)
    x, y = randn(3, seed=1), randn(4, seed=2)
    H, J, P, C, R, c = (p.info[k] for k in ("H", "J", "P", "C", "R", "c"))
    v = torch.linalg.solve(H, P @ y + C @ x + c)
    expect = C.T @ y + R @ x + J.T @ v
    g, _ = bl.hypergrad.implicit(p, x, y, linsys="cg", steps=50)
    torch.testing.assert_close(g, expect, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("linsys,Q,v0,hvp", [("gd", 5, None, 5), ("gd", 5, "z", 5),
                                              ("neumann", 5, None, 5), ("neumann", 5, "z", 6),
                                              ("cg", 3, None, 3)])
def test_implicit_oracle_counts(linsys, Q, v0, hvp):
    p = quadratic.random(3, 8, seed=1)
    o = Oracles(p)
    v0 = None if v0 is None else torch.zeros(8, dtype=F64)
    bl.hypergrad.implicit(p, p.x0, p.y0, linsys=linsys, steps=Q, lr=0.5, v0=v0, oracles=o)
    c = o.counts
    assert (c.grad_f, c.grad_g, c.hvp, c.jvp, c.samples) == (1, 0, hvp, 1, 0)
    assert c.grad_calls == 1 and c.mv_calls == hvp + 1


# -- unrolled (ITD) ----------------------------------------------------------------

def closed_form_unroll(p, x, y0, N, a):
    """y^N and the N-step ITD estimate of the random quadratic, in closed form."""
    H, J, b, P, C, R, c = (p.info[k] for k in ("H", "J", "b", "P", "C", "R", "c"))
    n = H.shape[0]
    M = torch.eye(n, dtype=F64) - a * H
    MN = torch.linalg.matrix_power(M, N)
    Hinv = torch.linalg.inv(H)
    yN = MN @ y0 + (torch.eye(n, dtype=F64) - MN) @ Hinv @ (J @ x - b)
    dydx = (torch.eye(n, dtype=F64) - MN) @ Hinv @ J
    # cross-check with the series sum_{t<N} (I - aH)^t a J
    series = sum(torch.linalg.matrix_power(M, t) for t in range(N)) @ (a * J)
    torch.testing.assert_close(dydx, series, rtol=1e-10, atol=1e-12)
    fx = C.T @ yN + R @ x
    fy = P @ yN + C @ x + c
    return fx + dydx.T @ fy, yN


def autograd_unroll(p, x, y0, N, lr):
    """d f(x, y^N(x)) / dx by torch.autograd through an explicit create_graph unroll."""
    x = x.detach().clone().requires_grad_(True)
    y = y0.detach().clone().requires_grad_(True)   # a constant leaf (warm start)
    for _ in range(N):
        gy, = torch.autograd.grad(p.g(x, y), y, create_graph=True)
        y = y - lr * gy
    grad, = torch.autograd.grad(p.f(x, y), x)
    return grad, y.detach()


@pytest.mark.parametrize("dx,dy,seed", RANDOM_SHAPES)
@pytest.mark.parametrize("N", [1, 2, 7])
def test_unrolled_closed_form_random(dx, dy, seed, N):
    p = quadratic.random(dx, dy, seed=seed)
    x, y0 = randn(dx, seed=seed + 1), randn(dy, seed=seed + 2)
    a = 0.4
    exact, yN_exact = closed_form_unroll(p, x, y0, N, a)
    gr, yr = bl.hypergrad.unrolled(p, x, y0, steps=N, lr=a, mode="reverse")
    gf, yf = bl.hypergrad.unrolled(p, x, y0, steps=N, lr=a, mode="forward")
    ga, ya = autograd_unroll(p, x, y0, N, a)
    for g in (gr, gf, ga):
        torch.testing.assert_close(g, exact, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(gr, gf, rtol=0, atol=1e-10)
    torch.testing.assert_close(gr, ga, rtol=0, atol=1e-10)
    for y in (yr, yf, ya):
        torch.testing.assert_close(y, yN_exact, rtol=1e-10, atol=1e-10)


def test_unrolled_converges_to_implicit_as_N_grows():
    p = quadratic.random(3, 4, seed=5)
    x = randn(3, seed=6)
    exact = p.grad_phi(x)
    errs = [rel_err(bl.hypergrad.unrolled(p, x, p.y0, steps=n, lr=0.5)[0], exact)
            for n in (1, 10, 40, 120)]
    assert all(e1 < e0 for e0, e1 in zip(errs, errs[1:])), errs
    assert errs[-1] < 1e-8


def nonquadratic(dx=3, dy=4, seed=0, dtype=F64):
    """g = sum softplus(A y + E x) + mu/2 |y|^2 - y'Bx ; f = sum tanh(C y + D x) + 0.1 |x|^2."""
    A = randn(dy, dy, seed=seed) / dy ** 0.5
    E = randn(dy, dx, seed=seed + 1) / dx ** 0.5
    B = randn(dy, dx, seed=seed + 2)
    C = randn(2, dy, seed=seed + 3)
    D = randn(2, dx, seed=seed + 4)
    mu = 0.5

    def g(x, y):
        return torch.nn.functional.softplus(A @ y + E @ x).sum() + 0.5 * mu * (y * y).sum() - y @ (B @ x)

    def f(x, y):
        return torch.tanh(C @ y + D @ x).sum() + 0.1 * (x * x).sum()

    return bl.Problem(f=f, g=g, x0=torch.zeros(dx, dtype=dtype), y0=torch.zeros(dy, dtype=dtype),
                      name="nonquadratic")


def plain_unroll_value(p, x, y0, N, lr):
    y = y0.clone()
    for _ in range(N):
        yy = y.detach().requires_grad_(True)
        with torch.enable_grad():
            gy, = torch.autograd.grad(p.g(x, yy), yy)
        y = y - lr * gy
    return float(p.f(x, y))


@pytest.mark.parametrize("N", [1, 3, 8])
def test_unrolled_finite_differences_nonquadratic(N):
    p = nonquadratic()
    x, y0 = randn(3, seed=20), randn(4, seed=21)
    lr = 0.3
    gr, _ = bl.hypergrad.unrolled(p, x, y0, steps=N, lr=lr, mode="reverse")
    gf, _ = bl.hypergrad.unrolled(p, x, y0, steps=N, lr=lr, mode="forward")
    ga, _ = autograd_unroll(p, x, y0, N, lr)
    eps = 1e-6
    fd = torch.zeros(3, dtype=F64)
    for i in range(3):
        e = torch.zeros(3, dtype=F64)
        e[i] = eps
        fd[i] = (plain_unroll_value(p, x + e, y0, N, lr) - plain_unroll_value(p, x - e, y0, N, lr)) / (2 * eps)
    assert float(gr.abs().max()) > 1e-2               # non-trivial gradient
    assert float((gr - fd).abs().max()) < 1e-7, (gr, fd)   # absolute error
    torch.testing.assert_close(gr, gf, rtol=0, atol=1e-10)
    torch.testing.assert_close(gr, ga, rtol=0, atol=1e-10)


@pytest.mark.parametrize("mode", ["reverse", "forward"])
@pytest.mark.parametrize("which", ["random", "nonquadratic"])
def test_unrolled_per_coordinate_steps(mode, which):
    p = quadratic.random(3, 4, seed=9) if which == "random" else nonquadratic(seed=3)
    x, y0 = randn(3, seed=30), randn(4, seed=31)
    lr = torch.tensor([0.1, 0.25, 0.4, 0.3], dtype=F64)
    N = 5
    g, yN = bl.hypergrad.unrolled(p, x, y0, steps=N, lr=lr, mode=mode)
    ga, ya = autograd_unroll(p, x, y0, N, lr)      # elementwise steps
    torch.testing.assert_close(g, ga, rtol=0, atol=1e-10)
    torch.testing.assert_close(yN, ya, rtol=0, atol=1e-12)
    # differs from any scalar step: the tensor is really used per coordinate
    gs, _ = bl.hypergrad.unrolled(p, x, y0, steps=N, lr=0.25, mode=mode)
    assert float((g - gs).abs().max()) > 1e-4


@pytest.mark.parametrize("N", [1, 2, 5])
def test_unrolled_oracle_counts(N):
    p = quadratic.random(3, 4, seed=2)
    o = Oracles(p)
    bl.hypergrad.unrolled(p, p.x0, p.y0, steps=N, lr=0.5, mode="reverse", oracles=o)
    c = o.counts
    assert (c.grad_g, c.grad_f, c.jvp, c.hvp) == (N, 1, N, N - 1)
    o = Oracles(p)
    bl.hypergrad.unrolled(p, p.x0, p.y0, steps=N, lr=0.5, mode="forward", oracles=o)
    c = o.counts
    assert (c.grad_g, c.grad_f, c.jvp, c.hvp) == (N, 1, N * 3, N * 3)


def test_unrolled_paper001_single_step_formula():
    """N=1 at alpha: grad = Z_x x + alpha L 0.1 1 (paper 001, Algorithm 2, line 5)."""
    kappa, alpha = 3.0, 2.0
    p = quadratic.kappa2d(kappa)
    L = 0.1 * kappa
    x, y0 = torch.tensor([0.7, -0.2], dtype=F64), torch.tensor([1.0, 2.0], dtype=F64)
    g, y1 = bl.hypergrad.unrolled(p, x, y0, steps=1, lr=alpha)
    z = torch.tensor([L, 0.1], dtype=F64)
    torch.testing.assert_close(g, z * x + alpha * L * 0.1, rtol=0, atol=1e-15)
    torch.testing.assert_close(y1, y0 - alpha * (z * y0 - L * x + 1), rtol=0, atol=1e-15)


def test_hypergrad_outputs_float32():
    p = quadratic.random(2, 3, seed=0, dtype=torch.float32)
    x = p.x0 + 0.5
    g, v = bl.hypergrad.implicit(p, x, p.y0, linsys="gd", steps=3, lr=0.5)
    assert g.dtype == v.dtype == torch.float32
    for mode in ("reverse", "forward"):
        g, y = bl.hypergrad.unrolled(p, x, p.y0, steps=3, lr=0.5, mode=mode)
        assert g.dtype == y.dtype == torch.float32
        g64, _ = bl.hypergrad.unrolled(quadratic.random(2, 3, seed=0), x.double(),
                                       p.y0.double(), steps=3, lr=0.5, mode=mode)
        torch.testing.assert_close(g.double(), g64, rtol=1e-5, atol=1e-5)


def test_hypergrad_on_device(device):
    p = quadratic.random(3, 4, seed=1, device=device)
    x = torch.full((3,), 0.3, dtype=F64, device=device)
    g, v = bl.hypergrad.implicit(p, x, p.y_star(x), linsys="cg", steps=20)
    assert g.device.type == v.device.type == device.type
    assert rel_err(g, p.grad_phi(x)) < 1e-8
    for mode in ("reverse", "forward"):
        g, y = bl.hypergrad.unrolled(p, x, p.y0, steps=3, lr=0.5, mode=mode)
        assert g.device.type == y.device.type == device.type


def test_implicit_passes_batch_to_problem():
    """The oracles call f(x, y, batch) / g(x, y, batch) when a batch is given."""
    from bilevel.hypergrad import _implicit

    base = quadratic.random(2, 3, seed=4)
    seen = []

    def f(x, y, batch=None):
        seen.append(batch)
        s = 1.0 if batch is None else float(batch.sum())
        return s * base.f(x, y)

    def g(x, y, batch=None):
        s = 1.0 if batch is None else 1.0 + float(batch.mean())
        return s * base.g(x, y)

    p = bl.Problem(f=f, g=g, x0=base.x0, y0=base.y0)
    batch = torch.tensor([1.0, 2.0], dtype=F64)
    x, y = randn(2, seed=1), randn(3, seed=2)
    o = Oracles(p)
    gb, _ = _implicit(o, x, y, "cg", 20, None, None, batch)
    assert seen[-1] is batch
    scaled = bl.Problem(f=lambda x, y: 3.0 * base.f(x, y), g=lambda x, y: 2.5 * base.g(x, y),
                        x0=base.x0, y0=base.y0)
    ref, _ = bl.hypergrad.implicit(scaled, x, y, linsys="cg", steps=20)
    torch.testing.assert_close(gb, ref, rtol=1e-12, atol=1e-12)
    assert (o.counts.grad_f, o.counts.jvp) == (1, 1)
