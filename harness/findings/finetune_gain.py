"""Finding 2, finetune_gain: is the medical fine-tune demonstrably better than its base?

Δ = BA(model) − BA(base), where BA is balanced accuracy (refusals wrong, errors
excluded) averaged over prompt variants. The two models are compared on the same
images and the same prompts, and the bootstrap is paired: one set of image weights
drives both models' replicates, so the shared difficulty of an image cancels in Δ
instead of widening its interval.

Rules (SPEC §4.2):
- superiority (the usual case): passes iff the lower bound of Δ > min_gain. Strict,
  so a fine-tune identical to its base (Δ ≡ 0) fails: "no worse" is not "better".
- non-inferiority, when the base already sits at the ceiling (base BA ≥ ceiling):
  there is no room to be demonstrably better, so the fine-tune passes iff the lower
  bound of Δ ≥ −noninferiority_margin (it must not have lost ground).

Bounds: plain one-sided percentile bounds of the paired replicates. Unlike the other
findings (BCa, stats/bootstrap.py), a gain sits at the threshold when the two models are
equally good, where its distribution is symmetric: the BCa acceleration estimated from
the jackknife is then only noise, and it raised the simulated false passes at Δ = 0 from
5.3 % (percentile) to 6.2 % (bench/calibration.py).

McNemar's test on per-(image, prompt) correctness is reported beside the verdict, clustered
by image (Durkalski's statistic): the 12 prompts of one image are not 12 independent
pairs, and the exact test that treated them so gave p < 0.05 in 39–58 % of runs for
two equally good models.
"""

from __future__ import annotations

import warnings

import numpy as np

from ..core import HarnessError, Thresholds
from ..stats.metrics import grid_balanced_accuracy
from ..stats.significance import mcnemar_clustered
from ..verdict import Verdict, verdict_from_replicates
from .grid import Grid, weights_for
from .prompt_sensitivity import NotApplicable


# -- pairing -------------------------------------------------------------------------
def take_images(grid: Grid, image_ids: list[str]) -> Grid:
    """The rows of `grid` for `image_ids`, in that order (every id must be present)."""
    index = {image: i for i, image in enumerate(grid.image_ids)}
    rows = np.array([index[image] for image in image_ids], dtype=int)
    outcome = grid.outcome[rows] if rows.size else grid.outcome[:0]
    return Grid(list(image_ids), list(grid.variants), grid.is_pos[rows], outcome)


def common_image_ids(first: list[str], second: list[str]) -> list[str]:
    """Ids present in both lists, in the first list's order (pairing needs one order)."""
    present = set(second)
    return [image for image in first if image in present]


def check_same_labels(a: Grid, b: Grid) -> None:
    """Two grids paired by image must agree on each image's class; otherwise the data are wrong."""
    differ = [image for image, x, y in zip(a.image_ids, a.is_pos, b.is_pos) if bool(x) != bool(y)]
    if differ:
        raise HarnessError(f"{len(differ)} image(s) carry different labels in the paired grids, e.g. {differ[:3]}")


def align_images(a: Grid, b: Grid) -> tuple[Grid, Grid]:
    """Restrict both grids to their common images, in one order; NotApplicable if none."""
    ids = common_image_ids(a.image_ids, b.image_ids)
    if not ids:
        raise NotApplicable("the two grids have no image in common, so nothing can be paired")
    a, b = take_images(a, ids), take_images(b, ids)
    check_same_labels(a, b)
    return a, b


def align(model: Grid, base: Grid) -> tuple[Grid, Grid]:
    """Pair model and base by image and by prompt: common images, common variants."""
    variants = [v for v in model.variants if v in set(base.variants)]
    if not variants:
        raise NotApplicable("the model and its base share no prompt variant, so nothing can be paired")
    model, base = align_images(model.subset(variants), base.subset(variants))
    return model, base


# -- statistics ----------------------------------------------------------------------
def mean_ba(grid: Grid, weights: np.ndarray, refusal_credit: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(per-variant BA (1+B, k), mean over variants (1+B,)); variants with no valid answer are ignored.

    A refusal scores `refusal_credit` (0: wrong, the rule of the absolute findings;
    0.5: a coin flip, the rule of the gap findings)."""
    ba = grid_balanced_accuracy(grid.correct, grid.valid, grid.is_pos, weights, grid.refused, refusal_credit)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return ba, np.nanmean(ba, axis=1)


def discordant_counts(model: Grid, base: Grid) -> tuple[np.ndarray, np.ndarray]:
    """Per image: McNemar's b (prompts where the model is right and the base wrong) and c
    (the reverse), over cells valid in both."""
    both = model.valid & base.valid
    b = np.sum(both & model.correct & ~base.correct, axis=1)
    c = np.sum(both & ~model.correct & base.correct, axis=1)
    return b, c


def _rule(base_ba: float, cfg: dict) -> tuple[str, float, bool]:
    """(rule name, threshold, strict) — non-inferiority once the base is at the ceiling."""
    if not np.isnan(base_ba) and base_ba >= cfg["ceiling"]:
        return "non-inferiority", -float(cfg["noninferiority_margin"]), False
    return "superiority", float(cfg["min_gain"]), True


def _description(rule: str, cfg: dict) -> str:
    if rule == "non-inferiority":
        return (
            f"the base is at the ceiling (balanced accuracy ≥ {cfg['ceiling']:.2f}), so the fine-tune "
            f"must be non-inferior: Δ may lose at most {cfg['noninferiority_margin']:.2f} (non-inferiority rule)"
        )
    return f"the fine-tune must beat its base: Δ balanced accuracy must exceed {cfg['min_gain']:.2f} (superiority rule)"


def evaluate(model_grid: Grid, base_grid: Grid, thresholds: Thresholds) -> Verdict:
    """Verdict on Δ = BA(model) − BA(base), paired by image and prompt."""
    cfg = thresholds.finetune_gain
    model, base = align(model_grid, base_grid)
    weights = weights_for(model, thresholds.bootstrap_replicates, thresholds.seed)
    model_v, model_ba = mean_ba(model, weights)
    base_v, base_ba = mean_ba(base, weights)
    delta = model_ba - base_ba

    rule, threshold, strict = _rule(float(base_ba[0]), cfg)
    b, c = discordant_counts(model, base)
    statistic, p_value = mcnemar_clustered(b, c)
    return verdict_from_replicates(
        finding="finetune_gain",
        metric="balanced_accuracy_gain",
        point=float(delta[0]),
        replicates=delta[1:],
        threshold=threshold,
        direction="ge",
        confidence=thresholds.confidence,
        n_images=model.n_images,
        description=_description(rule, cfg),
        strict=strict,
        details={
            "rule": rule,
            "model_ba": _r(model_ba[0]),
            "base_ba": _r(base_ba[0]),
            "mcnemar_b": int(b.sum()),
            "mcnemar_c": int(c.sum()),
            "mcnemar_clustered_chi2": _r(statistic),
            "mcnemar_p": float(p_value),  # clustered by image; unrounded: small p-values matter
            "n_variants": len(model.variants),
            "images_only_in_model": len(model_grid.image_ids) - model.n_images,
            "images_only_in_base": len(base_grid.image_ids) - model.n_images,
            "per_variant": [
                {"variant": v, "model": _r(model_v[0, j]), "base": _r(base_v[0, j]),
                 "delta": _r(model_v[0, j] - base_v[0, j])}
                for j, v in enumerate(model.variants)
            ],
        },
    )


def _r(x) -> float | None:
    x = float(x)
    return None if np.isnan(x) else round(x, 4)
