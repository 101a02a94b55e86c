"""harness/verdict.py: which bound decides, the three labels, the hint and the message.

Fixtures put the point estimate and the two bounds on different sides of the threshold,
for both directions, so a verdict that used the wrong bound (or the estimate) fails here.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.verdict import Verdict, verdict_from_replicates


def ge(value, low, high, threshold=0.6, strict=False, n=100):
    return Verdict("f", "m", value, low, high, threshold, "ge", 0.95, n, strict=strict, description="d")


def le(value, low, high, threshold=0.1, n=100):
    return Verdict("f", "m", value, low, high, threshold, "le", 0.95, n, description="d")


# -- "ge": robust iff the lower bound clears; fragile iff the upper bound is below ------
@pytest.mark.parametrize("value, low, high, label", [
    (0.70, 0.65, 0.75, "robust"),        # everything above
    (0.70, 0.60, 0.75, "robust"),        # lower bound exactly on the threshold passes (≥)
    (0.65, 0.55, 0.75, "inconclusive"),  # estimate passes, lower bound does not
    (0.55, 0.50, 0.62, "inconclusive"),  # estimate fails, upper bound still above
    (0.55, 0.50, 0.60, "inconclusive"),  # upper bound on the threshold: not shown below it
    (0.55, 0.50, 0.59, "fragile"),       # both bounds below
    (0.62, 0.61, 0.59, "robust"),        # (malformed bounds) the lower bound alone decides a pass
])
def test_ge_labels(value, low, high, label):
    verdict = ge(value, low, high)
    assert verdict.label == label
    assert verdict.passed == (label == "robust")
    assert verdict.inconclusive == (label == "inconclusive")


@pytest.mark.parametrize("value, low, high, label", [
    (0.05, 0.02, 0.08, "robust"),
    (0.05, 0.02, 0.10, "robust"),        # upper bound exactly on the limit passes (≤)
    (0.08, 0.05, 0.12, "inconclusive"),  # estimate passes, upper bound does not
    (0.12, 0.09, 0.15, "inconclusive"),  # estimate fails, lower bound still below
    (0.12, 0.10, 0.15, "inconclusive"),  # lower bound on the limit: not shown above it
    (0.14, 0.11, 0.18, "fragile"),
])
def test_le_labels(value, low, high, label):
    verdict = le(value, low, high)
    assert verdict.label == label
    assert verdict.bound == high and verdict.other_bound == low


def test_strict_ge_needs_the_lower_bound_above_and_shows_fragility_at_equality():
    assert ge(0.1, 0.0, 0.2, threshold=0.0, strict=True).label == "inconclusive"
    assert ge(0.1, 0.001, 0.2, threshold=0.0, strict=True).label == "robust"
    assert ge(0.0, -0.1, 0.0, threshold=0.0, strict=True).label == "fragile"  # upper bound 0: not > 0
    assert ge(0.0, -0.1, 0.0, threshold=0.0, strict=False).label == "inconclusive"


def test_nan_bounds_are_never_robust_nor_fragile():
    verdict = ge(math.nan, math.nan, math.nan)
    assert verdict.label == "inconclusive" and not verdict.passed and not verdict.fragility_shown
    assert le(0.05, math.nan, 0.08).label == "robust"
    assert le(0.15, math.nan, 0.20).label == "inconclusive"


def test_images_needed_comes_from_the_bound_that_has_to_move():
    # estimate passes: the lower bound (distance 0.10) must shrink to the gap 0.05
    passing = ge(0.65, 0.55, 0.70, n=100)
    # estimate fails: the upper bound (distance 0.02) must shrink below the gap 0.05 — already
    # closer, so the same distance on the other side would need many more images
    failing = ge(0.55, 0.40, 0.61, n=100)
    assert passing.label == failing.label == "inconclusive"
    # n * (h * (z + z_power) / z / gap)^2 / 2 classes, z = z(0.95), power = DECIDING_POWER (0.9)
    from scipy.stats import norm

    from harness.stats.bootstrap import DECIDING_POWER

    assert DECIDING_POWER == 0.9
    factor = (norm.ppf(0.95) + norm.ppf(DECIDING_POWER)) / norm.ppf(0.95)
    assert passing.images_needed_per_class == math.ceil(100 * (0.10 * factor / 0.05) ** 2 / 2)
    assert failing.images_needed_per_class == math.ceil(100 * (0.06 * factor / 0.05) ** 2 / 2)
    assert ge(0.7, 0.65, 0.75).images_needed_per_class is None  # decided: no hint
    assert ge(0.6, 0.5, 0.7).images_needed_per_class is None  # estimate on the threshold: none can be given


def test_messages_name_the_label_both_bounds_and_the_hint():
    fragile = le(0.14, 0.11, 0.18)
    assert fragile.message().startswith("[f] fragile: d — m = 0.140, one-sided 95% upper bound 0.180 (needs ≤ 0.100)")
    assert "lower bound 0.110" in fragile.message() and "fragility is shown" in fragile.message()
    unsure = ge(0.65, 0.55, 0.70)
    assert unsure.message().startswith("[f] inconclusive:") and "lower bound 0.550 (needs ≥ 0.600)" in unsure.message()
    assert f"about {unsure.images_needed_per_class} images per class" in unsure.message()
    assert ge(0.1, 0.01, 0.2, threshold=0.0, strict=True).message().count("needs > 0.000") == 1
    assert "robust:" in le(0.05, 0.02, 0.08).message()


def test_record_carries_label_and_both_bounds():
    record = ge(0.65, 0.55, 0.70).record()
    assert record["label"] == "inconclusive" and record["inconclusive"] is True
    assert (record["ci_low"], record["ci_high"], record["threshold"], record["direction"]) == (0.55, 0.7, 0.6, "ge")
    assert record["images_needed"] == ge(0.65, 0.55, 0.70).images_needed_per_class
    assert ge(math.nan, 0.5, 0.7).record()["value"] is None


def test_verdict_from_replicates_uses_one_sided_percentile_bounds():
    reps = np.linspace(0.0, 1.0, 1001)
    verdict = verdict_from_replicates(finding="f", metric="m", point=0.5, replicates=reps, threshold=0.06,
                                      direction="ge", confidence=0.95, n_images=10, description="d")
    assert verdict.ci_low == pytest.approx(0.05) and verdict.ci_high == pytest.approx(0.95)
    assert verdict.label == "inconclusive"  # 0.05 < 0.06 <= 0.95


@given(st.floats(0, 1), st.floats(0, 1), st.floats(0, 1), st.floats(0, 1), st.sampled_from(["ge", "le"]))
def test_labels_partition_and_follow_the_bounds(a, b, value, threshold, direction):
    low, high = min(a, b), max(a, b)
    verdict = Verdict("f", "m", value, low, high, threshold, direction, 0.95, 50)
    assert verdict.label in ("robust", "fragile", "inconclusive")
    if direction == "ge":
        assert verdict.passed == (low >= threshold)
        assert verdict.fragility_shown == (high < threshold)
    else:
        assert verdict.passed == (high <= threshold)
        assert verdict.fragility_shown == (low > threshold)
    assert not (verdict.passed and verdict.fragility_shown)


def test_verdict_from_replicates_accepts_integer_and_list_replicates():
    """Replicates arrive as lists of ints (counts) too; the bounds must be the same as for floats."""
    as_ints = verdict_from_replicates(finding="f", metric="m", point=5, replicates=list(range(11)), threshold=3,
                                      direction="ge", confidence=0.9, n_images=10, description="d")
    as_floats = verdict_from_replicates(finding="f", metric="m", point=5.0,
                                        replicates=np.arange(11, dtype=float), threshold=3.0,
                                        direction="ge", confidence=0.9, n_images=10, description="d")
    assert (as_ints.ci_low, as_ints.ci_high) == pytest.approx((as_floats.ci_low, as_floats.ci_high))
    assert as_ints.ci_low == pytest.approx(1.0)
