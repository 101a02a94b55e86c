"""Inference backends: one interface (`Backend`), chosen per registry entry by `make_backend`.

Backend modules are imported lazily so that importing the harness (for instance to read
cached results, or to talk to an OpenAI-compatible server) never pays for torch or
transformers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from harness.backends.base import Backend
from harness.core import HarnessError, ModelSpec

KNOWN_BACKENDS: tuple[str, ...] = ("hf", "openai")

__all__ = ["Backend", "KNOWN_BACKENDS", "make_backend"]


def make_backend(spec: ModelSpec, *, cache_dir: Path, device: Optional[str] = None,
                 strict_checkpoints: bool = False) -> Backend:
    """The backend for a registry entry. Cheap: models load on first use, not here.

    `cache_dir` is the harness cache (builtin tiny models are built under
    `cache_dir/builtin/`); `device` overrides the default ("cuda" when available);
    `strict_checkpoints` makes a processor that differs from its checkpoint snapshot an
    error instead of a warning (hf only; see hf_preflight.py).
    """
    if spec.backend == "hf":
        from harness.backends.hf import HFBackend

        return HFBackend(spec, cache_dir=Path(cache_dir), device=device, strict_checkpoints=strict_checkpoints)
    if spec.backend == "openai":  # `device` does not apply: the server decides
        try:
            import openai  # noqa: F401
        except ImportError as exc:
            raise HarnessError(
                f"model {spec.name!r}: backend 'openai' needs the openai package: pip install 'openai>=1.40'"
            ) from exc
        from harness.backends.openai_backend import OpenAIBackend

        return OpenAIBackend(spec, cache_dir=Path(cache_dir))
    known = ", ".join(repr(b) for b in KNOWN_BACKENDS)
    raise HarnessError(f"model {spec.name!r}: unknown backend {spec.backend!r} (known: {known})")
