"""The regression finding (a new version against the one it replaces), on grids with known truth.

Identical versions pass every metric (non-inferiority: no worse); a version planted to be
worse fails, including near the margin; the bounds pair the two versions by image (an
unpaired bootstrap would be wider); refusal and flip increases are caught on their own.
"""

from __future__ import annotations

import numpy as np
import pytest

from harness.config.registry import load_registry
from harness.core import Thresholds
from harness.findings import regression
from harness.findings.grid import Grid

from .test_finetune_gain import derived, make_grid, noisy, truth

REGISTRY = load_registry()
VARIANTS = list(REGISTRY.variants)  # all twelve prompts: the flip pairs are among them
SPECS = list(REGISTRY.variants.values())
FAST = Thresholds(bootstrap_replicates=400)


def outcomes(base: Grid, change) -> Grid:
    return derived(base, change)


def break_share(p):
    """Turns a right answer wrong with probability p."""
    return lambda i, is_pos, o, rng: ("negative" if is_pos else "positive") if o == truth(is_pos) and rng.random() < p else o


def refuse_share(p):
    return lambda i, is_pos, o, rng: "refused" if rng.random() < p else o


@pytest.fixture(scope="module")
def previous():
    return make_grid(100, noisy(0.8), variants=VARIANTS)


@pytest.mark.parametrize("metric", regression.METRICS)
def test_a_version_identical_to_its_previous_passes_every_metric(previous, metric):
    verdict = regression.evaluate(previous, previous, SPECS, metric, FAST)
    assert verdict.value == 0.0 and verdict.label == "robust", verdict.message()


def test_a_clearly_worse_version_fails_balanced_accuracy(previous):
    worse = outcomes(previous, break_share(0.25))  # about 0.2 BA lost
    verdict = regression.evaluate(worse, previous, SPECS, "balanced_accuracy", FAST)
    assert verdict.label == "fragile" and verdict.ci_high < -0.03 and verdict.metric == "balanced_accuracy_change"


def test_near_the_margin_a_small_loss_is_not_called_robust(previous):
    slightly = outcomes(previous, break_share(0.05))  # about 0.04 BA lost: past the 0.03 margin
    verdict = regression.evaluate(slightly, previous, SPECS, "balanced_accuracy", FAST)
    assert verdict.label in ("fragile", "inconclusive") and verdict.value < -0.03
    tiny = outcomes(previous, break_share(0.005))  # about 0.004 lost: well inside the margin
    assert regression.evaluate(tiny, previous, SPECS, "balanced_accuracy", FAST).label == "robust"


def test_more_refusals_fail_the_refusal_metric_but_not_balanced_accuracy_alone(previous):
    refusing = outcomes(previous, refuse_share(0.10))
    refusal = regression.evaluate(refusing, previous, SPECS, "refusal_rate", FAST)
    assert refusal.label == "fragile" and refusal.value == pytest.approx(0.10, abs=0.02)
    assert regression.evaluate(previous, refusing, SPECS, "refusal_rate", FAST).label == "robust"  # fewer: fine


def test_more_flips_fail_the_flip_metric(previous):
    rng = np.random.default_rng(5)
    out = previous.outcome.copy()
    flip_cols = [previous.variants.index(v.key) for v in SPECS if v.perturbs]  # the perturbed side of each pair
    for i in range(previous.n_images):
        for j in flip_cols:
            if rng.random() < 0.2 and out[i, j] in ("positive", "negative"):
                out[i, j] = "negative" if out[i, j] == "positive" else "positive"
    flipping = Grid(list(previous.image_ids), list(previous.variants), previous.is_pos.copy(), out)
    verdict = regression.evaluate(flipping, previous, SPECS, "flip_rate", FAST)
    # re-deciding 20 % of the perturbed answers at random adds about 0.08 flips to a base of 0.33
    assert verdict.label == "fragile" and verdict.value > 0.05 and verdict.ci_low > 0.03


def test_the_bounds_are_paired_by_image(previous):
    """Shared image difficulty cancels: the paired interval of a 5 % break is narrower than
    the spread of either version's own BA across the same replicates."""
    worse = outcomes(previous, break_share(0.05))
    verdict = regression.evaluate(worse, previous, SPECS, "balanced_accuracy", FAST)
    width = verdict.ci_high - verdict.ci_low
    from harness.findings.finetune_gain import mean_ba
    from harness.findings.grid import weights_for

    own = mean_ba(previous, weights_for(previous, 400, FAST.seed))[1][1:]
    assert width < np.quantile(own, 0.95) - np.quantile(own, 0.05)


def _independent_flip_rate(grid: Grid) -> float:
    """Answered-pair flips over the harmless families, counted cell by cell."""
    from harness.core import DIRECTIONAL_FAMILIES, PERTURBATION_FAMILIES
    from harness.findings.prompt_sensitivity import perturbation_pairs

    flips = answered = 0
    for family in PERTURBATION_FAMILIES:
        if family in DIRECTIONAL_FAMILIES:
            continue
        for x, y in perturbation_pairs(SPECS, family):
            a, b = grid.column(x), grid.column(y)
            for u, v in zip(a, b):
                if u in ("error", "refused") or v in ("error", "refused"):
                    continue
                answered += 1
                flips += u != v
    return flips / answered


def test_flip_rate_is_the_answered_pair_share_and_the_estimate_is_the_sample_delta(previous):
    rng = np.random.default_rng(11)
    out = previous.outcome.copy()
    for i in range(previous.n_images):  # some refusals and errors, which must not count as flips
        for j in range(len(previous.variants)):
            r = rng.random()
            out[i, j] = "refused" if r < 0.05 else ("error" if r < 0.08 else out[i, j])
    noisy_grid = Grid(list(previous.image_ids), list(previous.variants), previous.is_pos.copy(), out)
    verdict = regression.evaluate(noisy_grid, previous, SPECS, "flip_rate", FAST)
    assert verdict.details["new"] == pytest.approx(_independent_flip_rate(noisy_grid), abs=1e-4)
    assert verdict.details["previous"] == pytest.approx(_independent_flip_rate(previous), abs=1e-4)
    assert verdict.value == pytest.approx(verdict.details["new"] - verdict.details["previous"], abs=2e-4)
    assert verdict.ci_low <= verdict.value <= verdict.ci_high and verdict.n_images == previous.n_images
    assert verdict.finding == "regression" and "must not be worse" in verdict.description
    ba = regression.evaluate(outcomes(previous, break_share(0.1)), previous, SPECS, "balanced_accuracy", FAST)
    assert ba.value == pytest.approx(ba.details["new"] - ba.details["previous"], abs=2e-4)
    with pytest.raises(ValueError, match="unknown regression metric 'swing'; known: balanced_accuracy"):
        regression.evaluate(previous, previous, SPECS, "swing", FAST)
