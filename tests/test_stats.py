"""Intervals and p-values against scipy, the Nadeau-Bengio inflation, coverage, edge cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from dlbench.stats import corrected_t_interval, paired_p_value, t_interval

DATA = np.random.default_rng(0).normal(0.8, 0.05, 7)


@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_plain_interval_equals_scipy(confidence):
    interval = t_interval(DATA, confidence)
    low, high = sps.t.interval(confidence, len(DATA) - 1, DATA.mean(), sps.sem(DATA))
    assert (interval.low, interval.high) == pytest.approx((low, high), rel=1e-12)
    assert interval.mean == pytest.approx(DATA.mean())
    assert interval.std == pytest.approx(DATA.std(ddof=1))
    assert interval.n == len(DATA)
    assert "7 seeds" in interval.method
    assert "7 runs" in t_interval(DATA, confidence, unit="runs").method


@pytest.mark.parametrize("n_train,n_test", [(300, 100), (900, 100), (50, 50)])
def test_corrected_interval_widens_by_the_nadeau_bengio_factor(n_train, n_test):
    plain = t_interval(DATA)
    corrected = corrected_t_interval(DATA, n_train=n_train, n_test=n_test)
    ratio = (corrected.high - corrected.low) / (plain.high - plain.low)
    assert ratio == pytest.approx(math.sqrt(1 + len(DATA) * n_test / n_train), rel=1e-12)
    assert corrected.mean == plain.mean and corrected.n == plain.n
    assert corrected.low < plain.low and corrected.high > plain.high
    assert "Nadeau" in corrected.method


def test_plain_p_value_equals_scipy_one_sample_t_test():
    diffs = DATA - 0.79
    assert paired_p_value(diffs) == pytest.approx(sps.ttest_1samp(diffs, 0.0).pvalue, rel=1e-12)


def test_corrected_p_value_uses_the_inflated_variance():
    diffs = DATA - 0.79
    j, n_train, n_test = len(diffs), 300, 100
    t = diffs.mean() / math.sqrt(diffs.var(ddof=1) * (1 / j + n_test / n_train))
    expected = 2 * sps.t.sf(abs(t), j - 1)
    assert paired_p_value(diffs, n_train=n_train, n_test=n_test) == pytest.approx(expected)
    assert paired_p_value(diffs, n_train=n_train, n_test=n_test) > paired_p_value(diffs)


def test_plain_interval_covers_the_true_mean_about_95_percent_of_the_time():
    rng = np.random.default_rng(12345)
    samples = rng.normal(2.0, 3.0, size=(2000, 5))
    covered = [(i.low <= 2.0 <= i.high) for i in map(t_interval, samples)]
    assert 0.93 <= np.mean(covered) <= 0.97


def test_one_value_gives_a_mean_but_no_interval_or_p_value():
    interval = t_interval([0.7])
    assert interval.mean == 0.7 and interval.n == 1
    assert all(math.isnan(v) for v in (interval.std, interval.low, interval.high))
    corrected = corrected_t_interval([0.7], n_train=3, n_test=1)
    assert math.isnan(corrected.low) and corrected.mean == 0.7
    assert math.isnan(paired_p_value([0.3]))
    assert math.isnan(paired_p_value([]))
    assert t_interval([]).n == 0 and math.isnan(t_interval([]).mean)


def test_zero_variance_gives_a_point_interval_and_a_decisive_p_value():
    interval = t_interval([0.1, 0.1, 0.1])
    assert interval.std == 0.0 and interval.low == interval.high == interval.mean
    corrected = corrected_t_interval([0.1] * 4, n_train=3, n_test=1)
    assert corrected.low == corrected.high == corrected.mean
    assert paired_p_value([0.1, 0.1, 0.1]) == 0.0
    assert paired_p_value([0.0, 0.0], n_train=3, n_test=1) == 1.0


def test_nan_values_are_dropped_before_anything_else():
    with_nan = np.append(DATA, [np.nan, np.nan])
    assert t_interval(with_nan) == t_interval(DATA)
    assert paired_p_value(with_nan) == paired_p_value(DATA)
    assert corrected_t_interval(with_nan, n_train=3, n_test=1).n == len(DATA)


def test_any_iterable_is_accepted():
    assert t_interval(list(DATA)) == t_interval(DATA)
    assert t_interval(v for v in DATA) == t_interval(DATA)


@pytest.mark.parametrize(
    "call",
    [
        lambda: t_interval(DATA, 1.0),
        lambda: corrected_t_interval(DATA, n_train=0, n_test=1),
        lambda: paired_p_value(DATA, n_train=10),
    ],
)
def test_programming_errors_raise_value_error(call):
    with pytest.raises(ValueError):
        call()
