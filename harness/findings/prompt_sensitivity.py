"""Finding 3, prompt_sensitivity: do harmless prompt changes move the answers?

- accuracy swing: how much the *true* balanced accuracy varies over the prompt variants,
  with the within-prompt sampling noise removed (stats/swing.py: a method-of-moments
  between-variant spread, reported as the range K prompts with that spread typically
  span, in BA points). The observed max − min of 12 noisy estimates is mostly noise; it
  is reported beside the estimate, with Cochran's Q, but never judged.
- refusal swing: the same for the refusal rate.
- answer invariance, per perturbation family (CheckList: invariance): the flip rate, the
  share of images whose label-mapped *answer* differs between the paired variants,
  among the pairs where both variants answered. A change between an answer and a
  refusal is not a flip: it is reported apart (`refusal_change_rate`) and judged by
  the refusal swing, so a few random refusals cannot make a consistent model fail.
- clinical hint (CheckList: direction): added signs to look for are information, not
  a harmless rewording, so a hint that *helps* is fine; the test is that a hint does not
  hurt: BA with the hint minus BA without, paired by image and prompt, must have a
  lower bound of at least −max_hint_harm.
"""

from __future__ import annotations

import warnings

import numpy as np

from ..core import DIRECTIONAL_FAMILIES, NotApplicable, PromptVariant, Thresholds
from ..stats.bootstrap import jackknife_weights
from ..stats.metrics import grid_balanced_accuracy, grid_rate
from ..stats.significance import cochrans_q
from ..stats.swing import observed_swing, pivot_bounds, swing_from_tau2, variance_components
from ..verdict import Verdict, verdict_from_replicates
from .grid import Grid, weights_for

__all__ = ["NotApplicable", "accuracy_swing", "refusal_swing", "answer_invariance", "flip_rate", "hint_effect",
           "perturbation_pairs"]


def _defined_variants(grid: Grid, by_class: bool) -> Grid:
    """The variants with a valid answer (in each class, for balanced accuracy); a swing needs two."""
    valid = grid.valid
    if by_class:
        defined = valid[grid.is_pos].any(axis=0) & valid[~grid.is_pos].any(axis=0)
    else:
        defined = valid.any(axis=0)
    keep = [v for v, ok in zip(grid.variants, defined) if ok]
    if len(keep) < 2:
        raise NotApplicable("a swing needs at least two prompt variants with valid answers")
    return grid.subset(keep)


def _swing_verdict(grid: Grid, flag: np.ndarray, groups: dict, thresholds: Thresholds, *,
                   metric: str, limit: float, description: str, details: dict) -> Verdict:
    """Noise-free swing of a per-variant rate; bounds from the scale pivot (stats/swing.py)."""
    weights = weights_for(grid, thresholds.bootstrap_replicates, thresholds.seed)
    labels = grid.is_pos.astype(int) if len(groups) > 1 else np.zeros(grid.n_images, dtype=int)
    rates, s2, tau2 = variance_components(flag, grid.valid, labels, groups, weights)
    k = len(grid.variants)
    noise = float(s2[0] - tau2[0])
    low, high = pivot_bounds(float(s2[0]), noise, s2[1:], thresholds.confidence)
    return Verdict(
        finding="prompt_sensitivity",
        metric=metric,
        value=float(swing_from_tau2(tau2[0], k)),
        ci_low=float(swing_from_tau2(low, k)),
        ci_high=float(swing_from_tau2(high, k)),
        threshold=float(limit),
        direction="le",
        confidence=thresholds.confidence,
        n_images=grid.n_images,
        description=description,
        details={
            **details,
            "observed_range": _r(observed_swing(rates[0])),
            "between_prompt_sd": _r(np.sqrt(max(float(tau2[0]), 0.0))),
            "noise_sd": _r(np.sqrt(max(noise, 0.0))),
            "n_variants": k,
            "per_variant": [{"variant": v, "value": _r(rates[0, j])} for j, v in enumerate(grid.variants)],
        },
    )


def _require_answers(answered: np.ndarray, what: str) -> None:
    """Invariance is vacuous for a model that never answers: a skip, never a pass."""
    if not answered.any():
        raise NotApplicable(f"the model answered none of {what} (all refused or errors), so invariance cannot be judged")


def accuracy_swing(grid: Grid, thresholds: Thresholds) -> Verdict:
    _require_answers(grid.answered, "the prompts")
    grid = _defined_variants(grid, by_class=True)
    complete = grid.valid.all(axis=1)
    q, p, df = cochrans_q(grid.correct[complete].astype(int)) if complete.sum() > 1 else (float("nan"), float("nan"), 0)
    limit = thresholds.prompt_sensitivity["max_true_accuracy_swing"]
    return _swing_verdict(
        grid, grid.correct, {0: 0.5, 1: 0.5}, thresholds,
        metric="accuracy_swing",
        limit=limit,
        description=("the true balanced accuracy must not swing across harmless prompt variants "
                     f"by more than {limit:.2f} (sampling noise removed)"),
        details={"cochran_q": _r(q), "cochran_p": _r(p), "cochran_df": int(df)},
    )


