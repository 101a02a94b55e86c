"""Every finding's whole verdict, pinned: numbers, bounds, label, message and report details.

The other tests check each formula against an independent reference; this one pins what a
user reads (the record in summary.json and the report, the message) for fixed subjects,
so a change anywhere in the verdict logic, a detail the report shows, or a message shows
up as a diff here (and mutation testing finds no unpinned corner). The expected records
live in golden/verdict_records.json and are rewritten only on request:

    MEDVLM_UPDATE_GOLDEN=1 pytest harness/tests/test_verdict_records.py

Review the diff before committing it: a changed number is a changed verdict.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

from harness.calibration import subjects as sim
from harness.calibration.cases import FAMILY_PAIRS, VARIANTS, evenly_spread
from harness.config.registry import load_registry
from harness.core import PromptVariant, Thresholds
from harness.findings import description_recovery, embedding_separability, finetune_gain, near_random
from harness.findings import image_reliance, prompt_sensitivity

GOLDEN = Path(__file__).parent / "golden" / "verdict_records.json"
TH = Thresholds(bootstrap_replicates=300, embedding_separability={
    **Thresholds().embedding_separability, "probe_replicates": 60, "components": 8})
K = len(VARIANTS)
REGISTRY_VARIANTS = list(load_registry().variants.values())


def _grid(seed, n, accuracy, refusal=0.03, redraw=0.1, variants=VARIANTS, latent=None):
    rng = np.random.default_rng(seed)
    spec = sim.GridSpec(np.broadcast_to(np.asarray(accuracy, float), (len(variants),)).copy(),
                        np.full(len(variants), refusal), redraw)
    return sim.closed_grid(rng, n, spec, variants, latent=latent)


def _with_errors(grid, seed, share=0.04):
    rng = np.random.default_rng(seed)
    outcome = grid.outcome.copy()
    outcome[rng.random(outcome.shape) < share] = "error"
    return type(grid)(grid.image_ids, grid.variants, grid.is_pos, outcome)


def _registry_grid(seed, n, answer):
    """A grid over the registry's real variants (so the perturbation pairs are the real ones)."""
    rng = np.random.default_rng(seed)
    ids, is_pos = sim.image_ids(n)
    outcome = np.array([[answer(rng, bool(p), v) for v in REGISTRY_VARIANTS] for p in is_pos], dtype=object)
    return type(_grid(0, 1, 0.5))(ids, [v.key for v in REGISTRY_VARIANTS], is_pos, outcome)


def _noisy_answer(rng, is_pos, variant, flip=0.08, refuse=0.05):
    truth = "positive" if is_pos else "negative"
    if rng.random() < refuse:
        return "refused"
    if rng.random() < (flip * 2 if "hint" in variant.key else flip):
        return "negative" if is_pos else "positive"
    return truth


