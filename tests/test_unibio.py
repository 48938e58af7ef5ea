"""UniBiO's pieces: Epoch-SGD schedules and balls, the generalized Neumann hypergradient, Example 3."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch

import bilevel as bl
from bilevel.oracles import Oracles
from bilevel.problems import uniform_convex as uc
from bilevel.solvers import _stochastic as S
from bilevel.solvers.unibio import epoch_schedule, epoch_sgd, generalized_hypergradient

F64 = torch.float64

# setups.md A.2: schedules of paper 002's code (T_1 = 5, D_1 = 1, gamma_1 = 1, budget K = 100)
A2_TABLE = {
    2: ([(5, 1.0, 1.0), (10, 0.707, 0.5), (20, 0.5, 0.25), (40, 0.354, 0.125)], 75),
    4: ([(5, 1.0, 1.0), (14, 0.841, 0.5), (40, 0.707, 0.25)], 59),
    6: ([(5, 1.0, 1.0), (15, 0.891, 0.5), (50, 0.794, 0.25)], 70),
    8: ([(5, 1.0, 1.0), (16, 0.917, 0.5), (56, 0.841, 0.25)], 77),
}


@pytest.mark.parametrize("p", sorted(A2_TABLE))
def test_epoch_schedule_reproduces_setups_table(p):
    epochs, total = A2_TABLE[p]
    got = epoch_schedule(p, epoch_length=5, radius=1.0, lr=1.0, budget=100)
    assert [(t, round(d, 3), g) for t, d, g in got] == epochs
    assert sum(t for t, _, _ in got) == total


def test_epoch_schedule_formulas_and_limits():
    got = epoch_schedule(3.0, epoch_length=7, radius=2.0, lr=0.3, budget=10_000)
    tau = 2 * 2 / 3
    for k, (t, d, g) in enumerate(got, start=1):
        assert t == int(7 * 2 ** (tau * (k - 1)))
        assert d == pytest.approx(2.0 * 2 ** (-(k - 1) / 3))
        assert g == pytest.approx(0.3 * 2 ** (-(k - 1)))
    assert sum(7 * 2 ** (tau * i) for i in range(len(got))) <= 10_000
    assert sum(7 * 2 ** (tau * i) for i in range(len(got) + 1)) > 10_000
    assert epoch_schedule(2, 5, 1.0, 1.0, budget=4) == []
    assert len(epoch_schedule(2, 1, 1.0, 1.0, budget=10 ** 30)) == 49      # the code's k < 50 cap


@pytest.mark.parametrize("p", [2, 4, 8])
def test_epoch_sgd_iterates_stay_in_the_balls(p):
    """With noisy gradients of std 3 the unprojected steps leave the balls: the projection must act."""
    prob = uc.example3(p=p)
    o = Oracles(prob, seed=1, noise={"grad_g": 3.0})
    rec = []
    w = epoch_sgd(o, prob.x0, prob.y0, p=p, lr=1.0, epoch_length=5, radius=1.0, budget=100, record=rec)
    sched = epoch_schedule(p, 5, 1.0, 1.0, 100)
    assert len(rec) == sum(t for t, _, _ in sched) == o.counts.grad_g
    dist = torch.stack([(wt - c).norm() for _, c, _, wt in rec])
    radii = torch.tensor([d for _, _, d, _ in rec], dtype=F64)
    assert bool((dist <= radii * (1 + 1e-12)).all())
    assert bool((dist >= radii * (1 - 1e-9)).any()), "the projection never acted: the test cannot fail"
    # each epoch's ball is centred at the previous epoch's average
    for k in range(2, len(sched) + 1):
        prev = [wt for kk, _, _, wt in rec if kk == k - 1]
        centre = next(c for kk, c, _, _ in rec if kk == k)
        torch.testing.assert_close(centre, torch.stack(prev).mean(0))
    last = [wt for kk, _, _, wt in rec if kk == len(sched)]
    torch.testing.assert_close(w, torch.stack(last).mean(0))


def test_epoch_sgd_balls_are_per_block_on_stacked_copies():
    prob = uc.example3(p=4, copies=2)
    o = Oracles(prob, seed=0, noise={"grad_g": 3.0})
    rec = []
    epoch_sgd(o, prob.x0, prob.y0, p=4, lr=1.0, epoch_length=5, radius=1.0, budget=100, record=rec,
              blocks=prob.blocks)
    for _, c, d, w in rec:
        assert bool(((w - c).abs() <= d * (1 + 1e-12)).all())


@pytest.mark.parametrize("p", [2, 4, 6, 8])
def test_epoch_sgd_converges_to_y_star(p):
    prob = uc.example3(p=p)
    o = Oracles(prob)
    x = torch.tensor([0.7], dtype=F64)
    w = epoch_sgd(o, x, torch.tensor([0.0], dtype=F64), p=p, lr=1.0, epoch_length=5, radius=1.0,
                  budget=2000)
    assert abs(float(w - prob.y_star(x))) < 0.02


# -- generalized Neumann estimator -----------------------------------------------------

def _estimate(prob, x, y, p, Q, lr, **kw):
    o = Oracles(prob, **kw)
    b = S.HGBatches(None, None, [None] * Q)
    grad, _ = S.neumann_hypergrad(o, x, y, b, lr, p=p)
    return grad, o


@pytest.mark.parametrize("p", [2, 4, 6, 8])
@pytest.mark.parametrize("xv,yv", [(0.3, 0.2), (1.0, -0.5), (-1.2, 0.9), (0.02, 0.05), (2.5, -0.01)])
def test_generalized_neumann_matches_exact_formula_on_example3(p, xv, yv):
    """Off y*: the estimator equals Theorem 4.1's formula cos(x) cos(y^(p-1)) at the given (x, y)."""
    prob = uc.example3(p=p)
    x, y = torch.tensor([xv], dtype=F64), torch.tensor([yv], dtype=F64)
    exact = torch.cos(x) * torch.cos(y ** (p - 1))
    torch.testing.assert_close(generalized_hypergradient(prob, x, y, p), exact, rtol=1e-12, atol=1e-14)
    # generalized Hessian = 1: eta_N = 1 is exact for any Q, eta_N = 1/2 converges geometrically
    est1, _ = _estimate(prob, x, y, p, 0, 1.0)
    torch.testing.assert_close(est1, exact, rtol=1e-12, atol=1e-14)
    est2, o = _estimate(prob, x, y, p, 60, 0.5)
    torch.testing.assert_close(est2, exact, rtol=1e-12, atol=1e-14)
    assert (o.counts.grad_f, o.counts.hvp, o.counts.jvp) == (1, 60, 1)
    assert float(prob.metrics["hypergrad_at_y"](x, y)) == pytest.approx(float(exact), rel=1e-12)


