"""The response store: exact cache keys, no cached errors, corrupt files set aside, shared safely."""

from __future__ import annotations

import multiprocessing as mp
import sqlite3

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.backends.identity import model_identity
from harness.core import ModelSpec
from harness.store import ResponseStore, cache_key

IDENTITY = {"backend": "hf", "model": "org/repo", "revision": "abc", "fingerprint": None}
BASE = dict(stage="closed", prompt="Is this image normal?", image_sha="f" * 64, settings={"max_new_tokens": 8})


def row(key, text="Yes", model="m"):
    return {"key": key, "stage": "closed", "model": model, "task": "t", "image_id": "i", "variant": "v", "text": text}


@pytest.mark.parametrize(
    "change",
    [
        {"identity": {**IDENTITY, "model": "org/other"}},
        {"identity": {**IDENTITY, "revision": "def"}},
        {"identity": {**IDENTITY, "fingerprint": "x"}},
        {"identity": {**IDENTITY, "backend": "openai"}},
        {"prompt": "Is this image abnormal?"},
        {"image_sha": "e" * 64},
        {"settings": {"max_new_tokens": 9}},
        {"stage": "describe"},
    ],
)
def test_every_output_relevant_input_changes_the_key(change):
    args = {"identity": IDENTITY, **BASE}
    assert cache_key(**{**args, **change}) != cache_key(**args)


@given(st.text(), st.text())
@settings(max_examples=50)
def test_key_is_deterministic_and_prompt_sensitive(p1, p2):
    k1 = cache_key(IDENTITY, stage="closed", prompt=p1, image_sha=None, settings={})
    assert k1 == cache_key(IDENTITY, stage="closed", prompt=p1, image_sha=None, settings={})
    assert (k1 == cache_key(IDENTITY, stage="closed", prompt=p2, image_sha=None, settings={})) == (p1 == p2)


def test_renaming_a_registry_entry_keeps_its_answers(tmp_path):
    a = ModelSpec(name="my-model", backend="hf", model="org/repo", revision="abc")
    b = ModelSpec(name="renamed", backend="hf", model="org/repo", revision="abc", base_model="x")
    c = ModelSpec(name="my-model", backend="hf", model="org/repo", revision="def")
    key = lambda spec: cache_key(model_identity(spec, tmp_path), **BASE)  # noqa: E731
    assert key(a) == key(b) != key(c)


def test_put_get_and_empty_answers_are_never_cached(tmp_path):
    store = ResponseStore(tmp_path / "r.sqlite")
    assert store.put_many([row("a"), row("b", text=""), row("c", text="   "), row("d", text=None)]) == 1
    assert store.get_many(["a", "b", "c", "d"]) == {"a": "Yes"}
    assert store.count() == 1


def test_first_answer_wins(tmp_path):
    store = ResponseStore(tmp_path / "r.sqlite")
    store.put_many([row("a", "Yes")])
    store.put_many([row("a", "No")])
    assert store.get_many(["a"]) == {"a": "Yes"}


def test_wal_mode(tmp_path):
    store = ResponseStore(tmp_path / "r.sqlite")
    store.put_many([row("a")])
    mode = sqlite3.connect(tmp_path / "r.sqlite").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_corrupt_file_is_set_aside_not_read(tmp_path):
    path = tmp_path / "r.sqlite"
    path.write_bytes(b"this is not a database, and must not be unpickled or trusted" * 100)
    store = ResponseStore(path)
    store.put_many([row("a")])
    assert store.get_many(["a"]) == {"a": "Yes"}
    assert list(tmp_path.glob("r.sqlite.corrupt-*"))


def test_foreign_schema_is_set_aside(tmp_path):
    path = tmp_path / "r.sqlite"
    conn = sqlite3.connect(path)
    conn.executescript("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT); INSERT INTO meta VALUES ('schema', '999');")
    conn.commit()
    conn.close()
    store = ResponseStore(path)
    assert store.count() == 0
    assert list(tmp_path.glob("r.sqlite.corrupt-*"))


def _writer(path, worker, n):
    store = ResponseStore(path)
    for start in range(0, n, 10):
        store.put_many([row(f"{worker}-{i}", model=str(worker)) for i in range(start, start + 10)])
        store.put_many([row(f"shared-{i}") for i in range(start, start + 10)])


def test_concurrent_writers_lose_nothing(tmp_path):
    path = tmp_path / "r.sqlite"
    ResponseStore(path).count()
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(path, w, 200)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    store = ResponseStore(path)
    assert store.count() == 4 * 200 + 200
