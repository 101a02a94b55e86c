"""Each image's prefix computed once per model, not once per prompt (issue 24).

Why: the suite asks a dozen closed-form prompts about every image, and the HF backend
puts the image first, so every prompt about one image starts with the same tokens: the
template's head and the image's tokens, nearly the whole sequence at the checkpoints' real
geometry (LLaVA-v1.6-Mistral-7B: 2,928 image tokens of a 3,011-token prompt). Without
reuse each prompt pays for the vision tower and the prefill of that prefix again.

How: the requests of a batch that share an image and a system prompt are encoded together
(one processor call, left-padded; each row's own tokens are its unmasked ones; the image
processor's outputs come from the backend's per-image cache), their common token prefix is
found, and the model runs once on the first row's prefix with its image (vision tower,
projector, prefill), keeping its KV cache. Each prompt's own suffix is then
generated from a copy of that cache, with `generate` given the full token ids, so only the
suffix is computed. Suffixes of different lengths share one batch: each row is the prefix,
then padding masked out, then its suffix; the positions come from the attention mask, so a
row's suffix sits at the positions it has unpadded. Where a sliding window is shorter than
the sequence (Gemma-3's local layers count the masked slots too) rows are batched only
with suffixes of their own length, which needs no padding at all.

Same answers: the greedy answers equal those of the plain path (harness/tests/
test_prefix_reuse.py for the LLaVA, LLaVA-NeXT and Gemma-3 families; bench/prefix.py at
the checkpoints' geometry); the store keys do not change, since the computation is the
same. Where the prefix cannot be reused (the common prefix does not hold every image token,
e.g. a template that puts the text first; an unknown architecture; any error), the batch
goes the plain way and `notes` says so once.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from typing import Callable, Optional

# Model types whose positions follow the attention mask in generate (checked by the tests):
# their suffixes of different lengths may share a batch, padded between prefix and suffix.
PADDED_SUFFIXES = frozenset({"llava", "llava_next", "gemma3", "mistral", "llama"})
# A shared prefix shorter than this goes the plain way (the backend's `prefix_min_tokens`):
# on the organism's 20-60-token prompts the extra forward pass and cache copy cost more
# than they save (its CI run took 576 s instead of 352 s with every prefix shared).
PREFIX_MIN_TOKENS = 128
# Inputs laid out along the sequence: cut to the prefix for its forward pass.
SEQUENCE_INPUTS = ("input_ids", "attention_mask", "token_type_ids", "mm_token_type_ids")


class PrefixUnavailable(Exception):
    """This batch's prompts cannot share their image prefix; the reason is the message."""


