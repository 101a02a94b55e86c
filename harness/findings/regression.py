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
  passes iff the upper bound ≤ max_flip_increase;
- accuracy_swing: the swing the new version adds, sqrt(swing(new)² − swing(previous)²)
  (negative when it swings less), where swing is the noise-free swing of balanced
  accuracy over the prompts both versions answered in both classes (prompt_sensitivity's
  estimand, stats/swing.py): prompt dependence the new version adds on top of the old
  one's. Why in quadrature: the squared swing (τ²) has an unbiased estimate that may be
  negative, so its difference is paired and linear; a difference of the reported swings,
  each truncated at 0, understates an increase over a version whose prompts agree (in
  simulation a rise from 0 to the margin passed a quarter of the time). Percentile bounds
  of the replicates, each version's τ² replicates centred on its point estimate (the
  bootstrap adds its own noise to each); at the margin they pass 0.064 of the time in
  simulation, a little over the nominal 0.05. Passes iff the upper bound ≤
  max_swing_increase;
- knowledge_gap (its own test, as it reads descriptions): Δ of the knowledge gap
  BA(descriptions) − BA(direct answers) of description_recovery, a refusal a coin flip on
  both arms, all four arms paired by image; passes iff the upper bound ≤ max_gap_increase.

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
from ..stats.swing import expected_range, variance_components
from ..verdict import Verdict, verdict_from_replicates
from .description_recovery import REFUSAL_AS_COIN_FLIP
from .finetune_gain import align, check_same_labels, common_image_ids, mean_ba, take_images
from .grid import Grid, weights_for
from .prompt_sensitivity import NotApplicable, perturbation_pairs

METRICS = ("balanced_accuracy", "refusal_rate", "flip_rate", "accuracy_swing")


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


def _swing_squared(grid: Grid, weights: np.ndarray) -> np.ndarray:
    """The squared noise-free swing of balanced accuracy over the grid's prompts, d2(K)² · τ²,
    per replicate (1+B,): unbiased (method of moments), so it may be negative. A replicate's
    τ² is biased upwards by about the sampling noise (the bootstrap world adds its own), so
    the replicates are shifted to centre on the point estimate. (BCa bounds instead were
    tried: 0.061-0.064 false passes at the margin in simulation, no better than these.)"""
    _, _, tau2 = variance_components(grid.correct, grid.valid, grid.is_pos.astype(int), {0: 0.5, 1: 0.5}, weights)
    tau2 = np.asarray(tau2, dtype=float)
    reps = tau2[1:]
    if reps.size and np.isfinite(reps).any():
        tau2 = np.r_[tau2[0], reps - (np.nanmean(reps) - tau2[0])]
    return expected_range(len(grid.variants)) ** 2 * tau2


def signed_root(x: np.ndarray) -> np.ndarray:
    """sign(x) · sqrt(|x|): the swing added in quadrature, kept signed (less swing: negative)."""
    x = np.asarray(x, dtype=float)
    return np.sign(x) * np.sqrt(np.abs(x))


def _swing_variants(new: Grid, previous: Grid) -> list[str]:
    """The prompts both versions answered in both classes (a swing is over those)."""
    def defined(grid: Grid) -> set:
        ok = grid.valid[grid.is_pos].any(axis=0) & grid.valid[~grid.is_pos].any(axis=0)
        return {v for v, d in zip(grid.variants, ok) if d}

    keep = [v for v in new.variants if v in defined(new) & defined(previous)]
    if len(keep) < 2:
        raise NotApplicable("a swing needs at least two prompt variants answered by both versions in both classes")
    return keep


def _metric(name: str, grid: Grid, variants, weights: np.ndarray) -> np.ndarray:
    if name == "accuracy_swing":
        return _swing_squared(grid, weights)
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
    "accuracy_swing": ("max_swing_increase", "le",
                       "may add at most {m:.2f} of swing in balanced accuracy over the prompts (noise removed, in quadrature)"),
    "knowledge_gap": ("max_gap_increase", "le",
                      "may hide at most {m:.2f} more of what its descriptions show (knowledge gap)"),
}


def evaluate(new_grid: Grid, previous_grid: Grid, variants, metric: str, thresholds: Thresholds) -> Verdict:
    """Non-inferiority of the new version against its previous one on `metric`."""
    new, previous = align(new_grid, previous_grid)
    if metric == "accuracy_swing":
        keep = _swing_variants(new, previous)
        new, previous = new.subset(keep), previous.subset(keep)
    weights = weights_for(new, thresholds.bootstrap_replicates, thresholds.seed)
    new_v = _metric(metric, new, variants, weights)
    old_v = _metric(metric, previous, variants, weights)
    return _verdict(metric, new_v, old_v, thresholds, new.n_images,
                    {"images_only_in_new": len(new_grid.image_ids) - new.n_images,
                     "images_only_in_previous": len(previous_grid.image_ids) - new.n_images})


def evaluate_gap(new_desc: Grid, new_vqa: Grid, previous_desc: Grid, previous_vqa: Grid,
                 thresholds: Thresholds) -> Verdict:
    """Non-inferiority of the new version's knowledge gap: all four arms on their common
    images, one set of image weights (the gap of description_recovery for each version)."""
    ids = common_image_ids(common_image_ids(new_desc.image_ids, new_vqa.image_ids),
                           common_image_ids(previous_desc.image_ids, previous_vqa.image_ids))
    if not ids:
        raise NotApplicable("the two versions' descriptions and answers have no image in common")
    arms = [take_images(g, ids) for g in (new_desc, new_vqa, previous_desc, previous_vqa)]
    for arm in arms[1:]:
        check_same_labels(arms[0], arm)
    weights = weights_for(arms[0], thresholds.bootstrap_replicates, thresholds.seed)
    ba = [mean_ba(a, weights, refusal_credit=REFUSAL_AS_COIN_FLIP)[1] for a in arms]
    new_v, old_v = ba[0] - ba[1], ba[2] - ba[3]
    return _verdict("knowledge_gap", new_v, old_v, thresholds, len(ids),
                    {"images_only_in_new": len(new_vqa.image_ids) - len(ids),
                     "images_only_in_previous": len(previous_vqa.image_ids) - len(ids)})


def _verdict(metric: str, new_v: np.ndarray, old_v: np.ndarray, thresholds: Thresholds, n_images: int,
             extra: dict) -> Verdict:
    delta = new_v - old_v
    if metric == "accuracy_swing":  # the swing added in quadrature; percentile bounds commute with the root
        delta = signed_root(delta)
        new_v, old_v = signed_root(new_v), signed_root(old_v)
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
        n_images=n_images,
        description=f"the new version must not be worse than its previous one: it {rule.format(m=margin)}",
        details={"new": _r(new_v[0]), "previous": _r(old_v[0]), "metric": metric, **extra},
    )


def _r(x) -> float | None:
    x = float(x)
    return None if np.isnan(x) else round(x, 4)
