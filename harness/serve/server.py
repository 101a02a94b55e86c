"""The programmatic API: start_server and the ServerHandle it returns.

Tests (and users who want a server inside their own process) start a server in a
background thread, read its URL, inspect what it saw, swap fault plans and stop it;
this module owns that lifecycle, including who closes the backend, and the refusal to
bind anything but loopback unless asked (the model sees patient images).
"""

from __future__ import annotations

import ipaddress
import threading
from pathlib import Path
from typing import Optional, Union

from harness.backends.base import Backend
from harness.core import HarnessError, ModelSpec
from harness.serve.batching import _Batcher
from harness.serve.faults import FaultPlan
from harness.serve.handler import _Handler, _Server, _State
from harness.serve.limits import DEFAULT_CACHE_DIR, DEFAULT_HOST, MAX_BATCH, MAX_BODY_BYTES, MAX_CONNECTIONS


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


def served_entry(backend: Backend) -> dict:
    """What GET /v1/models says this server serves besides the name, as vLLM does: `root`
    (the registry's model: a hub id, a folder, builtin:<name>) and `revision` (the digest
    of the backend's identity: a retrained or rebuilt model gets a new one). Clients key
    their answers on it (harness.backends.served_identity)."""
    from harness.backends.identity import identity_digest

    return {"root": backend.spec.model, "revision": identity_digest(backend.identity())}


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
                   faults=faults, latency_s=latency_s, api_key=api_key, max_body_bytes=max_body_bytes, verbose=verbose,
                   entry=served_entry(backend))
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
