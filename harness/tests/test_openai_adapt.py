"""How the "openai" backend adapts to its servers (harness/backends/openai_adapt.py).

Over real HTTP on 127.0.0.1 with the real openai client, against harness.serve serving
trivial backends (no model: only what the server does with `response_format` matters):
harness.serve accepts `response_format` but does not enforce it, as `transformers serve`
does, so its plain answers to structured requests show the silent-ignore fallback;
scripted 200 contents (Fault(content=...)) stand in for a server that does constrain
the reply; `Fault.error(..., detail_body=True)` answers errors the way a FastAPI server
(transformers serve) does, under `detail`. Retries are recorded, never waited for.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from harness.backends import Backend
from harness.backends.openai_adapt import error_detail, follows_schema
from harness.backends.openai_backend import OpenAIBackend
from harness.core import GenerationRequest, GenerationResult, ModelSpec
from harness.fill.describe import DIAGNOSIS_SCHEMA
from harness.serve import Fault, FaultPlan, start_server

TEXT_REQUEST = GenerationRequest(prompt="Say yes.", image_key=None, max_new_tokens=4, system="You are terse.")
SCHEMA = {"type": "object", "properties": {"answer": {"enum": ["yes", "no"]}}, "required": ["answer"],
          "additionalProperties": False}


class EchoBackend(Backend):
    """Answers "echo: <prompt>" at once, complete; `cut=True`: the same, marked as cut off at the token cap."""

    def __init__(self, cut: bool = False):
        self.spec = ModelSpec(name="echo", backend="hf", model="echo")
        self.cut = cut

    def generate(self, requests, images):
        return [GenerationResult(text=f"echo: {r.prompt}", truncated=self.cut) for r in requests]


class Sleeps(list):
    """Records the delays the backend asks for, without waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def serve():
    """Start echo servers (served name "echo"); all stopped after the test."""
    handles = []

    def _start(backend=None, **kw):
        handles.append(start_server(backend or EchoBackend(), served_name="echo", **kw))
        return handles[-1]

    yield _start
    for h in handles:
        h.stop()


@pytest.fixture
def client(tmp_path):
    """OpenAIBackends for given URLs (closed after the test); `_sleep` records retry delays."""
    made = []

    def _make(urls, **kw) -> OpenAIBackend:
        urls = (urls,) if isinstance(urls, str) else tuple(urls)
        spec = ModelSpec(name="endpoint", backend="openai", model="echo", base_url=urls, **kw)
        made.append(OpenAIBackend(spec, cache_dir=tmp_path, backoff_base_s=0.01, sleep=Sleeps()))
        return made[-1]

    yield _make
    for b in made:
        b.close()


ECHO = "echo: Say yes."  # EchoBackend's complete (not cut off) plain answer to TEXT_REQUEST


def test_structured_output_falls_back_when_the_server_ignores_it(serve, client):
    """harness.serve accepts response_format and answers plain text (as transformers serve
    does): the first complete reply gives it away; later structured requests go plain."""
    srv = serve()
    backend = client(srv.url, concurrency=1)
    assert backend.notes() == []
    for _ in range(2):
        results = backend.generate_structured([TEXT_REQUEST] * 2, SCHEMA, {})
        assert [r.text for r in results] == [ECHO] * 2  # the plain answers, for the answer parser
    assert [r["response_format"] for r in srv.requests_seen] == [True, False, False, False]
    assert backend.stats["structured_ignored"] == 1 and backend.stats["errors"] == 0
    (note,) = backend.notes()
    assert note.startswith(f"{srv.url} ignored response_format") and "1 structured reply was not" in note
    assert backend.generate([TEXT_REQUEST], {})[0].text == ECHO  # plain requests: unchanged


@pytest.mark.parametrize("reply, kept", [
    ('{"answer": "yes"}', True), (' {"answer":"no"}\n', True),
    ("yes", False), ('{"answer": "maybe"}', False), ('{"answer": "yes", "why": "bright"}', False),
    ('{"verdict": "yes"}', False), ('```json\n{"answer": "yes"}\n```', False), ('["yes"]', False),
])
def test_only_a_reply_that_follows_the_schema_keeps_structured_output(serve, client, reply, kept):
    srv = serve(faults=FaultPlan.first(1, Fault(content=reply)))
    backend = client(srv.url, concurrency=1)
    results = backend.generate_structured([TEXT_REQUEST, TEXT_REQUEST], SCHEMA, {})
    assert results[0].text == reply.strip()
    assert [r["response_format"] for r in srv.requests_seen] == [True, kept]
    assert backend.stats["structured_ignored"] == 1  # the reply, or else the next (plain-text) one


