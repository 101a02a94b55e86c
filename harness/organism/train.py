"""Encoding and the training loop shared by every organism model.

The one rule that matters: a model is trained on exactly the token sequence it will
see at test time. HFBackend renders a request with the processor's own chat template
(user content = [image, text], add_generation_prompt=True), lets the processor expand
the image placeholder, and decodes greedily; so here the prompt is rendered the same
way and the answer is what the same template writes for an assistant turn (" Yes</s>"
for LLaVA, "Yes<end_of_turn>" for Gemma-3), cut after the first stop token. Only the
answer tokens carry loss.

For speed the placeholder expansion is done on the string (as the processors do) and
the whole batch is tokenized at once; `Encoder.check` compares that fast path with the
processor itself on a sample, and the build fails if they ever differ.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .config import Stage
from .general_data import Example

_MARK = "\x00ANSWER\x00"


@dataclass(frozen=True)
class Encoded:
    """Token ids of prompt + answer; loss on ids[n_prompt:]."""

    ids: tuple[int, ...]
    n_prompt: int
    image: Optional[int]


class Encoder:
    """Turns Examples into Encoded sequences, rendered as HFBackend renders prompts."""

    def __init__(self, processor, image_size: int = 64):
        from PIL import Image

        self.processor = processor
        self.tokenizer = getattr(processor, "tokenizer", processor)
        self.text_only = self.tokenizer is processor
        self._dummy = Image.new("RGB", (image_size, image_size))
        self._prefix, self._stop = self._answer_wrap()
        self._placeholder, self._expansion = self._image_expansion()

    def messages(self, prompt: str, with_image: bool) -> list[dict]:
        if self.text_only:
            return [{"role": "user", "content": prompt}]
        parts = [{"type": "image"}] if with_image else []
        return [{"role": "user", "content": parts + [{"type": "text", "text": prompt}]}]

    def render(self, prompt: str, with_image: bool) -> str:
        return self.processor.apply_chat_template(
            self.messages(prompt, with_image), add_generation_prompt=True, tokenize=False)

    def _answer_wrap(self) -> tuple[str, list[int]]:
        """(text before the answer, stop token ids after it), read off the chat template."""
        msgs = self.messages("q", False)
        reply = [{"type": "text", "text": _MARK}] if not self.text_only else _MARK
        full = self.processor.apply_chat_template(msgs + [{"role": "assistant", "content": reply}], tokenize=False)
        gen = self.render("q", False)
        if not full.startswith(gen):
            raise RuntimeError("chat template: the assistant turn does not extend the generation prompt")
        prefix, suffix = full[len(gen):].split(_MARK)
        stops = self._stop_ids()
        ids = self.tokenizer(suffix, add_special_tokens=False)["input_ids"]
        cut = next(i for i, t in enumerate(ids) if t in stops)
        return prefix, ids[: cut + 1]

    def _stop_ids(self) -> set[int]:
        tok = self.tokenizer
        stops = {tok.eos_token_id}
        if "<end_of_turn>" in tok.get_vocab():
            stops.add(tok.convert_tokens_to_ids("<end_of_turn>"))
        return stops

    def _image_expansion(self) -> tuple[Optional[str], Optional[str]]:
        """What the processor writes in place of the image placeholder."""
        if self.text_only:
            return None, None
        if hasattr(self.processor, "full_image_sequence"):  # Gemma-3
            return self.processor.boi_token, self.processor.full_image_sequence
        token = self.processor.image_token  # LLaVA: the image token, repeated
        ids = self._processor_ids(self.render("q", True))[0]
        n = ids.count(self.tokenizer.convert_tokens_to_ids(token))
        return token, token * n

    def _special_flag(self, rendered: Sequence[str]) -> bool:
        """HFBackend's rule: no tokenizer BOS when the template already wrote one."""
        bos = self.tokenizer.bos_token
        return not (bos and all(r.startswith(bos) for r in rendered))

    def _processor_ids(self, rendered: str) -> tuple[list[int], Optional[list[int]]]:
        kwargs = {"text": [rendered], "add_special_tokens": self._special_flag([rendered])}
        if not self.text_only and self._placeholder_in(rendered):
            kwargs["images"] = [[self._dummy]]
        out = self.processor(**kwargs)
        tti = out.get("token_type_ids")
        return list(out["input_ids"][0]), (list(tti[0]) if tti is not None else None)

    def _placeholder_in(self, rendered: str) -> bool:
        token = getattr(self.processor, "boi_token", None) or getattr(self.processor, "image_token", None)
        return token is not None and token in rendered

    def encode(self, examples: Sequence[Example]) -> list[Encoded]:
        """Prompt ids (fast path) + answer ids + stop, for every example."""
        rendered = [self.render(e.prompt, e.image is not None) for e in examples]
        if self._placeholder is not None:
            rendered = [r.replace(self._placeholder, self._expansion) for r in rendered]
        flag = self._special_flag(rendered)
        prompts = self.tokenizer(rendered, add_special_tokens=flag)["input_ids"]
        answers = self.tokenizer([self._prefix + e.answer for e in examples], add_special_tokens=False)["input_ids"]
        return [Encoded(tuple(p) + tuple(a) + tuple(self._stop), len(p), e.image)
                for p, a, e in zip(prompts, answers, examples)]

    def check(self, examples: Sequence[Example]) -> None:
        """Raise if the fast path differs from the processor on any of `examples`."""
        for e, enc in zip(examples, self.encode(examples)):
            ids, _ = self._processor_ids(self.render(e.prompt, e.image is not None))
            if list(enc.ids[: enc.n_prompt]) != ids:
                raise RuntimeError(f"organism encoder disagrees with the processor on {e.prompt!r}")

    def token_types(self, ids: torch.Tensor) -> Optional[torch.Tensor]:
        """Gemma-3's token_type_ids (1 on image soft tokens), as its processor returns them."""
        image_token = getattr(self.processor, "image_token", None)
        if self.text_only or not hasattr(self.processor, "full_image_sequence"):
            return None
        return (ids == self.tokenizer.convert_tokens_to_ids(image_token)).long()


