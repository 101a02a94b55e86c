"""A cross-validated linear probe on image embeddings, refitted in every bootstrap replicate.

The probe asks "does the vision encoder separate the classes?" (SPEC §4.5). Two
things decide whether its answer can be trusted:

- Its bias. A fixed logistic regression fitted on 80 images of a 512-dimensional
  embedding scored 0.70 where the classes were separable at 0.94: it measured the
  sample size, not the encoder. So the probe here is regularised by the data: the
  embeddings are standardised and reduced to their leading principal components
  (label-free, so fitting them on all images leaks no label), and a ridge
  classifier on ±1 targets (a regularised Fisher discriminant) chooses its penalty by
  generalised cross-validation *inside each training fold*, from a grid. And the suite
  embeds more images than it asks questions about (`images_per_class`).
- Its interval. Resampling fixed out-of-fold scores leaves out how much the fitted
  probe itself changes from one sample to the next (its spread came out 0.052 where
  the AUROC's real spread across data sets was 0.076: false passes three times
  nominal). Here every bootstrap replicate refits the whole recipe: the folds are
  fixed per image (a resampled image's copies stay in one fold, so no copy is ever
  scored by a probe that saw it), and each replicate's folds are fitted on that
  replicate's weighted images, penalty choice included.

Refitting B × folds ridge probes is affordable because every fit is closed form and
they are all done at once: a batched eigendecomposition of the folds' weighted
covariance matrices, after which each penalty on the grid costs a few vector
operations. The cost is stated in docs/statistics.md (`probe_replicates`, default 400).
"""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import StratifiedKFold

PENALTY_GRID = np.logspace(-4.0, 2.0, 13)  # ridge penalties, relative to the mean eigenvalue


class TooFewForProbe(ValueError):
    """A class has too few images to cross-validate a probe (the check cannot be made)."""


def effective_folds(y: np.ndarray, folds: int) -> int:
    """Folds actually used: at most the smallest class count (stratification needs one per fold), at least 2."""
    y = np.asarray(y, dtype=bool)
    smallest = int(min(y.sum(), (~y).sum()))
    if smallest < 2:
        raise TooFewForProbe(
            f"a cross-validated probe needs at least 2 images of each class, got "
            f"{int(y.sum())} positive and {int((~y).sum())} negative"
        )
    return max(2, min(int(folds), smallest))


