"""OpenAI-compatible HTTP backend: models served by vLLM (or any server speaking the
OpenAI chat-completions API), the harness being the client (SPEC §1, §6, §8, §9).

Why it looks the way it does:
- the real `openai` client, one per base_url, with the client's own retries OFF
  (`max_retries=0`): retries happen here, where they are bounded by the registry entry
  (`max_retries`), honour `Retry-After`, can move to the next server, and never retry a
  request the server refused for good (400/401/403/404 and other 4xx);
- requests are spread round-robin over the base_urls and sent by a bounded thread pool
  (`concurrency` workers); results come back in request order, one per request, and a
  failure is an error result, never an exception (Backend contract);
- each image is PNG-encoded once per generate() call, however many prompts ask about it;
  the image part comes before the text, like the HF backend, so that the prompts about
  one image share a prefix (vLLM prefix caching);
- greedy decoding (temperature 0) with the request's `max_new_tokens`; a server that
  wants `max_completion_tokens` (newer OpenAI models), refuses `temperature`, or does not
  support structured output (`response_format`) says so in a 400, and the backend adapts
  once, for the rest of its life, instead of failing every request; a server that
  silently ignores `response_format` (HTTP 200, but not the requested JSON) is noticed
  too, counted (`stats["structured_ignored"]`) and named by `notes()` for the report
  (harness/backends/openai_adapt.py);
- an error's text is the server's own, from an OpenAI error body or a FastAPI `detail`;
- an empty or whitespace answer from a call that succeeded is the model's silence, a
  refusal (SPEC §3), counted as `empty` and never cached; a reply without a message is
  an error ("malformed response"); errors are excluded from scoring and never cached;
- `finish_reason: "length"` marks the answer as cut off at the token cap (`truncated`),
  so the runner can ask again with a larger budget;
- the API key is read only from the environment variable the registry names
  (`api_key_env`) and is redacted from every error message.
"""

from __future__ import annotations

import base64
import io
import ipaddress
import itertools
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Optional
from urllib.parse import urlparse

import openai

from harness.backends.base import Backend, error_text
from harness.backends.openai_adapt import Adaptations, error_detail
from harness.core import GenerationRequest, GenerationResult, HarnessError, ModelSpec

__all__ = ["OpenAIBackend", "is_loopback_url", "encode_image_png", "PLACEHOLDER_KEY", "REDACTED"]

PLACEHOLDER_KEY = "EMPTY"  # what vLLM accepts when it was started without --api-key
REDACTED = "[REDACTED]"
MALFORMED_RESPONSE = "malformed response (no message)"
MAX_RETRY_AFTER_S = 120.0  # a longer Retry-After is capped (the run must go on)
_MAX_ADAPTATIONS = 3  # per request: max_tokens -> max_completion_tokens, temperature, response_format
_BEARER = re.compile(r"(?i)(bearer\s+)[^\s'\",}]+")


