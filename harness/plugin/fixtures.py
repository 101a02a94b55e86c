"""Fixtures the behaviour tests use: the subject under test and the verdict check."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import pytest

from ..core import HarnessError, ModelSpec, NotApplicable, TaskSpec, Thresholds
from ..findings.grid import Grid, grid_from_table, weights_for
from ..stats.bootstrap import percentile_bounds
from ..verdict import FragilityFound, Verdict
from .state import SUITE_KEY, VERDICT_KEY

SUBJECT_PARAM = "subject"


class TooManyErrors(HarnessError):
    """More errors (backend failures, unreadable images) than thresholds.toml allows:
    the test errors instead of passing."""


@dataclass
class Subject:
    """One model on one task: its stored responses as a table and as a grid.

    The other stages (the base model's answers, descriptions, embeddings) are read on
    demand; a stage that cannot run for this subject raises NotApplicable (a skip).
    """

    model: ModelSpec
    task: TaskSpec
    table: pd.DataFrame
    grid: Grid
    thresholds: Thresholds
    variants: list
    suite: object = None

    def _factory(self):
        return backend_factory(self.suite)

    def base_grid(self) -> Grid:
        if not self.model.base_model:
            raise NotApplicable(f"{self.model.name} names no base_model")
        table = self.suite.table(self.model.base_model, self.task.key, self._factory())
        return checked_grid(self.model.base_model, self.task.key, table, self.suite)

    def previous_grid(self) -> Grid:
        if not self.model.previous:
            raise NotApplicable(f"{self.model.name} names no previous version")
        table = self.suite.table(self.model.previous, self.task.key, self._factory())
        return checked_grid(self.model.previous, self.task.key, table, self.suite)

    def description_grid(self) -> Grid:
        table = self.suite.description_table(self.model.name, self.task.key, self._factory())
        return checked_grid(self.model.name, self.task.key, table, self.suite)

    def embeddings(self):
        return self.suite.embeddings(self.model.name, self.task.key, self._factory())


def backend_factory(suite):
    from ..backends import make_backend

    strict = suite.settings.strict_checkpoints
    return lambda spec: make_backend(spec, cache_dir=suite.settings.cache_dir, strict_checkpoints=strict)


@pytest.fixture
def subject(request) -> Subject:
    suite = request.config.stash[SUITE_KEY]
    model_name, task_key = request.param
    table = suite.table(model_name, task_key, backend_factory(suite))
    grid = checked_grid(model_name, task_key, table, suite, [v.key for v in suite.variants])
    return Subject(suite.model(model_name), suite.task(task_key), table, grid, suite.thresholds, suite.variants, suite)


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


def verdict_thresholds(request) -> Thresholds:
    return request.config.stash[SUITE_KEY].thresholds


@pytest.fixture
def assert_robust(request):
    """Call a finding's evaluator, keep its verdict for the report, fail if fragile.

    An inconclusive verdict fails too unless thresholds.toml says `inconclusive = "pass"`.
    A finding that does not apply to the subject is a skip with its reason, never a pass.
    """

    def check(evaluate, *args, **kwargs) -> Verdict:
        __tracebackhide__ = True
        try:
            verdict = evaluate(*args, **kwargs)
        except NotApplicable as exc:
            pytest.skip(f"not applicable: {exc}")
        request.node.stash[VERDICT_KEY] = verdict
        if verdict.label == "fragile" or (verdict.label == "inconclusive" and verdict_thresholds(request).inconclusive == "fail"):
            raise FragilityFound(verdict.message())
        return verdict

    return check
