"""Regression between versions: the new version of a model must not be worse than the one it replaces.

Not one of the study's five findings: the release question "is the new version worse than
the one we ship, anywhere?". For every model whose registry entry names `previous`, each
metric (balanced accuracy, refusal rate, answer flip rate, the noise-free accuracy swing
over the prompts, and the knowledge gap that descriptions reveal) is compared, paired by
image (and prompt) on the same sampled images, against a non-inferiority margin in
thresholds.toml `[regression]` (harness/findings/regression.py).

CheckList type: direction of change (non-inferiority).
"""

import pytest

from harness.findings import checks, regression

pytestmark = pytest.mark.finding("regression", check="direction")


@pytest.mark.parametrize("metric", regression.METRICS)
def test_no_regression(subject, metric, assert_robust):
    assert_robust(checks.no_regression, metric=metric)


def test_no_knowledge_gap_regression(subject, assert_robust):
    """The knowledge gap (description_recovery's BA(descriptions) − BA(direct answers)) of the
    new version must not grow by more than max_gap_increase over the previous one's, both
    versions described and read by the same diagnoser on the same images."""
    assert_robust(checks.no_knowledge_gap_regression)
