"""The study's four real checkpoints, proven offline from their snapshots (issue 12).

No weights and no hub here, so each checkpoint's processor is rebuilt from the facts in
fixtures/checkpoints/<registry name>/ (its published chat template and processor files at
a pinned revision) with the real transformers processor classes and a stub tokenizer that
has the checkpoint's special tokens, and prompts go through HFBackend's own rendering and
encoding (image first, its one-BOS rule, its per-image preprocessing cache). What is
asserted is what the model would receive: the exact prompt text for a yes/no and an A/B
prompt of the suite, one BOS, no system block, the number and place of the image tokens
for a 512x384 image, and the pixels (resize / tile / pad / crop).

The expected strings and template hashes live here, not in the snapshot, so an edit of one
character of a snapshot's template (or an upstream change copied into it) fails a test.
Every test name contains "checkpoint": `pytest harness/tests -k checkpoint` runs them.
"""

from __future__ import annotations

import shutil
from functools import lru_cache

import numpy as np
import pytest

from harness.backends.checkpoint_snapshot import (
    attach_processor,
    build_processor,
    integrity_problems,
    load_snapshot,
    processor_drift,
    prompt_form_problems,
    repair_from_model_config,
    snapshot_names,
)
from harness.backends.hf import HFBackend
from harness.config.registry import load_registry
from harness.core import GenerationRequest, HarnessError

STUDY = ["llava-v1.6-mistral-7b", "llava-med-v1.5-mistral-7b", "gemma-3-4b-it", "medgemma-4b-it"]

# sha256 of each snapshot's template file, as collected (see its SOURCE.md).
EXPECTED_TEMPLATE_SHA256 = {
    "llava-v1.6-mistral-7b": "270208cd28fbf6bd40d2c180195dafdab84698dca72a5e0fc96025a4a8fcec44",
    "llava-med-v1.5-mistral-7b": "144bdd289691d65ee2fcf137818f59ad2a2ab8963f2b129404b54334aecdbffb",
    "gemma-3-4b-it": "7bcbbbff0f3521603f015bf6b2858f7f140f3a992f70664be427d2c48a9f09c2",
    "medgemma-4b-it": "7bcbbbff0f3521603f015bf6b2858f7f140f3a992f70664be427d2c48a9f09c2",
}

TASK = "pneumonia"
VARIANTS = ("abnormal", "choice_ab_oneword")  # a yes/no and an A/B prompt of fixtures/prompts.toml
QUESTION = {
    "abnormal": "Is there an abnormality in this chest X-ray image?",
    "choice_ab_oneword": "Which option best describes this chest X-ray image?\nA. pneumonia\nB. normal\n"
                         "Answer with a single letter.",
}
MISTRAL_INST = {
    "abnormal": "[INST] <image>\nIs there an abnormality in this chest X-ray image? [/INST]",
    "choice_ab_oneword": "[INST] <image>\nWhich option best describes this chest X-ray image?\nA. pneumonia\n"
                         "B. normal\nAnswer with a single letter. [/INST]",
}
GEMMA3 = {
    "abnormal": "<bos><start_of_turn>user\n<start_of_image>Is there an abnormality in this chest X-ray image?"
                "<end_of_turn>\n<start_of_turn>model\n",
    "choice_ab_oneword": "<bos><start_of_turn>user\n<start_of_image>Which option best describes this chest X-ray "
                         "image?\nA. pneumonia\nB. normal\nAnswer with a single letter.<end_of_turn>\n"
                         "<start_of_turn>model\n",
}
EXPECTED_PROMPT = {
    "llava-v1.6-mistral-7b": MISTRAL_INST,
    "llava-med-v1.5-mistral-7b": MISTRAL_INST,
    "gemma-3-4b-it": GEMMA3,
    "medgemma-4b-it": GEMMA3,
}

