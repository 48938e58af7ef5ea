r"""Small statistics for claims: log-log (power-law) fits and Student-t intervals.

* :func:`loglog_fit` -- the least-squares line :math:`\log y = c + s\log x` (or
  :math:`\log y = c + s\,x`), with the slope's Student-t interval when asked;
* :func:`mean_interval` -- a mean and its Student-t interval (e.g. over seeds);
* :func:`t_quantile` -- Student's t quantile without scipy.

Every log-log slope of the papers' claims (rates in ``K``, orders in
:math:`\kappa`, penalty biases in :math:`\lambda`) goes through :func:`loglog_fit`,
so they are all computed by the same floating-point operations
(``numpy.polyfit``, degree 1).

>>> f = loglog_fit([1.0, 10.0, 100.0], [3.0, 0.3, 0.03])
>>> round(f.slope, 12), round(math.exp(f.intercept), 12)
(-1.0, 3.0)
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

__all__ = ["LogLogFit", "loglog_fit", "mean_interval", "t_quantile"]


class LogLogFit(NamedTuple):
    """A fitted line in log space: ``slope``, ``intercept`` and the slope's interval (NaN unless asked)."""

    slope: float
    intercept: float
    ci_low: float = float("nan")
    ci_high: float = float("nan")
    n: int = 0


def loglog_fit(x, y, *, log_x: bool = True, level: float | None = None) -> LogLogFit:
    r"""Least-squares fit of :math:`\log y = c + s\log x` (of :math:`\log y = c + s\,x` when ``log_x`` is False).

    Returns :class:`LogLogFit` ``(slope, intercept, ci_low, ci_high, n)``. With ``level``
    (e.g. 0.95) the slope's two-sided Student-t interval from the fit's standard error
    (``n - 2`` degrees of freedom; NaN with fewer than 3 points); without, the interval is NaN.
    ``x`` and ``y`` must be positive (``x`` only when ``log_x``), with at least two distinct ``x``.

    >>> f = loglog_fit([1.0, 2.0, 4.0, 8.0], [1.0, 4.1, 15.8, 64.5], level=0.95)
    >>> round(f.slope, 3), bool(f.ci_low < 2 < f.ci_high), f.n
    (1.998, True, 4)
    >>> loglog_fit([1.0, 2.0], [1.0, -2.0])
    Traceback (most recent call last):
    ...
    ValueError: loglog_fit: y must be positive and finite to take its log; got -2.0.
    """
    x, y = np.asarray(x, float).ravel(), np.asarray(y, float).ravel()
    if x.shape != y.shape:
        raise ValueError(f"loglog_fit: x and y differ in length ({x.size} vs {y.size}).")
    for name, v in (("x", x if log_x else np.ones(1)), ("y", y)):
        bad = ~(np.isfinite(v) & (v > 0))
        if bad.any():
            raise ValueError(f"loglog_fit: {name} must be positive and finite to take its log; "
                             f"got {v[bad][0]}.")
    if np.unique(x).size < 2:
        raise ValueError(f"loglog_fit: needs at least two distinct x values; got {np.unique(x).tolist()}.")
    lx, ly = (np.log(x) if log_x else x), np.log(y)
    n = len(lx)
    if level is None or n < 3:
        slope, intercept = np.polyfit(lx, ly, 1)
        return LogLogFit(float(slope), float(intercept), n=n)
    if not 0 < level < 1:
        raise ValueError(f"loglog_fit: level must lie in (0, 1), got {level}.")
    (slope, intercept), cov = np.polyfit(lx, ly, 1, cov=True)
    half = t_quantile(0.5 + level / 2, n - 2) * math.sqrt(cov[0, 0])
    return LogLogFit(float(slope), float(intercept), float(slope) - half, float(slope) + half, n)


def mean_interval(values, level: float = 0.95) -> tuple[float, float, float]:
    r"""``(mean, low, high)``: the mean of ``values`` and its two-sided Student-t interval at ``level``.

    :math:`\bar v \pm t_{(1+\text{level})/2,\,m-1}\,s/\sqrt m` with ``s`` the sample standard
    deviation; the interval is NaN for a single value.

    >>> m, lo, hi = mean_interval([1.0, 2.0, 3.0])
    >>> m, round(lo, 3), round(hi, 3)
    (2.0, -0.484, 4.484)
    """
    v = np.asarray(values, float).ravel()
    if v.size == 0:
        raise ValueError("mean_interval: no values.")
    m = v.size
    mean = float(v.mean())
    half = t_quantile(0.5 + level / 2, m - 1) * float(v.std(ddof=1)) / math.sqrt(m) if m > 1 else np.nan
    return mean, mean - half, mean + half


def t_quantile(p: float, df: int) -> float:
    """Quantile ``p`` of Student's t with ``df`` degrees of freedom (numerical integration of the
    density and bisection; no scipy needed). NaN for ``df < 1``.

    >>> round(t_quantile(0.975, 1), 2), round(t_quantile(0.975, 10), 3)
    (12.71, 2.228)
    """
    if df < 1:
        return float("nan")
    logc = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)

    def cdf(t):
        grid = np.linspace(0.0, t, 4001)
        dens = np.exp(logc - (df + 1) / 2 * np.log1p(grid ** 2 / df))
        return 0.5 + float(np.sum((dens[1:] + dens[:-1]) * np.diff(grid)) / 2)

    lo, hi = 0.0, 1.0
    while cdf(hi) < p:
        hi *= 2
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if cdf(mid) < p else (lo, mid)
    return 0.5 * (lo + hi)
