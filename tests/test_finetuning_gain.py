"""Finding 2 (finetune_gain): a medical fine-tune must be demonstrably better than its base.

CheckList type: direction of change. For every model whose registry entry names a
base_model, Δ = BA(model) − BA(base), paired by image and prompt, must have a lower
bound above min_gain (a variant identical to its base fails). Where the base is already
at ceiling, the rule becomes non-inferiority. Exact McNemar is reported beside it.
"""

import pytest

from harness.findings import checks

pytestmark = pytest.mark.finding("finetune_gain", check="direction")


def test_finetuning_gain(subject, assert_robust):
    assert_robust(checks.finetuning_gain)
