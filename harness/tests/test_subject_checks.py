"""A subject at each look, and every behaviour test's check (harness/findings/subject.py and
checks.py, issue 18).

The subject is an oracle served over the real OpenAI API on 127.0.0.1 (harness.serve, the
openai client), with no model weights and no torch: these tests run in the mutation-testing
selection too. The oracle answers every question right, describes what it sees and reads
descriptions as a diagnoser; `oracle` names `oracle-base` as its base model and previous
version. Two looks: 4 images per class, then 8.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from harness.core import NotApplicable, PERTURBATION_FAMILIES
from harness.findings import (checks, description_recovery, finetune_gain, image_reliance, near_random,
                              prompt_sensitivity, regression)
from harness.findings.subject import TooManyErrors, checked_grid, make_subject

from .test_reliability_support import REPO, image_folder, served

TASK, FIRST, LAST = "brain_tumor", 4, 8


@pytest.fixture(scope="module")
def served_oracle(tmp_path_factory):
    root = tmp_path_factory.mktemp("subjects")
    data = image_folder(root / "data", LAST, LAST)
    (root / "thresholds.toml").write_text(f"[sequential]\nmax_n_per_class = {LAST}\nstep_per_class = {LAST - FIRST}\n"
                                          "min_decide_chance = 0.0\n")
    entries = {"oracle": 'base_model = "oracle-base"\nprevious = "oracle-base"', "oracle-base": ""}
    with served(root, entries=entries) as (_, models_file):
        yield root, data, models_file


@pytest.fixture
def suite(served_oracle):
    """A fresh run's suite (nothing filled in this process yet; answers the store holds are read)."""
    from harness.backends import make_backend
    from harness.plugin.options import Settings
    from harness.suite import Suite

    root, data, models_file = served_oracle
    settings = Settings(rootdir=REPO, models=["oracle"], models_files=[models_file], tasks=[TASK], tasks_files=[],
                        manifest=None, data_root=data, hf_datasets=False, n_per_class=FIRST, seed=42,
                        cache_dir=root / "cache", results_dir=None, diagnoser="oracle-base", judge=None,
                        allow_remote=False, update_baseline=False, thresholds_path=root / "thresholds.toml",
                        baseline_path=root / "none.toml")
    built = Suite(settings)
    built.factory = lambda spec: make_backend(spec, cache_dir=root / "cache")
    return built


def subject(suite, look=0, model="oracle"):
    return make_subject(suite, model, TASK, suite.factory, look)


def test_a_subject_at_each_look_has_that_looks_images_and_confidence(suite):
    design = suite.design
    assert design.looks == (FIRST, LAST)
    for look in (0, 1):
        s = subject(suite, look)
        assert (s.look, s.n_per_class) == (look, design.looks[look])
        assert s.thresholds.confidence == design.confidences[look] != suite.thresholds.confidence
        assert s.grid.n_images == 2 * design.looks[look] and int(s.grid.is_pos.sum()) == design.looks[look]
        assert s.grid.variants == [v.key for v in suite.variants]
        assert (s.model.name, s.task.key, s.looks) == ("oracle", TASK, 2)
        assert s.images_at(0) == 2 * FIRST and s.images_at(1) == 2 * LAST
    first = subject(suite, 0)
    later = first.at_look(1)
    assert later.look == 1 and later.grid.image_ids == subject(suite, 1).grid.image_ids
    assert set(first.grid.image_ids) < set(later.grid.image_ids)  # a larger look extends the smaller


def test_the_other_stages_are_read_at_the_subjects_look(suite):
    for look in (0, 1):
        s = subject(suite, look)
        assert s.base_grid().image_ids == s.grid.image_ids == s.previous_grid().image_ids
        descriptions = s.description_grid()
        assert descriptions.image_ids == s.grid.image_ids
        assert len(descriptions.variants) == len(suite.registry.describe_prompts) * len(
            suite.registry.diagnoser_templates)
        assert s.previous_description_grid().image_ids == s.grid.image_ids  # the gap regression's other arms
    with pytest.raises(NotApplicable, match="no vision encoder"):
        subject(suite).embeddings()
    plain = subject(suite, model="oracle-base")
    with pytest.raises(NotApplicable, match="names no base_model"):
        plain.base_grid()
    with pytest.raises(NotApplicable, match="names no previous version"):
        plain.previous_grid()
    with pytest.raises(NotApplicable, match="names no previous version"):
        plain.previous_description_grid()


