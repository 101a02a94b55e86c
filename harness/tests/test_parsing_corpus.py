"""The parser measured on real model answers (fixtures/answers/real_answers.csv).

SPEC §3: on a corpus of real answers from public sources (several models and styles) the
parser agrees with the careful human reading on at least 95 % of the clear answers and
never picks the opposite label; issue 21 raised the bar to 98 % on both splits. Both splits are
held to it: ``main`` (the answers the rules were designed on, the first round's held-out rows
among them, read after they were measured) and ``heldout`` (other records, read by a person
before the parser was run on them). `python -m harness.answers.evaluate` prints the same
numbers by model and style.
"""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.core import PromptVariant
from harness.answers.parsing import finding_patterns, parse_answer, parse_yes_no
from harness.answers.evaluate import CORPUS, SPLITS, evaluate, format_report, load_corpus, to_case

ROWS = load_corpus()
YES_NO_ROWS = [r for r in ROWS if r["kind"] == "yes_no"]


def test_corpus_is_well_formed():
    ids = [r["id"] for r in ROWS]
    assert len(ids) == len(set(ids))
    sizes = Counter(r["split"] for r in ROWS)
    assert sizes["main"] >= 450 and sizes["heldout"] >= 100, sizes
    for r in ROWS:
        assert r["split"] in SPLITS and r["reading"] in ("positive", "negative", "refused", "ambiguous"), r["id"]
        assert r["source"].startswith("github:") and "@" in r["source"] and r["model"] and r["question"], r["id"]
        if r["kind"] == "yes_no":
            assert r["yes_means"] in ("positive", "negative") and r["positive_name"], r["id"]
        else:
            assert r["kind"] == "choice" and sorted(r["options"].split(",")) == ["negative", "positive"], r["id"]
            assert r["option_a"] and r["option_b"], r["id"]
            # the parser is given the options as the task's class names: they must be the option texts
            names = {"positive": r["positive_name"], "negative": r["negative_name"]}
            assert [names[o] for o in r["options"].split(",")] == [r["option_a"], r["option_b"]], r["id"]
    for split in SPLITS:  # several models and both polarities in each split
        rows = [r for r in ROWS if r["split"] == split]
        assert len({r["model"] for r in rows}) >= 3
        assert {r["yes_means"] for r in rows if r["kind"] == "yes_no"} == {"positive", "negative"}


def test_splits_share_no_answer():
    """The held-out answers are other records than the main ones: other files, or (the ProbMed
    rows of round 2) other images of the same runs' files."""
    sources = {split: {r["source"] for r in ROWS if r["split"] == split} for split in SPLITS}
    assert not sources["main"] & sources["heldout"]

    def images(split: str) -> set[tuple[str, str]]:
        return {(r["source"].split("#")[0], r["source"].split("#")[1].split(",")[0])
                for r in ROWS if r["split"] == split and "ProbMed" in r["source"]}

    assert images("heldout") and not images("main") & images("heldout")
    # the other held-out rows come from files main does not use
    files = {split: {r["source"].split("#")[0] for r in ROWS if r["split"] == split and "ProbMed" not in r["source"]}
             for split in SPLITS}
    assert files["heldout"] and not files["main"] & files["heldout"]


# Measured (issue 21, round 2; fixtures/answers/README.md, "Held-out protocol"): main 0.993
# (1142/1150), held-out 0.986 (349/354) at its one measurement, 0.989 after the fix of its one
# opposite label. The floors sit just under, so a change that reads more real answers wrongly
# fails here.
FLOOR = {"main": 0.985, "heldout": 0.98}


@pytest.mark.parametrize("split", SPLITS)
def test_parser_reads_real_answers_as_a_person_does(split):
    report = evaluate([r for r in ROWS if r["split"] == split])[split]
    text = format_report({split: report}, show_disagreements=True)
    assert report.total.opposite == 0, text
    assert report.total.agreement >= FLOOR[split], text


NEUTRAL = "Answer about the image."  # a question whose words no answer states back


def _flipped(variant: PromptVariant) -> PromptVariant:
    other = "negative" if variant.yes_means == "positive" else "positive"
    return PromptVariant(variant.key, NEUTRAL, "yes_no", yes_means=other)


@settings(max_examples=150, deadline=None)
@given(row=st.sampled_from(YES_NO_ROWS))
def test_polarity_inversion_swaps_word_answers_and_keeps_statements(row):
    """A yes/no word means the other label when the question's polarity is inverted; a
    statement ("There is no evidence of X", "appears normal") asserts the same label."""
    case = to_case(row)
    # The same words under the other polarity. The question's text is left out of both
    # readings: an answer that states the question's claim back ("The liver is not normal"
    # to "Is the liver normal?") is a yes or no to that text, which a flipped polarity
    # without a reworded question would contradict (test_parsing.py tests those readings).
    neutral = PromptVariant(case.variant.key, NEUTRAL, "yes_no", yes_means=case.variant.yes_means)
    before = parse_answer(case.text, neutral, case.task)
    after = parse_answer(case.text, _flipped(case.variant), case.task)
    if before == "refused":
        assert after == "refused"
    elif parse_yes_no(case.text, finding_patterns(case.task)) is not None:
        assert after == ("negative" if before == "positive" else "positive")
    else:
        assert after == before


def _respace(text: str, spaces: list[str]) -> str:
    parts = text.split(" ")
    return "".join(p + (spaces[i % len(spaces)] if i < len(parts) - 1 else "") for i, p in enumerate(parts))


@settings(max_examples=150, deadline=None)
@given(row=st.sampled_from(ROWS), case=st.sampled_from(["upper", "lower", "title", "swap"]),
       spaces=st.lists(st.sampled_from([" ", "  ", "\t", " \t "]), min_size=1, max_size=4),
       pad=st.tuples(st.sampled_from(["", " ", "\n", "\t"]), st.sampled_from(["", " ", "\n"])))