def test_generalized_estimator_is_well_defined_where_the_hessian_vanishes():
    """At x = 0.001, y* ~ 0.1 and H = 3 y^2 ~ 0.03: the standard truncated series loses the
    hypergradient, the generalized one does not (the point of paper 002)."""
    prob = uc.example3(p=4)
    x = torch.tensor([1e-3], dtype=F64)
    y = prob.y_star(x)
    truth = prob.grad_phi(x)
    gen, _ = _estimate(prob, x, y, 4, 3, 1.0)
    std, _ = _estimate(prob, x, y, 2, 3, 1 / 3)           # p = 2: plain Hessian, eta = 1/L
    torch.testing.assert_close(gen, truth, rtol=1e-9, atol=1e-12)
    assert float(std.abs()) < 0.05 * float(truth.abs())


def test_generalized_neumann_matches_dense_formula_on_a_nondiagonal_problem():
    """lp-regression hyper-cleaning with p = 4 (non-diagonal Hessian), off y*: D H (gradient layout),
    not H D, is the generalized Hessian of Theorem 4.1."""
    prob = uc.lp_hypercleaning(n_train=12, n_val=6, dim=3, p=4, seed=2)
    gen = torch.Generator().manual_seed(0)
    x = 0.3 * torch.randn(12, generator=gen, dtype=F64)
    y = torch.tensor([0.8, -0.6, 1.1], dtype=F64)
    exact = generalized_hypergradient(prob, x, y, p=4)
    # with H invertible it equals the standard implicit formula at the same (x, y)
    std, _ = bl.hypergrad.implicit(prob, x, y, linsys="cg", steps=50)
    torch.testing.assert_close(exact, std, rtol=1e-9, atol=1e-12)
    D = S.generalized_scale(y, 4)
    H = torch.autograd.functional.hessian(lambda yy: prob.g(x, yy), y)
    lr = 1.0 / float(torch.linalg.eigvals(D[:, None] * H).real.max())
    est, _ = _estimate(prob, x, y, 4, 400, lr)
    torch.testing.assert_close(est, exact, rtol=1e-8, atol=1e-10)
    # the other order (H D) gives a different vector here: the test can tell them apart
    fy = torch.autograd.grad(prob.f(x, y.requires_grad_(True)), y)[0]
    w_hd = torch.linalg.solve(H * D[None, :], D * fy)
    assert not torch.allclose(w_hd, torch.linalg.solve(D[:, None] * H, D * fy), rtol=1e-3)


