"""Confidence bounds for a swing (max − min over prompt variants) that contain its estimate.

Why not the percentile bootstrap of max − min: a maximum of noisy estimates is biased
upwards, and its bootstrap replicates are biased upwards again, so the percentile
interval of a swing can lie entirely above the observed swing (a report reading
"0.06 [0.08, 0.20]"). The bounds here come from simultaneous bounds on every pairwise
difference instead:

    S = max_ij (m_i − m_j)   over ordered pairs of variants i != j,
    c = the `confidence` quantile over replicates of max_ij |(m*_i − m*_j) − (m_i − m_j)|,

and with probability about `confidence` every true difference lies within c of its
estimate, so the true swing lies in [S_hat − c, S_hat + c] (clipped at 0). Both bounds
are valid at that joint level, the interval always contains the estimate, and a
subject whose variants agree on every image (all differences constant across
replicates) gets c = 0. It is conservative when variants are many and independent (a
max over pairs), which suits a test that passes only when robustness is shown.
"""

from __future__ import annotations

import math
import warnings

import numpy as np


def swing(values: np.ndarray) -> np.ndarray:
    """max − min over the last axis, ignoring NaN (a variant undefined in that resample);
    NaN where no variant is defined."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows: NaN, without a warning
        values = np.asarray(values, dtype=float)
        return np.nanmax(values, axis=-1) - np.nanmin(values, axis=-1)


def pairwise_deviation(point: np.ndarray, replicates: np.ndarray) -> np.ndarray:
    """Per replicate: max over variant pairs of |(r_i − r_j) − (p_i − p_j)|, NaN-aware.

    `point` has shape (V,), `replicates` (B, V); returns shape (B,). A replicate in
    which fewer than two variants are defined has no pairs and gives NaN.
    """
    point = np.asarray(point, dtype=float)
    reps = np.asarray(replicates, dtype=float)
    centred = reps - point[None, :]  # (r_i − p_i); the pairwise deviation is a difference of these
    with np.errstate(invalid="ignore"):
        defined = ~np.isnan(centred)
        high = np.where(defined, centred, -np.inf).max(axis=1)
        low = np.where(defined, centred, np.inf).min(axis=1)
    out = high - low  # max_ij (c_i − c_j) = max c − min c, which is also max_ij |c_i − c_j|
    out[defined.sum(axis=1) < 2] = np.nan
    return out


def swing_bounds(point: np.ndarray, replicates: np.ndarray, confidence: float,
                 ceiling: float = math.inf) -> tuple[float, float]:
    """(lower, upper) bounds on the true swing at joint level `confidence` (module docstring).

    `ceiling` is the largest swing possible (1 for rates and balanced accuracies).
    """
    if not 0.0 < float(confidence) < 1.0:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence!r}")
    estimate = float(swing(np.asarray(point, dtype=float)[None, :])[0])
    deviation = pairwise_deviation(point, replicates)
    deviation = deviation[~np.isnan(deviation)]
    if math.isnan(estimate) or deviation.size == 0:
        return math.nan, math.nan
    c = float(np.quantile(deviation, confidence))
    return max(estimate - c, 0.0), min(estimate + c, ceiling)