def fold_of(y: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Each image's fold (stratified, shuffled with the suite's seed)."""
    y = np.asarray(y, dtype=bool)
    k = effective_folds(y, folds)
    out = np.empty(y.shape[0], dtype=int)
    splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    for f, (_, test) in enumerate(splitter.split(np.zeros((y.shape[0], 1)), y)):
        out[test] = f
    return out


def components(X: np.ndarray, max_components: int) -> np.ndarray:
    """Standardised embeddings projected on their leading principal components (label-free).

    Constant features are dropped rather than divided by zero; at most `max_components`
    and at most n − 1 components are kept.
    """
    X = np.asarray(X, dtype=float)
    sd = X.std(axis=0)
    keep = sd > 1e-12 * max(1.0, float(np.abs(X).max(initial=0.0)))
    if not keep.any():
        return np.zeros((X.shape[0], 1))
    Z = (X[:, keep] - X[:, keep].mean(axis=0)) / sd[keep]
    _, s, vt = np.linalg.svd(Z, full_matrices=False)
    r = int(min(max_components, X.shape[0] - 1, int(np.sum(s > s[0] * 1e-9))))
    return Z @ vt[: max(r, 1)].T


def _fold_fit(Z: np.ndarray, t: np.ndarray, w: np.ndarray):
    """Weighted ridge fits of one fold for every replicate: (mean z, mean t, penalty-chosen beta).

    Z (n, d) features of the training images, t (n,) ±1 targets, w (B, n) weights.
    The penalty minimises generalised cross-validation,
    GCV = RSS / W / (1 − df / W)^2, df = sum e / (e + lambda).
    """
    W = w.sum(axis=1)
    mu = (w @ Z) / W[:, None]  # (B, d)
    tbar = (w @ t) / W
    d = Z.shape[1]
    outer = (Z[:, :, None] * Z[:, None, :]).reshape(Z.shape[0], d * d)
    G = (w @ outer).reshape(-1, d, d) - W[:, None, None] * mu[:, :, None] * mu[:, None, :]
    h = w @ (Z * t[:, None]) - W[:, None] * mu * tbar[:, None]
    syy = w @ (t * t) - W * tbar * tbar
    e, V = np.linalg.eigh(G)
    e = np.maximum(e, 0.0)
    g = np.einsum("bdk,bd->bk", V, h)  # h in the eigenbasis
    scale = np.maximum(e.mean(axis=1), 1e-12)
    lam = scale[:, None] * PENALTY_GRID[None, :]  # (B, L)
    denom = e[:, None, :] + lam[:, :, None]  # (B, L, d)
    g2 = g * g
    rss = syy[:, None] - np.sum(g2[:, None, :] * (e[:, None, :] + 2.0 * lam[:, :, None]) / denom ** 2, axis=2)
    df = np.sum(e[:, None, :] / denom, axis=2)
    gcv = np.maximum(rss, 0.0) / W[:, None] / np.maximum(1.0 - df / W[:, None], 1e-9) ** 2
    best = np.argmin(gcv, axis=1)
    chosen = lam[np.arange(lam.shape[0]), best]
    beta = np.einsum("bdk,bk->bd", V, g / (e + chosen[:, None]))
    return mu, tbar, beta


def refitted_scores(Z: np.ndarray, y: np.ndarray, folds: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Out-of-fold probe scores (B, n), the probe refitted on each replicate's weighted training folds.

    A score > 0 means the probe predicts the positive class. weights: (B, n) resampling
    counts; row 0 = ones gives the ordinary cross-validated scores of the sample.
    """
    Z = np.asarray(Z, dtype=float)
    t = np.where(np.asarray(y, dtype=bool), 1.0, -1.0)
    w = np.asarray(weights, dtype=float)
    scores = np.zeros((w.shape[0], Z.shape[0]))
    for f in np.unique(folds):
        train, test = folds != f, folds == f
        mu, tbar, beta = _fold_fit(Z[train], t[train], w[:, train])
        scores[:, test] = np.einsum("nd,bd->bn", Z[test], beta) - np.sum(mu * beta, axis=1)[:, None] + tbar[:, None]
    return scores


def weighted_auroc(scores: np.ndarray, is_pos: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """AUROC per bootstrap replicate, shape (B,), from per-image weights (B, n).

    Mann–Whitney form: AUROC = P(score of a positive > score of a negative), ties
    counting one half. With resampling counts w, each positive i contributes
    w_i × (weight of negatives scored below s_i + ½ weight of negatives tied with s_i),
    normalised by W_pos × W_neg. Sorting the scores once and taking cumulative sums of
    the negative weights along that order gives every replicate in O(B n), with no
    materialised resample. `scores` is one vector shared by all replicates, or one row
    per replicate (a probe refitted in each). nan where a replicate has no positive or
    no negative weight.
    """
    scores = np.asarray(scores, dtype=float)
    is_pos = np.asarray(is_pos, dtype=bool)
    w = np.asarray(weights, dtype=float)
    if scores.ndim == 2:
        if scores.shape != w.shape:
            raise ValueError(f"per-replicate scores {scores.shape} must match the weights {w.shape}")
        return np.array([_auroc(scores[b], is_pos, w[b:b + 1])[0] for b in range(w.shape[0])])
    if w.ndim != 2 or w.shape[1] != scores.shape[0] or is_pos.shape != scores.shape:
        raise ValueError(f"need scores (n,), is_pos (n,), weights (B, n); got {scores.shape}, {is_pos.shape}, {w.shape}")
    return _auroc(scores, is_pos, w)


def _auroc(scores: np.ndarray, is_pos: np.ndarray, w: np.ndarray) -> np.ndarray:
    order = np.argsort(scores, kind="stable")
    s, pos, w = scores[order], is_pos[order], w[:, order]
    neg_w = w * ~pos
    cum = np.concatenate([np.zeros((w.shape[0], 1)), np.cumsum(neg_w, axis=1)], axis=1)
    below = cum[:, np.searchsorted(s, s, side="left")]  # negative weight strictly below each score
    upto = cum[:, np.searchsorted(s, s, side="right")]  # ... at or below it
    wins = below + 0.5 * (upto - below)
    num = np.sum(w * pos * wins, axis=1)
    den = np.sum(w * pos, axis=1) * np.sum(neg_w, axis=1)
    out = np.full(w.shape[0], np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out
