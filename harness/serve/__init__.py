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

from harness.serve.cli import main
from harness.serve.faults import MODEL_ANSWER, Fault, FaultPlan
from harness.serve.limits import (
    DEFAULT_CACHE_DIR as DEFAULT_CACHE_DIR,
    DEFAULT_HOST as DEFAULT_HOST,
    DEFAULT_MAX_TOKENS as DEFAULT_MAX_TOKENS,
    IDLE_TIMEOUT_S as IDLE_TIMEOUT_S,
    MAX_BATCH as MAX_BATCH,
    MAX_BODY_BYTES as MAX_BODY_BYTES,
    MAX_CONNECTIONS as MAX_CONNECTIONS,
    MAX_TOKENS_LIMIT as MAX_TOKENS_LIMIT,
    REQUEST_TIMEOUT_S as REQUEST_TIMEOUT_S,
)
from harness.serve.protocol import chat_completion as chat_completion, parse_chat_request as parse_chat_request
from harness.serve.server import ServerHandle, is_loopback_host as is_loopback_host, start_server

__all__ = ["Fault", "FaultPlan", "ServerHandle", "start_server", "main", "MODEL_ANSWER"]
