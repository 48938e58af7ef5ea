"""Tests of F2SA (bilevel.solvers.f2sa): oracle arithmetic, convergence of the single-loop form to the
stationary point of the penalised objective Phi_lambda (closed forms, float64), the 1/lambda gap to
grad Phi, the exact penalty gradient, schedules, and determinism of the stochastic form under a seed."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import bilevel as bl
from bilevel.oracles import Oracles
from bilevel.problems import quadratic
from bilevel.solvers import F2SA
from bilevel.solvers.f2sa import KWON_EXPONENTS, penalty_hypergrad, penalty_inner_solution

F64 = torch.float64
SEED_PD = 8          # quadratic.random(3, 4, seed=8): Phi and Phi_lambda strongly convex (checked below)


def affine_phi(p, lam=None):
    r"""Closed forms of quadratic.random: grad Phi = A x + a and grad Phi_lambda = A_l x + a_l.

    y*(x) = H^{-1}(Jx - b); y*_lambda(x) = -(P + lam H)^{-1}(Cx + c - lam (Jx - b)) (argmin f + lam g);
    grad Phi_lambda = C^T y*_lambda + R x - lam J^T (y*_lambda - y*)  (paper 001, Lemma 11).
    """
    H, J, b, P, C, R, c = (p.info[k] for k in ("H", "J", "b", "P", "C", "R", "c"))
    Hi = torch.linalg.inv(H)
    Ys, ys0 = Hi @ J, -Hi @ b
    A = C.T @ Ys + R + J.T @ Hi @ (P @ Ys + C)
    a = C.T @ ys0 + J.T @ Hi @ (P @ ys0 + c)
    if lam is None:
        return A, a
    M = torch.linalg.inv(P + lam * H)
    Yl, yl0 = -M @ (C - lam * J), -M @ (c + lam * b)
    return C.T @ Yl + R - lam * J.T @ (Yl - Ys), C.T @ yl0 - lam * J.T @ (yl0 - ys0)


def run_states(solver, problem, K, seed=0):
    o = Oracles(problem, seed=seed)
    gen = torch.Generator().manual_seed(seed)
    state = solver.init(problem, o, gen)
    for _ in range(K):
        state, info = solver.step(state, o, gen)
    return state, info, o


def kwon_coupled(p, lam, beta):
    """Single-loop F2SA (T = 1, fixed lambda) with alpha = 1/L(f + lam g) and gamma = lam * alpha."""
    H, P = p.info["H"], p.info["P"]
    a = 1.0 / float(torch.linalg.eigvalsh(P + lam * H).max())
    return F2SA(inner_lr=a, z_lr=lam * a, outer_lr=beta, lmbda=lam)


# -- the penalised landscape ------------------------------------------------------------

def test_random_problem_phi_lambda_is_strongly_convex():
    p = quadratic.random(3, 4, seed=SEED_PD)
    for lam in (None, 2.0, 5.0, 20.0, 1e3):
        A, _ = affine_phi(p, lam)
        assert float(torch.linalg.eigvals(A).real.min()) > 0.05


@pytest.mark.parametrize("lam", [0.5, 3.0, 50.0])
def test_penalty_hypergrad_matches_closed_form(lam):
    p = quadratic.random(3, 4, seed=SEED_PD)
    x = torch.randn(3, generator=torch.Generator().manual_seed(1), dtype=F64)
    A_l, a_l = affine_phi(p, lam)
    torch.testing.assert_close(penalty_hypergrad(p, x, lam), A_l @ x + a_l, rtol=1e-9, atol=1e-11)
    yl = penalty_inner_solution(p, x, lam)
    H, J, b, P, C, c = (p.info[k] for k in ("H", "J", "b", "P", "C", "c"))
    torch.testing.assert_close(yl, -torch.linalg.solve(P + lam * H, C @ x + c - lam * (J @ x - b)),
                               rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kappa", [2.0, 8.0])
def test_penalty_is_exact_on_paper001_quadratic(kappa):
    """f is linear in y and grad_yy g is constant: grad Phi_lambda = grad Phi for every lambda."""
    p = quadratic.kappa2d(kappa)
    x = torch.tensor([0.7, -2.0], dtype=F64)
    for lam in (0.1, 1.0, 100.0):
        torch.testing.assert_close(penalty_hypergrad(p, x, lam), p.grad_phi(x), rtol=1e-12, atol=1e-13)


def test_penalty_gap_shrinks_like_one_over_lambda():
    p = quadratic.random(3, 4, seed=SEED_PD)
    A, a = affine_phi(p)
    lams = np.array([1e2, 1e3, 1e4, 1e5])
    gaps, station = [], []
    for lam in lams:
        A_l, a_l = affine_phi(p, float(lam))
        x_l = torch.linalg.solve(A_l, -a_l)                      # stationary point of Phi_lambda
        station.append(float(torch.linalg.vector_norm(A @ x_l + a)))
        x0 = torch.zeros(3, dtype=F64)
        gaps.append(float(torch.linalg.vector_norm(penalty_hypergrad(p, x0, float(lam)) - p.grad_phi(x0))))
    for values in (gaps, station):
        slope = np.polyfit(np.log(lams), np.log(values), 1)[0]
        assert slope == pytest.approx(-1.0, abs=0.02), values


# -- convergence of the single-loop form ----------------------------------------------------

@pytest.mark.parametrize("lam", [2.0, 20.0])
def test_single_loop_converges_to_stationary_point_of_phi_lambda(lam):
    p = quadratic.random(3, 4, seed=SEED_PD)
    state, info, o = run_states(kwon_coupled(p, lam, beta=0.3), p, K=1500)
    A_l, a_l = affine_phi(p, lam)
    x_l = torch.linalg.solve(A_l, -a_l)
    torch.testing.assert_close(state.x, x_l, rtol=0, atol=1e-9)
    assert float(torch.linalg.vector_norm(penalty_hypergrad(p, state.x, lam))) < 1e-9
    # and not at a stationary point of Phi: the gap is the penalty's bias
    A, a = affine_phi(p)
    assert float(torch.linalg.vector_norm(A @ state.x + a)) > 1e-4
    # y and z track y*_lambda and y*
    torch.testing.assert_close(state.y, penalty_inner_solution(p, state.x, lam), rtol=0, atol=1e-8)
    torch.testing.assert_close(state.z, p.y_star(state.x), rtol=0, atol=1e-8)


def test_paper001_algorithm3_as_printed_converges_on_paper001():
    """gamma = alpha = 1/((lambda+1)L) (Algorithm 3 / Theorem 5); no penalty bias on this problem."""
    p = quadratic.kappa2d(2.0)
    s = F2SA.single_loop(lmbda=1.0, L=p.info["L"], outer_lr=0.02)
    assert s.z_lr is None and s.inner_steps == 1 and s.lmbda_increment == 0
    assert s.inner_lr == pytest.approx(1 / (2 * 0.2))
    tr = bl.run(s, p, steps=2500, eval_every=2500)
    assert tr.grad_norm_sq.iloc[-1] < 1e-4 * tr.grad_norm_sq.iloc[0]


def test_f2sa_beats_itd_plateau_on_paper001():
    p = quadratic.kappa2d(4.0)
    L = p.info["L"]
    f2 = bl.run(F2SA(inner_lr=1 / (11 * L), z_lr=10 / (11 * L), outer_lr=0.05, lmbda=10.0), p, steps=1500,
                eval_every=1500)
    itd = bl.run(bl.solvers.ITD(inner_steps=1, inner_lr=1 / L, outer_lr=0.05), p, steps=1500, eval_every=1500)
    assert itd.grad_norm_sq.iloc[-1] == pytest.approx(0.01 * 3 ** 2, rel=1e-3)
    assert f2.grad_norm_sq.iloc[-1] < 1e-6


# -- oracle counts ------------------------------------------------------------------------

@pytest.mark.parametrize("T", [1, 3])
def test_counts_per_outer_step(T):
    p = quadratic.random(2, 3, seed=1)
    K = 4
    tr = bl.run(F2SA(inner_lr=0.1, outer_lr=0.01, lmbda=2.0, inner_steps=T), p, steps=K)
    for _, row in tr.iterrows():
        m = min(row.k + 1, K)
        assert (row.grad_f_calls, row.grad_g_calls, row.hvp_calls, row.jvp_calls) == (m * (T + 1), m * (2 * T + 2), 0, 0)
        assert row.grad_calls == m * (3 * T + 3) and row.mv_calls == 0 and row.samples == 0


def test_counts_and_samples_with_minibatches():
    p = sampled_problem()
    T, B, K = 2, 5, 3
    tr = bl.run(F2SA(inner_lr=0.05, outer_lr=0.01, lmbda=1.0, inner_steps=T, batch_size=B), p, steps=K)
    final = tr.iloc[-1]
    assert final.grad_calls == K * (3 * T + 3)
    assert final.samples == K * (3 * T + 3) * B          # one fresh batch per oracle call


# -- schedules, presets ----------------------------------------------------------------------

def test_lambda_and_step_schedules():
    p = quadratic.random(2, 3, seed=1)
    s = F2SA(inner_lr=0.1, outer_lr=0.01, lmbda=1.0, lmbda_increment=0.5, lmbda_decay=0.25)
    state, _, _ = run_states(s, p, K=5)
    assert state.k == 5
    assert state.lmbda == pytest.approx(1.0 + sum(0.5 / (j + 1) ** 0.25 for j in range(5)))
    # a decaying outer step: x moves by beta/(k+1)^e * estimate
    s = F2SA(inner_lr=0.1, outer_lr=0.2, lmbda=1.0, outer_decay=0.5)
    o = Oracles(p)
    st = s.init(p, o, None)
    st, _ = s.step(st, o, None)
    x1 = st.x
    st2, info = s.step(st, o, None)
    torch.testing.assert_close(st2.x, x1 - 0.2 / 2 ** 0.5 * info.hypergrad)


def test_kwon2023_preset():
    s = F2SA.kwon2023()
    assert (s.inner_lr, s.z_lr, s.outer_lr, s.lmbda, s.lmbda_increment, s.inner_steps, s.batch_size) == \
        (0.1, 0.1, 0.1, 1.0, 0.1, 10, 64)
    assert (s.inner_decay, s.z_decay, s.outer_decay, s.lmbda_decay) == tuple(KWON_EXPONENTS["benchopt"].values())
    assert F2SA.kwon2023(schedule="paper").lmbda_decay == pytest.approx(6 / 7)
    assert F2SA.kwon2023(step_size=0.2, outer_ratio=4.0).outer_lr == pytest.approx(0.05)
    with pytest.raises(ValueError, match="schedule"):
        F2SA.kwon2023(schedule="fast")


@pytest.mark.parametrize("bad", [dict(lmbda=0.0), dict(lmbda=-1.0), dict(inner_steps=0),
                                 dict(lmbda_increment=-0.1), dict(outer_decay=-1.0), dict(batch_size=0),
                                 dict(inner_lr=float("nan")), dict(z_lr=0.0)])
def test_bad_hyperparameters_raise(bad):
    hp = dict(inner_lr=0.1, outer_lr=0.01, lmbda=1.0)
    hp.update(bad)
    with pytest.raises((ValueError, TypeError)):
        F2SA(**hp)


def test_make_and_registry():
    s = bl.solvers.make("f2sa", inner_lr=0.1, outer_lr=0.01, lmbda=3.0)
    assert isinstance(s, F2SA) and "f2sa" in bl.solvers.available()
    with pytest.raises(ValueError, match="no hyperparameter"):
        bl.solvers.make("f2sa", inner_lr=0.1, outer_lr=0.01, lmbda=3.0, linsys="cg")


def test_per_coordinate_steps_shape_checked():
    p = quadratic.random(2, 3, seed=1)
    s = F2SA(inner_lr=torch.full((2,), 0.1, dtype=F64), outer_lr=0.01, lmbda=1.0)
    with pytest.raises(ValueError, match="entries"):
        bl.run(s, p, steps=1)


# -- the stochastic form ---------------------------------------------------------------------

def sampled_problem(m: int = 40, dx: int = 3, dy: int = 4, seed: int = 0):
    r"""A least-squares bilevel problem whose f and g are means over m samples; minibatches of indices.

    g(x, y) = mean_i 1/2 (a_i^T y - u_i^T x)^2 + 1/2 |y|^2,   f(x, y) = mean_i 1/2 (a_i^T y - 1)^2 + 1/2 |x|^2.
    """
    gen = torch.Generator().manual_seed(seed)
    A = torch.randn(m, dy, generator=gen, dtype=F64)
    U = torch.randn(m, dx, generator=gen, dtype=F64)

    def g(x, y, idx=None):
        idx = slice(None) if idx is None else idx
        r = A[idx] @ y - U[idx] @ x
        return 0.5 * (r * r).mean() + 0.5 * (y * y).sum()

    def f(x, y, idx=None):
        idx = slice(None) if idx is None else idx
        r = A[idx] @ y - 1.0
        return 0.5 * (r * r).mean() + 0.5 * (x * x).sum()

    def sampler(generator, kind, size):
        return torch.randint(m, (size or m,), generator=generator)

    return bl.Problem(f=f, g=g, x0=torch.zeros(dx, dtype=F64), y0=torch.zeros(dy, dtype=F64),
                      sampler=sampler, name="sampled_lsq")


def test_stochastic_form_is_deterministic_under_a_seed():
    p = sampled_problem()
    s = F2SA.kwon2023(step_size=0.05, inner_steps=3, batch_size=8)
    a = bl.run(s, p, steps=30, eval_every=10, seed=7)
    b = bl.run(s, p, steps=30, eval_every=10, seed=7)
    c = bl.run(s, p, steps=30, eval_every=10, seed=8)
    cols = [col for col in a.columns if col != "time_s"]
    assert a[cols].equals(b[cols])
    assert not a[cols].equals(c[cols])
    sa, _, _ = run_states(s, p, K=30, seed=7)
    sb, _, _ = run_states(s, p, K=30, seed=7)
    sc, _, _ = run_states(s, p, K=30, seed=8)
    assert torch.equal(sa.x, sb.x) and torch.equal(sa.y, sb.y) and torch.equal(sa.z, sb.z)
    assert not torch.equal(sa.x, sc.x)
    assert sa.lmbda > 1.0                       # the growing multiplier


def test_stochastic_form_with_additive_noise_is_deterministic():
    p = quadratic.random(3, 4, seed=SEED_PD)
    s = F2SA(inner_lr=0.05, z_lr=0.05, outer_lr=0.05, lmbda=1.0, lmbda_increment=0.1, lmbda_decay=1 / 7,
             inner_decay=5 / 7, z_decay=4 / 7, outer_decay=4 / 7, inner_steps=5)
    a = bl.run(s, p, steps=40, eval_every=20, seed=3, noise=0.1)
    b = bl.run(s, p, steps=40, eval_every=20, seed=3, noise=0.1)
    c = bl.run(s, p, steps=40, eval_every=20, seed=4, noise=0.1)
    assert np.array_equal(a.grad_norm_sq.to_numpy(), b.grad_norm_sq.to_numpy())
    assert not np.array_equal(a.grad_norm_sq.to_numpy(), c.grad_norm_sq.to_numpy())
