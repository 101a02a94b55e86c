"""embedding_separability: the refitted probe, its bounds, and both verdicts (SPEC §4.5).

The probe's closed-form fits are checked against scikit-learn (ridge with sample
weights, explicit duplication for a bootstrap replicate), the AUROC against
roc_auc_score, and the verdicts on subjects with a known separation.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import Ridge
from sklearn.metrics import roc_auc_score, silhouette_score
from sklearn.preprocessing import StandardScaler

from harness.calibration.subjects import embeddings
from harness.core import Thresholds
from harness.findings import embedding_separability as es
from harness.findings.grid import Grid
from harness.findings.prompt_sensitivity import NotApplicable
from harness.stats.bootstrap import bootstrap_weights, percentile_bounds, recentred_bounds
from harness.stats.probe import (PENALTY_GRID, TooFewForProbe, _fold_fit, components, effective_folds, fold_of,
                                 refitted_scores, weighted_auroc)

FAST = Thresholds(bootstrap_replicates=400, embedding_separability={
    **Thresholds().embedding_separability, "probe_replicates": 100})
VARIANTS = ["abnormal", "disease", "choice_ab"]


def subject(n_per_class: int = 60, auroc: float = 0.5, dim: int = 16, seed: int = 0):
    """(embeddings, is_pos, image_ids) whose best linear rule has the given AUROC."""
    return embeddings(np.random.default_rng(seed), n_per_class, auroc, dim)


def vqa(ids, is_pos, p_correct: float, refused: float = 0.0, seed: int = 3) -> Grid:
    rng = np.random.default_rng(seed)
    truth = np.where(is_pos, "positive", "negative")
    wrong = np.where(is_pos, "negative", "positive")
    right = rng.random((len(ids), len(VARIANTS))) < p_correct
    outcome = np.where(right, truth[:, None], wrong[:, None]).astype(object)
    outcome[rng.random(outcome.shape) < refused] = "refused"
    return Grid(list(ids), list(VARIANTS), np.asarray(is_pos), outcome)


# -- the probe's fits against scikit-learn -------------------------------------------
def _gcv_ridge(Z, t, w):
    """Reference: for each penalty, sklearn's weighted Ridge and the GCV of its fit."""
    W = w.sum()
    Zc = Z - np.average(Z, axis=0, weights=w)
    G = (Zc * w[:, None]).T @ Zc
    scale = np.linalg.eigvalsh(G).clip(0).mean()
    best = None
    for lam in scale * PENALTY_GRID:
        model = Ridge(alpha=lam, fit_intercept=True).fit(Z, t, sample_weight=w)
        rss = np.sum(w * (t - model.predict(Z)) ** 2)
        df = np.trace(np.linalg.solve(G + lam * np.eye(G.shape[0]), G))
        gcv = rss / W / (1 - df / W) ** 2
        if best is None or gcv < best[0]:
            best = (gcv, model)
    return best[1]


def test_fold_fit_matches_sklearn_ridge_with_the_gcv_penalty():
    X, y, _ = subject(40, auroc=0.8, dim=10, seed=1)
    t = np.where(y, 1.0, -1.0)
    w = np.vstack([np.ones(80), bootstrap_weights(80, 3, seed=5, strata=y.astype(int))])
    mu, tbar, beta = _fold_fit(X, t, w)
    for b in range(w.shape[0]):
        ref = _gcv_ridge(X, t, w[b])
        np.testing.assert_allclose(beta[b], ref.coef_, rtol=1e-6, atol=1e-9)
        ours = X @ beta[b] - mu[b] @ beta[b] + tbar[b]
        np.testing.assert_allclose(ours, ref.predict(X), rtol=1e-6, atol=1e-9)


def test_a_replicate_is_the_probe_refitted_on_the_explicit_resample():
    """Replicate b's out-of-fold scores equal fitting on duplicated rows, copies kept in their image's fold."""
    X, y, _ = subject(30, auroc=0.85, dim=8, seed=2)
    Z = components(X, 6)
    folds = fold_of(y, 5, seed=3)
    w = np.vstack([np.ones(60), bootstrap_weights(60, 4, seed=9, strata=y.astype(int))])
    scores = refitted_scores(Z, y, folds, w)
    for b in range(w.shape[0]):
        idx = np.repeat(np.arange(60), w[b].astype(int))
        for f in np.unique(folds):
            train = idx[folds[idx] != f]
            mu, tbar, beta = _fold_fit(Z[train], np.where(y[train], 1.0, -1.0), np.ones((1, train.size)))
            test = folds == f
            np.testing.assert_allclose(scores[b, test], Z[test] @ beta[0] - mu[0] @ beta[0] + tbar[0], atol=1e-9)


