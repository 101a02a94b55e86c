"""Edges of the statistics and findings code: bad input is refused with a message that says
what is wrong, and the branches for degenerate data (a bound with no room, a class with two
images, a variant nobody answered) behave as documented."""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness.calibration import subjects as sim
from harness.core import HarnessError, Thresholds
from harness.findings import embedding_separability as es
from harness.findings import finetune_gain, prompt_sensitivity
from harness.findings.grid import Grid
from harness.stats import bootstrap as bs
from harness.stats import intervals, metrics, probe, significance, swing
from harness.stats.bootstrap import bca_bounds, images_to_decide, jackknife_weights, percentile_bounds

FAST = Thresholds(bootstrap_replicates=200)


@pytest.mark.parametrize("call, message", [
    (lambda: bca_bounds(0.5, np.ones(5), np.ones(3), 1.0), "confidence must lie strictly between 0 and 1, got 1.0"),
    (lambda: bca_bounds(0.5, np.ones(5), np.ones(3), 0.0), "confidence must lie strictly between 0 and 1, got 0.0"),
    (lambda: swing.pivot_bounds(0.1, 0.0, np.ones(5), 1.0), "confidence must lie strictly between 0 and 1, got 1.0"),
    (lambda: swing.pivot_bounds(0.1, 0.0, np.ones(5), 0.0), "confidence must lie strictly between 0 and 1, got 0.0"),
    (lambda: percentile_bounds(np.ones(5), 1.0), "confidence must lie strictly between 0 and 1, got 1.0"),
    (lambda: percentile_bounds(np.ones((2, 2)), 0.9), "replicates must be one-dimensional, got shape (2, 2)"),
    (lambda: images_to_decide(0.6, 0.5, 0.55, 10, 1.0), "confidence must lie strictly between 0 and 1, got 1.0"),
    (lambda: bs.bootstrap_weights(-1, 3, 0), "n_units and replicates must be >= 0, got -1, 3"),
    (lambda: bs.bootstrap_weights(3, 2, 0, strata=np.zeros(2)), "strata must have shape (3,), got (2,)"),
    (lambda: significance.mcnemar_clustered(np.ones(2), np.ones(3)),
     "b and c must be 1-d arrays of one length, got (2,) and (3,)"),
    (lambda: significance.mcnemar_clustered(np.array([1.0]), np.array([-1.0])), "discordant counts must be whole numbers >= 0"),
    (lambda: significance.mcnemar_clustered(np.array([1.0]), np.array([0.5])), "discordant counts must be whole numbers >= 0"),
    (lambda: significance.cochrans_q(np.ones(3)), "x must be (n_subjects, k_treatments), got shape (3,)"),
    (lambda: significance.cochrans_q(np.ones((3, 1))), "Cochran's Q needs at least 2 treatments, got 1"),
    (lambda: significance.cochrans_q(np.full((3, 2), 2)), "x must contain only 0/1 (or booleans)"),
    (lambda: intervals.wilson_interval(1, 2, 0.95, "three"), "sided must be 'one' or 'two', got 'three'"),
    (lambda: intervals.wilson_interval(1, 2, 1.5), "confidence must lie strictly between 0 and 1, got 1.5"),
    (lambda: intervals.wilson_interval(3, 2), "need 0 <= k <= n, got k=3, n=2"),
    (lambda: intervals.wilson_interval(1.5, 2), "k and n must be whole numbers, got k=1.5, n=2"),
    (lambda: metrics.point_metrics(["positive"], ["positive", "negative"]), "labels and outcomes differ in length: 1 vs 2"),
    (lambda: metrics.point_metrics(["maybe"], ["positive"]), "unknown label(s) ['maybe']"),
    (lambda: metrics.point_metrics(["positive"], ["perhaps"]), "unknown outcome(s) ['perhaps']"),
    (lambda: metrics.grid_rate(np.ones((2, 2), bool), np.ones((2, 3), bool), np.ones((1, 2))),
     "grid shapes differ: (2, 2) vs (2, 3)"),
    (lambda: metrics.grid_rate(np.ones(2, bool), np.ones(2, bool), np.ones((1, 2))), "grids must be (n_images, n_variants)"),
    (lambda: metrics.grid_rate(np.ones((2, 2), bool), np.ones((2, 2), bool), np.ones(2)), "weights must have shape (replicates, 2)"),
    (lambda: metrics.grid_balanced_accuracy(np.ones((2, 2), bool), np.ones((2, 2), bool), np.ones(3, bool), np.ones((1, 2))),
     "is_pos must have shape (2,), got (3,)"),
    (lambda: probe.weighted_auroc(np.ones(3), np.ones(2, bool), np.ones((1, 3))), "need scores (n,), is_pos (n,), weights (B, n)"),
    (lambda: probe.effective_folds(np.array([True, False, False]), 5),
     "a cross-validated probe needs at least 2 images of each class, got 1 positive and 2 negative"),
    (lambda: es.encoder_separates(np.ones((3, 2)), np.ones(2, bool), ["a", "b", "c"], FAST),
     "need embeddings (n, dim), is_pos (n,), n image ids; got (3, 2), (2,), 3"),
    (lambda: es.encoder_separates(np.ones((2, 2)), np.array([True, False]), ["a", "a"], FAST),
     "embedding image ids are not unique"),
    (lambda: es.encoder_separates(np.array([[np.nan, 1.0], [1.0, 2.0]]), np.array([True, False]), ["a", "b"], FAST),
     "embeddings contain nan or inf; the encoder output is unusable"),
    (lambda: swing.expected_range(1), "a range needs at least two variants, got 1"),
])
def test_bad_input_is_refused_with_a_message_saying_what_is_wrong(call, message):
    with pytest.raises((ValueError, HarnessError)) as exc:
        call()
    assert message in str(exc.value)


