"""Tests of the local OpenAI-compatible server (harness/serve/).

Raw HTTP (urllib) checks the wire format and the refusals; the real openai client checks
that what the server answers is what the in-process model answers. The served model is
the tiny built-in "tiny-llava"; a slow echo backend shows that concurrent requests are
batched without mixing up their answers.
"""

from __future__ import annotations

import base64
import io
import json
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import openai
import pytest
from PIL import Image

from harness.backends import Backend, make_backend
from harness.config.registry import load_registry
from harness.core import GenerationRequest, GenerationResult, HarnessError, ModelSpec
from harness.serve import Fault, FaultPlan, main, start_server

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def hf(cache_dir):
    backend = make_backend(load_registry().models["tiny-llava"], cache_dir=cache_dir, device="cpu")
    yield backend
    backend.close()


@pytest.fixture(scope="module")
def image() -> Image.Image:
    rng = np.random.RandomState(1)
    return Image.fromarray(rng.randint(0, 256, (48, 40, 3), dtype=np.uint8), "RGB")


@pytest.fixture(scope="module")
def server(hf):
    handle = start_server(hf)  # served name: the registry name, "tiny-llava"
    yield handle
    handle.stop()


def data_url(img: Image.Image, fmt: str = "PNG") -> str:
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return f"data:image/{fmt.lower()};base64," + base64.b64encode(buf.getvalue()).decode()


def post(url: str, body, *, headers=None, raw: bytes | None = None) -> tuple[int, dict, dict]:
    """(status, JSON body, headers) of a POST to url + /chat/completions."""
    data = raw if raw is not None else json.dumps(body).encode()
    req = urllib.request.Request(url + "/chat/completions", data=data, method="POST",
                                 headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read()), dict(resp.headers)
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}"), dict(err.headers)


def text_body(text="Say yes.", **kw) -> dict:
    return {"model": "tiny-llava", "messages": [{"role": "user", "content": text}], "max_tokens": 4, **kw}


# ------------------------------------------------------------------------ wire format


def test_models_endpoint_and_completion_shape(server):
    with urllib.request.urlopen(server.url + "/models", timeout=10) as resp:
        listing = json.loads(resp.read())
    assert [m["id"] for m in listing["data"]] == ["tiny-llava"]
    status, body, _ = post(server.url, text_body(messages=[{"role": "system", "content": "Be terse."},
                                                           {"role": "user", "content": [{"type": "text", "text": "Hi"}]}]))
    assert status == 200
    assert body["object"] == "chat.completion" and body["model"] == "tiny-llava" and body["id"].startswith("chatcmpl-")
    (choice,) = body["choices"]
    # the untrained model writes its 4 tokens without an end token: cut off at the cap
    assert choice["index"] == 0 and choice["finish_reason"] == "length"
    assert choice["message"]["role"] == "assistant" and isinstance(choice["message"]["content"], str)
    assert set(body["usage"]) == {"prompt_tokens", "completion_tokens", "total_tokens"}


def test_the_openai_client_gets_the_in_process_answer(server, hf, image):
    expected = hf.generate([GenerationRequest(prompt="Is it normal?", image_key="x", max_new_tokens=6,
                                              system="You are a radiologist.")], {"x": image})[0].text
    client = openai.OpenAI(base_url=server.url, api_key="EMPTY", max_retries=0)
    messages = [{"role": "system", "content": "You are a radiologist."},
                {"role": "user", "content": [{"type": "image_url", "image_url": {"url": data_url(image)}},
                                             {"type": "text", "text": "Is it normal?"}]}]
    six = client.chat.completions.create(model="tiny-llava", messages=messages, max_completion_tokens=6)
    assert six.choices[0].message.content == expected
    one = client.chat.completions.create(model="tiny-llava", messages=messages, max_tokens=1, temperature=0)
    assert len(one.choices[0].message.content) <= len(expected) and expected.startswith(one.choices[0].message.content)
    jpeg = client.chat.completions.create(model="tiny-llava", messages=[
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": data_url(image, "JPEG")}},
                                     {"type": "text", "text": "Is it normal?"}]}], max_tokens=3)
    assert isinstance(jpeg.choices[0].message.content, str)
    client.close()


