"""Finding 3 (prompt_sensitivity): harmless prompt changes must not move the answers.

CheckList type: invariance under a harmless change. The true accuracy and refusal rate
must not swing across the task's prompt variants (sampling noise removed), and answers
must not flip under each perturbation family (option order, answer-format suffix,
question polarity). The clinical-hint family is a direction check: a hint adds
information, so it may help but must not hurt balanced accuracy.
"""

import pytest

from harness.findings import checks

pytestmark = pytest.mark.finding("prompt_sensitivity", check="invariance")


def test_accuracy_swing(subject, assert_robust):
    assert_robust(checks.accuracy_swing)


def test_refusal_swing(subject, assert_robust):
    assert_robust(checks.refusal_swing)


def test_answer_invariance(subject, perturbation, assert_robust):
    assert_robust(checks.answer_invariance, perturbation=perturbation)
