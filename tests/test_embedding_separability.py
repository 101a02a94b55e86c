"""Finding 5 (embedding_separability): is the visual signal there, and do the answers use it?

- test_encoder_separates_classes (minimum functionality): a standardized logistic probe
  on pooled vision-encoder embeddings, cross-validated, must reach an AUROC lower bound of
  at least min_probe_auroc. Failing = a weak visual representation.
- test_answers_use_encoder_signal (invariance of knowledge across read-outs): probe BA −
  VQA BA must have an upper bound of at most max_reasoning_gap. Failing = the encoder
  separates the classes but the answers do not use it (knowledge left to extract).
Backends without access to the encoder (endpoints) skip with a reason.
"""

import pytest

from harness.findings import checks

pytestmark = pytest.mark.finding("embedding_separability", check="minimum functionality")


def test_encoder_separates_classes(subject, assert_robust):
    assert_robust(checks.encoder_separates_classes)


@pytest.mark.finding("embedding_separability", check="invariance")
def test_answers_use_encoder_signal(subject, assert_robust):
    assert_robust(checks.answers_use_encoder_signal)
