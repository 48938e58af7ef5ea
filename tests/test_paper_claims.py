"""Each paper's claims functions on small synthetic tidy tables: a table where the claim holds,
and a counterfactual one (wrong exponent, reversed ordering, a bound violated at one point ...)
where the same function must return holds=False (or None where the data cannot test it)."""

import numpy as np
import pandas as pd
import pytest

from bilevel import claims
from bilevel.papers.paper001 import experiments as paper001
from bilevel.papers.paper002 import experiments as paper002
from bilevel.papers.paper003 import experiments as paper003


def by_id(cs):
    claims.table(cs)                      # ids unique, verdicts valid
    return {c.id: c for c in cs}


# -- paper 001, Figures 1-2 ---------------------------------------------------------------

def quadratic_tables(exponent=2.0, bound_order=2.0, aid_bump_at=None, aid_rate=0.95, aid_over_bound_at=None):
    kappas = np.arange(2.0, 7.0)
    K, M = 1000, 0.1
    itd_final = M ** 2 * (kappas - 1) ** exponent
    lower = M ** 2 * (kappas - 1) ** 2
    ours = M ** 2 * (kappas - 1) ** bound_order / 0.32
    aid_avg = 1e-3 * kappas
    rows = []
    for i, k in enumerate(kappas):
        rows.append({"method": "ITD", "kappa": k, "K": K, "M": M, "final_grad_norm_sq": itd_final[i],
                     "avg_grad_norm_sq": 1.1 * itd_final[i], "final_hypergrad_err_sq": lower[i]})
        avg = aid_avg[i] * (100 if k == aid_over_bound_at else 1)
        rows.append({"method": "AID", "kappa": k, "K": K, "M": M, "final_grad_norm_sq": 1e-8,
                     "avg_grad_norm_sq": avg, "final_hypergrad_err_sq": 1e-30})
    summary = pd.DataFrame(rows)
    bounds_kappa = pd.concat([pd.DataFrame({"curve": name, "kappa": kappas, "value": v}) for name, v in
                              (("itd_ours", ours), ("itd_lower", lower), ("aid_ours", 10 * aid_avg),
                               ("aid_ji", 100 * aid_avg))], ignore_index=True)
    k = np.arange(K)
    g = 0.05 * aid_rate ** k
    if aid_bump_at is not None:
        g[aid_bump_at] = 2 * g[aid_bump_at - 1]
    curves = pd.DataFrame({"method": "AID", "kappa": 2.0, "k": k, "grad_norm_sq": g,
                           "running_avg_grad_norm_sq": np.cumsum(g) / (k + 1)})
    return summary, curves, bounds_kappa


def test_quadratic_claims_hold_on_the_paper_world():
    cs = by_id(paper001.quadratic_claims(*quadratic_tables()))
    assert all(c.holds for c in cs.values()), {i: (c.measured, c.holds) for i, c in cs.items()}
    assert cs["itd_error_order_kappa2"].measured == pytest.approx(2.0)


def test_quadratic_claims_fail_on_counterfactuals():
    cs = by_id(paper001.quadratic_claims(*quadratic_tables(exponent=1.0)))
    assert cs["itd_error_order_kappa2"].holds is False          # error of order kappa, not kappa^2
    assert cs["itd_above_lower_bound"].holds is False
    cs = by_id(paper001.quadratic_claims(*quadratic_tables(exponent=3.0)))
    assert cs["itd_error_order_kappa2"].holds is False          # two-sided: kappa^3 fails too
    cs = by_id(paper001.quadratic_claims(*quadratic_tables(bound_order=3.0)))
    assert cs["itd_bound_same_order"].holds is False            # bounds differ in order
    assert cs["itd_bound_scale_empirical"].holds is False
    cs = by_id(paper001.quadratic_claims(*quadratic_tables(aid_over_bound_at=4.0)))
    assert cs["aid_below_bounds"].holds is False                # a bound violated at one kappa
    assert "kappa=4" in cs["aid_below_bounds"].measured
    cs = by_id(paper001.quadratic_claims(*quadratic_tables(aid_bump_at=500)))
    assert cs["aid_keeps_decreasing"].holds is False            # one increase breaks "keeps decreasing"
    cs = by_id(paper001.quadratic_claims(*quadratic_tables(aid_rate=1.0)))
    assert cs["aid_rate_one_over_K"].holds is False             # no convergence: average flat in K


