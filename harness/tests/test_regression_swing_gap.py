"""The regression group's two newer metrics (issue 21, part 4), on grids with known truth.

- accuracy_swing: the swing the new version adds over its previous one's, in quadrature
  (sqrt(swing(new)² − swing(previous)²), signed); its parts are prompt_sensitivity's own
  noise-free swings, so the two findings agree;
- knowledge_gap: the change of description_recovery's gap, all four arms paired by image;
  its value is the difference of the two versions' own gaps.

Identical versions pass; a version planted to be worse fails; a better one passes with a
negative change. The calibration (docs/statistics.md) measures the rates near the margins.
"""

from __future__ import annotations

import numpy as np
import pytest

from harness.core import HarnessError, NotApplicable, Thresholds
from harness.findings import description_recovery, prompt_sensitivity, regression
from harness.findings.grid import Grid

from .test_finetune_gain import make_grid, noisy, other

FAST = Thresholds(bootstrap_replicates=400)
PROMPTS = [f"v{j}" for j in range(12)]
DESCRIBE = [f"d{j}" for j in range(6)]


def by_prompt(accuracies: dict):
    """Right with the probability of the prompt (default 0.8); one image's answers move together."""
    def answer(i, label, v, rng):
        u = (i * 0.6180339887) % 1.0  # the image's difficulty, shared by its prompts
        return label if u < accuracies.get(v, 0.8) else other(label)
    return answer


@pytest.fixture(scope="module")
def steady():
    return make_grid(100, by_prompt({}), variants=PROMPTS)


def test_identical_versions_add_no_swing_and_no_gap(steady):
    swing = regression.evaluate(steady, steady, [], "accuracy_swing", FAST)
    assert swing.value == 0.0 and swing.label == "robust" and swing.metric == "accuracy_swing_change"
    desc = make_grid(100, noisy(0.8), variants=DESCRIBE, seed=3)
    gap = regression.evaluate_gap(desc, steady, desc, steady, FAST)
    assert gap.value == 0.0 and gap.label == "robust" and gap.metric == "knowledge_gap_change"


def test_a_version_whose_prompts_disagree_fails_and_one_that_swings_less_passes(steady):
    swinging = make_grid(100, by_prompt({f"v{j}": 0.55 + 0.04 * j for j in range(12)}), variants=PROMPTS)
    worse = regression.evaluate(swinging, steady, [], "accuracy_swing", FAST)
    assert worse.label == "fragile" and worse.ci_low > 0.10
    better = regression.evaluate(steady, swinging, [], "accuracy_swing", FAST)
    assert better.value < 0 and better.label == "robust"
    # the parts are prompt_sensitivity's noise-free swings (point estimates, where positive)
    own = prompt_sensitivity.accuracy_swing(swinging, FAST).value
    assert worse.details["new"] == pytest.approx(own, abs=1e-4)
    assert worse.value == pytest.approx(np.sqrt(own ** 2 - worse.details["previous"] * abs(worse.details["previous"])),
                                        abs=1e-3)


def test_the_added_swing_is_in_quadrature():
    """A previous version swinging 0.3 and a new one swinging 0.5 add sqrt(0.5² − 0.3²) = 0.4."""
    spread = lambda s: {f"v{j}": 0.7 + s * (j / 11 - 0.5) for j in range(12)}  # noqa: E731
    old = make_grid(400, by_prompt(spread(0.3)), variants=PROMPTS)
    new = make_grid(400, by_prompt(spread(0.5)), variants=PROMPTS)
    v = regression.evaluate(new, old, [], "accuracy_swing", FAST)
    a, b = v.details["new"], v.details["previous"]
    assert v.value == pytest.approx(np.sign(a * a - b * abs(b)) * np.sqrt(abs(a * a - b * abs(b))), abs=1e-3)
    assert a > b > 0.1


