"""Tests of bilevel.papers.paper001.bounds: closed forms of setups.md C.2-C.4, the AID fix, validity
of the bounds against direct simulations of single-loop AID / ITD on paper 001's
quadratic, vectorisation and input validation."""

from __future__ import annotations

import importlib.util
import pathlib
import sys

import numpy as np
import pytest

try:
    from bilevel.papers.paper001 import bounds as B
except ImportError:  # the package __init__ needs torch; bounds.py itself is NumPy-only
    _path = pathlib.Path(__file__).resolve().parents[1] / "bilevel" / "bounds.py"
    _spec = importlib.util.spec_from_file_location("bilevel_bounds_standalone", _path)
    B = importlib.util.module_from_spec(_spec)
    sys.modules[_spec.name] = B
    _spec.loader.exec_module(B)

KAPPAS = np.arange(2.0, 11.0)  # the kappa grid of paper 001's figures (stand-in)
K_PAPER = 10_000


@pytest.fixture
def c():
    return B.ProblemConstants.from_kappa(KAPPAS)


# ------------------------------------------------------------------ closed forms (setups.md C.2-C.4)


def test_aid_constants_closed_forms(c):
    k = KAPPAS
    got = B.aid_constants_001(c)
    np.testing.assert_allclose(got["C0"], 1 + k, rtol=1e-12)
    np.testing.assert_allclose(got["C1"], 4 * k * (1 + k), rtol=1e-12)
    np.testing.assert_allclose(got["C2"], (1 + k) * (4 * k**2 + k + 1), rtol=1e-12)
    np.testing.assert_allclose(got["C3"], 0.1 * (1 + k) ** 2, rtol=1e-12)


def test_phi_smoothness_closed_form_and_statement_variant(c):
    k = KAPPAS
    np.testing.assert_allclose(B.phi_smoothness(c), 0.1 * k**3 + 0.3 * k**2 + 0.3 * k + 0.01, rtol=1e-12)
    # Theorem-1 statement divides (2L^2 + rho M^2) by mu^2: 10x the proof's term here.
    diff = np.asarray(B.phi_smoothness(c, "statement")) - np.asarray(B.phi_smoothness(c))
    np.testing.assert_allclose(diff, 9 * (0.2 * k**2 + 0.01), rtol=1e-12)
    with pytest.raises(ValueError, match="version"):
        B.phi_smoothness(c, "lemma8")


def test_aid_beta_paper_values(c):
    k = KAPPAS
    beta = np.asarray(B.aid_beta_001(c, scale=1.0))
    b1 = 10 / ((1 + k) ** 2 * (4 * k**2 + k + 1))
    b2 = 5 / (k**2 * (1 + k) * (4 * k**2 + k + 1))
    np.testing.assert_allclose(beta, np.minimum(b1, b2), rtol=1e-12)
    np.testing.assert_array_less(b2, b1)  # eta*mu/(2 L C2) binds for every kappa >= 2
    for kappa, expected in [(2, 0.0219), (4, 9.06e-4), (10, 1.11e-5)]:
        assert beta[kappa - 2] == pytest.approx(expected, rel=5e-3)
    # the default (fixed) step is exactly 1/3 of it; 1/(8 L_Phi) does not bind here
    np.testing.assert_allclose(B.aid_beta_001(c), beta / 3, rtol=1e-12)
    assert B.AID_BETA_SCALE == pytest.approx(1 / 3)


def test_aid_beta_cap_one_over_8_lphi_binds_when_it_should():
    # a huge M makes L_Phi ~ rho M^2/mu dominate, while C2 grows only like M
    c = B.ProblemConstants(L=1.0, mu=0.9, M=1e6, rho=1.0)
    assert B.aid_beta_001(c) == pytest.approx(1 / (8 * B.phi_smoothness(c)), rel=1e-12)


