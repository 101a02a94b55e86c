"""Tests of the OpenAI-compatible backend (harness/backends/openai_backend.py).

Everything runs over real HTTP on 127.0.0.1 with the real openai client, against
harness.serve serving the tiny built-in "tiny-llava" model (or, where only the transport
matters, a trivial echo backend). Retries are observed through an injected `sleep` that
records the delays instead of waiting, so no test depends on timing.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from harness.backends import Backend, make_backend
from harness.backends import openai_backend as ob
from harness.backends.openai_backend import OpenAIBackend, is_loopback_url
from harness.config.registry import load_registry
from harness.core import ConfigError, GenerationRequest, GenerationResult, HarnessError, ModelSpec
from harness.serve import Fault, FaultPlan, start_server

SECRET = "sk-test-SECRET123"
KEY_VAR = "MEDVLM_TEST_OPENAI_KEY"
PROMPTS = ["Is there a tumor in this image? Answer yes or no.", "Is it normal?"]


# ------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def hf(cache_dir):
    spec = load_registry().models["tiny-llava"]
    backend = make_backend(spec, cache_dir=cache_dir, device="cpu")
    yield backend
    backend.close()


@pytest.fixture(scope="module")
def images() -> dict:
    rng = np.random.RandomState(0)
    sizes = {"square": (32, 32), "wide": (40, 64), "tall": (70, 50)}
    return {k: Image.fromarray(rng.randint(0, 256, (h, w, 3), dtype=np.uint8), "RGB") for k, (h, w) in sizes.items()}


def image_requests(keys=("square", "wide", "tall")) -> list[GenerationRequest]:
    return [GenerationRequest(prompt=p, image_key=k, max_new_tokens=6) for k in keys for p in PROMPTS]


TEXT_REQUEST = GenerationRequest(prompt="Say yes.", image_key=None, max_new_tokens=4, system="You are terse.")


@pytest.fixture(scope="module")
def expected(hf, images) -> list[str]:
    """The in-process answers to image_requests() + [TEXT_REQUEST]."""
    return [r.text for r in hf.generate(image_requests() + [TEXT_REQUEST], images)]


@pytest.fixture(scope="module")
def server(hf):
    handle = start_server(hf, served_name="tiny-llava")
    yield handle
    handle.stop()


@pytest.fixture
def serve(hf):
    """Start servers of the tiny model (with faults etc.); all stopped after the test."""
    handles = []

    def _start(backend=None, **kw):
        kw.setdefault("served_name", "tiny-llava")
        handles.append(start_server(backend or hf, **kw))
        return handles[-1]

    yield _start
    for h in handles:
        h.stop()


class Sleeps(list):
    """Records the delays the backend asks for, without waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def client(cache_dir):
    """Build OpenAIBackends for given URLs (closed after the test); `.sleeps` records delays."""
    made = []

    def _make(urls, *, model="tiny-llava", **kw) -> OpenAIBackend:
        urls = (urls,) if isinstance(urls, str) else tuple(urls)
        spec = ModelSpec(name="endpoint", backend="openai", model=model, base_url=urls, **kw)
        backend = OpenAIBackend(spec, cache_dir=cache_dir, backoff_base_s=0.01, sleep=Sleeps())
        made.append(backend)
        return backend

    yield _make
    for b in made:
        b.close()


class EchoBackend(Backend):
    """Answers "echo: <prompt>" at once; for tests where only the transport matters."""

    def __init__(self, name="echo"):
        self.spec = ModelSpec(name=name, backend="hf", model="echo")

    def generate(self, requests, images):
        return [GenerationResult(text=f"echo: {r.prompt}") for r in requests]


# ---------------------------------------------------------------------- equivalence


def test_answers_match_the_in_process_backend(server, client, images, expected):
    backend = client(server.url)
    results = backend.generate(image_requests() + [TEXT_REQUEST], images)
    assert all(r.ok for r in results), results
    assert [r.text for r in results] == expected
    assert sorted(rec["images"] for rec in server.requests_seen[-7:]) == [0] + [1] * 6  # arrival order varies


def test_each_image_is_encoded_once_per_call(server, client, images, monkeypatch):
    calls = []
    real = ob.encode_image_png
    monkeypatch.setattr(ob, "encode_image_png", lambda img: calls.append(img) or real(img))
    results = client(server.url).generate(image_requests(), images)
    assert all(r.ok for r in results)
    assert len(calls) == 3  # 3 images, 6 prompts


