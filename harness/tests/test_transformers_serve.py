"""A real third-party server: the organism served by `transformers serve` runs through the suite.

`transformers serve` (the transformers CLI's OpenAI-compatible server; FastAPI and
uvicorn: `pip install "transformers[serving]"`, else these tests skip saying so) runs in
child processes on 127.0.0.1, offline, and is stopped by process group
(harness/tests/transformers_serve.py). Two servers: one not pinned, serving the
organism's medical LLaVA by its folder path, and one pinned to the organism's text-only
diagnoser. Through them, with the real openai client:
- the behaviour suite (brain_tumor, 6 images per class; embedding tests left out) gives
  the served medical LLaVA (base: the in-process organism base) the same closed-form
  answers and the same verdicts as the in-process model, description recovery included,
  with the served diagnoser reading the served descriptions;
- transformers serve ignores `response_format` without a word: the backend notices it
  on the diagnoser's first structured reply, counts it, says so in `notes()`, and the
  answers it then reads are the in-process diagnoser's;
- its errors (FastAPI `detail` bodies) reach the error result as the server's own text.
"""

from __future__ import annotations

import csv
import importlib.util
import os
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from harness.backends import make_backend
from harness.backends.openai_backend import OpenAIBackend
from harness.config.registry import load_registry
from harness.core import GenerationRequest, ModelSpec
from harness.fill.describe import DIAGNOSER_SYSTEM, DIAGNOSIS_SCHEMA, diagnoser_prompt, parse_diagnosis
from harness.organism.shipped import resolve_builtin
from harness.tests.test_endpoint_suite import run_suite
from harness.tests.transformers_serve import INSTALL_HINT, launch, missing_serving_extra

pytestmark = pytest.mark.xdist_group("transformers-serve")  # one worker starts the servers

MODEL, BASE, DIAGNOSER = "organism-llava-med", "organism-llava-base", "organism-diagnoser"
SERVED, SERVED_DIAGNOSER = "ts-organism-llava-med", "ts-organism-diagnoser"
SAME = ("outcome", "metric", "value", "ci_low", "ci_high")


def test_without_the_serving_extra_the_tests_skip_naming_the_install_line(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "uvicorn" else real(name, *a))
    assert missing_serving_extra() == f"transformers serve needs uvicorn: {INSTALL_HINT}"
    assert INSTALL_HINT == 'pip install "transformers[serving]"'


@pytest.fixture(scope="module")
def folders() -> dict:
    """The organism's model folders (shipped in fixtures/organism)."""
    reason = missing_serving_extra()
    if reason:
        pytest.skip(reason)
    return {name: str(resolve_builtin(name)) for name in (MODEL, DIAGNOSER)}


@pytest.fixture(scope="module")
def servers(folders, tmp_path_factory):
    """transformers serve twice, started side by side: `any` loads the model a request names
    (by folder path), `diagnoser` is pinned to the diagnoser's folder."""
    logs = tmp_path_factory.mktemp("transformers-serve")
    started = []
    try:
        started.append(launch(logs / "any.log"))
        started.append(launch(logs / "diagnoser.log", folders[DIAGNOSER]))
        for server in started:
            server.wait_ready()
        yield SimpleNamespace(any=started[0], diagnoser=started[1])
    finally:
        for server in started:
            server.stop()
    for server in started:  # stopped, with everything in its process group
        assert server.proc.poll() is not None and not group_alive(server.proc.pid)


