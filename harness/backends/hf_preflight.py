"""What the HF backend checks and repairs in a checkpoint's processor before its first answer.

Why (issue 12): the study's checkpoints reach a GPU machine from the hub, where a template
edited upstream, a processor file dropped by a community conversion or a transformers
upgrade can change the prompt or the pixels with no error at all (LLaVA-Med conversions
render the off-format LLaVA-1.5 prompt the study was criticised for). So, when a model is
loaded and before its weights are read:

1. the registry entry's replacements are applied: `chat_template` (a template file) and
   `image_processor` (settings; `image_processor_type` rebuilds it as that class, e.g.
   LLaVA-Med's pad-to-square `LlavaImageProcessor` in place of a centre-cropping CLIP one);
2. what the model's own config decides is repaired in the processor (`patch_size`,
   `vision_feature_select_strategy`, `num_additional_image_tokens`; see
   checkpoint_snapshot.repair_from_model_config);
3. the processor is compared with the checkpoint's snapshot under fixtures/checkpoints/
   (drift is a warning naming what changed, or an error with `--strict-checkpoints`), and
   one rendered prompt is checked against the family's known form: a prompt of no known
   form stops the model with an error instead of running off-format.

Models without a snapshot (the organism, the tiny test models, a user's own checkpoint)
get steps 1 and 2 only. Every note is returned, so the run can record what was changed.
"""

from __future__ import annotations

import warnings
from typing import Optional

from harness.core import HarnessError, ModelSpec

PREFLIGHT_QUESTION = "Is there a tumor in this image?"


class CheckpointDrift(UserWarning):
    """A live processor differs from its checkpoint snapshot (the prompt or pixels may differ)."""


def apply_entry_overrides(processor, spec: ModelSpec) -> list[str]:
    """Step 1: the registry entry's chat template and image-processor settings."""
    notes = []
    if spec.chat_template:
        from pathlib import Path

        text = Path(spec.chat_template).read_text(encoding="utf-8")
        processor.chat_template = text
        tokenizer = getattr(processor, "tokenizer", None)
        if tokenizer is not None:
            tokenizer.chat_template = text
        notes.append(f"chat template replaced by {spec.chat_template}")
    if spec.image_processor:
        current = getattr(processor, "image_processor", None)
        if current is None:
            raise HarnessError(f"model {spec.name!r}: image_processor settings given, but the processor has none")
        processor.image_processor = rebuilt_image_processor(current, dict(spec.image_processor))
        notes.append("image processor settings replaced: " + ", ".join(
            f"{k}={v!r}" for k, v in sorted(spec.image_processor.items())))
    return notes


def rebuilt_image_processor(current, overrides: dict):
    """The image processor with `overrides` applied; `image_processor_type` names the class."""
    import transformers

    settings = {k: v for k, v in current.to_dict().items() if not k.startswith("_")}
    settings.update(overrides)
    kind = settings.pop("image_processor_type", None) or type(current).__name__
    settings.pop("processor_class", None)
    cls = getattr(transformers, kind, None)
    if cls is None:
        raise HarnessError(f"image_processor_type {kind!r} is not a transformers image processor class")
    return cls(**settings)


def snapshot_for(spec: ModelSpec):
    """The entry's checkpoint snapshot: the one it names, else the one named like it, else None."""
    from harness.backends.checkpoint_snapshot import load_snapshot, snapshot_names

    name = spec.snapshot or (spec.name if spec.name in snapshot_names() else None)
    return load_snapshot(name) if name else None


def rendered_prompt(processor, text_only: bool) -> str:
    """One user turn, image first, as the HF backend renders it (no system message)."""
    content = PREFLIGHT_QUESTION if text_only else [{"type": "image"}, {"type": "text", "text": PREFLIGHT_QUESTION}]
    return processor.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True,
                                         tokenize=False)


def check_against_snapshot(processor, spec: ModelSpec, *, text_only: bool, strict: bool,
                           snapshot=None) -> list[str]:
    """Step 3: drift from the snapshot (warned, or raised when `strict`), prompt form (raised)."""
    from harness.backends.checkpoint_snapshot import processor_drift, prompt_form_problems

    snapshot = snapshot if snapshot is not None else snapshot_for(spec)
    if snapshot is None:
        return []
    drift = processor_drift(processor, snapshot)
    pinned = snapshot.identity.get("revision")
    if pinned and spec.revision and spec.revision != pinned:
        drift.append(f"revision {spec.revision!r} is not the snapshot's {pinned!r}")
    if drift:
        message = (f"model {spec.name!r}: its processor differs from the checkpoint snapshot "
                   f"fixtures/checkpoints/{snapshot.name}/: " + "; ".join(drift))
        if strict:
            raise HarnessError(message + " (--strict-checkpoints)")
        warnings.warn(message, CheckpointDrift, stacklevel=2)
    form = snapshot.identity.get("prompt_form")
    if form and not text_only:
        problems = prompt_form_problems(form, rendered_prompt(processor, text_only))
        if problems:
            raise HarnessError(f"model {spec.name!r}: off-format prompt, not run: " + "; ".join(problems)
                               + f". Name a template file with `chat_template = ...` in its registry entry "
                                 f"(fixtures/checkpoints/{snapshot.name}/ shows the expected form).")
    return [f"snapshot drift: {d}" for d in drift]


def prepare_processor(processor, spec: ModelSpec, model_config: Optional[dict], *, text_only: bool,
                      strict: bool = False) -> list[str]:
    """Steps 1-3 on a freshly loaded processor; the notes of what was changed or differs."""
    from harness.backends.checkpoint_snapshot import repair_from_model_config

    notes = apply_entry_overrides(processor, spec)
    if model_config and not text_only:
        notes += repair_from_model_config(processor, model_config)
    notes += check_against_snapshot(processor, spec, text_only=text_only, strict=strict)
    return notes

