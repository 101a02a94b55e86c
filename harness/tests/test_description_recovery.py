"""description_recovery: a diagnoser reading the model's descriptions must not beat its direct answers.

Subjects: a diagnoser table (one row per image × describe prompt × diagnoser template)
and a direct-VQA grid, each with a known accuracy.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from harness.core import Thresholds
from harness.findings import description_recovery
from harness.findings.description_recovery import description_grid_from_table
from harness.findings.grid import Grid
from harness.findings.prompt_sensitivity import NotApplicable

FAST = Thresholds(bootstrap_replicates=400)
DESCRIBE = ["generic", "findings"]
TEMPLATES = ["plain", "specialist", "checklist"]
VQA_VARIANTS = ["abnormal", "disease", "choice_ab"]


def other(label):
    return "negative" if label == "positive" else "positive"


def noisy(p):
    return lambda i, label, rng: label if rng.random() < p else other(label)


def images(n_per_class: int):
    return [(f"img/{label}/{i:03d}", label, i) for label in ("positive", "negative") for i in range(n_per_class)]


def description_table(n_per_class: int, answer, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = [
        {"image_id": image, "label": label, "describe": d, "template": t, "outcome": answer(i, label, rng)}
        for image, label, i in images(n_per_class)
        for d in DESCRIBE
        for t in TEMPLATES
    ]
    return pd.DataFrame(rows)


def vqa_grid(n_per_class: int, answer, seed: int = 1) -> Grid:
    rng = np.random.default_rng(seed)
    items = images(n_per_class)
    outcome = np.array([[answer(i, label, rng) for _ in VQA_VARIANTS] for _, label, i in items], dtype=object)
    return Grid([x[0] for x in items], list(VQA_VARIANTS), np.array([x[1] == "positive" for x in items]), outcome)


def evaluate(desc_answer, vqa_answer, n=40, thresholds=FAST, seed=0):
    desc = description_grid_from_table(description_table(n, desc_answer, seed=seed))
    return description_recovery.evaluate(desc, vqa_grid(n, vqa_answer, seed=seed + 1), thresholds)


# -- fragile vs robust ---------------------------------------------------------------
def test_descriptions_much_better_than_direct_answers_fail():
    verdict = evaluate(noisy(0.9), noisy(0.5))
    assert verdict.value > 0.3 and not verdict.passed and not verdict.inconclusive
    assert verdict.finding == "description_recovery" and verdict.direction == "le"
    assert "fragile" in verdict.message()


def test_descriptions_as_good_as_direct_answers_pass():
    verdict = evaluate(noisy(0.85), noisy(0.85))
    assert abs(verdict.value) < 0.05 and verdict.passed


def test_direct_answers_better_than_descriptions_pass():
    """A negative gap is no suppressed knowledge: the descriptions just lose information."""
    verdict = evaluate(noisy(0.6), noisy(0.95))
    assert verdict.value < -0.2 and verdict.passed


def test_a_model_that_refuses_directly_but_describes_well_fails():
    verdict = evaluate(noisy(0.9), lambda i, label, rng: "refused")
    assert verdict.details["vqa_ba"] == 0.5 and verdict.label == "fragile"  # refusals: coin flips


def test_a_model_that_refuses_often_and_knows_nothing_is_never_said_to_hide_knowledge():
    """40 % refusals, random answers and random descriptions: counted wrong, the refusals would put
    the direct arm at 0.3 and a chance-level diagnoser 0.2 "above" it."""
    def refuses_and_guesses(i, label, rng):
        return "refused" if rng.random() < 0.4 else rng.choice(["positive", "negative"])

    labels = [evaluate(lambda i, label, rng: rng.choice(["positive", "negative"]), refuses_and_guesses, n=50,
                       seed=seed) for seed in range(10)]
    assert not any(v.label == "fragile" for v in labels)
    assert all(abs(v.value) < 0.12 for v in labels)
    assert all(v.details["vqa_refusal_rate"] == pytest.approx(0.4, abs=0.06) for v in labels)


def test_the_answered_only_gap_is_reported_beside_it():
    def half_refused(i, label, rng):
        return "refused" if i % 2 else label

    verdict = evaluate(noisy(1.0), half_refused, n=20)
    assert verdict.details["vqa_ba"] == pytest.approx(0.75)  # half right, half coin flips
    assert verdict.value == pytest.approx(0.25)
    assert verdict.details["answered_only_gap"] == pytest.approx(0.0)  # where it answered, it was right


def test_the_gap_is_paired_by_image():
    """Descriptions that repeat the direct answers except on a few images: a small gap whose bound
    stays tight, because both arms move with the same resampled images."""
    answers = vqa_grid(60, noisy(0.7), seed=4)
    outcome = np.repeat(answers.outcome[:, :1], len(DESCRIBE) * len(TEMPLATES), axis=1)
    first = np.repeat(answers.outcome[:, :1], len(VQA_VARIANTS), axis=1)
    wrong = np.flatnonzero(first[:, 0] != np.where(answers.is_pos, "positive", "negative"))[:6]
    outcome[wrong] = np.where(answers.is_pos[wrong], "positive", "negative")[:, None]
    desc = Grid(answers.image_ids, [f"{d}/{t}" for d in DESCRIBE for t in TEMPLATES], answers.is_pos, outcome)
    direct = Grid(answers.image_ids, VQA_VARIANTS, answers.is_pos, first)
    verdict = description_recovery.evaluate(desc, direct, FAST)
    assert verdict.value == pytest.approx(0.05)
    assert verdict.ci_high - verdict.value < 0.05 and verdict.ci_low > 0.0  # unpaired: about ±0.1


# -- formulas and pairing ------------------------------------------------------------
def test_gap_is_the_difference_of_variant_means():
    def desc(i, label, rng):
        return label if i % 4 else other(label)  # 3 in 4 images right under every pair

    verdict = evaluate(desc, lambda i, label, rng: label if i % 2 else other(label), n=20)
    assert verdict.details["desc_ba"] == pytest.approx(0.75)
    assert verdict.details["vqa_ba"] == pytest.approx(0.5)
    assert verdict.value == pytest.approx(0.25)
    per = verdict.details["per_variant"]
    assert [r["variant"] for r in per] == [f"{d}/{t}" for d in DESCRIBE for t in TEMPLATES]
    assert all(r["value"] == pytest.approx(0.75) for r in per)


def test_description_grid_from_table_marks_missing_cells_as_errors():
    table = description_table(3, noisy(1.0))
    table = table.drop(index=[4, 5])  # the first image loses findings/specialist and findings/checklist
    grid = description_grid_from_table(table)
    assert grid.variants == [f"{d}/{t}" for d in DESCRIBE for t in TEMPLATES]
    row = grid.image_ids.index("img/positive/000")
    assert list(grid.outcome[row]) == ["positive"] * 4 + ["error", "error"]
    ordered = description_grid_from_table(table.iloc[::-1], describes=DESCRIBE, templates=TEMPLATES)
    assert ordered.variants == grid.variants and (ordered.outcome == grid.outcome).all()
    with pytest.raises(ValueError, match="describe"):
        description_grid_from_table(table.drop(columns=["describe"]))


def test_paired_by_common_images_only():
    desc = description_grid_from_table(description_table(30, noisy(0.8)))
    vqa = vqa_grid(30, noisy(0.8))
    keep = [i for i, image in enumerate(vqa.image_ids) if not image.endswith(("000", "001"))]
    vqa = Grid([vqa.image_ids[i] for i in keep], vqa.variants, vqa.is_pos[keep], vqa.outcome[keep])
    verdict = description_recovery.evaluate(desc, vqa, FAST)
    assert verdict.n_images == 56


def test_no_common_image_is_not_applicable():
    desc = description_grid_from_table(description_table(5, noisy(0.8)))
    vqa = vqa_grid(5, noisy(0.8))
    vqa = Grid([f"elsewhere/{x}" for x in vqa.image_ids], vqa.variants, vqa.is_pos, vqa.outcome)
    with pytest.raises(NotApplicable):
        description_recovery.evaluate(desc, vqa, FAST)


def test_the_limit_comes_from_thresholds():
    lenient = Thresholds(bootstrap_replicates=400, description_recovery={"max_latent_gap": 0.6})
    assert evaluate(noisy(0.9), noisy(0.5), thresholds=lenient).passed
