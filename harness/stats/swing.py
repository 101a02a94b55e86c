"""The swing of a rate over prompt variants, with the within-prompt sampling noise removed.

Why not the observed max − min: each variant's rate is estimated from the same n
images, so even a model whose true rate is identical under every prompt shows an
observed range of several sampling standard errors (the maximum of 12 noisy numbers
minus their minimum). At 50 images per class, with a few per cent of answers changing
between prompts, a robust model's observed accuracy range was about 0.05 and the
simultaneous bound added as much again: the gate failed a robust model on most runs.

The estimand here is the spread of the *true* per-variant rates. A method-of-moments
(random-effects / two-way ANOVA) estimate of their between-variant variance,

    tau^2 = s^2(m) − (1 / (K − 1)) · sum_j Var(m_j − mean(m)),

subtracts from the observed variance s^2 of the K variant rates m_j the part that
sampling noise alone would produce. The noise term is estimated from the same images,
paired: images are independent, the variants of one image are not, so the variance of
each variant's *contrast* with the mean comes from per-image influence values (the
delta method for a ratio of weighted sums, with the n / (n − 1) small-sample factor).
It is unbiased for tau^2 up to the ratio estimator's O(1/n^2) terms, so a model whose
prompts agree has an estimate centred on 0 however many variants there are.

To keep the threshold in rate points, the reported swing is d2(K) · tau, where d2(K)
is the expected range of K standard normal draws (3.26 for K = 12): the max − min that
K prompts with this true spread typically span. For prompts whose true rates are spread
evenly over a range R it is about 1.07 R; for a single outlying prompt about 0.94 R.

Bounds come from the paired image bootstrap with a scale pivot. The observed variance
has expectation tau^2 + nu (nu: the noise part) and, like a (noncentral) chi-square,
a spread proportional to its level; in the bootstrap world the true spread is the
observed s^2 (the sample is the population there), so the replicate errors
delta_b = log(s*_b^2) − log(s^2 + nu) estimate the distribution of
log(s^2) − log(tau^2 + nu), and tau^2 <= s^2 · exp(−quantile(delta, 1 − c)) − nu at
confidence c. A plain (additive) pivot under-covered: the replicates' spread grows with
the estimate, so a sample whose spread came out low also got too narrow a bound (false
passes 0.17–0.22 at the threshold in simulation, against 0.02–0.08 with the scale
pivot). bench/calibration.py measures what this gives: false passes at the threshold,
passes of robust subjects, failures of fragile ones.
"""

from __future__ import annotations

import math
import warnings
from functools import lru_cache

import numpy as np
from scipy import integrate
from scipy.stats import norm


