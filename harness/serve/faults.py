"""Scripted failures the server can inject, so clients' retry and error paths can be tested.

A real endpoint fails rarely and unpredictably; a FaultPlan makes the i-th request fail
in a chosen way (429 with Retry-After, 5xx, empty answer, delay) so tests of the
"openai" backend are deterministic. Nothing here touches HTTP: the handler applies them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional


class _ModelAnswer:
    """A sentinel distinct from every string and None: "no override, answer normally"."""

    def __repr__(self) -> str:
        return "MODEL_ANSWER"


MODEL_ANSWER: Any = _ModelAnswer()  # Fault.content default: answer with the model's text


@dataclass(frozen=True)
class Fault:
    """What the server does to one request instead of (or before) answering it normally.

    status != 200: answer that HTTP status with an OpenAI-style error body and `message`
    (and a Retry-After header when `retry_after` is set; `detail_body`: the body a
    FastAPI server such as `transformers serve` sends, {"detail": message}, instead of
    the OpenAI {"error": {"message": ...}}); status 200 with `content`
    other than MODEL_ANSWER: answer that content (None gives JSON null, "" an empty
    answer); `delay_s`: wait this long first (before the status or the answer).
    """

    status: int = 200
    retry_after: Optional[float] = None
    delay_s: float = 0.0
    content: Any = MODEL_ANSWER
    message: str = "injected fault"
    detail_body: bool = False

    @classmethod
    def error(cls, status: int, *, retry_after: Optional[float] = None, message: Optional[str] = None,
              detail_body: bool = False) -> "Fault":
        return cls(status=status, retry_after=retry_after, message=message or f"injected HTTP {status}",
                   detail_body=detail_body)

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
