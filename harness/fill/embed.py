"""The embedding stage (finding 5): pooled vision-encoder vectors, cached per image.

Vectors are stored as raw float32 bytes in the response store, keyed by the model's
identity, the image content hash and the layer/pooling choice, so a rerun or a
threshold change never re-encodes an image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core import ImageItem, NotApplicable
from .closed_form import BackendHandle, _load_images
from ..store import ResponseStore, cache_key


class NoEncoder(NotApplicable):
    """The backend exposes no vision encoder (endpoints): the embedding tests skip."""


@dataclass
class Embeddings:
    image_ids: list[str]
    vectors: np.ndarray  # (n, d)
    is_pos: np.ndarray  # (n,) bool
    errors: dict


def embedding_key(identity: dict, item: ImageItem, layer: int, pooling: str, features: str = "hidden") -> str:
    """The layer decides only raw hidden features; "selected" and "projector" follow the model."""
    what = f"layer={layer}" if features == "hidden" else f"features={features}"
    return cache_key(identity, stage="embed", prompt=f"{what};pooling={pooling}",
                     image_sha=item.sha256, settings={})


def fill_embeddings(handle: BackendHandle, identity: dict, items: list[ImageItem], store: ResponseStore,
                    *, layer: int, pooling: str, features: str = "hidden", batch_size: int = 64) -> Embeddings:
    """Embeddings for every loadable image; images that fail to load are listed in errors."""
    keys = {item.image_id: embedding_key(identity, item, layer, pooling, features) for item in items}
    found = store.get_vectors(list(keys.values()))
    missing = [item for item in items if keys[item.image_id] not in found]
    errors: dict = {}
    if missing:
        if handle.spec.backend != "hf":
            raise NoEncoder(f"backend {handle.spec.backend!r} exposes no vision encoder")
        for start in range(0, len(missing), batch_size):
            chunk = missing[start : start + batch_size]
            images, chunk_errors = _load_images(chunk)
            errors.update(chunk_errors)
            loaded = [item for item in chunk if item.image_id in images]
            if not loaded:
                continue
            try:
                vectors = handle.get().embed([images[i.image_id] for i in loaded], layer=layer, pooling=pooling,
                                             features=features)
            except NotImplementedError as exc:
                raise NoEncoder(str(exc)) from None
            handle.calls += len(loaded)
            rows = [(keys[i.image_id], handle.spec.name, i.image_id, v) for i, v in zip(loaded, vectors)]
            store.put_vectors(rows)
            found.update({r[0]: np.asarray(r[3], dtype=np.float32) for r in rows})
    ok = [item for item in items if keys[item.image_id] in found]
    vectors = np.stack([found[keys[i.image_id]] for i in ok]) if ok else np.zeros((0, 0), dtype=np.float32)
    return Embeddings([i.image_id for i in ok], vectors, np.array([i.label == "positive" for i in ok]), errors)
