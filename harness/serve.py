"""A small OpenAI-compatible server for a registry model, for tests and local use.

    python -m harness.serve --model tiny-llava [--models-file PATH] [--port 0]
                            [--cache-dir DIR] [--served-name NAME] [--api-key-env VAR]

It serves one model, loaded in-process through `harness.backends.make_backend` (the HF
backend), at `POST /v1/chat/completions` and `GET /v1/models`, using only the standard
library. It lets the "openai" backend be tested end to end with the real openai client
(`start_server` runs it in a background thread and can inject faults: 429 with
Retry-After, 5xx, empty answers, delays, 401), and lets the organism models be reached
the way a vLLM deployment would be. It is NOT a production server: use vLLM for that.

What it does and does not do:
- one user turn (text, plus at most one image as a `data:` URL, PNG/JPEG/...; images are
  decoded and normalised to RGB by harness.data.images), optional system message;
  multi-turn chats, streaming and n > 1 are refused with a 400; http(s) image URLs are
  refused (the server fetches nothing);
- greedy decoding always (temperature/top_p are ignored), `max_completion_tokens` or
  `max_tokens` bound the answer (default 256);
- `response_format` (json_schema) is accepted but NOT enforced: the model generates
  plain text and the caller must parse what it gets;
- concurrent requests are gathered into small batches (a few milliseconds) and answered
  with one backend.generate call, so the in-process model still batches;
- `usage` token counts are reported as 0 (the server does not count tokens).

Safety: binds to loopback only unless `--allow-remote-host` (patient images must not be
exposed on a network by accident); request bodies are size-bounded; the number of open
connections is bounded; the Authorization header is never logged or echoed; an API key
can be required (`--api-key-env VAR` names the environment variable holding it).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import dataclasses
import hashlib
import hmac
import ipaddress
import json
import os
import queue
import signal
import sys
import threading
import time
import uuid
import weakref
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Optional, Union

from harness.backends.base import Backend, error_text
from harness.core import GenerationRequest, GenerationResult, HarnessError, ModelSpec

__all__ = ["Fault", "FaultPlan", "ServerHandle", "start_server", "main", "MODEL_ANSWER"]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_CACHE_DIR = Path(".medvlm-cache")
DEFAULT_MAX_TOKENS = 256
MAX_TOKENS_LIMIT = 8192
MAX_BODY_BYTES = 32 << 20  # a base64 PNG of a large scan fits easily
MAX_CONNECTIONS = 128
REQUEST_TIMEOUT_S = 600.0  # longest wait for the model to answer one request
IDLE_TIMEOUT_S = 30.0  # a kept-alive connection with no request is closed after this
MAX_BATCH = 16


class _ModelAnswer:
    def __repr__(self) -> str:
        return "MODEL_ANSWER"


MODEL_ANSWER: Any = _ModelAnswer()  # Fault.content default: answer with the model's text


# --------------------------------------------------------------------------- faults


@dataclass(frozen=True)
class Fault:
    """What the server does to one request instead of (or before) answering it normally.

    status != 200: answer that HTTP status with an OpenAI-style error body and `message`
    (and a Retry-After header when `retry_after` is set); status 200 with `content`
    other than MODEL_ANSWER: answer that content (None gives JSON null, "" an empty
    answer); `delay_s`: wait this long first (before the status or the answer).
    """

    status: int = 200
    retry_after: Optional[float] = None
    delay_s: float = 0.0
    content: Any = MODEL_ANSWER
    message: str = "injected fault"

    @classmethod
    def error(cls, status: int, *, retry_after: Optional[float] = None, message: Optional[str] = None) -> "Fault":
        return cls(status=status, retry_after=retry_after, message=message or f"injected HTTP {status}")

    @classmethod
    def empty(cls, content: Optional[str] = "") -> "Fault":
        return cls(content=content)

    @classmethod
    def slow(cls, delay_s: float) -> "Fault":
        return cls(delay_s=delay_s)


@dataclass(frozen=True)
class FaultPlan:
    """A script of faults: the i-th chat-completion request to arrive (0-based) gets
    `steps[i]`; every request after the steps gets `then` (None: answered normally)."""

    steps: tuple[Fault, ...] = ()
    then: Optional[Fault] = None

    @classmethod
    def first(cls, n: int, fault: Fault) -> "FaultPlan":
        """The first `n` requests get `fault`, the rest are answered normally."""
        return cls(steps=(fault,) * n)

    @classmethod
    def always(cls, fault: Fault) -> "FaultPlan":
        return cls(then=fault)

    def fault_for(self, n: int) -> Optional[Fault]:
        return self.steps[n] if n < len(self.steps) else self.then


# -------------------------------------------------------------------------- batching


_BACKEND_LOCKS: "weakref.WeakKeyDictionary[Backend, threading.Lock]" = weakref.WeakKeyDictionary()
_BACKEND_LOCKS_GUARD = threading.Lock()


def _backend_lock(backend: Backend) -> threading.Lock:
    """One lock per backend object, so servers sharing a model never run it concurrently."""
    with _BACKEND_LOCKS_GUARD:
        lock = _BACKEND_LOCKS.get(backend)
        if lock is None:
            lock = _BACKEND_LOCKS[backend] = threading.Lock()
        return lock


class _Pending:
    __slots__ = ("request", "image", "image_key", "result", "done")

    def __init__(self, request: GenerationRequest, image, image_key: Optional[str]):
        self.request, self.image, self.image_key = request, image, image_key
        self.result: Optional[GenerationResult] = None
        self.done = threading.Event()


class _Batcher:
    """Gathers requests that arrive within `window_s` into one backend.generate call."""

    def __init__(self, backend: Backend, *, max_batch: int, window_s: float):
        self.backend = backend
        self.max_batch = max_batch
        self.window_s = window_s
        self.batch_sizes: list[int] = []
        self._queue: "queue.Queue[_Pending]" = queue.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="medvlm-serve-batcher", daemon=True)
        self._thread.start()

    def submit(self, request: GenerationRequest, image, image_key: Optional[str]) -> GenerationResult:
        item = _Pending(request, image, image_key)
        self._queue.put(item)
        if not item.done.wait(REQUEST_TIMEOUT_S):
            return GenerationResult(text=None, error=f"TimeoutError: no answer within {REQUEST_TIMEOUT_S:g} s")
        return item.result  # type: ignore[return-value]

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                first = self._queue.get(timeout=0.1)
            except queue.Empty:
                continue
            batch = [first]
            deadline = time.monotonic() + self.window_s
            while len(batch) < self.max_batch:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    batch.append(self._queue.get(timeout=remaining))
                except queue.Empty:
                    break
            self._run(batch)
        while True:  # answer whatever is still queued, so no handler waits forever
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            item.result = GenerationResult(text=None, error="server stopping")
            item.done.set()

    def _run(self, batch: list[_Pending]) -> None:
        images: dict = {}
        reqs = []
        for item in batch:
            if item.image is not None:
                images[item.image_key] = item.image
            reqs.append(dataclasses.replace(item.request, image_key=item.image_key if item.image is not None else None))
        self.batch_sizes.append(len(batch))
        try:
            with _backend_lock(self.backend):
                results = self.backend.generate(reqs, images)
            if len(results) != len(reqs):
                raise RuntimeError(f"backend returned {len(results)} results for {len(reqs)} requests")
        except Exception as exc:  # HarnessError too: the client gets a 500, the server lives on
            results = [GenerationResult(text=None, error=error_text(exc)) for _ in reqs]
        for item, res in zip(batch, results):
            item.result = res
            item.done.set()


# ---------------------------------------------------------------------- the server


class _HTTPError(Exception):
    def __init__(self, status: int, message: str, *, headers: Optional[dict] = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                404: "not_found_error", 408: "timeout", 411: "invalid_request_error",
                413: "invalid_request_error", 429: "rate_limit_error"}


@dataclass
class _State:
    backend: Backend
    served_name: str
    batcher: _Batcher
    faults: Optional[FaultPlan]
    latency_s: float
    api_key: Optional[str]
    max_body_bytes: int
    verbose: bool
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)
    arrivals: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    seen: list = dataclasses.field(default_factory=list)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = False

    def __init__(self, address, handler, state: _State, max_connections: int):
        self.state = state
        self._slots = threading.BoundedSemaphore(max_connections)
        self._open: set = set()
        self._open_lock = threading.Lock()
        super().__init__(address, handler)

    def process_request(self, request, client_address):
        if not self._slots.acquire(blocking=False):  # too many open connections: refuse fast
            try:
                body = json.dumps({"error": {"message": "too many connections", "type": "server_error"}}).encode()
                request.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                                b"Retry-After: 1\r\nConnection: close\r\nContent-Length: "
                                + str(len(body)).encode() + b"\r\n\r\n" + body)
            except OSError:
                pass
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request, client_address):
        with self._open_lock:
            self._open.add(request)
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._open_lock:
                self._open.discard(request)
            self._slots.release()

    def handle_error(self, request, client_address):
        """A client that went away (timeout, closed connection) is not worth a traceback."""
        if self.state.verbose:
            super().handle_error(request, client_address)

    def close_connections(self) -> None:
        """End kept-alive connections (their threads then finish instead of idling)."""
        import socket

        with self._open_lock:
            open_now = list(self._open)
        for sock in open_now:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "medvlm-serve/1"
    timeout = IDLE_TIMEOUT_S
    server: _Server

    # -- plumbing
    def log_message(self, format, *args):  # never log headers; requests only when verbose
        if self.server.state.verbose:
            sys.stderr.write(f"medvlm-serve: {self.address_string()} {format % args}\n")

    def _send_json(self, status: int, payload: dict, headers: Optional[dict] = None) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _send_error_json(self, err: _HTTPError) -> None:
        payload = {"error": {"message": err.message, "type": _ERROR_TYPES.get(err.status, "server_error"),
                             "param": None, "code": err.status}}
        self._send_json(err.status, payload, err.headers)

    # -- routes
    def do_GET(self):
        state = self.server.state
        if self.path.rstrip("/") in ("/v1/models", "/models"):
            try:
                self._check_auth()
            except _HTTPError as err:
                return self._send_error_json(err)
            return self._send_json(200, {"object": "list", "data": [
                {"id": state.served_name, "object": "model", "created": 0, "owned_by": "medvlm-fragility"}]})
        if self.path.rstrip("/") in ("/health", "/v1/health"):
            return self._send_json(200, {"status": "ok"})
        self._send_error_json(_HTTPError(404, f"no route GET {self.path[:100]}"))

    def do_POST(self):
        if self.path.rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
            self._discard_body()
            return self._send_error_json(_HTTPError(404, f"no route POST {self.path[:100]}"))
        state = self.server.state
        record: dict = {"status": None}
        with state.lock:
            n = state.arrivals
            state.arrivals += 1
            state.in_flight += 1
            state.max_in_flight = max(state.max_in_flight, state.in_flight)
            record["n"] = n
            state.seen.append(record)
        try:
            status, payload, headers = self._chat(state, n, record)
        except _HTTPError as err:
            record["status"] = err.status
            if err.status in (411, 413):
                self.close_connection = True  # the body was not read
            self._send_error_json(err)
        else:
            record["status"] = status
            self._send_json(status, payload, headers)
        finally:
            with state.lock:
                state.in_flight -= 1

    # -- the chat endpoint
    def _check_auth(self) -> None:
        key = self.server.state.api_key
        if key is None:
            return
        given = self.headers.get("Authorization", "")
        token = given[7:].strip() if given[:7].lower() == "bearer " else ""
        if not hmac.compare_digest(token.encode(), key.encode()):
            raise _HTTPError(401, "invalid or missing API key")

    def _discard_body(self) -> None:
        length = self.headers.get("Content-Length")
        if length and length.isdigit() and int(length) <= self.server.state.max_body_bytes:
            self.rfile.read(int(length))
        else:
            self.close_connection = True

    def _read_json(self, limit: int) -> dict:
        length = self.headers.get("Content-Length")
        if length is None or not length.strip().isdigit():
            raise _HTTPError(411, "a Content-Length header is required")
        size = int(length)
        if size > limit:
            raise _HTTPError(413, f"request body of {size} bytes exceeds the limit of {limit} bytes")
        raw = self.rfile.read(size)
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise _HTTPError(400, f"request body is not valid JSON: {exc}") from None
        if not isinstance(body, dict):
            raise _HTTPError(400, "request body must be a JSON object")
        return body

    def _chat(self, state: _State, n: int, record: dict):
        body = self._read_json(state.max_body_bytes)
        record.update(model=body.get("model"), response_format="response_format" in body,
                      token_param=next((k for k in ("max_completion_tokens", "max_tokens") if k in body), None),
                      temperature=body.get("temperature"))
        fault = state.faults.fault_for(n) if state.faults is not None else None
        if fault is not None and fault.delay_s > 0:
            time.sleep(fault.delay_s)
        if fault is not None and fault.status != 200:
            headers = {} if fault.retry_after is None else {"Retry-After": f"{fault.retry_after:g}"}
            raise _HTTPError(fault.status, fault.message, headers=headers)
        if state.latency_s > 0:
            time.sleep(state.latency_s)
        self._check_auth()
        if body.get("model") != state.served_name:
            raise _HTTPError(404, f"model {str(body.get('model'))[:100]!r} does not exist; this server serves "
                                  f"{state.served_name!r}")
        request, image, image_key = parse_chat_request(body)
        record["images"] = 0 if image is None else 1
        result = state.batcher.submit(request, image, image_key)
        if result.error is not None or result.text is None:
            raise _HTTPError(500, f"generation failed: {result.error or 'no text'}")
        content = result.text if fault is None or fault.content is MODEL_ANSWER else fault.content
        return 200, chat_completion(state.served_name, content), {}


# --------------------------------------------------------------- OpenAI <-> harness


def parse_chat_request(body: dict) -> tuple[GenerationRequest, Any, Optional[str]]:
    """(GenerationRequest, PIL image or None, image key) from an OpenAI chat request body.

    Raises _HTTPError(400) naming the problem for anything this server does not support.
    """
    if body.get("stream"):
        raise _HTTPError(400, "streaming is not supported by this server")
    if body.get("n") not in (None, 1):
        raise _HTTPError(400, "only n = 1 is supported")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _HTTPError(400, "messages must be a non-empty array")
    system: list[str] = []
    user: list = []
    for i, msg in enumerate(messages):
        if not isinstance(msg, dict):
            raise _HTTPError(400, f"messages[{i}] must be an object")
        role = msg.get("role")
        if role in ("system", "developer"):
            text, images = _parse_content(msg.get("content"), f"messages[{i}]")
            if images:
                raise _HTTPError(400, f"messages[{i}]: a system message cannot hold images")
            system.append(text)
        elif role == "user":
            user.append((i, msg))
        else:
            raise _HTTPError(400, f"messages[{i}]: role {str(role)[:40]!r} is not supported "
                                  "(one user turn, optionally after system messages)")
    if len(user) != 1:
        raise _HTTPError(400, f"exactly one user message is supported, got {len(user)}")
    i, msg = user[0]
    text, images = _parse_content(msg.get("content"), f"messages[{i}]")
    if len(images) > 1:
        raise _HTTPError(400, f"messages[{i}]: at most one image per request is supported, got {len(images)}")
    image = key = None
    if images:
        key = hashlib.sha256(images[0].encode()).hexdigest()[:32]
        image = _decode_image(images[0], f"messages[{i}]")
    request = GenerationRequest(prompt=text, image_key=key, max_new_tokens=_max_tokens(body),
                                system="\n".join(system) if system else None)
    return request, image, key


def _parse_content(content, where: str) -> tuple[str, list[str]]:
    """(text, image data URLs) of one message's content (a string or an array of parts)."""
    if isinstance(content, str):
        return content, []
    if not isinstance(content, list):
        raise _HTTPError(400, f"{where}.content must be a string or an array of parts")
    texts, images = [], []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif kind == "image_url":
            ref = part.get("image_url")
            url = ref.get("url") if isinstance(ref, dict) else ref
            if not isinstance(url, str):
                raise _HTTPError(400, f"{where}.content[{j}]: image_url.url must be a string")
            images.append(url)
        else:
            raise _HTTPError(400, f"{where}.content[{j}]: unsupported part type {str(kind)[:40]!r} "
                                  "(text and image_url are supported)")
    return "\n".join(texts), images