def test_components_are_label_free_standardised_principal_components():
    X, y, _ = subject(30, auroc=0.9, dim=12, seed=4)
    Z = components(X, 5)
    assert Z.shape == (60, 5)
    np.testing.assert_allclose(Z.mean(axis=0), 0.0, atol=1e-9)
    assert np.all(np.diff(Z.var(axis=0)) <= 1e-9)  # in order of explained variance
    np.testing.assert_allclose(components(X[::-1], 5)[::-1] ** 2, Z ** 2, atol=1e-9)  # order of images: irrelevant
    constant = np.c_[X, np.full(60, 3.0)]
    np.testing.assert_allclose(np.abs(components(constant, 5)), np.abs(Z), atol=1e-9)  # a constant feature is dropped
    assert components(np.ones((5, 3)), 2).shape == (5, 1)


def test_folds_are_stratified_and_shrink_to_the_smallest_class():
    y = np.array([True] * 3 + [False] * 20)
    assert effective_folds(y, 5) == 3 and effective_folds(~y, 10) == 3
    folds = fold_of(y, 5, seed=0)
    assert sorted(set(folds)) == [0, 1, 2] and all(y[folds == f].sum() == 1 for f in range(3))
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
    per_row = weighted_auroc(np.tile(scores, (weights.shape[0], 1)), is_pos, weights)  # one score row per replicate
    np.testing.assert_allclose(per_row, ours)
    with pytest.raises(ValueError):
        weighted_auroc(np.ones((2, 60)), is_pos, weights)


def test_weighted_auroc_is_nan_without_both_classes():
    w = np.array([[1.0, 1.0, 0.0, 0.0]])
    assert np.isnan(weighted_auroc(np.array([0.1, 0.2, 0.3, 0.4]), np.array([True, True, False, False]), w))[0]


def test_recentred_bounds_move_the_replicates_median_onto_the_estimate():
    reps = np.linspace(0.5, 0.7, 201)  # median 0.6
    low, high = recentred_bounds(0.65, reps, 0.95)
    plain = percentile_bounds(reps, 0.95)
    assert (low, high) == pytest.approx((plain[0] + 0.05, plain[1] + 0.05))
    assert np.isnan(recentred_bounds(np.nan, reps, 0.95)[0])


# -- encoder_separates -----------------------------------------------------------------
def test_a_separating_encoder_is_robust():
    X, y, ids = subject(100, auroc=0.97)
    verdict = es.encoder_separates(X, y, ids, FAST)
    assert verdict.label == "robust" and verdict.ci_low > 0.85
    assert (verdict.finding, verdict.metric, verdict.direction) == ("embedding_separability", "probe_auroc", "ge")
    assert verdict.details["folds"] == 5 and verdict.details["dim"] == 16 and verdict.details["n"] == 200


def test_an_encoder_that_does_not_separate_is_shown_fragile():
    X, y, ids = subject(100, auroc=0.5)
    verdict = es.encoder_separates(X, y, ids, FAST)
    assert verdict.label == "fragile" and verdict.ci_high < 0.75


def test_near_the_threshold_the_lower_bound_decides():
    """An estimate above 0.75 whose lower bound is below it is inconclusive, not robust."""
    X, y, ids = subject(40, auroc=0.86, seed=11)
    verdict = es.encoder_separates(X, y, ids, FAST)
    assert verdict.value >= 0.75 > verdict.ci_low and verdict.ci_high > 0.75
    assert verdict.label == "inconclusive" and not verdict.passed


def test_point_auroc_is_the_cross_validated_probe_and_silhouette_matches_sklearn():
    X, y, ids = subject(50, auroc=0.8)
    verdict = es.encoder_separates(X, y, ids, FAST)
    scores = refitted_scores(components(X, 32), y, fold_of(y, 5, FAST.seed), np.ones((1, 100)))[0]
    assert verdict.value == pytest.approx(roc_auc_score(y, scores))
    ref = silhouette_score(StandardScaler().fit_transform(X), y.astype(int))
    assert verdict.details["silhouette"] == pytest.approx(ref, abs=1e-4)


def test_a_class_too_small_for_a_probe_is_not_applicable():
    X, y, ids = subject(20, auroc=0.9)
    keep = np.r_[0, 20:40]  # one positive image
    with pytest.raises(NotApplicable, match="at least 2 images of each class"):
        es.encoder_separates(X[keep], y[keep], [ids[i] for i in keep], FAST)


# -- answers_use_encoder ---------------------------------------------------------------
def test_separable_encoder_but_random_answers_is_fragile():
    X, y, ids = subject(100, auroc=0.97)
    verdict = es.answers_use_encoder(X, y, ids, vqa(ids, y, 0.5), FAST)
    assert verdict.details["probe_ba"] > 0.85 and verdict.value > 0.3
    assert verdict.label == "fragile" and verdict.metric == "reasoning_gap" and verdict.direction == "le"


def test_answers_as_good_as_the_probe_pass():
    X, y, ids = subject(100, auroc=0.97)
    verdict = es.answers_use_encoder(X, y, ids, vqa(ids, y, 0.93), FAST)
    assert abs(verdict.value) < 0.06 and verdict.passed


