"""The runner with real tiny transformers models: batches, the store, zero calls on rerun."""

from __future__ import annotations

import pytest

from harness.backends import make_backend
from harness.backends.identity import model_identity
from harness.config.registry import load_registry
from harness.core import HarnessError, ImageItem
from harness.data.sources import load_synthetic
from harness.fill.judge import judge_messages
from harness.answers.parsing import parse_answer
from harness.fill.closed_form import (
    BackendHandle,
    build_table,
    fill_closed_form,
    judge_unclassified,
    unclassified_cells,
)
from harness.store import ResponseStore, cache_key

REGISTRY = load_registry()
TASK = REGISTRY.tasks["brain_tumor"]
VARIANTS = [REGISTRY.variants[k] for k in ("abnormal", "normal_oneword", "choice_ba")]


def counting_factory(cache_dir, counter):
    def factory(spec):
        counter.append(spec.name)
        return make_backend(spec, cache_dir=cache_dir)

    return factory


def refusing_factory(spec):
    raise AssertionError("the model must not be loaded: every answer is in the store")


@pytest.mark.parametrize("model", ["tiny-llava", "tiny-llava-next", "tiny-gemma3"])
def test_each_family_fills_the_store_then_reruns_with_zero_model_calls(model, tmp_path):
    spec = REGISTRY.models[model]
    store = ResponseStore(tmp_path / "r.sqlite")
    identity = model_identity(spec, tmp_path)
    items = load_synthetic(TASK, 3, 42)
    loads: list[str] = []
    handle = BackendHandle(spec=spec, factory=counting_factory(tmp_path, loads))
    results, stats = fill_closed_form(handle, identity, TASK, items, VARIANTS, store, max_new_tokens=4, chunk_size=8)
    handle.close()
    assert loads == [model] and stats.generated == len(items) * len(VARIANTS) == handle.calls
    assert all(kind == "text" for kind, _ in results.values())  # a left-padded batch of 8, all answered
    assert store.count() == stats.generated

    again = BackendHandle(spec=spec, factory=refusing_factory)
    results2, stats2 = fill_closed_form(again, identity, TASK, items, VARIANTS, store, max_new_tokens=4)
    assert stats2.generated == 0 and stats2.cached == stats.generated and again.calls == 0
    assert results2 == results


def test_a_bad_image_is_a_per_image_error_and_is_not_cached(tmp_path):
    spec = REGISTRY.models["tiny-llava"]
    store = ResponseStore(tmp_path / "r.sqlite")
    items = load_synthetic(TASK, 2, 42)

    def broken():
        raise HarnessError("scans/broken.png: truncated image file")

    items.append(ImageItem("brain_tumor/broken", "brain_tumor", "positive", "scans/broken.png", broken, "0" * 64))
    handle = BackendHandle(spec=spec, factory=counting_factory(tmp_path, []))
    results, stats = fill_closed_form(handle, model_identity(spec, tmp_path), TASK, items, VARIANTS, store,
                                      max_new_tokens=4)
    handle.close()
    errors = {k: v for k, v in results.items() if v[0] == "error"}
    assert set(k[0] for k in errors) == {"brain_tumor/broken"}
    assert all("scans/broken.png" in v[1] for v in errors.values())
    assert stats.generated == 4 * len(VARIANTS) and store.count() == stats.generated
    table = build_table("tiny-llava", TASK, items, VARIANTS, results, parse_answer)
    assert (table.loc[table.image_id == "brain_tumor/broken", "outcome"] == "error").all()


def test_judge_replies_are_cached_and_replace_only_unclassified_outcomes(tmp_path):
    judge = REGISTRY.models["tiny-gemma3"]
    identity = model_identity(judge, tmp_path)
    store = ResponseStore(tmp_path / "r.sqlite")
    items = load_synthetic(TASK, 1, 42)
    texts = {"abnormal": "Yes.", "normal_oneword": "It shows a bright round mass", "choice_ba": "hmm"}
    results = {(i.image_id, v.key): ("text", texts[v.key]) for i in items for v in VARIANTS}
    cells = unclassified_cells(results, VARIANTS, TASK, parse_answer)
    assert {c[1].key for c in cells} == {"normal_oneword", "choice_ba"}
    rows = []
    for image_id, variant, text in cells:  # a judge that already answered (stored replies)
        system, user = judge_messages(variant.render(TASK), text, variant, TASK)
        key = cache_key(identity, stage="judge", prompt=system["content"] + "\n\n" + user["content"],
                        image_sha=None, settings={"max_new_tokens": 16, "do_sample": False, "judge_version": 1})
        reply = "POSITIVE" if variant.key == "normal_oneword" else "AMBIGUOUS"
        rows.append({"key": key, "stage": "judge", "model": "j", "task": TASK.key, "text": reply})
    store.put_many(rows)
    handle = BackendHandle(spec=judge, factory=refusing_factory)
    judged = judge_unclassified(handle, identity, TASK, cells, store)
    table = build_table("m", TASK, items, VARIANTS, results, parse_answer, judged)
    by_variant = table[table.image_id == items[0].image_id].set_index("variant")
    assert by_variant.loc["abnormal", "outcome"] == "positive" and by_variant.isna().loc["abnormal", "judge_reply"]
    assert by_variant.loc["normal_oneword", ["parsed", "outcome"]].tolist() == ["refused", "positive"]
    assert by_variant.loc["choice_ba", "outcome"] == "refused"
