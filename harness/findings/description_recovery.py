"""Finding 4, description_recovery: does the model know more than its direct answers show?

The model describes each image in free text; a text-only diagnoser reads the
description and answers the closed question. If the diagnoser, working only from the
model's own words, classifies better than the model does when asked directly, the
model holds knowledge its direct answers suppress (SPEC §4.4).

Knowledge gap = BA(descriptions) − BA(direct VQA), each the mean over its own variants
(description variants are describe prompt × diagnoser template pairs, VQA variants are
the closed-form prompts). The two arms have different prompts, so they are paired by
image only: one set of image weights drives both arms' replicates. Passes iff the
upper bound of the gap ≤ max_latent_gap.

A refusal carries no information about what the model knows, so on both arms it
scores as a coin flip (0.5), never as a wrong answer: counted wrong on the direct arm,
a model that refuses often and knows nothing would sit below chance there, and a
chance-level diagnoser would "recover knowledge" it never had.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..core import Thresholds
from ..stats.bootstrap import jackknife_weights
from ..stats.metrics import grid_balanced_accuracy
from ..verdict import Verdict, verdict_from_replicates
from .finetune_gain import align_images, mean_ba
from .grid import Grid, grid_from_table, weights_for


def description_variant(describe: str, template: str) -> str:
    """The variant key of one describe prompt read through one diagnoser template."""
    return f"{describe}/{template}"


def description_grid_from_table(
    table: pd.DataFrame, describes: list[str] | None = None, templates: list[str] | None = None
) -> Grid:
    """Pivot a diagnoser table (image_id, label, describe, template, outcome) into a Grid.

    Each (describe prompt, diagnoser template) pair becomes one variant, so balanced
    accuracy is computed per pair and then averaged, exactly as prompt variants are for
    direct VQA; a missing cell is an error (excluded), never a wrong answer. Variants
    are describe-major; `describes` / `templates` fix the order (default: first appearance).
    """
    missing = {"image_id", "label", "describe", "template", "outcome"} - set(table.columns)
    if missing:
        raise ValueError(f"description table lacks column(s) {sorted(missing)}")
    keyed = table.assign(variant=[description_variant(d, t) for d, t in zip(table["describe"], table["template"])])
    present = set(keyed["variant"])
    variants = [
        description_variant(d, t)
        for d in (describes or dict.fromkeys(table["describe"]))
        for t in (templates or dict.fromkeys(table["template"]))
        if description_variant(d, t) in present
    ]
    return grid_from_table(keyed[["image_id", "label", "variant", "outcome"]], variants)


REFUSAL_AS_COIN_FLIP = 0.5


def evaluate(description_grid: Grid, vqa_grid: Grid, thresholds: Thresholds) -> Verdict:
    """Verdict on the knowledge gap BA(descriptions) − BA(direct VQA), paired by image.

    A refusal scores as a coin flip on both arms (module docstring); the answered-only
    gap, refusals left out, is reported beside it.
    """
    limit = thresholds.description_recovery["max_latent_gap"]
    desc, vqa = align_images(description_grid, vqa_grid)
    weights = weights_for(desc, thresholds.bootstrap_replicates, thresholds.seed)
    desc_v, desc_ba = mean_ba(desc, weights, refusal_credit=REFUSAL_AS_COIN_FLIP)
    vqa_v, vqa_ba = mean_ba(vqa, weights, refusal_credit=REFUSAL_AS_COIN_FLIP)
    gap = desc_ba - vqa_ba
    jack = jackknife_weights(desc.n_images)
    gap_jack = (mean_ba(desc, jack, refusal_credit=REFUSAL_AS_COIN_FLIP)[1]
                - mean_ba(vqa, jack, refusal_credit=REFUSAL_AS_COIN_FLIP)[1])
    answered_gap = _answered_ba(desc) - _answered_ba(vqa)
    return verdict_from_replicates(
        finding="description_recovery",
        metric="knowledge_gap",
        point=float(gap[0]),
        replicates=gap[1:],
        jackknife=gap_jack,
        threshold=limit,
        direction="le",
        confidence=thresholds.confidence,
        n_images=desc.n_images,
        description=(
            "a diagnoser reading the model's own descriptions must not beat the model's direct answers "
            f"by more than {limit:.2f} balanced accuracy (no suppressed knowledge; a refusal counts as a coin flip)"
        ),
        details={
            "desc_ba": _r(desc_ba[0]),
            "vqa_ba": _r(vqa_ba[0]),
            "answered_only_gap": _r(answered_gap),
            "desc_refusal_rate": _r(_refusal_rate(desc)),
            "vqa_refusal_rate": _r(_refusal_rate(vqa)),
            "desc_error_rate": _r(desc.error_rate),
            "per_variant": [{"variant": v, "value": _r(desc_v[0, j])} for j, v in enumerate(desc.variants)],
            "vqa_per_variant": [{"variant": v, "value": _r(vqa_v[0, j])} for j, v in enumerate(vqa.variants)],
        },
    )


def _answered_ba(grid: Grid) -> float:
    """Mean BA over variants on answered cells only (refusals left out, as errors are)."""
    ba = grid_balanced_accuracy(grid.correct, grid.answered, grid.is_pos, np.ones((1, grid.n_images)))
    return float(np.nanmean(ba[0])) if np.isfinite(ba[0]).any() else float("nan")


def _refusal_rate(grid: Grid) -> float:
    return float(grid.refused[grid.valid].mean()) if grid.valid.any() else float("nan")


def _r(x) -> float | None:
    x = float(x)
    return None if np.isnan(x) else round(x, 4)
