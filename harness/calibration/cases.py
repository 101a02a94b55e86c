"""The calibration cases: for every behaviour test, a threshold subject, a robust one and a fragile one.

Each case is data: the test it measures, the truth it simulates and how to call the
suite's own findings code on one simulated subject. `truth` is in the test's own
units (the quantity its threshold is about), so "exactly at the threshold" means what
it says. The subjects (harness/calibration/subjects.py) carry realistic noise: about
5 % of answers changing between two equally good prompts (redraw 0.08), 2 % random
refusals, answers correlated within an image; two arms about the same images (a model
and its base, descriptions and direct answers) share an image's difficulty with
probability 0.8 or 0.5.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

import numpy as np

from ..core import PromptVariant, Thresholds
from ..findings import (description_recovery, embedding_separability, finetune_gain, image_reliance, near_random,
                        prompt_sensitivity, regression)
from ..stats.swing import expected_range
from . import subjects as sim

K = 12  # closed-form prompt variants, as in fixtures/prompts.toml
REDRAW = 0.08  # ≈ 5 % of answers change between two equally good prompts
REFUSAL = 0.02
FAMILY_PAIRS = {"option_order": 2, "answer_format": 6, "polarity": 2}  # pairs per family in fixtures/prompts.toml
VARIANTS = [f"v{j}" for j in range(K)]
PROBE_DIM = 64


@dataclass(frozen=True)
class Case:
    """One simulated subject kind: `draw(rng, n, thresholds)` simulates what the fill phase
    would store at n images per class (a tuple of grids and embeddings) and
    `evaluate(inputs, thresholds)` calls the suite's findings code on it.

    `run` is the fixed design (one look at n); `run_design` the sequential one: the subject is
    drawn once at the last look's size and judged on its first n_k images per class at each
    look (a larger sample extends the smaller, as in the suite), with that look's confidence.
    """

    test: str
    kind: str  # "threshold", "robust", "fragile" (or "midway" for the images-needed check)
    truth: float
    draw: Callable
    evaluate: Callable
    n_independent: bool = True  # False: the probe reads images_per_class images whatever n is

    def run(self, rng, n, thresholds, **kw):
        return self.evaluate(self.draw(rng, n, thresholds, **kw), thresholds)

    def run_design(self, rng, design, thresholds, **kw):
        """(the verdict at the look that decided it, or the last; that look's images per class)."""
        inputs = self.draw(rng, design.looks[-1], thresholds, **kw)
        for look, n in enumerate(design.looks):
            verdict = self.evaluate(prefix(inputs, n), replace(thresholds, confidence=design.confidences[look]))
            if verdict.label != "inconclusive" or not design.worth_another_look(verdict, look):
                break
        return verdict, n


def prefix_grid(grid: sim.Grid, n_per_class: int) -> sim.Grid:
    """The first n images of each class (rows in order), as a sample of n would have drawn."""
    rank = np.zeros(grid.n_images, dtype=int)
    for cls in (True, False):
        members = np.flatnonzero(grid.is_pos == cls)
        rank[members] = np.arange(members.size)
    keep = rank < n_per_class
    return sim.Grid([i for i, k in zip(grid.image_ids, keep) if k], grid.variants, grid.is_pos[keep],
                    grid.outcome[keep])


def prefix(inputs: tuple, n_per_class: int) -> tuple:
    """Every grid of a simulated subject cut to n images per class (embeddings stay: the probe
    reads its own images_per_class whatever the look)."""
    return tuple(prefix_grid(x, n_per_class) if isinstance(x, sim.Grid) else x for x in inputs)


def evenly_spread(centre: float, swing: float) -> np.ndarray:
    """K values evenly spread around `centre` whose noise-free swing d2(K) · sd equals `swing`."""
    base = np.linspace(-0.5, 0.5, K)
    sd = np.std(base, ddof=1)
    return centre + base * (swing / (expected_range(K) * sd) if swing else 0.0)


def evenly_ranged(centre: float, true_range: float) -> np.ndarray:
    """K values evenly spread over `true_range` around `centre` (the fragile subjects' "true range")."""
    return centre + np.linspace(-0.5, 0.5, K) * true_range


def _accuracy_for_ba(ba, refusal=REFUSAL):
    return np.asarray(ba, dtype=float) / (1.0 - refusal)


# -- near_random ----------------------------------------------------------------------
def near_random_case(kind: str, ba: float) -> Case:
    def draw(rng, n, thresholds):
        spec = sim.GridSpec(np.full(K, _accuracy_for_ba(ba)), np.full(K, REFUSAL), REDRAW)
        return (sim.closed_grid(rng, n, spec, VARIANTS),)

    return Case("near_random", kind, ba, draw, lambda x, th: near_random.evaluate(x[0], th))


# -- finetune_gain ----------------------------------------------------------------------
def finetune_case(kind: str, delta: float, base_ba: float = 0.70) -> Case:
    def draw(rng, n, thresholds):
        base_spec = sim.GridSpec(np.full(K, _accuracy_for_ba(base_ba)), np.full(K, REFUSAL), REDRAW)
        model_spec = sim.GridSpec(np.full(K, _accuracy_for_ba(base_ba + delta)), np.full(K, REFUSAL), REDRAW)
        latent = rng.random(2 * n)
        base = sim.closed_grid(rng, n, base_spec, VARIANTS, latent=latent)
        model = sim.closed_grid(rng, n, model_spec, VARIANTS, latent=sim.paired_latent(rng, latent, 0.8))
        return model, base

    return Case("finetune_gain", kind, delta, draw, lambda x, th: finetune_gain.evaluate(x[0], x[1], th))


# -- prompt_sensitivity ---------------------------------------------------------------------
def accuracy_swing_case(kind: str, swing: float, true_range: float | None = None) -> Case:
    """`swing`: the noise-free swing (the estimand); or `true_range`: prompts evenly over that range."""
    ba = evenly_ranged(0.78, true_range) if true_range is not None else evenly_spread(0.78, swing)
    swing = float(expected_range(K) * np.std(ba, ddof=1))

    def draw(rng, n, thresholds):
        spec = sim.GridSpec(_accuracy_for_ba(ba), np.full(K, REFUSAL), REDRAW)
        return (sim.closed_grid(rng, n, spec, VARIANTS),)

    return Case("accuracy_swing", kind, swing, draw, lambda x, th: prompt_sensitivity.accuracy_swing(x[0], th))


def refusal_swing_case(kind: str, swing: float, true_range: float | None = None) -> Case:
    """Refusal rates from 2 % up: equal (robust), spread to the threshold, or over `true_range`."""
    if true_range is not None:
        refusal = REFUSAL + np.linspace(0.0, true_range, K)
    else:
        refusal = evenly_spread(0.0, swing)
        refusal = refusal - refusal.min() + REFUSAL
    swing = float(expected_range(K) * np.std(refusal, ddof=1))

    def draw(rng, n, thresholds):
        spec = sim.GridSpec(np.full(K, 0.80), refusal, REDRAW)
        return (sim.closed_grid(rng, n, spec, VARIANTS),)

    return Case("refusal_swing", kind, swing, draw, lambda x, th: prompt_sensitivity.refusal_swing(x[0], th))


def flip_case(family: str, kind: str, flip: float) -> Case:
    pairs = FAMILY_PAIRS[family]

    def draw(rng, n, thresholds):
        grid, pair_names = sim.flip_pair_grid(rng, n, flip, pairs, accuracy=0.8, refusal=REFUSAL)
        variants = [PromptVariant(b, "", "yes_no") for b, _ in pair_names]
        variants += [PromptVariant(p, "", "yes_no", perturbs=((family, b),)) for b, p in pair_names]
        return grid, variants

    return Case(f"answer_flips[{family}]", kind, flip, draw,
                lambda x, th: prompt_sensitivity.flip_rate(x[0], x[1], family, th))


HINT_VARIANTS = [PromptVariant("b0", "", "yes_no"), PromptVariant("b1", "", "yes_no"),
                 PromptVariant("h0", "", "yes_no", perturbs=(("clinical_hint", "b0"),)),
                 PromptVariant("h1", "", "yes_no", perturbs=(("clinical_hint", "b1"),))]


def hint_case(kind: str, delta: float, ba: float = 0.78) -> Case:
    def draw(rng, n, thresholds):
        accuracy = _accuracy_for_ba([ba, ba, ba + delta, ba + delta])
        return (sim.closed_grid(rng, n, sim.GridSpec(accuracy, np.full(4, REFUSAL), REDRAW), ["b0", "b1", "h0", "h1"]),)

    return Case("clinical_hint", kind, delta, draw,
                lambda x, th: prompt_sensitivity.hint_effect(x[0], HINT_VARIANTS, "clinical_hint", th))


# -- the gaps -------------------------------------------------------------------------------
def _coin_flip_accuracy(ba: float, refusal: float = REFUSAL) -> float:
    """Accuracy among answers that gives balanced accuracy `ba` when a refusal scores 0.5."""
    return (ba - 0.5 * refusal) / (1.0 - refusal)


def description_case(kind: str, gap: float, vqa_ba: float = 0.70) -> Case:
    def draw(rng, n, thresholds):
        latent = rng.random(2 * n)
        vqa_spec = sim.GridSpec(np.full(K, _coin_flip_accuracy(vqa_ba)), np.full(K, REFUSAL), REDRAW)
        desc_spec = sim.GridSpec(np.full(6, _coin_flip_accuracy(vqa_ba + gap)), np.full(6, REFUSAL), REDRAW)
        vqa = sim.closed_grid(rng, n, vqa_spec, VARIANTS, latent=latent)
        desc = sim.closed_grid(rng, n, desc_spec, [f"d{j}" for j in range(6)], latent=sim.paired_latent(rng, latent, 0.5))
        return desc, vqa

    return Case("description_gap", kind, gap, draw, lambda x, th: description_recovery.evaluate(x[0], x[1], th))


# -- image_reliance ------------------------------------------------------------------------
def unchanged_case(kind: str, unchanged: float) -> Case:
    """A subject whose answers stay the same without the image on an `unchanged` share of cells."""
    def draw(rng, n, thresholds):
        spec = sim.GridSpec(np.full(K, _accuracy_for_ba(0.78)), np.full(K, REFUSAL), REDRAW)
        real = sim.closed_grid(rng, n, spec, VARIANTS)
        return real, sim.content_free_grid(rng, real, unchanged)

    return Case("unchanged_without_image", kind, unchanged, draw,
                lambda x, th: image_reliance.answers_depend_on_image(x[0], x[1], th))


def blind_case(kind: str, ba: float, varying: float) -> Case:
    """Answers about content-free images with balanced accuracy `ba`; `varying`: the share of
    images whose answers are their own (the rest take the prompt's default answer)."""
    def draw(rng, n, thresholds):
        spec = sim.GridSpec(np.full(K, _accuracy_for_ba(0.78)), np.full(K, REFUSAL), REDRAW)
        real = sim.closed_grid(rng, n, spec, VARIANTS)
        return real, sim.blind_grid(rng, n, ba, varying, VARIANTS, REFUSAL)

    return Case("blind_accuracy", kind, ba, draw, lambda x, th: image_reliance.no_answer_without_image(x[0], x[1], th))


# -- regression between versions ------------------------------------------------------------
# The previous version and the new one answer the same images; like a model and its base
# they share an image's difficulty with probability 0.8 (paired_latent). `truth` is the
# change in the test's own units: BA lost, refusal rate / flip rate / swing / gap gained.
def _versions(rng, n, previous: "sim.GridSpec", new: "sim.GridSpec", variants=VARIANTS):
    latent = rng.random(2 * n)
    old = sim.closed_grid(rng, n, previous, variants, latent=latent)
    return sim.closed_grid(rng, n, new, variants, latent=sim.paired_latent(rng, latent, 0.8)), old


def regression_ba_case(kind: str, loss: float, ba: float = 0.78) -> Case:
    def draw(rng, n, thresholds):
        spec = lambda b: sim.GridSpec(np.full(K, _accuracy_for_ba(b)), np.full(K, REFUSAL), REDRAW)  # noqa: E731
        return _versions(rng, n, spec(ba), spec(ba - loss))

    return Case("regression[balanced_accuracy]", kind, loss, draw,
                lambda x, th: regression.evaluate(x[0], x[1], [], "balanced_accuracy", th))


def regression_refusal_case(kind: str, increase: float) -> Case:
    def draw(rng, n, thresholds):
        spec = lambda r: sim.GridSpec(np.full(K, 0.80), np.full(K, r), REDRAW)  # noqa: E731
        return _versions(rng, n, spec(REFUSAL), spec(REFUSAL + increase))

    return Case("regression[refusal_rate]", kind, increase, draw,
                lambda x, th: regression.evaluate(x[0], x[1], [], "refusal_rate", th))


REGRESSION_FAMILY = "answer_format"  # the harmless family with the most pairs (6)


def regression_flip_case(kind: str, increase: float, flip: float = 0.05) -> Case:
    pairs = FAMILY_PAIRS[REGRESSION_FAMILY]

    def draw(rng, n, thresholds):
        new, names = sim.flip_pair_grid(rng, n, flip + increase, pairs, accuracy=0.8, refusal=REFUSAL)
        old, _ = sim.flip_pair_grid(rng, n, flip, pairs, accuracy=0.8, refusal=REFUSAL)
        variants = [PromptVariant(b, "", "yes_no") for b, _ in names]
        variants += [PromptVariant(p, "", "yes_no", perturbs=((REGRESSION_FAMILY, b),)) for b, p in names]
        return new, old, variants

    return Case("regression[flip_rate]", kind, increase, draw,
                lambda x, th: regression.evaluate(x[0], x[1], x[2], "flip_rate", th))


def regression_swing_case(kind: str, increase: float, swing: float = 0.05) -> Case:
    """The previous version swings `swing` (noise-free), the new one adds `increase` in
    quadrature: sqrt(swing² + increase²) (the test's estimand)."""
    def draw(rng, n, thresholds):
        spec = lambda s: sim.GridSpec(_accuracy_for_ba(evenly_spread(0.78, s)), np.full(K, REFUSAL), REDRAW)  # noqa: E731
        return _versions(rng, n, spec(swing), spec(float(np.hypot(swing, increase))))

    return Case("regression[accuracy_swing]", kind, increase, draw,
                lambda x, th: regression.evaluate(x[0], x[1], [], "accuracy_swing", th))


def regression_gap_case(kind: str, increase: float, gap: float = 0.03, vqa_ba: float = 0.70) -> Case:
    """Each version's descriptions recover `gap` (previous) or `gap + increase` (new) more BA
    than its direct answers; the direct answers are equally good."""
    def draw(rng, n, thresholds):
        vqa = sim.GridSpec(np.full(K, _coin_flip_accuracy(vqa_ba)), np.full(K, REFUSAL), REDRAW)
        desc = lambda g: sim.GridSpec(np.full(6, _coin_flip_accuracy(vqa_ba + g)), np.full(6, REFUSAL), REDRAW)  # noqa: E731
        new_vqa, old_vqa = _versions(rng, n, vqa, vqa)
        names = [f"d{j}" for j in range(6)]
        old_desc = sim.closed_grid(rng, n, desc(gap), names, latent=rng.random(2 * n))
        new_desc = sim.closed_grid(rng, n, desc(gap + increase), names, latent=rng.random(2 * n))
        return new_desc, new_vqa, old_desc, old_vqa

    return Case("regression[knowledge_gap]", kind, increase, draw,
                lambda x, th: regression.evaluate_gap(x[0], x[1], x[2], x[3], th))


def probe_case(kind: str, auroc: float) -> Case:
    def draw(rng, n, thresholds):
        per_class = int(thresholds.embedding_separability["images_per_class"])
        return (sim.embeddings(rng, max(n, per_class), auroc, PROBE_DIM),)

    return Case("probe_auroc", kind, auroc, draw,
                lambda x, th: embedding_separability.encoder_separates(*x[0], th), n_independent=False)


class ReasoningGap:
    """The reasoning-gap cases share their embedding subjects: the probe fit (the costly
    part) depends only on the embeddings, so each is fitted once and paired with direct
    answers of every gap and sample size. The truth is relative to what the probe
    recipe achieves (its mean balanced accuracy over the subjects, `probe_ba`): the
    test's estimand is this probe's edge over the answers."""

    def __init__(self, rng: np.random.Generator, subjects: int, thresholds: Thresholds, auroc: float = 0.95):
        per_class = int(thresholds.embedding_separability["images_per_class"])
        self.data = [sim.embeddings(rng, per_class, auroc, PROBE_DIM) for _ in range(subjects)]
        self.thresholds = thresholds
        accuracies = []
        for X, y, ids in self.data:
            fit = embedding_separability.fit_probe(X, y, ids, thresholds)
            hits = (fit.scores[0] > 0) == y
            accuracies.append(0.5 * (hits[y].mean() + hits[~y].mean()))
        self.probe_ba = float(np.mean(accuracies))

    def case(self, kind: str, gap: float) -> Case:
        def draw(rng, n, thresholds, index=0):
            vqa_ba = self.probe_ba - gap
            spec = sim.GridSpec(np.full(K, _coin_flip_accuracy(vqa_ba)), np.full(K, REFUSAL), REDRAW)
            return self.data[index % len(self.data)], sim.closed_grid(rng, n, spec, VARIANTS)

        return Case("reasoning_gap", kind, gap, draw,
                    lambda x, th: embedding_separability.answers_use_encoder(*x[0], x[1], th))


def closed_cases() -> list[Case]:
    """Every case except the probe's, in the order of the table in docs/statistics.md."""
    cases = [near_random_case("threshold", 0.60), near_random_case("robust", 0.75), near_random_case("fragile", 0.55),
             finetune_case("threshold", 0.0), finetune_case("robust", 0.10), finetune_case("fragile", 0.0),
             accuracy_swing_case("threshold", 0.10), accuracy_swing_case("robust", 0.0),
             accuracy_swing_case("fragile", 0.0, true_range=0.20),
             refusal_swing_case("threshold", 0.10), refusal_swing_case("robust", 0.0),
             refusal_swing_case("fragile", 0.0, true_range=0.20)]
    for family in FAMILY_PAIRS:
        cases += [flip_case(family, "threshold", 0.10), flip_case(family, "robust", 0.05),
                  flip_case(family, "fragile", 0.20)]
    cases += [hint_case("threshold", -0.05), hint_case("robust", 0.0), hint_case("fragile", -0.15),
              description_case("threshold", 0.10), description_case("robust", 0.0), description_case("fragile", 0.20)]
    cases += [unchanged_case("threshold", 0.90), unchanged_case("robust", 0.70), unchanged_case("fragile", 0.98),
              blind_case("threshold", 0.55, 1.0), blind_case("robust", 0.5 * (1 - REFUSAL), 0.2),
              blind_case("fragile", 0.65, 1.0)]
    return cases


def regression_cases(margins: dict | None = None) -> list[Case]:
    """The regression group's checks (a model that names a previous version): at the margin,
    no change (robust) and twice the margin (fragile). Not in the whole-run study, whose
    subject is a model without a previous version."""
    m = margins or Thresholds().regression
    out = []
    for make, key in ((regression_ba_case, "max_ba_loss"), (regression_refusal_case, "max_refusal_increase"),
                      (regression_flip_case, "max_flip_increase"), (regression_swing_case, "max_swing_increase"),
                      (regression_gap_case, "max_gap_increase")):
        out += [make("threshold", m[key]), make("robust", 0.0), make("fragile", 2 * m[key])]
    return out


def table_cases() -> list[Case]:
    """The per-test table's cases: every behaviour test's, the regression group's included."""
    return closed_cases() + regression_cases()


def probe_cases() -> list[Case]:
    return [probe_case("threshold", 0.75), probe_case("robust", 0.90), probe_case("fragile", 0.65)]


def midway_cases() -> list[Case]:
    """Subjects between the threshold and the robust case: where inconclusive verdicts
    arise, to check the images-needed hint."""
    return [near_random_case("midway", 0.675), accuracy_swing_case("midway", 0.05), flip_case("polarity", "midway", 0.075),
            description_case("midway", 0.05)]
