"""Finding 4 (description_recovery): closed-form answers must not hide what descriptions reveal.

CheckList type: invariance (of knowledge across answer formats). The model describes
each image (2 describe prompts); a text-only diagnoser answers yes/no from each
description (3 templates). The knowledge gap BA(descriptions) − BA(direct answers),
paired by image, must have an upper bound of at most max_latent_gap. Without a
diagnoser the test is skipped with the reason.
"""

import pytest

from harness.findings import checks

pytestmark = pytest.mark.finding("description_recovery", check="invariance")


def test_no_suppressed_knowledge(subject, assert_robust):
    assert_robust(checks.no_suppressed_knowledge)