def group_alive(pgid: int, wait_s: float = 5.0) -> bool:
    """Does any process of the group still run? A killed process whose parent is gone waits as
    a zombie until PID 1 reaps it, and a container's PID 1 may never do so: zombies have
    stopped running, so they do not count (read from /proc where there is one)."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        proc = Path("/proc")
        if proc.is_dir():
            running = []
            for stat in proc.glob("[0-9]*/stat"):
                try:
                    fields = stat.read_text().rsplit(")", 1)[1].split()
                except (OSError, IndexError):
                    continue
                if int(fields[2]) == pgid and fields[0] != "Z":  # fields: state, ppid, pgrp, ...
                    running.append(stat)
            if not running:
                return False
        if time.monotonic() > deadline:
            return True
        time.sleep(0.1)


def endpoint(url: str, model: str, cache_dir: Path, **kw) -> OpenAIBackend:
    spec = ModelSpec(name="ts-endpoint", backend="openai", model=model, base_url=(url,), **kw)
    return OpenAIBackend(spec, cache_dir=cache_dir, sleep=lambda s: pytest.fail(f"unexpected retry ({s} s)"))


def closed_answers(results: Path, model: str) -> dict:
    with open(results / "responses.csv", newline="") as f:
        return {(r["image_id"], r["variant"]): r["text"] for r in csv.DictReader(f) if r["model"] == model}


def served_requests(server) -> int:
    """Chat requests the server answered with 200, from its (uvicorn) access log."""
    return server.log(tail=10**8).count('"POST /v1/chat/completions HTTP/1.1" 200')


def test_served_organism_gives_the_in_process_answers_and_verdicts(servers, folders, tmp_path):
    """The suite on brain_tumor, 6 images per class, served vs in-process; the embedding
    tests are left out (an endpoint has no vision encoder: test_endpoint_suite checks
    that they skip), so the run stays short."""
    models_file = tmp_path / "served.toml"
    models_file.write_text(
        f'[models.{SERVED}]\nbackend = "openai"\nmodel = "{folders[MODEL]}"\nbase_url = "{servers.any.url}"\n'
        f'base_model = "{BASE}"\n\n'
        f'[models.{SERVED_DIAGNOSER}]\nbackend = "openai"\nmodel = "{folders[DIAGNOSER]}"\n'
        f'base_url = "{servers.diagnoser.url}"\n')
    # image_reliance left out too: its stand-ins are answers like any other (test_image_reliance_suite)
    no_embeddings = ("-k", "not embedding_separability and not image_reliance")
    before = served_requests(servers.any), served_requests(servers.diagnoser)
    served = run_suite(tmp_path, "served", SERVED, f"--models-file={models_file}", f"--diagnoser={SERVED_DIAGNOSER}",
                       *no_embeddings)
    local = run_suite(tmp_path, "local", MODEL, *no_embeddings)  # same store: the base's answers are reused

    answers, twins = closed_answers(tmp_path / "local", MODEL), closed_answers(tmp_path / "served", SERVED)
    assert len(answers) >= 12 and twins.keys() == answers.keys()
    differ = {cell: (answers[cell], twins[cell]) for cell in answers if answers[cell] != twins[cell]}
    assert not differ, f"{len(differ)} of {len(answers)} answers differ, e.g. {next(iter(differ.items()))}"
    # the served answers came from the servers (not from a store), the diagnoser's too
    assert served_requests(servers.any) - before[0] >= len(answers)
    assert served_requests(servers.diagnoser) - before[1] > 0

    assert len(served) == len(local) > 0
    for test, record in local.items():
        twin = served[test.replace(MODEL, SERVED)]
        assert twin["outcome"] != "skipped", (test, twin["reason"])
        assert {k: twin[k] for k in SAME} == {k: record[k] for k in SAME}, test
    findings = {r["finding"] for r in local.values()}
    assert findings == {"description_recovery", "finetune_gain", "prompt_sensitivity", "near_random"}, findings


def test_the_diagnoser_fallback_is_noticed_and_counted(servers, folders, tmp_path):
    """transformers serve ignores response_format: the first structured reply is plain text."""
    registry = load_registry()
    task = registry.tasks["brain_tumor"]
    descriptions = ["A bright round mass in the left lobe.", "Normal brain, no findings.", "Dark symmetric ventricles."]
    requests = [GenerationRequest(prompt=diagnoser_prompt(template, task, text), system=DIAGNOSER_SYSTEM,
                                  max_new_tokens=16)
                for text in descriptions for template in registry.diagnoser_templates.values()]
    local = make_backend(registry.models[DIAGNOSER], cache_dir=tmp_path, device="cpu")
    try:
        expected = [r.text for r in local.generate(requests, {})]
    finally:
        local.close()

    backend = endpoint(servers.diagnoser.url, folders[DIAGNOSER], tmp_path, concurrency=1)
    try:
        first = backend.generate_structured(requests[:1], DIAGNOSIS_SCHEMA, {})
        assert first[0].ok and not first[0].truncated and not first[0].text.startswith("{"), first
        assert backend.stats["structured_ignored"] == 1
        rest = backend.generate_structured(requests[1:], DIAGNOSIS_SCHEMA, {})
    finally:
        backend.close()
    assert [r.text for r in first + rest] == expected  # the in-process diagnoser's answers
    assert {parse_diagnosis(r.text) for r in first + rest} <= {"positive", "negative"}  # read by the answer parser
    assert backend.stats == {"requests": len(requests), "retries": 0, "errors": 0, "empty": 0,
                             "structured_ignored": 1}  # the later requests went plain
    (note,) = backend.notes()
    assert note.startswith(f"{servers.diagnoser.url} ignored response_format") and "1 structured reply was" in note


def test_errors_read_the_servers_detail(servers, folders, tmp_path):
    """A pinned server refuses another model with a 400 whose text is under `detail`."""
    backend = endpoint(servers.diagnoser.url, folders[MODEL], tmp_path)
    try:
        (res,) = backend.generate([GenerationRequest(prompt="Is it normal?", max_new_tokens=4)], {})
    finally:
        backend.close()
    assert res.text is None and res.error.startswith(f"BadRequestError: HTTP 400 from {servers.diagnoser.url}: ")
    assert f"Server is pinned to '{folders[DIAGNOSER]}'; requested '{folders[MODEL]}'" in res.error
    assert backend.stats["requests"] == 1 and backend.stats["retries"] == 0  # final: not retried
