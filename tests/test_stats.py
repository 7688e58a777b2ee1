"""stats.py against scipy.stats on fixed numbers, and what it says when there is too little data."""

import math

import numpy as np
import pytest
from scipy import stats as st

from alexnet_lib.stats import compare, describe, detectable_difference, difference, pooled_std, ratio

A = [7.0, 9.0, 8.0, 11.0, 10.0]
B = [21.0, 30.0, 26.0]


def test_describe_is_the_t_interval():
    d = describe(A)
    assert (d["n"], d["mean"]) == (5, 9.0) and d["std"] == pytest.approx(np.std(A, ddof=1))
    low, high = st.t.interval(0.95, df=4, loc=np.mean(A), scale=st.sem(A))
    assert d["ci95"] == pytest.approx([low, high], rel=1e-12)


def test_one_value_has_no_interval_and_says_why():
    d = describe([0.3])
    assert d["mean"] == 0.3 and d["std"] is None and d["ci95"] is None and "one value" in d["reason"]
    assert difference([0.3], A)["ci95"] is None and "two values" in difference([0.3], A)["reason"]
    assert ratio(A, [2.0])["ci95"] is None and ratio(A, [2.0])["ratio"] == 4.5
    assert detectable_difference(None, 1)["difference"] is None


def test_bad_values_are_refused():
    assert describe([]) == {"values": [], "n": 0, "mean": None, "std": None, "ci95": None, "reason": "no values"}
    with pytest.raises(ValueError, match="at least one"):
        difference([], A)
    with pytest.raises(ValueError, match="finite"):
        describe([1.0, math.nan])


def test_difference_is_welchs_t_test():
    d = difference(B, A)
    scipy = st.ttest_ind(B, A, equal_var=False)
    ci = scipy.confidence_interval(0.95)
    assert d["difference"] == pytest.approx(np.mean(B) - np.mean(A))
    assert d["ci95"] == pytest.approx([ci.low, ci.high], rel=1e-10)
    assert d["df"] == pytest.approx(scipy.df) and d["p_value"] == pytest.approx(scipy.pvalue, rel=1e-10)
    assert d["significant"] is True
    close = difference([1.0, 2.0, 3.0], [1.5, 2.5, 3.5])
    assert close["significant"] is False and close["ci95"][0] < 0 < close["ci95"][1]


def test_no_spread_gives_no_interval():
    d = difference([5.0, 5.0, 5.0], [7.0, 7.0])
    assert d["difference"] == -2.0 and d["ci95"] is None and "no spread" in d["reason"]
    assert detectable_difference(0.0, 3)["difference"] is None


# scipy warns about the arm of equal values (its moments cancel exactly), which is the case being tested.
@pytest.mark.filterwarnings("ignore:Precision loss occurred in moment calculation")
@pytest.mark.parametrize("a, b", [(B, A), (A, B), ([7.0, 7.0, 7.0], [2.0, 2.5, 3.1]), ([2.0, 2.5, 3.1], [7.0] * 3)])
def test_ratio_interval_is_where_welchs_test_stops_rejecting(a, b):
    r = ratio(a, b)
    low, high = r["ci95"]
    assert r["ratio"] == pytest.approx(np.mean(a) / np.mean(b)) and low < r["ratio"] < high

    def p(ratio_value):
        # H0: mean(a) = r mean(b), tested as sample a against sample r * b.
        return st.ttest_ind(a, [ratio_value * x for x in b], equal_var=False).pvalue

    assert p(low) == pytest.approx(0.05, abs=1e-8) and p(high) == pytest.approx(0.05, abs=1e-8)
    assert p(r["ratio"]) > 0.99 and p(low * 0.99) < 0.05 and p(high * 1.01) < 0.05


def test_ratio_whose_denominator_is_not_clearly_positive_is_unbounded():
    r = ratio(A, [-1.0, 0.5, 2.0])
    assert r["ci95"] is None and "unbounded" in r["reason"]
    assert ratio(A, [-1.0, 1.0])["ratio"] is None


@pytest.mark.parametrize("n", [3, 5])
def test_detectable_difference_has_80_percent_power(n):
    # Checked by simulation with scipy's own t-test, not by the formula the code uses.
    delta = detectable_difference(2.0, n)["difference"]
    rng = np.random.default_rng(0)
    x = rng.normal(0.0, 2.0, size=(40_000, n))
    y = rng.normal(delta, 2.0, size=(40_000, n))
    power = np.mean(st.ttest_ind(x, y, axis=1).pvalue < 0.05)
    assert power == pytest.approx(0.8, abs=0.01)
    # The t distribution's heavier tails ask for more than the normal approximation (z 1.96 + 0.84).
    assert delta > (st.norm.ppf(0.975) + st.norm.ppf(0.8)) * 2.0 * math.sqrt(2 / n)


def test_more_seeds_detect_smaller_differences():
    sizes = [detectable_difference(1.0, n)["difference"] for n in (2, 3, 5, 10)]
    assert sizes == sorted(sizes, reverse=True)


def test_compare_puts_it_together():
    c = compare(B, A)
    assert c["a"]["n"] == 3 and c["b"]["n"] == 5 and c["difference"]["difference"] == pytest.approx(25.666666 - 9.0)
    assert c["ratio"]["ratio"] == pytest.approx(np.mean(B) / np.mean(A))
    pooled = math.sqrt((2 * np.var(B, ddof=1) + 4 * np.var(A, ddof=1)) / 6)
    assert pooled_std(B, A) == pytest.approx(pooled)
    assert c["detectable_difference"]["std"] == pytest.approx(pooled) and c["detectable_difference"]["n_per_arm"] == 3
