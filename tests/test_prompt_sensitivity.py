"""Finding 3 (prompt_sensitivity): harmless prompt changes must not move the answers.

CheckList type: invariance under a harmless change. Accuracy and refusal rate must not
swing across the task's prompt variants, and answers must not flip under each
perturbation family (option order, answer-format suffix, question polarity, clinical
hint). Every verdict compares an upper confidence bound with its limit.
"""

import pytest

from harness.findings import prompt_sensitivity

pytestmark = pytest.mark.finding("prompt_sensitivity", check="invariance")


def test_accuracy_swing(subject, assert_robust):
    assert_robust(prompt_sensitivity.accuracy_swing, subject.grid, subject.thresholds)


def test_refusal_swing(subject, assert_robust):
    assert_robust(prompt_sensitivity.refusal_swing, subject.grid, subject.thresholds)


def test_answer_invariance(subject, perturbation, assert_robust):
    assert_robust(prompt_sensitivity.flip_rate, subject.grid, subject.variants, perturbation, subject.thresholds)
