"""Builders of tiny random-weight vision-language models, one per family the study uses.

The harness must be testable without downloading anything, so these builders make real
transformers checkpoints (LLaVA, LLaVA-NeXT, Gemma-3) that are small enough to build,
save, load and generate on a CPU in about a second. They are saved with
`save_pretrained` and loaded back by `HFBackend` through the same `from_pretrained` path
as a downloaded checkpoint, so the tests exercise the code real models take: the
processor's own chat template, its image-token expansion, left padding and batching.

Everything is a pure function of (family, seed): the tokenizer is trained in memory on a
fixed word list and the weights come from a seeded initialiser, so two builds give
byte-identical safetensors and identical generations (the fingerprint tests rely on it).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from pathlib import Path

from harness.core import HarnessError
from harness.organism.chat_templates import chat_template as _chat_template

# Weight init draws from torch's global RNG; builds in threads of one process must not
# interleave their draws (that would break determinism), so they take turns.
_BUILD_LOCK = threading.Lock()

TINY_FAMILIES: tuple[str, ...] = ("llava", "llava_next", "gemma3")

_BUILTIN_NAMES: dict[str, str] = {
    "tiny-llava": "llava",
    "tiny-llava-next": "llava_next",
    "tiny-gemma3": "gemma3",
}

# Geometry shared by all families: 32-px images cut into 8-px patches (4 x 4 = 16).
IMAGE_SIZE = 32
PATCH_SIZE = 8
WIDTH = 32
LAYERS = 2
# LLaVA-NeXT tiles: the base image plus up to a 2 x 2 grid of 32-px crops.
GRID_PINPOINTS = [[32, 32], [32, 64], [64, 32], [64, 64]]
# Gemma-3 pools the 4 x 4 patch grid down to 2 x 2 soft tokens per image.
GEMMA_TOKENS_PER_IMAGE = 4
# A larger initialiser spread than the usual 0.02 makes the random logits less flat, so
# greedy decoding is not decided by float round-off (batch-invariance tests need that).
INIT_RANGE = 0.2
_VOCAB_SIZE = 2048  # the corpus saturates at about 1.7k tokens

# The words the tiny tokenizer is trained on: answers the parsers look for, medical
# vocabulary from the task prompts, and the words of the chat templates.
_WORDS = """
yes no Yes No YES NO A B C D a b option options answer answers answering one word only
normal abnormal tumor tumour lesion lesions mass masses benign malignant cancer carcinoma
pneumonia consolidation opacity infiltrate effusion chest lung lungs x-ray xray radiograph
brain mri scan scans ct ultrasound skin dermatoscopy dermatoscopic mole nevus melanoma
histopathology histology tissue patch patches breast invasive ductal idc cells cell nuclei
image images picture photo shows show showing shown present absent presence absence sign
signs finding findings diagnosis diagnose diagnostic healthy disease diseased evidence
is are was were be been the a an this that these those of in on at to for with without
and or not any there here it its does do did can could would should may might must will
what which who where when why how please describe description look looking see seen
patient patients clinical clinician doctor radiologist pathologist dermatologist expert
you your i me my we our they their he she his her them us user assistant model system
question questions reply respond response single letter choose choice select either
uncertain unsure unclear cannot determine sorry refuse hard difficult possible likely
irregular border borders asymmetry color colour diameter dark bright contrast edema
enhancing enhancement hyperintense hypointense region regions area areas left right
upper lower central peripheral small large size shape round oval spot spots texture
increased decreased density dense focal diffuse pattern structure structures features
medical medicine specialist specialists report reports based on following given
INST USER ASSISTANT start end turn of image soft token
0 1 2 3 4 5 6 7 8 9 10 . , : ; ? ! ( ) [ ] - / '
"""


def builtin_family(name: str) -> str:
    """The family behind a builtin model name ("tiny-llava" -> "llava")."""
    try:
        return _BUILTIN_NAMES[name]
    except KeyError:
        known = ", ".join(sorted(_BUILTIN_NAMES))
        raise HarnessError(f"unknown builtin model {name!r}; known: {known}") from None


def builtin_names() -> tuple[str, ...]:
    """All builtin model names, for error messages and registries."""
    return tuple(_BUILTIN_NAMES)


def parameter_count(model) -> int:
    """Number of parameters of a torch module (shared tensors counted once)."""
    seen: set[int] = set()
    total = 0
    for p in model.parameters():
        if id(p) not in seen:
            seen.add(id(p))
            total += p.numel()
    return total


# --------------------------------------------------------------------------- tokenizer

# Family-specific special tokens, in id order (ids 0.. are assigned in this order).
_SPECIALS = {
    "llava": {"pad": "<pad>", "bos": "<s>", "eos": "</s>", "extra": {"image_token": "<image>"}},
    "gemma3": {
        "pad": "<pad>",
        "bos": "<bos>",
        "eos": "<eos>",
        "extra": {
            "boi_token": "<start_of_image>",
            "eoi_token": "<end_of_image>",
            "image_token": "<image_soft_token>",
            "sot_token": "<start_of_turn>",
            "eot_token": "<end_of_turn>",
        },
    },
}
_SPECIALS["llava_next"] = _SPECIALS["llava"]


def _train_tokenizer(family: str):
    """Train a byte-level BPE in memory and wrap it as a transformers fast tokenizer.

    Byte-level BPE can encode any text (no unknown tokens), so real prompts from the
    suite round-trip even though the vocabulary is tiny. Like the real checkpoints, the
    tokenizer prepends BOS itself; the Gemma-3 chat template also writes BOS, which the
    backend must not double (see HFBackend).
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    sp = _SPECIALS[family]
    specials = [sp["pad"], sp["bos"], sp["eos"], *sp["extra"].values()]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=_VOCAB_SIZE,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    words = _WORDS.split()
    # Each word with and without a leading space and capitalised, so that common
    # answers ("Yes", " no", " tumor") become single tokens, as in real vocabularies.
    variants = [v for w in words for v in (w, " " + w, w.capitalize(), " " + w.capitalize())]
    tok.train_from_iterator(variants, trainer=trainer)
    bos_id = tok.token_to_id(sp["bos"])
    tok.post_processor = processors.TemplateProcessing(
        single=f"{sp['bos']} $A", pair=f"{sp['bos']} $A $B", special_tokens=[(sp["bos"], bos_id)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=sp["bos"],
        eos_token=sp["eos"],
        pad_token=sp["pad"],
        extra_special_tokens=dict(sp["extra"]),
        chat_template=_chat_template(family),
        model_max_length=512,
    )


# ------------------------------------------------------------------------ model configs


# Settings common to the CLIP (LLaVA) and SigLIP (Gemma-3) vision towers.
_VISION_KWARGS = dict(
    hidden_size=WIDTH,
    intermediate_size=2 * WIDTH,
    num_hidden_layers=LAYERS,
    num_attention_heads=2,
    image_size=IMAGE_SIZE,
    patch_size=PATCH_SIZE,
)


def _clip_config():
    from transformers import CLIPVisionConfig

    return CLIPVisionConfig(**_VISION_KWARGS, projection_dim=WIDTH, initializer_range=INIT_RANGE)


def _text_kwargs(tokenizer) -> dict:
    """Settings common to the three tiny decoders."""
    return dict(
        vocab_size=len(tokenizer),
        hidden_size=WIDTH,
        intermediate_size=2 * WIDTH,
        num_hidden_layers=LAYERS,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=512,
        initializer_range=INIT_RANGE,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )


def _llava_processor_kwargs(tokenizer) -> dict:
    """Processor settings shared by LLaVA and LLaVA-NeXT."""
    return dict(
        tokenizer=tokenizer,
        patch_size=PATCH_SIZE,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,  # the CLS token that the "default" strategy drops
        chat_template=tokenizer.chat_template,
    )


def _build_llava(tokenizer):
    from transformers import CLIPImageProcessorPil, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor

    config = LlavaConfig(
        vision_config=_clip_config(),
        text_config=LlamaConfig(**_text_kwargs(tokenizer)),
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        vision_feature_select_strategy="default",
        vision_feature_layer=-1,
    )
    crop = {"height": IMAGE_SIZE, "width": IMAGE_SIZE}
    image_processor = CLIPImageProcessorPil(size={"shortest_edge": IMAGE_SIZE}, crop_size=crop)
    processor = LlavaProcessor(image_processor=image_processor, **_llava_processor_kwargs(tokenizer))
    return LlavaForConditionalGeneration(config), processor


def _build_llava_next(tokenizer):
    from transformers import LlavaNextConfig, LlavaNextForConditionalGeneration, LlavaNextImageProcessorPil
    from transformers import LlavaNextProcessor, MistralConfig

    config = LlavaNextConfig(
        vision_config=_clip_config(),
        text_config=MistralConfig(**_text_kwargs(tokenizer), head_dim=WIDTH // 2, sliding_window=None),
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        image_grid_pinpoints=GRID_PINPOINTS,
        vision_feature_select_strategy="default",
        vision_feature_layer=-1,
    )
    image_processor = LlavaNextImageProcessorPil(
        size={"shortest_edge": IMAGE_SIZE},
        crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
        image_grid_pinpoints=GRID_PINPOINTS,  # must match the model's, or token counts disagree
    )
    processor = LlavaNextProcessor(image_processor=image_processor, **_llava_processor_kwargs(tokenizer))
    return LlavaNextForConditionalGeneration(config), processor


def _build_gemma3(tokenizer):
    import torch
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration, Gemma3ImageProcessorPil
    from transformers import Gemma3Processor, Gemma3TextConfig, SiglipVisionConfig

    vision = SiglipVisionConfig(**_VISION_KWARGS)
    text = Gemma3TextConfig(
        **_text_kwargs(tokenizer),
        head_dim=WIDTH // 2,
        query_pre_attn_scalar=WIDTH // 2,
        sliding_window=16,
        layer_types=["sliding_attention", "full_attention"],
    )
    ids = tokenizer.convert_tokens_to_ids
    config = Gemma3Config(
        vision_config=vision,
        text_config=text,
        mm_tokens_per_image=GEMMA_TOKENS_PER_IMAGE,
        image_token_index=ids("<image_soft_token>"),
        boi_token_index=ids("<start_of_image>"),
        eoi_token_index=ids("<end_of_image>"),
        initializer_range=INIT_RANGE,
    )
    image_processor = Gemma3ImageProcessorPil(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE})
    processor = Gemma3Processor(
        image_processor, tokenizer, image_seq_length=GEMMA_TOKENS_PER_IMAGE, chat_template=tokenizer.chat_template
    )
    model = Gemma3ForConditionalGeneration(config)
    # The image projection starts at zero (fine before pre-training, fatal here: every
    # image would map to the same soft tokens and the model would ignore its input).
    proj = model.model.multi_modal_projector.mm_input_projection_weight
    with torch.no_grad():
        proj.normal_(0.0, INIT_RANGE)
    return model, processor


_BUILDERS = {"llava": _build_llava, "llava_next": _build_llava_next, "gemma3": _build_gemma3}


# ------------------------------------------------------------------------------- build


def _generation_defaults(model, tokenizer) -> None:
    """Greedy, short generation by default; Gemma-3 also stops at end-of-turn."""
    gc = model.generation_config
    gc.do_sample = False
    gc.max_new_tokens = 8
    gc.pad_token_id = tokenizer.pad_token_id
    gc.bos_token_id = tokenizer.bos_token_id
    eos = [tokenizer.eos_token_id]
    if "<end_of_turn>" in tokenizer.get_vocab():
        eos.append(tokenizer.convert_tokens_to_ids("<end_of_turn>"))
    gc.eos_token_id = eos if len(eos) > 1 else eos[0]


def build_tiny_model_objects(family: str, seed: int = 0):
    """(model, processor) of a tiny random-weight model, in memory; see build_tiny_model.

    The caller's torch RNG state is left as it was (the seed is applied in a fork).
    """
    import torch

    if family not in _BUILDERS:
        raise HarnessError(f"unknown tiny model family {family!r}; known: {', '.join(TINY_FAMILIES)}")
    tokenizer = _train_tokenizer(family)
    with _BUILD_LOCK, torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model, processor = _BUILDERS[family](tokenizer)
    _generation_defaults(model, tokenizer)
    return model.eval(), processor


def build_tiny_model(family: str, out_dir: Path, seed: int = 0) -> Path:
    """Build a tiny model of `family` with weights from `seed` and save it to `out_dir`.

    Returns `out_dir`. An existing complete folder is reused as is (builds are a pure
    function of family and seed). The folder is written in a sibling temp dir and
    renamed into place, so concurrent pytest-xdist workers never see a half-written
    checkpoint; the loser of a rename race simply discards its copy.
    """
    out_dir = Path(out_dir)
    if (out_dir / "config.json").is_file():
        return out_dir
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    model, processor = build_tiny_model_objects(family, seed)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        model.save_pretrained(tmp, safe_serialization=True)
        processor.save_pretrained(tmp)
        try:
            os.rename(tmp, out_dir)
        except OSError:
            if not (out_dir / "config.json").is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out_dir
