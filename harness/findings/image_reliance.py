"""Finding 6 (in progress, issue 20), image_reliance: does the answer depend on the image?

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
uses (an image and its stand-in move together). Not yet done: the verdicts and their
thresholds (`[image_reliance]`), the fill stage, the behaviour tests, the calibration.
"""

from __future__ import annotations

import numpy as np

from ..data.content_free import real_image_id
from .grid import Grid
from .near_random import aggregate, per_variant_ba


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