def test_itd_constants_and_beta_closed_forms(c):
    k = KAPPAS
    np.testing.assert_allclose(B.itd_beta_001(c), 1 / (2 * k * (2 * k**2 + 1)), rtol=1e-12)
    assert B.itd_beta_001(B.ProblemConstants.from_kappa(2.0)) == pytest.approx(0.0278, abs=5e-5)
    got = B.itd_constants_001(c)
    np.testing.assert_allclose(got["C4"], 0.2 * k + 0.1 / k, rtol=1e-12)
    np.testing.assert_allclose(got["C5"], 0.1 * (k - 1) + 0.1 / k**2, rtol=1e-12)
    beta, L, mu = 1 / (2 * k * (2 * k**2 + 1)), 0.1 * k, 0.1
    np.testing.assert_allclose(got["C6"], 1 - 1 / k + L * beta * got["C4"] / mu, rtol=1e-12)
    np.testing.assert_allclose(got["C7"], L * beta * got["C5"] / mu, rtol=1e-12)
    # Lemma 5's contraction C6 <= 1 - mu/(2L) holds with the maximal beta
    assert np.all(got["C6"] <= 1 - 1 / (2 * k))


def test_itd_A_value(c):
    assert B.itd_A_001(B.ProblemConstants.from_kappa(2.0)) == pytest.approx(0.0114, abs=5e-5)
    assert np.all(np.asarray(B.itd_A_001(c)) > 0)


def test_ji_lower_bound_closed_form(c):
    k = KAPPAS
    np.testing.assert_allclose(B.ji_itd_lower_bound(c, 1), 0.01 * (k - 1) ** 2, rtol=1e-12)
    np.testing.assert_allclose(B.ji_itd_lower_bound(c, 3), 0.01 * k**2 * (1 - 1 / k) ** 6, rtol=1e-12)
    # a smaller inner step gives a larger lower bound
    assert np.all(np.asarray(B.ji_itd_lower_bound(c, 1, 0.5 / c.L)) > B.ji_itd_lower_bound(c, 1))


def test_ji_itd_floor_is_kappa_times_lower_bound(c):
    k = KAPPAS
    init = B.quadratic_001_initial_terms(k)
    dy, _ = B.quadratic_001_ji_initial_terms(k)
    terms = B.ji_itd_bound_terms(c, K_PAPER, 1, None, init.delta_phi, dy)
    np.testing.assert_allclose(terms["floor"], 0.01 * k * (k - 1) ** 2, rtol=1e-12)
    np.testing.assert_allclose(terms["floor"], k * np.asarray(B.ji_itd_lower_bound(c)), rtol=1e-12)
    np.testing.assert_allclose(terms["total"], terms["initial"] + terms["inner"] + terms["transient"]
                               + terms["floor"], rtol=1e-12)


def test_ji_itd_params_at_N1():
    c = B.ProblemConstants.from_kappa(3.0)
    p = B.ji_itd_params(c, 1)
    a, am = p["alpha"], p["alpha"] * c.mu
    assert p["w_N"] == pytest.approx((1 + a) * a / np.sqrt(1 - am), rel=1e-12)
    assert p["lambda_N"] == pytest.approx((p["w_N"] ** 2 + 4) / (am / 4 + am**2 / 2), rel=1e-12)
    # Theorem 3's step conditions hold for Corollary 6's beta
    beta, w, Lphi = p["beta"], p["w"], p["L_Phi"]
    assert beta**2 <= (1 - am / 4) / (2 * w)
    assert beta * Lphi + 8 / am * (0.5 + beta * Lphi) * w * beta**2 <= 0.25 + 1e-12


