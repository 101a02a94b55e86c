"""Answers cut off at the token cap are asked again, never silently refusals (issue 11, SPEC §3).

- `hit_token_cap` against its definition (hypothesis);
- a trained model (the organism) stops on its own at the default cap, and is cut off at a
  cap of one token: the HF backend tells the two apart;
- the runner asks a cut-off, unreadable answer again with 64 and then 256 tokens, keeps a
  cut-off answer that still parses, stores each budget under its own key, and a warm run
  makes the same decisions with zero model calls (a SIMULATED subject, named as such:
  its words are its tokens, so the cut is exact);
- a version-1 store is upgraded in place and keeps its answers;
- the OpenAI backend reads `finish_reason: "length"` from a real server.
"""

from __future__ import annotations

import sqlite3

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.backends import make_backend
from harness.backends.hf_batch import hit_token_cap
from harness.config.registry import load_registry
from harness.core import GenerationRequest
from harness.data.sources import load_synthetic
from harness.answers.parsing import parse_answer
from harness.results import answer_counts
from harness.fill.closed_form import BackendHandle, build_table, fill_closed_form
from harness.serve import start_server
from harness.store import ResponseStore

from .simulated_subjects import WordyRobustSubject

REGISTRY = load_registry()
TASK = REGISTRY.tasks["brain_tumor"]
VARIANTS = [REGISTRY.variants[k] for k in ("abnormal", "normal_oneword", "choice_ba")]


# -- the HF rule --------------------------------------------------------------------------
@given(st.lists(st.lists(st.integers(0, 9), min_size=0, max_size=6), min_size=1, max_size=5),
       st.one_of(st.none(), st.integers(0, 9), st.lists(st.integers(0, 9), max_size=3)), st.integers(1, 6))
def test_hit_token_cap_is_full_length_without_an_end_token(rows, eos, cap):
    ends = set() if eos is None else ({eos} if isinstance(eos, int) else set(eos))
    expected = [len(row) >= cap and not any(t in ends for t in row) for row in rows]
    assert hit_token_cap(rows, eos, cap) == expected


def test_hit_token_cap_examples():
    assert hit_token_cap([[5, 2, 0, 0], [5, 6, 7, 8]], 2, 4) == [False, True]  # row 1 ended, then padding
    assert hit_token_cap([[5, 1]], [1, 106], 4) == [False]  # shorter than the cap: every row ended
    assert hit_token_cap([[5, 106, 0]], [1, 106], 3) == [False]  # Gemma's second end token
    assert hit_token_cap([[5, 6, 7]], None, 3) == [True]


@pytest.fixture(scope="module")
def organism(tmp_path_factory):
    backend = make_backend(REGISTRY.models["organism-llava-base"], cache_dir=tmp_path_factory.mktemp("c"), device="cpu")
    yield backend
    backend.close()


def test_a_trained_model_stops_on_its_own_and_is_cut_off_at_one_token(organism):
    items = load_synthetic(TASK, 2, 7)
    images = {i.image_id: i.load() for i in items}
    prompts = [v.render(TASK) for v in VARIANTS]
    at_default = organism.generate([GenerationRequest(p, i.image_id, max_new_tokens=8) for i in items for p in prompts],
                                   images)
    assert all(r.ok and not r.truncated for r in at_default), [(r.text, r.truncated) for r in at_default]
    at_one = organism.generate([GenerationRequest(p, i.image_id, max_new_tokens=1) for i in items for p in prompts],
                               images)
    assert all(r.ok and r.truncated for r in at_one), [(r.text, r.truncated) for r in at_one]


# -- the runner's re-ask ------------------------------------------------------------------
class CountingWordySubject(WordyRobustSubject):
    """SIMULATED: the wordy robust subject, counting the budgets it was asked with."""

    def __init__(self, name, preamble=None):
        super().__init__(name)
        self.budgets: list[int] = []
        if preamble is not None:
            self.PREAMBLE = preamble

    def generate(self, requests, images):
        self.budgets.extend(r.max_new_tokens for r in requests)
        return super().generate(requests, images)


def _fill(subject, store, items, **kw):
    handle = BackendHandle(spec=subject.spec, factory=lambda spec: subject)
    identity = {"backend": "simulated", "model": subject.spec.model, "preamble": subject.PREAMBLE}
    results, stats = fill_closed_form(handle, identity, TASK, items, VARIANTS, store, max_new_tokens=8,
                                      reask_budgets=(64, 256), parse=parse_answer, **kw)
    table = build_table(subject.spec.name, TASK, items, VARIANTS, results, parse_answer, truncation=stats.truncation)
    return results, stats, table, handle


def test_a_cut_off_unreadable_answer_is_asked_again_and_a_warm_run_repeats_it_for_free(tmp_path):
    items = load_synthetic(TASK, 3, 11)
    store = ResponseStore(tmp_path / "r.sqlite")
    subject = CountingWordySubject("wordy")
    results, stats, table, _ = _fill(subject, store, items)
    cells = len(items) * len(VARIANTS)
    counts = answer_counts(table)
    refusals = sum(1 for kind, text in results.values() if "cannot" in text)  # its short refusals fit in 8 words
    assert counts["truncated"] == counts["reasked"] == cells - refusals > 0
    assert counts["cut_off_unparsed"] == 0 and counts["unparsed"] == refusals
    assert sorted(set(subject.budgets)) == [8, 64]  # 64 was enough: 256 never asked
    assert table.loc[table["reasked"], "outcome"].isin(["positive", "negative"]).all()

    warm = CountingWordySubject("wordy")
    results2, stats2, table2, handle2 = _fill(warm, store, items)
    assert handle2.calls == 0 and warm.budgets == [] and results2 == results
    assert answer_counts(table2) == counts and stats2.truncation == stats.truncation