def test_itd_order_slope_uses_every_kappa():
    # no kappa is selected by its closeness to the formula: moving only the largest kappa's point off the
    # (kappa - 1)^2 law moves the slope out of [1.8, 2.2]
    s, c, b = quadratic_tables()
    s.loc[(s.method == "ITD") & (s.kappa == s.kappa.max()), "final_grad_norm_sq"] *= 4
    cs = by_id(paper001.quadratic_claims(s, c, b))
    assert cs["itd_error_order_kappa2"].holds is False


def test_quadratic_bound_scale_fit_is_two_sided_and_uses_every_kappa():
    s, c, b = quadratic_tables()
    cs = by_id(paper001.quadratic_claims(s, c, b))
    assert cs["itd_bound_scale_fit_empirical"].measured == pytest.approx(0.32)
    for factor in (0.5, 2.0):                                    # the bound too tight or too loose
        bb = b.copy()
        bb.loc[bb.curve == "itd_ours", "value"] *= factor
        cs = by_id(paper001.quadratic_claims(s, c, bb))
        assert cs["itd_bound_scale_fit_empirical"].holds is False
        assert cs["itd_bound_scale_fit_lower"].holds is False
    sc = paper001.itd_bound_scales(s, b)
    assert len(sc) == s[s.method == "ITD"].kappa.nunique()      # one row per kappa: none left out
    np.testing.assert_allclose(sc.bound_over_empirical, 1 / 0.32)


def test_aid_bound_tighter_checks_every_kappa_and_K():
    s, c, b = quadratic_tables()
    Ks = [10, 100, 1000]
    grid = pd.concat([b[b.curve.isin(["aid_ours", "aid_ji"])].assign(K=k) for k in Ks], ignore_index=True)
    cs = by_id(paper001.quadratic_claims(s, c, b, bounds_grid=grid))
    assert cs["aid_bound_tighter"].holds is True and cs["aid_bound_tighter"].measured.startswith("15/15")
    bad = grid.copy()
    bad.loc[(bad.curve == "aid_ours") & (bad.kappa == 3.0) & (bad.K == 10), "value"] *= 1e3
    cs = by_id(paper001.quadratic_claims(s, c, b, bounds_grid=bad))   # tighter at K, looser at K = 10
    assert cs["aid_bound_tighter"].holds is False and "kappa=3 K=10" in cs["aid_bound_tighter"].measured


def test_aid_progress_flags_runs_that_barely_moved():
    s, _, _ = quadratic_tables()
    kappas = np.sort(s[s.method == "AID"].kappa.unique())
    c = pd.DataFrame({"method": "AID", "kappa": kappas, "k": 0, "grad_norm_sq": 1e-8 / (1 - 0.05 * kappas)})
    pr = paper001.aid_progress(s, c)
    np.testing.assert_allclose(pr.rel_decrease, 0.05 * kappas)
    assert pr.barely_moved.tolist() == list(0.05 * kappas < paper001.BARELY_MOVED)
    with pytest.raises(KeyError, match="k = 0"):
        paper001.aid_progress(s, c.iloc[1:])


def test_quadratic_claims_untestable_with_too_few_kappas():
    s, c, b = quadratic_tables()
    s = s[s.kappa <= 3]
    cs = by_id(paper001.quadratic_claims(s, c, b[b.kappa <= 3]))
    assert cs["itd_error_order_kappa2"].holds is None and cs["itd_error_order_kappa2"].reason


# -- paper 001, Figure 3 left ------------------------------------------------------------

def exponent_fits(exponent):
    rng = np.random.default_rng(0)
    kappas = np.array([2.0, 3, 5, 8, 13, 21])
    rows = [{"seed": s, "kappa0": k, "avg_grad_norm_sq": k ** exponent * np.exp(0.02 * rng.standard_normal())}
            for s in range(3) for k in kappas]
    return paper001.exponent_fit(pd.DataFrame(rows))


def test_feature_learning_claim_holds_for_kappa_2_26():
    (c,) = paper001.feature_learning_claims(exponent_fits(2.26))
    assert c.holds is True and c.paper == "2.26"


@pytest.mark.parametrize("exponent", [1.6, 2.9])
def test_feature_learning_claim_holds_inside_the_range(exponent):
    (c,) = paper001.feature_learning_claims(exponent_fits(exponent))
    assert c.holds is True, c.measured