def test_ji_aid_params_and_condition(c):
    p = B.ji_aid_params(c, 1, 1)
    k = KAPPAS
    np.testing.assert_allclose(p["eta"], 0.01 / (128 * (0.1 * k) ** 3), rtol=1e-12)  # alpha mu^2/(128 L^2)
    assert np.all(np.asarray(p["condition_lhs"]) <= np.asarray(p["condition_rhs"]))
    np.testing.assert_allclose(p["beta"], np.minimum(1 / np.asarray(p["L_Phi"]),
                                                     np.sqrt(p["eta"] * 0.1 / np.asarray(p["w_tilde"]))))
    # Q = 1 closed forms: C_Q = eta/mu + eta^2 + eta L, lambda = 1/(2 kappa)
    L, mu = 0.1 * k, 0.1
    eta, lam = np.asarray(p["eta"]), 1 / (2 * k)
    CQ = eta / mu + eta**2 + eta * L
    np.testing.assert_allclose(p["C_Q"], CQ, rtol=1e-10)
    r, em = mu**2 * CQ**2, eta * mu
    w_tilde = em * k**4 / (lam * r) + k**4 / em * ((1 - em) ** 2 / mu**2 + em / lam)
    np.testing.assert_allclose(p["w_tilde"], w_tilde, rtol=1e-10)
    np.testing.assert_allclose(p["condition_lhs"], (1 + lam) * (1 - 1 / k) * (1 + r * (1 + 1 / em)), rtol=1e-10)


# ------------------------------------------------------------------ the AID fix


def test_unscaled_aid_A_is_negative_and_bound_raises(c):
    beta = np.asarray(B.aid_beta_001(c, scale=1.0))
    A = np.asarray(B.aid_A_001(c, beta))
    # with beta = eta mu/(2 L C2): 12 beta^2 C2^2 L^4/mu^2 = 3, so A = -1 - 4 beta L_Phi
    np.testing.assert_allclose(A, -1 - 4 * beta * np.asarray(B.phi_smoothness(c)), rtol=1e-12)
    assert np.all(A < 0)
    init = B.quadratic_001_initial_terms(KAPPAS)
    with pytest.raises(ValueError, match=r"(?s)constant A = .*<= 0.*aid_beta_001"):
        B.aid_bound_001(c, K_PAPER, None, None, beta, init.delta_phi, init.e0)


def test_scaled_aid_A_is_positive(c):
    A = np.asarray(B.aid_A_001(c))
    assert np.all(A > 0)
    np.testing.assert_allclose(A, 1 / 3, atol=0.03)  # A -> (1 - 3c^2)/2 = 1/3 as beta L_Phi -> 0
    assert np.all(np.asarray(B.aid_A_001(c, B.aid_beta_001(c, scale=0.4))) > 0.2)  # setups.md: ~0.26


def test_default_scale_guarantees_A_at_least_one_sixth_for_any_constants():
    rng = np.random.default_rng(0)
    n = 2000
    L = 10.0 ** rng.uniform(-3, 3, n)
    mu = L / 10.0 ** rng.uniform(0, 4, n)
    M = 10.0 ** rng.uniform(-3, 3, n)
    rho = 10.0 ** rng.uniform(-3, 3, n)
    c = B.ProblemConstants(L=L, mu=mu, M=M, rho=rho)
    assert np.min(B.aid_A_001(c)) >= 1 / 6 - 1e-12
    assert np.min(B.aid_A_001(c, B.aid_beta_001(c, scale=0.44))) > 0  # any c < 1/sqrt(5)


def test_default_scale_maximises_beta_times_A_to_leading_order():
    c = B.ProblemConstants.from_kappa(6.0)
    scales = np.linspace(0.05, 0.55, 101)
    betaA = [B.aid_beta_001(c, scale=s) * B.aid_A_001(c, B.aid_beta_001(c, scale=s)) for s in scales]
    assert scales[int(np.argmax(betaA))] == pytest.approx(1 / 3, abs=0.01)


def test_aid_bound_closed_form(c):
    k = KAPPAS
    L, mu = 0.1 * k, 0.1
    Lphi = 0.1 * k**3 + 0.3 * k**2 + 0.3 * k + 0.01
    beta = 5 / (k**2 * (1 + k) * (4 * k**2 + k + 1)) / 3
    # c = 1/3: 12 beta^2 C2^2 L^4/mu^2 = 3 c^2 = 1/3 exactly, so A = 1/3 - (4/3) beta L_Phi
    A = 1 / 3 - 4 / 3 * beta * Lphi
    np.testing.assert_allclose(B.aid_A_001(c), A, rtol=1e-12)
    dphi = 0.05 * (k**2 + 1 / k)
    e0 = (1 - 1 / k) * (1 + 40 * k * (1 + k))
    expected = dphi / (beta * A * K_PAPER) + 4 * L**3 * (1 + 2 * beta * Lphi) / (2 * mu * A * K_PAPER) * e0**2
    init = B.quadratic_001_initial_terms(k)
    np.testing.assert_allclose(B.aid_bound_001(c, K_PAPER, None, None, None, init.delta_phi, init.e0),
                               expected, rtol=1e-12)


