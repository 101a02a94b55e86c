"""Finding 6, image_reliance: does the answer depend on the image?

The estimands, on a subject's closed-form grid and the grid of the same prompts asked with
content-free stand-ins of its images (harness/data/content_free.py):

- `unchanged_share`: the share of (image, prompt) answers that stay the same when the real
  image is replaced, a refusal counting as its own outcome; cells where either answer is an
  error are left out. A model that ignores the image keeps every answer (1.0); one that
  looks changes many. CheckList type: invariance, inverted (the answer must NOT be
  invariant to the image).
- `blind_balanced_accuracy`: balanced accuracy of the stand-ins' answers, scored against
  the real image's class and aggregated over prompts as near_random does. Above 0.5 the
  prompt or a text prior gives the class away, and every accuracy verdict of that model
  and task is suspect.

Both are computed per bootstrap replicate with the image-clustered weights every finding
uses (an image and its stand-in move together), and judged on one-sided BCa bounds
(direction "le"): the unchanged share's upper bound must be at most
`max_unchanged_without_image`, the blind balanced accuracy's at most 0.5 +
`max_blind_margin` (thresholds.toml [image_reliance]; docs/statistics.md says how the
defaults were chosen). A subject without stand-in answers for some variant (the
`variants` subset) is judged on the variants it has.
"""

from __future__ import annotations

import numpy as np

from ..core import NotApplicable, Thresholds
from ..data.content_free import real_image_id
from ..stats.bootstrap import jackknife_weights
from ..verdict import Verdict, verdict_from_replicates
from .grid import Grid, weights_for
from .near_random import CHANCE, aggregate, per_variant_ba


def aligned(real: Grid, blank: Grid) -> Grid:
    """The stand-ins' grid in the real grid's image and variant order (missing cells: errors)."""
    position = {real_image_id(image_id): row for row, image_id in enumerate(blank.image_ids)}
    columns = [blank.variants.index(v) if v in blank.variants else None for v in real.variants]
    outcome = np.full(real.outcome.shape, "error", dtype=object)
    for row, image_id in enumerate(real.image_ids):
        source = position.get(image_id)
        if source is None:
            continue
        for col, other in enumerate(columns):
            if other is not None:
                outcome[row, col] = blank.outcome[source, other]
    return Grid(image_ids=list(real.image_ids), variants=list(real.variants), is_pos=real.is_pos, outcome=outcome)


def unchanged_share(real: Grid, blank: Grid, weights: np.ndarray) -> np.ndarray:
    """(1 + B,) share of cells answered both ways whose outcome is the same; row 0 the estimate."""
    blank = aligned(real, blank)
    both = real.valid & blank.valid
    same = (real.outcome == blank.outcome) & both
    # pooled over prompts: one share over every (image, prompt) cell, not a mean of per-prompt shares
    num = (weights @ same.astype(float)).sum(axis=1)
    den = (weights @ both.astype(float)).sum(axis=1)
    out = np.full(num.shape, np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


def blind_balanced_accuracy(real: Grid, blank: Grid, weights: np.ndarray, how: str = "mean") -> np.ndarray:
    """(1 + B,) balanced accuracy of the stand-ins' answers against the real classes,
    aggregated over prompts (`how`: mean or median, as near_random)."""
    return aggregate(per_variant_ba(aligned(real, blank), weights), how)


def _common(real: Grid, blank: Grid) -> tuple[Grid, Grid]:
    """The real grid cut to the variants the stand-ins were asked with (the `variants`
    subset), and the stand-ins' grid aligned to it."""
    shared = [v for v in real.variants if v in blank.variants]
    if not shared:
        raise NotApplicable("no prompt variant was asked with the content-free images")
    real = real.subset(shared)
    return real, aligned(real, blank)


def answers_depend_on_image(real: Grid, blank: Grid, thresholds: Thresholds) -> Verdict:
    """Robust when the share of answers that stay the same without the image is shown to be
    at most `max_unchanged_without_image` (upper bound)."""
    cfg = thresholds.image_reliance
    real, blank = _common(real, blank)
    weights = weights_for(real, thresholds.bootstrap_replicates, thresholds.seed)
    share = unchanged_share(real, blank, weights)
    jack = unchanged_share(real, blank, jackknife_weights(real.n_images))
    both = real.valid & blank.valid
    return verdict_from_replicates(
        finding="image_reliance", metric="unchanged_share", point=float(share[0]), replicates=share[1:],
        jackknife=jack, threshold=cfg["max_unchanged_without_image"], direction="le",
        confidence=thresholds.confidence, n_images=real.n_images,
        description=(f"the share of answers that stay the same when a content-free image replaces the real one "
                     f"must be at most {cfg['max_unchanged_without_image']:.2f}"),
        details={"cells_compared": int(both.sum()), "n_variants": len(real.variants),
                 "per_variant": [{"variant": v, "value": _r(_share(real.outcome[:, j], blank.outcome[:, j]))}
                                 for j, v in enumerate(real.variants)],
                 "blank_refusal_rate": _r(float(blank.refused[blank.valid].mean()) if blank.valid.any() else np.nan)},
    )


def no_answer_without_image(real: Grid, blank: Grid, thresholds: Thresholds) -> Verdict:
    """Robust when the balanced accuracy of the stand-ins' answers is shown to be at most
    0.5 + `max_blind_margin` (upper bound): neither the prompt nor a text prior gives the class away."""
    cfg = thresholds.image_reliance
    how = thresholds.near_random["aggregate"]
    real, blank = _common(real, blank)
    weights = weights_for(real, thresholds.bootstrap_replicates, thresholds.seed)
    ba = blind_balanced_accuracy(real, blank, weights, how)
    jack = blind_balanced_accuracy(real, blank, jackknife_weights(real.n_images), how)
    threshold = CHANCE + cfg["max_blind_margin"]
    return verdict_from_replicates(
        finding="image_reliance", metric=f"blind_balanced_accuracy_{how}", point=float(ba[0]), replicates=ba[1:],
        jackknife=jack, threshold=threshold, direction="le", confidence=thresholds.confidence,
        n_images=real.n_images,
        description=(f"balanced accuracy with content-free images (the class still the real image's) must stay "
                     f"within {cfg['max_blind_margin']:.2f} of chance"),
        details={"chance": CHANCE, "aggregate": how, "n_variants": len(real.variants),
                 "blank_refusal_rate": _r(float(blank.refused[blank.valid].mean()) if blank.valid.any() else np.nan)},
    )


def _share(a: np.ndarray, b: np.ndarray) -> float:
    both = (a != "error") & (b != "error")
    return float((a[both] == b[both]).mean()) if both.any() else np.nan


def _r(x) -> float | None:
    x = float(x)
    return None if np.isnan(x) else round(x, 4)
