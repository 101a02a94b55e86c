"""The interface every inference backend implements, and what it promises.

The rest of the harness (cache, findings) only sees this class: a backend turns a list of
requests into one result per request, in order, and never lets one bad batch end a run.
`identity()` names exactly what changes a model's outputs besides the prompt, the image
and the generation settings; the response store keys on it (for "hf" models it is
`harness.backends.identity.model_identity`, computable without loading weights).
"""

from __future__ import annotations

import abc

from harness.core import GenerationRequest, GenerationResult, ModelSpec


class Backend(abc.ABC):
    """A model that answers GenerationRequests; see the module docstring for the contract."""

    spec: ModelSpec

    def identity(self) -> dict:
        """What, besides prompt, image and settings, decides this backend's outputs."""
        return {"backend": self.spec.backend, "model": self.spec.model, "revision": self.spec.revision, "fingerprint": None}

    @abc.abstractmethod
    def generate(self, requests: list[GenerationRequest], images: dict) -> list[GenerationResult]:
        """One result per request, same order.

        `images` maps each request's `image_key` to a PIL image (`image_key` None means
        a text-only request). A batch that fails (exception, OOM) yields results with
        `text=None` and `error="<ExceptionType: message>"` for its requests; only
        HarnessError (a setup problem the user must fix) is raised.
        """

    def embed(self, images: list, *, layer: int = -1, pooling: str = "mean", features: str = "selected"):
        """Pooled vision-encoder embeddings, one row per image (not available by default)."""
        raise NotImplementedError(f"{type(self).__name__} does not expose its vision encoder")

    def close(self) -> None:
        """Release the model and any device memory."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def error_text(exc: BaseException) -> str:
    """The `error` of a failed result: "ExceptionType: first line of the message"."""
    lines = str(exc).strip().splitlines()
    first = lines[0][:500] if lines else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__

