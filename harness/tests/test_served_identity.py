"""A served model's identity (issue 21, part 2): what the server serves is in the store key.

Real servers on 127.0.0.1 (harness.serve) serving organism models, the real openai client,
a real SQLite store:

- two servers serving different organism models under one name never share answers: the
  second is refused, naming both, until the change is accepted; then it answers everything
  itself and its answers are not the first model's;
- replicas of one model listed together in base_url share with either one alone;
- replicas that serve different weights are refused;
- the fields of a `/v1/models` entry that change on every listing or restart (vLLM's
  `created` and `permission`, transformers serve's `status`) are not part of the identity.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.backends import make_backend
from harness.backends.identity import model_identity
from harness.backends.served_identity import STABLE_FIELDS, UNLISTED, entry_for, served_identity, stable_entry, unlisted_note
from harness.config.registry import load_registry
from harness.core import HarnessError, ModelSpec
from harness.fill.served_check import check_served_identity
from harness.serve import start_server
from harness.store import ResponseStore

from .test_reliability_support import make_suite_dir, run_suite, summary

pytest_plugins = ["pytester"]

NAME = "medgemma"  # one served name (and registry name) for two different models
BASE, MED = "organism-llava-base", "organism-llava-med"


@pytest.fixture(scope="module")
def organisms(tmp_path_factory):
    """Three real servers: the organism's base LLaVA twice (replicas) and its medical one,
    all serving under the name "medgemma"."""
    cache = tmp_path_factory.mktemp("organisms")
    registry = load_registry()
    backends = {m: make_backend(registry.models[m], cache_dir=cache, device="cpu") for m in (BASE, MED)}
    for backend in backends.values():
        backend.load()  # in this thread, before any server thread asks
    servers = {"a": start_server(backends[BASE], served_name=NAME), "a2": start_server(backends[BASE], served_name=NAME),
               "b": start_server(backends[MED], served_name=NAME)}
    yield servers
    for server in servers.values():
        server.stop()
    for backend in backends.values():
        backend.close()


def spec(*urls: str, revision: str | None = None) -> ModelSpec:
    return ModelSpec(name=NAME, backend="openai", model=NAME, revision=revision, base_url=tuple(urls))


def models_file(tmp_path: Path, label: str, *urls: str) -> Path:
    path = tmp_path / f"{label}.toml"
    listed = ", ".join(f'"{u}"' for u in urls)
    path.write_text(f'[models.{NAME}]\nbackend = "openai"\nmodel = "{NAME}"\nbase_url = [{listed}]\n')
    return path


def answers(results: Path) -> dict:
    with open(results / "responses.csv", newline="") as f:
        return {(r["image_id"], r["variant"]): r["text"] for r in csv.DictReader(f)}


def test_the_servers_say_what_they_serve_and_replicas_agree(organisms, tmp_path):
    a, a2, b = (model_identity(spec(organisms[k].url), tmp_path)["served"] for k in ("a", "a2", "b"))
    assert a == a2 and a != b
    assert a["root"] == f"builtin:{BASE}" and b["root"] == f"builtin:{MED}" and set(a) == {"root", "revision"}
    assert len(a["revision"]) == 16  # the digest of the served model's own identity
    assert served_identity(spec(organisms["a"].url, organisms["a2"].url)) == a
    with pytest.raises(HarnessError, match="serve different models under 'medgemma'.*Replicas must serve"):
        served_identity(spec(organisms["a"].url, organisms["b"].url))


def test_two_models_under_one_name_never_share_answers_and_replicas_do(organisms, pytester, tmp_path):
    make_suite_dir(pytester)
    cache = tmp_path / "cache"
    seen = {k: len(s.requests_seen) for k, s in organisms.items()}

    def asked():
        return {k: len(s.requests_seen) - seen[k] for k, s in organisms.items()}

    replicas = models_file(tmp_path, "replicas", organisms["a"].url, organisms["a2"].url)
    first = run_suite(pytester, replicas, cache, f"--results-dir={tmp_path / 'first'}", models=NAME)
    assert first.ret in (0, 1) and asked()["a"] > 0 and asked()["a2"] > 0 and asked()["b"] == 0
    total = asked()["a"] + asked()["a2"]

    alone = run_suite(pytester, models_file(tmp_path, "alone", organisms["a"].url), cache, models=NAME)
    assert alone.ret == first.ret and asked()["a"] + asked()["a2"] == total  # one replica alone: all from the store

    other = models_file(tmp_path, "other", organisms["b"].url)
    refused = run_suite(pytester, other, cache, f"--results-dir={tmp_path / 'refused'}", models=NAME)
    assert asked()["b"] == 0  # nothing was asked, and nothing replayed
    records = summary(tmp_path / "refused").values()
    assert records and all(r["outcome"] in ("failed", "error") for r in records)
    refused.stdout.fnmatch_lines([f"*its servers now serve root=builtin:{MED} *came from root=builtin:{BASE} "
                                  f"*--accept-served-change={NAME}*"])

    accepted = run_suite(pytester, other, cache, f"--results-dir={tmp_path / 'accepted'}", models=NAME,
                         *["--accept-served-change", NAME])
    assert asked()["b"] == total  # every answer asked of the other model itself
    accepted.stdout.fnmatch_lines([f"*{NAME}: served model changed under this name (--accept-served-change was given)*"])
    before, after = answers(tmp_path / "first"), answers(tmp_path / "accepted")
    assert before.keys() == after.keys() and any(before[k] != after[k] for k in before)

    again = run_suite(pytester, other, cache, models=NAME)  # the accepted identity is the remembered one now
    assert again.ret == accepted.ret and asked()["b"] == total
    back = run_suite(pytester, replicas, cache, models=NAME)  # and the first model is the changed one
    assert back.ret != 0 and "its servers now serve" in back.stdout.str()


@pytest.fixture
def store(tmp_path):
    s = ResponseStore(tmp_path / "store.sqlite")
    yield s
    s.close()


def test_a_changed_served_identity_is_refused_unless_revision_or_option_says_so(store):
    served_a = {"root": "/models/a"}
    served_b = {"root": "/models/b", "revision": "r9"}
    assert check_served_identity(store, spec("u"), {"served": served_a}) is None  # first run: remembered
    assert check_served_identity(store, spec("u"), {"served": served_a}) is None
    assert check_served_identity(store, spec("u"), {}) is None  # not an endpoint model
    with pytest.raises(HarnessError, match=r"now serve root=/models/b revision=r9, but .* came from root=/models/a\. "):
        check_served_identity(store, spec("u"), {"served": served_b})
    with pytest.raises(HarnessError):
        check_served_identity(store, spec("u"), {"served": served_b}, accept=["another-model"])
    note = check_served_identity(store, spec("u"), {"served": served_b}, accept=[NAME])
    assert "--accept-served-change was given" in note and "was root=/models/a (revision None)" in note
    assert check_served_identity(store, spec("u"), {"served": served_b}) is None  # b is remembered now
    note = check_served_identity(store, spec("u", revision="v2"), {"served": served_a})
    assert "its registry revision changed" in note and "(revision v2)" in note
    assert check_served_identity(store, spec("u", revision="v3"), {"served": served_a}) is None  # revision alone: quiet
    note = check_served_identity(store, spec("u", revision="v3"), {"served": served_b}, accept=["all"])
    assert "now root=/models/b revision=r9 (revision v3)" in note
    assert check_served_identity(store, spec("u", revision="v3"), {"served": {}}, accept=["all"])  # names none now


VOLATILE = st.fixed_dictionaries({}, optional={
    "created": st.integers(0, 2**40), "permission": st.lists(st.dictionaries(st.text(max_size=5), st.text(max_size=5))),
    "status": st.sampled_from([{"value": "loaded"}, {"value": "unloaded"}]), "object": st.just("model"),
    "max_model_len": st.integers(1, 10**6)})


@given(volatile=VOLATILE, root=st.text(min_size=1, max_size=20))
def test_fields_that_change_on_every_listing_are_not_the_identity(volatile, root):
    entry = {"id": NAME, "root": root, "owned_by": "vllm", "parent": None, **volatile}
    assert stable_entry(entry) == {"root": root}
    assert set(stable_entry(entry)) <= set(STABLE_FIELDS)
    assert entry_for([{"id": "other"}, entry], NAME) == stable_entry(entry)


def test_a_server_that_names_no_weights_is_keyed_on_the_registry_and_says_so():
    """Not listed, or listed with nothing but its name and owner (transformers serve, a
    hosted API): the same empty identity, so a model that gets listed once loaded keeps its keys."""
    assert entry_for([{"id": "other", "root": "x"}, "junk"], NAME) == UNLISTED == {}
    assert entry_for([{"id": NAME, "owned_by": "local", "status": {"value": "loaded"}, "created": 0}], NAME) == {}
    assert "no revision set" in unlisted_note(spec("u"), UNLISTED)
    assert "and revision 'v1' only" in unlisted_note(spec("u", revision="v1"), UNLISTED)
    assert unlisted_note(spec("u"), {"root": "/m"}) is None
