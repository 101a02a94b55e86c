"""`python -m harness.serve`: argument parsing, and serving until SIGTERM or Ctrl-C.

Kept apart from the server so that importing the programmatic API never parses argv or
installs signal handlers, and the command line's checks (loopback only, API key taken
from an environment variable, never from argv) are in one place.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Optional

from harness.core import HarnessError
from harness.serve.limits import DEFAULT_CACHE_DIR, DEFAULT_HOST, MAX_BODY_BYTES
from harness.serve.server import is_loopback_host, start_server


SUMMARY = "A small OpenAI-compatible server for a registry model, for tests and local use."


def main(argv: Optional[list[str]] = None) -> int:
    # Before torch loads: OpenAI-compatible requests come one at a time between idle gaps, and
    # OpenMP's default busy-wait made `transformers serve` 30 times slower per request here
    # (0.3 s against 0.01 s, docs/performance.md); a passive wait costs nothing in a batch.
    import os

    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    parser = argparse.ArgumentParser(prog="python -m harness.serve", description=SUMMARY)
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