def test_the_swing_needs_two_prompts_answered_by_both_versions(steady):
    one = steady.subset(["v0"])
    with pytest.raises(NotApplicable, match="at least two prompt variants"):
        regression.evaluate(one, one, [], "accuracy_swing", FAST)


def test_a_larger_knowledge_gap_fails_and_its_value_is_the_difference_of_the_gaps(steady):
    weak = make_grid(100, by_prompt({v: 0.6 for v in PROMPTS}), variants=PROMPTS)
    described = make_grid(100, noisy(0.85), variants=DESCRIBE, seed=4)
    old_desc = make_grid(100, noisy(0.8), variants=DESCRIBE, seed=5)
    worse = regression.evaluate_gap(described, weak, old_desc, steady, FAST)
    assert worse.label == "fragile" and worse.ci_low > 0.10
    new_gap = description_recovery.evaluate(described, weak, FAST).value
    old_gap = description_recovery.evaluate(old_desc, steady, FAST).value
    assert worse.value == pytest.approx(new_gap - old_gap, abs=1e-6)
    assert worse.details["new"] == pytest.approx(new_gap, abs=1e-4)
    assert worse.details["previous"] == pytest.approx(old_gap, abs=1e-4)
    assert regression.evaluate_gap(old_desc, steady, described, weak, FAST).label == "robust"  # a smaller gap


def test_the_gap_pairs_the_four_arms_on_their_common_images(steady):
    desc = make_grid(100, noisy(0.8), variants=DESCRIBE, seed=3)
    fewer = Grid(steady.image_ids[:150], list(steady.variants), steady.is_pos[:150], steady.outcome[:150])
    v = regression.evaluate_gap(desc, fewer, desc, steady, FAST)
    assert v.n_images == 150 and v.details["images_only_in_previous"] == 50
    elsewhere = make_grid(10, noisy(0.8), variants=DESCRIBE, prefix="other")
    with pytest.raises(NotApplicable, match="no image in common"):
        regression.evaluate_gap(elsewhere, steady, desc, steady, FAST)
    relabelled = Grid(list(desc.image_ids), list(desc.variants), ~desc.is_pos, desc.outcome)
    with pytest.raises(HarnessError, match="different labels"):
        regression.evaluate_gap(desc, steady, relabelled, steady, FAST)


# -- pinned by mutation testing (harness/tests/MUTANTS.md) --------------------------------
def test_each_versions_swing_replicates_are_centred_on_its_point_estimate(steady):
    from harness.findings.grid import weights_for

    swinging = make_grid(100, by_prompt({f"v{j}": 0.55 + 0.04 * j for j in range(12)}), variants=PROMPTS)
    weights = weights_for(swinging, 400, FAST.seed)
    squared = regression._swing_squared(swinging, weights)
    assert squared.shape == (401,)
    assert np.mean(squared[1:]) == pytest.approx(squared[0], abs=1e-12)  # centred
    assert squared[0] == pytest.approx(prompt_sensitivity.accuracy_swing(swinging, FAST).value ** 2, abs=1e-9)


def test_the_bounds_are_the_percentiles_of_every_replicate(steady):
    from harness.findings.grid import weights_for

    swinging = make_grid(100, by_prompt({f"v{j}": 0.55 + 0.04 * j for j in range(12)}), variants=PROMPTS)
    v = regression.evaluate(swinging, steady, [], "accuracy_swing", FAST)
    weights = weights_for(swinging, 400, FAST.seed)
    delta = regression.signed_root(regression._swing_squared(swinging, weights) - regression._swing_squared(steady, weights))
    assert v.ci_high == pytest.approx(float(np.quantile(delta[1:], FAST.confidence)), abs=1e-12)
    assert v.ci_low == pytest.approx(float(np.quantile(delta[1:], 1 - FAST.confidence)), abs=1e-12)
    assert v.details["metric"] == "accuracy_swing" and v.threshold == 0.10