def test_itd_bound_closed_form(c):
    k = KAPPAS
    L, mu = 0.1 * k, 0.1
    Lphi = 0.1 * k**3 + 0.3 * k**2 + 0.3 * k + 0.01
    beta = 1 / (2 * k * (2 * k**2 + 1))
    C4, C5 = 0.2 * k + 0.1 / k, 0.1 * (k - 1) + 0.1 / k**2
    up = beta / 2 + beta**2 * Lphi
    A = beta / 2 - beta**2 * Lphi - up * 48 * L**2 * beta**2 * C4**2 / mu**2
    dphi, dy0 = 0.05 * (k**2 + 1 / k), 10 * (1 - 1 / k)
    B1 = up * C4**2 * 8 * L / mu * dy0**2
    B2 = up * 48 * L**2 * beta**2 * C4**2 * C5**2 / mu**2
    expected = dphi / (A * K_PAPER) + (B1 + B2) / (A * K_PAPER) + up * 2 * C5**2 / A
    init = B.quadratic_001_initial_terms(k)
    got = B.itd_bound_terms_001(c, K_PAPER, None, None, init.delta_phi, init.dy0)
    np.testing.assert_allclose(got["total"], expected, rtol=1e-12)
    np.testing.assert_allclose(got["floor"], up * 2 * C5**2 / A, rtol=1e-12)
    np.testing.assert_allclose(got["B1"], B1, rtol=1e-12)


@pytest.mark.parametrize("kappa, expected, tol", [(2, 0.057, 5e-4), (4, 0.43, 5e-3), (6, 1.52, 5e-3),
                                                  (10, 9.16, 5e-3)])
def test_itd_bound_matches_setups_sanity_table(kappa, expected, tol):
    # setups.md C.4 "Sanity numbers" (x0 = y0 = 0, K = 1e4), computed independently there
    c = B.ProblemConstants.from_kappa(float(kappa))
    init = B.quadratic_001_initial_terms(float(kappa))
    got = B.itd_bound_001(c, K_PAPER, None, None, init.delta_phi, init.dy0)
    assert got == pytest.approx(expected, abs=tol)  # half a unit of the table's last digit


def test_ji_aid_bound_closed_form():
    c = B.ProblemConstants.from_kappa(3.0)
    p = B.ji_aid_params(c)
    dphi, y0s = 0.5, 111.0
    expected = dphi / (p["beta"] * 100) + (9 * y0s + 3 * 0.1 / 0.1 + 9) / (p["eta"] * 0.1 * 100)
    assert B.ji_aid_bound(c, 100, 1, 1, dphi, y0s) == pytest.approx(expected, rel=1e-12)


def test_ji_itd_bound_terms_closed_form():
    c = B.ProblemConstants.from_kappa(3.0)
    p = B.ji_itd_params(c, 1)
    q = (1 - 1 / 3) ** 2
    t = B.ji_itd_bound_terms(c, 100, 1, None, 0.5, 111.0)
    assert t["initial"] == pytest.approx(0.5 / (p["beta"] * 100), rel=1e-12)
    assert t["inner"] == pytest.approx(p["tau"] * 111.0 / (0.01 * 100), rel=1e-12)
    assert t["transient"] == pytest.approx(q / (1e-3 * 100), rel=1e-12)


# ------------------------------------------------------------------ bounds: monotonicity, ordering, vectorisation


