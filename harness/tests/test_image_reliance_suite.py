"""The image-reliance finding through the whole behaviour suite (issue 20), on real servers.

Models served over the OpenAI API on 127.0.0.1 (harness.serve, the openai client):

- the oracle (it reads the image: bright is positive) looks: both tests pass, the
  stand-ins' answers reach responses.csv under their own ids, only the `[image_reliance]
  variants` asked of them cost calls, and a warm run asks nothing;
- a subject cued by the image's size (a data set whose classes come in different sizes;
  the stand-ins keep the size, so the cue survives) answers right without the image: both
  tests fail, labelled fragile, and its accuracy verdict passes with a WARNING in its
  message, a line in the terminal, in summary.md and in the report's header.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from .test_reliability_support import (TASK, OracleBackend, make_suite_dir, report_texts, run_suite, served,
                                       summary)

pytest_plugins = ["pytester"]

N = 12  # images per class
VARIANTS = 12
ASKED_BLANK = ["abnormal", "choice_ab"]
TESTS = "image_reliance or near_random"


class SizeCued(OracleBackend):
    """Answers from the image's size (width 16: positive), whatever its pixels: a cue that a
    content-free stand-in of the same size keeps."""

    def _answer(self, request, images):
        label = "positive" if images[request.image_key].size[0] == 16 else "negative"
        variant = self.variants.get(request.prompt)
        if variant.kind == "choice":
            return "A" if variant.options[0] == label else "B"
        return "Yes." if variant.yes_means == label else "No."


def sized_folder(root: Path) -> Path:
    """Positives 16 px wide, negatives 20 px, all of one grey with one distinct pixel."""
    for label, folder, width in (("positive", "yes", 16), ("negative", "no", 20)):
        for i in range(N):
            arr = np.full((16, width, 3), 120, dtype=np.uint8)
            arr.flat[i] = 200 + i
            path = root / TASK / folder / f"{label}{i:02d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(arr).save(path)
    return root


@pytest.fixture
def suite(pytester, tmp_path):
    make_suite_dir(pytester)
    thresholds = tmp_path / "thresholds.toml"
    thresholds.write_text(f"[image_reliance]\nvariants = {ASKED_BLANK!r}\n".replace("'", '"'))
    return pytester, thresholds


def test_a_model_that_looks_passes_and_only_the_chosen_variants_are_asked_about_the_stand_ins(suite, tmp_path):
    pytester, thresholds = suite
    res = tmp_path / "res"
    with served(tmp_path) as (server, models_file):
        result = run_suite(pytester, models_file, tmp_path / "cache", f"--results-dir={res}", f"--thresholds={thresholds}",
                           "-m", TESTS, n=N)
        # the stand-ins: the chosen variants only, and images of one size make one request per prompt
        assert len(server.requests_seen) == 2 * N * VARIANTS + len(ASKED_BLANK)
        warm = run_suite(pytester, models_file, tmp_path / "cache", f"--thresholds={thresholds}", "-m", TESTS, n=N)
        assert len(server.requests_seen) == 2 * N * VARIANTS + len(ASKED_BLANK)  # a warm run asks nothing
    result.assert_outcomes(passed=3)
    warm.assert_outcomes(passed=3)
    records = summary(res)
    depends = next(r for t, r in records.items() if "test_answers_depend_on_image" in t)
    blind = next(r for t, r in records.items() if "test_no_answer_without_image" in t)
    assert depends["label"] == blind["label"] == "robust" and depends["finding"] == "image_reliance"
    assert depends["value"] == pytest.approx(0.5)  # a stand-in reads as one class: the other class's answers change
    assert blind["value"] == pytest.approx(0.5)
    with open(res / "responses.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["image_id"].endswith("#content-free")]
    assert len(rows) == 2 * N * len(ASKED_BLANK) and {r["variant"] for r in rows} == set(ASKED_BLANK)
    assert "| image_reliance |" in (res / "summary.md").read_text().splitlines()[4] + " |"
    assert "suspect" not in result.stdout.str()


def test_a_model_cued_by_the_image_size_fails_both_and_its_accuracy_verdict_is_marked_suspect(suite, tmp_path):
    pytester, thresholds = suite
    res, report = tmp_path / "res", tmp_path / "report.html"
    with served(tmp_path, SizeCued()) as (server, models_file):
        result = run_suite(pytester, models_file, tmp_path / "cache", f"--results-dir={res}", f"--thresholds={thresholds}",
                           f"--data-root={sized_folder(tmp_path / 'sized')}", f"--html={report}", "--self-contained-html",
                           "-m", TESTS, n=N)
    result.assert_outcomes(passed=1, failed=2)
    records = summary(res)
    by = {t.split("::")[1].split("[")[0]: r for t, r in records.items()}
    assert by["test_answers_depend_on_image"]["label"] == "fragile"  # the same answers without the image
    assert by["test_answers_depend_on_image"]["value"] == 1.0
    assert by["test_no_answer_without_image"]["label"] == "fragile"  # right without the image
    assert by["test_no_answer_without_image"]["value"] == 1.0
    above = by["test_above_chance"]
    assert above["label"] == "robust"
    assert "WARNING: suspect: answers about content-free images (no image content, the same prompts) are shown to be " \
           "above chance" in above["reason"]
    note = "answers about content-free images are above chance (shown)"
    result.stdout.fnmatch_lines([f"medvlm: oracle × {TASK}: {note}*accuracy verdicts are suspect"])
    assert note in (res / "summary.md").read_text()
    page, strings = report_texts(report)
    assert note in page
