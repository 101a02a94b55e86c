"""Finding 5, embedding_separability: does the vision encoder see the difference, and is it used?

Two verdicts on pooled vision-encoder embeddings (SPEC §4.5), both resting on one
fixed, cross-validated linear probe (harness/stats/probe.py):

- encoder_separates: the probe's out-of-fold AUROC must have a lower bound
  ≥ min_probe_auroc. Failing = a weak visual representation: the information is not
  (linearly) there to begin with.
- answers_use_encoder: reasoning gap = BA(probe) − BA(direct VQA), paired by image;
  the upper bound must be ≤ max_reasoning_gap. Failing = the encoder separates the
  classes but the answers do not use it, a downstream (language-side) failure.

The probe is scored like one more prompt variant (its out-of-fold prediction at 0.5
becomes a positive/negative outcome), so both arms share the balanced-accuracy code
and the bootstrap weights over the same images. The report also gets a t-SNE
scatter and the silhouette score, descriptive only.
"""

from __future__ import annotations

import numpy as np
from sklearn.manifold import TSNE
from sklearn.metrics import silhouette_score
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from ..core import HarnessError, Thresholds
from ..stats.probe import TooFewForProbe, effective_folds, out_of_fold_scores, weighted_auroc
from ..verdict import Verdict, verdict_from_replicates
from .finetune_gain import check_same_labels, common_image_ids, mean_ba, take_images
from .grid import Grid, weights_for
from .prompt_sensitivity import NotApplicable


def _checked(embeddings, is_pos, image_ids) -> tuple[np.ndarray, np.ndarray, list[str]]:
    X = np.asarray(embeddings, dtype=float)
    y = np.asarray(is_pos, dtype=bool)
    ids = [str(i) for i in image_ids]
    if X.ndim != 2 or X.shape[0] != y.shape[0] or len(ids) != y.shape[0]:
        raise ValueError(f"need embeddings (n, dim), is_pos (n,), n image ids; got {X.shape}, {y.shape}, {len(ids)}")
    if len(set(ids)) != len(ids):
        raise HarnessError("embedding image ids are not unique")
    if not np.all(np.isfinite(X)):
        raise HarnessError("embeddings contain nan or inf; the encoder output is unusable")
    return X, y, ids


def _probe(X: np.ndarray, y: np.ndarray, thresholds: Thresholds) -> tuple[np.ndarray, int]:
    """(out-of-fold scores, folds used); a class too small to cross-validate is a skip, not a failure."""
    cfg = thresholds.embedding_separability
    try:
        folds = effective_folds(y, cfg["folds"])
        return out_of_fold_scores(X, y, folds, thresholds.seed), folds
    except TooFewForProbe as exc:
        raise NotApplicable(str(exc)) from exc


def _weights(ids: list[str], y: np.ndarray, thresholds: Thresholds) -> np.ndarray:
    """The suite's stratified image weights (row 0 = point estimate), as weights_for draws them for a grid."""
    stub = Grid(ids, [], y, np.empty((len(ids), 0), dtype=object))
    return weights_for(stub, thresholds.bootstrap_replicates, thresholds.seed)


def silhouette(X: np.ndarray, y: np.ndarray) -> float | None:
    """Silhouette of the two classes on standardized embeddings (descriptive; None when undefined)."""
    if y.all() or not y.any() or y.shape[0] < 3:
        return None
    return round(float(silhouette_score(StandardScaler().fit_transform(X), y.astype(int))), 4)


