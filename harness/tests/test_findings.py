"""Each finding's verdict fails on a subject built to be fragile and passes on a robust one.

Subjects are response tables with known properties (no model involved): the
statistics decide, so these tests pin the semantics of SPEC §2–§4.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from harness.config.registry import load_registry
from harness.core import Thresholds
from harness.findings import near_random, prompt_sensitivity
from harness.findings.grid import grid_from_table, weights_for
from harness.findings.prompt_sensitivity import NotApplicable

REGISTRY = load_registry()
VARIANTS = list(REGISTRY.variants.values())
KEYS = [v.key for v in VARIANTS]
FAST = Thresholds(bootstrap_replicates=400)


def make_table(n_per_class: int, answer, seed: int = 0) -> pd.DataFrame:
    """answer(i, label, variant, rng) -> outcome; one row per image × variant."""
    rng = np.random.default_rng(seed)
    rows = []
    for label in ("positive", "negative"):
        for i in range(n_per_class):
            image = f"img/{label}/{i:03d}"
            for v in VARIANTS:
                rows.append({"image_id": image, "label": label, "variant": v.key,
                             "outcome": answer(i, label, v, rng)})
    return pd.DataFrame(rows)


def other(label):
    return "negative" if label == "positive" else "positive"


def robust(i, label, v, rng):
    return label


def random_answers(i, label, v, rng):
    return rng.choice(["positive", "negative"])


def accurate_but_noisy(p):
    return lambda i, label, v, rng: label if rng.random() < p else other(label)


def grid(answer, n=50, seed=0):
    return grid_from_table(make_table(n, answer, seed), KEYS)


# -- near_random ---------------------------------------------------------------------
def test_near_random_passes_for_an_accurate_model():
    verdict = near_random.evaluate(grid(accurate_but_noisy(0.9)), FAST)
    assert verdict.passed and verdict.ci_low > 0.6


def test_near_random_fails_for_a_random_model():
    verdict = near_random.evaluate(grid(random_answers), FAST)
    assert not verdict.passed and not verdict.inconclusive
    assert "fragile" in verdict.message()


def test_refusals_count_as_wrong():
    verdict = near_random.evaluate(grid(lambda i, label, v, rng: "refused"), FAST)
    assert verdict.value == pytest.approx(0.0) and not verdict.passed  # both classes always wrong


def test_errors_are_excluded_not_scored_wrong():
    def half_errors(i, label, v, rng):
        return "error" if i % 2 else label

    verdict = near_random.evaluate(grid(half_errors), FAST)
    assert verdict.value == pytest.approx(1.0)
    assert verdict.details["error_rate"] == pytest.approx(0.5)


def test_inconclusive_when_point_passes_but_bound_does_not():
    def right_on_two_thirds_of_images(i, label, v, rng):
        return label if i % 3 else other(label)  # the same images are wrong under every prompt

    verdict = near_random.evaluate(grid(right_on_two_thirds_of_images, n=9), FAST)
    assert verdict.value >= 0.6 and not verdict.passed
    assert verdict.inconclusive
    assert verdict.images_needed_per_class and verdict.images_needed_per_class > 8
    assert "inconclusive" in verdict.message() and "images per class" in verdict.message()


def test_aggregate_median_is_available_and_max_is_gone():
    def one_good_prompt(i, label, v, rng):
        return label if v.key == "abnormal" else rng.choice(["positive", "negative"])

    g = grid(one_good_prompt)
    median = near_random.evaluate(g, Thresholds(bootstrap_replicates=400, near_random={"min_margin": 0.1, "aggregate": "median"}))
    assert median.metric == "balanced_accuracy_median" and median.label == "fragile"
    with pytest.raises(KeyError):
        near_random.evaluate(g, Thresholds(bootstrap_replicates=400, near_random={"min_margin": 0.1, "aggregate": "max"}))


def _near_random_at(ba, n, seed):
    from harness.calibration import subjects as sim
    from harness.calibration.cases import VARIANTS as SIM_VARIANTS

    spec = sim.GridSpec(np.full(len(SIM_VARIANTS), ba / 0.98), np.full(len(SIM_VARIANTS), 0.02), 0.08)
    return near_random.evaluate(sim.closed_grid(np.random.default_rng(seed), n, spec, SIM_VARIANTS), FAST)


def test_near_random_lower_bound_decides_a_pass_and_upper_bound_shows_fragility():
    """Subjects a little above and a little below chance + margin: the estimate alone never decides."""
    verdicts = [_near_random_at(ba, 50, seed) for ba in (0.58, 0.62) for seed in range(15)]
    for v in verdicts:
        assert v.passed == (v.ci_low >= 0.6)
        assert (v.label == "fragile") == (v.ci_high < 0.6)
    point_passes_but_inconclusive = [v for v in verdicts if v.value >= 0.6 and v.ci_low < 0.6]
    point_fails_but_not_shown = [v for v in verdicts if v.value < 0.6 <= v.ci_high]
    assert point_passes_but_inconclusive and point_fails_but_not_shown
    assert all(v.label == "inconclusive" for v in point_passes_but_inconclusive + point_fails_but_not_shown)


def test_near_random_uses_bca_bounds_from_the_jackknife():
    from harness.stats.bootstrap import bca_bounds, jackknife_weights

    g = grid(accurate_but_noisy(0.7), n=30)
    verdict = near_random.evaluate(g, FAST)
    weights = weights_for(g, 400, FAST.seed)
    values = np.nanmean(near_random.per_variant_ba(g, weights), axis=1)
    jack = np.nanmean(near_random.per_variant_ba(g, jackknife_weights(g.n_images)), axis=1)
    assert (verdict.ci_low, verdict.ci_high) == pytest.approx(bca_bounds(values[0], values[1:], jack, 0.95))


def test_verdicts_are_reproducible_with_the_fixed_seed():
    g = grid(accurate_but_noisy(0.7), n=20)
    a, b = near_random.evaluate(g, FAST), near_random.evaluate(g, FAST)
    assert (a.ci_low, a.ci_high) == (b.ci_low, b.ci_high)


# -- prompt sensitivity ----------------------------------------------------------------
def polarity_fragile(i, label, v, rng):
    """Answers "yes" to every yes/no question: right on 'abnormal', wrong on 'normal'."""
    if v.kind == "yes_no":
        return v.yes_means
    return label


def test_accuracy_swing_passes_when_all_prompts_agree():
    assert prompt_sensitivity.accuracy_swing(grid(robust), FAST).passed


def test_accuracy_swing_fails_when_one_phrasing_breaks_the_model():
    verdict = prompt_sensitivity.accuracy_swing(grid(polarity_fragile), FAST)
    assert not verdict.passed and verdict.value >= 0.4
    assert verdict.details["cochran_p"] < 0.001


def test_refusal_swing():
    def refuses_one_word(i, label, v, rng):
        return "refused" if v.key.endswith("_oneword") and rng.random() < 0.5 else label

    assert prompt_sensitivity.refusal_swing(grid(robust), FAST).passed
    assert not prompt_sensitivity.refusal_swing(grid(refuses_one_word), FAST).passed


@pytest.mark.parametrize("family", ["option_order", "answer_format", "polarity", "clinical_hint"])
def test_flip_rate_passes_for_a_consistent_model(family):
    assert prompt_sensitivity.flip_rate(grid(robust), VARIANTS, family, FAST).passed


def test_flip_rate_fails_on_polarity_only_for_the_polarity_family():
    g = grid(polarity_fragile)
    assert not prompt_sensitivity.flip_rate(g, VARIANTS, "polarity", FAST).passed
    assert prompt_sensitivity.flip_rate(g, VARIANTS, "option_order", FAST).passed


def test_flip_rate_fails_on_option_order_bias():
    def always_option_a(i, label, v, rng):
        return v.options[0] if v.kind == "choice" else label

    g = grid(always_option_a)
    verdict = prompt_sensitivity.flip_rate(g, VARIANTS, "option_order", FAST)
    assert not verdict.passed and verdict.value == pytest.approx(1.0)


def test_flip_rate_not_applicable_without_pairs():
    g = grid_from_table(make_table(5, robust), ["abnormal", "disease"]).subset(["abnormal", "disease"])
    with pytest.raises(NotApplicable):
        prompt_sensitivity.flip_rate(g, VARIANTS, "option_order", FAST)


def test_a_change_between_an_answer_and_a_refusal_is_not_a_flip():
    def refuses_when_reordered(i, label, v, rng):
        return "refused" if v.key == "choice_ba" and i % 2 else label

    verdict = prompt_sensitivity.flip_rate(grid(refuses_when_reordered), VARIANTS, "option_order", FAST)
    assert verdict.value == 0.0 and verdict.passed
    assert verdict.details["refusal_change_rate"] == pytest.approx(0.25)  # half the images of one pair of two
    assert verdict.details["pairs"][0]["refusal_change_rate"] == pytest.approx(0.5)


def test_flip_rate_is_over_images_answered_under_both_prompts():
    def flips_or_refuses(i, label, v, rng):
        if v.key == "choice_ba":
            return "refused" if i < 25 else (other(label) if i < 30 else label)
        return label

    verdict = prompt_sensitivity.flip_rate(grid(flips_or_refuses), VARIANTS, "option_order", FAST)
    # pair (choice_ab, choice_ba): 10 flips among 50 answered pairs; the other pair: none
    assert verdict.details["pairs"][0]["flip_rate"] == pytest.approx(0.2)
    assert verdict.value == pytest.approx(0.1)
    assert verdict.details["answered_pairs"] == 50 + 100


def test_random_refusals_do_not_make_a_consistent_model_fail_invariance():
    def consistent_with_refusals(i, label, v, rng):
        return "refused" if rng.random() < 0.05 else label

    g = grid(consistent_with_refusals, n=100)
    for family in ("option_order", "answer_format", "polarity"):
        assert prompt_sensitivity.flip_rate(g, VARIANTS, family, FAST).label == "robust"


# -- the clinical hint: a direction check ------------------------------------------------
def test_a_hint_that_helps_passes():
    def helped_by_hints(i, label, v, rng):
        return label if "hint" in v.key or i % 3 else other(label)

    verdict = prompt_sensitivity.answer_invariance(grid(helped_by_hints), VARIANTS, "clinical_hint", FAST)
    assert verdict.metric == "hint_effect" and verdict.value > 0.3 and verdict.label == "robust"
    assert verdict.direction == "ge" and verdict.threshold == pytest.approx(-0.05)


def test_a_hint_that_hurts_is_fragile_and_one_that_changes_nothing_passes():
    def hurt_by_hints(i, label, v, rng):
        return other(label) if "hint" in v.key and i % 4 == 0 else label

    hurt = prompt_sensitivity.answer_invariance(grid(hurt_by_hints), VARIANTS, "clinical_hint", FAST)
    assert hurt.value == pytest.approx(-0.26, abs=0.01) and hurt.label == "fragile"
    assert prompt_sensitivity.answer_invariance(grid(robust), VARIANTS, "clinical_hint", FAST).label == "robust"


def test_a_hint_that_makes_the_model_refuse_hurts():
    def refuses_when_hinted(i, label, v, rng):
        return "refused" if v.key.startswith("disease_hint") else label

    verdict = prompt_sensitivity.answer_invariance(grid(refuses_when_hinted), VARIANTS, "clinical_hint", FAST)
    assert verdict.value == pytest.approx(-1.0) and verdict.label == "fragile"


def test_hint_effect_lower_bound_decides_near_the_margin():
    def slightly_hurt(i, label, v, rng):
        return other(label) if "hint" in v.key and i < 3 and label == "positive" else label

    verdict = prompt_sensitivity.answer_invariance(grid(slightly_hurt, n=40), VARIANTS, "clinical_hint", FAST)
    assert -0.05 < verdict.value < 0 and verdict.ci_low < -0.05 < verdict.ci_high
    assert verdict.label == "inconclusive"


def test_other_families_are_invariance_checks():
    verdict = prompt_sensitivity.answer_invariance(grid(robust), VARIANTS, "polarity", FAST)
    assert verdict.metric == "flip_rate" and verdict.direction == "le"


def test_invariance_is_not_applicable_when_the_model_never_answers():
    g = grid(lambda i, label, v, rng: "refused", n=5)
    with pytest.raises(NotApplicable):
        prompt_sensitivity.accuracy_swing(g, FAST)
    with pytest.raises(NotApplicable):
        prompt_sensitivity.flip_rate(g, VARIANTS, "polarity", FAST)
    assert prompt_sensitivity.refusal_swing(g, FAST).passed  # refusing consistently is consistent