@pytest.mark.parametrize("look", [0, 1])
def test_every_check_is_its_finding_on_the_subjects_data(suite, look):
    s = subject(suite, look)
    th = s.thresholds

    def same(a, b):
        assert a.record() == b.record()
        assert a.confidence == th.confidence

    same(checks.above_chance(s), near_random.evaluate(s.grid, th))
    same(checks.finetuning_gain(s), finetune_gain.evaluate(s.grid, s.base_grid(), th))
    same(checks.accuracy_swing(s), prompt_sensitivity.accuracy_swing(s.grid, th))
    same(checks.refusal_swing(s), prompt_sensitivity.refusal_swing(s.grid, th))
    for family in PERTURBATION_FAMILIES:
        same(checks.answer_invariance(s, family), prompt_sensitivity.answer_invariance(s.grid, s.variants, family, th))
    same(checks.no_suppressed_knowledge(s), description_recovery.evaluate(s.description_grid(), s.grid, th))
    for metric in regression.METRICS:
        same(checks.no_regression(s, metric), regression.evaluate(s.grid, s.previous_grid(), s.variants, metric, th))
    same(checks.no_knowledge_gap_regression(s),
         regression.evaluate_gap(s.description_grid(), s.grid, s.previous_description_grid(), s.previous_grid(), th))
    for check in (checks.encoder_separates_classes, checks.answers_use_encoder_signal):
        with pytest.raises(NotApplicable):
            check(s)
    blank = s.blank_grid()
    assert blank.image_ids == [f"{i}#content-free" for i in s.grid.image_ids]
    same(checks.answers_depend_on_image(s), image_reliance.answers_depend_on_image(s.grid, blank, th))
    same(checks.no_answer_without_image(s), image_reliance.no_answer_without_image(s.grid, blank, th))


def test_an_accuracy_verdict_warns_only_when_the_run_asked_about_stand_ins_and_they_are_answered_above_chance(suite):
    s = subject(suite)
    assert not s.has_blank()
    assert checks.judge(s, checks.above_chance).warning == ""  # nothing asked about stand-ins: nothing said
    assert not s.has_blank()  # and nothing filled for it
    s.blank_grid()
    assert s.has_blank()
    assert checks.judge(s, checks.above_chance).warning == ""  # the oracle looks: its stand-ins are at chance
    blind = checks.judge(s, checks.no_answer_without_image)
    assert blind.label == "robust" and blind.warning == ""
    # the same subject, its stand-ins' answers replaced by the real ones (right without the image)
    key = ("blank", "oracle", TASK, FIRST)
    saved = suite.results[key]
    cued = s.table.copy()
    cued["image_id"] = cued["image_id"] + "#content-free"
    suite.results[key] = cued
    suite.__dict__.pop("_blind_verdicts", None)
    try:
        for check, params in ((checks.above_chance, {}), (checks.finetuning_gain, {}), (checks.accuracy_swing, {}),
                              (checks.no_suppressed_knowledge, {}), (checks.no_regression, {"metric": "balanced_accuracy"})):
            warning = checks.judge(s, check, **params).warning
            assert warning.startswith("suspect: answers about content-free images (no image content, the same prompts) "
                                      "are shown to be above chance (balanced accuracy 1.000, upper bound 1.000, "
                                      "limit 0.550)"), (check, warning)
        for check, params in ((checks.refusal_swing, {}), (checks.answer_invariance, {"perturbation": "polarity"}),
                              (checks.no_regression, {"metric": "refusal_rate"}), (checks.no_answer_without_image, {})):
            assert checks.judge(s, check, **params).warning == "", check
        verdict = checks.judge(s, checks.above_chance)
        assert "WARNING: suspect" in verdict.message() and verdict.record()["warning"] == verdict.warning
        assert verdict.warning.endswith("limit 0.550); the prompt or a text prior may give the class away "
                                        "(test_no_answer_without_image)")
    finally:
        suite.results[key] = saved
        suite.__dict__.pop("_blind_verdicts", None)


def test_judging_over_the_looks_on_a_real_subject(suite):
    verdict = checks.judge(subject(suite), checks.above_chance)
    assert verdict.label == "robust" and verdict.details["looks"][0]["images_per_class"] == FIRST
    assert verdict.n_images == 2 * FIRST and "look 1 of 2" in verdict.message()