def is_loopback_url(url: str) -> bool:
    """True when the URL's host is localhost or a loopback address (same rule as the suite)."""
    host = urlparse(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def encode_image_png(image) -> str:
    """A PIL image as a `data:image/png;base64,...` URL (lossless, RGB)."""
    if image.mode != "RGB":
        image = image.convert("RGB")
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _is_retryable_status(status: int) -> bool:
    return status in (408, 429) or status >= 500


class OpenAIBackend(Backend):
    """A model behind one or more OpenAI-compatible endpoints (`spec.base_url`)."""

    def __init__(
        self,
        spec: ModelSpec,
        *,
        cache_dir: Path,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 20.0,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.spec = spec
        self.cache_dir = Path(cache_dir)
        urls = (spec.base_url,) if isinstance(spec.base_url, str) else tuple(spec.base_url)
        if not urls:
            raise HarnessError(f"model {spec.name!r}: backend 'openai' needs base_url, e.g. \"http://127.0.0.1:8000/v1\"")
        self.base_urls: tuple[str, ...] = urls
        self._key = self._read_key(spec)
        self.concurrency = int(getattr(spec, "concurrency", 8) or 8)
        self.timeout_s = float(getattr(spec, "timeout_s", 60.0) or 60.0)
        self.max_retries = int(getattr(spec, "max_retries", 4))
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self._sleep = sleep
        self._clients: list = [None] * len(urls)  # created on first use, again after close()
        self._lock = threading.Lock()
        self._rr = itertools.count()
        self._sent: set[int] = set()
        self._pool: Optional[ThreadPoolExecutor] = None
        # What the servers accept, learned from their 400s and replies (kept for this backend's life).
        self._adaptations = Adaptations(urls)
        self.stats = {"requests": 0, "retries": 0, "errors": 0, "empty": 0, "structured_ignored": 0}
        self._identity: Optional[dict] = None

    # ------------------------------------------------------------------ setup

    @staticmethod
    def _read_key(spec: ModelSpec) -> str:
        """The key from the environment variable named by api_key_env (never from a file)."""
        import os

        if not spec.api_key_env:
            return PLACEHOLDER_KEY
        value = os.environ.get(spec.api_key_env)
        if value is None or not value.strip():
            raise HarnessError(
                f"model {spec.name!r}: the environment variable {spec.api_key_env} (api_key_env) is not set; "
                f"export {spec.api_key_env}=<your key> before the run"
            )
        return value.strip()

    def identity(self) -> dict:
        """Backend, served model name, revision and what the servers say they serve (see
        harness.backends.identity); asked of the servers once per backend."""
        from harness.backends.identity import model_identity

        if self._identity is None:
            self._identity = model_identity(self.spec, self.cache_dir)
        return self._identity

    def remote_destinations(self) -> list[str]:
        """The non-loopback base_urls this backend has sent requests to (for the report)."""
        with self._lock:
            sent = sorted(self._sent)
        return [self.base_urls[i] for i in sent if not is_loopback_url(self.base_urls[i])]

    def notes(self) -> list[str]:
        """What the report should say about these servers: one line per server whose
        structured output was turned off (refused with a 400, or silently ignored)."""
        return self._adaptations.notes()

    def embed(self, images: list, *args, **kwargs):
        raise NotImplementedError("endpoint backends expose no vision encoder")

    def close(self) -> None:
        """Stop the worker threads and close the HTTP connections."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)
        with self._lock:
            clients, self._clients = self._clients, [None] * len(self.base_urls)
        for client in clients:
            if client is not None:
                try:
                    client.close()
                except Exception:
                    pass

    def _client(self, slot: int):
        """The openai client of one base_url (its own retries off: retries happen here)."""
        with self._lock:
            client = self._clients[slot]
            if client is None:
                client = openai.OpenAI(base_url=self.base_urls[slot], api_key=self._key, max_retries=0,
                                       timeout=self.timeout_s)
                self._clients[slot] = client
            return client

    # ------------------------------------------------------------- generation

    def generate(self, requests: list[GenerationRequest], images: dict) -> list[GenerationResult]:
        """One result per request, in order (see Backend.generate)."""
        return self._run(requests, images, schema=None)

    def generate_structured(self, requests: list[GenerationRequest], schema: dict, images: dict) -> list[GenerationResult]:
        """Like generate, asking the server for JSON that follows `schema` (strict
        json_schema response_format). The raw content is returned; the caller parses it.
        A server that rejects response_format (a 400), or ignores it (a complete reply
        that is not the requested JSON), gets plain requests from then on."""
        return self._run(requests, images, schema=schema)

    def _run(self, requests: list[GenerationRequest], images: dict, schema: Optional[dict]) -> list[GenerationResult]:
        if not requests:
            return []
        urls: dict[str, str] = {}
        results: list[Optional[GenerationResult]] = [None] * len(requests)
        for i, req in enumerate(requests):
            if req.image_key is None or req.image_key in urls:
                continue
            if req.image_key not in images:
                results[i] = GenerationResult(text=None, error=f"KeyError: no image for image_key {req.image_key!r}")
                continue
            try:
                urls[req.image_key] = encode_image_png(images[req.image_key])
            except Exception as exc:
                results[i] = GenerationResult(text=None, error=f"cannot encode image {req.image_key!r}: {error_text(exc)}")
        for i, req in enumerate(requests):  # later requests about a missing/broken image
            if results[i] is None and req.image_key is not None and req.image_key not in urls:
                results[i] = GenerationResult(text=None, error=f"KeyError: no usable image for image_key {req.image_key!r}")
        pending = [i for i, r in enumerate(results) if r is None]
        pool = self._executor()
        futures = {}
        for i in pending:
            key = requests[i].image_key
            futures[i] = pool.submit(self._call, i, requests[i], None if key is None else urls[key], schema)
        for i, fut in futures.items():
            try:
                results[i] = fut.result()
            except Exception as exc:  # _call catches everything; this is a last line of defence
                results[i] = GenerationResult(text=None, error=self._redact(error_text(exc)))
        return results  # type: ignore[return-value]

    def _executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix=f"openai-{self.spec.name}")
            return self._pool

    def messages(self, request: GenerationRequest, image_url: Optional[str]) -> list[dict]:
        """Optional system message, then the user turn: image part first, then the text."""
        msgs: list[dict] = []
        if request.system:
            msgs.append({"role": "system", "content": request.system})
        if image_url is None:
            msgs.append({"role": "user", "content": request.prompt})
        else:
            msgs.append({"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": image_url}},
                {"type": "text", "text": request.prompt},
            ]})
        return msgs

    def _kwargs(self, request: GenerationRequest, image_url: Optional[str], schema: Optional[dict], slot: int) -> dict:
        adapted = self._adaptations
        kwargs: dict[str, Any] = {"model": self.spec.model, "messages": self.messages(request, image_url)}
        kwargs[adapted.token_param] = request.max_new_tokens
        if adapted.send_temperature:
            kwargs["temperature"] = 0
        if schema is not None and adapted.structured(slot):
            kwargs["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "answer", "schema": schema, "strict": True},
            }
        return kwargs

    def _call(self, index: int, request: GenerationRequest, image_url: Optional[str], schema: Optional[dict]) -> GenerationResult:
        """Send one request, retrying transient failures on the next server; never raises."""
        with self._lock:
            start = next(self._rr)
            self.stats["requests"] += 1
        retries = adaptations = 0
        while True:
            slot = (start + retries) % len(self._clients)
            url = self.base_urls[slot]
            kwargs = self._kwargs(request, image_url, schema, slot)
            with self._lock:
                self._sent.add(slot)
            try:
                response = self._client(slot).chat.completions.create(**kwargs)
            except openai.APIStatusError as exc:
                status = exc.status_code
                detail = error_detail(exc)
                if status == 400 and adaptations < _MAX_ADAPTATIONS and self._adaptations.learn_from_400(detail, kwargs, slot):
                    adaptations += 1
                    continue
                if _is_retryable_status(status) and retries < self.max_retries:
                    self._sleep(self._delay(retries, index, exc.response.headers))
                    retries += 1
                    self._count("retries")
                    continue
                return self._error(f"{type(exc).__name__}: HTTP {status} from {url}: {detail}", retries)
            except openai.APIConnectionError as exc:  # includes APITimeoutError
                if retries < self.max_retries:
                    self._sleep(self._delay(retries, index, None))
                    retries += 1
                    self._count("retries")
                    continue
                what = f"no answer within {self.timeout_s:g} s" if isinstance(exc, openai.APITimeoutError) else "cannot connect"
                return self._error(f"{type(exc).__name__}: {what} ({url}): {exc}", retries)
            except Exception as exc:  # malformed response, client bug: not retried
                return self._error(f"{error_text(exc)} ({url})", retries)
            result = self._answer(response)
            if "response_format" in kwargs and result.ok and not result.truncated:
                # A complete reply to a structured request: is it the JSON asked for?
                if not self._adaptations.check_structured(result.text, schema, slot):
                    self._count("structured_ignored")  # the server ignored response_format
            return result

    def _answer(self, response) -> GenerationResult:
        try:
            content = response.choices[0].message.content
        except (AttributeError, IndexError, TypeError):
            self._count("errors")
            return GenerationResult(text=None, error=MALFORMED_RESPONSE)
        if content is None or (isinstance(content, str) and not content.strip()):
            self._count("empty")  # the server answered and the model wrote nothing: the model's behaviour
            return GenerationResult(text="")
        if not isinstance(content, str):
            self._count("errors")
            return GenerationResult(text=None, error=MALFORMED_RESPONSE)
        truncated = getattr(response.choices[0], "finish_reason", None) == "length"
        return GenerationResult(text=content.strip(), truncated=truncated)

    def _delay(self, retries: int, index: int, headers) -> float:
        """Retry-After when the server sent one (capped), else exponential backoff with a
        small deterministic jitter (by request index) so that workers do not retry in step."""
        after = _retry_after(headers)
        if after is not None:
            return min(after, MAX_RETRY_AFTER_S)
        jitter = 1.0 + 0.25 * ((index * 0.6180339887) % 1.0)
        return min(self.backoff_max_s, self.backoff_base_s * (2 ** retries)) * jitter

    def _error(self, message: str, retries: int) -> GenerationResult:
        self._count("errors")
        if retries:
            message += f" (after {retries} {'retry' if retries == 1 else 'retries'})"
        return GenerationResult(text=None, error=self._redact(message))

    def _redact(self, message: str) -> str:
        """Remove the API key (and any bearer token) from a message; cap its length."""
        if self._key and self._key != PLACEHOLDER_KEY:
            message = message.replace(self._key, REDACTED)
        message = _BEARER.sub(lambda m: m.group(1) + REDACTED, message)
        lines = message.strip().splitlines() or [""]
        return lines[0][:800]

    def _count(self, what: str) -> None:
        with self._lock:
            self.stats[what] += 1


def _retry_after(headers) -> Optional[float]:
    """Seconds from `retry-after-ms` or `Retry-After` (seconds or an HTTP date), or None."""
    if headers is None:
        return None
    for name, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            seconds = float(value) / divisor
        except ValueError:
            continue
        if seconds == seconds and seconds >= 0:  # not NaN, not negative
            return seconds
    value = headers.get("retry-after")
    if value:
        import email.utils

        try:
            when = email.utils.parsedate_to_datetime(value)
            return max(0.0, when.timestamp() - time.time())
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    return None
