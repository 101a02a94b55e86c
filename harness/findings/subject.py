"""One model on one task, as the verdicts read it: its stored answers at one look.

A Subject is the subject of a behaviour test at one look of the run's design (issue 18):
its closed-form grid at that look's images per class, the thresholds with that look's
confidence, and the other stages (the base model's answers, descriptions, embeddings)
read on demand at the same look. `at_look(k)` gives the same subject at another look.
Both the tests (through the plugin's fixtures) and the fill phase's adaptive looks build
subjects here, so the looks the fill draws are exactly the ones the tests judge. Knows
nothing of pytest.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable

import pandas as pd

from ..core import HarnessError, ModelSpec, NotApplicable, TaskSpec, Thresholds
from ..stats.bootstrap import percentile_bounds
from .grid import Grid, grid_from_table, weights_for


class TooManyErrors(HarnessError):
    """More errors (backend failures, unreadable images) than thresholds.toml allows:
    the test errors instead of passing."""


@dataclass
class Subject:
    """One model on one task at one look: its stored responses as a table and as a grid.

    The other stages (the base model's answers, descriptions, embeddings) are read on
    demand, at this look; a stage that cannot run for this subject raises NotApplicable
    (a skip).
    """

    model: ModelSpec
    task: TaskSpec
    table: pd.DataFrame
    grid: Grid
    thresholds: Thresholds  # `confidence` is this look's
    variants: list
    suite: object = None
    factory: Callable = None
    look: int = 0  # index into suite.design.looks
    n_per_class: int = 0  # images per class asked for at this look

    def _other(self, name: str) -> Grid:
        table = self.suite.table(name, self.task.key, self.factory, n=self.n_per_class)
        return checked_grid(name, self.task.key, table, self.suite)

    def base_grid(self) -> Grid:
        if not self.model.base_model:
            raise NotApplicable(f"{self.model.name} names no base_model")
        return self._other(self.model.base_model)

    def previous_grid(self) -> Grid:
        if not self.model.previous:
            raise NotApplicable(f"{self.model.name} names no previous version")
        return self._other(self.model.previous)

    def blank_grid(self) -> Grid:
        """The same prompts' answers about content-free stand-ins of this look's images."""
        table = self.suite.blank_table(self.model.name, self.task.key, self.factory, n=self.n_per_class)
        return checked_grid(self.model.name, self.task.key, table, self.suite)

    def has_blank(self) -> bool:
        """Did the run ask about this subject's content-free stand-ins (at its first look)?
        Read without filling: a note on an accuracy verdict must never make a model call."""
        first = self.suite.design.looks[0]
        return ("blank", self.model.name, self.task.key, first) in self.suite.results

    def description_grid(self) -> Grid:
        return self._descriptions(self.model.name)

    def previous_description_grid(self) -> Grid:
        """The previous version's descriptions of the same images, read by the same diagnoser."""
        if not self.model.previous:
            raise NotApplicable(f"{self.model.name} names no previous version")
        return self._descriptions(self.model.previous)

    def _descriptions(self, name: str) -> Grid:
        table = self.suite.description_table(name, self.task.key, self.factory, n=self.n_per_class)
        return checked_grid(name, self.task.key, table, self.suite)

    def embeddings(self):
        return self.suite.embeddings(self.model.name, self.task.key, self.factory, n=self.n_per_class)

    @property
    def looks(self) -> int:
        return len(self.suite.design.looks)

    def at_look(self, look: int) -> "Subject":
        return make_subject(self.suite, self.model.name, self.task.key, self.factory, look)

    def images_at(self, look: int) -> int:
        """Images in this subject's sample at a look (short when the data run out)."""
        return len(self.suite.items(self.task, self.suite.design.looks[look]))


def make_subject(suite, model_name: str, task_key: str, factory: Callable, look: int = 0) -> Subject:
    """The subject at one look; fills the store on demand if the fill phase did not."""
    design = suite.design
    n = design.looks[look]
    thresholds = dataclasses.replace(suite.thresholds, confidence=design.confidences[look])
    table = suite.table(model_name, task_key, factory, n=n)
    grid = checked_grid(model_name, task_key, table, suite, [v.key for v in suite.variants])
    return Subject(suite.model(model_name), suite.task(task_key), table, grid, thresholds, suite.variants, suite,
                   factory, look, n)


def checked_grid(model_name: str, task_key: str, table: pd.DataFrame, suite, variants=None) -> Grid:
    """The response grid, after checking the share of errors against the limit.

    Errors are excluded from every metric; too many of them would leave a verdict on the
    images that happened to work. The test errors when the error share is *shown* to
    exceed max_error_rate (its one-sided lower bound, images resampled as everywhere
    else, lies above it), so a few stray timeouts on a large share cannot stop a gate.
    """
    grid = grid_from_table(table, variants)
    limit = suite.thresholds.max_error_rate
    low = error_share_lower_bound(grid, suite.thresholds)
    if low > limit:
        sample = table.loc[table["outcome"] == "error", "error"].dropna().head(3).tolist()
        raise TooManyErrors(
            f"{model_name} × {task_key}: {grid.error_rate:.1%} of responses are errors "
            "(backend failures or unreadable images), one-sided "
            f"{suite.thresholds.confidence:.0%} lower bound {low:.1%} "
            f"(limit {limit:.1%}); errors are excluded, never scored, but too many make the verdict "
            f"meaningless. First errors: {sample}"
        )
    return grid


def error_share_lower_bound(grid: Grid, thresholds: Thresholds) -> float:
    """One-sided lower bound of the share of error cells, resampling images (0 without errors)."""
    errors = ~grid.valid
    if not errors.any():
        return 0.0
    weights = weights_for(grid, thresholds.bootstrap_replicates, thresholds.seed)
    per_image = errors.mean(axis=1)
    shares = (weights @ per_image) / weights.sum(axis=1)
    return float(percentile_bounds(shares[1:], thresholds.confidence)[0])
