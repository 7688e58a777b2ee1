"""The statistics every experiment summary gives: a few seeds per arm, their mean, spread and 95% intervals.

Each function returns a plain dict (JSON as it stands).  Where a quantity cannot be computed
(one seed, no spread at all) it is None, and ``reason`` says why; nothing is made up.

- :func:`describe`: n, mean, sample std, and the 95% interval of the mean from Student's t.
- :func:`difference`: mean(a) - mean(b) with Welch's 95% interval and two-sided p-value
  (unequal variances; Welch-Satterthwaite degrees of freedom).
- :func:`ratio`: mean(a) / mean(b) with Fieller's 95% interval, here taken as the set of ratios r
  that Welch's test of "mean(a) = r mean(b)" does not reject at 5%.  Unlike the delta method it
  is exact under normality and asymmetric where it should be; it is unbounded when mean(b) is
  not clearly away from zero, and then reported as None.
- :func:`detectable_difference`: the smallest true difference that n seeds per arm detect with a
  two-sided 5% two-sample t-test at 80% power, given a standard deviation (noncentral t).
- :func:`compare`: all of the above for two arms.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

from scipy import optimize
from scipy import stats as st

LEVEL = 0.95
ALPHA = 1 - LEVEL
POWER = 0.8


def _t(df: float) -> float:
    """The two-sided 95% critical value of Student's t."""
    return float(st.t.ppf(1 - ALPHA / 2, df))


def _values(values: Sequence[float], name: str, empty: bool = False) -> list[float]:
    values = [float(v) for v in values]
    if not values and not empty:
        raise ValueError(f"{name} needs at least one value")
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"{name} must be finite numbers, got {values}")
    return values


def describe(values: Sequence[float]) -> dict:
    """{values, n, mean, std, ci95}: the sample std and the t interval of the mean need n >= 2."""
    values = _values(values, "describe", empty=True)
    n = len(values)
    out = {"values": values, "n": n, "mean": statistics.fmean(values) if values else None, "std": None, "ci95": None}
    if n == 0:
        return {**out, "reason": "no values"}
    if n < 2:
        return {**out, "reason": "one value: no spread, so no interval"}
    mean, std = out["mean"], statistics.stdev(values)
    half = _t(n - 1) * std / math.sqrt(n)
    return {**out, "std": std, "ci95": [mean - half, mean + half]}


def _moments(values: list[float]) -> tuple[int, float, float]:
    """n, mean and the squared standard error of the mean."""
    n = len(values)
    return n, statistics.fmean(values), statistics.variance(values) / n


def _welch_df(va: float, na: int, vb: float, nb: int) -> float:
    """Welch-Satterthwaite degrees of freedom of a difference whose two squared standard errors are va and vb."""
    return (va + vb) ** 2 / (va**2 / (na - 1) + vb**2 / (nb - 1))


def difference(a: Sequence[float], b: Sequence[float]) -> dict:
    """{difference, ci95, df, p_value, significant}: mean(a) - mean(b), Welch's t (unequal variances)."""
    a, b = _values(a, "difference (a)"), _values(b, "difference (b)")
    d = statistics.fmean(a) - statistics.fmean(b)
    out = {"difference": d, "ci95": None, "df": None, "p_value": None, "significant": None}
    if min(len(a), len(b)) < 2:
        return {**out, "reason": "each arm needs at least two values for an interval"}
    (na, _, va), (nb, _, vb) = _moments(a), _moments(b)
    if va + vb == 0:
        return {**out, "reason": "no spread in either arm: the t interval is undefined"}
    se, df = math.sqrt(va + vb), _welch_df(va, na, vb, nb)
    half = _t(df) * se
    p = float(2 * st.t.sf(abs(d) / se, df))
    return {**out, "ci95": [d - half, d + half], "df": df, "p_value": p, "significant": p < ALPHA}


