"""Fixtures the behaviour tests use: the subject under test and the verdict check."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import pytest

from ..core import HarnessError, ModelSpec, TaskSpec, Thresholds
from ..findings.grid import Grid, grid_from_table
from ..findings.prompt_sensitivity import NotApplicable
from ..verdict import FragilityFound, Verdict
from .state import SUITE_KEY, VERDICT_KEY

SUBJECT_PARAM = "subject"


class TooManyErrors(HarnessError):
    """More backend errors than thresholds.toml allows: the test errors instead of passing."""


@dataclass
class Subject:
    """One model on one task: its stored responses as a table and as a grid."""

    model: ModelSpec
    task: TaskSpec
    table: pd.DataFrame
    grid: Grid
    thresholds: Thresholds
    variants: list


def backend_factory(suite):
    from ..backends import make_backend

    return lambda spec: make_backend(spec, cache_dir=suite.settings.cache_dir)


@pytest.fixture
def subject(request) -> Subject:
    suite = request.config.stash[SUITE_KEY]
    model_name, task_key = request.param
    table = suite.table(model_name, task_key, backend_factory(suite))
    grid = grid_from_table(table, [v.key for v in suite.variants])
    limit = suite.thresholds.max_error_rate
    if grid.error_rate > limit:
        sample = table.loc[table["outcome"] == "error", "error"].dropna().head(3).tolist()
        raise TooManyErrors(
            f"{model_name} × {task_key}: {grid.error_rate:.1%} of responses are backend errors "
            f"(limit {limit:.1%}); errors are excluded, never scored, but too many make the verdict "
            f"meaningless. First errors: {sample}"
        )
    return Subject(suite.model(model_name), suite.task(task_key), table, grid, suite.thresholds, suite.variants)


@pytest.fixture
def assert_robust(request):
    """Call a finding's evaluator, keep its verdict for the report, fail if fragile.

    A finding that does not apply to the subject is a skip with its reason, never a pass.
    """

    def check(evaluate, *args, **kwargs) -> Verdict:
        try:
            verdict = evaluate(*args, **kwargs)
        except NotApplicable as exc:
            pytest.skip(f"not applicable: {exc}")
        request.node.stash[VERDICT_KEY] = verdict
        if not verdict.passed:
            raise FragilityFound(verdict.message())
        return verdict

    return check
