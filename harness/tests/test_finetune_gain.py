"""finetune_gain: a fine-tune passes only when demonstrably better than its base (SPEC §4.2).

Subjects are pairs of grids with known properties; the fine-tune is usually built
from its base's answers (fixing or breaking some), as a real fine-tune is correlated
with its base, which is what the paired bootstrap exploits.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import chi2

from harness.core import HarnessError, Thresholds
from harness.findings import finetune_gain
from harness.findings.grid import Grid
from harness.findings.prompt_sensitivity import NotApplicable

FAST = Thresholds(bootstrap_replicates=400)
VARIANTS = ["abnormal", "disease", "choice_ab"]


def make_grid(n_per_class: int, answer, variants=VARIANTS, seed: int = 0, prefix: str = "img") -> Grid:
    """answer(i, label, variant, rng) -> outcome, for n_per_class images of each class."""
    rng = np.random.default_rng(seed)
    ids, pos, rows = [], [], []
    for label in ("positive", "negative"):
        for i in range(n_per_class):
            ids.append(f"{prefix}/{label}/{i:03d}")
            pos.append(label == "positive")
            rows.append([answer(i, label, v, rng) for v in variants])
    return Grid(ids, list(variants), np.array(pos), np.array(rows, dtype=object))


def other(label):
    return "negative" if label == "positive" else "positive"


def noisy(p):
    return lambda i, label, v, rng: label if rng.random() < p else other(label)


def derived(base: Grid, change) -> Grid:
    """A fine-tune built from its base: change(i, is_pos, base_outcome, rng) -> outcome, per cell."""
    rng = np.random.default_rng(99)
    out = base.outcome.copy()
    for i in range(base.n_images):
        for j in range(len(base.variants)):
            out[i, j] = change(i, bool(base.is_pos[i]), out[i, j], rng)
    return Grid(list(base.image_ids), list(base.variants), base.is_pos.copy(), out)


def truth(is_pos):
    return "positive" if is_pos else "negative"


def fix_share(p):
    """Turns a wrong base answer right with probability p; right answers stay right."""
    return lambda i, is_pos, o, rng: truth(is_pos) if o != truth(is_pos) and rng.random() < p else o


# -- fragile vs robust ---------------------------------------------------------------
def test_a_clearly_better_fine_tune_passes():
    base = make_grid(40, noisy(0.65))
    verdict = finetune_gain.evaluate(derived(base, fix_share(0.6)), base, FAST)
    assert verdict.passed and verdict.details["rule"] == "superiority"
    assert verdict.value > 0.15 and verdict.ci_low > 0
    assert "superiority" in verdict.description


def test_a_fine_tune_identical_to_its_base_fails():
    base = make_grid(40, noisy(0.7))
    verdict = finetune_gain.evaluate(base, base, FAST)
    assert verdict.value == 0.0 and verdict.ci_low == 0.0
    assert not verdict.passed  # strict: a lower bound of 0 is not > 0
    assert verdict.details["mcnemar_b"] == verdict.details["mcnemar_c"] == 0
    assert verdict.details["mcnemar_p"] == 1.0


def test_an_identical_fine_tune_is_fragile_not_inconclusive():
    base = make_grid(40, noisy(0.7))
    assert not finetune_gain.evaluate(base, base, FAST).inconclusive


def test_a_worse_fine_tune_fails_conclusively():
    base = make_grid(40, noisy(0.85))
    worse = derived(base, lambda i, is_pos, o, rng: other(o) if o in ("positive", "negative") and rng.random() < 0.3 else o)
    verdict = finetune_gain.evaluate(worse, base, FAST)
    assert verdict.value < -0.1 and not verdict.passed and not verdict.inconclusive
    assert verdict.details["mcnemar_c"] > verdict.details["mcnemar_b"]
    assert verdict.details["mcnemar_p"] < 0.01


def test_a_small_consistent_gain_is_detected_because_the_bootstrap_is_paired():
    """Fix the base's mistakes on 8 of 50 images per class: Δ ≈ 0.03, well inside one arm's
    own sampling spread (about ±0.05), but the gain never reverses on any image, so the
    paired replicates keep Δ > 0."""
    base = make_grid(50, noisy(0.7))
    model = derived(base, lambda i, is_pos, o, rng: truth(is_pos) if i < 8 else o)
    verdict = finetune_gain.evaluate(model, base, FAST)
    assert 0 < verdict.value < 0.1 and verdict.ci_low > 0 and verdict.passed
    assert verdict.details["mcnemar_c"] == 0


# -- the ceiling rule ----------------------------------------------------------------
def near_perfect(i, label, v, rng):
    return other(label) if i == 0 else label  # one image of each class wrong: BA = 0.975


def test_at_ceiling_an_equal_fine_tune_passes_by_non_inferiority():
    base = make_grid(40, near_perfect)
    verdict = finetune_gain.evaluate(base, base, FAST)
    assert verdict.details["rule"] == "non-inferiority" and verdict.details["base_ba"] >= 0.95
    assert verdict.threshold == pytest.approx(-0.02) and not verdict.strict
    assert verdict.passed
    assert "non-inferiority" in verdict.description


def test_at_ceiling_a_clearly_worse_fine_tune_fails():
    base = make_grid(40, near_perfect)
    worse = derived(base, lambda i, is_pos, o, rng: "refused" if rng.random() < 0.2 else o)
    verdict = finetune_gain.evaluate(worse, base, FAST)
    assert verdict.details["rule"] == "non-inferiority"
    assert verdict.value < -0.1 and not verdict.passed


def test_ceiling_and_gain_come_from_thresholds():
    base = make_grid(40, noisy(0.8))
    model = derived(base, fix_share(0.5))
    strict_cfg = Thresholds(bootstrap_replicates=400, finetune_gain={"min_gain": 0.3, "ceiling": 0.95, "noninferiority_margin": 0.02})
    low_ceiling = Thresholds(bootstrap_replicates=400, finetune_gain={"min_gain": 0.0, "ceiling": 0.5, "noninferiority_margin": 0.02})
    assert finetune_gain.evaluate(model, base, FAST).passed
    assert not finetune_gain.evaluate(model, base, strict_cfg).passed
    assert finetune_gain.evaluate(model, base, low_ceiling).details["rule"] == "non-inferiority"


# -- formulas and pairing ------------------------------------------------------------
def test_point_delta_and_per_variant_numbers():
    base = make_grid(10, lambda i, label, v, rng: label if (v == "abnormal" or i % 2) else other(label))
    model = make_grid(10, lambda i, label, v, rng: label)
    verdict = finetune_gain.evaluate(model, base, FAST)
    rows = {r["variant"]: r for r in verdict.details["per_variant"]}
    assert rows["abnormal"] == {"variant": "abnormal", "model": 1.0, "base": 1.0, "delta": 0.0}
    assert rows["disease"]["base"] == pytest.approx(0.5) and rows["disease"]["delta"] == pytest.approx(0.5)
    assert verdict.details["base_ba"] == pytest.approx((1 + 0.5 + 0.5) / 3, abs=1e-4)
    assert verdict.value == pytest.approx(1 - (1 + 0.5 + 0.5) / 3)


def test_mcnemar_counts_cells_valid_in_both_and_clusters_them_by_image():
    base = make_grid(30, lambda i, label, v, rng: rng.choice(["positive", "negative", "refused", "error"], p=[.4, .4, .1, .1]), seed=1)
    model = make_grid(30, lambda i, label, v, rng: rng.choice([label, other(label), "error"], p=[.7, .2, .1]), seed=2)
    d = finetune_gain.evaluate(model, base, FAST).details
    both = model.valid & base.valid
    b = np.sum(both & model.correct & ~base.correct, axis=1)
    c = np.sum(both & ~model.correct & base.correct, axis=1)
    assert (d["mcnemar_b"], d["mcnemar_c"]) == (b.sum(), c.sum())
    dd = b - c
    statistic = dd.sum() ** 2 / np.sum(dd * dd)
    assert d["mcnemar_clustered_chi2"] == pytest.approx(statistic, abs=1e-4)
    assert d["mcnemar_p"] == pytest.approx(chi2.sf(statistic, 1))


def test_the_gain_has_percentile_bounds_of_the_paired_replicates():
    from harness.findings.grid import weights_for
    from harness.stats.bootstrap import percentile_bounds

    base = make_grid(30, noisy(0.7))
    model = derived(base, fix_share(0.3))
    verdict = finetune_gain.evaluate(model, base, FAST)
    w = weights_for(model, 400, FAST.seed)
    delta = finetune_gain.mean_ba(model, w)[1] - finetune_gain.mean_ba(base, w)[1]
    assert (verdict.ci_low, verdict.ci_high) == pytest.approx(percentile_bounds(delta[1:], 0.95))


def test_near_zero_gain_the_lower_bound_decides():
    """A gain whose estimate is positive but whose lower bound is not: inconclusive, not robust; a
    loss whose upper bound still reaches 0: inconclusive, not fragile."""
    base = make_grid(40, noisy(0.7))
    small_gain = derived(base, lambda i, is_pos, o, rng: truth(is_pos) if i < 2 else o)
    gain = finetune_gain.evaluate(small_gain, base, FAST)
    assert gain.value > 0 and gain.ci_low <= 0 < gain.ci_high and gain.label == "inconclusive"
    def churn(i, is_pos, o, rng):  # breaks 6 % of right answers, fixes 16 % of wrong ones: a near-zero net
        right = o == truth(is_pos)
        if right and rng.random() < 0.06:
            return other(truth(is_pos))
        return truth(is_pos) if not right and rng.random() < 0.16 else o

    small_loss = derived(base, churn)
    loss = finetune_gain.evaluate(small_loss, base, FAST)
    assert loss.value < 0 < loss.ci_high and loss.label == "inconclusive"


def test_grids_are_aligned_on_common_images_and_variants():
    base = make_grid(20, noisy(0.7), variants=["disease", "abnormal", "base_only"])
    model = derived(base.subset(["abnormal", "disease"]), fix_share(0.5))
    model = Grid(model.image_ids[5:], model.variants, model.is_pos[5:], model.outcome[5:])
    verdict = finetune_gain.evaluate(model, base, FAST)
    assert verdict.n_images == 35
    assert [r["variant"] for r in verdict.details["per_variant"]] == ["abnormal", "disease"]
    assert verdict.details["images_only_in_base"] == 5 and verdict.details["images_only_in_model"] == 0


def test_nothing_in_common_is_not_applicable():
    a = make_grid(5, noisy(0.7))
    with pytest.raises(NotApplicable):
        finetune_gain.evaluate(a, make_grid(5, noisy(0.7), prefix="other"), FAST)
    with pytest.raises(NotApplicable):
        finetune_gain.evaluate(a, make_grid(5, noisy(0.7), variants=["x"]), FAST)


def test_conflicting_labels_are_a_data_error():
    a = make_grid(5, noisy(0.7))
    flipped = Grid(a.image_ids, a.variants, ~a.is_pos, a.outcome)
    with pytest.raises(HarnessError, match="different labels"):
        finetune_gain.evaluate(a, flipped, FAST)
