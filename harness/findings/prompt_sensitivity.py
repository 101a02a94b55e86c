"""Finding 3, prompt_sensitivity: do harmless prompt changes move the answers?

- accuracy swing: max − min balanced accuracy over variants (upper bound ≤ limit; the
  bounds are simultaneous bounds over all variant pairs, stats/swing.py);
  Cochran's Q over per-(image, variant) correctness is reported beside it.
- refusal swing: max − min refusal rate over variants (upper bound ≤ limit).
- answer invariance, per perturbation family: the flip rate, the share of images whose
  label-mapped outcome differs between the paired variants (upper bound ≤ limit).
CheckList type: invariance under a harmless change.
"""

from __future__ import annotations

import warnings

import numpy as np

from ..core import NotApplicable, PromptVariant, Thresholds
from ..stats.metrics import grid_balanced_accuracy, grid_rate
from ..stats.significance import cochrans_q
from ..stats.swing import swing as swing_of
from ..stats.swing import swing_bounds
from ..verdict import Verdict, verdict_from_replicates
from .grid import Grid, weights_for


def _swing_verdict(grid, values, thresholds, *, metric, limit, description, details) -> Verdict:
    """Swing = max − min over variants; bounds from simultaneous pairwise bounds (stats/swing.py)."""
    if len(grid.variants) < 2:
        raise NotApplicable("a swing needs at least two prompt variants")
    swing = swing_of(values)
    per_variant = [{"variant": v, "value": _r(values[0, j])} for j, v in enumerate(grid.variants)]
    return verdict_from_replicates(
        finding="prompt_sensitivity",
        metric=metric,
        point=float(swing[0]),
        replicates=swing[1:],
        bounds=swing_bounds(values[0], values[1:], thresholds.confidence, ceiling=1.0),  # rates: at most 1
        threshold=limit,
        direction="le",
        confidence=thresholds.confidence,
        n_images=grid.n_images,
        description=description,
        details={**details, "per_variant": per_variant},
    )


def _require_answers(answered: np.ndarray, what: str) -> None:
    """Invariance is vacuous for a model that never answers: a skip, never a pass."""
    if not answered.any():
        raise NotApplicable(f"the model answered none of {what} (all refused or errors), so invariance cannot be judged")


def accuracy_swing(grid: Grid, thresholds: Thresholds) -> Verdict:
    _require_answers(grid.valid & ~grid.refused, "the prompts")
    weights = weights_for(grid, thresholds.bootstrap_replicates, thresholds.seed)
    ba = grid_balanced_accuracy(grid.correct, grid.valid, grid.is_pos, weights)
    complete = grid.valid.all(axis=1)
    q, p, df = cochrans_q(grid.correct[complete].astype(int)) if complete.sum() > 1 else (float("nan"), float("nan"), 0)
    return _swing_verdict(
        grid, ba, thresholds,
        metric="accuracy_swing",
        limit=thresholds.prompt_sensitivity["max_accuracy_swing"],
        description="balanced accuracy must not swing across harmless prompt variants",
        details={"cochran_q": _r(q), "cochran_p": _r(p), "cochran_df": int(df)},
    )


def refusal_swing(grid: Grid, thresholds: Thresholds) -> Verdict:
    weights = weights_for(grid, thresholds.bootstrap_replicates, thresholds.seed)
    rates = grid_rate(grid.refused, grid.valid, weights)
    return _swing_verdict(
        grid, rates, thresholds,
        metric="refusal_swing",
        limit=thresholds.prompt_sensitivity["max_refusal_swing"],
        description="refusal rate must not swing across harmless prompt variants",
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


def flip_rate(grid: Grid, variants: list[PromptVariant], family: str, thresholds: Thresholds) -> Verdict:
    pairs = perturbation_pairs([v for v in variants if v.key in grid.variants], family)
    if not pairs:
        raise NotApplicable(f"no prompt variant pair of the '{family}' family among the selected variants")
    a = np.stack([grid.column(base) for base, _ in pairs], axis=1)
    b = np.stack([grid.column(pert) for _, pert in pairs], axis=1)
    valid = (a != "error") & (b != "error")
    _require_answers(valid & ((a != "refused") | (b != "refused")), f"the '{family}' prompt pairs")
    flips = (a != b) & valid
    weights = weights_for(grid, thresholds.bootstrap_replicates, thresholds.seed)
    per_pair = grid_rate(flips, valid, weights)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        rate = np.nanmean(per_pair, axis=1)
    return verdict_from_replicates(
        finding="prompt_sensitivity",
        metric="flip_rate",
        point=float(rate[0]),
        replicates=rate[1:],
        threshold=thresholds.prompt_sensitivity["max_flip_rate"],
        direction="le",
        confidence=thresholds.confidence,
        n_images=grid.n_images,
        description=f"answers must not change under the harmless '{family}' perturbation",
        details={
            "family": family,
            "pairs": [{"base": x, "perturbed": y, "flip_rate": _r(per_pair[0, j])} for j, (x, y) in enumerate(pairs)],
        },
    )


def _r(x) -> float | None:
    x = float(x)
    return None if np.isnan(x) else round(x, 4)
