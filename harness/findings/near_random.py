"""Finding 1, near_random: is balanced accuracy demonstrably above chance?

Balanced accuracy (refusals count wrong, errors excluded) is computed per prompt
variant and aggregated over the task's variants (mean by default, or median). The test passes
iff the one-sided lower bound of the aggregate is at least chance + min_margin.
CheckList type: minimum functionality.
"""

from __future__ import annotations

import numpy as np

from ..core import Thresholds
from ..stats.bootstrap import jackknife_weights, percentile_bounds
from ..stats.metrics import grid_balanced_accuracy, grid_rate
from ..verdict import Verdict, verdict_from_replicates
from .grid import Grid, weights_for

CHANCE = 0.5
# "max" was removed: a percentile bound of a maximum over prompts is biased upwards
# (false passes 33-100 % at the threshold); config/thresholds.py explains it to old files.
_AGGREGATES = {"mean": np.nanmean, "median": np.nanmedian}


def per_variant_ba(grid: Grid, weights: np.ndarray) -> np.ndarray:
    """(1 + B, k) balanced accuracy per replicate and variant; row 0 is the point estimate."""
    return grid_balanced_accuracy(grid.correct, grid.valid, grid.is_pos, weights)


def aggregate(values: np.ndarray, how: str) -> np.ndarray:
    """Aggregate over variants (last axis), ignoring variants with no valid answer."""
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return _AGGREGATES[how](values, axis=-1)


def per_variant_rows(grid: Grid, ba: np.ndarray, refusal: np.ndarray, confidence: float) -> list[dict]:
    """Per-prompt numbers for the report: point, one-sided bounds, refusal rate."""
    rows = []
    for j, variant in enumerate(grid.variants):
        low, high = percentile_bounds(ba[1:, j], confidence)
        rows.append(
            {
                "variant": variant,
                "value": _r(ba[0, j]),
                "low": _r(low),
                "high": _r(high),
                "refusal_rate": _r(refusal[0, j]),
            }
        )
    return rows


def evaluate(grid: Grid, thresholds: Thresholds) -> Verdict:
    cfg = thresholds.near_random
    weights = weights_for(grid, thresholds.bootstrap_replicates, thresholds.seed)
    ba = per_variant_ba(grid, weights)
    refusal = grid_rate(grid.refused, grid.valid, weights)
    agg = aggregate(ba, cfg["aggregate"])
    jack = aggregate(per_variant_ba(grid, jackknife_weights(grid.n_images)), cfg["aggregate"])
    threshold = CHANCE + cfg["min_margin"]
    return verdict_from_replicates(
        finding="near_random",
        metric=f"balanced_accuracy_{cfg['aggregate']}",
        point=float(agg[0]),
        replicates=agg[1:],
        jackknife=jack,
        threshold=threshold,
        direction="ge",
        confidence=thresholds.confidence,
        n_images=grid.n_images,
        description=f"balanced accuracy ({cfg['aggregate']} over {len(grid.variants)} prompts) must clear chance + {cfg['min_margin']:.2f}",
        details={
            "chance": CHANCE,
            "aggregate": cfg["aggregate"],
            "error_rate": _r(grid.error_rate),
            "refusal_rate": _r(float(np.nanmean(refusal[0]))) if refusal.size else None,
            "per_variant": per_variant_rows(grid, ba, refusal, thresholds.confidence),
        },
    )


def _r(x) -> float | None:
    x = float(x)
    return None if np.isnan(x) else round(x, 4)
