"""Run `transformers serve` (the transformers CLI's OpenAI-compatible server) for tests and benches.

A real third-party server, not the project's own (harness.serve): a child process on
127.0.0.1 on a free port, offline (HF_HUB_OFFLINE=1: it reads only local model folders
and never reaches the Hub), in its own process group so that `stop()` ends it and
everything it started, by PID. What the installed version (5.x) does, as read from
transformers/cli/serve.py and cli/serving/:
- `transformers serve [MODEL]`: without MODEL it loads whatever model a request names
  (a local folder path is used as it is), so one server serves several models by path;
  with MODEL it is pinned to it (loaded at start, never unloaded) and answers a request
  for any other name with a 400 whose text is under `detail`;
- GET /health answers {"status": "ok"}; POST /v1/chat/completions is the OpenAI chat API
  (image parts as data URLs, `max_tokens`, temperature 0 for greedy decoding);
- `response_format` is accepted and silently ignored (a warning in its log), so a
  structured request gets the model's plain answer;
- errors are FastAPI's: {"detail": "<text>"} (422 for fields it does not know);
- it generates one request at a time (no batching without --continuous-batching, which
  only text-only models get).
Started here with `--device=cpu` (weights in their own dtype, float32 for the organism,
as the in-process backend uses them without a GPU) and OMP_WAIT_POLICY=PASSIVE (see
`launch`). It needs FastAPI and uvicorn: `pip install "transformers[serving]"`.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

INSTALL_HINT = 'pip install "transformers[serving]"'
STARTUP_TIMEOUT_S = 180.0  # importing torch + transformers on a busy 2-core machine, then a pinned model's load


def missing_serving_extra() -> Optional[str]:
    """Why `transformers serve` cannot run here (a skip reason naming the install line), or None."""
    missing = [m for m in ("fastapi", "uvicorn", "pydantic") if importlib.util.find_spec(m) is None]
    if missing:
        return f"transformers serve needs {' and '.join(missing)}: {INSTALL_HINT}"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class TransformersServer:
    """A running `transformers serve`; `url` is its OpenAI base_url (…/v1)."""

    proc: subprocess.Popen
    port: int
    log_path: Path
    model: Optional[str]  # the folder it is pinned to, or None (serves any folder by path)

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.root}/v1"

    def log(self, tail: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-tail:]
        except OSError:
            return ""

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.root}/health", timeout=2) as reply:
                return reply.status == 200 and json.loads(reply.read()).get("status") == "ok"
        except (OSError, ValueError, urllib.error.URLError):
            return False

    def wait_ready(self, timeout_s: float = STARTUP_TIMEOUT_S) -> "TransformersServer":
        """Wait for GET /health; stop the server and raise with its log if it dies or is late."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"transformers serve exited with {self.proc.returncode}:\n{self.log()}")
            if self.healthy():
                return self
            time.sleep(0.25)
        self.stop()
        raise RuntimeError(f"transformers serve did not answer /health within {timeout_s:g} s:\n{self.log()}")

    def stop(self, timeout_s: float = 15.0) -> None:
        """End the server's process group (SIGTERM, then SIGKILL) and reap it."""
        if self.proc.poll() is None:
            for sig, wait in ((signal.SIGTERM, timeout_s), (signal.SIGKILL, 5.0)):
                try:
                    os.killpg(self.proc.pid, sig)  # the child leads its own group (start_new_session)
                except ProcessLookupError:
                    break
                try:
                    self.proc.wait(timeout=wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        try:  # anything left in the group (none expected): never outlive the test
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def __enter__(self) -> "TransformersServer":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def launch(log_path: Path, model: Optional[str] = None, *, extra_args: Sequence[str] = (),
           extra_env: Optional[dict] = None) -> TransformersServer:
    """Start `transformers serve` on 127.0.0.1 on a free port (pinned to `model` if given),
    without waiting; call `.wait_ready()` (servers can start side by side). `extra_env`
    is added to the server's environment (after the offline settings)."""
    reason = missing_serving_extra()
    if reason:
        raise RuntimeError(reason)
    port = free_port()
    cmd = [sys.executable, "-m", "transformers.cli.transformers", "serve", *([model] if model else []),
           "--host", "127.0.0.1", f"--port={port}", "--device=cpu", *extra_args]
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_HUB_DISABLE_TELEMETRY="1",
               HF_HUB_DISABLE_UPDATE_CHECK="1", TOKENIZERS_PARALLELISM="false")
    # The server runs torch on two threads (the event loop preprocesses images, another
    # thread generates), each with its own OpenMP team; with OpenMP's default spin-wait the
    # idle team keeps spinning and starves the busy one on a small CPU: about 0.3 s per
    # image request on 2 cores instead of about 0.01 s. PASSIVE makes idle workers sleep
    # (same numbers, only the waiting changes).
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    env.update(extra_env or {})
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)
    return TransformersServer(proc=proc, port=port, log_path=log_path, model=model)


def start_transformers_serve(log_path: Path, model: Optional[str] = None, *, extra_args: Sequence[str] = (),
                             extra_env: Optional[dict] = None, timeout_s: float = STARTUP_TIMEOUT_S,
                             attempts: int = 2) -> TransformersServer:
    """Launch and wait until /health answers; a second try on a new port if the first
    server dies at start (e.g. another process took the free port in between)."""
    for attempt in range(attempts):
        server = launch(log_path, model, extra_args=extra_args, extra_env=extra_env)
        try:
            return server.wait_ready(timeout_s)
        except RuntimeError:
            server.stop()
            if attempt == attempts - 1 or "address already in use" not in server.log().lower():
                raise
    raise AssertionError("unreachable")