def test_a_reply_cut_at_the_token_cap_is_not_taken_as_ignored_structure(serve, client):
    """JSON cut off at the token cap is no sign of a server that ignored the schema."""
    srv = serve(EchoBackend(cut=True))
    backend = client(srv.url, concurrency=1)
    results = backend.generate_structured([TEXT_REQUEST, TEXT_REQUEST], SCHEMA, {})
    assert all(r.truncated and r.text == ECHO for r in results), results  # finish_reason "length"
    assert [r["response_format"] for r in srv.requests_seen] == [True, True]
    assert backend.stats["structured_ignored"] == 0 and backend.notes() == []


def test_structured_output_is_turned_off_per_server(serve, client):
    ignores = serve()
    follows = serve(faults=FaultPlan.always(Fault(content='{"answer": "no"}')))
    backend = client([ignores.url, follows.url], concurrency=1)
    results = backend.generate_structured([TEXT_REQUEST] * 4, SCHEMA, {})
    assert [r.text for r in results] == [ECHO, '{"answer": "no"}'] * 2
    assert [r["response_format"] for r in ignores.requests_seen] == [True, False]
    assert [r["response_format"] for r in follows.requests_seen] == [True, True]
    assert [n.split()[0] for n in backend.notes()] == [ignores.url]


def test_the_filler_gathers_the_notes_for_the_report(serve, client):
    from harness.fill.scheduler import Filler
    from harness.fill.closed_form import BackendHandle

    srv = serve()
    backend = client(srv.url)
    backend.generate_structured([TEXT_REQUEST], SCHEMA, {})
    suite = SimpleNamespace(remote_destinations=set(), endpoint_notes=set())
    handle = BackendHandle(spec=backend.spec, factory=lambda spec: backend)
    handle.get()
    Filler(suite, factory=None, n=100)._close(handle)
    assert suite.endpoint_notes == {f"endpoint: {backend.notes()[0]}"} and "ignored response_format" in backend.notes()[0]


def test_error_text_is_read_from_a_fastapi_detail_body(serve, client):
    """transformers serve (FastAPI) puts its error text under `detail`, not `error.message`."""
    message = "Server is pinned to '/models/a'; requested 'b'."
    srv = serve(faults=FaultPlan.always(Fault.error(400, message=message, detail_body=True)))
    backend = client(srv.url)
    (res,) = backend.generate([TEXT_REQUEST], {})
    assert res.error == f"BadRequestError: HTTP 400 from {srv.url}: {message}"
    assert len(srv.requests_seen) == 1 and backend._sleep == []  # a 400 that names no parameter: final
    validation = {"detail": [{"loc": ["body", "messages"], "msg": "Field required", "type": "missing"}]}
    assert error_detail(SimpleNamespace(body=validation)) == "body.messages: Field required"
    assert error_detail(SimpleNamespace(body={"detail": ""}, message="Error code: 500")) == "Error code: 500"


def test_a_400_detail_body_drives_the_adaptations(serve, client):
    """A FastAPI server's 400 asking for max_completion_tokens is understood like OpenAI's."""
    message = "Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead."
    srv = serve(faults=FaultPlan.first(1, Fault.error(400, message=message, detail_body=True)))
    (res,) = client(srv.url).generate([TEXT_REQUEST], {})
    assert res.text == ECHO
    assert [r["token_param"] for r in srv.requests_seen] == ["max_tokens", "max_completion_tokens"]


def test_follows_schema_on_the_diagnosers_schema():
    assert follows_schema('{"answer": "uncertain"}', DIAGNOSIS_SCHEMA)
    for text in ('{"answer": "Yes"}', '{"answer": 1}', "{}", "null", '{"answer": "no"} trailing', "", "No."):
        assert not follows_schema(text, DIAGNOSIS_SCHEMA), text
    typed = {"type": "object", "properties": {"n": {"type": "integer"}, "xs": {"type": "array", "items": {"type": "number"}}}}
    assert follows_schema('{"n": 3, "xs": [1, 2.5]}', typed)
    assert not follows_schema('{"n": true}', typed) and not follows_schema('{"xs": ["a"]}', typed)
