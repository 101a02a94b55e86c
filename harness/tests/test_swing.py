"""Bounds on a swing (max − min over prompt variants): stats/swing.py.

The percentile bootstrap of max − min is biased upwards and can exclude its own
estimate; the simultaneous pairwise bounds must contain it, equal a brute-force
computation, vanish when variants move together, and cover the true swing in
simulation at (at least) the nominal level.
"""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from harness.stats.bootstrap import bootstrap_weights, percentile_bounds
from harness.stats.swing import pairwise_deviation, swing, swing_bounds

finite = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)


@st.composite
def point_and_replicates(draw):
    v = draw(st.integers(2, 6))
    b = draw(st.integers(1, 40))
    point = draw(arrays(float, v, elements=finite))
    reps = draw(arrays(float, (b, v), elements=finite))
    return point, reps


@given(point_and_replicates())
def test_pairwise_deviation_equals_brute_force(data):
    point, reps = data
    brute = [max(abs((r[i] - r[j]) - (point[i] - point[j])) for i, j in itertools.permutations(range(len(point)), 2))
             for r in reps]
    np.testing.assert_allclose(pairwise_deviation(point, reps), brute, atol=1e-12)


@given(point_and_replicates(), st.floats(0.5, 0.99))
def test_bounds_contain_the_estimate_and_stay_in_range(data, confidence):
    point, reps = data
    low, high = swing_bounds(point, reps, confidence, ceiling=1.0)
    estimate = float(point.max() - point.min())
    assert 0.0 <= low <= estimate + 1e-12 and estimate - 1e-12 <= high <= 1.0


@given(arrays(float, 5, elements=finite), arrays(float, 30, elements=st.floats(-0.3, 0.3)))
def test_variants_that_move_together_give_a_zero_width_interval(point, shifts):
    reps = point[None, :] + shifts[:, None]  # every replicate shifts all variants alike
    low, high = swing_bounds(point, reps, 0.95)
    assert low == high or abs(high - low) < 1e-9


def test_nan_variants_are_ignored_and_no_pairs_give_nan():
    point = np.array([0.5, 0.7, np.nan])
    reps = np.array([[0.5, 0.8, np.nan], [0.4, 0.7, 0.1], [np.nan, np.nan, 0.3]])
    dev = pairwise_deviation(point, reps)
    assert np.allclose(dev[:2], [0.1, 0.1]) and np.isnan(dev[2])
    assert np.isnan(swing(np.array([[np.nan, np.nan]]))[0])


def _simulate(rng, p, n=100, b=300, seed=0, shared=0.6):
    """Per-image correctness for variants with accuracies p; with probability `shared` a
    variant's draw is the image's own (so variants are correlated through the image, as
    prompts about one picture are), otherwise independent. Marginal accuracy is exactly p."""
    v = len(p)
    own = rng.random(n)
    u = np.where(rng.random((n, v)) < shared, own[:, None], rng.random((n, v)))
    correct = u < np.asarray(p)[None, :]
    point = correct.mean(axis=0)
    reps = (bootstrap_weights(n, b, seed) @ correct) / n
    return point, reps


def test_simultaneous_bounds_cover_the_true_swing():
    """200 simulated subjects with a known swing of 0.15: a 90 % two-sided interval covers it ≥ 90 %."""
    rng = np.random.default_rng(3)
    p = [0.60, 0.65, 0.70, 0.75]
    truth = max(p) - min(p)
    hits = 0
    for k in range(200):
        point, reps = _simulate(rng, p, seed=k)
        low, high = swing_bounds(point, reps, 0.95, ceiling=1.0)
        hits += low <= truth <= high
    assert hits / 200 >= 0.90, hits


def test_the_percentile_interval_excludes_its_estimate_where_these_bounds_cannot():
    """Twelve variants of equal accuracy: the observed swing is noise, and the bootstrap's
    max − min runs above it, so the percentile interval often lies wholly above the estimate."""
    rng = np.random.default_rng(0)
    excluded = 0
    for k in range(50):
        point, reps = _simulate(rng, [0.7] * 12, seed=k)
        estimate = float(point.max() - point.min())
        excluded += percentile_bounds(swing(reps), 0.95)[0] > estimate
        low, high = swing_bounds(point, reps, 0.95, ceiling=1.0)
        assert low <= estimate <= high
    assert excluded >= 5, excluded  # 8 of 50 with these seeds