def refusal_swing(grid: Grid, thresholds: Thresholds) -> Verdict:
    grid = _defined_variants(grid, by_class=False)
    limit = thresholds.prompt_sensitivity["max_true_refusal_swing"]
    return _swing_verdict(
        grid, grid.refused, {0: 1.0}, thresholds,
        metric="refusal_swing",
        limit=limit,
        description=("the true refusal rate must not swing across harmless prompt variants "
                     f"by more than {limit:.2f} (sampling noise removed)"),
        details={},
    )


def perturbation_pairs(variants: list[PromptVariant], family: str) -> list[tuple[str, str]]:
    """(base, perturbed) variant keys paired under one perturbation family."""
    present = {v.key for v in variants}
    pairs = []
    for v in variants:
        for fam, base in v.perturbs:
            if fam == family and base in present:
                pairs.append((base, v.key))
    return pairs


def _pairs_of(grid: Grid, variants: list[PromptVariant], family: str) -> list[tuple[str, str]]:
    pairs = perturbation_pairs([v for v in variants if v.key in grid.variants], family)
    if not pairs:
        raise NotApplicable(f"no prompt variant pair of the '{family}' family among the selected variants")
    return pairs


def answer_invariance(grid: Grid, variants: list[PromptVariant], family: str, thresholds: Thresholds) -> Verdict:
    """The test of one perturbation family: a hint must not hurt; any other change must not flip answers."""
    if family in DIRECTIONAL_FAMILIES:
        return hint_effect(grid, variants, family, thresholds)
    return flip_rate(grid, variants, family, thresholds)


def _mean_over_pairs(per_pair: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(per_pair, axis=1)


def flip_rate(grid: Grid, variants: list[PromptVariant], family: str, thresholds: Thresholds) -> Verdict:
    pairs = _pairs_of(grid, variants, family)
    a = np.stack([grid.column(base) for base, _ in pairs], axis=1)
    b = np.stack([grid.column(pert) for _, pert in pairs], axis=1)
    valid = (a != "error") & (b != "error")
    answered = valid & (a != "refused") & (b != "refused")
    _require_answers(answered, f"the '{family}' prompt pairs in both variants")
    weights = weights_for(grid, thresholds.bootstrap_replicates, thresholds.seed)
    per_pair = grid_rate(answered & (a != b), answered, weights)
    refusal_change = grid_rate(valid & ((a == "refused") != (b == "refused")), valid, weights[:1])
    rate = _mean_over_pairs(per_pair)
    jack = _mean_over_pairs(grid_rate(answered & (a != b), answered, jackknife_weights(grid.n_images)))
    return verdict_from_replicates(
        finding="prompt_sensitivity",
        metric="flip_rate",
        point=float(rate[0]),
        replicates=rate[1:],
        jackknife=jack,
        threshold=thresholds.prompt_sensitivity["max_flip_rate"],
        direction="le",
        confidence=thresholds.confidence,
        n_images=grid.n_images,
        description=f"answers must not change under the harmless '{family}' perturbation",
        details={
            "family": family,
            "refusal_change_rate": _r(_mean_over_pairs(refusal_change)[0]),
            "answered_pairs": int(answered.sum()),
            "pairs": [{"base": x, "perturbed": y, "flip_rate": _r(per_pair[0, j]),
                       "refusal_change_rate": _r(refusal_change[0, j])} for j, (x, y) in enumerate(pairs)],
        },
    )


def hint_effect(grid: Grid, variants: list[PromptVariant], family: str, thresholds: Thresholds) -> Verdict:
    """Δ = BA(with the hint) − BA(without), mean over the family's pairs, paired by image."""
    pairs = _pairs_of(grid, variants, family)
    used = [grid.variants.index(v) for pair in pairs for v in pair]
    _require_answers(grid.answered[:, used], f"the '{family}' prompt pairs")
    column = {v: j for j, v in enumerate(grid.variants)}

    def effect(weights):
        ba = grid_balanced_accuracy(grid.correct, grid.valid, grid.is_pos, weights)
        return ba, np.stack([ba[:, column[hinted]] - ba[:, column[base]] for base, hinted in pairs], axis=1)

    ba, per_pair = effect(weights_for(grid, thresholds.bootstrap_replicates, thresholds.seed))
    delta = _mean_over_pairs(per_pair)
    jack = _mean_over_pairs(effect(jackknife_weights(grid.n_images))[1])
    margin = thresholds.prompt_sensitivity["max_hint_harm"]
    return verdict_from_replicates(
        finding="prompt_sensitivity",
        metric="hint_effect",
        point=float(delta[0]),
        replicates=delta[1:],
        jackknife=jack,
        threshold=-float(margin),
        direction="ge",
        confidence=thresholds.confidence,
        n_images=grid.n_images,
        description=(f"the '{family}' addition must not hurt: balanced accuracy with it may fall at most "
                     f"{margin:.2f} below the same prompt without it"),
        details={
            "family": family,
            "pairs": [{"base": x, "perturbed": y, "base_ba": _r(ba[0, column[x]]), "perturbed_ba": _r(ba[0, column[y]]),
                       "delta": _r(per_pair[0, j])} for j, (x, y) in enumerate(pairs)],
        },
    )


def _r(x) -> float | None:
    x = float(x)
    return None if np.isnan(x) else round(x, 4)
