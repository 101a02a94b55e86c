"""Binomial confidence intervals for proportions (error rates, refusal rates, accuracies).

Verdicts compare a confidence *bound* with a threshold (SPEC §2), and most thresholds are
one-sided ("the lower bound must reach X"). So every interval here takes `sided`:

- ``sided="two"``: the usual two-sided interval; each bound misses with probability
  (1 - confidence) / 2.
- ``sided="one"``: each returned bound is a one-sided bound at `confidence`; the caller
  uses whichever side its verdict needs. The pair is then a two-sided interval at
  ``2 * confidence - 1``.

Only scipy is used at run time; statsmodels is a test-only reference.
"""

from __future__ import annotations

import math

from scipy.stats import beta, norm

SIDES: tuple[str, ...] = ("one", "two")


def _check_confidence(confidence: float, sided: str) -> None:
    if sided not in SIDES:
        raise ValueError(f"sided must be 'one' or 'two', got {sided!r}")
    if not (0.0 < float(confidence) < 1.0) or math.isnan(float(confidence)):
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence!r}")


def _check_counts(k: int, n: int) -> None:
    if int(k) != k or int(n) != n:
        raise ValueError(f"k and n must be whole numbers, got k={k!r}, n={n!r}")
    if n < 0 or k < 0 or k > n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")


def tail_probability(confidence: float, sided: str) -> float:
    """Probability that a single bound misses: the alpha each side is computed at."""
    _check_confidence(confidence, sided)
    alpha = 1.0 - float(confidence)
    return alpha if sided == "one" else alpha / 2.0


def z_value(confidence: float, sided: str = "two") -> float:
    """Standard normal quantile behind a bound at `confidence` (1.645 one-sided at 0.95, 1.96 two-sided)."""
    return float(norm.ppf(1.0 - tail_probability(confidence, sided)))


def wilson_interval(k: int, n: int, confidence: float = 0.95, sided: str = "two") -> tuple[float, float]:
    """Wilson score interval for k successes out of n.

    Preferred over the Wald interval because it stays inside [0, 1] and keeps close to
    nominal coverage at the small n (tens of images) and extreme rates (0 errors) this
    suite sees. n == 0 carries no information, hence (0, 1).
    """
    _check_counts(k, n)
    z = z_value(confidence, sided)
    if n == 0:
        return 0.0, 1.0
    z2 = z * z
    denom = n + z2
    centre = (k + z2 / 2.0) / denom
    half = z / denom * math.sqrt(k * (n - k) / n + z2 / 4.0)
    low = 0.0 if k == 0 else max(0.0, centre - half)
    high = 1.0 if k == n else min(1.0, centre + half)
    return float(low), float(high)


def clopper_pearson_interval(
    k: int, n: int, confidence: float = 0.95, sided: str = "two"
) -> tuple[float, float]:
    """Exact (Clopper-Pearson) interval from beta quantiles.

    Conservative: coverage is at least `confidence` for every true rate, which is what a
    gate that must not pass on missing evidence wants (e.g. the error-rate check).
    """
    _check_counts(k, n)
    alpha = tail_probability(confidence, sided)
    if n == 0:
        return 0.0, 1.0
    low = 0.0 if k == 0 else float(beta.ppf(alpha, k, n - k + 1))
    high = 1.0 if k == n else float(beta.ppf(1.0 - alpha, k + 1, n - k))
    return low, high
