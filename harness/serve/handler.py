"""The HTTP layer: shared per-server state, the connection-bounded server, the handler.

Only the standard library is used, so tests need no web framework. The server bounds
open connections (refusing the excess with a fast 503) and can close kept-alive ones on
stop; the handler routes, checks the API key without ever logging or echoing it, reads
size-bounded JSON bodies, applies scripted faults and hands requests to the batcher.
"""

from __future__ import annotations

import dataclasses
import hmac
import json
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Optional

from harness.backends.base import Backend
from harness.serve.batching import _Batcher
from harness.serve.faults import MODEL_ANSWER, FaultPlan
from harness.serve.limits import IDLE_TIMEOUT_S
from harness.serve.protocol import _ERROR_TYPES, _HTTPError, chat_completion, parse_chat_request


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
    # what GET /v1/models says is served beside the name (root, revision): clients key on it
    entry: dict = dataclasses.field(default_factory=dict)
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
    # Headers and body go out in two writes; with Nagle's algorithm on, the body waits for
    # the client's delayed ACK of the headers: about 40 ms added to every answer.
    disable_nagle_algorithm = True
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
        if err.detail_body:
            payload = {"detail": err.message}
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
                {"id": state.served_name, "object": "model", "created": 0, "owned_by": "medvlm-fragility",
                 **state.entry}]})
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
            raise _HTTPError(fault.status, fault.message, headers=headers, detail_body=fault.detail_body)
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
        truncated = result.truncated and (fault is None or fault.content is MODEL_ANSWER)
        return 200, chat_completion(state.served_name, content, truncated=truncated), {}