def pixel_bank(processor, images: Sequence) -> torch.Tensor:
    """The processor's pixel values of every bank image, computed once."""
    out = []
    for start in range(0, len(images), 512):
        out.append(processor.image_processor(list(images[start:start + 512]), return_tensors="pt")["pixel_values"])
    return torch.cat(out) if out else torch.zeros(0)


def collate(batch: Sequence[Encoded], pad_id: int, pixels: Optional[torch.Tensor], encoder: Encoder) -> dict:
    """Right-padded ids (positions as in left-padded generation), labels on answers only."""
    length = max(len(e.ids) for e in batch)
    ids = torch.full((len(batch), length), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), length), -100, dtype=torch.long)
    for i, e in enumerate(batch):
        ids[i, : len(e.ids)] = torch.tensor(e.ids)
        labels[i, e.n_prompt: len(e.ids)] = torch.tensor(e.ids[e.n_prompt:])
    inputs = {"input_ids": ids}
    if pixels is not None and batch[0].image is not None:
        inputs["pixel_values"] = pixels[[e.image for e in batch]]
        tti = encoder.token_types(ids)
        if tti is not None:
            inputs["token_type_ids"] = tti
    return {"inputs": inputs, "labels": labels}


def answer_loss(model, batch: dict) -> torch.Tensor:
    """Cross-entropy on answer tokens, averaged per example, then over the batch.

    Per example, not per token: a 15-token description would otherwise outweigh a
    one-token "Yes" fifteen-fold, and the image-dependent yes/no token would drown in
    the easy-to-guess words of captions. The LM head runs on answer positions alone.
    """
    hidden = model.model(**batch["inputs"], use_cache=False).last_hidden_state[:, :-1]
    targets = batch["labels"][:, 1:]
    keep = targets != -100
    logits = model.lm_head(hidden[keep])
    per_token = F.cross_entropy(logits.float(), targets[keep], reduction="none")
    counts = keep.sum(dim=1, keepdim=True).expand_as(keep)[keep].float()
    return (per_token / counts).sum() / keep.shape[0]


def lr_at(stage: Stage, step: int) -> float:
    """Linear warm-up, then cosine decay to min_lr_ratio of the peak."""
    if step < stage.warmup:
        return stage.lr * (step + 1) / stage.warmup
    progress = (step - stage.warmup) / max(1, stage.steps - stage.warmup)
    return stage.lr * (stage.min_lr_ratio + (1 - stage.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def train(model, batches: Sequence[Sequence[Encoded]], stage: Stage, encoder: Encoder,
          pixels: Optional[torch.Tensor], callback: Optional[Callable[[int], None]] = None) -> list[float]:
    """AdamW over the given batches (one step each); returns the loss of every step.

    `callback(step)` runs after every step (diagnostics; it must not draw from torch's RNG).
    """
    model.train()
    set_vision_trainable(model, stage.train_vision)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=stage.lr, betas=(0.9, 0.98), weight_decay=stage.weight_decay)
    pad = encoder.tokenizer.pad_token_id
    losses = []
    for step, items in enumerate(batches):
        for group in opt.param_groups:
            group["lr"] = lr_at(stage, step)
        loss = answer_loss(model, collate(items, pad, pixels, encoder))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        losses.append(float(loss.detach()))
        if callback is not None:
            callback(step + 1)
    set_vision_trainable(model, True)
    model.eval()
    return losses


def set_vision_trainable(model, trainable: bool) -> None:
    """Freeze or unfreeze the vision tower (a no-op for text-only models)."""
    tower = getattr(getattr(model, "model", None), "vision_tower", None)
    if tower is not None:
        tower.requires_grad_(trainable)


def batches_of(encoded: Sequence[Encoded], stage: Stage) -> list[list[Encoded]]:
    """Cut a (pre-shuffled) example list into stage.steps batches of stage.batch_size."""
    need = stage.steps * stage.batch_size
    if len(encoded) < need:
        raise ValueError(f"need {need} examples, got {len(encoded)}")
    return [list(encoded[i * stage.batch_size:(i + 1) * stage.batch_size]) for i in range(stage.steps)]


def mixed_indices(rng: np.random.Generator, n: int, share: float) -> np.ndarray:
    """True where example i should come from the general data (a `share` of them)."""
    return rng.random(n) < share