def test_case_and_spacing_do_not_change_the_reading(row, case, spaces, pad):
    c = to_case(row)
    text = getattr(c.text, {"swap": "swapcase"}.get(case, case))()
    variant_text = pad[0] + _respace(text, spaces) + pad[1]
    assert parse_answer(variant_text, c.variant, c.task) == parse_answer(c.text, c.variant, c.task)


def test_corpus_path_is_the_fixture():
    assert CORPUS.name == "real_answers.csv" and CORPUS.parent.name == "answers"


# ---- the replay's own bookkeeping: the figures above are only as right as these counts ----

def _row(i: int, answer: str, reading: str, model: str = "m1", styles: str = "terse", split: str = "main") -> dict:
    return {"id": f"r{i}", "split": split, "model": model, "dataset": "d", "source": "github:x/y@z:f#1",
            "question": "Is there a tumor?", "kind": "yes_no", "yes_means": "positive", "positive_name": "tumor",
            "negative_name": "no tumor", "option_a": "", "option_b": "", "options": "", "answer": answer,
            "reading": reading, "styles": styles}


SMALL = [  # answer, human reading: right, right, opposite, refused-but-committed, a missed answer, unscored
    _row(0, "Yes", "positive"), _row(1, "No", "negative", model="m2", styles="terse,no_lead"),
    _row(2, "No", "positive"), _row(3, "Yes", "refused", model="m2"), _row(4, "I am not sure.", "negative"),
    _row(5, "Yes", "ambiguous"), _row(6, "Yes", "positive", split="heldout"),
    # right again, opposite the other way, a refusal read as one, invented again
    _row(7, "Yes", "positive"), _row(8, "Yes", "negative"), _row(9, "I am not sure.", "refused"),
    _row(10, "No", "refused"), _row(11, "No", "negative"),
]


def test_the_tally_counts_each_kind_of_reading():
    report = evaluate(SMALL)
    t = report["main"].total
    assert (t.clear, t.agree, t.committed, t.committed_agree, t.opposite, t.invented) == (10, 5, 7, 4, 2, 2)
    assert report["heldout"].total.clear == 1 and report["heldout"].total.agree == 1
    m1, m2 = report["main"].by_model["m1"], report["main"].by_model["m2"]
    assert (m1.clear, m1.agree, m1.opposite) == (8, 4, 2) and (m2.clear, m2.agree, m2.invented) == (2, 1, 1)
    assert report["main"].by_style["no_lead"].clear == 1 and report["main"].by_style["terse"].clear == 10
    assert report["main"].confusion[("positive", "positive")] == 2
    assert report["main"].confusion[("ambiguous", "positive")] == 1
    assert sum(report["main"].confusion.values()) == 11
    assert [(c.row["id"], o) for c, o in report["main"].disagreements] == [
        ("r2", "negative"), ("r3", "positive"), ("r4", "refused"), ("r8", "positive"), ("r10", "negative")]


def test_the_report_prints_the_counts():
    from harness.answers.evaluate import Tally, _pct

    text = format_report(evaluate(SMALL), show_disagreements=True)
    assert "== split main: 11 answers, 10 clear (ambiguous ones not scored)" in text
    assert ("agreement 5/10 = 50.0 %; committed answers read right 4/7; opposite label 2; invented answers "
            "(human refused, parser committed) 2") in text
    assert "     m1                                50.0 %  (4/8, opposite 2)" in text
    assert "     no_lead                          100.0 %  (1/1, opposite 0)" in text  # by size, then name
    assert "     terse                             50.0 %  (5/10, opposite 2)" in text
    assert "     positive           2         1         0\n     negative           1         2         1" in text
    assert "     [r2] human positive, parser negative: No" in text
    assert text.index("== split main") < text.index("== split heldout")
    assert "disagreements" not in format_report(evaluate(SMALL))
    assert _pct(Tally()) == "    -  "


def test_the_command_line_prints_the_report(tmp_path, capsys):
    import csv

    from harness.answers.evaluate import main

    path = tmp_path / "corpus.csv"
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(SMALL[0]))
        w.writeheader()
        w.writerows(SMALL)
    assert main(["--corpus", str(path), "--split", "heldout"]) == 0
    out = capsys.readouterr().out
    assert "== split heldout: 1 answers" in out and "== split main" not in out and "disagreements" not in out
    # another parser, from a file (as `git show <rev>:harness/answers/parsing.py > old.py` gives) or a module
    other = tmp_path / "never_answers.py"
    other.write_text("def parse_answer(text, variant, task):\n    return 'refused'\n")
    main(["--corpus", str(path), "--split", "heldout", "--parser", str(other), "--show-disagreements"])
    out = capsys.readouterr().out
    assert "agreement 0/1 = 0.0 %" in out and "[r6] human positive, parser refused: Yes" in out
    main(["--corpus", str(path), "--split", "heldout", "--parser", "harness.answers.parsing"])
    assert "agreement 1/1 = 100.0 %" in capsys.readouterr().out


def test_a_row_becomes_the_variant_and_task_the_suite_would_give():
    choice = next(r for r in ROWS if r["kind"] == "choice")
    case = to_case(choice)
    assert case.variant.kind == "choice" and case.variant.options == tuple(choice["options"].split(","))
    assert case.variant.template == choice["question"] and case.text == choice["answer"]
    row = _row(0, "Yes", "positive")
    case = to_case(dict(row, yes_means="negative"))
    assert case.variant.kind == "yes_no" and case.variant.yes_means == "negative"
    assert (case.task.positive_name, case.task.negative_name, case.task.disease) == ("tumor", "no tumor", "tumor")
