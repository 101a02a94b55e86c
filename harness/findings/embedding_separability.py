"""Finding 5, embedding_separability: does the vision encoder see the difference, and is it used?

Two verdicts on pooled vision-encoder embeddings (SPEC §4.5), both resting on one
cross-validated linear probe that is refitted in every bootstrap replicate
(harness/stats/probe.py says why):

- encoder_separates: the probe's out-of-fold AUROC must have a lower bound
  ≥ min_probe_auroc. Failing = a weak visual representation: the information is not
  (linearly) there to begin with.
- answers_use_encoder: reasoning gap = BA(probe) − BA(direct VQA), paired by image;
  the upper bound must be ≤ max_reasoning_gap. Failing = the encoder separates the
  classes but the answers do not use it, a downstream (language-side) failure. It is
  judged only where the encoder test shows separation (robust): with no separation
  there is no signal for the answers to use, and a "gap" would only be two weak arms
  compared. On the direct-answer arm a refusal counts as a coin flip (0.5): it carries
  no information, so a model that refuses and knows nothing is not said to hide
  knowledge. The answered-only gap is reported beside it.

Both bounds are percentile bounds re-centred on the estimate (stats/bootstrap.py
recentred_bounds): a probe refitted on a resample scores a little lower than the one
fitted on the sample, and that resampling bias must not move the verdict. The report
also gets a t-SNE scatter and the silhouette score, descriptive only.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
from sklearn.manifold import TSNE
from sklearn.metrics import silhouette_score
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from ..core import HarnessError, Thresholds
from ..stats.bootstrap import bootstrap_weights, recentred_bounds
from ..stats.metrics import grid_balanced_accuracy
from ..stats.probe import TooFewForProbe, components, effective_folds, fold_of, refitted_scores, weighted_auroc
from ..verdict import Verdict
from .finetune_gain import common_image_ids, mean_ba, take_images
from .grid import Grid
from .prompt_sensitivity import NotApplicable

REFUSAL_AS_COIN_FLIP = 0.5


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


@dataclass
class ProbeFit:
    """The probe of one subject: out-of-fold scores per replicate (row 0: the sample) and their weights."""

    image_ids: list[str]
    is_pos: np.ndarray
    scores: np.ndarray  # (1 + B, n); > 0 predicts positive
    weights: np.ndarray  # (1 + B, n)
    auroc: np.ndarray  # (1 + B,)
    folds: int
    dim: int
    n_components: int


_FITS: dict[str, ProbeFit] = {}  # both embedding tests of a subject share one fit
FIT_CACHE_LIMIT = 64  # fits kept per process (the calibration study raises it to reuse more)


def fit_probe(embeddings, is_pos, image_ids, thresholds: Thresholds) -> ProbeFit:
    """Fit (or reuse) the probe and its refitted bootstrap replicates; a class too small to
    cross-validate is a skip, not a failure."""
    X, y, ids = _checked(embeddings, is_pos, image_ids)
    cfg = thresholds.embedding_separability
    replicates, seed = int(cfg["probe_replicates"]), int(thresholds.seed)
    key = hashlib.sha256(b"".join([X.tobytes(), y.tobytes(), "\0".join(ids).encode(),
                                   repr((cfg["folds"], cfg["components"], replicates, seed)).encode()])).hexdigest()
    if key in _FITS:
        return _FITS[key]
    try:
        folds = fold_of(y, cfg["folds"], seed)
        used = effective_folds(y, cfg["folds"])
    except TooFewForProbe as exc:
        raise NotApplicable(str(exc)) from exc
    Z = components(X, int(cfg["components"]))
    weights = np.vstack([np.ones((1, len(ids))), bootstrap_weights(len(ids), replicates, seed, strata=y.astype(int))])
    scores = refitted_scores(Z, y, folds, weights)
    fit = ProbeFit(ids, y, scores, weights, weighted_auroc(scores, y, weights), used, int(X.shape[1]), int(Z.shape[1]))
    if len(_FITS) >= FIT_CACHE_LIMIT:
        _FITS.clear()
    _FITS[key] = fit
    return fit


def silhouette(X: np.ndarray, y: np.ndarray) -> float | None:
    """Silhouette of the two classes on standardized embeddings (descriptive; None when undefined)."""
    if y.all() or not y.any() or y.shape[0] < 3:
        return None
    return round(float(silhouette_score(StandardScaler().fit_transform(X), y.astype(int))), 4)


def _verdict(point: float, replicates: np.ndarray, **kwargs) -> Verdict:
    low, high = recentred_bounds(point, replicates, kwargs["confidence"])
    return Verdict(finding="embedding_separability", value=float(point), ci_low=float(low), ci_high=float(high), **kwargs)


def encoder_separates(embeddings: np.ndarray, is_pos: np.ndarray, image_ids, thresholds: Thresholds) -> Verdict:
    """Verdict: the probe's out-of-fold AUROC lower bound must reach min_probe_auroc."""
    fit = fit_probe(embeddings, is_pos, image_ids, thresholds)
    limit = thresholds.embedding_separability["min_probe_auroc"]
    return _verdict(
        float(fit.auroc[0]), fit.auroc[1:],
        metric="probe_auroc",
        threshold=float(limit),
        direction="ge",
        confidence=thresholds.confidence,
        n_images=len(fit.image_ids),
        description=f"a linear probe on the vision encoder's embeddings must separate the classes (AUROC ≥ {limit:.2f})",
        details={"silhouette": silhouette(np.asarray(embeddings, dtype=float), fit.is_pos), "folds": fit.folds,
                 "dim": fit.dim, "components": fit.n_components, "n": len(fit.image_ids),
                 "probe_replicates": int(fit.weights.shape[0] - 1)},
    )