@pytest.mark.parametrize("exponent", [-1.95, -0.5, 0.0, 1.0, 3.0, 3.5])
def test_feature_learning_claim_fails_for_other_exponents(exponent):
    (c,) = paper001.feature_learning_claims(exponent_fits(exponent))
    assert c.holds is False, c.measured


def feature_summary(avg_exponent, scale_exponent=0.0, final_over_avg=0.1, err_over_final=0.01):
    kappas = np.array([2.0, 3, 5, 8, 13, 21])
    rng = np.random.default_rng(1)
    rows = []
    for s in range(3):
        for k in kappas:
            g0 = 1e-3 * k ** scale_exponent * np.exp(0.02 * rng.standard_normal())
            avg = 1e-5 * k ** avg_exponent * np.exp(0.02 * rng.standard_normal())
            rows.append({"seed": s, "kappa0": k, "initial_grad_norm_sq": g0, "avg_grad_norm_sq": avg,
                         "avg_over_initial": avg / g0, "final_grad_norm_sq": final_over_avg * avg,
                         "final_hypergrad_err_sq": err_over_final * final_over_avg * avg})
    return pd.DataFrame(rows)


def test_feature_learning_reason_reads_the_measured_numbers():
    s = feature_summary(-0.5)
    (c,) = paper001.feature_learning_claims(paper001.exponent_fit(s), s)
    assert c.holds is False
    assert "still descending" in c.reason and "no ITD error floor" in c.reason
    assert "Phi's own scale" not in c.reason                     # scale exponent 0: not blamed
    s = feature_summary(-2.0, scale_exponent=-2.0, final_over_avg=0.9, err_over_final=5.0)
    (c,) = paper001.feature_learning_claims(paper001.exponent_fit(s), s)
    assert "Phi's own scale" in c.reason and "still descending" not in c.reason
    assert "no ITD error floor" not in c.reason
    s = feature_summary(2.2)                                     # holds: no reason attached
    (c,) = paper001.feature_learning_claims(paper001.exponent_fit(s), s)
    assert c.holds is True and c.reason == ""


def test_feature_learning_claim_untestable_with_one_seed():
    fits = exponent_fits(2.0)
    fits.loc[fits.fit == "mean over seed", ["ci_low", "ci_high"]] = np.nan
    (c,) = paper001.feature_learning_claims(fits)
    assert c.holds is None and c.reason


# -- paper 001, Figure 3 right -----------------------------------------------------------

def reweighting_tables(plateau=0.65, slope=0.0, fast=True, loop_level=0.5):
    """Curves in the paper's shape: fast decrease to ``plateau``, then ``slope`` per 1000 iterations."""
    K = 3000
    rows, curves = [], []
    for m in ("itd1", "itd1_gd", "itdN", "aidN"):
        Km = K if m.startswith("itd1") else K // 10
        k = np.arange(0, Km + 1, 25 if Km == K else 5)
        level = loop_level if m in ("itdN", "aidN") else plateau
        v = level + (2.3 - level) * (np.exp(-k / (100 * Km / K)) if fast else 1 - k / Km) + slope * k / 1000
        curves.append(pd.DataFrame({"method": m, "k": k, "val_loss": v}))
        rows.append({"method": m, "K": Km, "plateau_fraction": 0.2, "min_val_loss": float(v.min()),
                     "grad_calls": 2 * K if m.startswith("itd1") else 11 * Km})
    return pd.DataFrame(rows), pd.concat(curves, ignore_index=True)


def test_reweighting_claims_hold_on_the_paper_world():
    cs = by_id(paper001.reweighting_claims(*reweighting_tables()))
    assert set(cs) == {"plateau_level", "plateau_flat", "decreases_rapidly", "error_is_inherent"}
    assert all(c.holds for c in cs.values()), {i: c.measured for i, c in cs.items()}
    assert "Gc: itd1 6000, aidN 3300, itdN 3300" in cs["error_is_inherent"].statement   # the budgets are stated


def test_reweighting_claims_fail_on_counterfactuals():
    cs = by_id(paper001.reweighting_claims(*reweighting_tables(plateau=0.33)))
    assert cs["plateau_level"].holds is False                   # a level far below 0.65
    cs = by_id(paper001.reweighting_claims(*reweighting_tables(plateau=0.9)))
    assert cs["plateau_level"].holds is False                   # two-sided
    cs = by_id(paper001.reweighting_claims(*reweighting_tables(slope=-0.1)))
    assert cs["plateau_flat"].holds is False                    # still falling 0.06 over the window: no plateau
    assert cs["plateau_flat"].measured == pytest.approx(0.1 * 0.6 / (0.65 - 0.1 * 2.7), rel=1e-6)
    cs = by_id(paper001.reweighting_claims(*reweighting_tables(fast=False)))
    assert cs["decreases_rapidly"].holds is False
    cs = by_id(paper001.reweighting_claims(*reweighting_tables(loop_level=0.7)))
    assert cs["error_is_inherent"].holds is False


