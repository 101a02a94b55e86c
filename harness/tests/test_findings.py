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
from harness.findings.grid import grid_from_table
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


def test_aggregate_max_is_more_lenient_than_mean():
    def one_good_prompt(i, label, v, rng):
        return label if v.key == "abnormal" else rng.choice(["positive", "negative"])

    g = grid(one_good_prompt)
    mean = near_random.evaluate(g, FAST)
    maxed = near_random.evaluate(g, Thresholds(bootstrap_replicates=400, near_random={"min_margin": 0.1, "aggregate": "max"}))
    assert not mean.passed and maxed.passed


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


def test_flip_counts_a_refusal_as_a_change():
    def refuses_when_hinted(i, label, v, rng):
        return "refused" if v.key.startswith("disease_hint") else label

    verdict = prompt_sensitivity.flip_rate(grid(refuses_when_hinted), VARIANTS, "clinical_hint", FAST)
    assert verdict.value == pytest.approx(1.0)


def test_invariance_is_not_applicable_when_the_model_never_answers():
    g = grid(lambda i, label, v, rng: "refused", n=5)
    with pytest.raises(NotApplicable):
        prompt_sensitivity.accuracy_swing(g, FAST)
    with pytest.raises(NotApplicable):
        prompt_sensitivity.flip_rate(g, VARIANTS, "polarity", FAST)
    assert prompt_sensitivity.refusal_swing(g, FAST).passed  # refusing consistently is consistent
