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


JACKKNIFE_GROUPS = 200


def jackknife_weights(n_units: int, groups: int = JACKKNIFE_GROUPS) -> np.ndarray:
    """Leave-out weights: the jackknife as weight vectors, so any statistic computed from
    bootstrap weights gives its leave-out values too.

    Up to `groups` units: one row per unit, leaving it out (the ordinary jackknife). More
    units: `groups` rows, each leaving out every `groups`-th unit (a grouped jackknife),
    which estimates the same BCa acceleration (a skewness of summed influence values does
    not depend on how many units each group sums) at a fraction of the cost.
    """
    n = int(n_units)
    if n <= groups:
        return 1.0 - np.eye(n)
    weights = np.ones((groups, n))
    weights[np.arange(n) % groups, np.arange(n)] = 0.0
    return weights


def bca_bounds(point: float, replicates: np.ndarray, jackknife: np.ndarray, confidence: float) -> tuple[float, float]:
    """One-sided bias-corrected and accelerated (BCa) bootstrap bounds at `confidence`.

    Why not plain percentiles: a rate or a difference of rates near a threshold has a
    spread that grows with its level, so a sample whose estimate came out low also got
    too narrow a percentile interval; the simulated false passes at the threshold ran to
    8-10 % for a nominal 5 % (bench/calibration.py). BCa corrects the replicates' median
    bias (z0, from the share of replicates below the estimate) and this level-dependent
    spread (the acceleration a, from the skewness of the leave-one-image-out jackknife):
    each bound is the replicates' quantile at Phi(z0 + (z0 + z) / (1 − a (z0 + z))).
    Falls back to plain percentiles when the jackknife carries no spread.
    """
    if not 0.0 < float(confidence) < 1.0:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence!r}")
    values = _finite_replicates(replicates)
    jack = np.asarray(jackknife, dtype=float)
    jack = jack[~np.isnan(jack)]
    if values.size == 0 or math.isnan(float(point)):
        return math.nan, math.nan
    below = (np.sum(values < point) + 0.5 * np.sum(values == point)) / values.size
    below = min(max(below, 0.5 / values.size), 1.0 - 0.5 / values.size)
    z0 = float(norm.ppf(below))
    accel = 0.0
    if jack.size > 2:
        centred = jack.mean() - jack
        spread = float(np.sum(centred ** 2))
        if spread > 0.0:
            accel = float(np.sum(centred ** 3)) / (6.0 * spread ** 1.5)
    bounds = []
    for z in (float(norm.ppf(1.0 - confidence)), float(norm.ppf(confidence))):
        shifted = z0 + z
        denominator = 1.0 - accel * shifted
        level = float(norm.cdf(z0 + shifted / denominator)) if denominator > 0 else (1.0 if shifted > 0 else 0.0)
        bounds.append(float(np.quantile(values, min(max(level, 0.0), 1.0))))
    return bounds[0], bounds[1]


def recentred_bounds(point: float, replicates: np.ndarray, confidence: float) -> tuple[float, float]:
    """Percentile bounds shifted so the replicates' median sits on the point estimate.

    For statistics whose replicates are biased against the estimate by the resampling
    itself: a probe refitted on a bootstrap sample learns from about 63 % distinct
    images and scores lower than the probe fitted on the sample, so plain percentile
    bounds would sit too low (too strict for AUROC, too lenient for a gap). The shift
    removes that bias and keeps the replicates' spread and shape.
    """
    low, high = percentile_bounds(replicates, confidence)
    values = _finite_replicates(replicates)
    if values.size == 0 or math.isnan(float(point)):
        return math.nan, math.nan
    shift = float(point) - float(np.median(values))
    return low + shift, high + shift


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


DECIDING_POWER = 0.9  # "would likely decide it": the chance the suggested sample decides the case


def images_to_decide(point: float, bound: float, threshold: float, n_units: int, confidence: float,
                     power: float = DECIDING_POWER) -> int | None:
    """Rough number of units (images) at which `bound` would likely cross `threshold`.

    Labels an inconclusive verdict. `bound` is the bound that has to move (the passing
    one when the estimate passes, the other one when it fails); its distance to the
    estimate is that side's half-width h at the current z = z(confidence). Assuming the
    half-width shrinks as 1/sqrt(n) and the estimate stays put, the bound clears the
    threshold with probability `power` once h * (z + z_power) / z * sqrt(n_units / n)
    <= |point − threshold|. Using the bound actually in use (not a symmetric standard
    error) keeps the hint honest for skewed bounds such as the swings'. A planning hint,
    checked by bench/calibration.py, not a guarantee. Returns the total over all units
    (divide by the classes for a per-class figure); None when there is no finite answer.
    """
    if not 0.0 < float(confidence) < 1.0:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence!r}")
    gap = abs(float(point) - float(threshold))
    half = abs(float(bound) - float(point))
    if not (gap > 0.0 and half > 0.0) or not (math.isfinite(gap) and math.isfinite(half)):
        return None
    z = float(norm.ppf(confidence))
    ratio = half * (z + float(norm.ppf(power))) / z / gap
    # The tiny slack keeps float noise from rounding an exact integer up by one.
    return max(1, int(math.ceil(n_units * ratio * ratio - 1e-9)))