# -- BCa branches ----------------------------------------------------------------------
def test_bca_clamps_an_estimate_outside_every_replicate():
    reps = np.linspace(0.0, 1.0, 101)
    # above every replicate: z0 = Phi^-1(1 - 0.5 / 101), not infinity
    z0 = 2.5800  # Phi^-1(0.99505)
    low, high = bca_bounds(5.0, reps, np.zeros(3), 0.9)
    from scipy.stats import norm

    assert low == pytest.approx(np.quantile(reps, norm.cdf(2 * norm.ppf(1 - 0.5 / 101) - 1.2815516)), abs=1e-9)
    assert high == pytest.approx(1.0) and z0 > 2
    low_b, _ = bca_bounds(-5.0, reps, np.zeros(3), 0.9)  # below every replicate: the mirror image
    assert low_b == pytest.approx(0.0, abs=1e-9)


def test_bca_with_a_strongly_skewed_jackknife_moves_a_bound_to_the_end():
    """An acceleration so large for the level that 1 - a (z0 + z) <= 0: the level goes to 1 (or 0),
    never beyond. One outlying jackknife value gives a = 1/6; z = 6.1 (confidence 1 - 5e-10) is enough."""
    reps = np.linspace(0.0, 1.0, 1001)
    confidence = 1 - 5e-10
    low, high = bca_bounds(0.5, reps, np.r_[np.zeros(49), -50.0], confidence)
    assert high == 1.0 and 0.0 <= low < 0.5
    low, high = bca_bounds(0.5, reps, np.r_[np.zeros(49), 50.0], confidence)  # the mirror image
    assert low == 0.0 and 0.5 < high <= 1.0


def test_bca_reads_acceleration_from_three_jackknife_values():
    reps = np.linspace(0.0, 1.0, 1001)
    with_accel = bca_bounds(0.5, reps, np.array([0.0, 0.0, -3.0]), 0.9)
    assert with_accel != pytest.approx(percentile_bounds(reps, 0.9))
    assert bca_bounds(0.5, reps, np.array([0.0, -3.0]), 0.9) == pytest.approx(percentile_bounds(reps, 0.9))


def test_jackknife_with_exactly_as_many_units_as_groups_is_leave_one_out():
    assert jackknife_weights(200).shape == (200, 200)
    assert jackknife_weights(201).shape == (200, 201)


def test_bootstrap_se_is_exactly_zero_for_equal_replicates_and_nan_without_any():
    assert bs.bootstrap_se(np.full(10, 0.3)) == 0.0
    assert math.isnan(bs.bootstrap_se(np.full(4, np.nan)))
    assert bs.bootstrap_se(np.array([0.0, 1.0, np.nan])) == pytest.approx(0.5)


