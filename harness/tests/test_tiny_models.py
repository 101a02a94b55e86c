"""Tests of the tiny random-weight model builders (harness/organism/tiny.py).

The builders stand in for real checkpoints everywhere a test needs a model, so what
matters is that they are real transformers checkpoints (safetensors, processor, chat
template), that they are deterministic, and that concurrent builds cannot collide.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.organism import tiny
from harness.backends.identity import folder_fingerprint
from harness.core import HarnessError

MODEL_CLASSES = {
    "llava": "LlavaForConditionalGeneration",
    "llava_next": "LlavaNextForConditionalGeneration",
    "gemma3": "Gemma3ForConditionalGeneration",
}


@pytest.fixture(scope="session")
def built(tmp_path_factory) -> dict[str, Path]:
    """One seed-0 build of each family, shared by the tests of this module."""
    root = tmp_path_factory.mktemp("tiny")
    return {f: tiny.build_tiny_model(f, root / f, seed=0) for f in tiny.TINY_FAMILIES}


@pytest.mark.parametrize("family", tiny.TINY_FAMILIES)
def test_build_writes_a_safetensors_checkpoint(built, family):
    folder = built[family]
    names = {p.name for p in folder.iterdir()}
    assert {"config.json", "model.safetensors", "processor_config.json", "tokenizer.json"} <= names
    assert not any(n.endswith(".bin") for n in names)
    config = json.loads((folder / "config.json").read_text())
    assert config["architectures"] == [MODEL_CLASSES[family]]
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")], "temp dir left behind"


@pytest.mark.parametrize("family", tiny.TINY_FAMILIES)
def test_same_seed_same_bytes_other_seed_other_weights(built, family, tmp_path):
    again = tiny.build_tiny_model(family, tmp_path / "again", seed=0)
    other = tiny.build_tiny_model(family, tmp_path / "other", seed=1)
    assert folder_fingerprint(again) == folder_fingerprint(built[family])
    assert folder_fingerprint(other) != folder_fingerprint(built[family])
    # Only the weights differ between seeds, not the tokenizer or configs.
    assert (other / "tokenizer.json").read_bytes() == (again / "tokenizer.json").read_bytes()
    assert (other / "model.safetensors").read_bytes() != (again / "model.safetensors").read_bytes()


def test_build_does_not_disturb_the_callers_rng(tmp_path):
    import torch

    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    tiny.build_tiny_model_objects("llava", seed=7)
    assert torch.equal(torch.rand(3), expected)


def test_existing_folder_is_reused(built):
    before = folder_fingerprint(built["llava"])
    assert tiny.build_tiny_model("llava", built["llava"], seed=5) == built["llava"]
    assert folder_fingerprint(built["llava"]) == before


def test_losing_a_concurrent_build_race_keeps_the_winners_folder(tmp_path, monkeypatch):
    """Another worker finishes the same folder while we build: we keep theirs, no litter."""
    out = tmp_path / "m"
    real = tiny.build_tiny_model_objects

    def rival_finishes_first(family, seed=0):
        objects = real(family, seed)
        monkeypatch.setattr(tiny, "build_tiny_model_objects", real)
        tiny.build_tiny_model(family, out, seed)  # the "other worker"
        return objects

    monkeypatch.setattr(tiny, "build_tiny_model_objects", rival_finishes_first)
    assert tiny.build_tiny_model("llava", out) == out
    assert (out / "model.safetensors").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["m"]


def test_builtin_names_map_to_families():
    assert tiny.builtin_family("tiny-llava") == "llava"
    assert tiny.builtin_family("tiny-llava-next") == "llava_next"
    assert tiny.builtin_family("tiny-gemma3") == "gemma3"
    assert set(map(tiny.builtin_family, tiny.builtin_names())) == set(tiny.TINY_FAMILIES)
    with pytest.raises(HarnessError, match="tiny-llava"):
        tiny.builtin_family("tiny-nope")
    with pytest.raises(HarnessError, match="unknown tiny model family"):
        tiny.build_tiny_model_objects("qwen")


@pytest.mark.parametrize("family", tiny.TINY_FAMILIES)
def test_models_are_tiny(family):
    model, _ = tiny.build_tiny_model_objects(family)
    n = tiny.parameter_count(model)
    assert 10_000 < n < 500_000
    assert n <= sum(p.numel() for p in model.state_dict().values())


@pytest.mark.parametrize("family", tiny.TINY_FAMILIES)
def test_no_weight_matrix_is_constant(family):
    """A zero-initialised projection would make the model blind to its image (Gemma-3's is)."""
    model, _ = tiny.build_tiny_model_objects(family)
    constant = [n for n, p in model.named_parameters() if p.ndim >= 2 and p.min() == p.max()]
    assert not constant


@pytest.mark.parametrize("family", ["llava", "gemma3"])
def test_tokenizer_has_whole_word_answers_and_one_bos(family):
    _, processor = tiny.build_tiny_model_objects(family)
    tok = processor.tokenizer
    for word in (" yes", " no", " Yes", " No", " A", " B", " normal", " tumor", " lesion", " image"):
        assert len(tok.tokenize(word)) == 1, word
    ids = tok("Is it normal?")["input_ids"]
    assert ids[0] == tok.bos_token_id and ids.count(tok.bos_token_id) == 1
    assert tok.decode(ids, skip_special_tokens=True) == "Is it normal?"


@pytest.mark.parametrize(
    "family, expected",
    [
        ("llava", "Be brief.\nUSER: <image>\nIs it normal? ASSISTANT: No</s>USER: Sure? ASSISTANT:"),
        ("llava_next", "[INST] Be brief.\n\n<image>\nIs it normal? [/INST] No</s>[INST] Sure? [/INST]"),
        (
            "gemma3",
            "<bos><start_of_turn>user\nBe brief.\n\n<start_of_image>Is it normal?<end_of_turn>\n"
            "<start_of_turn>model\nNo<end_of_turn>\n<start_of_turn>user\nSure?<end_of_turn>\n<start_of_turn>model\n",
        ),
    ],
)
def test_chat_template_renders_all_roles(built, family, expected):
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(built[family])  # the saved template round-trips
    messages = [
        {"role": "system", "content": [{"type": "text", "text": "Be brief."}]},
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Is it normal?"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "No"}]},
        {"role": "user", "content": "Sure?"},
    ]
    rendered = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert rendered == expected