def encoder_separates(embeddings: np.ndarray, is_pos: np.ndarray, image_ids, thresholds: Thresholds) -> Verdict:
    """Verdict: the probe's out-of-fold AUROC lower bound must reach min_probe_auroc."""
    X, y, ids = _checked(embeddings, is_pos, image_ids)
    scores, folds = _probe(X, y, thresholds)
    auroc = weighted_auroc(scores, y, _weights(ids, y, thresholds))
    limit = thresholds.embedding_separability["min_probe_auroc"]
    return verdict_from_replicates(
        finding="embedding_separability",
        metric="probe_auroc",
        point=float(auroc[0]),
        replicates=auroc[1:],
        threshold=limit,
        direction="ge",
        confidence=thresholds.confidence,
        n_images=len(ids),
        description=f"a linear probe on the vision encoder's embeddings must separate the classes (AUROC ≥ {limit:.2f})",
        details={"silhouette": silhouette(X, y), "folds": folds, "dim": int(X.shape[1]), "n": len(ids)},
    )


def _probe_grid(ids: list[str], y: np.ndarray, scores: np.ndarray) -> Grid:
    """The probe as a one-variant grid: positive iff its out-of-fold probability > 0.5 (sklearn's predict)."""
    outcome = np.where(scores > 0.5, "positive", "negative").astype(object)[:, None]
    return Grid(ids, ["probe"], y, outcome)


def answers_use_encoder(
    embeddings: np.ndarray, is_pos: np.ndarray, image_ids, vqa_grid: Grid, thresholds: Thresholds
) -> Verdict:
    """Verdict: BA(probe) − BA(direct VQA), paired by image, upper bound ≤ max_reasoning_gap.

    The probe is fitted on every embedded image (more training data, the same probe
    as encoder_separates); the gap is then taken over the images both arms have.
    """
    X, y, ids = _checked(embeddings, is_pos, image_ids)
    common = common_image_ids(vqa_grid.image_ids, ids)
    if not common:
        raise NotApplicable("no image has both an embedding and a direct answer, so nothing can be paired")
    scores, folds = _probe(X, y, thresholds)
    row = {image: i for i, image in enumerate(ids)}
    pick = np.array([row[image] for image in common], dtype=int)
    probe = _probe_grid(common, y[pick], scores[pick])
    vqa = take_images(vqa_grid, common)
    check_same_labels(probe, vqa)
    weights = weights_for(vqa, thresholds.bootstrap_replicates, thresholds.seed)
    _, probe_ba = mean_ba(probe, weights)
    vqa_v, vqa_ba = mean_ba(vqa, weights)
    gap = probe_ba - vqa_ba
    limit = thresholds.embedding_separability["max_reasoning_gap"]
    return verdict_from_replicates(
        finding="embedding_separability",
        metric="reasoning_gap",
        point=float(gap[0]),
        replicates=gap[1:],
        threshold=limit,
        direction="le",
        confidence=thresholds.confidence,
        n_images=len(common),
        description=(
            "the direct answers must use what the vision encoder separates: a linear probe may beat "
            f"them by at most {limit:.2f} balanced accuracy"
        ),
        details={
            "probe_ba": _r(probe_ba[0]),
            "vqa_ba": _r(vqa_ba[0]),
            "folds": folds,
            "n_embedded": len(ids),
            "vqa_per_variant": [{"variant": v, "value": _r(vqa_v[0, j])} for j, v in enumerate(vqa.variants)],
        },
    )


def tsne_points(embeddings: np.ndarray, seed: int) -> np.ndarray:
    """(n, 2) t-SNE coordinates for the report's scatter (descriptive only, never a verdict).

    Perplexity min(30, (n − 1) / 3) keeps it valid for small samples (it must stay below n).
    OpenMP is held to one thread: the Barnes–Hut gradient of a few hundred points gains
    nothing from threads, and on a busy machine its spin-waiting threads turned a 0.1 s
    fit into tens of seconds.
    """
    X = np.asarray(embeddings, dtype=float)
    n = X.shape[0]
    if n < 4:
        raise ValueError(f"t-SNE needs at least 4 points, got {n}")
    perplexity = min(30.0, (n - 1) / 3.0)
    with threadpool_limits(limits=1, user_api="openmp"):
        return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(X)


def _r(x) -> float | None:
    x = float(x)
    return None if np.isnan(x) else round(x, 4)
