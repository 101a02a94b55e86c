"""Pooled vision-encoder embeddings of an in-process transformers VLM (finding 5).

The study only looked at t-SNE plots of mean-pooled vision-tower states; here the same
states feed a cross-validated probe. The layer and pooling are configurable
(`[embedding_separability]` in thresholds.toml) because the last layer of a vision tower
is not always the one the language model reads.
"""

from __future__ import annotations

import numpy as np

POOLINGS = ("mean", "cls", "max")


def vision_tower(model):
    """The vision encoder of a LLaVA / LLaVA-NeXT / Gemma-3 style model."""
    for owner in (model, getattr(model, "model", None)):
        tower = getattr(owner, "vision_tower", None) if owner is not None else None
        if tower is not None:
            return tower
    raise NotImplementedError(f"{type(model).__name__} exposes no vision_tower")


def pool(hidden, pooling: str, has_cls: bool):
    """(batch, tokens, width) -> (batch, width). 'cls' falls back to mean without a CLS token."""
    if pooling == "max":
        return hidden.max(dim=1).values
    if pooling == "cls" and has_cls:
        return hidden[:, 0]
    return hidden.mean(dim=1)


def embed_images(model, processor, images: list, *, layer: int = -1, pooling: str = "mean",
                 batch_size: int = 16) -> np.ndarray:
    """(n_images, width) float32 embeddings, batched, in inference mode."""
    import torch

    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
    tower = vision_tower(model)
    has_cls = "clip" in type(tower).__name__.lower()
    chunks = []
    for start in range(0, len(images), batch_size):
        pixels = processor.image_processor(images=images[start:start + batch_size], return_tensors="pt")["pixel_values"]
        if pixels.ndim == 5:  # LLaVA-NeXT tiles: the first tile is the whole image, resized
            pixels = pixels[:, 0]
        pixels = pixels.to(device=tower.device, dtype=tower.dtype)
        with torch.inference_mode():
            states = tower(pixel_values=pixels, output_hidden_states=True).hidden_states[layer]
        chunks.append(pool(states, pooling, has_cls).float().cpu().numpy())
    width = chunks[0].shape[1] if chunks else 0
    return np.concatenate(chunks, axis=0) if chunks else np.zeros((0, width), dtype=np.float32)
