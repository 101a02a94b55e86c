"""A gate a robust model can pass: simulated subjects served over the OpenAI API, end to end
(issues 10 and 18).

The whole behaviour suite (pytester, in process) judges SIMULATED subjects with known
behaviour (simulated_subjects.py) served by harness.serve on 127.0.0.1 through the real
openai client, on all four tasks at the default design (the first look at 100 images per
class, undecided subjects looking again up to 300; the image folders hold 300):

- a robust subject (about 5 % of answers changing between prompts, 2 % random refusals,
  true swings 0) passes the full default run: every test robust, the encoder tests not
  applicable to an endpoint (before the noise-free swings, the flip rule and the coin-flip
  gaps, 19-28 of its tests failed; with one look at 100 per class, up to two stayed
  inconclusive);
- the same subject made fragile on prompts (it says "Yes" to every yes/no question about
  an image it finds hard) fails the answer-invariance tests;
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

from harness.core import Thresholds
from harness.serve import start_server

from .simulated_subjects import KnowsNothingRefuser, RobustSubject, WordyRobustSubject, YesSayer
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
    """300 images per class and task: every look of the default design can draw its images."""
    return four_task_folder(tmp_path_factory.mktemp("trust-data"), Thresholds().sequential["max_n_per_class"])


def judge(pytester, tmp_path, backend, data_root, marks="near_random or prompt_sensitivity or description_recovery",
          *extra):
    make_suite_dir(pytester)
    with serving(tmp_path, backend) as models:
        pytester.runpytest(
            f"--models-file={models}", f"--models={SUBJECT}", f"--diagnoser={DIAGNOSER}", f"--data-root={data_root}",
            f"--cache-dir={tmp_path / 'cache'}", f"--results-dir={tmp_path / 'res'}",
            f"--baseline={tmp_path / 'none.toml'}", "-p", "no:cacheprovider", *(["-m", marks] if marks else []), *extra)
    return summary(tmp_path / "res")


def test_a_robust_subject_passes_a_full_default_run(pytester, tmp_path, data_root):
    records = judge(pytester, tmp_path, RobustSubject(SUBJECT), data_root, "")
    assert len(records) == 4 * (1 + 2 + 4 + 1 + 2 + 2)
    applicable = {t: r for t, r in records.items() if r["finding"] != "embedding_separability"}
    failing = {t: (r["label"], r["value"], r["ci_low"], r["ci_high"]) for t, r in applicable.items()
               if r["label"] != "robust"}
    assert not failing and all(r["outcome"] == "passed" for r in applicable.values()), failing
    assert all(r["label"] == "not_applicable" for t, r in records.items() if t not in applicable)


def test_a_subject_fragile_on_prompts_still_fails(pytester, tmp_path, data_root):
    records = judge(pytester, tmp_path, YesSayer(SUBJECT), data_root, "prompt_sensitivity")
    flips = {t: r for t, r in records.items() if "-polarity]" in t}
    assert len(flips) == 4 and all(r["label"] == "fragile" for r in flips.values()), flips


def one_look(tmp_path) -> str:
    """The fixed design (one look at 100 images per class): for the tests below, which are
    about knowledge gaps and cut-off answers, not about how many images a verdict reads."""
    path = tmp_path / "one-look.toml"
    path.write_text("[sequential]\nmax_n_per_class = 0\n")
    return f"--thresholds={path}"


def test_a_subject_that_refuses_and_knows_nothing_never_hides_knowledge(pytester, tmp_path, data_root):
    records = judge(pytester, tmp_path, KnowsNothingRefuser(SUBJECT), data_root,
                    "near_random or prompt_sensitivity or description_recovery", one_look(tmp_path))
    gaps = {t: r for t, r in records.items() if r["finding"] == "description_recovery"}
    assert len(gaps) == 4
    assert all(r["label"] != "fragile" for r in gaps.values()), gaps
    near_random = [r for r in records.values() if r["finding"] == "near_random"]
    assert all(r["label"] == "fragile" for r in near_random)  # it does fail what it should


def test_a_wordy_robust_subject_cut_off_at_the_token_cap_is_asked_again_and_passes(pytester, tmp_path, data_root):
    report = tmp_path / "report.html"
    records = judge(pytester, tmp_path, WordyRobustSubject(SUBJECT), data_root,
                    "near_random or prompt_sensitivity", f"--html={report}", one_look(tmp_path))
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