def _decode_image(url: str, where: str):
    """A `data:image/...;base64,` URL to a normalised RGB PIL image (nothing is fetched)."""
    from harness.data.images import load_image

    head, sep, data = url.partition(",")
    if not url.startswith("data:") or not sep or not head.endswith(";base64"):
        raise _HTTPError(400, f"{where}: only base64 data: URLs are accepted for images (this server fetches nothing)")
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise _HTTPError(400, f"{where}: the image data URL is not valid base64") from None
    try:
        return load_image(raw, source=f"{where} image")
    except HarnessError as exc:
        raise _HTTPError(400, str(exc)) from None


def _max_tokens(body: dict) -> int:
    for name in ("max_completion_tokens", "max_tokens"):
        value = body.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_TOKENS_LIMIT:
            raise _HTTPError(400, f"{name} must be an integer in 1..{MAX_TOKENS_LIMIT}")
        return value
    return DEFAULT_MAX_TOKENS


def chat_completion(model: str, content: Optional[str]) -> dict:
    """An OpenAI ChatCompletion object holding one assistant answer."""
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop",
                     "logprobs": None}],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
    }


# ------------------------------------------------------------------ programmatic API


def is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ServerHandle:
    """A running server: `url` ("http://127.0.0.1:PORT/v1"), what it saw, and `stop()`."""

    def __init__(self, server: _Server, thread: threading.Thread, owns_backend: bool):
        self._server = server
        self._thread = thread
        self._owns_backend = owns_backend
        self.host, self.port = server.server_address[:2]
        self.url = f"http://{self.host}:{self.port}/v1"
        self._stopped = False

    @property
    def state(self) -> _State:
        return self._server.state

    @property
    def backend(self) -> Backend:
        return self.state.backend

    @property
    def requests_seen(self) -> list[dict]:
        """One record per chat-completion request, in arrival order: n, status, model,
        images, token_param, temperature, response_format (never headers)."""
        with self.state.lock:
            return [dict(r) for r in self.state.seen]

    @property
    def max_in_flight(self) -> int:
        """The most chat-completion requests this server handled at the same time."""
        return self.state.max_in_flight

    @property
    def batch_sizes(self) -> list[int]:
        """The size of every backend.generate call the server made."""
        return list(self.state.batcher.batch_sizes)

    def set_faults(self, faults: Optional[FaultPlan]) -> None:
        """Replace the fault plan and restart the request count (and requests_seen)."""
        with self.state.lock:
            self.state.faults = faults
            self.state.arrivals = 0
            self.state.seen = []
            self.state.max_in_flight = self.state.in_flight

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._server.shutdown()
        self._server.server_close()
        self._server.close_connections()
        self._thread.join(timeout=5)
        self.state.batcher.stop()
        if self._owns_backend:
            self.state.backend.close()

    def __enter__(self) -> "ServerHandle":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def start_server(
    backend_or_spec: Union[Backend, ModelSpec],
    *,
    host: str = DEFAULT_HOST,
    port: int = 0,
    faults: Optional[FaultPlan] = None,
    latency_s: float = 0.0,
    served_name: Optional[str] = None,
    cache_dir: Optional[Path] = None,
    device: Optional[str] = None,
    api_key: Optional[str] = None,
    allow_remote_host: bool = False,
    max_body_bytes: int = MAX_BODY_BYTES,
    max_connections: int = MAX_CONNECTIONS,
    batch_window_s: float = 0.005,
    max_batch: Optional[int] = None,
    verbose: bool = False,
) -> ServerHandle:
    """Serve a backend (or a registry entry, loaded with make_backend) in a background thread.

    `port=0` picks a free port (read it from the handle's `url`). `served_name` is the
    model name clients must send (default: the spec's registry name). `latency_s` delays
    every chat request (after faults) to make concurrency visible; `faults` scripts
    failures. `api_key`, when given, is required as a Bearer token. A host other than
    loopback is refused unless `allow_remote_host`.
    """
    if not allow_remote_host and not is_loopback_host(host):
        raise HarnessError(f"refusing to serve on {host!r}: only loopback hosts (127.0.0.1, ::1, localhost) "
                           "unless allow_remote_host / --allow-remote-host is given (the model sees patient images)")
    owns = isinstance(backend_or_spec, ModelSpec)
    if owns:
        spec = backend_or_spec
        if spec.backend != "hf":
            raise HarnessError(f"model {spec.name!r}: only 'hf' registry models can be served, not {spec.backend!r}")
        from harness.backends import make_backend

        backend = make_backend(spec, cache_dir=Path(cache_dir or DEFAULT_CACHE_DIR), device=device)
        load = getattr(backend, "load", None)
        if callable(load):
            load()  # setup problems surface now, not as 500s later
    elif isinstance(backend_or_spec, Backend):
        backend = backend_or_spec
    else:
        raise TypeError(f"start_server needs a Backend or a ModelSpec, not {type(backend_or_spec).__name__}")
    name = served_name or backend.spec.name
    batch = max_batch or getattr(backend.spec, "batch_size", None) or MAX_BATCH
    state = _State(backend=backend, served_name=name, batcher=_Batcher(backend, max_batch=batch, window_s=batch_window_s),
                   faults=faults, latency_s=latency_s, api_key=api_key, max_body_bytes=max_body_bytes, verbose=verbose)
    server_cls = _Server
    if ":" in host:  # IPv6 literal
        import socket

        server_cls = type("_Server6", (_Server,), {"address_family": socket.AF_INET6})
    try:
        server = server_cls((host, port), _Handler, state, max_connections)
    except OSError:
        state.batcher.stop()
        if owns:
            backend.close()
        raise
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                              name="medvlm-serve", daemon=True)
    thread.start()
    return ServerHandle(server, thread, owns_backend=owns)