def test_too_many_errors_stop_a_subject_naming_it(suite):
    s = subject(suite)
    table = s.table.copy()
    table.loc[table.index[: len(table) * 3 // 4], ["outcome", "error"]] = ["error", "HTTP 500"]
    with pytest.raises(TooManyErrors, match=r"oracle × brain_tumor: 75\.0% of responses are errors.*HTTP 500"):
        checked_grid("oracle", TASK, table, suite)
    strict = dataclasses.replace(suite.thresholds, max_error_rate=0.0)
    few = s.table.copy()
    few.loc[few.index[:1], ["outcome", "error"]] = ["error", "timeout"]
    suite.thresholds, saved = strict, suite.thresholds
    try:
        assert checked_grid("oracle", TASK, few, suite).n_images == 2 * FIRST  # one error is not shown to exceed 0
    finally:
        suite.thresholds = saved


# ------------------------------------------------------------ the fill's looks (fill/adaptive.py)


class Scripted:
    """A check with a fixed label (each call counted with its look and parameters)."""

    def __init__(self, label: str = "inconclusive"):
        self.label, self.calls = label, []

    def __call__(self, view, **params):
        from harness.verdict import Verdict

        self.calls.append((view.n_per_class, params))
        value = {"robust": 0.9, "fragile": 0.1, "inconclusive": 0.5}[self.label]
        return Verdict("f", "m", value, value - 0.05, value + 0.05, 0.5, "ge", view.thresholds.confidence,
                       view.grid.n_images)


def test_the_fill_extends_an_undecided_check_with_the_models_it_compares_with(suite):
    from harness.fill.adaptive import fill_looks
    from harness.findings.checks import CheckSpec

    undecided, decided = Scripted(), Scripted("robust")
    labels: list = []
    checks_by_cell = {("oracle", TASK): [(CheckSpec(undecided, frozenset({"closed", "describe"}), "base_model"),
                                          {"family": "polarity"}),
                                         (CheckSpec(decided, frozenset({"closed"})), {})]}
    extended = fill_looks(suite, {("oracle", TASK): {"closed"}}, checks_by_cell, suite.factory,
                          progress=lambda label, done, total: labels.append(label))
    assert extended == {1: [("oracle", TASK)]}
    assert undecided.calls == [(FIRST, {"family": "polarity"})] and decided.calls == [(FIRST, {})]
    # the model it compares with is read as the check reads the subject: its descriptions too
    for key in (("closed", "oracle", TASK, LAST), ("describe", "oracle", TASK, LAST), ("closed", "oracle-base", TASK, LAST),
                ("describe", "oracle-base", TASK, LAST)):
        assert key in suite.results, key
    assert "oracle × brain_tumor (look at 8 per class)" in labels


def test_a_check_that_cannot_be_judged_or_is_hopeless_draws_nothing(suite):
    from harness.fill.adaptive import fill_looks
    from harness.findings.checks import CheckSpec

    def not_applicable(view, **params):
        raise NotApplicable("no encoder")

    cell = ("oracle-base", TASK)
    assert fill_looks(suite, {cell: {"closed"}}, {cell: [(CheckSpec(not_applicable, frozenset({"embed"})), {})]},
                      suite.factory) == {}
    hopeless = Scripted()
    suite._design, saved = dataclasses.replace(suite.design, min_decide_chance=0.5), suite.design
    try:  # an estimate on its threshold: the last look would not likely decide it
        assert fill_looks(suite, {cell: {"closed"}}, {cell: [(CheckSpec(hopeless, frozenset({"closed"})), {})]},
                          suite.factory) == {}
    finally:
        suite._design = saved
    assert hopeless.calls == [(FIRST, {})]
    assert ("closed", "oracle-base", TASK, FIRST) in suite.results


def test_the_blind_warning_is_per_subject_says_when_it_is_not_ruled_out_and_never_raises(suite):
    """Pins blind_warning's edges (mutation testing: its survivors)."""
    keys = [("blank", m, TASK, n) for m in ("oracle", "oracle-base") for n in (FIRST, LAST)]
    for look in (0, 1):
        for model in ("oracle", "oracle-base"):
            subject(suite, look, model).blank_grid()
    saved = {k: suite.results[k] for k in keys}

    def stand_ins(look, wrong_share=0.0):
        """The real answers as the stand-ins' (right without the image), a share of the negative
        images answered wrong under every prompt."""
        table = subject(suite, look).table.copy()
        negatives = sorted(table.loc[table["label"] == "negative", "image_id"].unique())
        table.loc[table["image_id"].isin(negatives[: int(len(negatives) * wrong_share)]), "outcome"] = "positive"
        table["image_id"] = table["image_id"] + "#content-free"
        return table

    def use(wrong_share):
        for look, n in ((0, FIRST), (1, LAST)):
            suite.results[("blank", "oracle", TASK, n)] = stand_ins(look, wrong_share)
        suite.__dict__.pop("_blind_verdicts", None)

    try:
        use(0.0)
        assert checks.blind_warning(subject(suite)).startswith("suspect:")
        assert checks.blind_warning(subject(suite, model="oracle-base")) == ""  # its own stand-ins, its own verdict
        use(0.75)  # balanced accuracy 0.625 on 4 and 8 images per class: not shown either way
        assert checks.judge(subject(suite), checks.no_answer_without_image).label == "inconclusive"
        assert "may be above chance (not ruled out)" in checks.blind_warning(subject(suite))
        original = checks.no_answer_without_image

        def failing(view):
            raise NotApplicable("no stand-ins")

        checks.no_answer_without_image = failing  # a stand-in stage that cannot be judged: nothing said, no error
        suite.__dict__.pop("_blind_verdicts", None)
        try:
            assert checks.blind_warning(subject(suite)) == ""
            assert checks.blind_warning(subject(suite)) == ""  # remembered as "nothing to say"
        finally:
            checks.no_answer_without_image = original
    finally:
        suite.results.update(saved)
        suite.__dict__.pop("_blind_verdicts", None)
