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


@pytest.mark.parametrize("exponent", [-1.95, 1.0, 3.0])
def test_feature_learning_claim_fails_for_other_exponents(exponent):
    (c,) = paper001.feature_learning_claims(exponent_fits(exponent))
    assert c.holds is False, c.measured


def test_feature_learning_claim_untestable_with_one_seed():
    fits = exponent_fits(2.0)
    fits.loc[fits.fit == "mean over seed", ["ci_low", "ci_high"]] = np.nan
    (c,) = paper001.feature_learning_claims(fits)
    assert c.holds is None and c.reason


# -- paper 001, Figure 3 right -----------------------------------------------------------

def reweighting_tables(plateau=0.65, slope=0.0, fast=True, loop_min=0.5):
    K = 3000
    k = np.arange(0, K + 1, 25)
    rows, curves = [], []
    for m in ("itd1_paper_lr", "itd1", "itdN", "aidN"):
        v = plateau + (2.3 - plateau) * (np.exp(-k / 100) if fast else 1 - k / K)
        curves.append(pd.DataFrame({"method": m, "k": k, "val_loss": v}))
        rows.append({"method": m, "K": K, "plateau_val_loss": plateau, "plateau_slope_per_1000": slope,
                     "plateau_fraction": 0.2, "min_val_loss": loop_min if m in ("itdN", "aidN") else plateau})
    return pd.DataFrame(rows), pd.concat(curves, ignore_index=True)


def test_reweighting_claims_hold_on_the_paper_world():
    cs = by_id(paper001.reweighting_claims(*reweighting_tables()))
    assert all(c.holds for c in cs.values()), {i: c.measured for i, c in cs.items()}


def test_reweighting_claims_fail_on_counterfactuals():
    cs = by_id(paper001.reweighting_claims(*reweighting_tables(plateau=0.33)))
    assert cs["plateau_level"].holds is False                   # the committed 0.326 is not 0.65
    cs = by_id(paper001.reweighting_claims(*reweighting_tables(plateau=0.9)))
    assert cs["plateau_level"].holds is False                   # two-sided
    cs = by_id(paper001.reweighting_claims(*reweighting_tables(slope=-0.1)))
    assert cs["plateau_flat"].holds is False                    # still moving: no plateau
    cs = by_id(paper001.reweighting_claims(*reweighting_tables(fast=False)))
    assert cs["decreases_rapidly"].holds is False
    cs = by_id(paper001.reweighting_claims(*reweighting_tables(loop_min=0.7)))
    assert cs["error_is_inherent"].holds is False


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

def example3_tables(reverse=False, inner=(75, 59 + 30, 70 + 40, 77 + 50), baseline_factor=2.0, T=500):
    ps = [2, 4, 6, 8]
    order = ps[::-1] if reverse else ps
    rows, curves = [], []
    t = np.arange(1, T + 1)
    for var in (0.0, 1.0):
        for p, rank in zip(ps, order):
            rows.append({"noise_variance": var, "p": p, "T": T, "avg_hypergrad_at_y": 0.1 * rank,
                         "slope": -1.0 / rank, "inner_steps_per_iter": inner[ps.index(p)] / 2})
            curves.append(pd.DataFrame({"noise_variance": var, "p": p, "t": t,
                                        "avg_hypergrad_at_y": rank / np.sqrt(t)}))
    grid = []
    for p in ps:
        grid.append({"label": "UniBiO", "method": "unibio", "p": p, "best": True, "avg_grad_norm": 0.01 * p,
                     "diverged": 0})
        for lab in ("StocBiO", "TTSA", "MA-SOBA"):
            grid.append({"label": lab, "method": lab.lower(), "p": p, "best": True,
                         "avg_grad_norm": 0.01 * p * baseline_factor, "diverged": 0})
    return pd.DataFrame(rows), pd.concat(curves, ignore_index=True), pd.DataFrame(grid)


def test_example3_claims_hold_on_the_paper_world():
    cs = by_id(paper002.example3_claims(*example3_tables()))
    assert all(c.holds for c in cs.values()), {i: c.measured for i, c in cs.items()}


def test_example3_claims_fail_on_counterfactuals():
    cs = by_id(paper002.example3_claims(*example3_tables(reverse=True)))      # larger p converges faster
    for cid in ("slower_at_T_var0", "slower_over_T_var1", "rate_slope_increases_with_p"):
        assert cs[cid].holds is False, cid
    cs = by_id(paper002.example3_claims(*example3_tables(inner=(75, 59, 70, 77))))   # the script's counts
    assert cs["inner_iterations_grow_with_p"].holds is False
    cs = by_id(paper002.example3_claims(*example3_tables(baseline_factor=0.5)))
    assert cs["unibio_beats_baselines"].holds is False
    s, c, g = example3_tables()
    g.loc[(g.label == "UniBiO") & (g.p == 2), "avg_grad_norm"] = 0.05   # not monotone at equal lr
    g = pd.concat([g, pd.DataFrame([{"label": "UniBiO", "method": "unibio", "p": 4, "best": False,
                                     "avg_grad_norm": np.nan, "diverged": 1}])], ignore_index=True)
    cs = by_id(paper002.example3_claims(s, c, g))
    assert cs["slower_at_equal_lr"].holds is False and cs["unibio_never_diverges"].holds is False


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
