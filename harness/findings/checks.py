"""Every behaviour test's check, and how a check is judged over the run's looks.

A check is the finding function a behaviour test applies to its subject at one look
(`check(subject, **params) -> Verdict`). The tests (tests/*.py) name their check; the fill
phase's adaptive looks (harness/fill/adaptive.py) find it by the test's name in BY_TEST,
so the images the fill draws for an undecided subject are exactly the ones its test will
judge (issue 18).

`judge` runs the group-sequential design (harness.stats.sequential): the check at the
first look, with that look's confidence; a robust or fragile verdict stops there; an
inconclusive one is judged again at the next look, on more images of the same subject,
until the last look or until the data set has no more images.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..core import HarnessError, NotApplicable
from ..verdict import Verdict
from . import (description_recovery, embedding_separability, finetune_gain, image_reliance, near_random,
               prompt_sensitivity, regression)
from .subject import Subject


def above_chance(s: Subject) -> Verdict:
    return near_random.evaluate(s.grid, s.thresholds)


def finetuning_gain(s: Subject) -> Verdict:
    return finetune_gain.evaluate(s.grid, s.base_grid(), s.thresholds)


def accuracy_swing(s: Subject) -> Verdict:
    return prompt_sensitivity.accuracy_swing(s.grid, s.thresholds)


def refusal_swing(s: Subject) -> Verdict:
    return prompt_sensitivity.refusal_swing(s.grid, s.thresholds)


def answer_invariance(s: Subject, perturbation: str) -> Verdict:
    return prompt_sensitivity.answer_invariance(s.grid, s.variants, perturbation, s.thresholds)


def no_suppressed_knowledge(s: Subject) -> Verdict:
    return description_recovery.evaluate(s.description_grid(), s.grid, s.thresholds)


def encoder_separates_classes(s: Subject) -> Verdict:
    emb = s.embeddings()
    return embedding_separability.encoder_separates(emb.vectors, emb.is_pos, emb.image_ids, s.thresholds)


def answers_use_encoder_signal(s: Subject) -> Verdict:
    emb = s.embeddings()
    return embedding_separability.answers_use_encoder(emb.vectors, emb.is_pos, emb.image_ids, s.grid, s.thresholds)


def no_regression(s: Subject, metric: str) -> Verdict:
    return regression.evaluate(s.grid, s.previous_grid(), s.variants, metric, s.thresholds)


def no_knowledge_gap_regression(s: Subject) -> Verdict:
    return regression.evaluate_gap(s.description_grid(), s.grid, s.previous_description_grid(), s.previous_grid(),
                                   s.thresholds)


def answers_depend_on_image(s: Subject) -> Verdict:
    return image_reliance.answers_depend_on_image(s.grid, s.blank_grid(), s.thresholds)


def no_answer_without_image(s: Subject) -> Verdict:
    return image_reliance.no_answer_without_image(s.grid, s.blank_grid(), s.thresholds)


# Checks whose verdicts rest on the accuracy of the answers: when the answers about
# content-free images are shown (or not ruled out) to be above chance, the class may come
# from the prompt or a text prior and not from the image, and these verdicts say so.
ACCURACY_CHECKS = frozenset({above_chance, finetuning_gain, accuracy_swing, no_suppressed_knowledge,
                             answers_use_encoder_signal, no_regression, no_knowledge_gap_regression})


@dataclass(frozen=True)
class CheckSpec:
    """What the fill phase must know of a test's check: the function, the stages it reads
    of its subject, and which other model's answers it reads (its registry key)."""

    check: Callable
    stages: frozenset
    other: str | None = None  # "base_model" or "previous"