def test_generalized_scale_floors_the_divisor():
    y = torch.tensor([0.0, 0.5, -2.0], dtype=F64)
    s = S.generalized_scale(y, 4)
    assert bool(torch.isfinite(s).all())
    torch.testing.assert_close(s[1:], 1 / (3 * y[1:] ** 2))
    assert S.generalized_scale(y, 2) is None


# -- Example 3 --------------------------------------------------------------------------

@pytest.mark.parametrize("p", [2, 4, 6, 8])
def test_example3_closed_forms(p):
    prob = uc.example3(p=p)
    for xv in (-2.0, -0.4, 0.0, 0.9, 3.0):
        x = torch.tensor([xv], dtype=F64)
        ys = prob.y_star(x)
        gy = torch.autograd.grad(prob.g(x, ys.requires_grad_(True)), ys)[0]
        assert abs(float(gy)) < 1e-12
        xl = x.clone().requires_grad_(True)
        dphi = torch.autograd.grad(prob.phi(xl), xl)[0]
        torch.testing.assert_close(dphi, prob.grad_phi(x))
        torch.testing.assert_close(prob.phi(x), prob.f(x, prob.y_star(x)))
    assert prob.f(prob.x0, torch.tensor([5.0], dtype=F64)) == 1.0         # clipped to +1
    assert prob.f(prob.x0, torch.tensor([-5.0], dtype=F64)) == -1.0


def test_example3_rejects_odd_p_and_bad_copies():
    with pytest.raises(ValueError, match="even"):
        uc.example3(p=3)
    with pytest.raises(ValueError, match="copies"):
        uc.example3(p=2, copies=0)


def test_example3_reference_metric_is_the_scripts_thresholded_formula():
    prob = uc.example3(p=4)
    x = torch.tensor([0.5], dtype=F64)
    thr = (math.pi / 2) ** (1 / 3)
    inside = prob.metrics["reference_hypergrad"](x, torch.tensor([thr - 1e-9], dtype=F64))
    outside = prob.metrics["reference_hypergrad"](x, torch.tensor([thr + 1e-9], dtype=F64))
    assert inside == pytest.approx(math.cos(0.5) * math.cos(math.sin(0.5))) and outside == 0.0


def test_lp_hypercleaning_sampler_and_closed_forms():
    prob = uc.lp_hypercleaning(n_train=30, n_val=10, dim=4, seed=3)
    gen = torch.Generator().manual_seed(0)
    idx = prob.sampler(gen, "inner", 7)                  # a block of 7 consecutive samples
    assert isinstance(idx, slice) and len(range(30)[idx]) in (7, 2) and idx.stop <= 30
    assert prob.sampler(gen, "outer", None) == slice(0, 10)
    x = 0.5 * torch.randn(30, generator=gen, dtype=F64)
    xl = x.clone().requires_grad_(True)
    dphi = torch.autograd.grad(prob.phi(xl), xl)[0]
    torch.testing.assert_close(dphi, prob.grad_phi(x))
    full = prob.g(x, prob.y0 + 0.3)
    assert torch.allclose(full, prob.g(x, prob.y0 + 0.3, torch.arange(30)))


# -- UniBiO ------------------------------------------------------------------------------

