"""What the "openai" backend learns about its servers, and how it reads their errors.

OpenAI-compatible servers differ in what they accept, and the backend adapts instead of
failing every request (harness/backends/openai_backend.py):
- a 400 that asks for `max_completion_tokens` instead of `max_tokens`, or refuses
  `temperature`, changes every later request (the servers behind one registry entry
  serve the same model);
- structured output (`response_format`, a strict json_schema) is turned off per server:
  after a 400 that rejects it, and also when the server answers a structured request
  with HTTP 200 but not the requested JSON (it ignored `response_format` without a
  word, as `transformers serve` does). Later structured requests to that server are
  sent plain and their replies are read by the answer parser; each reply that gave the
  server away is counted, and `notes()` says what happened, for the report.

An error's text is the server's own: the OpenAI body (`error.message`), or the
`detail` of a FastAPI server (a string, or a list of validation errors).
"""

from __future__ import annotations

import json
import threading
from typing import Any, Optional

__all__ = ["Adaptations", "error_detail", "follows_schema"]

REJECTED = "rejected"  # the server answered a structured request with a 400 about response_format
IGNORED = "ignored"  # it answered 200 with something that is not the requested JSON


class Adaptations:
    """Request settings learned from the servers (one backend, `n` base_urls), thread-safe."""

    def __init__(self, base_urls: tuple[str, ...]):
        self.base_urls = base_urls
        self.token_param = "max_tokens"
        self.send_temperature = True
        self._plain: dict[int, str] = {}  # slot -> REJECTED / IGNORED: structured output off there
        self._ignored: dict[int, int] = {}  # slot -> structured replies that were not the requested JSON
        self._lock = threading.Lock()

    def structured(self, slot: int) -> bool:
        """Whether structured requests to this server still carry response_format."""
        with self._lock:
            return slot not in self._plain

    def learn_from_400(self, detail: str, kwargs: dict, slot: int) -> bool:
        """Learn from a 400 that names a parameter this server does not take; True if the
        request should be sent again (the next kwargs will differ)."""
        low = detail.lower()
        unsupported = "support" in low or "instead" in low
        # Only "use max_completion_tokens instead", not vLLM's "'max_tokens' or
        # 'max_completion_tokens' is too large": a server that ignored the unknown
        # parameter would generate unbounded answers.
        if "max_tokens" in kwargs and "max_completion_tokens" in low and unsupported:
            self.token_param = "max_completion_tokens"
            return True
        if "response_format" in kwargs and ("response_format" in low or "json_schema" in low):
            with self._lock:
                self._plain[slot] = REJECTED
            return True
        if "temperature" in kwargs and "temperature" in low and unsupported:
            self.send_temperature = False  # e.g. reasoning models: only the default temperature
            return True
        return False

    def check_structured(self, text: str, schema: dict, slot: int) -> bool:
        """A structured request to `slot` came back (HTTP 200, complete, not empty) as
        `text`. True if it is the requested JSON; otherwise the server ignored
        response_format: structured output is off there from now on, and False."""
        if follows_schema(text, schema):
            return True
        with self._lock:
            self._plain.setdefault(slot, IGNORED)
            self._ignored[slot] = self._ignored.get(slot, 0) + 1
        return False

    def notes(self) -> list[str]:
        """One line per server whose structured output was turned off (for the report)."""
        with self._lock:
            plain, ignored = dict(self._plain), dict(self._ignored)
        lines = []
        for slot in sorted(plain):
            url = self.base_urls[slot]
            if plain[slot] == REJECTED:
                lines.append(f"{url} refused response_format (json_schema) with HTTP 400: its structured requests "
                             f"were sent plain and read by the answer parser")
            else:
                n = ignored.get(slot, 0)
                lines.append(f"{url} ignored response_format (json_schema): {n} structured "
                             f"{'reply was' if n == 1 else 'replies were'} not the requested JSON; its structured "
                             f"requests were sent plain from then on and read by the answer parser")
        return lines


def error_detail(exc: Any) -> str:
    """The server's own error text from an openai.APIStatusError, else the client's message.

    OpenAI body: {"error": {"message": ...}} (or "error": "<text>", or a top-level
    "message"); FastAPI body (transformers serve): {"detail": "<text>"}, or a list of
    validation errors {"loc": [...], "msg": ...}.
    """
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return inner["message"]
        if isinstance(inner, str):
            return inner
        if isinstance(body.get("message"), str):
            return body["message"]
        text = _detail_text(body.get("detail"))
        if text:
            return text
    return str(getattr(exc, "message", "") or exc)


def _detail_text(detail: Any) -> Optional[str]:
    if isinstance(detail, str) and detail.strip():
        return detail
    if isinstance(detail, list):
        parts = []
        for item in detail:
            if isinstance(item, dict) and isinstance(item.get("msg"), str):
                loc = ".".join(str(p) for p in item.get("loc") or ())
                parts.append(f"{loc}: {item['msg']}" if loc else item["msg"])
            elif isinstance(item, str):
                parts.append(item)
        return "; ".join(parts) or None
    return None


_TYPES = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}


def follows_schema(text: str, schema: dict) -> bool:
    """Whether `text` is JSON (the whole reply, nothing around it) that follows `schema`.

    Checks the keywords a strict json_schema response_format uses: type, enum, const,
    properties, required, additionalProperties: false, items. Others are not checked
    (a constrained server follows them anyway; this only has to tell a server that
    constrained the reply from one that did not)."""
    try:
        value = json.loads(text)
    except (TypeError, ValueError):
        return False
    return _follows(value, schema)


def _follows(value: Any, schema: Any) -> bool:
    if not isinstance(schema, dict):
        return True
    kind = schema.get("type")
    kinds = kind if isinstance(kind, list) else [kind] if kind else []
    if kinds and not any(_is(value, k) for k in kinds):
        return False
    if "enum" in schema and value not in schema["enum"]:
        return False
    if "const" in schema and value != schema["const"]:
        return False
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        if any(name not in value for name in schema.get("required") or ()):
            return False
        if schema.get("additionalProperties") is False and any(k not in props for k in value):
            return False
        return all(_follows(v, props.get(k)) for k, v in value.items())
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return all(_follows(v, schema["items"]) for v in value)
    return True


def _is(value: Any, kind: str) -> bool:
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    expected = _TYPES.get(kind)
    return expected is None or isinstance(value, expected)