# ------------------------------------------------------------------------------ CLI


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.serve", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="registry name of the model to serve (backend 'hf')")
    parser.add_argument("--models-file", action="append", default=[], metavar="PATH", help="extra registry entries")
    parser.add_argument("--host", default=DEFAULT_HOST, help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--allow-remote-host", action="store_true",
                        help="allow binding to a non-loopback interface (exposes the model on the network)")
    parser.add_argument("--port", type=int, default=8000, help="port (0 = any free port; default 8000)")
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR, help="harness cache (built-in models)")
    parser.add_argument("--served-name", default=None, help="model name clients send (default: the registry name)")
    parser.add_argument("--device", default=None, help="torch device (default: cuda when available)")
    parser.add_argument("--api-key-env", default=None, metavar="VAR",
                        help="require the API key held by this environment variable")
    parser.add_argument("--max-body-mb", type=float, default=MAX_BODY_BYTES / (1 << 20))
    parser.add_argument("--verbose", action="store_true", help="log one line per request (never headers)")
    args = parser.parse_args(argv)

    if not args.allow_remote_host and not is_loopback_host(args.host):
        parser.error(f"refusing to bind {args.host!r}: only loopback unless --allow-remote-host")
    api_key = None
    if args.api_key_env:
        api_key = os.environ.get(args.api_key_env)
        if not api_key:
            parser.error(f"environment variable {args.api_key_env} (--api-key-env) is not set")
    try:
        from harness.config.registry import load_registry

        registry = load_registry(args.models_file)
        if args.model not in registry.models:
            parser.error(f"unknown model {args.model!r}; known: {', '.join(registry.models)}")
        handle = start_server(registry.models[args.model], host=args.host, port=args.port,
                              served_name=args.served_name, cache_dir=args.cache_dir, device=args.device,
                              api_key=api_key, allow_remote_host=args.allow_remote_host,
                              max_body_bytes=int(args.max_body_mb * (1 << 20)), verbose=args.verbose)
    except HarnessError as exc:
        print(f"medvlm-serve: {exc}", file=sys.stderr)
        return 1
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print(f"medvlm-serve: serving {handle.state.served_name!r} at {handle.url}", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        handle.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