IMAGE_SIZE = (512, 384)  # width, height: a landscape image, as many X-rays and skin photos are
# What the processor turns the image placeholder into, and the pixel tensor it makes.
EXPANSION = {
    "llava-v1.6-mistral-7b": ("<image>", "<image>" * 2340),  # anyres: base 336 tile + 672x672 grid, unpadded
    "llava-med-v1.5-mistral-7b": ("<image>", "<image>" * 576),  # 24 x 24 patches of one 336 square
    "gemma-3-4b-it": ("<start_of_image>", "\n\n<start_of_image>" + "<image_soft_token>" * 256 + "<end_of_image>\n\n"),
    "medgemma-4b-it": ("<start_of_image>", "\n\n<start_of_image>" + "<image_soft_token>" * 256 + "<end_of_image>\n\n"),
}
PIXEL_SHAPE = {
    "llava-v1.6-mistral-7b": (1, 5, 3, 336, 336),
    "llava-med-v1.5-mistral-7b": (1, 3, 336, 336),
    "gemma-3-4b-it": (1, 3, 896, 896),
    "medgemma-4b-it": (1, 3, 896, 896),
}
BOS = {"llava-v1.6-mistral-7b": "<s>", "llava-med-v1.5-mistral-7b": "<s>",
       "gemma-3-4b-it": "<bos>", "medgemma-4b-it": "<bos>"}


# ----------------------------------------------------------------------------- helpers


@lru_cache(maxsize=None)
def _registry():
    return load_registry()


@lru_cache(maxsize=None)
def _processor(name: str):
    return build_processor(load_snapshot(name))


def _backend(name: str, tmp_path, processor=None) -> HFBackend:
    """The suite's HF backend for the registry entry, rendering with the snapshot's processor."""
    backend = HFBackend(_registry().models[name], cache_dir=tmp_path)
    return attach_processor(backend, processor if processor is not None else _processor(name))


def _prompt(variant: str) -> str:
    registry = _registry()
    return registry.variants[variant].render(registry.tasks[TASK])


def _request(variant: str) -> GenerationRequest:
    return GenerationRequest(prompt=_prompt(variant), image_key="img", max_new_tokens=8)


def _edge_image():
    """512x384 grey with a 16-px red bar at the left edge and a blue one at the right edge."""
    from PIL import Image

    pixels = np.full((IMAGE_SIZE[1], IMAGE_SIZE[0], 3), 128, dtype=np.uint8)
    pixels[:, :16] = (255, 0, 0)
    pixels[:, -16:] = (0, 0, 255)
    return Image.fromarray(pixels)


def _normalised(rgb, snapshot) -> np.ndarray:
    pre = snapshot.preprocessor
    return (np.asarray(rgb) / 255.0 - np.asarray(pre["image_mean"])) / np.asarray(pre["image_std"])


def _snapshot_check(name: str, snapshot, tmp_path) -> list[str]:
    """The check a snapshot must pass: its template is byte-identical to the collected one
    and renders the expected yes/no prompt through the suite's backend."""
    problems = integrity_problems(snapshot, EXPECTED_TEMPLATE_SHA256[name])
    try:
        processor = build_processor(snapshot, tokenizer=_processor(name).tokenizer)
    except HarnessError as exc:  # e.g. chat_template.json no longer has its key
        return problems + [str(exc)]
    try:
        rendered = _backend(name, tmp_path, processor).render_prompt(_request("abnormal"))
    except Exception as exc:  # a broken Jinja template
        return problems + [f"does not render: {type(exc).__name__}: {exc}"]
    if rendered != EXPECTED_PROMPT[name]["abnormal"]:
        problems.append(f"renders {rendered!r}")
    return problems


# ------------------------------------------------------------------------------- tests


def test_checkpoint_snapshots_cover_the_study():
    assert snapshot_names() == sorted(STUDY)


