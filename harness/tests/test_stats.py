"""Tests of harness.stats intervals, bootstrap and significance tests.

Property tests compare against independent references (scipy, statsmodels) rather than
restating the formulas.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy.stats import binomtest
from statsmodels.stats.contingency_tables import cochrans_q as sm_cochrans_q
from statsmodels.stats.contingency_tables import mcnemar as sm_mcnemar
from statsmodels.stats.proportion import proportion_confint

from harness.stats import (
    bootstrap_weights,
    clopper_pearson_interval,
    cochrans_q,
    images_to_decide,
    mcnemar_clustered,
    percentile_bounds,
    wilson_interval,
    z_value,
)
from harness.stats.bootstrap import bca_bounds, jackknife_weights

FAST = settings(max_examples=50, deadline=None)
CONFIDENCES = st.sampled_from([0.8, 0.9, 0.95, 0.975, 0.99])


@st.composite
def counts(draw, max_n: int = 400):
    n = draw(st.integers(1, max_n))
    k = draw(st.integers(0, n))
    return k, n


# --------------------------------------------------------------------------- intervals


def test_z_value_known_quantiles():
    assert z_value(0.95, "one") == pytest.approx(1.644853627, abs=1e-8)
    assert z_value(0.95, "two") == pytest.approx(1.959963985, abs=1e-8)


@FAST
@given(counts(), CONFIDENCES)
def test_wilson_two_sided_matches_statsmodels(kn, confidence):
    k, n = kn
    expected = proportion_confint(k, n, alpha=1 - confidence, method="wilson")
    assert wilson_interval(k, n, confidence, "two") == pytest.approx(expected, abs=1e-10)


@FAST
@given(counts(), CONFIDENCES)
def test_wilson_one_sided_is_two_sided_at_double_alpha(kn, confidence):
    k, n = kn
    alpha = 1 - confidence
    one = wilson_interval(k, n, confidence, "one")
    assert one == pytest.approx(wilson_interval(k, n, 1 - 2 * alpha, "two"), abs=1e-12)
    assert one == pytest.approx(proportion_confint(k, n, alpha=2 * alpha, method="wilson"), abs=1e-10)


@FAST
@given(counts(), CONFIDENCES)
def test_clopper_pearson_two_sided_matches_scipy(kn, confidence):
    k, n = kn
    ci = binomtest(k, n).proportion_ci(confidence_level=confidence, method="exact")
    assert clopper_pearson_interval(k, n, confidence, "two") == pytest.approx((ci.low, ci.high), abs=1e-9)


@FAST
@given(counts(), CONFIDENCES)
def test_clopper_pearson_one_sided_matches_scipy_one_sided_tests(kn, confidence):
    k, n = kn
    low, high = clopper_pearson_interval(k, n, confidence, "one")
    ref_low = binomtest(k, n, alternative="greater").proportion_ci(confidence, "exact").low
    ref_high = binomtest(k, n, alternative="less").proportion_ci(confidence, "exact").high
    assert (low, high) == pytest.approx((ref_low, ref_high), abs=1e-9)


@FAST
@given(counts(), CONFIDENCES, st.sampled_from(["one", "two"]))
def test_intervals_contain_the_estimate_and_stay_in_unit_range(kn, confidence, sided):
    k, n = kn
    for interval in (wilson_interval, clopper_pearson_interval):
        low, high = interval(k, n, confidence, sided)
        assert 0.0 <= low <= k / n <= high <= 1.0


@FAST
@given(counts(), st.sampled_from(["one", "two"]))
def test_higher_confidence_gives_wider_intervals(kn, sided):
    k, n = kn
    for interval in (wilson_interval, clopper_pearson_interval):
        low90, high90 = interval(k, n, 0.90, sided)
        low99, high99 = interval(k, n, 0.99, sided)
        assert low99 <= low90 + 1e-12 and high90 <= high99 + 1e-12


def test_one_sided_bound_is_tighter_than_two_sided():
    assert wilson_interval(30, 50, 0.95, "one")[0] > wilson_interval(30, 50, 0.95, "two")[0]
    assert clopper_pearson_interval(30, 50, 0.95, "one")[0] > clopper_pearson_interval(30, 50, 0.95, "two")[0]


def test_empty_sample_is_uninformative():
    assert wilson_interval(0, 0) == (0.0, 1.0)
    assert clopper_pearson_interval(0, 0, 0.9, "one") == (0.0, 1.0)


@pytest.mark.parametrize(
    "k, n, confidence, sided",
    [(5, 4, 0.95, "two"), (-1, 4, 0.95, "two"), (1, 4, 1.0, "two"), (1, 4, 0.0, "one"), (1, 4, 0.95, "both"),
     (1.5, 4, 0.95, "two"), (1, 4, float("nan"), "two")],
)
def test_intervals_reject_bad_input(k, n, confidence, sided):
    for interval in (wilson_interval, clopper_pearson_interval):
        with pytest.raises(ValueError):
            interval(k, n, confidence, sided)


# --------------------------------------------------------------------------- bootstrap


@FAST
@given(st.integers(0, 60), st.integers(0, 40), st.integers(0, 2**32 - 1))
def test_bootstrap_weights_shape_and_row_sums(n_units, replicates, seed):
    w = bootstrap_weights(n_units, replicates, seed)
    assert w.shape == (replicates, n_units)
    assert np.issubdtype(w.dtype, np.integer)
    assert (w >= 0).all()
    assert (w.sum(axis=1) == n_units).all()


def test_bootstrap_weights_reproducible_with_seed_and_different_with_another():
    a = bootstrap_weights(40, 200, seed=7)
    assert np.array_equal(a, bootstrap_weights(40, 200, seed=7))
    assert not np.array_equal(a, bootstrap_weights(40, 200, seed=8))
    strata = np.arange(40) % 2
    s = bootstrap_weights(40, 200, seed=7, strata=strata)
    assert np.array_equal(s, bootstrap_weights(40, 200, seed=7, strata=strata))
    assert not np.array_equal(s, bootstrap_weights(40, 200, seed=8, strata=strata))


def test_bootstrap_weights_draw_each_unit_once_on_average():
    w = bootstrap_weights(30, 4000, seed=1)
    assert np.abs(w.mean(axis=0) - 1.0).max() < 0.1
    # Multinomial(n, 1/n) count variance is 1 - 1/n.
    assert np.abs(w.var(axis=0) - (1 - 1 / 30)).max() < 0.15


@FAST
@given(
    st.lists(st.sampled_from(["positive", "negative", "other"]), min_size=1, max_size=50),
    st.integers(1, 30),
    st.integers(0, 2**32 - 1),
)
def test_stratified_weights_keep_every_stratum_size(labels, replicates, seed):
    strata = np.array(labels)
    w = bootstrap_weights(len(labels), replicates, seed, strata=strata)
    assert w.shape == (replicates, len(labels))
    for label in set(labels):
        members = strata == label
        assert (w[:, members].sum(axis=1) == members.sum()).all()


def test_stratified_weights_do_not_depend_on_label_order():
    strata = np.array(["a"] * 5 + ["b"] * 7)
    w = bootstrap_weights(12, 50, seed=3, strata=strata)
    flipped = bootstrap_weights(12, 50, seed=3, strata=strata[::-1].copy())
    # Same sorted stratum visit order: unit columns of stratum "a" draw the same counts.
    assert np.array_equal(w[:, :5], flipped[:, 7:])
    assert np.array_equal(w[:, 5:], flipped[:, :7])


def test_stratified_weights_reject_misshapen_strata():
    with pytest.raises(ValueError):
        bootstrap_weights(5, 10, seed=0, strata=np.zeros(4))
    with pytest.raises(ValueError):
        bootstrap_weights(-1, 10, seed=0)


@FAST
@given(
    hnp.arrays(np.float64, st.integers(1, 200), elements=st.floats(-5, 5, allow_nan=False)),
    st.floats(0.5, 0.999),
)
def test_percentile_bounds_are_ordered_quantiles(values, confidence):
    low, high = percentile_bounds(values, confidence)
    assert low <= high
    assert (low, high) == pytest.approx(tuple(np.quantile(values, [1 - confidence, confidence])))
    assert values.min() <= low and high <= values.max()


@FAST
@given(hnp.arrays(np.float64, st.integers(2, 200), elements=st.floats(0, 1, allow_nan=False)))
def test_percentile_bounds_widen_with_confidence(values):
    low90, high90 = percentile_bounds(values, 0.90)
    low99, high99 = percentile_bounds(values, 0.99)
    assert low99 <= low90 + 1e-12 and high90 <= high99 + 1e-12


def test_percentile_bounds_ignore_nan_replicates():
    values = np.array([0.1, np.nan, 0.2, 0.3, np.nan, 0.4])
    assert percentile_bounds(values, 0.9) == pytest.approx(percentile_bounds(values[~np.isnan(values)], 0.9))
    low, high = percentile_bounds(np.full(10, np.nan), 0.95)
    assert math.isnan(low) and math.isnan(high)
    low, high = percentile_bounds(np.array([]), 0.95)
    assert math.isnan(low) and math.isnan(high)


def test_percentile_bounds_reject_2d_input():
    with pytest.raises(ValueError):
        percentile_bounds(np.zeros((10, 2)), 0.95)


def test_images_to_decide_matches_worked_example():
    # half-width 0.10 of the bound in use, gap 0.05, z(0.95) = 1.6449, z(0.8) = 0.8416:
    # n = ceil(100 * (0.10 * 2.4865 / 1.6449 / 0.05)^2) = ceil(100 * 9.1406) = 915
    assert images_to_decide(0.60, 0.50, 0.55, 100, 0.95, power=0.8) == 915
    n = images_to_decide(0.60, 0.50, 0.55, 100, 0.95, power=0.8)
    # at that size the bound clears the threshold even one z_0.8 short of the estimate
    half = 0.10 * math.sqrt(100 / n)
    assert 0.60 - half - z_value(0.8, "one") * half / z_value(0.95, "one") >= 0.55 - 1e-9


def test_images_to_decide_undefined_cases():
    assert images_to_decide(0.6, 0.5, 0.6, 50, 0.95) is None  # estimate on the threshold
    assert images_to_decide(0.6, 0.6, 0.5, 50, 0.95) is None  # a bound with no width
    assert images_to_decide(float("nan"), 0.5, 0.55, 50, 0.95) is None
    assert images_to_decide(0.6, float("inf"), 0.55, 50, 0.95) is None
    with pytest.raises(ValueError):
        images_to_decide(0.6, 0.5, 0.55, 50, 1.0)


@FAST
@given(st.floats(0.01, 0.3), st.floats(0.01, 0.3), st.floats(0.01, 0.3), st.integers(10, 500))
def test_images_to_decide_monotone(gap_a, gap_b, half, n_units):
    small, large = sorted([gap_a, gap_b])
    near = images_to_decide(0.5 + small, 0.5 + small - half, 0.5, n_units, 0.95)
    far = images_to_decide(0.5 + large, 0.5 + large - half, 0.5, n_units, 0.95)
    assert near >= far  # an estimate closer to the threshold needs more images
    assert images_to_decide(0.5 + small, 0.5 + small - 2 * half, 0.5, n_units, 0.95) >= near  # a wider bound too
    assert images_to_decide(0.5 + small, 0.5 + small - half, 0.5, n_units, 0.95, power=0.9) >= near
    assert images_to_decide(0.5 - small, 0.5 - small + half, 0.5, n_units, 0.95) == near  # symmetric in the side


def test_jackknife_weights_leave_one_unit_out_or_one_group_out():
    w = jackknife_weights(4)
    assert w.shape == (4, 4) and np.all(w.sum(axis=1) == 3) and np.all(np.diag(w) == 0)
    grouped = jackknife_weights(10, groups=4)
    assert grouped.shape == (4, 10) and np.all((grouped == 0).sum(axis=0) == 1)  # each unit left out once
    assert list(grouped[1]) == [1, 0, 1, 1, 1, 0, 1, 1, 1, 0]


def test_a_grouped_jackknife_estimates_the_same_acceleration():
    """The mean of 2000 exponential draws: acceleration skewness / (6 sqrt(n)) = 2 / (6 sqrt(2000))."""
    rng = np.random.default_rng(5)

    def accel(x, weights):
        values = weights @ x / weights.sum(axis=1)
        centred = values.mean() - values
        return np.sum(centred ** 3) / (6 * np.sum(centred ** 2) ** 1.5)

    samples = [rng.exponential(size=2000) for _ in range(20)]
    full = np.mean([accel(x, jackknife_weights(2000, groups=2000)) for x in samples])
    grouped = np.mean([accel(x, jackknife_weights(2000, groups=200)) for x in samples])
    theory = 2 / (6 * math.sqrt(2000))
    assert full == pytest.approx(theory, rel=0.25) and grouped == pytest.approx(theory, rel=0.35)


def test_bca_without_bias_or_skew_is_the_percentile_interval():
    reps = np.linspace(-1, 1, 2001)
    jack = np.linspace(-1, 1, 50)  # symmetric: acceleration 0
    assert bca_bounds(0.0, reps, jack, 0.9) == pytest.approx(percentile_bounds(reps, 0.9))
    assert bca_bounds(0.0, reps, np.zeros(50), 0.9) == pytest.approx(percentile_bounds(reps, 0.9))


def test_bca_corrects_median_bias_and_skew():
    reps = np.linspace(0.0, 1.0, 1001)
    # the estimate above 70 % of the replicates: both bounds move up
    shifted = bca_bounds(0.7, reps, np.linspace(-1, 1, 50), 0.9)
    plain = percentile_bounds(reps, 0.9)
    assert shifted[0] > plain[0] and shifted[1] > plain[1]
    # z0 = Phi^-1(0.7) = 0.5244: lower level Phi(2 z0 - 1.2816) = Phi(-0.2327) = 0.408
    assert shifted[0] == pytest.approx(np.quantile(reps, 0.40799), abs=2e-3)
    # a long left tail of the jackknife (negative acceleration) widens the upper side
    skew = np.r_[np.zeros(45), -np.ones(5)]
    jack_centred = skew.mean() - skew
    accel = np.sum(jack_centred ** 3) / (6 * np.sum(jack_centred ** 2) ** 1.5)
    low, high = bca_bounds(0.5, reps, skew, 0.9)
    z = 1.2815516
    expected_high = np.quantile(reps, __import__("scipy").stats.norm.cdf(z / (1 - accel * z)))
    assert high == pytest.approx(expected_high, abs=2e-3)


def test_bca_handles_nan_and_degenerate_input():
    assert all(math.isnan(x) for x in bca_bounds(float("nan"), np.ones(10), np.ones(3), 0.9))
    assert all(math.isnan(x) for x in bca_bounds(0.5, np.full(10, np.nan), np.ones(3), 0.9))
    assert bca_bounds(0.5, np.full(100, 0.5), np.full(5, 0.5), 0.95) == (0.5, 0.5)
    assert bca_bounds(2.0, np.linspace(0, 1, 101), np.linspace(0, 1, 9), 0.95)[0] <= 1.0  # estimate above every replicate
    with pytest.raises(ValueError):
        bca_bounds(0.5, np.ones(10), np.ones(3), 0.0)


def test_bca_covers_a_skewed_rate_at_nominal_level():
    """A small rate (flips, refusals) has a spread that grows with its level: BCa's upper bound
    covers the truth at about the nominal rate where plain percentiles fall short."""
    rng = np.random.default_rng(0)
    truth, n, confidence = 0.08, 80, 0.95
    hits = {"bca": 0, "percentile": 0}
    weights = bootstrap_weights(n, 1000, seed=1)
    jack = jackknife_weights(n)
    for _ in range(400):
        x = (rng.random(n) < truth).astype(float)
        reps, loo = weights @ x / n, jack @ x / (n - 1)
        hits["bca"] += bca_bounds(x.mean(), reps, loo, confidence)[1] >= truth
        hits["percentile"] += percentile_bounds(reps, confidence)[1] >= truth
    assert hits["bca"] / 400 >= 0.93 and hits["bca"] >= hits["percentile"]


# --------------------------------------------------------------------------- significance


@FAST
@given(st.integers(0, 80), st.integers(0, 80), st.integers(0, 20), st.integers(0, 20))
def test_clustered_mcnemar_with_single_pairs_is_the_chi_square_mcnemar(b, c, a, d):
    """Clusters of one pair: Durkalski's statistic is (b - c)^2 / (b + c), statsmodels' uncorrected test."""
    assume(b + c > 0)
    per_b = np.r_[np.ones(b), np.zeros(c + a + d)]
    per_c = np.r_[np.zeros(b), np.ones(c), np.zeros(a + d)]
    statistic, p = mcnemar_clustered(per_b, per_c)
    expected = sm_mcnemar(np.array([[a, b], [c, d]]), exact=False, correction=False)
    assert statistic == pytest.approx(expected.statistic) and p == pytest.approx(expected.pvalue, abs=1e-12)


def test_clustered_mcnemar_counts_clusters_not_pairs():
    # 10 images, each with 12 prompts all discordant the same way on half of them: as pairs
    # that is 60 vs 0 (p ~ 1e-14); as clusters it is 5 images of +12 and 5 of 0: still one-sided
    b = np.r_[np.full(5, 12), np.zeros(5)]
    c = np.zeros(10)
    statistic, p = mcnemar_clustered(b, c)
    assert statistic == pytest.approx(60.0 ** 2 / (5 * 144))  # (sum d)^2 / sum d^2 = 5
    assert p == pytest.approx(__import__("scipy").stats.chi2.sf(5.0, 1))
    assert mcnemar_clustered(np.zeros(4), np.zeros(4)) == (0.0, 1.0)
    assert mcnemar_clustered(np.array([2, 0]), np.array([0, 2])) == (0.0, 1.0)


def test_clustered_mcnemar_keeps_its_level_with_correlated_prompts():
    """Two equally good models, answers correlated within an image: the exact test on cells was
    significant in 39-58 % of runs; the clustered one in about 5 %."""
    rng = np.random.default_rng(3)
    significant = 0
    for _ in range(300):
        u = rng.random(100)
        first = (u[:, None] < 0.7) ^ (rng.random((100, 12)) < 0.05)
        second = (rng.random(100)[:, None] < 0.7) ^ (rng.random((100, 12)) < 0.05)
        b = np.sum(first & ~second, axis=1)
        c = np.sum(~first & second, axis=1)
        significant += mcnemar_clustered(b, c)[1] < 0.05
    assert significant / 300 < 0.09


def test_clustered_mcnemar_rejects_bad_input():
    with pytest.raises(ValueError):
        mcnemar_clustered(np.array([-1]), np.array([1]))
    with pytest.raises(ValueError):
        mcnemar_clustered(np.array([0.5]), np.array([1]))
    with pytest.raises(ValueError):
        mcnemar_clustered(np.array([1, 2]), np.array([1]))


@FAST
@given(hnp.arrays(np.int8, st.tuples(st.integers(2, 40), st.integers(2, 8)), elements=st.integers(0, 1)))
def test_cochrans_q_matches_statsmodels(x):
    rows = x.sum(axis=1)
    assume(((rows > 0) & (rows < x.shape[1])).any())
    q, p, df = cochrans_q(x)
    ref = sm_cochrans_q(x)
    assert df == ref.df == x.shape[1] - 1
    assert q == pytest.approx(ref.statistic, rel=1e-10, abs=1e-12)
    assert p == pytest.approx(ref.pvalue, rel=1e-9, abs=1e-300)


def test_cochrans_q_degenerate_and_bool_input():
    constant = np.array([[1, 1, 1], [0, 0, 0], [1, 1, 1]])
    assert cochrans_q(constant) == (0.0, 1.0, 2)
    assert cochrans_q(np.zeros((4, 5), dtype=bool)) == (0.0, 1.0, 4)
    x = np.array([[True, False], [True, False], [True, True], [False, False]])
    assert cochrans_q(x) == pytest.approx(cochrans_q(x.astype(int)))
    # two treatments: Q equals the (uncorrected) McNemar chi-square (b - c)^2 / (b + c)
    assert cochrans_q(x)[0] == pytest.approx((2 - 0) ** 2 / 2)


@pytest.mark.parametrize("bad", [np.zeros(5), np.zeros((5, 1)), np.array([[0, 2], [1, 0]])])
def test_cochrans_q_rejects_bad_input(bad):
    with pytest.raises(ValueError):
        cochrans_q(bad)
