"""embedding_separability: the probe, its bootstrap AUROC, and both verdicts (SPEC §4.5).

Subjects are Gaussian embeddings with a known class separation; the formulas are
checked against scikit-learn on the same data.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score, silhouette_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from harness.core import Thresholds
from harness.findings import embedding_separability as es
from harness.findings.grid import Grid, weights_for
from harness.findings.prompt_sensitivity import NotApplicable
from harness.stats.bootstrap import bootstrap_weights
from harness.stats.metrics import grid_balanced_accuracy
from harness.stats.probe import TooFewForProbe, effective_folds, out_of_fold_scores, weighted_auroc

FAST = Thresholds(bootstrap_replicates=400)
VARIANTS = ["abnormal", "disease", "choice_ab"]


def subject(n_per_class: int = 40, shift: float = 0.0, dim: int = 16, seed: int = 0):
    """(embeddings, is_pos, image_ids): two Gaussian clouds `shift` apart along 4 of `dim` axes."""
    rng = np.random.default_rng(seed)
    is_pos = np.repeat([True, False], n_per_class)
    X = rng.normal(size=(2 * n_per_class, dim))
    X[is_pos, :4] += shift
    ids = [f"img/{'positive' if p else 'negative'}/{i:03d}" for i, p in enumerate(is_pos)]
    return X, is_pos, ids


def vqa(ids, is_pos, p_correct: float, seed: int = 3) -> Grid:
    rng = np.random.default_rng(seed)
    truth = np.where(is_pos, "positive", "negative")
    wrong = np.where(is_pos, "negative", "positive")
    right = rng.random((len(ids), len(VARIANTS))) < p_correct
    outcome = np.where(right, truth[:, None], wrong[:, None]).astype(object)
    return Grid(list(ids), list(VARIANTS), np.asarray(is_pos), outcome)


# -- the probe and its AUROC against scikit-learn ------------------------------------
def test_out_of_fold_scores_match_a_sklearn_pipeline():
    X, y, _ = subject(30, shift=0.8, dim=12)
    ours = out_of_fold_scores(X, y, folds=5, seed=7)
    pipe = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=1000))
    ref = cross_val_predict(pipe, X, y, cv=StratifiedKFold(5, shuffle=True, random_state=7), method="predict_proba")[:, 1]
    np.testing.assert_allclose(ours, ref, rtol=1e-9, atol=1e-12)


def test_folds_shrink_to_the_smallest_class_and_need_two_per_class():
    y = np.array([True] * 3 + [False] * 20)
    assert effective_folds(y, 5) == 3 and effective_folds(~y, 10) == 3
    X = np.random.default_rng(0).normal(size=(23, 4))
    assert np.isfinite(out_of_fold_scores(X, y, 5, 0)).all()
    with pytest.raises(TooFewForProbe):
        effective_folds(np.array([True] + [False] * 20), 5)
    assert issubclass(TooFewForProbe, ValueError)


def test_weighted_auroc_equals_roc_auc_score_on_explicit_resamples_with_ties():
    rng = np.random.default_rng(1)
    is_pos = rng.random(60) < 0.4
    scores = np.round(rng.random(60) * 0.6 + 0.3 * is_pos, 1)  # coarse: many ties, within and across classes
    assert len(np.unique(scores)) < 15
    weights = np.vstack([np.ones((1, 60)), bootstrap_weights(60, 6, seed=2, strata=is_pos.astype(int))])
    ours = weighted_auroc(scores, is_pos, weights)
    assert ours[0] == pytest.approx(roc_auc_score(is_pos, scores))
    for b in range(1, weights.shape[0]):
        idx = np.repeat(np.arange(60), weights[b].astype(int))
        assert ours[b] == pytest.approx(roc_auc_score(is_pos[idx], scores[idx]))


def test_weighted_auroc_is_nan_without_both_classes():
    w = np.array([[1.0, 1.0, 0.0, 0.0]])
    assert np.isnan(weighted_auroc(np.array([0.1, 0.2, 0.3, 0.4]), np.array([True, True, False, False]), w))[0]


# -- encoder_separates ---------------------------------------------------------------
def test_well_separated_clusters_pass():
    X, y, ids = subject(shift=2.0)
    verdict = es.encoder_separates(X, y, ids, FAST)
    assert verdict.passed and verdict.ci_low > 0.9
    assert (verdict.finding, verdict.metric, verdict.direction) == ("embedding_separability", "probe_auroc", "ge")
    assert verdict.details["folds"] == 5 and verdict.details["dim"] == 16 and verdict.details["n"] == 80


def test_overlapping_clusters_fail():
    X, y, ids = subject(shift=0.0)
    verdict = es.encoder_separates(X, y, ids, FAST)
    assert not verdict.passed and not verdict.inconclusive and verdict.value < 0.7


def test_point_auroc_and_silhouette_match_sklearn():
    X, y, ids = subject(shift=1.0)
    verdict = es.encoder_separates(X, y, ids, FAST)
    oof = out_of_fold_scores(X, y, 5, FAST.seed)
    assert verdict.value == pytest.approx(roc_auc_score(y, oof))
    ref = silhouette_score(StandardScaler().fit_transform(X), y.astype(int))
    assert verdict.details["silhouette"] == pytest.approx(ref, abs=1e-4)


def test_a_class_too_small_for_a_probe_is_not_applicable():
    X, y, ids = subject(20, shift=2.0)
    keep = np.r_[0, 20:40]  # one positive image
    with pytest.raises(NotApplicable, match="at least 2 images of each class"):
        es.encoder_separates(X[keep], y[keep], [ids[i] for i in keep], FAST)


# -- answers_use_encoder -------------------------------------------------------------
def test_separable_encoder_but_random_answers_fail():
    X, y, ids = subject(shift=2.0)
    verdict = es.answers_use_encoder(X, y, ids, vqa(ids, y, 0.5), FAST)
    assert verdict.details["probe_ba"] > 0.9 and verdict.value > 0.3
    assert not verdict.passed and verdict.metric == "reasoning_gap" and verdict.direction == "le"


def test_answers_as_good_as_the_probe_pass():
    X, y, ids = subject(shift=2.0)
    verdict = es.answers_use_encoder(X, y, ids, vqa(ids, y, 0.97), FAST)
    assert abs(verdict.value) < 0.05 and verdict.passed


def test_weak_encoder_with_good_answers_passes_the_reasoning_check():
    """The gap is one-sided: answers better than the probe are not a reasoning failure."""
    X, y, ids = subject(shift=0.0)
    assert es.answers_use_encoder(X, y, ids, vqa(ids, y, 0.9), FAST).passed


def test_reasoning_gap_point_is_probe_ba_minus_vqa_ba_over_common_images():
    X, y, ids = subject(shift=1.0)
    grid = vqa(ids, y, 0.7)
    keep = list(range(5, 75))
    grid = Grid([ids[i] for i in keep], grid.variants, grid.is_pos[keep], grid.outcome[keep])
    verdict = es.answers_use_encoder(X, y, ids, grid, FAST)
    assert verdict.n_images == 70 and verdict.details["n_embedded"] == 80
    pred = out_of_fold_scores(X, y, 5, FAST.seed)[keep] > 0.5
    truth = y[keep]
    probe_ba = (np.mean(pred[truth]) + np.mean(~pred[~truth])) / 2
    ones = weights_for(grid, 0, 0)
    vqa_ba = grid_balanced_accuracy(grid.correct, grid.valid, grid.is_pos, ones).mean()
    assert verdict.details["probe_ba"] == pytest.approx(probe_ba, abs=1e-4)
    assert verdict.value == pytest.approx(probe_ba - vqa_ba)


def test_no_common_image_is_not_applicable():
    X, y, ids = subject(10, shift=2.0)
    grid = vqa([f"other/{i}" for i in ids], y, 0.9)
    with pytest.raises(NotApplicable):
        es.answers_use_encoder(X, y, ids, grid, FAST)


# -- the report's scatter -------------------------------------------------------------
def test_tsne_points_are_2d_and_reproducible():
    X, _, _ = subject(10, shift=2.0)
    a, b = es.tsne_points(X, seed=0), es.tsne_points(X, seed=0)
    assert a.shape == (20, 2) and np.isfinite(a).all()
    np.testing.assert_array_equal(a, b)
