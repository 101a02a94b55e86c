"""Image-level bootstrap: resampling weights, percentile bounds, sample-size hints.

The resampling unit is the image (SPEC §2): every prompt variant of one image is asked
about the same picture, so their answers are correlated and must move together. Rather
than materialising resampled tables, a replicate is a vector of counts (how often each
image was drawn); statistics then become weighted sums, which the grid metrics compute
for all replicates at once with one matrix product.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import norm


def _multinomial_counts(rng: np.random.Generator, size: int, replicates: int) -> np.ndarray:
    """Counts of `size` uniform draws with replacement from `size` units, per replicate."""
    if size == 0:
        return np.zeros((replicates, 0), dtype=np.int64)
    return rng.multinomial(size, np.full(size, 1.0 / size), size=replicates).astype(np.int64)


def bootstrap_weights(
    n_units: int, replicates: int, seed: int, strata: np.ndarray | None = None
) -> np.ndarray:
    """Draw `replicates` bootstrap resamples of `n_units` units as a (replicates, n_units) count matrix.

    Row b, column i = how many times unit i appears in replicate b; each row sums to
    n_units. The generator is seeded so verdicts are reproducible (thresholds.toml fixes
    the seed).

    With `strata` (one label per unit, e.g. each image's class), units are resampled
    within their stratum, so every replicate keeps each stratum's size. Balanced
    accuracy needs both classes present in every replicate; an unstratified resample of
    a small set can drop one and make the replicate undefined. Strata are visited in
    sorted label order so the draw does not depend on the order labels first appear.
    """
    n_units, replicates = int(n_units), int(replicates)
    if n_units < 0 or replicates < 0:
        raise ValueError(f"n_units and replicates must be >= 0, got {n_units}, {replicates}")
    rng = np.random.default_rng(seed)
    if strata is None:
        return _multinomial_counts(rng, n_units, replicates)
    strata = np.asarray(strata)
    if strata.shape != (n_units,):
        raise ValueError(f"strata must have shape ({n_units},), got {strata.shape}")
    weights = np.zeros((replicates, n_units), dtype=np.int64)
    for label in np.unique(strata):
        members = np.flatnonzero(strata == label)
        weights[:, members] = _multinomial_counts(rng, members.size, replicates)
    return weights


def _finite_replicates(replicates: np.ndarray) -> np.ndarray:
    values = np.asarray(replicates, dtype=float)
    if values.ndim != 1:
        raise ValueError(f"replicates must be one-dimensional, got shape {values.shape}")
    return values[~np.isnan(values)]


def percentile_bounds(replicates: np.ndarray, confidence: float) -> tuple[float, float]:
    """One-sided percentile bounds at `confidence`: (quantile(1 - c), quantile(c)).

    Each bound is a one-sided bound on its own (a verdict uses the side it needs); the
    pair is a two-sided interval at 2c - 1. NaN replicates (a statistic undefined in
    that resample) are dropped rather than allowed to poison the quantiles; if every
    replicate is NaN there is no bound: (nan, nan).
    """
    if not 0.0 < float(confidence) < 1.0:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence!r}")
    values = _finite_replicates(replicates)
    if values.size == 0:
        return math.nan, math.nan
    low, high = np.quantile(values, [1.0 - confidence, confidence])
    return float(low), float(high)


def bootstrap_se(replicates: np.ndarray) -> float:
    """Bootstrap standard error (NaN-ignoring standard deviation); nan if no finite replicate.

    Identical replicates give exactly 0 (np.std can return ~1e-17 from rounding, which
    would otherwise read as a real, tiny spread).
    """
    values = _finite_replicates(replicates)
    if values.size == 0:
        return math.nan
    if values.min() == values.max():
        return 0.0
    return float(np.std(values))


def images_needed(
    point: float, threshold: float, replicates: np.ndarray, n_units: int, confidence: float
) -> int | None:
    """Rough number of units (images) at which the one-sided bound would likely clear `threshold`.

    Used to label an inconclusive failure: the point estimate is on the passing side but
    the interval straddles the threshold. Assumes the standard error shrinks as
    1/sqrt(n) and the point estimate stays put, so the bound clears the threshold once
    z * se * sqrt(n_units / n) <= |point - threshold|, i.e.
    n = ceil(n_units * (z * se / |point - threshold|) ** 2).
    It is a planning hint, not a power calculation. Returns the total over all units;
    divide by the number of classes for a per-class figure when strata are balanced.
    None when no finite answer exists (point on the threshold, or se zero or undefined).
    """
    if not 0.0 < float(confidence) < 1.0:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence!r}")
    gap = abs(float(point) - float(threshold))
    se = bootstrap_se(replicates)
    if not (gap > 0.0) or not math.isfinite(gap) or not math.isfinite(se) or se <= 0.0:
        return None
    z = float(norm.ppf(confidence))
    ratio = z * se / gap
    # The tiny slack keeps float noise from rounding an exact integer up by one.
    return max(1, int(math.ceil(n_units * ratio * ratio - 1e-9)))
