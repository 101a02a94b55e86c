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
    images_needed,
    mcnemar_exact,
    percentile_bounds,
    wilson_interval,
    z_value,
)

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


def test_images_needed_matches_worked_example():
    # se = 0.05 (replicates +-0.05), gap 0.05, z(0.95) = 1.645: n = ceil(100 * 1.645^2) = 271.
    reps = np.array([0.55, 0.65] * 50)
    assert images_needed(0.60, 0.55, reps, 100, 0.95) == 271
    # the hinted size does clear the threshold under the 1/sqrt(n) assumption
    n = images_needed(0.60, 0.55, reps, 100, 0.95)
    assert 0.60 - z_value(0.95, "one") * 0.05 * math.sqrt(100 / n) >= 0.55


def test_images_needed_undefined_cases():
    reps = np.array([0.5, 0.6, 0.7])
    assert images_needed(0.6, 0.6, reps, 50, 0.95) is None
    assert images_needed(0.6, 0.5, np.full(20, 0.6), 50, 0.95) is None
    assert images_needed(0.6, 0.5, np.full(20, np.nan), 50, 0.95) is None
    assert images_needed(float("nan"), 0.5, reps, 50, 0.95) is None


@FAST
@given(
    hnp.arrays(np.float64, st.integers(3, 100), elements=st.floats(0, 1, allow_nan=False)),
    st.floats(0.01, 0.3),
    st.floats(0.01, 0.3),
    st.integers(10, 500),
)
def test_images_needed_monotone(reps, gap_a, gap_b, n_units):
    assume(np.std(reps) > 1e-3)
    small, large = sorted([gap_a, gap_b])
    near = images_needed(0.5 + small, 0.5, reps, n_units, 0.95)
    far = images_needed(0.5 + large, 0.5, reps, n_units, 0.95)
    assert near >= far  # a point closer to the threshold needs more images
    noisier = images_needed(0.5 + small, 0.5, 0.5 + 2 * (reps - reps.mean()), n_units, 0.95)
    assert noisier >= near  # more spread needs more images
    assert images_needed(0.5 + small, 0.5, reps, n_units, 0.99) >= near
    assert images_needed(0.5 - small, 0.5, reps, n_units, 0.95) == near  # symmetric in the side


def test_images_needed_exceeds_current_sample_when_bound_straddles():
    rng = np.random.default_rng(0)
    reps = rng.normal(0.62, 0.05, 2000)
    low, _ = percentile_bounds(reps, 0.95)
    assert low < 0.60 < 0.62
    assert images_needed(0.62, 0.60, reps, 80, 0.95) > 80


# --------------------------------------------------------------------------- significance


@FAST
@given(st.integers(0, 80), st.integers(0, 80), st.integers(0, 20), st.integers(0, 20))
def test_mcnemar_exact_matches_statsmodels(b, c, a, d):
    assume(b + c > 0)
    expected = sm_mcnemar(np.array([[a, b], [c, d]]), exact=True).pvalue
    assert mcnemar_exact(b, c) == pytest.approx(expected, rel=1e-10, abs=1e-300)


def test_mcnemar_edge_cases():
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(5, 5) == 1.0
    assert mcnemar_exact(0, 10) == pytest.approx(2 * 0.5**10)
    assert mcnemar_exact(3, 9) == mcnemar_exact(9, 3)
    with pytest.raises(ValueError):
        mcnemar_exact(-1, 3)


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