@pytest.mark.parametrize("name", STUDY)
def test_checkpoint_snapshot_is_pinned_and_sourced(name):
    snap = load_snapshot(name)
    spec = _registry().models[name]
    assert snap.identity["registry_name"] == name
    assert snap.identity["repo"] == spec.model
    assert spec.revision == snap.identity["revision"], "the registry pins the snapshot's revision"
    source = (snap.folder / "SOURCE.md").read_text()
    assert snap.identity["repo"] in source
    if snap.identity["revision"] is None:  # only where no public record of the commits exists
        assert snap.identity["revision_note"] and "not pinned" in source
    else:
        assert len(snap.identity["revision"]) == 40 and snap.identity["revision"] in source
    assert integrity_problems(snap, EXPECTED_TEMPLATE_SHA256[name]) == []


def test_checkpoint_llava_med_entry_is_the_studys_conversion():
    spec = _registry().models["llava-med-v1.5-mistral-7b"]
    assert spec.model == "wnkh/llava-med-v1.5-mistral-7b-hf"
    assert spec.base_model == "llava-v1.6-mistral-7b"
    alternative = load_snapshot("llava-med-v1.5-mistral-7b").identity["alternatives"][0]
    assert alternative["repo"] == "chaoyinshe/llava-med-v1.5-mistral-7b-hf" and len(alternative["revision"]) == 40


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("name", STUDY)
def test_checkpoint_prompt_renders_exactly(name, variant, tmp_path):
    backend = _backend(name, tmp_path)
    request = _request(variant)
    assert request.prompt == QUESTION[variant]
    rendered = backend.render_prompt(request)
    assert rendered == EXPECTED_PROMPT[name][variant]
    assert prompt_form_problems(load_snapshot(name).identity["prompt_form"], rendered) == []


@pytest.mark.parametrize("name", STUDY)
def test_checkpoint_one_bos_and_no_system_block(name, tmp_path):
    backend = _backend(name, tmp_path)
    requests = [_request(v) for v in VARIANTS]
    assert [m["role"] for m in backend.messages(requests[0])] == ["user"]
    for request in requests:
        text = backend.render_prompt(request)
        assert "<<SYS>>" not in text and "system" not in text and "USER:" not in text
    inputs = backend._encode(requests, {"img": _edge_image()})  # one left-padded batch, as the suite runs it
    tokenizer = backend._tokenizer
    bos = tokenizer.convert_tokens_to_ids(BOS[name])
    for row, mask in zip(inputs["input_ids"].tolist(), inputs["attention_mask"].tolist()):
        ids = [i for i, m in zip(row, mask) if m]
        assert ids.count(bos) == 1 and ids[0] == bos


@pytest.mark.parametrize("name", STUDY)
def test_checkpoint_image_token_count_and_placement(name, tmp_path):
    backend = _backend(name, tmp_path)
    for variant in VARIANTS:
        inputs = backend._encode([_request(variant)], {"img": _edge_image()})
        decoded = backend._tokenizer.decode(inputs["input_ids"][0])
        placeholder, expansion = EXPANSION[name]
        prompt = EXPECTED_PROMPT[name][variant]
        expected = prompt.replace(placeholder, expansion)
        if not prompt.startswith(BOS[name]):
            expected = BOS[name] + expected  # added by the tokenizer, as the real one does
        assert decoded == expected