def test_plateau_change_measures_the_fitted_change_over_the_window():
    k = np.arange(0, 1001)
    level, slope, rel = paper001.plateau_change(k, 1.0 - 0.5 * k / 1000, 0.2)
    assert level == pytest.approx(0.55) and slope == pytest.approx(-5e-4) and rel == pytest.approx(0.1 / 0.55)
    with pytest.raises(ValueError, match="plateau fraction"):
        paper001.plateau_change(k, k, 0.0)


# -- paper 001, Appendix C (F2SA) --------------------------------------------------------

def f2sa_tables(K=5000, final_factor=1.0, flat=False):
    rows = [{"method": "ITD", "lmbda": np.nan, "f_curvature_over_L": 0.0, "final_grad_norm_sq": 0.09,
             "stationary_grad_norm_sq": np.nan, "K": K}]
    for lam in (1.0, 10.0, 100.0):
        rows.append({"method": "F2SA", "lmbda": lam, "f_curvature_over_L": 0.0, "final_grad_norm_sq": 7e-6,
                     "stationary_grad_norm_sq": 0.0, "K": K})
        stat = 0.01 if flat else lam ** -2.0
        rows.append({"method": "F2SA", "lmbda": lam, "f_curvature_over_L": 1.0,
                     "final_grad_norm_sq": stat * final_factor, "stationary_grad_norm_sq": stat, "K": K})
    return pd.DataFrame(rows)


def test_f2sa_claims_hold_on_exact_gaps():
    gaps = paper001.penalty_gap_table([2.0, 4.0, 8.0], [1e3, 3e3, 1e4])
    cs = by_id(paper001.f2sa_claims(f2sa_tables(), gaps))
    assert all(c.holds for c in cs.values()), {i: c.measured for i, c in cs.items()}


def test_f2sa_claims_fail_on_counterfactuals():
    gaps = paper001.penalty_gap_table([2.0, 4.0, 8.0], [1e3, 3e3, 1e4])
    bad = gaps.assign(gap_x0=gaps.kappa ** 2 / np.sqrt(gaps.lmbda))    # kappa^2 / sqrt(lambda)
    cs = by_id(paper001.f2sa_claims(f2sa_tables(), bad))
    assert cs["gap_one_over_lambda"].holds is False and cs["gap_kappa_cubed"].holds is False
    cs = by_id(paper001.f2sa_claims(f2sa_tables(final_factor=1.5), gaps))
    assert cs["f2sa_reaches_stationary_point"].holds is False
    cs = by_id(paper001.f2sa_claims(f2sa_tables(flat=True), gaps))
    assert cs["f2sa_bias_one_over_lambda"].holds is False       # no 1/lambda decay
    s = f2sa_tables()
    s.loc[(s.method == "F2SA") & (s.f_curvature_over_L == 0), "stationary_grad_norm_sq"] = 1e-6
    assert by_id(paper001.f2sa_claims(s, gaps))["no_bias_on_quadratic"].holds is False


def test_f2sa_claims_untestable_on_short_runs():
    gaps = paper001.penalty_gap_table([2.0, 4.0], [1e3, 1e4])
    cs = by_id(paper001.f2sa_claims(f2sa_tables(K=100), gaps))
    assert cs["f2sa_bias_one_over_lambda"].holds is None and "K = 100" in cs["f2sa_bias_one_over_lambda"].reason


# -- paper 002 ---------------------------------------------------------------------------

