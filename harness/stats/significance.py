"""Paired significance tests reported beside the bootstrap verdicts.

The verdicts themselves rest on bootstrap bounds; these classic tests are reported
because reviewers expect them: exact McNemar for the fine-tune gain (model vs base on
the same image and prompt) and Cochran's Q for "do prompt variants differ at all".
Both take per-item correctness, so callers drop items with an error in any arm first.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import binom, chi2


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts.

    b = items the first model got right and the second wrong, c = the reverse. Under
    the null each discordant item is a fair coin, so the p-value is twice the smaller
    binomial tail, capped at 1. Concordant items carry no information and are not
    needed. No discordant items: nothing to test, p = 1.
    """
    if int(b) != b or int(c) != c or b < 0 or c < 0:
        raise ValueError(f"discordant counts must be whole numbers >= 0, got b={b!r}, c={c!r}")
    n = int(b) + int(c)
    if n == 0:
        return 1.0
    return float(min(1.0, 2.0 * binom.cdf(min(int(b), int(c)), n, 0.5)))


def cochrans_q(x: np.ndarray) -> tuple[float, float, int]:
    """Cochran's Q test that k paired binary treatments share one success rate.

    x: (n_subjects, k_treatments) of 0/1 (here: images x prompt variants, 1 = correct).
    Returns (Q, p-value, df) with df = k - 1 and the chi-square approximation for p.
    Subjects that are constant across treatments do not affect Q; when every subject is
    constant the statistic is 0/0 and there is no evidence of a difference: (0, 1, k-1).
    """
    arr = np.asarray(x)
    if arr.ndim != 2:
        raise ValueError(f"x must be (n_subjects, k_treatments), got shape {arr.shape}")
    if arr.shape[1] < 2:
        raise ValueError(f"Cochran's Q needs at least 2 treatments, got {arr.shape[1]}")
    if not np.all((arr == 0) | (arr == 1)):
        raise ValueError("x must contain only 0/1 (or booleans)")
    arr = arr.astype(float)
    k = arr.shape[1]
    df = k - 1
    row = arr.sum(axis=1)
    col = arr.sum(axis=0)
    total = row.sum()
    denom = k * total - np.sum(row * row)
    if denom <= 0:
        return 0.0, 1.0, df
    q = df * (k * np.sum(col * col) - total * total) / denom
    return float(q), float(chi2.sf(q, df)), df