def _all_bounds(c, K, kappa):
    init = B.quadratic_001_initial_terms(kappa)
    dy, y0s = B.quadratic_001_ji_initial_terms(kappa)
    return {
        "aid_001": B.aid_bound_001(c, K, None, None, None, init.delta_phi, init.e0),
        "itd_001": B.itd_bound_001(c, K, None, None, init.delta_phi, init.dy0),
        "ji_aid": B.ji_aid_bound(c, K, 1, 1, init.delta_phi, y0s),
        "ji_itd": B.ji_itd_bound(c, K, 1, None, init.delta_phi, dy),
    }


@pytest.mark.parametrize("kappa", [2.0, 5.0, 10.0])
def test_bounds_decrease_in_K(kappa):
    c = B.ProblemConstants.from_kappa(kappa)
    K = np.unique(np.round(np.logspace(0, 7, 50)))
    for name, curve in _all_bounds(c, K, kappa).items():
        assert curve.shape == K.shape, name
        assert np.all(np.diff(curve) < 0), name


def test_bounds_vectorise_over_K_and_kappa():
    K = np.array([10.0, 100.0, 1e3, 1e4, 1e5])
    c = B.ProblemConstants.from_kappa(KAPPAS)
    grid = _all_bounds(c, K[:, None], KAPPAS)
    for name, values in grid.items():
        assert values.shape == (K.size, KAPPAS.size), name
        for j, kappa in enumerate(KAPPAS[::4]):
            cj = B.ProblemConstants.from_kappa(kappa)
            for i, k in enumerate(K):
                scalar = _all_bounds(cj, k, kappa)[name]
                assert isinstance(scalar, float)
                assert values[i, 4 * j] == pytest.approx(scalar, rel=1e-12), name


def test_aid_bound_scales_as_one_over_K(c):
    init = B.quadratic_001_initial_terms(KAPPAS)
    b1 = np.asarray(B.aid_bound_001(c, 100, None, None, None, init.delta_phi, init.e0))
    b2 = np.asarray(B.aid_bound_001(c, 10_000, None, None, None, init.delta_phi, init.e0))
    np.testing.assert_allclose(b1 / b2, 100, rtol=1e-12)


def test_itd_bounds_above_lower_bound(c):
    lower = np.asarray(B.ji_itd_lower_bound(c))
    for K in (1e2, 1e4, 1e8):
        bounds = _all_bounds(c, K, KAPPAS)
        assert np.all(bounds["itd_001"] >= lower)
        assert np.all(bounds["ji_itd"] >= lower)
    init = B.quadratic_001_initial_terms(KAPPAS)
    floor = B.itd_bound_terms_001(c, 1e12, None, None, init.delta_phi, init.dy0)["floor"]
    assert np.all(floor >= lower)


def test_our_aid_bound_below_ji_at_paper_setting(c):
    # paper 001's Fig. 1 claim, with the fixed beta and Theta = 1 for Ji et al.
    b = _all_bounds(c, K_PAPER, KAPPAS)
    assert np.all(b["aid_001"] < b["ji_aid"])


def test_itd_b2_per_iteration_variant(c):
    init = B.quadratic_001_initial_terms(KAPPAS)
    t0 = B.itd_bound_terms_001(c, K_PAPER, None, None, init.delta_phi, init.dy0)
    t1 = B.itd_bound_terms_001(c, K_PAPER, None, None, init.delta_phi, init.dy0, b2_per_iteration=True)
    np.testing.assert_allclose(t1["floor"] - t0["floor"], np.asarray(t0["B2"]) / np.asarray(t0["A"]), rtol=1e-12)
    assert np.all(t1["total"] > t0["total"])
    np.testing.assert_allclose(t0["total"], t0["initial"] + t0["inner"] + t0["floor"], rtol=1e-12)


# ------------------------------------------------------------------ initial terms of the quadratic