BAD_REQUESTS = {
    "no_messages": {"model": "tiny-llava"},
    "assistant_turn": text_body(messages=[{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
                                          {"role": "user", "content": "c"}]),
    "two_images": text_body(messages=[{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}]),
    "http_image": text_body(messages=[{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "http://example.com/x.png"}}, {"type": "text", "text": "?"}]}]),
    "bad_base64": text_body(messages=[{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,@@@"}}]}]),
    "not_an_image": text_body(messages=[{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64," + base64.b64encode(b"hello").decode()}}]}]),
    "audio_part": text_body(messages=[{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]),
    "stream": text_body(stream=True),
    "n2": text_body(n=2),
    "zero_tokens": text_body(max_tokens=0),
}


@pytest.mark.parametrize("name", list(BAD_REQUESTS))
def test_unsupported_requests_are_400s(server, name):
    status, body, _ = post(server.url, BAD_REQUESTS[name])
    assert status == 400, body
    assert body["error"]["type"] == "invalid_request_error" and body["error"]["message"]


def test_other_refusals_and_the_server_lives_on(server):
    assert post(server.url, None, raw=b"{not json")[0] == 400
    status, body, _ = post(server.url, text_body(model="gpt-4o"))
    assert status == 404 and "gpt-4o" in body["error"]["message"]
    req = urllib.request.Request(server.url + "/embeddings", data=b"{}", method="POST")
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(req, timeout=10)
    assert info.value.code == 404
    assert post(server.url, text_body())[0] == 200


def test_request_bodies_are_bounded(hf):
    with start_server(hf, max_body_bytes=2000) as srv:
        status, body, _ = post(srv.url, text_body("x" * 10_000))
        assert status == 413 and "exceeds" in body["error"]["message"]
        assert post(srv.url, text_body())[0] == 200


def test_api_key_is_required_and_never_echoed(hf):
    secret, wrong = "sk-serve-SECRET789", "sk-wrong-GUESS000"
    with start_server(hf, api_key=secret) as srv:
        assert post(srv.url, text_body())[0] == 401
        status, body, headers = post(srv.url, text_body(), headers={"Authorization": f"Bearer {wrong}"})
        assert status == 401 and wrong not in json.dumps(body) + json.dumps(headers)
        assert post(srv.url, text_body(), headers={"Authorization": f"Bearer {secret}"})[0] == 200
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(srv.url + "/models", timeout=10)
        assert info.value.code == 401
        assert all(secret not in json.dumps(r) and wrong not in json.dumps(r) for r in srv.requests_seen)


def test_only_loopback_hosts_unless_allowed(hf):
    with pytest.raises(HarnessError, match="loopback"):
        start_server(hf, host="0.0.0.0")
    with pytest.raises(SystemExit) as info:  # refused before any model is loaded
        main(["--model", "tiny-llava", "--host", "0.0.0.0"])
    assert info.value.code == 2
    with start_server(hf, host="localhost") as srv:
        assert srv.host == "127.0.0.1" and post(srv.url, text_body())[0] == 200


# ---------------------------------------------------------------------------- faults


def test_fault_plan_scripts_the_answers(server):
    server.set_faults(FaultPlan(steps=(Fault.error(429, retry_after=1), Fault.empty(None), Fault.error(500),
                                       Fault.empty("  "), Fault.slow(0.01))))
    try:
        replies = [post(server.url, text_body()) for _ in range(6)]
    finally:
        server.set_faults(None)
    statuses = [r[0] for r in replies]
    assert statuses == [429, 200, 500, 200, 200, 200]
    assert replies[0][2]["Retry-After"] == "1" and replies[0][1]["error"]["type"] == "rate_limit_error"
    assert replies[1][1]["choices"][0]["message"]["content"] is None
    assert replies[3][1]["choices"][0]["message"]["content"] == "  "
    assert replies[4][1]["choices"][0]["message"]["content"] == replies[5][1]["choices"][0]["message"]["content"]
    assert [r["n"] for r in server.requests_seen] == []  # set_faults restarted the count

    plan = FaultPlan.always(Fault.error(503))
    assert plan.fault_for(0) == plan.fault_for(1000) == Fault.error(503)
    assert FaultPlan.first(2, Fault.empty()).fault_for(2) is None


class SlowEcho(Backend):
    """Answers each prompt with itself after 0.3 s per call; records batch sizes."""

    def __init__(self):
        self.spec = ModelSpec(name="echo", backend="hf", model="echo")
        self.batches: list[int] = []

    def generate(self, requests, images):
        self.batches.append(len(requests))
        time.sleep(0.3)
        return [GenerationResult(text=f"{r.prompt}|{r.max_new_tokens}|{r.image_key is not None}") for r in requests]


def test_concurrent_requests_are_batched_and_kept_apart(image):
    backend = SlowEcho()
    with start_server(backend) as srv:
        out: dict[int, str] = {}

        def ask(i: int) -> None:
            content = [{"type": "text", "text": f"prompt {i}"}]
            if i % 2:
                content.insert(0, {"type": "image_url", "image_url": {"url": data_url(image)}})
            body = {"model": "echo", "messages": [{"role": "user", "content": content}], "max_tokens": 3 + i}
            out[i] = post(srv.url, body)[1]["choices"][0]["message"]["content"]

        threads = [threading.Thread(target=ask, args=(i,)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    assert out == {i: f"prompt {i}|{3 + i}|{bool(i % 2)}" for i in range(6)}
    assert sum(backend.batches) == 6 and max(backend.batches) > 1
    assert srv.batch_sizes == backend.batches


def test_a_failing_backend_gives_500s(hf):
    class Broken(Backend):
        spec = ModelSpec(name="broken", backend="hf", model="x")

        def generate(self, requests, images):
            raise RuntimeError("CUDA out of memory")

    with start_server(Broken()) as srv:
        status, body, _ = post(srv.url, text_body(model="broken"))
    assert status == 500 and "CUDA out of memory" in body["error"]["message"]


# ------------------------------------------------------------------------------- CLI


def test_cli_serves_a_registry_model(cache_dir, hf):
    hf.source()  # the tiny model is already built in cache_dir: the subprocess only loads it
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "harness.serve", "--model", "tiny-llava", "--port", "0",
                             "--cache-dir", str(cache_dir), "--device", "cpu", "--served-name", "served"],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ)
        assert sel.select(timeout=90), "server did not start"
        line = proc.stdout.readline()
        assert "serving 'served' at http://127.0.0.1:" in line, line + proc.stderr.read()
        url = line.rsplit(" ", 1)[1].strip()
        status, body, _ = post(url, text_body(model="served"))
        assert status == 200 and isinstance(body["choices"][0]["message"]["content"], str)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert rc == 0