@pytest.mark.parametrize("name", STUDY)
def test_checkpoint_pixel_preprocessing(name, tmp_path):
    snap = load_snapshot(name)
    backend = _backend(name, tmp_path)
    inputs = backend._encode([_request("abnormal")], {"img": _edge_image()})
    pixels = inputs["pixel_values"].numpy()
    assert pixels.shape == PIXEL_SHAPE[name]
    red, blue = _normalised((255, 0, 0), snap), _normalised((0, 0, 255), snap)
    if name == "llava-v1.6-mistral-7b":
        assert inputs["image_sizes"].tolist() == [[384, 512]]
        base = pixels[0, 0]  # the whole image resized to one 336 tile: both edge bars are in it
        np.testing.assert_allclose(base[:, 168, 2], red, atol=0.05)
        np.testing.assert_allclose(base[:, 168, -3], blue, atol=0.05)
    elif name == "llava-med-v1.5-mistral-7b":
        image = pixels[0]  # 512x384 padded to 512x512, then resized to 336: nothing cropped
        np.testing.assert_allclose(image[:, 168, 2], red, atol=0.05)
        np.testing.assert_allclose(image[:, 168, -3], blue, atol=0.05)
        pad = _normalised(tuple(int(255 * m) for m in snap.preprocessor["image_mean"]), snap)
        for row in (0, 20, -21, -1):  # bands of 42 rows above and below: the CLIP-mean colour
            np.testing.assert_allclose(image[:, row, 100], pad, atol=0.02)
    else:  # Gemma-3: the whole image resized to 896x896, no pan-and-scan crops
        assert snap.preprocessor["do_pan_and_scan"] is None
        out = backend._processor.image_processor([_edge_image()])
        assert list(out["num_crops"]) == [0]
        np.testing.assert_allclose(pixels[0, :, 448, 4], red, atol=0.05)
        np.testing.assert_allclose(pixels[0, :, 448, -5], blue, atol=0.05)


def test_checkpoint_llava_med_pads_where_a_clip_processor_crops():
    """The study's risk: a CLIP processor centre-crops a landscape image to 336 and cuts both
    edges off; the snapshot's settings pad it to a square first, as LLaVA-Med does."""
    snap = load_snapshot("llava-med-v1.5-mistral-7b")
    image_processor = _processor("llava-med-v1.5-mistral-7b").image_processor
    padded = np.asarray(image_processor([_edge_image()], return_tensors="np")["pixel_values"])[0]
    cropped = np.asarray(image_processor([_edge_image()], do_pad=False, return_tensors="np")["pixel_values"])[0]
    red = _normalised((255, 0, 0), snap)
    grey = _normalised((128, 128, 128), snap)
    np.testing.assert_allclose(padded[:, 168, 2], red, atol=0.05)
    np.testing.assert_allclose(cropped[:, 168, 2], grey, atol=0.05)  # the red bar is gone


def test_checkpoint_llava_med_template_follows_the_original_conversation():
    """template.jinja renders LLaVA-Med's mistral_instruct conversation: image first, the
    question stripped, a system message wrapped in the first [INST], an answer closed by </s>."""
    processor = _processor("llava-med-v1.5-mistral-7b")

    def render(messages):
        return processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

    def user(text, image=True):
        return {"role": "user", "content": ([{"type": "image"}] if image else []) + [{"type": "text", "text": text}]}

    assert render([user("  Is this normal?\n")]) == "[INST] <image>\nIs this normal? [/INST]"
    assert render([{"role": "user", "content": "Is this normal?"}]) == "[INST] Is this normal? [/INST]"
    assert render([{"role": "system", "content": [{"type": "text", "text": "Be brief."}]}, user("Q?")]) == (
        "[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\n<image>\nQ? [/INST]")
    assert render([user("Q?"), {"role": "assistant", "content": [{"type": "text", "text": "No."}]},
                   user("Sure?", image=False)]) == "[INST] <image>\nQ? [/INST] No. </s>[INST] Sure? [/INST]"


# A LLaVA-1.5 template as some conversions copy in: it renders without any error.
LLAVA_15_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] != 'system' %}{{ message['role'].upper() + ': ' }}{% endif %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>\n' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] + ' ' }}"
    "{% endfor %}{% endfor %}{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}")


def test_checkpoint_off_format_template_is_rejected(tmp_path):
    snap = load_snapshot("llava-med-v1.5-mistral-7b")
    processor = build_processor(snap, chat_template=LLAVA_15_TEMPLATE, tokenizer=_processor(snap.name).tokenizer)
    rendered = _backend(snap.name, tmp_path, processor).render_prompt(_request("abnormal"))
    assert rendered == "USER: <image>\nIs there an abnormality in this chest X-ray image? ASSISTANT:"
    problems = prompt_form_problems(snap.identity["prompt_form"], rendered)
    assert problems and any("LLaVA-1.5" in p for p in problems)
    assert any("chat template differs" in d for d in processor_drift(processor, snap))


