"""What identifies a model's outputs, computed without loading the model.

The response store keys on this, so a fully cached grid never loads weights. A hub
id is identified by its pinned revision; a local folder (including the built-in tiny
models) by a fingerprint of its files, so retraining or rebuilding invalidates
exactly the answers that model gave. An endpoint model adds its servers' `/v1/models`
entry (asked on every run, warm ones too), so two servers serving other weights under
one name never share answers.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Optional

from ..core import ModelSpec, sha256_file

_FULL_HASH_LIMIT = 64 << 20  # larger files are identified by size and mtime, not content


def builtin_dir(cache_dir: Path, name: str) -> Path:
    return Path(cache_dir) / "builtin" / name


def resolve_local_path(spec: ModelSpec, cache_dir: Path) -> Optional[Path]:
    """The folder the model loads from: the shipped organism, or a built-in tiny random-weight
    model (built into the cache on first use)."""
    if spec.model.startswith("builtin:"):
        name = spec.model.split(":", 1)[1]
        if name.startswith("organism-"):
            from ..organism.shipped import resolve_builtin  # shipped in fixtures/organism, checked, never trained

            return Path(resolve_builtin(name))
        target = builtin_dir(cache_dir, name)
        if not (target / "config.json").is_file():
            from ..organism.tiny import build_tiny_model, builtin_family

            build_tiny_model(builtin_family(name), target)
        return target
    p = Path(spec.model).expanduser()
    return p if p.is_dir() else None


def folder_fingerprint(folder: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        if rel.startswith(".") or "/." in rel:
            continue
        size = path.stat().st_size
        digest = sha256_file(path) if size <= _FULL_HASH_LIMIT else f"{size}:{os.stat(path).st_mtime_ns}"
        h.update(f"{rel}\0{digest}\n".encode())
    return h.hexdigest()


def model_identity(spec: ModelSpec, cache_dir: Path) -> dict:
    """Backend, model id, revision and (for local folders) a content fingerprint; for an
    endpoint, what its servers say they serve (harness.backends.served_identity)."""
    identity = {"backend": spec.backend, "model": spec.model, "revision": spec.revision, "fingerprint": None}
    if spec.backend == "openai":
        from .served_identity import served_identity

        identity["served"] = served_identity(spec)
    if spec.backend == "hf":
        local = resolve_local_path(spec, cache_dir)
        if local is not None:
            identity["fingerprint"] = folder_fingerprint(local)
        identity["dtype"] = effective_dtype(spec)
        # what the registry entry replaces in the checkpoint's processor decides the prompt
        # and the pixels: part of the identity only when set, so other keys stay as they were
        if spec.chat_template:
            identity["chat_template_sha256"] = sha256_file(Path(spec.chat_template))
        if spec.image_processor:
            identity["image_processor"] = json.loads(json.dumps(spec.image_processor, sort_keys=True))
    return identity


_DTYPE_ALIASES = {"bf16": "bfloat16", "fp16": "float16", "half": "float16", "fp32": "float32", "float": "float32"}


def effective_dtype(spec: ModelSpec) -> str:
    """The dtype the HF backend will actually use: bf16 on a GPU, fp32 on the CPU, unless set."""
    if spec.dtype and spec.dtype != "auto":
        return _DTYPE_ALIASES.get(spec.dtype, spec.dtype)
    import torch

    return "bfloat16" if torch.cuda.is_available() else "float32"


def identity_digest(identity: dict) -> str:
    """A short, stable name for a model identity (what baseline.toml records)."""
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:16]
