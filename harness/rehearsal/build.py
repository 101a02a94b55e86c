"""Random-weight models at a study checkpoint's real geometry, saved as the checkpoint is.

From a snapshot (fixtures/checkpoints/<name>/): `full_config.json` (the checkpoint's
config.json, completed from public copies: SOURCE.md says where each value came from), the
processor and image-processor files, the chat template and the special tokens. The model
keeps every size that decides what a run computes (hidden sizes, heads, vocabulary, vision
tower, projector, image size, patching, anyres grid, image tokens) and, by default, only
`depth` layers of each stack so that it runs on two CPU cores; `full_depth` keeps them all
(for a GPU). `shrink` (for CI) narrows the widths and heads, never the image geometry.

The folder has the checkpoint's file layout: config.json, generation_config.json,
model.safetensors (bf16, as published), the processor files and a tokenizer with the true
special-token ids (tokenizer.py). LLaVA-Med gets its community conversion's layout instead:
a chat template that cannot render an image message and a centre-cropping CLIP processor without
`patch_size`, which the registry entry's overrides and the preflight's repairs must fix, as they
must on the real conversion.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Optional

from harness.backends.checkpoint_snapshot import Snapshot, load_snapshot

from .tokenizer import true_id_tokenizer

FULL_CONFIG = "full_config.json"
# What the LLaVA-Med conversion ships instead of a usable template (conversion.json): a
# Mistral-Instruct template that writes each message's content as a string, so a message
# of image + text parts renders as the list's text, with no image placeholder. (This
# project's own wording of that behaviour, not the conversion's file.)
TEXT_ONLY_MISTRAL_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}"
    "{{ '[INST] ' }}{{ message['content'] }}{{ ' [/INST]' }}{% else %}{{ message['content'] }}{{ eos_token }}"
    "{% endif %}{% endfor %}")
# CI widths: small enough for seconds per item, with the image geometry untouched.
CI_SHRINK = {"text": {"hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 4, "num_key_value_heads": 2,
                      "head_dim": 16},
             "vision": {"hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 4}}


def full_config(snapshot: Snapshot) -> dict:
    path = snapshot.folder / FULL_CONFIG
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no completed config for {snapshot.name} (see its SOURCE.md)")
    return json.loads(path.read_text(encoding="utf-8"))


def rehearsal_config(snapshot: Snapshot, *, depth: Optional[int] = 1, shrink: Optional[dict] = None) -> dict:
    """The checkpoint's config with `depth` layers per stack (None: all of them) and, with
    `shrink`, narrower stacks; the vision geometry and the vocabulary never change."""
    config = copy.deepcopy(full_config(snapshot))
    text, vision = config["text_config"], config["vision_config"]
    if depth is not None:
        for stack in (text, vision):
            stack["num_hidden_layers"] = min(int(depth), int(stack["num_hidden_layers"]))
        if isinstance(text.get("layer_types"), list):  # Gemma-3: one attention kind per layer
            text["layer_types"] = text["layer_types"][: text["num_hidden_layers"]]
    for part, stack in (("text", text), ("vision", vision)):
        for key, value in ((shrink or {}).get(part) or {}).items():
            if key in stack or key in ("head_dim",):
                stack[key] = value
    if shrink and "projection_dim" in vision:
        vision["projection_dim"] = vision["hidden_size"]
    return config


def _conversion_layout(snapshot: Snapshot) -> bool:
    """LLaVA-Med: the rehearsal folder mirrors the community conversion, not the snapshot's repairs."""
    return bool(snapshot.identity.get("repaired"))


def save_processor_files(snapshot: Snapshot, folder: Path, config: dict, as_shipped: bool = True) -> None:
    """Tokenizer, processor and image-processor files, and the chat template, as the checkpoint
    ships them (`as_shipped`; for LLaVA-Med: as its conversion ships them), else as the
    snapshot's repaired files (what a server such as vLLM needs to be given)."""
    ids = dict(snapshot.identity["special_token_ids"])
    for token, token_id in {"<start_of_turn>": 105, "<end_of_turn>": 106}.items():  # Gemma-3's turn markers
        if token in snapshot.identity.get("extra_tokens", ()) and token not in ids:
            ids[token] = token_id
    tokenizer = true_id_tokenizer(ids, int(config["text_config"]["vocab_size"]), snapshot.special_tokens,
                                  tuple(snapshot.identity.get("extra_tokens", ())))
    tokenizer.save_pretrained(folder)
    processor_config = dict(snapshot.processor_config)
    preprocessor = dict(snapshot.preprocessor)
    if as_shipped and _conversion_layout(snapshot):  # what the conversion ships (fixtures/checkpoints/<name>/conversion.json)
        for key in ("patch_size", "vision_feature_select_strategy", "num_additional_image_tokens"):
            processor_config.pop(key, None)
        preprocessor.update({"image_processor_type": "CLIPImageProcessor", "do_pad": False})
        (folder / "chat_template.jinja").write_text(TEXT_ONLY_MISTRAL_TEMPLATE, encoding="utf-8")
    else:
        template = snapshot.chat_template
        (folder / "chat_template.jinja").write_text(template, encoding="utf-8")
    (folder / "processor_config.json").write_text(json.dumps(processor_config, indent=2), encoding="utf-8")
    (folder / "preprocessor_config.json").write_text(json.dumps(preprocessor, indent=2), encoding="utf-8")
    generation = snapshot.generation_config
    if generation:
        (folder / "generation_config.json").write_text(json.dumps(generation, indent=2), encoding="utf-8")


def build_rehearsal_model(name: str, folder: Path, *, depth: Optional[int] = 1, shrink: Optional[dict] = None,
                          seed: int = 0, config_edit=None, device: str = "cpu") -> Path:
    """Build and save the random-weight model of checkpoint `name` into `folder`.

    `config_edit(config_dict)` may change the config before the model is built (the
    rehearsal's deliberately broken cases). On a GPU (`device` "cuda...") the weights are
    drawn there in bf16: drawing 7 B float32 weights on a CPU takes minutes."""
    import torch
    from transformers import AutoConfig, AutoModelForImageTextToText

    snapshot = load_snapshot(name)
    config_dict = rehearsal_config(snapshot, depth=depth, shrink=shrink)
    if config_edit is not None:
        config_edit(config_dict)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model_type = config_dict.pop("model_type")
    config = AutoConfig.for_model(model_type, **config_dict)
    torch.manual_seed(seed)
    if device.startswith("cuda"):
        with torch.device(device):
            model = AutoModelForImageTextToText.from_config(config, dtype=torch.bfloat16)
    else:
        model = AutoModelForImageTextToText.from_config(config, dtype=torch.float32).to(torch.bfloat16)
    model.save_pretrained(folder, safe_serialization=True)
    del model
    save_processor_files(snapshot, folder, config_dict)
    return folder