def observed_swing(values: np.ndarray) -> np.ndarray:
    """max − min over the last axis, ignoring NaN; NaN where no variant is defined (descriptive only)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        values = np.asarray(values, dtype=float)
        return np.nanmax(values, axis=-1) - np.nanmin(values, axis=-1)


@lru_cache(maxsize=64)
def expected_range(k: int) -> float:
    """d2(k): the expected max − min of k independent standard normal draws (d2(2) = 2/sqrt(pi))."""
    if k < 2:
        raise ValueError(f"a range needs at least two variants, got {k}")

    def integrand(x: float) -> float:
        return 1.0 - norm.cdf(x) ** k - norm.sf(x) ** k

    value, _ = integrate.quad(integrand, -12.0, 12.0, limit=200)
    return float(value)


def _group_terms(flag: np.ndarray, valid: np.ndarray, w: np.ndarray):
    """For one group of images: rates a (B, K) and the two noise sums (B,) of the module docstring.

    With influence values phi_ij = v_ij (f_ij − a_j) / N_j (f: the flag, v: valid, N_j the
    valid weight of variant j): own = sum_i w_i sum_j phi_ij^2 (a binomial variance per
    variant) and cross = sum_i w_i (sum_j phi_ij)^2. Without error cells N_j = N for every
    j and cross needs only each image's row total F_i = sum_j f_ij; with error cells it
    needs the K x K cross moments of the valid flags.
    """
    f = (flag & valid).astype(float)
    v = valid.astype(float)
    n, k = v.shape
    if valid.all():
        F = f.sum(axis=1)
        sums = w @ np.concatenate([f, F[:, None], (F * F)[:, None]], axis=1)
        S, sum_F, sum_F2 = sums[:, :k], sums[:, k], sums[:, k + 1]
        N = w.sum(axis=1)[:, None]
        a = S / N
        A = a.sum(axis=1)
        W = N[:, 0]
        cross = (sum_F2 - 2.0 * A * sum_F + A * A * W) / (W * W)
        own = np.sum(a * (1.0 - a) / N, axis=1)
        return a, own, cross
    b = w.shape[0]
    vv = (v[:, :, None] * v[:, None, :]).reshape(n, k * k)
    fv = (f[:, :, None] * v[:, None, :]).reshape(n, k * k)  # f_j v_k (f_j already implies v_j)
    ff = (f[:, :, None] * f[:, None, :]).reshape(n, k * k)
    big = w @ np.concatenate([v, f, ff, fv, vv], axis=1)
    N, S = big[:, :k], big[:, k:2 * k]
    P, Q, R = (big[:, 2 * k + i * k * k: 2 * k + (i + 1) * k * k].reshape(b, k, k) for i in range(3))
    a = S / N
    own = np.sum(a * (1.0 - a) / N, axis=1)
    # M_jk = sum_i w_i v_ij v_ik (f_ij − a_j)(f_ik − a_k) = P_jk − a_k Q_jk − a_j Q_kj + a_j a_k R_jk
    M = P - a[:, None, :] * Q - a[:, :, None] * np.swapaxes(Q, 1, 2) + a[:, :, None] * a[:, None, :] * R
    cross = np.sum(M / (N[:, :, None] * N[:, None, :]), axis=(1, 2))
    return a, own, cross


def variance_components(flag, valid, groups, group_weights, weights) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per replicate: (variant rates m (B, K), observed variance s^2 (B,), debiased tau^2 (B,)).

    flag, valid: (n, K) booleans (e.g. correct / refused, and not-an-error). groups: (n,)
    integer group of each image (the class for balanced accuracy; one group for a plain
    rate); group_weights: {group: alpha} so that m_j = sum_g alpha_g * rate_gj. weights:
    (B, n) bootstrap counts (row of ones = the point estimate). Replicates in which a
    variant has no valid cell in some group give NaN.
    """
    flag = np.asarray(flag, dtype=bool)
    valid = np.asarray(valid, dtype=bool)
    groups = np.asarray(groups)
    w = np.asarray(weights, dtype=float)
    k = flag.shape[1]
    m = np.zeros((w.shape[0], k))
    noise = np.zeros(w.shape[0])
    with np.errstate(invalid="ignore", divide="ignore"):
        for g, alpha in group_weights.items():
            rows = groups == g
            n_g = int(rows.sum())
            if n_g < 2:
                m[:] = np.nan
                continue
            a, own, cross = _group_terms(flag[rows], valid[rows], w[:, rows])
            m += alpha * a
            size = w[:, rows].sum(axis=1)  # the group's size in each replicate (constant when stratified)
            noise += alpha * alpha * size / (size - 1.0) * (own - cross / k)
        centred = m - m.mean(axis=1, keepdims=True)
        s2 = np.sum(centred * centred, axis=1) / (k - 1)
        tau2 = s2 - noise / (k - 1)
    return m, s2, tau2


def swing_from_tau2(tau2, k: int, ceiling: float = 1.0):
    """The reported swing d2(K) · sqrt(max(tau^2, 0)), capped at `ceiling`."""
    return np.minimum(expected_range(k) * np.sqrt(np.maximum(np.asarray(tau2, dtype=float), 0.0)), ceiling)


_EXACT = 1e-12  # variances below this are rounding error: the variant rates are equal


def pivot_bounds(point_s2: float, noise: float, replicate_s2: np.ndarray, confidence: float) -> tuple[float, float]:
    """(lower, upper) bounds on tau^2 from a scale pivot; see the module docstring.

    point_s2: the observed variance s^2 of the variant rates; noise: its estimated
    sampling part (s^2 − tau^2 at the point estimate); replicate_s2: s^2 in each
    bootstrap replicate. E[s^2] = tau^2 + noise, and in the bootstrap world the
    expectation is point_s2 + noise, so log(s*^2) − log(point_s2 + noise) mimics
    log(s^2) − log(tau^2 + noise). A quarter of the noise is added inside both
    logarithms: a replicate that happens to hold none of the few images on which the
    variants differ has s*^2 = 0, and an unshifted logarithm would turn that into an
    infinite bound for a model that is nearly perfectly consistent.
    """
    if not 0.0 < float(confidence) < 1.0:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence!r}")
    reps = np.asarray(replicate_s2, dtype=float)
    reps = reps[~np.isnan(reps)]
    if reps.size == 0 or not (math.isfinite(point_s2) and math.isfinite(noise)):
        return math.nan, math.nan
    noise = max(noise, 0.0)
    if point_s2 <= _EXACT:
        # every variant rate equal in the sample: no level to scale. Conservatively, all the
        # spread the replicates show could be real (0 when the variants agree on every image).
        upper = float(np.quantile(reps, confidence))
        return 0.0, upper if upper > _EXACT else 0.0
    shift = noise / 4.0  # keeps the logarithm finite for a replicate with no spread at all
    with np.errstate(divide="ignore"):  # noise 0 and a replicate without spread: -inf, an infinite bound
        errors = np.log(np.maximum(reps, 0.0) + shift) - math.log(point_s2 + noise + shift)
    low_q, high_q = np.quantile(errors, [1.0 - confidence, confidence])
    level = point_s2 + shift
    return float(level * math.exp(-high_q) - noise - shift), float(level * math.exp(-low_q) - noise - shift)