def cases() -> dict:
    """name -> a function returning the verdict to pin."""
    base = _grid(1, 30, 0.75)
    latent = np.random.default_rng(2).random(60)
    same_images = _grid(3, 30, 0.75, latent=latent)
    better = _grid(4, 30, 0.9, latent=sim.paired_latent(np.random.default_rng(5), latent, 0.8))
    ceiling = _grid(6, 30, 0.99, refusal=0.0, redraw=0.0)
    swinging = _grid(7, 40, evenly_spread(0.7, 0.3) / 0.97)
    refusing = _grid(8, 30, 0.8, refusal=0.0)
    refusing.outcome[:, :4][np.random.default_rng(9).random((60, 4)) < 0.3] = "refused"
    registry_grid = _registry_grid(10, 30, _noisy_answer)
    desc = _grid(11, 30, 0.8, variants=[f"d/{t}" for t in ("a", "b", "c")], latent=latent)
    X, y, ids = sim.embeddings(np.random.default_rng(12), 40, 0.93, 12)
    weak_X, weak_y, weak_ids = sim.embeddings(np.random.default_rng(13), 40, 0.6, 12)
    vqa = _grid(14, 40, 0.7)
    median = Thresholds(bootstrap_replicates=300, near_random={"min_margin": 0.1, "aggregate": "median"})
    made = {
        "near_random_mean": lambda: near_random.evaluate(base, TH),
        "near_random_median_with_errors": lambda: near_random.evaluate(_with_errors(base, 15), median),
        "finetune_superiority": lambda: finetune_gain.evaluate(better, same_images, TH),
        "finetune_noninferiority": lambda: finetune_gain.evaluate(_with_errors(ceiling, 16), ceiling, TH),
        "accuracy_swing": lambda: prompt_sensitivity.accuracy_swing(swinging, TH),
        "accuracy_swing_with_errors": lambda: prompt_sensitivity.accuracy_swing(_with_errors(swinging, 17), TH),
        "refusal_swing": lambda: prompt_sensitivity.refusal_swing(refusing, TH),
        "description_gap": lambda: description_recovery.evaluate(desc, same_images, TH),
        "encoder_separates": lambda: embedding_separability.encoder_separates(X, y, ids, TH),
        "encoder_weak": lambda: embedding_separability.encoder_separates(weak_X, weak_y, weak_ids, TH),
        "reasoning_gap": lambda: embedding_separability.answers_use_encoder(X, y, ids, vqa, TH),
        "unchanged_without_image": lambda: image_reliance.answers_depend_on_image(
            base, sim.content_free_grid(np.random.default_rng(18), base, 0.85), TH),
        "blind_accuracy": lambda: image_reliance.no_answer_without_image(
            base, _with_errors(sim.blind_grid(np.random.default_rng(19), 30, 0.6, 0.5, VARIANTS, 0.03), 20), TH),
    }
    for family in (*FAMILY_PAIRS, "clinical_hint"):
        made[f"invariance_{family}"] = (
            lambda f=family: prompt_sensitivity.answer_invariance(registry_grid, REGISTRY_VARIANTS, f, TH))
    return made


def _plain(value):
    """JSON-able, with floats to 9 significant digits (stable across BLAS builds)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return None if math.isnan(value) else float(f"{float(value):.9g}")
    return value


def record_of(verdict) -> dict:
    record = verdict.record()
    record.update(message=verdict.message(), description=verdict.description, strict=verdict.strict,
                  bound=verdict.bound, other_bound=verdict.other_bound, n_classes=verdict.n_classes)
    return _plain(record)


def _compare(actual, expected, path="record"):
    if isinstance(expected, dict):
        assert isinstance(actual, dict) and set(actual) == set(expected), f"{path}: keys {sorted(actual)} vs {sorted(expected)}"
        for key in expected:
            _compare(actual[key], expected[key], f"{path}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), f"{path}: length"
        for i, (a, e) in enumerate(zip(actual, expected)):
            _compare(a, e, f"{path}[{i}]")
    elif isinstance(expected, float):
        assert actual == pytest.approx(expected, rel=1e-6, abs=1e-7), f"{path}: {actual} != {expected}"
    else:
        assert actual == expected, f"{path}: {actual!r} != {expected!r}"


CASES = cases()


def test_the_golden_file_lists_exactly_these_cases():
    if os.environ.get("MEDVLM_UPDATE_GOLDEN"):
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps({name: record_of(make()) for name, make in CASES.items()}, indent=1,
                                     ensure_ascii=False, sort_keys=True) + "\n", encoding="utf-8")
    assert sorted(json.loads(GOLDEN.read_text(encoding="utf-8"))) == sorted(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_verdict_record_is_pinned(name):
    expected = json.loads(GOLDEN.read_text(encoding="utf-8"))[name]
    _compare(record_of(CASES[name]()), expected)


def test_the_pinned_subjects_span_every_label():
    labels = {json.loads(GOLDEN.read_text(encoding="utf-8"))[name]["label"] for name in CASES}
    assert labels == {"robust", "fragile", "inconclusive"}