class PrefixReuse:
    """Prefix reuse for one HF backend (see the module docstring); `generate` returns the
    batch's (text, hit the cap) pairs, or raises PrefixUnavailable."""

    def __init__(self, backend):
        self.backend = backend
        self.notes: list[str] = []
        self.prefixes = 0  # prefixes computed (images × systems), for the benchmark and tests
        self.reused = 0  # prompts generated from a shared prefix
        # False once a prefix came out shorter than prefix_min_tokens: the model's prompts are
        # short (its image tokens are few), so later batches go the plain way whole, in one call
        self.worth = True

    def note_once(self, reason: str) -> None:
        line = f"prefix reuse off for a batch, answers computed the plain way: {reason}"
        if line not in self.notes:
            self.notes.append(line)

    def generate(self, reqs, images, encode: Callable, plain: Callable) -> list[tuple[str, bool]]:
        """Groups by (image, system); a group of one goes `plain`, the others share a prefix."""
        if not self.worth:
            return plain(reqs, images)
        groups: "OrderedDict[tuple, list[int]]" = OrderedDict()
        for i, r in enumerate(reqs):
            groups.setdefault((r.image_key, r.system), []).append(i)
        out: list[Optional[tuple[str, bool]]] = [None] * len(reqs)
        for rows in groups.values():
            group = [reqs[i] for i in rows]
            results = plain(group, images) if len(group) == 1 else self._shared(group, images, encode, plain)
            for i, res in zip(rows, results):
                out[i] = res
        return out  # type: ignore[return-value]

    # ------------------------------------------------------------------ one image's prompts
    def _shared(self, group, images, encode: Callable, plain: Callable) -> list[tuple[str, bool]]:
        import torch

        backend = self.backend
        model, tokenizer = backend._model, backend._tokenizer
        batch = encode(group, images)  # one processor call, left-padded: each row's own ids are its unmasked ones
        keep = batch["attention_mask"].bool()
        ids = [batch["input_ids"][i][keep[i]] for i in range(len(group))]
        length = _common_prefix(ids)
        if length < backend.prefix_min_tokens:  # too short to pay for its own forward pass and cache copy
            self.worth = False
            return plain(group, images)
        image_token = _image_token_id(model.config)
        if image_token is None:
            raise PrefixUnavailable(f"{type(model).__name__} names no image token id in its config")
        last_image = max(int((x == image_token).nonzero().max()) if (x == image_token).any() else -1 for x in ids)
        if last_image < 0 or last_image >= length:
            raise PrefixUnavailable("the prompts about one image do not share all of its tokens in their common "
                                    "prefix (does the chat template put the image after the text?)")
        config = backend._generation_config(group[0].max_new_tokens)
        with torch.inference_mode():
            prefix = _first_row_prefix(batch, keep[0], length, len(group))
            cache = model(**prefix, use_cache=True, logits_to_keep=1).past_key_values
            self.prefixes += 1
            results: list[Optional[tuple[str, bool]]] = [None] * len(group)
            for rows in self._suffix_batches(model.config, ids, length, config.max_new_tokens):
                texts = self._suffixes([ids[i] for i in rows], length, cache, config, tokenizer)
                for i, res in zip(rows, texts):
                    results[i] = res
        self.reused += len(group)
        return results  # type: ignore[return-value]

    def _suffix_batches(self, config, ids, length: int, max_new_tokens: int) -> list[list[int]]:
        """Rows generated together: all of them, or (a sliding window shorter than the
        sequence, or an architecture not known to take positions from the mask) rows of
        one suffix length."""
        longest = max(len(x) for x in ids)
        window = _sliding_window(config)
        padded_ok = (getattr(config, "model_type", None) in PADDED_SUFFIXES
                     and (window is None or longest + max_new_tokens <= window))
        if padded_ok:
            return [list(range(len(ids)))]
        by_length: "OrderedDict[int, list[int]]" = OrderedDict()
        for i, x in enumerate(ids):
            by_length.setdefault(len(x), []).append(i)
        return list(by_length.values())

    def _suffixes(self, ids, length: int, cache, config, tokenizer) -> list[tuple[str, bool]]:
        import torch

        from .hf_batch import hit_token_cap

        width = max(len(x) for x in ids)
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        rows, masks = [], []
        for x in ids:
            gap = width - len(x)
            rows.append(torch.cat([x[:length], x.new_full((gap,), pad), x[length:]]))
            masks.append(torch.cat([x.new_ones(length), x.new_zeros(gap), x.new_ones(len(x) - length)]))
        device = self.backend._model.device
        shared = copy.deepcopy(cache)
        if len(ids) > 1:
            shared.batch_repeat_interleave(len(ids))
        out = self.backend._model.generate(input_ids=torch.stack(rows).to(device),
                                           attention_mask=torch.stack(masks).to(device),
                                           past_key_values=shared, generation_config=config)
        new_tokens = out[:, width:]
        texts = [t.strip() for t in tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]
        cut = hit_token_cap(new_tokens.tolist(), config.eos_token_id, config.max_new_tokens)
        return list(zip(texts, cut))


def _first_row_prefix(batch, keep, length: int, rows: int) -> dict:
    """The first row's inputs, unpadded and cut to the prefix: sequence inputs by its mask,
    per-row inputs (pixel values, image sizes: one image per row) by their first entry."""
    out = {}
    for name, value in batch.items():
        if name in SEQUENCE_INPUTS:
            out[name] = value[0][keep][:length].unsqueeze(0)
        elif hasattr(value, "shape") and value.shape and value.shape[0] == rows:
            out[name] = value[:1]
        else:
            raise PrefixUnavailable(f"input {name!r} of shape {tuple(getattr(value, 'shape', ()))} is not one "
                                    "entry per row")
    return out


def _common_prefix(ids) -> int:
    """Tokens all rows share at the start, leaving every row at least one token of its own
    (generate needs one uncached token to start from)."""
    shortest = min(len(x) for x in ids)
    length = shortest - 1
    first = ids[0]
    for i in range(shortest - 1):
        if any(int(x[i]) != int(first[i]) for x in ids[1:]):
            length = i
            break
    return length


def _image_token_id(config) -> Optional[int]:
    for name in ("image_token_id", "image_token_index"):
        value = getattr(config, name, None)
        if isinstance(value, int):
            return value
    return None


def _sliding_window(config) -> Optional[int]:
    text = getattr(config, "text_config", None) or config
    window = getattr(text, "sliding_window", None)
    layer_types = getattr(text, "layer_types", None)
    if not window or (layer_types is not None and "sliding_attention" not in layer_types):
        return None
    return int(window)
