"""The noise-free swing of a rate over prompt variants: stats/swing.py and the swing verdicts.

The estimator is checked against a two-way ANOVA (statsmodels) and a brute-force
influence computation, its unbiasedness and its bounds' error rates by simulation; the
verdicts on subjects that are robust with realistic noise, fragile, or near the limit.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from harness.calibration import subjects as sim
from harness.calibration.cases import VARIANTS, evenly_spread
from harness.core import Thresholds
from harness.findings import prompt_sensitivity
from harness.findings.grid import weights_for
from harness.stats.swing import (expected_range, observed_swing, pivot_bounds, swing_from_tau2,
                                 variance_components)

FAST = Thresholds(bootstrap_replicates=500)
K = len(VARIANTS)


def one_group(flag, valid=None):
    flag = np.asarray(flag, dtype=bool)
    valid = np.ones_like(flag) if valid is None else np.asarray(valid, dtype=bool)
    ones = np.ones((1, flag.shape[0]))
    return variance_components(flag, valid, np.zeros(flag.shape[0], int), {0: 1.0}, ones)


# -- the estimator --------------------------------------------------------------------
def test_without_errors_it_is_the_two_way_anova_variance_component():
    """tau^2 = (MS_prompt − MS_residual) / n, the method-of-moments estimate of a prompt effect."""
    import statsmodels.api as sm
    from statsmodels.formula.api import ols

    rng = np.random.default_rng(0)
    flag = (rng.random(40)[:, None] < np.linspace(0.4, 0.8, 5)[None, :]) ^ (rng.random((40, 5)) < 0.1)
    m, s2, tau2 = one_group(flag)
    rows = pd.DataFrame([(i, j, float(flag[i, j])) for i in range(40) for j in range(5)], columns=["img", "var", "y"])
    table = sm.stats.anova_lm(ols("y ~ C(img) + C(var)", data=rows).fit())
    ms_prompt = table.loc["C(var)", "mean_sq"]
    ms_resid = table.loc["Residual", "mean_sq"]
    assert s2[0] == pytest.approx(ms_prompt / 40)
    assert tau2[0] == pytest.approx((ms_prompt - ms_resid) / 40)
    np.testing.assert_allclose(m[0], flag.mean(axis=0))


def _brute_force_noise(flag, valid, alpha=1.0):
    """sum_j Var(m_j − mean m) by the delta method, image by image, with the n/(n−1) factor."""
    n, k = flag.shape
    N = valid.sum(axis=0)
    a = (flag & valid).sum(axis=0) / N
    phi = np.where(valid, alpha * ((flag & valid) - a[None, :]) / N[None, :], 0.0)
    contrast = phi - phi.mean(axis=1, keepdims=True)
    return n / (n - 1) * np.sum(contrast ** 2)


@settings(max_examples=40, deadline=None)
@given(arrays(bool, (12, 4)), arrays(bool, (12, 4)))
def test_with_error_cells_the_noise_term_is_the_brute_force_delta_method(flag, errors):
    valid = ~errors
    valid[:2] = True  # every variant keeps valid cells
    m, s2, tau2 = one_group(flag, valid)
    noise = (s2[0] - tau2[0]) * (4 - 1)
    assert noise == pytest.approx(_brute_force_noise(flag, valid), abs=1e-12)


def test_balanced_accuracy_combines_the_classes_with_weight_one_half():
    rng = np.random.default_rng(1)
    correct = rng.random((20, 6)) < 0.7
    is_pos = np.r_[np.ones(10, bool), np.zeros(10, bool)]
    ones = np.ones((1, 20))
    m, s2, tau2 = variance_components(correct, np.ones_like(correct), is_pos.astype(int), {0: 0.5, 1: 0.5}, ones)
    np.testing.assert_allclose(m[0], (correct[is_pos].mean(0) + correct[~is_pos].mean(0)) / 2)
    noise = 0.25 * (_brute_force_noise(correct[is_pos], np.ones((10, 6), bool))
                    + _brute_force_noise(correct[~is_pos], np.ones((10, 6), bool)))
    assert (s2[0] - tau2[0]) * 5 == pytest.approx(noise)


def test_the_estimate_is_unbiased_where_the_observed_range_is_not():
    rng = np.random.default_rng(2)
    spec_equal = sim.GridSpec(np.full(K, 0.8), np.full(K, 0.02), 0.08)
    spec_spread = sim.GridSpec(evenly_spread(0.78, 0.15) / 0.98, np.full(K, 0.02), 0.08)
    for spec, excess in ((spec_equal, 0.05), (spec_spread, 0.0)):
        true_tau2 = np.var(spec.true_ba, ddof=1)
        estimates, observed = [], []
        for _ in range(150):
            g = sim.closed_grid(rng, 50, spec, VARIANTS)
            m, s2, tau2 = variance_components(g.correct, g.valid, g.is_pos.astype(int), {0: .5, 1: .5},
                                              np.ones((1, g.n_images)))
            estimates.append(tau2[0])
            observed.append(observed_swing(m[0]))
        assert np.mean(estimates) == pytest.approx(true_tau2, abs=0.0002)
        assert np.mean(observed) > expected_range(K) * math.sqrt(true_tau2) + excess  # the old estimand's noise


def test_expected_range_matches_tabulated_d2():
    assert expected_range(2) == pytest.approx(2 / math.sqrt(math.pi))
    assert expected_range(12) == pytest.approx(3.258, abs=1e-3)  # the control-chart constant d2(12)
    with pytest.raises(ValueError):
        expected_range(1)
    assert float(swing_from_tau2(-0.01, 12)) == 0.0
    assert float(swing_from_tau2(1.0, 12)) == 1.0  # capped


# -- the bounds -------------------------------------------------------------------------
def test_variants_that_agree_on_every_image_have_zero_bounds():
    agree = np.repeat(np.random.default_rng(3).random((30, 1)) < 0.7, 5, axis=1)
    w = weights_for(sim.closed_grid(np.random.default_rng(0), 15, sim.GridSpec(np.full(5, .8), np.zeros(5)), list("abcde")),
                    200, 1)
    m, s2, tau2 = variance_components(agree, np.ones_like(agree), np.zeros(30, int), {0: 1.0}, w)
    assert np.allclose(s2, 0.0) and pivot_bounds(s2[0], s2[0] - tau2[0], s2[1:], 0.95) == (0.0, 0.0)


def test_pivot_bounds_scale_with_the_level():
    reps = np.exp(np.linspace(-0.5, 0.5, 1001)) * 0.01  # log spread ±0.5 around 0.01
    low, high = pivot_bounds(0.01, 0.0, reps, 0.95)
    q = np.quantile(np.log(reps / 0.01), [0.05, 0.95])
    assert (low, high) == pytest.approx((0.01 * math.exp(-q[1]), 0.01 * math.exp(-q[0])))
    assert low < 0.01 < high
    assert math.isnan(pivot_bounds(0.01, 0.0, np.full(10, np.nan), 0.95)[0])
    with pytest.raises(ValueError):
        pivot_bounds(0.01, 0.0, reps, 1.5)


def test_a_replicate_without_spread_keeps_the_bound_finite():
    reps = np.r_[np.zeros(100), np.full(900, 2e-4)]
    low, high = pivot_bounds(2e-4, 1e-4, reps, 0.95)
    assert math.isfinite(high) and high < 0.01


# -- the verdicts -------------------------------------------------------------------------
def _grid(rng, n, accuracy, refusal, redraw=0.08):
    return sim.closed_grid(rng, n, sim.GridSpec(np.asarray(accuracy), np.asarray(refusal), redraw), VARIANTS)


def test_a_robust_model_with_realistic_noise_passes_both_swings():
    """Every prompt equally good, about 5 % of answers changing between prompts, 2 % random
    refusals: the old max − min failed this 93-100 % of the time."""
    rng = np.random.default_rng(4)
    results = [(prompt_sensitivity.accuracy_swing(g, FAST).label, prompt_sensitivity.refusal_swing(g, FAST).label)
               for g in (_grid(rng, 100, np.full(K, 0.85), np.full(K, 0.02)) for _ in range(20))]
    assert sum(a == "robust" for a, _ in results) >= 18 and sum(r == "robust" for _, r in results) >= 18


def test_a_true_range_of_0_2_is_shown_fragile():
    rng = np.random.default_rng(5)
    accuracy = np.linspace(0.65, 0.85, K) / 0.98
    verdict = prompt_sensitivity.accuracy_swing(_grid(rng, 100, accuracy, np.full(K, 0.02)), FAST)
    assert verdict.label == "fragile" and verdict.ci_low > 0.10
    refusal = prompt_sensitivity.refusal_swing(_grid(rng, 100, np.full(K, 0.8), np.linspace(0.02, 0.22, K)), FAST)
    assert refusal.label == "fragile"


def test_near_the_limit_the_upper_bound_decides():
    rng = np.random.default_rng(6)
    accuracy = evenly_spread(0.78, 0.08) / 0.98
    labels = [prompt_sensitivity.accuracy_swing(_grid(rng, 60, accuracy, np.full(K, 0.02)), FAST) for _ in range(10)]
    near = [v for v in labels if v.value <= 0.10 < v.ci_high]
    assert near and all(v.label == "inconclusive" for v in near)


def test_details_report_the_observed_range_and_cochrans_q():
    g = _grid(np.random.default_rng(7), 50, np.full(K, 0.85), np.full(K, 0.02))
    verdict = prompt_sensitivity.accuracy_swing(g, FAST)
    d = verdict.details
    assert d["observed_range"] > verdict.value  # the noise the estimand removes
    assert d["n_variants"] == K and len(d["per_variant"]) == K and d["cochran_df"] == K - 1
    assert d["noise_sd"] > 0 and verdict.metric == "accuracy_swing" and verdict.direction == "le"


def test_false_passes_at_the_limit_stay_near_nominal():
    """A subject whose noise-free swing sits exactly on the limit passes rarely (bench/calibration.py
    measures it precisely; here a coarse guard against a broken bound)."""
    rng = np.random.default_rng(8)
    accuracy = evenly_spread(0.78, 0.10) / 0.98
    passes = sum(prompt_sensitivity.accuracy_swing(_grid(rng, 100, accuracy, np.full(K, 0.02)), FAST).passed
                 for _ in range(60))
    assert passes <= 9  # ≤ 15 % of 60 (nominal 5 %)


def test_a_model_that_never_answers_is_not_judged_on_accuracy_but_is_consistent_in_refusing():
    g = _grid(np.random.default_rng(9), 10, np.full(K, 0.8), np.ones(K))
    with pytest.raises(prompt_sensitivity.NotApplicable):
        prompt_sensitivity.accuracy_swing(g, FAST)
    assert prompt_sensitivity.refusal_swing(g, FAST).label == "robust"