def example3_tables(reverse=False, inner=(75, 59 + 30, 70 + 40, 77 + 50), baseline_factor=2.0, T=500,
                    equal_reverse=False, c5_inner=(75, 118, 213, 313), decay_factor=0.5):
    """Tables as example3_runs/baseline_grid write them, in a world where the paper's claims hold
    (larger p slower with per-p and with equal steps, inner iterations growing, UniBiO ahead)."""
    ps = [2, 4, 6, 8]
    rows, curves = [], []
    t = np.arange(1, T + 1)
    for rule, sched, levels, rev in (("per_p", "code", (0.0, 1.0), reverse), ("equal", "code", (0.0, 1.0), equal_reverse),
                                     ("per_p", "theorem_c5", (0.0,), reverse)):
        order = ps[::-1] if rev else ps
        for var in levels:
            for p, rank in zip(ps, order):
                steps = (inner if sched == "code" else c5_inner)[ps.index(p)] / 2
                rows.append({"lr_rule": rule, "inner_schedule": sched, "noise_variance": var, "p": p, "T": T,
                             "outer_lr": 0.02 if rule == "equal" else 0.05 / rank, "avg_hypergrad_at_y": 0.1 * rank,
                             "fit_from": 10, "slope": -1.0 / rank, "slope_all": -0.9 / rank,
                             "inner_steps_per_iter": steps})
                curves.append(pd.DataFrame({"lr_rule": rule, "inner_schedule": sched, "noise_variance": var,
                                            "p": p, "t": t, "avg_hypergrad_at_y": rank / np.sqrt(t)}))
    grid = []
    for p in ps:
        grid.append({"label": "UniBiO", "method": "unibio", "p": p, "best": True, "avg_grad_norm": 0.01 * p,
                     "diverged": 0})
        grid.append({"label": "UniBiO (decaying UL step)", "method": "unibio_decay", "p": p, "best": True,
                     "avg_grad_norm": 0.01 * p * decay_factor, "diverged": 0})
        for lab in ("StocBiO", "TTSA", "MA-SOBA"):
            grid.append({"label": lab, "method": lab.lower(), "p": p, "best": True,
                         "avg_grad_norm": 0.01 * p * baseline_factor, "diverged": 0})
    return pd.DataFrame(rows), pd.concat(curves, ignore_index=True), pd.DataFrame(grid)


def test_example3_claims_hold_on_the_paper_world():
    cs = by_id(paper002.example3_claims(*example3_tables()))
    assert all(c.holds for c in cs.values()), {i: c.measured for i, c in cs.items()}
    for cid in ("slower_at_T_equal_lr_var0", "slower_at_T_equal_lr_var1", "p_ordering_survives_equal_lr",
                "rate_slope_increases_with_p_all_T", "rate_slope_increases_with_p_equal_lr",
                "inner_iterations_grow_with_p_theorem_c5", "unibio_decay_beats_baselines"):
        assert cid in cs, cid
    assert "comes from p itself" in cs["p_ordering_survives_equal_lr"].measured


def test_example3_claims_fail_on_counterfactuals():
    cs = by_id(paper002.example3_claims(*example3_tables(reverse=True)))      # larger p converges faster
    for cid in ("slower_at_T_var0", "slower_over_T_var1", "rate_slope_increases_with_p",
                "rate_slope_increases_with_p_all_T"):
        assert cs[cid].holds is False, cid
    assert cs["p_ordering_survives_equal_lr"].holds is True     # the control alone decides the source
    cs = by_id(paper002.example3_claims(*example3_tables(equal_reverse=True)))   # ordering only from per-p steps
    for cid in ("slower_at_T_equal_lr_var0", "slower_at_T_equal_lr_var1", "p_ordering_survives_equal_lr",
                "rate_slope_increases_with_p_equal_lr"):
        assert cs[cid].holds is False, cid
    assert cs["slower_at_T_var0"].holds is True
    assert "per-p learning rates" in cs["p_ordering_survives_equal_lr"].measured
    cs = by_id(paper002.example3_claims(*example3_tables(inner=(75, 59, 70, 77))))   # the script's counts
    assert cs["inner_iterations_grow_with_p"].holds is False
    cs = by_id(paper002.example3_claims(*example3_tables(c5_inner=(75, 76, 45, 80))))  # T_1 grows, K fixed
    assert cs["inner_iterations_grow_with_p_theorem_c5"].holds is False
    assert cs["inner_iterations_grow_with_p"].holds is True
    cs = by_id(paper002.example3_claims(*example3_tables(baseline_factor=0.5)))
    assert cs["unibio_beats_baselines"].holds is False
    assert cs["unibio_decay_beats_baselines"].holds is True      # 0.5 <= 0.5
    cs = by_id(paper002.example3_claims(*example3_tables(baseline_factor=0.5, decay_factor=0.8)))
    assert cs["unibio_decay_beats_baselines"].holds is False
    s, c, g = example3_tables()
    g.loc[(g.label == "UniBiO") & (g.p == 2), "avg_grad_norm"] = 0.05   # not monotone at equal lr
    g = pd.concat([g, pd.DataFrame([{"label": "UniBiO", "method": "unibio", "p": 4, "best": False,
                                     "avg_grad_norm": np.nan, "diverged": 1}])], ignore_index=True)
    cs = by_id(paper002.example3_claims(s, c, g))
    assert cs["slower_at_equal_lr"].holds is False and cs["unibio_never_diverges"].holds is False