def test_checkpoint_broken_conversion_settings_are_repaired_from_the_model_config(tmp_path):
    """patch_size missing (every request errors) and num_additional_image_tokens defaulted to
    0 (one image token short): both decided by the model config, and repaired from it."""
    snap = load_snapshot("llava-med-v1.5-mistral-7b")
    broken = build_processor(snap, processor_overrides={"patch_size": None, "num_additional_image_tokens": None},
                             tokenizer=_processor(snap.name).tokenizer)
    assert broken.patch_size is None and broken.num_additional_image_tokens == 0
    drift = processor_drift(broken, snap)
    assert any("patch_size" in d for d in drift) and any("num_additional_image_tokens" in d for d in drift)
    backend = _backend(snap.name, tmp_path, broken)
    with pytest.raises(TypeError):
        backend._encode([_request("abnormal")], {"img": _edge_image()}, use_cache=False)
    repairs = repair_from_model_config(broken, snap.model_config)
    assert len(repairs) == 2 and processor_drift(broken, snap) == []
    inputs = backend._encode([_request("abnormal")], {"img": _edge_image()}, use_cache=False)
    assert backend._tokenizer.decode(inputs["input_ids"][0]).count("<image>") == 576
    assert repair_from_model_config(broken, snap.model_config) == []  # nothing left to repair


@pytest.mark.parametrize("name", STUDY)
def test_checkpoint_live_processor_matches_its_snapshot(name):
    assert processor_drift(_processor(name), load_snapshot(name)) == []


def test_checkpoint_drift_names_what_changed():
    snap = load_snapshot("llava-v1.6-mistral-7b")
    changed = build_processor(snap, preprocessor_overrides={"image_grid_pinpoints": [[336, 672], [672, 336]]},
                              processor_overrides={"vision_feature_select_strategy": "full"},
                              tokenizer=_processor(snap.name).tokenizer)
    drift = processor_drift(changed, snap)
    assert len(drift) == 2
    assert any(d.startswith("image_processor.image_grid_pinpoints") for d in drift)
    assert any(d.startswith("processor.vision_feature_select_strategy") for d in drift)


# Where each template gets its one-character edit for the rendering check: inside the text
# every rendered prompt contains.
RENDERED_LITERAL = {
    "llava-v1.6-mistral-7b": "[/INST]",
    "llava-med-v1.5-mistral-7b": "[/INST]",
    "gemma-3-4b-it": "<start_of_turn>model",
    "medgemma-4b-it": "<start_of_turn>model",
}


@pytest.mark.parametrize("name", STUDY)
def test_checkpoint_template_mutation_is_caught(name, tmp_path):
    """Change one character of a copy of the snapshot's template: the check fails, whether the
    change alters the rendered prompt or not."""
    assert _snapshot_check(name, load_snapshot(name), tmp_path) == []
    original = load_snapshot(name).template_path.read_text(encoding="utf-8")
    literal = RENDERED_LITERAL[name]
    at = original.rindex(literal) + max(i for i, c in enumerate(literal) if c.isalnum())

    def letter_from(i: int) -> int:  # letters only: the JSON of a chat_template.json stays valid
        while not original[i].isalnum():
            i += 1
        return i

    positions = sorted({letter_from(k * len(original) // 6) for k in range(6)} | {at})
    assert len(positions) >= 5
    for position in positions:
        char = original[position]
        mutated = original[:position] + ("x" if char != "x" else "y") + original[position + 1:]
        root = tmp_path / str(position)
        shutil.copytree(load_snapshot(name).folder, root / name)
        (root / name / load_snapshot(name).template_path.name).write_text(mutated, encoding="utf-8")
        problems = _snapshot_check(name, load_snapshot(name, root=root), tmp_path)
        assert problems, f"a change at character {position} went unnoticed"
        if position == at:  # a letter of text every prompt contains: the rendering check sees it too
            assert any(p.startswith("renders ") for p in problems), problems
