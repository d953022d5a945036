"""Intervals and p-values against scipy, the Nadeau-Bengio inflation, coverage, edge cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from dlbench.evaluate.stats import (
    corrected_t_interval,
    paired_p_value,
    row_resamples,
    seeds_and_rows_estimate,
    seeds_estimate,
    t_interval,
    unpaired_difference,
)

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


# --- one split: seeds and the sampling of the evaluation rows ---------------------------------

def accuracy_study(rng, seeds: int, rows: int, replicates: int = 400):
    """A population where a seed's accuracy is 0.9 + N(0, 0.01) and each evaluation row is one
    draw: per-seed scores on `rows` rows and their scores on shared bootstrap resamples."""
    difficulty = rng.uniform(size=rows)  # row i is right when difficulty < the seed's skill
    skill = 0.9 + rng.normal(0, 0.01, seeds)
    correct = (difficulty[None, :] < skill[:, None]).astype(float)  # (S, rows)
    weights = rng.multinomial(rows, np.full(rows, 1 / rows), size=replicates)  # (B, rows)
    return correct.mean(1), correct @ weights.T / rows


def test_more_seeds_do_not_shrink_the_interval_below_the_rows_sampling():
    """The issue's breast-cancer case: 114 test rows, 10 seeds. The old interval (seeds only)
    had width ~0.009; the rows alone give about ±0.03 at accuracy 0.95."""
    rng = np.random.default_rng(0)
    per_seed, reps = accuracy_study(rng, seeds=10, rows=114)
    both = seeds_and_rows_estimate(per_seed, reps).interval()
    seeds_only = seeds_estimate(per_seed).interval()
    rows_half = 1.96 * math.sqrt(0.9 * 0.1 / 114)
    assert (both.high - both.low) / 2 > 0.8 * rows_half
    assert (both.high - both.low) > 3 * (seeds_only.high - seeds_only.low)
    assert "seeds" in both.method and "evaluation rows" in both.method


def test_the_variance_is_the_seeds_part_plus_the_rows_part():
    per_seed = np.array([0.80, 0.82, 0.84])
    reps = per_seed[:, None] + np.array([-0.02, 0.0, 0.02, 0.0])[None, :]
    estimate = seeds_and_rows_estimate(per_seed, reps)
    seed_var = per_seed.var(ddof=1) / 3
    row_var = np.array([-0.02, 0.0, 0.02, 0.0]).var(ddof=1)
    assert estimate.se == pytest.approx(math.sqrt(seed_var + row_var))
    assert estimate.df == pytest.approx((seed_var + row_var) ** 2 * 2 / seed_var**2)
    one = seeds_and_rows_estimate(per_seed[:1], reps[:1])
    assert one.se == pytest.approx(math.sqrt(row_var)) and "1 seed" in one.method


def test_seeds_and_rows_interval_covers_the_population_mean():
    rng = np.random.default_rng(7)
    covered = []
    for _ in range(300):
        per_seed, reps = accuracy_study(rng, seeds=5, rows=200, replicates=300)
        i = seeds_and_rows_estimate(per_seed, reps).interval()
        covered.append(i.low <= 0.9 <= i.high)
    assert 0.92 <= np.mean(covered) <= 0.995  # the two-way sum is a little conservative


def test_a_diverged_seed_and_undefined_resamples_are_left_out():
    per_seed = np.array([0.8, math.nan, 0.82])
    reps = np.array([[0.79, 0.81, math.nan], [math.nan] * 3, [0.81, 0.83, 0.8]])
    estimate = seeds_and_rows_estimate(per_seed, reps)
    assert estimate.n == 2 and estimate.mean == pytest.approx(0.81) and math.isfinite(estimate.se)


def test_one_sided_p_is_half_the_two_sided_on_the_right_side():
    estimate = seeds_estimate(DATA - 0.79)
    two = estimate.p_value()
    assert estimate.p_value("greater") == pytest.approx(two / 2)
    assert estimate.p_value("less") == pytest.approx(1 - two / 2)
    one_sided = sps.ttest_1samp(DATA - 0.79, 0.0, alternative="greater").pvalue
    assert paired_p_value(DATA - 0.79, alternative="greater") == pytest.approx(one_sided)


def test_tost_shows_equivalence_exactly_when_the_90_percent_interval_is_inside_the_margin():
    rng = np.random.default_rng(3)
    for _ in range(200):
        diffs = rng.normal(rng.uniform(-0.02, 0.02), 0.01, 6)
        estimate, margin = seeds_estimate(diffs), 0.015
        inside = estimate.interval(0.90)
        shown = estimate.equivalence_p(margin) < 0.05
        assert shown == (-margin < inside.low and inside.high < margin)


def test_row_resamples_are_counts_that_repeat_with_the_seed():
    weights = row_resamples(50, seed=3, replicates=20)
    assert weights.shape == (20, 50) and (weights.sum(1) == 50).all()
    assert np.array_equal(weights, row_resamples(50, seed=3, replicates=20))
    assert not np.array_equal(weights, row_resamples(50, seed=4, replicates=20))


def test_a_difference_of_independent_seed_estimates_is_welchs_t():
    rng = np.random.default_rng(1)
    a, b = rng.normal(0.8, 0.05, 6), rng.normal(0.75, 0.02, 9)
    found = unpaired_difference(seeds_estimate(a), seeds_estimate(b))
    expected = sps.ttest_ind(a, b, equal_var=False)
    assert found.p_value() == pytest.approx(expected.pvalue, rel=1e-10)
    assert found.df == pytest.approx(expected.df, rel=1e-10)
    assert "unpaired" in found.method


@pytest.mark.parametrize("alternative", ["less", "greater", "two-sided"])
def test_a_p_value_against_a_margin_equals_scipys_one_sample_t(alternative):
    expected = sps.ttest_1samp(DATA, 0.79, alternative=alternative).pvalue
    assert seeds_estimate(DATA).p_value(alternative, null=0.79) == pytest.approx(expected)