def test_example3_claims_on_tables_without_controls():
    """Tables of the main runs only (no lr_rule / inner_schedule columns): the control claims are absent."""
    s, c, g = example3_tables()
    keep = (s.lr_rule == "per_p") & (s.inner_schedule == "code")
    s = s[keep].drop(columns=["lr_rule", "inner_schedule", "slope_all"])
    c = c[(c.lr_rule == "per_p") & (c.inner_schedule == "code")].drop(columns=["lr_rule", "inner_schedule"])
    cs = by_id(paper002.example3_claims(s, c, g[g.method != "unibio_decay"]))
    assert all(cs[i].holds for i in ("slower_at_T_var0", "rate_slope_increases_with_p", "unibio_beats_baselines"))
    assert not any(i in cs for i in ("p_ordering_survives_equal_lr", "inner_iterations_grow_with_p_theorem_c5",
                                     "unibio_decay_beats_baselines", "rate_slope_increases_with_p_all_T"))


def test_power_law_fit_from():
    T = np.arange(1, 101)
    avg = np.where(T < 10, 50.0, 3.0 * T ** -0.5)       # a transient before T = 10
    assert paper002.power_law_fit(T, avg, fit_from=10)[0] == pytest.approx(-0.5)
    assert paper002.power_law_fit(T, avg)[0] < -0.9
    with pytest.raises(ValueError, match="fit_from"):
        paper002.power_law_fit(T, avg, fit_from=100)


def test_example3_ordering_untestable_on_short_runs():
    cs = by_id(paper002.example3_claims(*example3_tables(T=60)))
    assert cs["slower_over_T_var0"].holds is None and cs["slower_at_T_var0"].holds is True


# -- paper 003 ---------------------------------------------------------------------------

def mnist_comparisons(n_loop_ratio=0.8, q_rel=0.05):
    rows = []
    for a, b in (("aid_N1_Q1", "aid_N20_Q1"), ("aid_N1_Q20", "aid_N20_Q20"), ("itd_N1", "itd_N20")):
        for m in ("train_loss", "test_loss"):
            rows.append({"claim": "N_loop_itd" if a.startswith("itd") else "N_loop_aid", "a": a, "b": b,
                         "metric": m, "a_value": 1.0, "b_value": n_loop_ratio})
    for a, b in (("aid_N1_Q1", "aid_N1_Q20"), ("aid_N20_Q1", "aid_N20_Q20")):
        rows.append({"claim": "Q_close_aid", "a": a, "b": b, "metric": "test_loss", "a_value": 1.0,
                     "b_value": 1.0 + q_rel})
    return pd.DataFrame(rows)


def test_mnist_claims_hold_and_fail():
    cs = by_id(paper003.mnist_paper_claims(mnist_comparisons()))
    assert len(cs) == 8 and all(c.holds for c in cs.values())
    cs = by_id(paper003.mnist_paper_claims(mnist_comparisons(n_loop_ratio=1.2)))   # N = 1 better
    assert cs["n_loop_aid_n20_q1_test_loss"].holds is False and cs["n_loop_itd_train_loss"].holds is False
    cs = by_id(paper003.mnist_paper_claims(mnist_comparisons(q_rel=-0.3)))       # Q = 20 far below Q = 1
    assert cs["q_close_aid_n1_q20"].holds is False and cs["q_close_aid_n20_q20"].holds is False


def test_mnist_claims_from_curves_at_equal_time():
    rows = []
    for v, loss in (("itd_N1", 1.0), ("itd_N20", 0.5)):
        for seed in (0, 1):
            for i, t in enumerate((0.0, 1.0, 2.0)):
                rows.append({"variant": v, "seed": seed, "time_s": t, "k": i, "train_loss": loss + 1 - i / 2,
                             "test_loss": loss + 1 - i / 2})
    cs = by_id(paper003.mnist_paper_claims(paper003.mnist_claims(pd.DataFrame(rows))))
    assert cs["n_loop_itd_test_loss"].holds is True and cs["n_loop_itd_test_loss"].measured == pytest.approx(0.5 / 1.0)