def answers_use_encoder(
    embeddings: np.ndarray, is_pos: np.ndarray, image_ids, vqa_grid: Grid, thresholds: Thresholds
) -> Verdict:
    """Verdict: BA(probe) − BA(direct VQA), paired by image, upper bound ≤ max_reasoning_gap.

    The probe is fitted on every embedded image (the same fit as encoder_separates) and
    the gap taken over the images both arms have, with the probe's replicate weights
    restricted to them, so each replicate pairs a refitted probe with the same resample
    of direct answers.
    """
    separates = encoder_separates(embeddings, is_pos, image_ids, thresholds)
    if separates.label != "robust":
        raise NotApplicable(
            f"the encoder does not show separation (probe AUROC {separates.value:.3f}, lower bound "
            f"{separates.ci_low:.3f} < {separates.threshold:.2f}: {separates.label}), so there is no encoder "
            "signal for the answers to use; see test_encoder_separates_classes")
    fit = fit_probe(embeddings, is_pos, image_ids, thresholds)
    common = common_image_ids(vqa_grid.image_ids, fit.image_ids)
    if not common:
        raise NotApplicable("no image has both an embedding and a direct answer, so nothing can be paired")
    row = {image: i for i, image in enumerate(fit.image_ids)}
    pick = np.array([row[image] for image in common], dtype=int)
    vqa = take_images(vqa_grid, common)
    differ = [image for image, a, b in zip(common, fit.is_pos[pick], vqa.is_pos) if bool(a) != bool(b)]
    if differ:
        raise HarnessError(f"{len(differ)} image(s) carry different labels in the embeddings and the answers, "
                           f"e.g. {differ[:3]}")
    weights = fit.weights[:, pick]
    predicted_pos = fit.scores[:, pick] > 0.0  # (1 + B, m)
    y = fit.is_pos[pick]
    hits = (predicted_pos == y[None, :]).astype(float)
    probe_ba = 0.5 * (np.sum(weights * hits * y, axis=1) / np.sum(weights * y, axis=1)
                      + np.sum(weights * hits * ~y, axis=1) / np.sum(weights * ~y, axis=1))
    vqa_v, vqa_ba = mean_ba(vqa, weights, refusal_credit=REFUSAL_AS_COIN_FLIP)
    answered = grid_balanced_accuracy(vqa.correct, vqa.answered, vqa.is_pos, weights[:1])
    gap = probe_ba - vqa_ba
    limit = thresholds.embedding_separability["max_reasoning_gap"]
    return _verdict(
        float(gap[0]), gap[1:],
        metric="reasoning_gap",
        threshold=float(limit),
        direction="le",
        confidence=thresholds.confidence,
        n_images=len(common),
        description=(
            "the direct answers must use what the vision encoder separates: a linear probe may beat "
            f"them by at most {limit:.2f} balanced accuracy (a refusal counts as a coin flip)"
        ),
        details={
            "probe_ba": _r(probe_ba[0]),
            "vqa_ba": _r(vqa_ba[0]),
            "answered_only_gap": _r(probe_ba[0] - np.nanmean(answered[0])),
            "vqa_refusal_rate": _r(vqa.refused[vqa.valid].mean() if vqa.valid.any() else np.nan),
            "probe_auroc": _r(separates.value),
            "folds": fit.folds,
            "n_embedded": len(fit.image_ids),
            "vqa_per_variant": [{"variant": v, "value": _r(vqa_v[0, j])} for j, v in enumerate(vqa.variants)],
        },
    )


TSNE_MAX_POINTS = 200


def scatter_sample(is_pos: np.ndarray, limit: int = TSNE_MAX_POINTS) -> np.ndarray:
    """Indices of at most `limit` embedded images for the scatter (the first of each class,
    balanced when the classes allow): t-SNE cost grows fast, and a few hundred points show it."""
    is_pos = np.asarray(is_pos, dtype=bool)
    half = limit // 2
    pos, neg = np.flatnonzero(is_pos), np.flatnonzero(~is_pos)
    take_pos = min(pos.size, max(half, limit - neg.size))
    take_neg = min(neg.size, limit - take_pos)
    return np.sort(np.r_[pos[:take_pos], neg[:take_neg]])


def tsne_points(embeddings: np.ndarray, seed: int) -> np.ndarray:
    """(n, 2) t-SNE coordinates for the report's scatter (descriptive only, never a verdict).

    Perplexity min(30, (n − 1) / 3) keeps it valid for small samples (it must stay below n).
    OpenMP is held to one thread: the Barnes–Hut gradient of a few hundred points gains
    nothing from threads, and on a busy machine its spin-waiting threads turned a 0.1 s
    fit into tens of seconds. Callers pass at most TSNE_MAX_POINTS points (the probe
    embeds more images than a scatter needs).
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
