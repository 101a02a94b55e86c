"""A gate a robust model can pass: simulated subjects served over the OpenAI API, end to end (issue 10).

The whole behaviour suite (pytester, in process) judges SIMULATED subjects with known
behaviour (simulated_subjects.py) served by harness.serve on 127.0.0.1 through the real
openai client, on all four tasks at the default sample size:

- a robust subject (about 5 % of answers changing between prompts, 2 % random refusals)
  passes near_random, prompt_sensitivity and description_recovery, with at most two
  inconclusive tests in all (before the noise-free swings, the flip rule and the
  coin-flip gaps, 19-28 of its tests failed);
- a subject that refuses 40 % of the images and knows nothing is never said to hide
  knowledge, though its direct answers, with refusals counted wrong, sit far below chance;
- the robust subject writing a nine-word preamble before every answer, served with
  `finish_reason: "length"` at the token cap, passes near_random and prompt_sensitivity
  as the terse one does: every cut-off answer is asked again with a larger budget, and
  the report and summary.json say how many (issue 11).
"""

from __future__ import annotations

import contextlib
import json

import pytest

from harness.plugin.options import DEFAULT_N_PER_CLASS
from harness.serve import start_server

from .simulated_subjects import KnowsNothingRefuser, RobustSubject, WordyRobustSubject
from .test_reliability_support import make_suite_dir, summary, write_image

pytest_plugins = ["pytester"]

TASKS = ("brain_tumor", "pneumonia", "skin_cancer", "histopathology")
SUBJECT, DIAGNOSER = "simulated-subject", "simulated-diagnoser"


@contextlib.contextmanager
def serving(tmp_path, backend):
    handle = start_server(backend, served_name=SUBJECT)
    try:
        models = tmp_path / "served.toml"
        models.write_text("".join(
            f'[models.{name}]\nbackend = "openai"\nmodel = "{SUBJECT}"\nbase_url = "{handle.url}"\nconcurrency = 16\n\n'
            for name in (SUBJECT, DIAGNOSER)))
        yield models
    finally:
        handle.stop()


def four_task_folder(root, n):
    for task in TASKS:
        for i in range(n):
            write_image(root / task / "positive" / f"pos{i:03d}.png", "positive", i + 1000 * TASKS.index(task))
            write_image(root / task / "negative" / f"neg{i:03d}.png", "negative", i + 1000 * TASKS.index(task))
    return root


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return four_task_folder(tmp_path_factory.mktemp("trust-data"), DEFAULT_N_PER_CLASS)


def judge(pytester, tmp_path, backend, data_root, marks="near_random or prompt_sensitivity or description_recovery",
          *extra):
    make_suite_dir(pytester)
    with serving(tmp_path, backend) as models:
        pytester.runpytest(
            f"--models-file={models}", f"--models={SUBJECT}", f"--diagnoser={DIAGNOSER}", f"--data-root={data_root}",
            f"--cache-dir={tmp_path / 'cache'}", f"--results-dir={tmp_path / 'res'}",
            f"--baseline={tmp_path / 'none.toml'}", "-p", "no:cacheprovider", "-m", marks, *extra)
    return summary(tmp_path / "res")


def test_a_robust_subject_passes_near_random_prompt_sensitivity_and_description_recovery(pytester, tmp_path, data_root):
    records = judge(pytester, tmp_path, RobustSubject(SUBJECT), data_root)
    assert len(records) == 4 * (1 + 2 + 4 + 1)
    labels = [r["label"] for r in records.values()]
    failing = {t: (r["label"], r["value"], r["ci_low"], r["ci_high"]) for t, r in records.items() if r["label"] != "robust"}
    assert labels.count("fragile") == 0, failing
    assert labels.count("inconclusive") <= 2, failing


def test_a_subject_that_refuses_and_knows_nothing_never_hides_knowledge(pytester, tmp_path, data_root):
    records = judge(pytester, tmp_path, KnowsNothingRefuser(SUBJECT), data_root)
    gaps = {t: r for t, r in records.items() if r["finding"] == "description_recovery"}
    assert len(gaps) == 4
    assert all(r["label"] != "fragile" for r in gaps.values()), gaps
    near_random = [r for r in records.values() if r["finding"] == "near_random"]
    assert all(r["label"] == "fragile" for r in near_random)  # it does fail what it should


def test_a_wordy_robust_subject_cut_off_at_the_token_cap_is_asked_again_and_passes(pytester, tmp_path, data_root):
    report = tmp_path / "report.html"
    records = judge(pytester, tmp_path, WordyRobustSubject(SUBJECT), data_root,
                    "near_random or prompt_sensitivity", f"--html={report}")
    assert len(records) == 4 * (1 + 2 + 4)
    failing = {t: (r["label"], r["value"], r["ci_low"], r["ci_high"]) for t, r in records.items() if r["label"] != "robust"}
    labels = [r["label"] for r in records.values()]
    assert labels.count("fragile") == 0, failing
    assert labels.count("inconclusive") <= 2, failing
    answers = json.loads((tmp_path / "res" / "summary.json").read_text())["answers"]
    assert {a["task"] for a in answers} == set(TASKS)
    for counts in answers:
        # every answer but the (short) refusals ran past 8 tokens; all were asked again and read
        assert counts["truncated"] >= 0.95 * counts["answers"], counts
        assert counts["reasked"] == counts["truncated"] and counts["cut_off_unparsed"] == 0, counts
        assert counts["unparsed"] <= 0.05 * counts["answers"], counts
    page = report.read_text(encoding="utf-8")
    assert "How the answers were read" in page and "hit the token cap" in page
