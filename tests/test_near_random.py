"""Finding 1 (near_random): a trustworthy medical VLM is demonstrably better than chance.

CheckList type: minimum functionality. Balanced accuracy, aggregated over the task's
prompt variants, must have a one-sided lower bound of at least chance + min_margin.
"""

import pytest

from harness.findings import checks

pytestmark = pytest.mark.finding("near_random", check="minimum functionality")


def test_above_chance(subject, assert_robust):
    assert_robust(checks.above_chance)
