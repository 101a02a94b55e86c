"""Pooled vision embeddings of an in-process transformers VLM (finding 5).

The study looked at t-SNE plots of pooled image features; here the same features feed a
cross-validated probe. Which features (`[embedding_separability] features`):

- "selected" (default): what the language model's projector receives, as the model itself
  selects it. LLaVA / LLaVA-NeXT: the hidden layer `vision_feature_layer` (−2 for the study's
  checkpoints), without the CLS token when `vision_feature_select_strategy` is "default".
  Gemma-3: the tower's output after its `post_layernorm`. Other towers: their last output.
- "projector": the projector's output, the image tokens the language model reads (the
  study pooled Gemma's projected image features; this reproduces that).
- "hidden": the raw hidden layer `layer` of the tower (the suite's choice before issue 12:
  for Gemma-3 the last layer before `post_layernorm`, for LLaVA a layer the LM may not read).

LLaVA-NeXT embeds its first tile (the whole image, resized). Pooling: mean, max, or cls
(the CLS token, where the features keep one; else mean).
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


FEATURES = ("selected", "projector", "hidden")


def _owner(model, name: str):
    for owner in (model, getattr(model, "model", None)):
        part = getattr(owner, name, None) if owner is not None else None
        if part is not None:
            return part
    return None


def image_features(model, tower, pixels, *, features: str, layer: int):
    """(batch, tokens, width) features of one batch of pixels, and whether a CLS token leads them."""
    has_cls = "clip" in type(tower).__name__.lower()
    if features == "hidden":
        return tower(pixel_values=pixels, output_hidden_states=True).hidden_states[layer], has_cls
    config = model.config
    select = getattr(config, "vision_feature_layer", None)
    if select is None:  # Gemma-3 and plain towers: the output after the tower's final norm
        states = tower(pixel_values=pixels).last_hidden_state
    else:
        hidden = tower(pixel_values=pixels, output_hidden_states=True).hidden_states
        layers = [select] if isinstance(select, int) else list(select)
        drop_cls = getattr(config, "vision_feature_select_strategy", "default") == "default"
        states = torch_cat([hidden[i][:, 1:] if drop_cls else hidden[i] for i in layers])
        has_cls = has_cls and not drop_cls
    if features == "projector":
        projector = _owner(model, "multi_modal_projector")
        if projector is None:
            raise NotImplementedError(f"{type(model).__name__} exposes no multi_modal_projector")
        return projector(states), False
    return states, has_cls


def torch_cat(parts):
    import torch

    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=-1)


def embed_images(model, processor, images: list, *, layer: int = -1, pooling: str = "mean",
                 features: str = "selected", batch_size: int = 16) -> np.ndarray:
    """(n_images, width) float32 embeddings, batched, in inference mode."""
    import torch

    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
    if features not in FEATURES:
        raise ValueError(f"features must be one of {FEATURES}, got {features!r}")
    tower = vision_tower(model)
    chunks = []
    for start in range(0, len(images), batch_size):
        pixels = processor.image_processor(images=images[start:start + batch_size], return_tensors="pt")["pixel_values"]
        if pixels.ndim == 5:  # LLaVA-NeXT tiles: the first tile is the whole image, resized
            pixels = pixels[:, 0]
        pixels = pixels.to(device=tower.device, dtype=tower.dtype)
        with torch.inference_mode():
            states, has_cls = image_features(model, tower, pixels, features=features, layer=layer)
        chunks.append(pool(states, pooling, has_cls).float().cpu().numpy())
    width = chunks[0].shape[1] if chunks else 0
    return np.concatenate(chunks, axis=0) if chunks else np.zeros((0, width), dtype=np.float32)