def ratio(a: Sequence[float], b: Sequence[float]) -> dict:
    """{ratio, ci95, method}: mean(a) / mean(b) with Fieller's interval (Welch degrees of freedom)."""
    a, b = _values(a, "ratio (a)"), _values(b, "ratio (b)")
    out = {"ratio": None, "ci95": None, "method": "Fieller (inverted Welch t-test)"}
    if statistics.fmean(b) == 0:
        return {**out, "reason": "mean(b) is 0"}
    r_hat = statistics.fmean(a) / statistics.fmean(b)
    out["ratio"] = r_hat
    if min(len(a), len(b)) < 2:
        return {**out, "reason": "each arm needs at least two values for an interval"}
    (na, ma, va), (nb, mb, vb) = _moments(a), _moments(b)
    if va + vb == 0:
        return {**out, "reason": "no spread in either arm: the t interval is undefined"}
    if vb > 0 and mb**2 / vb <= _t(nb - 1) ** 2:
        return {**out, "reason": "mean(b) is not clearly away from zero: Fieller's interval is unbounded"}

    def excess(r: float) -> float:
        # Welch's statistic for H0: mean(a) = r mean(b), squared, minus its critical value squared.
        v = va + r * r * vb
        if v == 0:  # a constant and r = 0: the test rejects unless mean(a) is 0 too
            return math.inf if ma != 0 else -1.0
        return (ma - r * mb) ** 2 / v - _t(_welch_df(va, na, r * r * vb, nb)) ** 2

    def bound(direction: float) -> float:
        step = max(abs(r_hat), 1.0)
        while excess(r_hat + direction * step) <= 0:
            step *= 2
            if step > 1e12:
                raise ValueError("ratio: no bound of Fieller's interval found")
        return float(optimize.brentq(excess, r_hat, r_hat + direction * step, xtol=1e-14, rtol=1e-12))

    return {**out, "ci95": [bound(-1.0), bound(1.0)]}


def detectable_difference(std: float | None, n: int) -> dict:
    """{difference, n_per_arm, std}: the smallest true difference n values per arm detect (5% two-sided, 80% power).

    The two-sample t-test with a pooled standard deviation ``std``: its power at a true difference
    delta comes from the noncentral t with 2n - 2 degrees of freedom and noncentrality
    delta / (std sqrt(2 / n)).
    """
    out = {"difference": None, "n_per_arm": n, "std": std, "alpha": ALPHA, "power": POWER}
    if n < 2 or std is None:
        return {**out, "reason": "needs at least two values per arm"}
    if std == 0:
        return {**out, "reason": "no spread observed: every difference would look significant"}
    df, scale = 2 * n - 2, std * math.sqrt(2 / n)
    critical = _t(df)

    def shortfall(delta: float) -> float:
        nc = delta / scale
        return float(st.nct.sf(critical, df, nc) + st.nct.cdf(-critical, df, nc)) - POWER

    # The power is 5% at 0; double the upper end until it passes 80% (far out, scipy's tails turn to NaN).
    high = scale
    while shortfall(high) <= 0:
        high *= 2
    return {**out, "difference": float(optimize.brentq(shortfall, 0.0, high, xtol=1e-12 * scale))}


def pooled_std(a: Sequence[float], b: Sequence[float]) -> float | None:
    """The pooled sample standard deviation of two arms (None with fewer than three values in all)."""
    a, b = _values(a, "pooled_std (a)"), _values(b, "pooled_std (b)")
    if len(a) + len(b) < 3:
        return None
    squares = sum((x - statistics.fmean(a)) ** 2 for x in a) + sum((x - statistics.fmean(b)) ** 2 for x in b)
    return math.sqrt(squares / (len(a) + len(b) - 2))


def compare(a: Sequence[float], b: Sequence[float]) -> dict:
    """Both arms described, their difference (a - b) and ratio (a / b), and the difference n seeds could detect.

    With unequal arms the detectable difference uses the smaller n (conservative).
    """
    return {
        "a": describe(a),
        "b": describe(b),
        "difference": difference(a, b),
        "ratio": ratio(a, b),
        "detectable_difference": detectable_difference(pooled_std(a, b), min(len(a), len(b))),
    }