def test_the_swing_is_over_the_prompts_both_versions_answered_in_both_classes(steady):
    out = steady.outcome.copy()
    out[:, PROMPTS.index("v3")] = "error"  # the new version never answered v3
    out[~steady.is_pos, PROMPTS.index("v5")] = "error"  # nor v5 about a negative image
    new = Grid(list(steady.image_ids), list(steady.variants), steady.is_pos.copy(), out)
    assert regression._swing_variants(new, steady) == [p for p in PROMPTS if p not in ("v3", "v5")]
    assert regression._swing_variants(steady, new) == [p for p in PROMPTS if p not in ("v3", "v5")]
    only_pos = steady.outcome.copy()
    only_pos[steady.is_pos, PROMPTS.index("v7")] = "error"  # v7 answered about negatives only
    other = Grid(list(steady.image_ids), list(steady.variants), steady.is_pos.copy(), only_pos)
    assert "v7" not in regression._swing_variants(other, steady)
    two = steady.subset(["v0", "v1"])  # two prompts are enough
    assert regression._swing_variants(two, two) == ["v0", "v1"]
    with pytest.raises(NotApplicable, match="^a swing needs at least two prompt variants answered by both versions "
                                            "in both classes$"):
        regression._swing_variants(steady.subset(["v0"]), steady.subset(["v0"]))


def test_the_images_one_version_lacks_are_counted(steady):
    fewer = Grid(steady.image_ids[:150], list(steady.variants), steady.is_pos[:150], steady.outcome[:150])
    v = regression.evaluate(fewer, steady, [], "balanced_accuracy", FAST)
    assert (v.details["images_only_in_new"], v.details["images_only_in_previous"]) == (0, 50)
    v = regression.evaluate(steady, fewer, [], "refusal_rate", FAST)
    assert (v.details["images_only_in_new"], v.details["images_only_in_previous"]) == (50, 0)
    desc = make_grid(100, noisy(0.8), variants=DESCRIBE, seed=3)
    g = regression.evaluate_gap(desc, steady, desc, fewer, FAST)
    assert (g.details["images_only_in_new"], g.details["images_only_in_previous"]) == (50, 0)
    with pytest.raises(ValueError, match="known: balanced_accuracy, refusal_rate, flip_rate, accuracy_swing$"):
        regression.evaluate(steady, steady, [], "gap", FAST)


def test_every_arm_of_the_gap_must_carry_the_same_labels(steady):
    desc = make_grid(100, noisy(0.8), variants=DESCRIBE, seed=3)
    arms = [desc, steady, desc, steady]
    for i in range(4):
        flipped = list(arms)
        g = arms[i]
        flipped[i] = Grid(list(g.image_ids), list(g.variants), ~g.is_pos, g.outcome)
        with pytest.raises(HarnessError, match="different labels"):
            regression.evaluate_gap(*flipped, FAST)
    elsewhere = make_grid(10, noisy(0.8), variants=DESCRIBE, prefix="other")
    with pytest.raises(NotApplicable, match="^the two versions' descriptions and answers have no image in common$"):
        regression.evaluate_gap(desc, steady, elsewhere, steady, FAST)


def test_a_refusal_is_a_coin_flip_on_every_arm_of_the_gap(steady):
    """As in description_recovery: the gap's value is the difference of that finding's gaps,
    with refusals in the answers."""
    rng = np.random.default_rng(3)
    out = steady.outcome.copy()
    out[rng.random(out.shape) < 0.3] = "refused"
    refusing = Grid(list(steady.image_ids), list(steady.variants), steady.is_pos.copy(), out)
    desc = make_grid(100, noisy(0.85), variants=DESCRIBE, seed=4)
    old_desc = make_grid(100, noisy(0.8), variants=DESCRIBE, seed=5)
    v = regression.evaluate_gap(desc, refusing, old_desc, steady, FAST)
    expected = (description_recovery.evaluate(desc, refusing, FAST).value
                - description_recovery.evaluate(old_desc, steady, FAST).value)
    assert v.value == pytest.approx(expected, abs=1e-9)