def hyperrep_curves(no_loop=0.04, nn_loop=0.004, aid_n1=0.1):
    rows = []
    vals = {"itd_N20": (nn_loop, 1e-6, 0.007), "itd_N1": (no_loop, 1e-4, 0.01),
            "aid_N20_Q1": (0.01, 1e-6, 0.007), "aid_N1_Q1": (aid_n1, 1e-5, 0.02),
            "aid_N20_Q20": (0.01, 1e-6, 0.007), "aid_N1_Q20": (aid_n1, 1e-5, 0.02)}
    for v, (val, g, phi) in vals.items():
        for seed in range(3):
            for k in (500, 1000):
                rows.append({"variant": v, "seed": seed, "k": k, "val_loss": val, "grad_norm_sq": g, "phi": phi})
    return pd.DataFrame(rows)


def test_hyperrep_claims_hold_on_table3():
    cs = by_id(paper003.hyperrep_paper_claims(hyperrep_curves()))
    assert all(c.holds for c in cs.values()), {i: c.measured for i, c in cs.items()}
    assert cs["table3_no_loop_k500"].paper == "0.04"


def test_hyperrep_claims_fail_on_counterfactuals():
    cs = by_id(paper003.hyperrep_paper_claims(hyperrep_curves(no_loop=0.005, nn_loop=0.007)))  # committed-like
    assert cs["table3_no_loop_k1000"].holds is False and cs["table3_ratio_k1000"].holds is False
    assert cs["table3_nn_loop_k1000"].holds is False                    # 75 % off (10 % allowed)
    cs = by_id(paper003.hyperrep_paper_claims(hyperrep_curves(nn_loop=0.0043)))   # 7.5 % off: holds
    assert cs["table3_nn_loop_k1000"].holds is True
    cs = by_id(paper003.hyperrep_paper_claims(hyperrep_curves(nn_loop=0.0036)))   # 10 % low: fails
    assert cs["table3_nn_loop_k1000"].holds is False
    cs = by_id(paper003.hyperrep_paper_claims(hyperrep_curves(no_loop=0.4)))     # ratio 100: too large
    assert cs["table3_ratio_k500"].holds is False
    cs = by_id(paper003.hyperrep_paper_claims(hyperrep_curves(aid_n1=0.001)))
    assert cs["aid_n_loop_q1_k500"].holds is False


def test_hyperrep_claims_test_every_table3_column_present():
    c = hyperrep_curves()
    early = c[c.k == 500].assign(k=100)
    early.loc[early.variant == "itd_N1", "val_loss"] = 0.005          # paper: 0.04 at k = 100
    cs = by_id(paper003.hyperrep_paper_claims(pd.concat([c, early]), ks=(500,)))
    assert cs["table3_no_loop_k100"].holds is False and cs["table3_nn_loop_k100"].paper == "0.01"
    assert "table3_ratio_k100" not in cs                                # ratio claims only at ks


def test_hyperrep_table_cells_use_seed_0_the_papers_run():
    c = hyperrep_curves()
    c.loc[(c.variant == "itd_N20") & (c.seed != 0), "val_loss"] = 1.0    # other seeds far off
    cs = by_id(paper003.hyperrep_paper_claims(c))
    assert cs["table3_nn_loop_k500"].holds is True and "seed 0" in cs["table3_nn_loop_k500"].statement
    cs = by_id(paper003.hyperrep_paper_claims(c, table_seed=None))        # the mean: fails
    assert cs["table3_nn_loop_k500"].holds is False
    c.loc[(c.variant == "itd_N20") & (c.seed == 0), "val_loss"] = 0.0046   # seed 0 15 % off
    assert by_id(paper003.hyperrep_paper_claims(c))["table3_nn_loop_k500"].holds is False
    with pytest.raises(ValueError, match="rtol"):
        paper003.hyperrep_paper_claims(c, rtol=1.5)


def test_report_says_does_not_reproduce():
    cs = paper003.hyperrep_paper_claims(hyperrep_curves(no_loop=0.005))
    text = claims.report(cs)
    assert "does not reproduce: [table3_no_loop_k500]" in text
    assert claims.report(paper003.hyperrep_paper_claims(hyperrep_curves())) == "every claim holds on these results"
