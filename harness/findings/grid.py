"""The response table reshaped as an image × variant grid, the form every statistic uses.

Rows are images (the bootstrap unit: all prompts of one image move together),
columns are prompt variants. Error cells are marked invalid and excluded, never
scored as wrong.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd

from ..stats.bootstrap import bootstrap_weights


@dataclass
class Grid:
    image_ids: list[str]
    variants: list[str]
    is_pos: np.ndarray  # (n,) bool
    outcome: np.ndarray  # (n, k) object: positive / negative / refused / error

    @property
    def n_images(self) -> int:
        return len(self.image_ids)

    @property
    def valid(self) -> np.ndarray:
        return self.outcome != "error"

    @property
    def refused(self) -> np.ndarray:
        return self.outcome == "refused"

    @property
    def answered(self) -> np.ndarray:
        return self.valid & ~self.refused

    @property
    def correct(self) -> np.ndarray:
        labels = np.where(self.is_pos, "positive", "negative")[:, None]
        return self.outcome == labels

    @property
    def error_rate(self) -> float:
        return float((~self.valid).mean()) if self.outcome.size else 0.0

    def column(self, variant: str) -> np.ndarray:
        return self.outcome[:, self.variants.index(variant)]

    def subset(self, variants: list[str]) -> "Grid":
        idx = [self.variants.index(v) for v in variants]
        return Grid(self.image_ids, list(variants), self.is_pos, self.outcome[:, idx])


def grid_from_table(table: pd.DataFrame, variants: list[str] | None = None) -> Grid:
    """Pivot a response table (one row per image × variant) into a Grid."""
    if variants is None:
        variants = list(dict.fromkeys(table["variant"]))
    image_ids = sorted(dict.fromkeys(table["image_id"]))
    labels = table.drop_duplicates("image_id").set_index("image_id")["label"]
    pivot = table.pivot(index="image_id", columns="variant", values="outcome")
    pivot = pivot.reindex(index=image_ids, columns=variants).fillna("error")
    return Grid(
        image_ids=image_ids,
        variants=list(variants),
        is_pos=(labels.reindex(image_ids) == "positive").to_numpy(),
        outcome=pivot.to_numpy(dtype=object),
    )


def weights_for(grid: Grid, replicates: int, seed: int) -> np.ndarray:
    """Point-estimate weights (row 0: all ones) stacked on stratified bootstrap weights.

    Stratifying by class keeps both classes in every replicate, so balanced accuracy
    is always defined. The draw depends only on the images' classes, the number of
    replicates and the seed, so the tests of one subject (and the two arms of a paired
    comparison) share one read-only matrix instead of drawing it again.
    """
    return _cached_weights(np.asarray(grid.is_pos, dtype=bool).tobytes(), int(replicates), int(seed))


@lru_cache(maxsize=32)
def _cached_weights(is_pos: bytes, replicates: int, seed: int) -> np.ndarray:
    strata = np.frombuffer(is_pos, dtype=bool).astype(int)
    boot = bootstrap_weights(strata.size, replicates, seed, strata=strata)
    weights = np.vstack([np.ones((1, strata.size)), boot])
    weights.flags.writeable = False
    return weights