# -- swing branches ----------------------------------------------------------------------
def test_a_group_of_two_images_has_a_swing_and_of_one_has_none():
    flag = np.array([[True, False, True], [False, False, True]])
    m, s2, tau2 = swing.variance_components(flag, np.ones_like(flag), np.zeros(2, int), {0: 1.0}, np.ones((1, 2)))
    assert np.isfinite(tau2[0]) and m[0] == pytest.approx([0.5, 0.0, 1.0])
    m, s2, tau2 = swing.variance_components(flag[:1], np.ones_like(flag[:1]), np.zeros(1, int), {0: 1.0}, np.ones((1, 1)))
    assert np.isnan(tau2[0]) and np.isnan(m).all()


def test_pivot_bounds_refuse_infinite_inputs_and_use_the_quantile_when_variants_are_equal():
    assert all(math.isnan(x) for x in swing.pivot_bounds(math.inf, 0.0, np.ones(5), 0.9))
    assert all(math.isnan(x) for x in swing.pivot_bounds(0.1, math.nan, np.ones(5), 0.9))
    reps = np.linspace(0.0, 0.01, 101)
    assert swing.pivot_bounds(0.0, 0.002, reps, 0.9) == pytest.approx((0.0, np.quantile(reps, 0.9)))
    assert swing.pivot_bounds(1e-13, 0.002, np.full(5, 1e-13), 0.9) == (0.0, 0.0)


def test_the_swing_drops_variants_no_one_answered_in_a_class():
    rng = np.random.default_rng(0)
    grid = sim.closed_grid(rng, 20, sim.GridSpec(np.full(4, 0.8), np.zeros(4)), ["a", "b", "c", "d"])
    outcome = grid.outcome.copy()
    outcome[grid.is_pos, 3] = "error"  # variant d: no valid positive answer
    outcome[:, 2] = "error"  # variant c: no valid answer at all
    verdict = prompt_sensitivity.accuracy_swing(Grid(grid.image_ids, grid.variants, grid.is_pos, outcome), FAST)
    assert [r["variant"] for r in verdict.details["per_variant"]] == ["a", "b"]
    refusal = prompt_sensitivity.refusal_swing(Grid(grid.image_ids, grid.variants, grid.is_pos, outcome), FAST)
    assert [r["variant"] for r in refusal.details["per_variant"]] == ["a", "b", "d"]
    outcome[:, 1] = "error"
    with pytest.raises(prompt_sensitivity.NotApplicable, match="a swing needs at least two prompt variants with valid answers"):
        prompt_sensitivity.accuracy_swing(Grid(grid.image_ids, grid.variants, grid.is_pos, outcome), FAST)


def test_not_applicable_messages_name_what_is_missing():
    rng = np.random.default_rng(1)
    grid = sim.closed_grid(rng, 5, sim.GridSpec(np.full(3, 0.8), np.ones(3)), ["a", "b", "c"])
    with pytest.raises(prompt_sensitivity.NotApplicable, match="answered none of the prompts"):
        prompt_sensitivity.accuracy_swing(grid, FAST)
    other = Grid([f"x{i}" for i in range(10)], grid.variants, grid.is_pos, grid.outcome)
    with pytest.raises(prompt_sensitivity.NotApplicable, match="the two grids have no image in common"):
        finetune_gain.evaluate(other, grid, FAST)
    renamed = Grid(grid.image_ids, ["p", "q", "r"], grid.is_pos, grid.outcome)
    with pytest.raises(prompt_sensitivity.NotApplicable, match="share no prompt variant"):
        finetune_gain.evaluate(renamed, grid, FAST)


def test_probe_labels_must_match_the_answers():
    X, y, ids = sim.embeddings(np.random.default_rng(2), 40, 0.97, 8)
    grid = sim.closed_grid(np.random.default_rng(3), 40, sim.GridSpec(np.full(2, 0.9), np.zeros(2)), ["a", "b"])
    flipped = Grid(grid.image_ids, grid.variants, ~grid.is_pos, grid.outcome)
    with pytest.raises(HarnessError, match="carry different labels in the embeddings and the answers"):
        es.answers_use_encoder(X, y, ids, flipped, FAST)


def test_components_stop_at_the_rank_and_at_n_minus_one():
    rng = np.random.default_rng(4)
    few = rng.standard_normal((5, 20))
    assert probe.components(few, 10).shape == (5, 4)  # n - 1
    rank_one = np.outer(rng.standard_normal(30), rng.standard_normal(6))
    assert probe.components(rank_one, 10).shape == (30, 1)
    large_constant = np.c_[rng.standard_normal((30, 3)), np.full(30, 1e6) + 1e-9 * rng.standard_normal(30)]
    assert probe.components(large_constant, 10).shape == (30, 3)  # numerically constant beside 1e6: dropped
