"""Regression between versions: is the new version of a model worse than the one it replaces?

A registry entry may name the version it replaces (`previous = "..."`). The question a
release asks is not "is it fragile?" but "is it worse than what we ship, anywhere?", so
each metric is a *non-inferiority* check of the new version against the previous one,
paired by image and prompt on the same sampled images (one set of bootstrap image weights
drives both versions, so the images' shared difficulty cancels):

- balanced_accuracy: Δ = BA(new) − BA(previous), mean over the prompts, refusals wrong;
  passes iff the lower bound of Δ ≥ −max_ba_loss;
- refusal_rate: Δ = refusal rate(new) − refusal rate(previous); passes iff the upper bound
  of Δ ≤ max_refusal_increase;
- flip_rate: Δ of the answer flip rate under the harmless perturbation families: flips
  among the (image, pair) cells answered under both prompts, pooled over every harmless
  family's pairs (prompt_sensitivity judges each family apart, as a mean over its pairs);
  passes iff the upper bound ≤ max_flip_increase.

A version identical to its previous one has Δ ≡ 0 and passes every check (no worse is
what a regression gate asks; finetune_gain is the test that asks for "better"). Bounds:
one-sided percentile bounds of the paired replicates, as finetune_gain (a difference of two
equally good models is symmetric at the threshold, where BCa's acceleration is noise).
Labels as everywhere: robust (the bound clears the margin), fragile (the other bound is
past it: shown worse), inconclusive.
"""

from __future__ import annotations

import numpy as np

from ..core import DIRECTIONAL_FAMILIES, PERTURBATION_FAMILIES, Thresholds
from ..stats.metrics import grid_rate
from ..verdict import Verdict, verdict_from_replicates
from .finetune_gain import align, mean_ba
from .grid import Grid, weights_for
from .prompt_sensitivity import NotApplicable, perturbation_pairs

METRICS = ("balanced_accuracy", "refusal_rate", "flip_rate")


def _flip_rate(grid: Grid, variants, weights: np.ndarray) -> np.ndarray:
    """Flips among answered (image, pair) cells, pooled over the harmless families' pairs, per replicate (1+B,)."""
    pairs = [p for family in PERTURBATION_FAMILIES if family not in DIRECTIONAL_FAMILIES
             for p in perturbation_pairs(variants, family)
             if p[0] in grid.variants and p[1] in grid.variants]
    if not pairs:
        raise NotApplicable("no harmless perturbation pair of prompts was asked")
    a = np.stack([grid.column(x) for x, _ in pairs], axis=1)
    b = np.stack([grid.column(y) for _, y in pairs], axis=1)
    answered = (a != "error") & (b != "error") & (a != "refused") & (b != "refused")
    flips = answered & (a != b)
    num = weights @ flips.sum(axis=1)
    den = weights @ answered.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.maximum(den, 1), np.nan)


def _metric(name: str, grid: Grid, variants, weights: np.ndarray) -> np.ndarray:
    if name == "balanced_accuracy":
        return mean_ba(grid, weights)[1]
    if name == "refusal_rate":
        return np.nanmean(grid_rate(grid.refused, grid.valid, weights), axis=1)
    if name == "flip_rate":
        return _flip_rate(grid, variants, weights)
    raise ValueError(f"unknown regression metric {name!r}; known: {', '.join(METRICS)}")


_RULES = {  # metric -> (threshold key, direction, what must hold)
    "balanced_accuracy": ("max_ba_loss", "ge", "may lose at most {m:.2f} balanced accuracy"),
    "refusal_rate": ("max_refusal_increase", "le", "may refuse at most {m:.2f} more often"),
    "flip_rate": ("max_flip_increase", "le", "may flip at most {m:.2f} more answers under harmless rewordings"),
}


def evaluate(new_grid: Grid, previous_grid: Grid, variants, metric: str, thresholds: Thresholds) -> Verdict:
    """Non-inferiority of the new version against its previous one on `metric`."""
    new, previous = align(new_grid, previous_grid)
    weights = weights_for(new, thresholds.bootstrap_replicates, thresholds.seed)
    new_v = _metric(metric, new, variants, weights)
    old_v = _metric(metric, previous, variants, weights)
    delta = new_v - old_v
    key, direction, rule = _RULES[metric]
    margin = float(thresholds.regression[key])
    return verdict_from_replicates(
        finding="regression",
        metric=f"{metric}_change",
        point=float(delta[0]),
        replicates=delta[1:],
        threshold=-margin if direction == "ge" else margin,
        direction=direction,
        confidence=thresholds.confidence,
        n_images=new.n_images,
        description=f"the new version must not be worse than its previous one: it {rule.format(m=margin)}",
        details={"new": _r(new_v[0]), "previous": _r(old_v[0]), "metric": metric,
                 "images_only_in_new": len(new_grid.image_ids) - new.n_images,
                 "images_only_in_previous": len(previous_grid.image_ids) - new.n_images},
    )


def _r(x) -> float | None:
    x = float(x)
    return None if np.isnan(x) else round(x, 4)
