"""The organism's tokenizer: a byte-level BPE trained in memory on the organism's text.

The vocabulary is learnt from every phrase the organism is trained on or asked (the
general phrase banks, the medical descriptions, the registry's prompt variants,
describe prompts, diagnoser templates and task fields) plus tiny.py's word list, so
that common words are single tokens and sequences stay short (training time scales
with them). Byte-level BPE still encodes any text, so unseen prompts never fail.
Special tokens and chat templates are tiny.py's, i.e. the LLaVA-1.5 and Gemma-3 turn
formats the HF backend renders through `apply_chat_template`.
"""

from __future__ import annotations

import re

from harness.organism import tiny

from . import general_data, med_data, scenes

_TEXT_WEIGHT = 8
# Turn markers of the chat templates (tiny.py), so that they are short token runs too.
_TEMPLATE_TEXT = ("USER: ", " ASSISTANT:", "<start_of_turn>user\n", "<end_of_turn>\n", "<start_of_turn>model\n")
_WORD_RE = re.compile(r"[A-Za-z]+|[0-9]|[^\sA-Za-z0-9]")


def registry_texts(registry) -> list[str]:
    """Every prompt the suite renders for the registry's tasks, and the task fields."""
    from harness.config.prompts import render_text

    texts = []
    for task in registry.tasks.values():
        texts += [task.modality, task.disease, task.positive_name, task.negative_name, task.hints]
        texts += [v.render(task) for v in registry.variants.values()]
        texts += [render_text(t, task) for t in registry.describe_prompts.values()]
        texts += [render_text(t, task, description="") for t in registry.diagnoser_templates.values()]
    return texts


def corpus(registry) -> list[str]:
    """All text the tokenizer is trained on."""
    texts = general_data.phrase_corpus() + med_data.med_phrases(list(registry.tasks.values()))
    texts += registry_texts(registry)
    texts += list(scenes.STYLE_WORDS.values()) + list(scenes.TINTS) + list(scenes.SHAPES)
    texts += list(scenes.COLOURS) + list(scenes.BACKGROUNDS)
    texts += ["upper left", "upper right", "lower left", "lower right", "top", "bottom", "centre",
              "dark", "grey", "bright", "large", "small", "blurry", "round"]
    texts += [f"A {tone} {word} image with a {light} {size} spot in the upper left."
              for tone in ("dark", "grey", "bright") for word in scenes.STYLE_WORDS.values()
              for light in ("bright", "dark") for size in ("small", "large")]
    texts += list(_TEMPLATE_TEXT)
    texts.append(tiny._WORDS)
    return texts


def train_tokenizer(family: str, registry, vocab_size: int):
    """A PreTrainedTokenizerFast for `family` ("llava" or "gemma3") with its chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    sp = tiny._SPECIALS[family]
    specials = [sp["pad"], sp["bos"], sp["eos"], *sp["extra"].values()]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    words = sorted({w for text in corpus(registry) for w in _WORD_RE.findall(text)})
    # Each word alone, after a space, and capitalised, as in running text and answers.
    variants = [v for w in words for v in (w, " " + w, w.capitalize(), " " + w.capitalize())]
    # The running text, repeated, makes frequent words merge into single tokens first.
    tok.train_from_iterator(variants + corpus(registry) * _TEXT_WEIGHT, trainer=trainer)
    bos_id = tok.token_to_id(sp["bos"])
    tok.post_processor = processors.TemplateProcessing(
        single=f"{sp['bos']} $A", pair=f"{sp['bos']} $A $B", special_tokens=[(sp["bos"], bos_id)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=sp["bos"], eos_token=sp["eos"], pad_token=sp["pad"],
        extra_special_tokens=dict(sp["extra"]), chat_template=tiny._chat_template(family),
        model_max_length=1024,
    )
