"""The OpenAI chat-completions wire format <-> the harness's GenerationRequest.

Kept apart from the HTTP plumbing so that what this server accepts (one user turn, at
most one base64 image, no streaming, n = 1) and refuses with a 400 is decided in one
readable place, and the response shape the openai client expects is built in one place.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import time
import uuid
from typing import Any, Optional

from harness.core import GenerationRequest, HarnessError
from harness.serve.limits import DEFAULT_MAX_TOKENS, MAX_TOKENS_LIMIT


class _HTTPError(Exception):
    def __init__(self, status: int, message: str, *, headers: Optional[dict] = None, detail_body: bool = False):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}
        self.detail_body = detail_body  # answer {"detail": message}, as a FastAPI server does


_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                404: "not_found_error", 408: "timeout", 411: "invalid_request_error",
                413: "invalid_request_error", 429: "rate_limit_error"}


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


def chat_completion(model: str, content: Optional[str], *, truncated: bool = False) -> dict:
    """An OpenAI ChatCompletion object holding one assistant answer; `finish_reason` is
    "length" when the answer stopped at the token cap, as vLLM and OpenAI report it."""
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "length" if truncated else "stop",
                     "logprobs": None}],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
    }