def test_quadratic_initial_terms_closed_forms():
    k = KAPPAS
    t = B.quadratic_001_initial_terms(k)
    np.testing.assert_allclose(t.delta_phi, 0.05 * (k**2 + 1 / k), rtol=1e-12)
    np.testing.assert_allclose(t.dy0, 10 * (1 - 1 / k), rtol=1e-12)
    np.testing.assert_allclose(t.e0, (1 - 1 / k) * (1 + 10 * 4 * k * (1 + k)), rtol=1e-12)
    dy, y0s = B.quadratic_001_ji_initial_terms(k)
    np.testing.assert_allclose(dy, 100 / k**2 + 100, rtol=1e-12)
    np.testing.assert_allclose(y0s, 100 / k**2 + 100, rtol=1e-12)


def _quadratic(kappa, mu=0.1):
    L = kappa * mu
    Z = np.diag([L, mu])
    one = np.ones(2)
    y_star = lambda x: np.linalg.solve(Z, L * x - one)
    phi = lambda x: 0.5 * x @ Z @ x + 0.1 * one @ y_star(x)
    grad_phi = lambda x: Z @ x + 0.1 * L * np.linalg.solve(Z, one)
    return L, Z, one, y_star, phi, grad_phi


@pytest.mark.parametrize("kappa", [2.0, 3.5, 7.0])
def test_quadratic_initial_terms_match_direct_computation(kappa):
    rng = np.random.default_rng(int(kappa * 10))
    x0, y0, v0 = rng.normal(size=(3, 2))
    L, Z, one, y_star, phi, grad_phi = _quadratic(kappa)
    alpha = eta = 1 / L
    x_star = np.linalg.solve(Z, -0.1 * L * np.linalg.solve(Z, one))
    np.testing.assert_allclose(grad_phi(x_star), 0, atol=1e-12)
    # finite-difference check of the hypergradient formula used in the test
    h = 1e-6
    fd = [(phi(x0 + h * e) - phi(x0 - h * e)) / (2 * h) for e in np.eye(2)]
    np.testing.assert_allclose(fd, grad_phi(x0), rtol=1e-6)
    y_hat = y0 - alpha * (Z @ y0 - L * x0 + one)
    v_hat = v0 - eta * (Z @ v0 - 0.1 * one)
    v_tilde = np.linalg.solve(Z, 0.1 * one)
    C1 = B.aid_constants_001(B.ProblemConstants.from_kappa(kappa))["C1"]
    t = B.quadratic_001_initial_terms(kappa, x0, y0, v0)
    assert t.delta_phi == pytest.approx(phi(x0) - phi(x_star), rel=1e-10)
    assert t.dy0 == pytest.approx(np.linalg.norm(y_hat - y_star(x0)), rel=1e-12)
    assert t.e0 == pytest.approx(np.linalg.norm(v_hat - v_tilde) + C1 * np.linalg.norm(y_hat - y_star(x0)),
                                 rel=1e-12)
    dy, y0s = B.quadratic_001_ji_initial_terms(kappa, x0, y0)
    assert dy == pytest.approx(np.sum((y0 - y_star(x0)) ** 2), rel=1e-12)
    assert y0s == pytest.approx(np.sum(y_star(x0) ** 2), rel=1e-12)


# ------------------------------------------------------------------ the bounds hold on simulated runs


def _simulate(kappa, method, K, beta, x0=(0.0, 0.0), y0=(0.0, 0.0), v0=(0.0, 0.0)):
    """Single-loop AID / ITD (paper 001, Algorithms 1-2, N = Q = 1, alpha = eta = 1/L)."""
    L, Z, one, y_star, phi, grad_phi = _quadratic(kappa)
    alpha = eta = 1 / L
    x, y, v = (np.array(a, dtype=float) for a in (x0, y0, v0))
    g_norm, err_sq = np.empty(K), np.empty(K)
    for k in range(K):
        y_prev = y
        y = y_prev - alpha * (Z @ y_prev - L * x + one)
        if method == "aid":
            v = v - eta * (Z @ v - 0.1 * one)
            hyper = Z @ x + L * v                  # grad_x f - grad_xy g v, grad_xy g = -L I
        else:
            hyper = Z @ x + alpha * L * 0.1 * one  # grad_x f - alpha grad_xy g grad_y f
        true = grad_phi(x)
        g_norm[k] = np.linalg.norm(true)
        err_sq[k] = np.sum((hyper - true) ** 2)
        x = x - beta * hyper
    return g_norm, err_sq


