"""Tests of harness.stats.metrics: point metrics against scikit-learn, and the vectorised
bootstrap grids against point metrics on explicitly resampled (duplicated) rows."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score, recall_score

from harness.core import LABELS, OUTCOMES
from harness.stats import bootstrap_weights, grid_balanced_accuracy, grid_rate, point_metrics

FAST = settings(max_examples=50, deadline=None)


@st.composite
def labelled_outcomes(draw, min_size: int = 0, max_size: int = 40):
    n = draw(st.integers(min_size, max_size))
    labels = draw(st.lists(st.sampled_from(LABELS), min_size=n, max_size=n))
    outcomes = draw(st.lists(st.sampled_from(OUTCOMES), min_size=n, max_size=n))
    return labels, outcomes


def same(a: float, b: float) -> bool:
    """Equal as numbers, treating nan == nan (both undefined)."""
    return (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, abs=1e-12)


# --------------------------------------------------------------------------- point metrics


def test_point_metrics_worked_example():
    labels = ["positive"] * 5 + ["negative"] * 5
    outcomes = ["positive", "positive", "negative", "refused", "error",
                "negative", "negative", "negative", "positive", "refused"]
    m = point_metrics(labels, outcomes)
    assert (m["n"], m["n_errors"], m["n_scored"], m["n_refused"]) == (10, 1, 9, 2)
    assert (m["n_positive"], m["n_negative"]) == (4, 5)
    assert m["sensitivity"] == pytest.approx(2 / 4)
    assert m["specificity"] == pytest.approx(3 / 5)
    assert m["balanced_accuracy"] == pytest.approx((0.5 + 0.6) / 2)
    assert m["refusal_rate"] == pytest.approx(2 / 9)
    assert m["accuracy_answered"] == pytest.approx(5 / 7)  # 2 TP + 3 TN out of 7 answered
    assert m["f1"] == pytest.approx(2 * 2 / (2 * 2 + 1 + 2))  # TP 2, FP 1, FN 2 (one refused)
    assert m["f1_answered"] == pytest.approx(2 * 2 / (2 * 2 + 1 + 1))


@pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")
@FAST
@given(labelled_outcomes())
def test_point_metrics_match_sklearn(data):
    labels, outcomes = data
    m = point_metrics(labels, outcomes)
    scored = [(lab, out) for lab, out in zip(labels, outcomes) if out != "error"]
    answered = [(lab, out) for lab, out in scored if out != "refused"]
    assert m["n"] == len(labels)
    assert m["n_errors"] == len(labels) - len(scored)
    assert m["n_scored"] == len(scored)
    assert m["n_refused"] == len(scored) - len(answered)
    assert same(m["refusal_rate"], (len(scored) - len(answered)) / len(scored) if scored else math.nan)

    y_true = [lab for lab, _ in scored]
    y_pred = [out for _, out in scored]  # "refused" stays a third, always-wrong class
    both_classes = set(y_true) == set(LABELS)
    if both_classes:
        assert same(m["balanced_accuracy"], balanced_accuracy_score(y_true, y_pred))
    else:
        assert math.isnan(m["balanced_accuracy"])

    said_pos = ["positive" if p == "positive" else "negative" for p in y_pred]
    said_neg = ["negative" if p == "negative" else "positive" for p in y_pred]
    if "positive" in y_true:
        assert same(m["sensitivity"], recall_score(y_true, said_pos, pos_label="positive"))
    else:
        assert math.isnan(m["sensitivity"])
    if "negative" in y_true:
        assert same(m["specificity"], recall_score(y_true, said_neg, pos_label="negative"))
    else:
        assert math.isnan(m["specificity"])
    if scored:
        # a refusal is a non-positive prediction: refused positive = FN
        assert same(m["f1"], f1_score(y_true, said_pos, pos_label="positive", zero_division=np.nan))
    else:
        assert math.isnan(m["f1"])

    if answered:
        a_true = [lab for lab, _ in answered]
        a_pred = [out for _, out in answered]
        assert same(m["accuracy_answered"], accuracy_score(a_true, a_pred))
        assert same(m["f1_answered"], f1_score(a_true, a_pred, pos_label="positive", zero_division=np.nan))
    else:
        assert math.isnan(m["accuracy_answered"]) and math.isnan(m["f1_answered"])


@FAST
@given(labelled_outcomes(min_size=1), st.lists(st.sampled_from(LABELS), max_size=10))
def test_errors_are_excluded_not_scored(data, extra_labels):
    labels, outcomes = data
    base = point_metrics(labels, outcomes)
    more = point_metrics(labels + extra_labels, outcomes + ["error"] * len(extra_labels))
    assert more["n"] == base["n"] + len(extra_labels)
    assert more["n_errors"] == base["n_errors"] + len(extra_labels)
    for key in ("balanced_accuracy", "refusal_rate", "sensitivity", "specificity", "f1", "f1_answered",
                "accuracy_answered", "n_scored", "n_refused"):
        assert same(float(more[key]), float(base[key])), key


def test_point_metrics_reject_bad_input():
    with pytest.raises(ValueError, match="length"):
        point_metrics(["positive"], ["positive", "negative"])
    with pytest.raises(ValueError, match="label"):
        point_metrics(["maybe"], ["positive"])
    with pytest.raises(ValueError, match="outcome"):
        point_metrics(["positive"], ["yes"])


def test_point_metrics_empty_is_all_undefined():
    m = point_metrics([], [])
    assert m["n"] == 0
    for key in ("balanced_accuracy", "refusal_rate", "f1", "accuracy_answered"):
        assert math.isnan(m[key])


# --------------------------------------------------------------------------- grids


@st.composite
def grids(draw):
    n_images = draw(st.integers(1, 12))
    n_variants = draw(st.integers(1, 4))
    labels = np.array(draw(st.lists(st.sampled_from(LABELS), min_size=n_images, max_size=n_images)))
    cells = draw(st.lists(st.sampled_from(OUTCOMES), min_size=n_images * n_variants,
                          max_size=n_images * n_variants))
    outcomes = np.array(cells).reshape(n_images, n_variants)
    seed = draw(st.integers(0, 2**32 - 1))
    stratified = draw(st.booleans())
    return labels, outcomes, seed, stratified


def grid_inputs(labels: np.ndarray, outcomes: np.ndarray):
    correct = outcomes == labels[:, None]
    valid = outcomes != "error"
    is_pos = labels == "positive"
    return correct, valid, is_pos


@FAST
@given(grids())
def test_grid_metrics_equal_point_metrics_on_explicit_resamples(grid):
    labels, outcomes, seed, stratified = grid
    correct, valid, is_pos = grid_inputs(labels, outcomes)
    weights = bootstrap_weights(len(labels), 5, seed, strata=labels if stratified else None)
    ba = grid_balanced_accuracy(correct, valid, is_pos, weights)
    refusal = grid_rate(outcomes == "refused", valid, weights)
    assert ba.shape == refusal.shape == (5, outcomes.shape[1])
    for b, counts in enumerate(weights):
        rows = np.repeat(np.arange(len(labels)), counts)  # the resample, duplicates included
        for v in range(outcomes.shape[1]):
            m = point_metrics(labels[rows].tolist(), outcomes[rows, v].tolist())
            assert same(ba[b, v], m["balanced_accuracy"])
            assert same(refusal[b, v], m["refusal_rate"])


@FAST
@given(grids())
def test_grid_point_estimate_equals_point_metrics(grid):
    labels, outcomes, _, _ = grid
    correct, valid, is_pos = grid_inputs(labels, outcomes)
    ones = np.ones((1, len(labels)))
    ba = grid_balanced_accuracy(correct, valid, is_pos, ones)[0]
    refusal = grid_rate(outcomes == "refused", valid, ones)[0]
    for v in range(outcomes.shape[1]):
        m = point_metrics(labels.tolist(), outcomes[:, v].tolist())
        assert same(ba[v], m["balanced_accuracy"])
        assert same(refusal[v], m["refusal_rate"])


def test_grid_is_nan_where_a_class_has_no_valid_weight():
    correct = np.array([[True, True], [False, True], [True, False]])
    valid = np.array([[True, False], [True, True], [True, True]])
    is_pos = np.array([True, False, False])
    weights = np.array([[1, 1, 1], [0, 2, 1], [3, 0, 0]])
    ba = grid_balanced_accuracy(correct, valid, is_pos, weights)
    assert ba[0, 0] == pytest.approx((1 + 0.5) / 2)
    assert math.isnan(ba[0, 1])  # the only positive image errored on variant 1
    assert math.isnan(ba[1, 0])  # replicate without the positive image
    assert math.isnan(ba[2, 0])  # replicate without negative images
    rate = grid_rate(correct, valid, weights)
    assert rate[2, 0] == pytest.approx(1.0)
    assert math.isnan(rate[2, 1])  # the only drawn image is an error cell


def test_grid_rejects_misshapen_input():
    correct = np.zeros((4, 3), dtype=bool)
    with pytest.raises(ValueError):
        grid_balanced_accuracy(correct, np.ones((4, 2), dtype=bool), np.ones(4, dtype=bool), np.ones((1, 4)))
    with pytest.raises(ValueError):
        grid_balanced_accuracy(correct, correct, np.ones(3, dtype=bool), np.ones((1, 4)))
    with pytest.raises(ValueError):
        grid_balanced_accuracy(correct, correct, np.ones(4, dtype=bool), np.ones(4))
    with pytest.raises(ValueError):
        grid_rate(correct, correct, np.ones((2, 5)))


def test_refusals_score_as_wrong_unless_a_credit_is_given():
    """Only the gap findings give refusals coin-flip credit; the default scores them as wrong."""
    correct = np.array([[True], [False], [True], [False]])
    refused = np.array([[False], [True], [False], [True]])
    valid = np.ones((4, 1), dtype=bool)
    is_pos = np.array([True, True, False, False])
    ones = np.ones((1, 4))
    assert grid_balanced_accuracy(correct, valid, is_pos, ones, refused=refused)[0, 0] == pytest.approx(0.5)
    assert grid_balanced_accuracy(correct, valid, is_pos, ones, refused=refused,
                                  refusal_credit=0.5)[0, 0] == pytest.approx(0.75)
