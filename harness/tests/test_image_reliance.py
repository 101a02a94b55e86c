"""The image-reliance finding's inputs, estimands and verdicts (issue 20).

- content-free stand-ins: the real image's size and label, one uniform colour (the mean of
  the images), their own id and pixel hash (hypothesis over sizes and colours);
- their answers go through the real fill and a real SQLite store under their own keys, and
  a warm run asks the model nothing; identical requests (stand-ins of one size) are asked once;
- `unchanged_share` and `blind_balanced_accuracy` against direct computation (and
  scikit-learn's balanced accuracy), and on SIMULATED subjects (named as such): one that
  looks, one that ignores the image, one cued by the image's size (which a stand-in keeps);
- the two verdicts: the one that looks passes both, the one that ignores the image fails
  the first, the cued one fails the second; a `variants` subset is judged on its variants.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from sklearn.metrics import balanced_accuracy_score

from harness.config.registry import load_registry
from harness.core import GenerationResult, HarnessError, ImageItem, NotApplicable, Thresholds
from harness.data.content_free import SUFFIX, content_free_items, mean_colour, real_image_id
from harness.data.images import pixel_sha256
from harness.data.sources import load_synthetic
from harness.fill.closed_form import BackendHandle, build_table, fill_closed_form
from harness.findings.grid import Grid, grid_from_table, weights_for
from harness.findings.image_reliance import (aligned, answers_depend_on_image, blind_balanced_accuracy,
                                             no_answer_without_image, unchanged_share)
from harness.answers.parsing import parse_answer
from harness.store import ResponseStore

from .simulated_subjects import RobustSubject

REGISTRY = load_registry()
TASK = REGISTRY.tasks["brain_tumor"]
VARIANTS = [REGISTRY.variants[k] for k in ("abnormal", "normal_oneword", "choice_ab", "disease_hint")]


def _item(image_id: str, image: Image.Image, label: str = "positive") -> ImageItem:
    return ImageItem(image_id=image_id, task="t", label=label, source=image_id, loader=lambda: image)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 40), st.integers(1, 40), st.tuples(*[st.integers(0, 255)] * 3))
def test_a_stand_in_keeps_size_and_label_and_has_one_colour_and_its_own_hash(width, height, colour):
    real = _item("img-1", Image.new("RGB", (width, height), (255 - colour[0], 3, 250)), label="negative")
    (blank,) = content_free_items([real], colour)
    image = blank.load()
    assert image.size == (width, height) and image.mode == "RGB"
    assert np.unique(np.asarray(image).reshape(-1, 3), axis=0).tolist() == [list(colour)]
    assert blank.label == "negative" and blank.task == "t"
    assert blank.image_id == "img-1" + SUFFIX and real_image_id(blank.image_id) == "img-1"
    assert real_image_id("img-1") == "img-1"
    assert blank.sha256 == pixel_sha256(image) != pixel_sha256(real.load())


def test_the_colour_is_the_mean_of_the_images_each_weighing_the_same():
    a = Image.new("RGB", (2, 2), (0, 0, 0))
    b = Image.fromarray(np.array([[[200, 100, 50], [100, 50, 25]]], dtype=np.uint8))  # 1 x 2, mean (150, 75, 37.5)

    def broken():
        raise OSError("unreadable")

    items = [_item("a", a), _item("b", b), ImageItem("c", "t", "positive", "c", broken)]
    assert mean_colour(items) == (75, 38, 19)  # (0 + 150) / 2, (0 + 75) / 2, (0 + 37.5) / 2 rounded
    with pytest.raises(HarnessError):
        mean_colour([items[2]])


class IgnoresTheImage(RobustSubject):
    """SIMULATED: answers from the prompt alone (the same answer whatever the image)."""

    def perceive(self, image, prompt, label):
        return "positive" if "tumor" in prompt else "negative"


class CuedBySize(RobustSubject):
    """SIMULATED: the class reaches it through something the stand-in keeps, the image's size
    (a data set whose classes were scanned at different sizes), whatever the pixels: it is
    right with or without the image. (A prompt is the same for every image of a task, so
    alone it cannot tell the classes apart; the simulated cues of the calibration study
    stand for any cue.)"""

    def _reply(self, request, images):
        self._cue = "positive" if images[request.image_key].size[0] == 8 else "negative"
        return super()._reply(request, images)

    def perceive(self, image, prompt, label):
        return self._cue


def bright_and_dark(n_per_class: int) -> list[ImageItem]:
    """Bright (positive, 8 px wide) and dark (negative, 9 px wide) images, each with one
    distinct pixel: what the simulated subjects can read (mean brightness above 127 is
    positive), and a size that gives the class away to CuedBySize."""
    items = []
    for i in range(n_per_class):
        for label, value, width in (("positive", 230, 8), ("negative", 25, 9)):
            arr = np.full((8, width, 3), value, dtype=np.uint8)
            arr.flat[i % arr.size] = (value + 1 + i) % 256
            items.append(ImageItem(f"{label}-{i:03d}", TASK.key, label, "generated", lambda a=arr: Image.fromarray(a)))
    return items


def _tables(subject, tmp_path, items):
    store = ResponseStore(tmp_path / f"{subject.spec.name}.sqlite")
    handle = BackendHandle(spec=subject.spec, factory=lambda spec: subject)
    identity = {"backend": "simulated", "model": subject.spec.name}
    blanks = content_free_items(items, mean_colour(items))
    grids = []
    for group in (items, blanks):
        results, _ = fill_closed_form(handle, identity, TASK, group, VARIANTS, store, max_new_tokens=8, parse=parse_answer)
        grids.append(grid_from_table(build_table(subject.spec.name, TASK, group, VARIANTS, results, parse_answer)))
    return grids, store, handle, blanks


def test_stand_ins_are_answered_through_the_store_under_their_own_keys(tmp_path):
    items = load_synthetic(TASK, 4, 3)
    (real, blank), store, handle, blanks = _tables(RobustSubject("looks"), tmp_path, items)
    # the stand-ins are new answers, not the real ones; of one size (these images), one request per prompt
    assert handle.calls == len(items) * len(VARIANTS) + len(VARIANTS)
    assert blank.image_ids == sorted(b.image_id for b in blanks)
    warm = RobustSubject("looks")
    (real2, blank2), _, handle2, _ = _tables(warm, tmp_path, items)
    assert handle2.calls == 0  # the same keys: a warm run replays both
    assert (real2.outcome == real.outcome).all() and (blank2.outcome == blank.outcome).all()


def test_cells_with_one_key_are_one_request_and_share_its_answer_or_error(tmp_path):
    """The same pixels, prompt and settings are one store key: asked once in a cold run (as a
    warm run reads it once), the answer shared; counted as read, not generated."""
    image = Image.new("RGB", (5, 4), (9, 9, 9))
    twins = [ImageItem(f"twin-{i}", TASK.key, label, "generated", lambda: image)
             for i, label in enumerate(["positive", "negative", "positive"])]
    subject = RobustSubject("twins")
    handle = BackendHandle(spec=subject.spec, factory=lambda spec: subject)
    store = ResponseStore(tmp_path / "twins.sqlite")
    identity = {"backend": "simulated", "model": "twins"}
    results, stats = fill_closed_form(handle, identity, TASK, twins, VARIANTS, store, max_new_tokens=8)
    assert handle.calls == len(VARIANTS) and stats.generated == len(VARIANTS)
    assert stats.cached == 2 * len(VARIANTS) and stats.requested == 3 * len(VARIANTS)
    for variant in VARIANTS:
        assert len({results[(t.image_id, variant.key)] for t in twins}) == 1
    warm, warm_stats = fill_closed_form(handle, identity, TASK, twins, VARIANTS, store, max_new_tokens=8)
    assert warm == results and handle.calls == len(VARIANTS) and warm_stats.cached == 3 * len(VARIANTS)

    class Failing(RobustSubject):
        def generate(self, requests, images):
            return [GenerationResult(text="", error="HTTP 500") for _ in requests]

    failing = Failing("failing")
    handle = BackendHandle(spec=failing.spec, factory=lambda spec: failing)
    results, stats = fill_closed_form(handle, {"model": "failing"}, TASK, twins, VARIANTS[:1], store, max_new_tokens=8)
    assert handle.calls == 1 and stats.errors == 3 and stats.cached == 0  # the one error is every twin's
    assert {results[(t.image_id, VARIANTS[0].key)] for t in twins} == {("error", "HTTP 500")}


def test_a_subject_that_looks_changes_its_answers_one_that_ignores_the_image_does_not(tmp_path):
    items = bright_and_dark(30)
    (real, blank), *_ = _tables(RobustSubject("looks"), tmp_path, items)
    weights = weights_for(real, 200, 0)
    looks = unchanged_share(real, blank, weights)
    (real_i, blank_i), *_ = _tables(IgnoresTheImage("ignores"), tmp_path, items)
    ignores = unchanged_share(real_i, blank_i, weights)
    assert ignores[0] == 1.0 and np.all(ignores == 1.0)
    # a uniform image reads as one class to it: the answers about the other class's images change
    assert looks[0] <= 0.9 and looks.max() < 1.0
    assert blind_balanced_accuracy(real, blank, weights)[0] == pytest.approx(0.5, abs=0.1)
    (real_c, blank_c), *_ = _tables(CuedBySize("cued"), tmp_path, items)
    assert blind_balanced_accuracy(real_c, blank_c, weights)[0] == 1.0  # right without the image: a leak


def _grid(outcomes: np.ndarray, is_pos, ids=None) -> Grid:
    ids = ids or [f"img{i:03d}" for i in range(outcomes.shape[0])]
    return Grid(image_ids=ids, variants=[f"v{k}" for k in range(outcomes.shape[1])], is_pos=np.asarray(is_pos),
                outcome=outcomes.astype(object))


OUTCOME = st.sampled_from(["positive", "negative", "refused", "error"])


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_the_estimands_against_direct_computation(data):
    n, k = data.draw(st.integers(2, 8)), data.draw(st.integers(1, 3))
    real = np.array(data.draw(st.lists(st.lists(OUTCOME, min_size=k, max_size=k), min_size=n, max_size=n)))
    blank = np.array(data.draw(st.lists(st.lists(OUTCOME, min_size=k, max_size=k), min_size=n, max_size=n)))
    is_pos = np.array([i % 2 == 0 for i in range(n)])
    weights = np.vstack([np.ones(n), np.array(data.draw(st.lists(st.integers(0, 3), min_size=n, max_size=n)))])
    real_grid = _grid(real, is_pos)
    # the stand-ins' grid in another order: aligned() puts it back by the real id
    order = data.draw(st.permutations(range(n)))
    blank_grid = _grid(blank[list(order)], is_pos[list(order)], [f"img{i:03d}{SUFFIX}" for i in order])
    assert (aligned(real_grid, blank_grid).outcome == blank).all()
    share = unchanged_share(real_grid, blank_grid, weights)
    for row, w in enumerate(weights):
        both = (real != "error") & (blank != "error")
        den = (w[:, None] * both).sum()
        expected = (w[:, None] * (both & (real == blank))).sum() / den if den else np.nan
        assert share[row] == pytest.approx(expected, nan_ok=True)
    # one prompt at unit weights: scikit-learn's balanced accuracy, refusals wrong, errors left out
    column = blank[:, 0]
    keep = column != "error"
    ba = blind_balanced_accuracy(_grid(real[:, :1], is_pos), _grid(blank[:, :1], is_pos, [f"img{i:03d}{SUFFIX}" for i in range(n)]),
                                 np.ones((1, n)))[0]
    truth = np.where(is_pos, "positive", "negative")[keep]
    if len(set(truth)) == 2:
        predicted = np.where(column[keep] == "refused", "wrong", column[keep])
        expected = balanced_accuracy_score(truth, np.where(predicted == "wrong", np.where(truth == "positive", "negative", "positive"), predicted))
        assert ba == pytest.approx(expected)


def test_a_missing_stand_in_or_prompt_is_an_error_cell_and_no_cell_answered_both_ways_is_nan():
    """Pins aligned() and the empty case (mutation testing: its survivors)."""
    real = _grid(np.array([["positive", "negative"]] * 3), [True, False, True])
    blank = Grid(image_ids=[f"img001{SUFFIX}", f"img002{SUFFIX}"], variants=["v0", "other"], is_pos=np.array([False, True]),
                 outcome=np.array([["negative", "positive"], ["positive", "positive"]], dtype=object))
    got = aligned(real, blank)  # img000 has no stand-in; v1 was not asked of the stand-ins
    assert got.image_ids == real.image_ids and got.variants == real.variants
    assert got.outcome.tolist() == [["error", "error"], ["negative", "error"], ["positive", "error"]]
    assert not got.valid[0].any() and not got.valid[:, 1].any()
    with np.errstate(all="raise"):  # no 0 / 0 computed where nothing was answered both ways
        nothing = unchanged_share(real, Grid([], ["v0"], np.array([], dtype=bool), np.empty((0, 1), dtype=object)),
                                  np.ones((2, 3)))
    assert np.isnan(nothing).all()
    assert unchanged_share(real, blank, np.ones((1, 3)))[0] == pytest.approx(0.5)  # img001 changed, img002 did not


def test_the_verdicts_fail_a_subject_that_ignores_the_image_or_is_cued_and_pass_one_that_looks(tmp_path):
    thresholds = Thresholds(bootstrap_replicates=500)
    items = bright_and_dark(100)  # the default first look; the simulated subjects read brightness
    labels = {}
    for subject in (RobustSubject("looks"), IgnoresTheImage("ignores"), CuedBySize("cued")):
        (real, blank), *_ = _tables(subject, tmp_path, items)
        depends = answers_depend_on_image(real, blank, thresholds)
        blind = no_answer_without_image(real, blank, thresholds)
        labels[subject.spec.name] = (depends.label, blind.label)
        assert depends.direction == blind.direction == "le" and depends.finding == blind.finding == "image_reliance"
        assert depends.threshold == 0.90 and blind.threshold == pytest.approx(0.55)
        assert depends.details["cells_compared"] == real.n_images * len(VARIANTS)
        assert [row["variant"] for row in depends.details["per_variant"]] == [v.key for v in VARIANTS]
    assert labels["looks"] == ("robust", "robust")
    assert labels["ignores"][0] == "fragile"  # every answer the same without the image
    assert labels["cued"][1] == "fragile"  # right without the image: its size gives the class away


def test_the_verdicts_read_the_variants_the_stand_ins_were_asked_with():
    is_pos = [True, False] * 20
    real = _grid(np.array([["positive", "negative", "refused"] if p else ["negative", "negative", "refused"]
                           for p in is_pos]), is_pos)
    blank = Grid([f"{i}{SUFFIX}" for i in real.image_ids], ["v2", "v0"], real.is_pos,
                 np.array([["refused", "negative"]] * 40, dtype=object))
    thresholds = Thresholds(bootstrap_replicates=200)
    depends = answers_depend_on_image(real, blank, thresholds)
    assert depends.details["n_variants"] == 2 and depends.details["cells_compared"] == 80
    assert depends.value == pytest.approx(0.75)  # v2: 40 of 40 the same (refused twice); v0: 20 of 40
    assert [r["variant"] for r in depends.details["per_variant"]] == ["v0", "v2"]
    assert [r["value"] for r in depends.details["per_variant"]] == [0.5, 1.0]
    assert depends.details["blank_refusal_rate"] == 0.5
    blind = no_answer_without_image(real, blank, thresholds)
    assert blind.value == pytest.approx(0.25)  # v0: always "negative" (0.5); v2: always refused (0)
    assert blind.label == "robust" and blind.details["n_variants"] == 2
    with pytest.raises(NotApplicable, match="^no prompt variant was asked with the content-free images$"):
        answers_depend_on_image(real, Grid(blank.image_ids, ["other"], blank.is_pos, blank.outcome[:, :1]),
                                thresholds)


def test_the_verdicts_leave_errors_out_aggregate_as_near_random_and_say_nothing_of_nothing():
    """Pins the details and the aggregate (mutation testing: its survivors)."""
    is_pos = [True, False] * 10
    real = _grid(np.array([["positive", "negative", "positive"] if p else ["negative", "negative", "negative"]
                           for p in is_pos]), is_pos)
    # v0 right (BA 1), v1 always "positive" and v2 always "negative" (BA 0.5 each): mean 0.67, median 0.5
    blank_outcome = np.array([["positive" if p else "negative", "positive", "negative"] for p in is_pos], dtype=object)
    for i in range(20):
        blank_outcome[i, i % 3] = "error" if i % 4 == 0 else blank_outcome[i, i % 3]
    blank = Grid([f"{i}{SUFFIX}" for i in real.image_ids], real.variants, real.is_pos, blank_outcome)
    real.outcome[1, 0] = "error"  # an error on the real side leaves that cell out too
    thresholds = Thresholds(bootstrap_replicates=200)
    depends = answers_depend_on_image(real, blank, thresholds)
    both = (real.outcome != "error") & (blank_outcome != "error")
    same = both & (real.outcome == blank_outcome)
    assert depends.details["cells_compared"] == int(both.sum())
    assert depends.value == pytest.approx(same.sum() / both.sum())
    for j, row in enumerate(depends.details["per_variant"]):
        assert row["value"] == round(float(same[:, j].sum() / both[:, j].sum()), 4)
    mean = no_answer_without_image(real, blank, thresholds)
    median = no_answer_without_image(real, blank, dataclasses.replace(
        thresholds, near_random={**thresholds.near_random, "aggregate": "median"}))
    per_prompt = blind_balanced_accuracy(real, blank, np.ones((1, 20)), "median")[0]
    assert mean.metric.endswith("_mean") and median.metric.endswith("_median")
    assert median.value == pytest.approx(per_prompt) and mean.value != pytest.approx(median.value)
    nothing = Grid(blank.image_ids, real.variants, real.is_pos, np.full(real.outcome.shape, "error", dtype=object))
    silent = answers_depend_on_image(real, nothing, thresholds)
    assert silent.details["blank_refusal_rate"] is None and silent.details["cells_compared"] == 0
    assert all(row["value"] is None for row in silent.details["per_variant"])
