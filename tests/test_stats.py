"""bilevel.stats: the one log-log fit every claim's slope goes through, and its intervals."""

import math

import numpy as np
import pytest

from bilevel import stats


@pytest.mark.parametrize("exponent", [-2.26, -1.0, 0.0, 0.5, 2.0, 7.0])
def test_loglog_fit_recovers_an_exact_power_law(exponent):
    x = np.array([2.0, 3.0, 5.0, 8.0, 13.0, 21.0])
    f = stats.loglog_fit(x, 0.37 * x ** exponent, level=0.95)
    assert f.slope == pytest.approx(exponent, abs=1e-12)
    assert math.exp(f.intercept) == pytest.approx(0.37, rel=1e-12)
    assert f.n == 6
    # exact data: zero residual, so the interval collapses onto the slope
    assert f.ci_low == pytest.approx(exponent, abs=1e-9) and f.ci_high == pytest.approx(exponent, abs=1e-9)


def test_loglog_fit_semilog_recovers_a_geometric_rate():
    q = np.arange(0.0, 30.0, 3.0)
    f = stats.loglog_fit(q, 5.0 * 0.8 ** q, log_x=False)
    assert f.slope == pytest.approx(math.log(0.8), abs=1e-12)
    assert f.intercept == pytest.approx(math.log(5.0), abs=1e-12)


def test_loglog_fit_is_numpy_polyfit_bit_for_bit():
    """The committed tables were made with np.polyfit on the logs: the fit must give the same bits."""
    rng = np.random.default_rng(0)
    x = rng.uniform(1, 100, 40)
    y = x ** -0.7 * np.exp(rng.normal(0, 0.3, 40))
    f = stats.loglog_fit(x, y, level=0.9)
    (s, c), cov = np.polyfit(np.log(x), np.log(y), 1, cov=True)
    assert (f.slope, f.intercept) == (float(s), float(c))
    assert stats.loglog_fit(x, y)[:2] == (float(s), float(c))
    half = stats.t_quantile(0.95, 38) * math.sqrt(cov[0, 0])
    assert (f.ci_low, f.ci_high) == (float(s) - half, float(s) + half)


def test_loglog_fit_interval_covers_the_truth_and_rejects_a_wrong_exponent():
    """Counterfactual: noisy kappa^2 data; the 95 % interval holds 2 and excludes the paper-like 2.26 at
    this noise level, and a kappa^2.26 data set gives an interval that excludes 2."""
    rng = np.random.default_rng(1)
    k = np.repeat(np.arange(2.0, 35.0), 3)
    noise = np.exp(rng.normal(0, 0.05, k.size))
    f2 = stats.loglog_fit(k, k ** 2.0 * noise, level=0.95)
    f226 = stats.loglog_fit(k, k ** 2.26 * noise, level=0.95)
    assert f2.ci_low < 2.0 < f2.ci_high and not f2.ci_low < 2.26 < f2.ci_high
    assert f226.ci_low < 2.26 < f226.ci_high and not f226.ci_low < 2.0 < f226.ci_high
    # fewer than three points: no degrees of freedom left, so no interval
    assert math.isnan(stats.loglog_fit([1.0, 2.0], [1.0, 4.0], level=0.95).ci_low)


@pytest.mark.parametrize("x, y, match", [
    ([1.0, 2.0], [1.0, 0.0], "y must be positive"),
    ([0.0, 2.0], [1.0, 2.0], "x must be positive"),
    ([1.0, 2.0], [1.0, np.nan], "y must be positive"),
    ([3.0, 3.0], [1.0, 2.0], "two distinct x"),
    ([1.0, 2.0, 3.0], [1.0, 2.0], "differ in length"),
])
def test_loglog_fit_bad_input_raises(x, y, match):
    with pytest.raises(ValueError, match=match):
        stats.loglog_fit(x, y)


def test_loglog_fit_bad_level_raises():
    with pytest.raises(ValueError, match="level"):
        stats.loglog_fit([1.0, 2.0, 4.0], [1.0, 2.0, 4.0], level=95)


def test_semilog_fit_accepts_nonpositive_x():
    assert stats.loglog_fit([0.0, 1.0, 2.0], [1.0, 2.0, 4.0], log_x=False).slope == pytest.approx(math.log(2))


@pytest.mark.parametrize("df, p, want", [(1, 0.975, 12.706205), (2, 0.975, 4.302653), (10, 0.975, 2.228139),
                                         (30, 0.95, 1.697261)])
def test_t_quantile_matches_tables(df, p, want):
    assert stats.t_quantile(p, df) == pytest.approx(want, abs=2e-5)
    assert stats.t_quantile(0.5, df) == pytest.approx(0.0, abs=1e-9)
    assert math.isnan(stats.t_quantile(0.975, 0))


def test_mean_interval():
    m, lo, hi = stats.mean_interval([0.5, 1.5, 1.0, 1.0], level=0.95)
    s = np.std([0.5, 1.5, 1.0, 1.0], ddof=1)
    assert m == 1.0
    assert hi - m == pytest.approx(3.182446 * s / 2, rel=1e-5) and m - lo == pytest.approx(hi - m)
    assert math.isnan(stats.mean_interval([2.0])[1])
    with pytest.raises(ValueError):
        stats.mean_interval([])