@pytest.mark.parametrize("kappa", [2.0, 3.0, 5.0])
def test_aid_theorem1_and_lemma4_hold_on_the_quadratic(kappa):
    c = B.ProblemConstants.from_kappa(kappa)
    beta = B.aid_beta_001(c)
    K = 3000
    g_norm, err_sq = _simulate(kappa, "aid", K, beta, x0=(1.0, -2.0), y0=(0.5, 0.5), v0=(-1.0, 1.0))
    t = B.quadratic_001_initial_terms(kappa, (1.0, -2.0), (0.5, 0.5), (-1.0, 1.0))
    Ks = np.array([1, 10, 100, K])
    avg = np.array([np.mean(g_norm[:k] ** 2) for k in Ks])
    bound = B.aid_bound_001(c, Ks, None, None, None, t.delta_phi, t.e0)
    assert np.all(avg <= bound)
    lemma4 = B.aid_hypergrad_error_001(c, g_norm, t.e0)
    assert lemma4.shape == (K,)
    assert np.all(err_sq <= lemma4)


@pytest.mark.parametrize("kappa", [2.0, 3.0, 5.0])
def test_itd_theorem3_and_lemma7_hold_on_the_quadratic(kappa):
    c = B.ProblemConstants.from_kappa(kappa)
    K = 3000
    g_norm, err_sq = _simulate(kappa, "itd", K, B.itd_beta_001(c))
    t = B.quadratic_001_initial_terms(kappa)
    Ks = np.array([1, 10, 100, K])
    avg = np.array([np.mean(g_norm[:k] ** 2) for k in Ks])
    assert np.all(avg <= B.itd_bound_001(c, Ks, None, None, t.delta_phi, t.dy0))
    assert np.all(err_sq <= B.itd_hypergrad_error_001(c, g_norm, t.dy0))
    # ITD's final gradient sits at (not below) the lower bound: ||grad Phi(x_inf)||^2 = 0.01 (kappa-1)^2
    assert g_norm[-1] ** 2 >= B.ji_itd_lower_bound(c) * (1 - 1e-6)


def test_hypergrad_error_bounds_match_direct_double_sums():
    c = B.ProblemConstants.from_kappa(3.0)
    rng = np.random.default_rng(1)
    g = rng.uniform(0, 2, size=7)
    e0, dy0 = 2.5, 1.5
    beta = B.aid_beta_001(c)
    C2 = B.aid_constants_001(c)["C2"]
    L, mu = c.L, c.mu
    r = 1 - mu / (4 * L)
    direct = [L**2 * r**k * e0**2 + 3 * beta**2 * C2**2 * L**3 / mu
              * sum(r ** (k - 1 - t) * g[t] ** 2 for t in range(k + 1)) for k in range(g.size)]
    np.testing.assert_allclose(B.aid_hypergrad_error_001(c, g, e0), direct, rtol=1e-12)
    bi = B.itd_beta_001(c)
    k7 = B.itd_constants_001(c)
    C4, C5 = k7["C4"], k7["C5"]
    for factors, (a, b, d) in {"proof": (2, 6, 2), "statement": (1, 3, 3)}.items():
        direct = [a * C4**2 * r**k * dy0**2 + b * L * bi**2 * C4**2 / mu
                  * sum(r ** (k - 1 - j) * (g[j] + C5) ** 2 for j in range(k)) + d * C5**2
                  for k in range(g.size)]
        np.testing.assert_allclose(B.itd_hypergrad_error_001(c, g, dy0, factors=factors), direct, rtol=1e-12)


# ------------------------------------------------------------------ validation


