"""A tokenizer with a checkpoint's vocabulary size and its special tokens at their true ids.

The real vocabularies are not shipped (Mistral's tokenizer.json is about 1.8 MB, Gemma-3's
about 33 MB, and neither can be downloaded here). What a rehearsal needs of a tokenizer is
what the model and the processor rely on: every id below the model's vocabulary size, the
special tokens (BOS, EOS, PAD, the image token, Gemma's turn and image-boundary tokens) at the
ids the checkpoint's config names, one BOS prepended as the real tokenizers do, and any text
encodable. So: a byte-level BPE with no merges (one token per byte: prompts are longer in
tokens than with the real vocabulary, by about four times), the special tokens at their ids,
and unused filler tokens up to the vocabulary size. What differs from the real tokenizer:
only how ordinary text splits into tokens, which no verdict of the rehearsal reads.
"""

from __future__ import annotations

from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors


def true_id_tokenizer(special_ids: dict[str, int], vocab_size: int, special_tokens: dict, extra_tokens=()):
    """A transformers fast tokenizer: `special_ids` maps each special token to its id,
    `special_tokens` names the roles (bos_token, eos_token, pad_token, unk_token, image_token...)."""
    from transformers import PreTrainedTokenizerFast

    if max(special_ids.values()) >= vocab_size:
        raise ValueError(f"special token ids {special_ids} do not fit a vocabulary of {vocab_size}")
    vocab: dict[str, int] = dict(special_ids)
    taken = set(vocab.values())
    free = (i for i in range(vocab_size) if i not in taken)
    for ch in pre_tokenizers.ByteLevel.alphabet():
        if ch not in vocab:
            vocab[ch] = next(free)
    for i in free:  # the rest of the vocabulary: tokens no text encodes to
        vocab[f"<unused_{i}>"] = i
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=special_tokens.get("unk_token")))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in special_ids])
    bos = special_tokens.get("bos_token")
    if bos:
        tok.post_processor = processors.TemplateProcessing(single=f"{bos} $A", pair=f"{bos} $A $B",
                                                           special_tokens=[(bos, special_ids[bos])])
    core = ("unk_token", "bos_token", "eos_token", "pad_token")
    named = {k: v for k, v in special_tokens.items() if v}
    extra = {k: v for k, v in named.items() if k not in core}
    return PreTrainedTokenizerFast(tokenizer_object=tok, extra_special_tokens=extra,
                                   additional_special_tokens=list(extra_tokens) or None,
                                   **{k: named.get(k) for k in core})
