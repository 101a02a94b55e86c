"""Fixtures the behaviour tests use: the subject under test and the verdict check.

The subject and its looks live in harness/findings/subject.py and the checks and their
sequential judging in harness/findings/checks.py (pytest-free, shared with the fill
phase); this module only hands them to pytest and turns a verdict into a pass or a failure.
"""

from __future__ import annotations

import pytest

from ..core import NotApplicable, Thresholds
from ..findings.checks import judge
from ..findings.subject import Subject, TooManyErrors, make_subject  # noqa: F401 - TooManyErrors: re-exported
from ..verdict import FragilityFound, Verdict
from .state import SUITE_KEY, VERDICT_KEY

SUBJECT_PARAM = "subject"


def backend_factory(suite):
    from ..backends import make_backend

    strict = suite.settings.strict_checkpoints
    return lambda spec: make_backend(spec, cache_dir=suite.settings.cache_dir, strict_checkpoints=strict)


@pytest.fixture
def subject(request) -> Subject:
    """The behaviour test's subject at the first look of the run's design."""
    suite = request.config.stash[SUITE_KEY]
    model_name, task_key = request.param
    return make_subject(suite, model_name, task_key, backend_factory(suite))


def verdict_thresholds(request) -> Thresholds:
    return request.config.stash[SUITE_KEY].thresholds


@pytest.fixture
def assert_robust(request):
    """Judge the test's check on its subject over the run's looks (harness.findings.checks),
    keep the verdict for the report, fail if fragile.

    An inconclusive verdict fails too unless thresholds.toml says `inconclusive = "pass"`.
    A finding that does not apply to the subject is a skip with its reason, never a pass.
    """

    def check(check_fn, **params) -> Verdict:
        __tracebackhide__ = True
        subject = request.getfixturevalue("subject")
        try:
            verdict = judge(subject, check_fn, **params)
        except NotApplicable as exc:
            pytest.skip(f"not applicable: {exc}")
        request.node.stash[VERDICT_KEY] = verdict
        if verdict.label == "fragile" or (verdict.label == "inconclusive" and verdict_thresholds(request).inconclusive == "fail"):
            raise FragilityFound(verdict.message())
        return verdict

    return check