def test_requests_are_spread_round_robin_over_servers(serve, client, images, expected):
    a, b = serve(), serve()
    results = client([a.url, b.url], concurrency=2).generate(image_requests(), images)
    assert [r.text for r in results] == expected[:6]
    assert len(a.requests_seen) == 3 and len(b.requests_seen) == 3


def test_concurrency_is_bounded(serve, client):
    srv = serve(EchoBackend(), served_name="echo", latency_s=0.3)
    reqs = [GenerationRequest(prompt=f"q{i}") for i in range(8)]
    results = client(srv.url, model="echo", concurrency=4).generate(reqs, {})
    assert [r.text for r in results] == [f"echo: q{i}" for i in range(8)]  # request order kept
    assert srv.max_in_flight == 4


# ---------------------------------------------------------------- retries and errors


def test_rate_limit_with_retry_after_then_success(serve, client, images, expected):
    srv = serve(faults=FaultPlan.first(2, Fault.error(429, retry_after=1)))
    backend = client(srv.url, concurrency=1)
    (res,) = backend.generate(image_requests(("square",))[:1], images)
    assert res.ok and res.text == expected[0]
    assert backend._sleep == [1.0, 1.0]  # Retry-After honoured, not the exponential backoff
    assert [r["status"] for r in srv.requests_seen] == [429, 429, 200]


def test_server_errors_beyond_the_retry_budget_are_error_results(serve, client, images):
    srv = serve(faults=FaultPlan.always(Fault.error(503)))
    backend = client(srv.url, max_retries=2, concurrency=1)
    results = backend.generate(image_requests(("square",)), images)
    assert all(r.text is None and not r.ok for r in results)
    assert all("HTTP 503" in r.error and "after 2 retries" in r.error for r in results), results
    assert len(srv.requests_seen) == 6  # 2 requests x (1 + 2 retries)
    first, second = backend._sleep[0], backend._sleep[1]
    assert 0 < first < second  # exponential backoff


def test_a_retry_moves_to_the_next_server(serve, client, images, expected):
    broken = serve(faults=FaultPlan.always(Fault.error(500)))
    healthy = serve()
    results = client([broken.url, healthy.url], max_retries=1).generate(image_requests(), images)
    assert [r.text for r in results] == expected[:6]
    assert len(broken.requests_seen) == 3 and len(healthy.requests_seen) == 6


@pytest.mark.parametrize("content", ["", "  \n", None], ids=["empty", "whitespace", "null"])
def test_an_empty_answer_is_the_models_silence_not_an_error(serve, client, images, content):
    """The call succeeded and the model wrote nothing: a refusal to score (SPEC §3), not an error to drop."""
    srv = serve(faults=FaultPlan.first(1, Fault.empty(content)))
    backend = client(srv.url)
    (res,) = backend.generate(image_requests(("square",))[:1], images)
    assert res == GenerationResult(text="") and res.empty and not res.ok
    assert backend.stats["empty"] == 1 and backend.stats["errors"] == 0
    assert len(srv.requests_seen) == 1


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_client_errors_are_not_retried_and_the_key_is_redacted(serve, client, images, monkeypatch, status):
    monkeypatch.setenv(KEY_VAR, SECRET)
    message = f"Incorrect API key provided: {SECRET}. Authorization: Bearer {SECRET}"
    srv = serve(faults=FaultPlan.always(Fault.error(status, message=message)))
    backend = client(srv.url, api_key_env=KEY_VAR)
    results = backend.generate(image_requests(("square",)), images)
    assert len(srv.requests_seen) == 2 and backend._sleep == []  # one attempt each
    for r in results:
        assert r.text is None and f"HTTP {status}" in r.error and "[REDACTED]" in r.error
        assert SECRET not in r.error and "SECRET123" not in r.error


def test_unknown_served_model_is_a_404_without_retry(server, client, images):
    before = len(server.requests_seen)
    backend = client(server.url, model="no-such-model")
    (res,) = backend.generate([TEXT_REQUEST], images)
    assert res.text is None and "HTTP 404" in res.error and "no-such-model" in res.error
    assert len(server.requests_seen) == before + 1