def test_without_separation_the_reasoning_gap_is_not_judged():
    """A refusing model that knows nothing, on an encoder that separates nothing: no knowledge is
    'left to extract', and the test says why instead of calling the gap."""
    X, y, ids = subject(100, auroc=0.5)
    with pytest.raises(NotApplicable, match="does not show separation"):
        es.answers_use_encoder(X, y, ids, vqa(ids, y, 0.5, refused=0.4), FAST)


def test_a_refusal_is_a_coin_flip_not_knowledge_lost():
    X, y, ids = subject(100, auroc=0.97)
    answers = vqa(ids, y, 0.93, refused=0.4)
    verdict = es.answers_use_encoder(X, y, ids, answers, FAST)
    # refusals count 0.5: the direct arm is 0.6 * 0.93 + 0.4 * 0.5 ≈ 0.76, not 0.56
    assert verdict.details["vqa_ba"] == pytest.approx(0.6 * 0.93 + 0.2, abs=0.04)
    assert verdict.details["answered_only_gap"] == pytest.approx(verdict.details["probe_ba"] - 0.93, abs=0.04)
    assert verdict.details["vqa_refusal_rate"] == pytest.approx(0.4, abs=0.04)


def test_the_gap_is_paired_by_image():
    """Answers that copy the probe's mistakes except on a few images: a small, consistent gap that
    pairing detects (each replicate pairs the refitted probe with the same resampled answers)."""
    X, y, ids = subject(150, auroc=0.9, seed=5)
    fit = es.fit_probe(X, y, ids, FAST)
    predicted = np.where(fit.scores[0] > 0, "positive", "negative")
    truth = np.where(y, "positive", "negative")
    right = predicted == truth
    flip = np.flatnonzero(right)[::10]  # the answers miss one in ten of the images the probe gets right
    answers = predicted.copy()
    answers[flip] = np.where(y[flip], "negative", "positive")
    grid = Grid(list(ids), ["only"], y, answers[:, None].astype(object))
    verdict = es.answers_use_encoder(X, y, ids, grid, FAST)
    assert 0.05 < verdict.value < 0.12
    assert verdict.ci_low > 0.03  # a paired bound; unpaired arms would each move by ≈ ±0.05


def test_reasoning_gap_is_probe_ba_minus_vqa_ba_over_common_images():
    X, y, ids = subject(60, auroc=0.97)
    grid = vqa(ids, y, 0.7)
    keep = list(range(5, 115))
    grid = Grid([ids[i] for i in keep], grid.variants, grid.is_pos[keep], grid.outcome[keep])
    verdict = es.answers_use_encoder(X, y, ids, grid, FAST)
    assert verdict.n_images == 110 and verdict.details["n_embedded"] == 120
    fit = es.fit_probe(X, y, ids, FAST)
    pred, truth = fit.scores[0][keep] > 0, y[keep]
    probe_ba = (np.mean(pred[truth]) + np.mean(~pred[~truth])) / 2
    vqa_ba = np.mean([(np.mean(grid.correct[grid.is_pos, j]) + np.mean(grid.correct[~grid.is_pos, j])) / 2
                      for j in range(3)])
    assert verdict.details["probe_ba"] == pytest.approx(probe_ba, abs=1e-4)
    assert verdict.value == pytest.approx(probe_ba - vqa_ba)


def test_no_common_image_is_not_applicable():
    X, y, ids = subject(50, auroc=0.97)
    grid = vqa([f"other/{i}" for i in ids], y, 0.9)
    with pytest.raises(NotApplicable):
        es.answers_use_encoder(X, y, ids, grid, FAST)


def test_one_fit_serves_both_tests():
    X, y, ids = subject(40, auroc=0.9, seed=21)
    first = es.fit_probe(X, y, ids, FAST)
    assert es.fit_probe(X.copy(), y.copy(), list(ids), FAST) is first
    other = Thresholds(embedding_separability={**FAST.embedding_separability, "components": 4})
    assert es.fit_probe(X, y, ids, other) is not first


# -- the report's scatter -------------------------------------------------------------
def test_tsne_points_are_2d_and_reproducible():
    X, _, _ = subject(10, auroc=0.9)
    a, b = es.tsne_points(X, seed=0), es.tsne_points(X, seed=0)
    assert a.shape == (20, 2) and np.isfinite(a).all()
    np.testing.assert_array_equal(a, b)


def test_scatter_sample_keeps_at_most_the_limit_balanced():
    y = np.r_[np.ones(300, bool), np.zeros(300, bool)]
    pick = es.scatter_sample(y, 200)
    assert pick.size == 200 and y[pick].sum() == 100
    few = np.r_[np.ones(30, bool), np.zeros(300, bool)]
    assert es.scatter_sample(few, 200).size == 200 and few[es.scatter_sample(few, 200)].sum() == 30
    assert es.scatter_sample(y[:50], 200).size == 50