def test_an_answer_still_cut_off_at_the_last_budget_is_a_counted_refusal(tmp_path):
    items = load_synthetic(TASK, 2, 3)
    store = ResponseStore(tmp_path / "r.sqlite")
    subject = CountingWordySubject("rambler", preamble=" ".join(["well"] * 300))  # 300 words before the answer
    _, stats, table, _ = _fill(subject, store, items)
    counts = answer_counts(table)
    answered = counts["answers"] - counts["unparsed"] + counts["cut_off_unparsed"]
    assert sorted(set(subject.budgets)) == [8, 64, 256]
    assert counts["cut_off_unparsed"] == counts["reasked"] == counts["truncated"] > 0
    assert (table.loc[table["cut_off"], "outcome"] == "refused").all()
    assert answered >= counts["cut_off_unparsed"]


def test_a_cut_off_answer_that_parses_is_kept_and_not_asked_again(tmp_path):
    items = load_synthetic(TASK, 2, 5)
    store = ResponseStore(tmp_path / "r.sqlite")
    # nine words that begin with the answer to a yes/no question: readable when cut at 8
    subject = CountingWordySubject("early", preamble="Yes, it is clearly visible here, I would say:")
    _, stats, table, _ = _fill(subject, store, items)
    kept = table[table["truncated"] & ~table["reasked"]]
    assert len(kept) > 0 and kept["outcome"].isin(["positive", "negative"]).all()
    assert subject.budgets.count(64) == int(table["reasked"].sum())  # only the unreadable ones went again


class SilentSubject(CountingWordySubject):
    """SIMULATED: writes nothing readable up to the cap (as a model that emits only special
    tokens, which decoding drops: found by the rehearsal of random-weight Gemma-3 models)."""

    def generate(self, requests, images):
        from harness.core import GenerationResult

        self.budgets.extend(r.max_new_tokens for r in requests)
        return [GenerationResult(text="", truncated=True) for _ in requests]


def test_an_empty_answer_cut_at_the_cap_is_asked_again_not_a_silent_refusal(tmp_path):
    items = load_synthetic(TASK, 1, 7)
    subject = SilentSubject("silent")
    results, stats, table, _ = _fill(subject, ResponseStore(tmp_path / "r.sqlite"), items)
    cells = len(items) * len(VARIANTS)
    assert sorted(set(subject.budgets)) == [8, 64, 256] and len(subject.budgets) == 3 * cells
    assert set(stats.truncation.values()) == {(True, True)}  # asked again, still cut off: reported as such
    assert all(text == "" for _, text in results.values())


# -- the store ----------------------------------------------------------------------------
def test_a_version_1_store_is_upgraded_in_place_and_keeps_its_answers(tmp_path):
    path = tmp_path / "old.sqlite"
    conn = sqlite3.connect(path)
    conn.executescript(
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL); INSERT INTO meta VALUES ('schema', '1');"
        "CREATE TABLE responses (key TEXT PRIMARY KEY, stage TEXT NOT NULL, model TEXT NOT NULL, task TEXT NOT NULL,"
        " image_id TEXT, variant TEXT, text TEXT NOT NULL, created REAL NOT NULL);"
        "INSERT INTO responses VALUES ('k', 'closed', 'm', 't', 'i', 'v', 'Yes.', 0);")
    conn.commit()
    conn.close()
    store = ResponseStore(path)
    assert store.get_answers(["k"]) == {"k": ("Yes.", None)}  # unknown: the runner treats it as maybe cut off
    store.put_many([{"key": "k2", "stage": "closed", "model": "m", "task": "t", "text": "The image shows a",
                     "truncated": True}])
    assert store.get_answers(["k", "k2"])["k2"] == ("The image shows a", True)
    store.close()
    assert ResponseStore(path).get_many(["k"]) == {"k": "Yes."}  # reopening an upgraded store is a no-op


# -- the OpenAI backend over a real server ------------------------------------------------
def test_finish_reason_length_from_a_real_server_marks_the_answer_truncated(tmp_path):
    subject = WordyRobustSubject("served")
    handle = start_server(subject, served_name="served")
    try:
        from harness.core import ModelSpec

        spec = ModelSpec(name="served", backend="openai", model="served", base_url=handle.url)
        client = make_backend(spec, cache_dir=tmp_path)
        items = load_synthetic(TASK, 1, 1)
        images = {i.image_id: i.load() for i in items}
        prompt = VARIANTS[0].render(TASK)
        short, long = client.generate([GenerationRequest(prompt, items[0].image_id, max_new_tokens=8),
                                       GenerationRequest(prompt, items[0].image_id, max_new_tokens=64)], images)
        client.close()
    finally:
        handle.stop()
    assert short.truncated and len(short.text.split()) == 8
    assert not long.truncated and parse_answer(long.text, VARIANTS[0], TASK) in ("positive", "negative")