def test_the_api_key_is_read_from_the_named_variable(serve, client, images, monkeypatch):
    srv = serve(api_key=SECRET)
    monkeypatch.setenv(KEY_VAR, SECRET)
    assert client(srv.url, api_key_env=KEY_VAR).generate([TEXT_REQUEST], images)[0].ok
    monkeypatch.setenv(KEY_VAR, "sk-wrong-OTHER456")
    (res,) = client(srv.url, api_key_env=KEY_VAR).generate([TEXT_REQUEST], images)
    assert "HTTP 401" in res.error and "OTHER456" not in res.error and SECRET not in res.error
    (res,) = client(srv.url).generate([TEXT_REQUEST], images)  # placeholder key "EMPTY"
    assert "HTTP 401" in res.error


def test_a_missing_key_variable_is_a_setup_error(cache_dir, monkeypatch):
    monkeypatch.delenv(KEY_VAR, raising=False)
    spec = ModelSpec(name="m", backend="openai", model="x", base_url=("http://127.0.0.1:9/v1",), api_key_env=KEY_VAR)
    with pytest.raises(HarnessError, match=KEY_VAR):
        make_backend(spec, cache_dir=cache_dir)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_server_and_timeouts_are_error_results(serve, client, images):
    backend = client(f"http://127.0.0.1:{_closed_port()}/v1", max_retries=2)
    (res,) = backend.generate([TEXT_REQUEST], images)
    assert res.text is None and "cannot connect" in res.error and "after 2 retries" in res.error
    assert len(backend._sleep) == 2

    slow = serve(faults=FaultPlan.first(1, Fault.slow(1.5)))
    backend = client(slow.url, timeout_s=0.3, max_retries=0)
    (res,) = backend.generate([TEXT_REQUEST], images)
    assert res.text is None and "APITimeoutError" in res.error and "0.3 s" in res.error


def test_a_missing_image_fails_only_its_requests(server, client, images, expected):
    reqs = image_requests(("square", "missing"))
    results = client(server.url).generate(reqs, images)
    assert [r.text for r in results[:2]] == expected[:2]
    assert all(r.text is None and "missing" in r.error for r in results[2:])


# ------------------------------------------------------- text-only and structured output


def test_text_only_request_for_the_diagnoser(server, client, expected):
    (res,) = client(server.url).generate([TEXT_REQUEST], {})
    assert res.ok and res.text == expected[-1]
    assert server.requests_seen[-1]["images"] == 0


SCHEMA = {"type": "object", "properties": {"answer": {"enum": ["yes", "no"]}}, "required": ["answer"],
          "additionalProperties": False}


def test_structured_request_passes_the_schema(server, client, expected):
    backend = client(server.url)
    (res,) = backend.generate_structured([TEXT_REQUEST], SCHEMA, {})
    assert res.ok and res.text == expected[-1]  # this server does not constrain decoding
    assert server.requests_seen[-1]["response_format"] is True


@pytest.mark.parametrize("detail_body", [False, True], ids=["openai-error-body", "fastapi-detail-body"])
def test_structured_output_falls_back_when_the_server_rejects_it(serve, client, expected, detail_body):
    message = "response_format json_schema is not supported"
    srv = serve(faults=FaultPlan.first(1, Fault.error(400, message=message, detail_body=detail_body)))
    backend = client(srv.url, concurrency=1)
    results = backend.generate_structured([TEXT_REQUEST, TEXT_REQUEST], SCHEMA, {})
    assert [r.text for r in results] == [expected[-1]] * 2
    assert [r["response_format"] for r in srv.requests_seen] == [True, False, False]
    assert backend._sleep == [] and backend.stats["structured_ignored"] == 0
    assert backend.notes() == [f"{srv.url} refused response_format (json_schema) with HTTP 400: its structured "
                               "requests were sent plain and read by the answer parser"]


def test_max_completion_tokens_is_used_when_the_server_asks(serve, client, images, expected):
    message = "Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead."
    srv = serve(faults=FaultPlan.first(1, Fault.error(400, message=message)))
    backend = client(srv.url, concurrency=1)
    results = backend.generate(image_requests(("square",)), images)
    assert [r.text for r in results] == expected[:2]
    assert [r["token_param"] for r in srv.requests_seen] == ["max_tokens", "max_completion_tokens",
                                                              "max_completion_tokens"]
    assert all(r["temperature"] == 0 for r in srv.requests_seen)


# ------------------------------------------------------------ safety and integration