@pytest.mark.parametrize("kwargs, match", [
    (dict(L=-1.0, mu=0.1, M=0.1, rho=0.1), "L must be > 0"),
    (dict(L=1.0, mu=0.0, M=0.1, rho=0.1), "mu must be > 0"),
    (dict(L=1.0, mu=0.1, M=0.0, rho=0.1), "M must be > 0"),
    (dict(L=1.0, mu=0.1, M=0.1, rho=-0.1), "rho must be >= 0"),
    (dict(L=1.0, mu=2.0, M=0.1, rho=0.1), r"mu must lie in \(0, L\]"),
    (dict(L=np.array([1.0, np.nan]), mu=0.1, M=0.1, rho=0.1), "L must be finite"),
])
def test_problem_constants_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        B.ProblemConstants(**kwargs)


def test_problem_constants_kappa_and_rho_zero():
    c = B.ProblemConstants(L=2.0, mu=0.5, M=1.0, rho=0.0)
    assert c.kappa == 4.0 and isinstance(c.L, float)
    with pytest.raises(ValueError, match="kappa must be >= 1"):
        B.ProblemConstants.from_kappa(0.5)


def test_invalid_arguments_raise_with_the_parameter_name():
    c = B.ProblemConstants.from_kappa(3.0)
    t = B.quadratic_001_initial_terms(3.0)
    with pytest.raises(ValueError, match="K must be >= 1"):
        B.aid_bound_001(c, 0, None, None, None, t.delta_phi, t.e0)
    with pytest.raises(ValueError, match="K must be >= 1"):
        B.itd_bound_001(c, np.array([5, 0]), None, None, t.delta_phi, t.dy0)
    with pytest.raises(ValueError, match=r"alpha must lie in \(0, 1/L\]"):
        B.aid_constants_001(c, alpha=2 / c.L)
    with pytest.raises(ValueError, match=r"eta must lie in \(0, 1/L\]"):
        B.aid_beta_001(c, eta=1.5 / c.L)
    with pytest.raises(ValueError, match=r"Theorem 1 .* alpha = 1/L"):
        B.aid_bound_001(c, 10, 0.5 / c.L, None, None, t.delta_phi, t.e0)
    with pytest.raises(ValueError, match=r"Theorem 3 .* alpha = 1/L"):
        B.itd_bound_001(c, 10, 0.5 / c.L, None, t.delta_phi, t.dy0)
    with pytest.raises(ValueError, match="beta must be > 0"):
        B.aid_bound_001(c, 10, None, None, -1.0, t.delta_phi, t.e0)
    with pytest.raises(ValueError, match=r"beta in \(0, mu\^3"):
        B.itd_bound_001(c, 10, None, 2 * B.itd_beta_001(c), t.delta_phi, t.dy0)
    with pytest.raises(ValueError, match="delta_phi must be >= 0"):
        B.itd_bound_001(c, 10, None, None, -1.0, t.dy0)
    with pytest.raises(ValueError, match="e0 must be >= 0"):
        B.aid_bound_001(c, 10, None, None, None, t.delta_phi, -1.0)
    with pytest.raises(ValueError, match="N must be an integer >= 1"):
        B.ji_itd_lower_bound(c, 1.5)
    with pytest.raises(ValueError, match="Q must be >= 1"):
        B.ji_aid_bound(c, 10, 1, 0, 1.0, 1.0)
    with pytest.raises(ValueError, match=r"alpha in \(0, 1/\(2L\)\]"):
        B.ji_itd_bound(c, 10, 1, None, 1.0, 1.0, strict=True)
    with pytest.raises(ValueError, match="alpha\\*mu < 1"):
        B.ji_itd_bound(B.ProblemConstants(1.0, 1.0, 0.1, 0.1), 10, 1, None, 1.0, 1.0)
    with pytest.raises(ValueError, match="scale must be > 0"):
        B.aid_beta_001(c, scale=0.0)
    with pytest.raises(TypeError, match="K must be a real number"):
        B.aid_bound_001(c, "ten", None, None, None, t.delta_phi, t.e0)


def test_strict_ji_itd_accepts_half_step():
    c = B.ProblemConstants.from_kappa(3.0)
    value = B.ji_itd_bound(c, 100, 1, 0.5 / c.L, 1.0, 1.0, strict=True)
    assert np.isfinite(value) and value > B.ji_itd_lower_bound(c, 1, 0.5 / c.L)
