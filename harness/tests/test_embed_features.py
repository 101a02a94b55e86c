"""The image features the probe reads are the ones the language model reads (issue 12).

Checked on the tiny LLaVA, LLaVA-NeXT and Gemma-3 models (real transformers classes,
random weights) against transformers' own `get_image_features`, the function the models
call on their way to the language model: "projector" must equal its output, pooled;
"selected" must be its input (LLaVA: layer `vision_feature_layer`, CLS dropped under the
"default" strategy; Gemma-3: after `post_layernorm`); "hidden" stays the raw layer.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from harness.backends import make_backend
from harness.config.registry import load_registry
from harness.data.sources import load_synthetic
from harness.fill.embed import embedding_key

REGISTRY = load_registry()
TASK = REGISTRY.tasks["brain_tumor"]


@pytest.fixture(scope="module")
def images():
    return [item.load() for item in load_synthetic(TASK, 2, 3)]


def _backend(name, cache):
    backend = make_backend(REGISTRY.models[name], cache_dir=cache, device="cpu")
    backend.load()
    return backend


def _pixels(backend, images):
    pixels = backend.processor.image_processor(images=images, return_tensors="pt")["pixel_values"]
    return pixels[:, 0] if pixels.ndim == 5 else pixels


def _reference_projected(backend, images) -> np.ndarray:
    """transformers' own path to the language model, mean-pooled per image."""
    model = backend.model.model
    with torch.inference_mode():
        out = model.get_image_features(pixel_values=_pixels(backend, images))
    feats = out.pooler_output
    rows = [f.reshape(-1, f.shape[-1]).mean(0) for f in feats]
    return torch.stack(rows).float().numpy()


@pytest.mark.parametrize("name", ["tiny-llava", "tiny-gemma3"])
def test_projector_features_are_what_the_model_hands_the_language_model(name, images, tmp_path_factory):
    backend = _backend(name, tmp_path_factory.mktemp("c"))
    ours = backend.embed(images, features="projector")
    np.testing.assert_allclose(ours, _reference_projected(backend, images), rtol=1e-5, atol=1e-6)


def test_llava_selected_features_follow_its_feature_layer_and_strategy(images, tmp_path_factory):
    backend = _backend("tiny-llava", tmp_path_factory.mktemp("c"))
    config = backend.model.config
    tower = backend.model.model.vision_tower
    with torch.inference_mode():
        hidden = tower(pixel_values=_pixels(backend, images), output_hidden_states=True).hidden_states
    states = hidden[config.vision_feature_layer]
    if config.vision_feature_select_strategy == "default":
        states = states[:, 1:]
    np.testing.assert_allclose(backend.embed(images, features="selected"), states.mean(1).numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(backend.embed(images, features="hidden", layer=-1), hidden[-1].mean(1).numpy(),
                               rtol=1e-5, atol=1e-6)
    # the study's checkpoints read layer -2 without CLS: a different vector from the raw last layer
    config.vision_feature_layer, config.vision_feature_select_strategy = -2, "default"
    try:
        np.testing.assert_allclose(backend.embed(images, features="selected"), hidden[-2][:, 1:].mean(1).numpy(),
                                   rtol=1e-5, atol=1e-6)
    finally:
        backend.close()


def test_gemma_selected_features_come_after_the_post_layernorm(images, tmp_path_factory):
    backend = _backend("tiny-gemma3", tmp_path_factory.mktemp("c"))
    tower = backend.model.model.vision_tower
    with torch.inference_mode():
        hidden = tower(pixel_values=_pixels(backend, images), output_hidden_states=True).hidden_states[-1]
        normed = tower.post_layernorm(hidden)
    selected = backend.embed(images, features="selected")
    np.testing.assert_allclose(selected, normed.mean(1).numpy(), rtol=1e-5, atol=1e-6)
    assert not np.allclose(selected, backend.embed(images, features="hidden"))


def test_llava_next_embeds_its_whole_image_tile(images, tmp_path_factory):
    backend = _backend("tiny-llava-next", tmp_path_factory.mktemp("c"))
    assert backend.embed(images, features="projector").shape == (len(images), backend.model.config.text_config.hidden_size)


def test_the_store_key_names_the_features_and_keeps_old_hidden_keys(tmp_path):
    item = load_synthetic(TASK, 1, 0)[0]
    identity = {"backend": "hf", "model": "m"}
    keys = {f: embedding_key(identity, item, -1, "mean", f) for f in ("selected", "projector", "hidden")}
    assert len(set(keys.values())) == 3
    assert keys["hidden"] == embedding_key(identity, item, -1, "mean")  # stores filled before issue 12 stay valid
    assert embedding_key(identity, item, -2, "mean", "selected") == keys["selected"]  # layer applies to hidden only
    with pytest.raises(ValueError, match="features must be one of"):
        _backend("tiny-llava", Path(tmp_path)).embed([item.load()], features="lm")
