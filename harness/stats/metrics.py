"""Per-variant metrics (SPEC §3), as point estimates and as vectorised bootstrap grids.

Scoring rules, shared by both forms:
- `error` outcomes (the backend failed) are excluded from every metric and only counted:
  a timeout says nothing about the model's knowledge.
- `refused` outcomes count as wrong for balanced accuracy, sensitivity and specificity,
  because a model that will not answer is not useful for triage. For F1 a refusal is a
  non-positive prediction: a refused positive is a false negative, a refused negative
  is neither a true nor a false positive.
- Anything undefined (no item of a class, no answered item) is nan, never 0, so that
  missing evidence cannot look like a poor or a perfect score.

The grid functions are the hot path: every finding evaluates thousands of bootstrap
replicates over an image x variant grid, so they reduce each replicate to weighted
sums computed as a single matrix product (weights @ masks).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from harness.core import LABELS, OUTCOMES


def _ratio(num: float, den: float) -> float:
    return num / den if den > 0 else math.nan


def _f1(tp: int, fp: int, fn: int) -> float:
    """F1 = 2TP / (2TP + FP + FN); nan when there is neither a positive item nor a positive prediction."""
    return _ratio(2.0 * tp, 2.0 * tp + fp + fn)


def _as_arrays(labels: Sequence[str], outcomes: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    lab = np.asarray(list(labels), dtype=object)
    out = np.asarray(list(outcomes), dtype=object)
    if lab.shape != out.shape:
        raise ValueError(f"labels and outcomes differ in length: {lab.size} vs {out.size}")
    bad_labels = sorted({str(x) for x in lab if x not in LABELS})
    if bad_labels:
        raise ValueError(f"unknown label(s) {bad_labels}; expected one of {LABELS}")
    bad_outcomes = sorted({str(x) for x in out if x not in OUTCOMES})
    if bad_outcomes:
        raise ValueError(f"unknown outcome(s) {bad_outcomes}; expected one of {OUTCOMES}")
    return lab, out


def point_metrics(labels: Sequence[str], outcomes: Sequence[str]) -> dict:
    """All per-variant metrics of SPEC §3 for paired label/outcome sequences.

    Keys: n, n_errors, n_scored, n_refused, n_positive, n_negative (scored items per
    class), refusal_rate, balanced_accuracy, accuracy_answered, sensitivity,
    specificity, f1, f1_answered. Rates are over scored (non-error) items.
    """
    lab, out = _as_arrays(labels, outcomes)
    scored = out != "error"
    refused = scored & (out == "refused")
    answered = scored & ~refused
    pos = scored & (lab == "positive")
    neg = scored & (lab == "negative")
    said_pos = out == "positive"

    tp = int(np.sum(pos & said_pos))
    tn = int(np.sum(neg & (out == "negative")))
    fp = int(np.sum(neg & said_pos))
    fn = int(np.sum(pos & ~said_pos))  # includes refused positives
    sensitivity = _ratio(tp, int(pos.sum()))
    specificity = _ratio(tn, int(neg.sum()))

    fn_answered = int(np.sum(pos & answered & ~said_pos))
    return {
        "n": int(lab.size),
        "n_errors": int(np.sum(~scored)),
        "n_scored": int(scored.sum()),
        "n_refused": int(refused.sum()),
        "n_positive": int(pos.sum()),
        "n_negative": int(neg.sum()),
        "refusal_rate": _ratio(int(refused.sum()), int(scored.sum())),
        # nan propagates: with one class absent balanced accuracy is undefined.
        "balanced_accuracy": (sensitivity + specificity) / 2.0,
        "accuracy_answered": _ratio(tp + tn, int(answered.sum())),
        "sensitivity": sensitivity,
        "specificity": specificity,
        "f1": _f1(tp, fp, fn),
        "f1_answered": _f1(tp, fp, fn_answered),
    }


def _check_weights(weights: np.ndarray, n_images: int) -> np.ndarray:
    w = np.asarray(weights, dtype=float)
    if w.ndim != 2 or w.shape[1] != n_images:
        raise ValueError(
            f"weights must have shape (replicates, {n_images}); got {w.shape} "
            "(use np.ones((1, n_images)) for the point estimate)"
        )
    return w


def _check_grid(*grids: np.ndarray) -> tuple[np.ndarray, ...]:
    arrays = tuple(np.asarray(g, dtype=bool) for g in grids)
    shape = arrays[0].shape
    if len(shape) != 2:
        raise ValueError(f"grids must be (n_images, n_variants), got shape {shape}")
    for a in arrays[1:]:
        if a.shape != shape:
            raise ValueError(f"grid shapes differ: {shape} vs {a.shape}")
    return arrays


def _weighted_ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den elementwise, nan where the denominator weight is zero."""
    out = np.full(num.shape, np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


def grid_balanced_accuracy(
    correct: np.ndarray, valid: np.ndarray, is_pos: np.ndarray, weights: np.ndarray,
    refused: np.ndarray | None = None, refusal_credit: float = 0.0,
) -> np.ndarray:
    """Balanced accuracy per bootstrap replicate and prompt variant: shape (B, n_variants).

    correct, valid: (n_images, n_variants) booleans; a refused cell is valid and not
    correct, an error cell is not valid (excluded). is_pos: (n_images,) true class.
    weights: (B, n_images) resampling counts. Sensitivity and specificity are weighted
    shares of correct cells among valid cells of each class; the four weighted sums for
    all variants come from one matrix product. nan where a class has no valid weight.
    With `refused` and a `refusal_credit` of 0.5 a refusal scores as a coin flip instead
    of a wrong answer (the gap findings: a refusal carries no information, so it must not
    count as knowledge lost).
    """
    correct, valid = _check_grid(correct, valid)
    n_images, n_variants = valid.shape
    is_pos = np.asarray(is_pos, dtype=bool)
    if is_pos.shape != (n_images,):
        raise ValueError(f"is_pos must have shape ({n_images},), got {is_pos.shape}")
    w = _check_weights(weights, n_images)

    pos = valid & is_pos[:, None]
    neg = valid & ~is_pos[:, None]
    score = (correct & valid).astype(float)
    if refused is not None and refusal_credit:
        score = score + refusal_credit * (np.asarray(refused, dtype=bool) & valid & ~correct)
    masks = np.concatenate([score * pos, pos, score * neg, neg], axis=1)
    sums = w @ masks
    hit_pos, n_pos, hit_neg, n_neg = np.split(sums, 4, axis=1)
    return (_weighted_ratio(hit_pos, n_pos) + _weighted_ratio(hit_neg, n_neg)) / 2.0


def grid_rate(flag: np.ndarray, valid: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted share of valid cells where `flag` holds, per replicate and variant: (B, n_variants).

    Serves the refusal rate (flag = refused) and the flip rate (flag = answer differs
    from the paired variant). nan where a variant has no valid weight.
    """
    flag, valid = _check_grid(flag, valid)
    w = _check_weights(weights, valid.shape[0])
    masks = np.concatenate([flag & valid, valid], axis=1).astype(float)
    hits, totals = np.split(w @ masks, 2, axis=1)
    return _weighted_ratio(hits, totals)