# test function name -> its check. The fill phase reads this table; harness/tests/test_checks.py
# holds it to the tests in tests/.
BY_TEST: dict[str, CheckSpec] = {
    "test_above_chance": CheckSpec(above_chance, frozenset({"closed"})),
    "test_finetuning_gain": CheckSpec(finetuning_gain, frozenset({"closed"}), "base_model"),
    "test_accuracy_swing": CheckSpec(accuracy_swing, frozenset({"closed"})),
    "test_refusal_swing": CheckSpec(refusal_swing, frozenset({"closed"})),
    "test_answer_invariance": CheckSpec(answer_invariance, frozenset({"closed"})),
    "test_no_suppressed_knowledge": CheckSpec(no_suppressed_knowledge, frozenset({"closed", "describe"})),
    "test_encoder_separates_classes": CheckSpec(encoder_separates_classes, frozenset({"embed"})),
    "test_answers_use_encoder_signal": CheckSpec(answers_use_encoder_signal, frozenset({"closed", "embed"})),
    "test_no_regression": CheckSpec(no_regression, frozenset({"closed"}), "previous"),
    "test_no_knowledge_gap_regression": CheckSpec(no_knowledge_gap_regression, frozenset({"closed", "describe"}),
                                                  "previous"),
    "test_answers_depend_on_image": CheckSpec(answers_depend_on_image, frozenset({"closed", "blank"})),
    "test_no_answer_without_image": CheckSpec(no_answer_without_image, frozenset({"closed", "blank"})),
}


def judge(subject: Subject, check: Callable, **params) -> Verdict:
    """The verdict of `check` under the run's design: look after look while inconclusive.

    NotApplicable (a skip) and harness errors propagate from the first look that raises
    them. The verdict's details record every look (images per class, confidence, label).
    """
    design = subject.suite.design
    view, history, stop = subject, [], None
    for look in range(len(design.looks)):
        if look:
            before, now = view.images_at(look - 1), view.images_at(look)
            if now <= before:
                stop = f"the data set has no more images ({before // 2} per class)"
                break
            view = subject.at_look(look)
        verdict = check(view, **params)
        history.append({"look": look + 1, "images_per_class": design.looks[look],
                        "confidence": round(design.confidences[look], 6), "label": verdict.label})
        if verdict.label != "inconclusive":
            break
        if not design.worth_another_look(verdict, look):
            if look + 1 < len(design.looks):
                stop = (f"look {look + 1}: more images would not likely decide it (were the estimate the truth, the "
                        f"last look, {design.looks[-1]} images per class, would decide it with a chance under "
                        f"{design.min_decide_chance:g})")
            else:
                stop = f"the last look ({design.looks[-1]} images per class, [sequential] max_n_per_class)"
            break
    if design.sequential:
        verdict.details["looks"] = history
        verdict.note = _note(history, len(design.looks), stop if verdict.label == "inconclusive" else None)
    if check in ACCURACY_CHECKS and params.get("metric", "balanced_accuracy") == "balanced_accuracy":
        verdict.warning = blind_warning(subject)
    return verdict


def blind_warning(subject: Subject) -> str:
    """For an accuracy verdict: a warning when the run asked about the subject's content-free
    images and their answers are not shown to stay near chance (test_no_answer_without_image
    not robust), "" otherwise. Reads the store only; computed once per subject and run."""
    if not subject.has_blank():
        return ""
    memo = subject.suite.__dict__.setdefault("_blind_verdicts", {})
    key = (subject.model.name, subject.task.key)
    if key not in memo:
        try:
            memo[key] = judge(subject.at_look(0), no_answer_without_image)
        except (NotApplicable, HarnessError):
            memo[key] = None
    blind = memo[key]
    if blind is None or blind.label == "robust":
        return ""
    shown = "are shown to be above chance" if blind.label == "fragile" else "may be above chance (not ruled out)"
    return (f"suspect: answers about content-free images (no image content, the same prompts) {shown} "
            f"(balanced accuracy {blind.value:.3f}, upper bound {blind.ci_high:.3f}, limit {blind.threshold:.3f}); "
            "the prompt or a text prior may give the class away (test_no_answer_without_image)")


def _note(history: list[dict], looks: int, stop: str | None) -> str:
    last = history[-1]
    text = (f"look {last['look']} of {looks}: {last['images_per_class']} images per class, "
            f"bounds at {last['confidence']:.2%} (error spent over the looks)")
    if stop:
        text += f"; undecided at {stop}"
    return text
