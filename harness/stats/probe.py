"""A cross-validated linear probe on image embeddings, and a bootstrap-ready AUROC.

The probe asks "does the vision encoder already separate the classes?" (SPEC §4.5).
It is deliberately simple and fixed (standardize, logistic regression, C = 1) so the
answer measures the embeddings, not a tuned classifier. Every score is out-of-fold:
each image is scored by a probe that never saw it, so the AUROC is not inflated by
fitting the very images it is evaluated on.

The bootstrap resamples images over those out-of-fold scores without refitting the
probe. Refitting per replicate would cost B × folds fits; the price is that fold-to-
fold variation of the probe itself is not in the interval, which is small beside the
image-sampling variation at the sample sizes used here.
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

PROBE_C = 1.0
PROBE_MAX_ITER = 1000


class TooFewForProbe(ValueError):
    """A class has too few images to cross-validate a probe (the check cannot be made)."""


def make_probe():
    """The fixed probe: standardized features into an L2 logistic regression (C = 1)."""
    return make_pipeline(StandardScaler(), LogisticRegression(C=PROBE_C, max_iter=PROBE_MAX_ITER))


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


def out_of_fold_scores(X: np.ndarray, y: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Out-of-fold probabilities of the positive class, one per row of X.

    StratifiedKFold(shuffle, random_state=seed) keeps both classes in every training
    fold and makes the scores reproducible under the suite's fixed seed.
    """
    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=bool)
    if X.ndim != 2 or X.shape[0] != y.shape[0]:
        raise ValueError(f"X must be (n, dim) with one row per label; got X {X.shape}, y {y.shape}")
    k = effective_folds(y, folds)
    scores = np.full(y.shape[0], np.nan)
    splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    for train, test in splitter.split(X, y):
        probe = make_probe().fit(X[train], y[train])
        scores[test] = probe.predict_proba(X[test])[:, list(probe.classes_).index(True)]
    return scores


def weighted_auroc(scores: np.ndarray, is_pos: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """AUROC per bootstrap replicate, shape (B,), from per-image weights (B, n).

    Mann–Whitney form: AUROC = P(score of a positive > score of a negative), ties
    counting one half. With resampling counts w, each positive i contributes
    w_i × (weight of negatives scored below s_i + ½ weight of negatives tied with s_i),
    normalised by W_pos × W_neg. Sorting the scores once and taking cumulative sums of
    the negative weights along that order gives every replicate in O(B n), with no
    materialised resample. nan where a replicate has no positive or no negative weight.
    """
    scores = np.asarray(scores, dtype=float)
    is_pos = np.asarray(is_pos, dtype=bool)
    w = np.asarray(weights, dtype=float)
    if w.ndim != 2 or w.shape[1] != scores.shape[0] or is_pos.shape != scores.shape:
        raise ValueError(f"need scores (n,), is_pos (n,), weights (B, n); got {scores.shape}, {is_pos.shape}, {w.shape}")
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
