"""Paired significance tests reported beside the bootstrap verdicts.

The verdicts themselves rest on bootstrap bounds; these classic tests are reported
because reviewers expect them: McNemar for the fine-tune gain (model vs base on the same
image and prompt; clustered by image, since the prompts of one image are correlated)
and Cochran's Q for "do prompt variants differ at all".
Both take per-item correctness, so callers drop items with an error in any arm first.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import chi2


def mcnemar_clustered(b: np.ndarray, c: np.ndarray) -> tuple[float, float]:
    """McNemar's test for clustered pairs (Durkalski et al. 2003): (chi-square statistic, p-value).

    b_i, c_i: the discordant counts within cluster i (here: the prompts of image i
    where the first model is right and the second wrong, and the reverse). With
    d_i = b_i − c_i, X^2 = (sum d_i)^2 / sum d_i^2 on 1 degree of freedom: the clusters
    are independent, the pairs inside one are not. With clusters of one pair it is the
    usual McNemar chi-square (b − c)^2 / (b + c). No discordant pair: (0, 1).
    """
    b = np.asarray(b, dtype=float)
    c = np.asarray(c, dtype=float)
    if b.shape != c.shape or b.ndim != 1:
        raise ValueError(f"b and c must be 1-d arrays of one length, got {b.shape} and {c.shape}")
    if np.any(b < 0) or np.any(c < 0) or np.any(b != np.round(b)) or np.any(c != np.round(c)):
        raise ValueError("discordant counts must be whole numbers >= 0")
    d = b - c
    denom = float(np.sum(d * d))
    if denom == 0.0:
        return 0.0, 1.0
    statistic = float(np.sum(d)) ** 2 / denom
    return statistic, float(chi2.sf(statistic, 1))


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