def test_unibio_steps_have_length_outer_lr():
    prob = uc.example3(p=4)
    tr = bl.run(bl.solvers.UniBiO(p=4, outer_lr=0.03, neumann_lr=1.0), prob, steps=30)
    o = Oracles(prob)
    s = bl.solvers.UniBiO(p=4, outer_lr=0.03, neumann_lr=1.0)
    gen = torch.Generator().manual_seed(0)
    st = s.init(prob, o, gen)
    for _ in range(30):
        new, _ = s.step(st, o, gen)
        assert float((new.x - st.x).norm()) == pytest.approx(0.03, rel=1e-6)
        st = new
    assert tr.phi.iloc[-1] < tr.phi.iloc[0] - 0.5      # 30 steps of length 0.03 downhill


def test_unibio_decaying_outer_step():
    """outer_lr_decay = e: step t has length eta/(t+1)^e; e = 0 is the fixed step, bitwise."""
    prob = uc.example3(p=4)
    base = bl.run(bl.solvers.UniBiO(p=4, outer_lr=0.03, neumann_lr=1.0), prob, steps=20)
    zero = bl.run(bl.solvers.UniBiO(p=4, outer_lr=0.03, neumann_lr=1.0, outer_lr_decay=0.0), prob, steps=20)
    cols = [c for c in base.columns if "time" not in c]
    pd.testing.assert_frame_equal(base[cols], zero[cols], check_exact=True)
    o = Oracles(prob)
    s = bl.solvers.UniBiO(p=4, outer_lr=0.03, neumann_lr=1.0, outer_lr_decay=0.5)
    gen = torch.Generator().manual_seed(0)
    st = s.init(prob, o, gen)
    for t in range(30):
        new, _ = s.step(st, o, gen)
        assert float((new.x - st.x).norm()) == pytest.approx(0.03 / (t + 1) ** 0.5, rel=1e-6)
        st = new
    with pytest.raises(ValueError, match="outer_lr_decay"):
        bl.solvers.UniBiO(p=4, outer_lr=0.03, neumann_lr=1.0, outer_lr_decay=-0.5)


def test_unibio_with_plain_sgd_inner_solver_and_random_restarts():
    prob = uc.example3(p=2)
    tr = bl.run(bl.solvers.UniBiO(p=2, outer_lr=0.02, neumann_lr=1.0, inner_solver="sgd", inner_steps=3,
                                  inner_lr=0.5), prob, steps=200, eval_every=200)
    assert tr.grad_norm_sq.iloc[-1] < 1e-2 * tr.grad_norm_sq.iloc[0]
    assert tr.grad_g_calls.iloc[-1] == 3 * (1 + 199 // 2)
    tr = bl.run(bl.solvers.UniBiO(p=2, outer_lr=0.02, neumann_lr=1.0, inner_init="random"), prob,
                steps=200, eval_every=200)
    assert tr.grad_norm_sq.iloc[-1] < 1e-2 * tr.grad_norm_sq.iloc[0]


def test_outer_lr_decay_gives_the_decaying_normalized_step():
    """outer_lr_decay = a: ||x_{t+1} - x_t|| = eta/(t+1)^a * ||m_t||/(||m_t|| + eps) (schedules.decayed);
    a = 0 is the paper's constant step, bit for bit the default."""
    prob = bl.problems.quadratic.kappa2d(kappa=3.0)
    kw = dict(p=2.0, outer_lr=0.05, neumann_lr=1.0, inner_steps=10, eps=1e-12)
    steps = {}
    for a in (0.0, 0.5):
        s = bl.solvers.UniBiO(**kw, outer_lr_decay=a)
        o = bl.oracles.Oracles(prob)
        gen = torch.Generator().manual_seed(0)
        st = s.init(prob, o, gen)
        d = []
        for _ in range(8):
            x = st.x
            st, _ = s.step(st, o, gen)
            d.append(float((st.x - x).norm()))
        steps[a] = d
    for t, (c, dec) in enumerate(zip(steps[0.0], steps[0.5])):
        assert c == pytest.approx(0.05, rel=1e-9)
        assert dec == pytest.approx(0.05 / (t + 1) ** 0.5, rel=1e-9)
    default = bl.run(bl.solvers.UniBiO(**kw), prob, steps=5)
    zero = bl.run(bl.solvers.UniBiO(**kw, outer_lr_decay=0.0), prob, steps=5)
    assert default.grad_norm_sq.tolist() == zero.grad_norm_sq.tolist()
    with pytest.raises(ValueError, match="outer_lr_decay"):
        bl.solvers.UniBiO(**kw, outer_lr_decay=-0.5)