def test_remote_destinations_lists_only_non_loopback_urls_used(server, client, images):
    backend = client(server.url)
    assert backend.remote_destinations() == []
    backend.generate([TEXT_REQUEST], images)
    assert backend.remote_destinations() == []

    remote = "https://api.example.com/v1"
    backend = client([server.url, remote])
    reply = SimpleNamespace(choices=[SimpleNamespace(message=SimpleNamespace(content="yes"))])
    stub = SimpleNamespace(chat=SimpleNamespace(completions=SimpleNamespace(create=lambda **kw: reply)),
                           close=lambda: None)
    backend._clients[1] = stub  # no request leaves the machine
    assert backend.remote_destinations() == []
    results = backend.generate([TEXT_REQUEST, TEXT_REQUEST], images)
    assert all(r.ok for r in results)
    assert backend.remote_destinations() == [remote]


def test_is_loopback_url():
    for url in ("http://127.0.0.1:8000/v1", "http://localhost/v1", "http://[::1]:8000/v1", "http://127.1.2.3/v1"):
        assert is_loopback_url(url), url
    for url in ("https://api.openai.com/v1", "http://10.0.0.5:8000/v1", "http://0.0.0.0/v1", "http://localhost.evil.com/"):
        assert not is_loopback_url(url), url


def test_make_backend_dispatches_openai(cache_dir):
    spec = ModelSpec(name="m", backend="openai", model="served", revision="r1", base_url=("http://127.0.0.1:9/v1",))
    backend = make_backend(spec, cache_dir=cache_dir)
    assert isinstance(backend, OpenAIBackend) and isinstance(backend, Backend)
    with pytest.raises(HarnessError, match="cannot reach http://127.0.0.1:9/v1/models"):
        backend.identity()  # the identity names what the server serves: no server, no identity
    with pytest.raises(NotImplementedError, match="no vision encoder"):
        backend.embed([])
    assert backend.generate([], {}) == []
    backend.close()


def test_retry_after_header_forms():
    assert ob._retry_after({"retry-after": "2"}) == 2.0
    assert ob._retry_after({"retry-after-ms": "250"}) == 0.25
    assert ob._retry_after({"retry-after": "soon"}) is None
    assert ob._retry_after({}) is None
    http_date = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 30))
    assert 25 < ob._retry_after({"retry-after": http_date}) <= 31


def test_registry_accepts_endpoint_settings(tmp_path):
    good = tmp_path / "good.toml"
    good.write_text('[models.ep]\nbackend = "openai"\nmodel = "m"\nbase_url = "http://127.0.0.1:8000/v1"\n'
                    "concurrency = 32\ntimeout_s = 120\nmax_retries = 0\n")
    spec = load_registry([good]).models["ep"]
    assert (spec.concurrency, spec.timeout_s, spec.max_retries) == (32, 120.0, 0)
    assert isinstance(spec.timeout_s, float)
    defaults = load_registry().models["tiny-llava"]
    assert (defaults.concurrency, defaults.timeout_s, defaults.max_retries) == (8, 60.0, 4)

    bad = tmp_path / "bad.toml"
    bad.write_text('[models.ep]\nbackend = "openai"\nmodel = "m"\nbase_url = "http://127.0.0.1:8000/v1"\n'
                   'concurrency = 0\ntimeout_s = "fast"\nmax_retries = -1\n')
    with pytest.raises(ConfigError) as info:
        load_registry([bad])
    text = str(info.value)
    assert "models.ep.concurrency" in text and "models.ep.timeout_s" in text and "models.ep.max_retries" in text


def test_temperature_is_dropped_only_when_the_server_refuses_it(serve, client, expected):
    message = "Unsupported value: 'temperature' does not support 0 with this model. Only the default (1) value is supported."
    srv = serve(faults=FaultPlan.first(1, Fault.error(400, message=message)))
    (res,) = client(srv.url).generate([TEXT_REQUEST], {})
    assert res.text == expected[-1]
    assert [r["temperature"] for r in srv.requests_seen] == [0, None]


def test_a_400_that_names_no_unsupported_parameter_is_final(serve, client):
    message = "'max_tokens' or 'max_completion_tokens' is too large: 9000. This model's maximum context length is 4096."
    srv = serve(faults=FaultPlan.always(Fault.error(400, message=message)))
    backend = client(srv.url)
    (res,) = backend.generate([TEXT_REQUEST], {})
    assert res.text is None and "too large" in res.error
    assert [r["token_param"] for r in srv.requests_seen] == ["max_tokens"]
