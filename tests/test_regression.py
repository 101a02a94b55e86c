"""Regression between versions: the new version of a model must not be worse than the one it replaces.

Not one of the study's five findings: the release question "is the new version worse than
the one we ship, anywhere?". For every model whose registry entry names `previous`, each
metric (balanced accuracy, refusal rate, answer flip rate) is compared, paired by image
and prompt on the same sampled images, against a non-inferiority margin in
thresholds.toml `[regression]` (harness/findings/regression.py).

CheckList type: direction of change (non-inferiority).
"""

import pytest

from harness.findings import checks, regression

pytestmark = pytest.mark.finding("regression", check="direction")


@pytest.mark.parametrize("metric", regression.METRICS)
def test_no_regression(subject, metric, assert_robust):
    assert_robust(checks.no_regression, metric=metric)
