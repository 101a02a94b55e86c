"""One checkpoint's rehearsal: its random-weight model through the suite's real HF backend.

The model folder (build.py) is loaded through the registry path a real run takes: the study
entry of fixtures/models.toml with `model` pointing at the folder (so its chat-template and
image-processor overrides and the preflight against the snapshot apply). Then, on images of
a realistic size (512 x 512: LLaVA-NeXT tiles them at its anyres grid):

- eight closed-form prompts of different lengths in one batch (batch size 8) and one at a
  time: the same next-token logits and greedy answers (padding side, attention masks around
  the image tokens; see logit_agreement), and seconds per item for each;
- the fill's truncation re-ask (random weights seldom stop on their own, so answers are cut
  at the cap and asked again with a larger budget, as a real run would);
- the describe pass, and the image features the probe reads.

Returns one row: image tokens per image, peak memory, seconds per item at batch 1 and 8,
batch invariant, preflight clean, ok (every step ran and both checks hold).
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
import traceback
from pathlib import Path
from typing import Optional

from harness.core import GenerationRequest

IMAGE_SIZE = 512
RUN_VARIANTS = ("abnormal", "abnormal_oneword", "normal", "normal_oneword", "disease", "disease_hint", "choice_ab",
                "choice_ba_oneword")  # eight prompts of different lengths: yes/no and A/B
BATCH = 8
# Largest logit change allowed between a padded batch and the prompt alone, in logit
# standard deviations. Measured (docs/endpoints-and-gpus.md): float32 on this CPU 0, bf16
# 0.02-0.04, a wrong padding side 4.3-4.5.
LOGIT_TOLERANCE = {"torch.float32": 1e-3, "torch.bfloat16": 0.1, "torch.float16": 0.02}
REASK_BUDGETS = (24,)  # one larger budget: the re-ask path, not the suite's budgets (64, 256)


def _images(n_per_class: int):
    """Synthetic brain-MRI images of 512 x 512 (the suite's generator, larger)."""
    from harness.config.registry import load_registry
    from harness.data.sources import load_synthetic

    task = load_registry().tasks["brain_tumor"]
    return task, load_synthetic(task, n_per_class, 42, size=IMAGE_SIZE)


def rehearsal_spec(name: str, folder: Path, dtype: Optional[str] = None, drop: tuple = ()):
    """The study entry `name` of the registry, pointing at the rehearsal folder; `drop` removes
    entry keys (a deliberately broken case: e.g. LLaVA-Med without its chat template)."""
    from harness.config.registry import load_registry

    spec = load_registry().models[name]
    changes = {"model": str(folder), "revision": None, "dtype": dtype or spec.dtype}
    changes.update({key: None for key in drop})
    return dataclasses.replace(spec, **changes)


def _peak_memory_mb(device: str) -> float:
    import resource

    import torch

    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kB


def _image_tokens(backend, request, images) -> int:
    inputs = backend._encode([request], images)
    token_id = backend.model.config.image_token_id if hasattr(backend.model.config, "image_token_id") else \
        backend.model.config.image_token_index
    return int((inputs["input_ids"][0] == token_id).sum())


def rehearse(name: str, folder: Path, *, device: str = "cpu", dtype: Optional[str] = None, drop: tuple = (),
             padding_side: Optional[str] = None) -> dict:
    """Run the rehearsal of one built model; returns its row (with `error` when a step failed).
    `drop` and `padding_side` plant a mistake (python -m harness.rehearsal --break)."""
    from harness.backends.hf import HFBackend
    from harness.fill.closed_form import BackendHandle
    from harness.store import ResponseStore

    row = {"checkpoint": name, "image_tokens": None, "peak_memory_mb": None, "s_per_item_b1": None,
           "s_per_item_b8": None, "batch_invariant": False, "preflight_clean": False, "ok": False, "error": None}
    try:
        with tempfile.TemporaryDirectory(prefix="rehearsal-") as tmp:
            spec = rehearsal_spec(name, folder, dtype, drop)
            backend = HFBackend(dataclasses.replace(spec, batch_size=BATCH), cache_dir=Path(tmp), device=device)
            backend.load()  # the preflight runs here: replacements, repairs, snapshot comparison, prompt form
            if padding_side:  # a planted mistake (python -m harness.rehearsal --break padding-side)
                backend.processor.tokenizer.padding_side = padding_side
            row["load_notes"] = list(backend.load_notes)
            row["preflight_clean"] = not any(note.startswith("snapshot drift") for note in backend.load_notes)
            task, items = _images(1)
            handle = BackendHandle(spec=backend.spec, factory=lambda s: backend)  # the fill's own path
            store = ResponseStore(Path(tmp) / "store.sqlite")
            row.update(_closed_form(backend, handle, store, task, items))
            row.update(_describe_and_embed(backend, handle, store, task, items))
            row["peak_memory_mb"] = round(_peak_memory_mb(device))
            row["ok"] = row["batch_invariant"] and row["preflight_clean"] and row["image_tokens"] > 0
    except Exception as exc:  # noqa: BLE001 - a rehearsal reports what broke, it does not crash
        row["error"] = f"{type(exc).__name__}: {exc}"
        row["traceback"] = traceback.format_exc(limit=4)
    return row


def _closed_form(backend, handle, store, task, items) -> dict:
    from harness.config.registry import load_registry
    from harness.fill.closed_form import fill_closed_form
    from harness.answers.parsing import parse_answer

    registry = load_registry()
    images = {item.image_id: item.load() for item in items}
    variants = [registry.variants[v] for v in RUN_VARIANTS]
    # eight different prompts of different lengths, on two images: one batch, each row padded
    requests = [GenerationRequest(prompt=v.render(task), image_key=items[i % len(items)].image_id, max_new_tokens=8)
                for i, v in enumerate(variants)]
    out = {"image_tokens": _image_tokens(backend, requests[0], images), "dtype": str(backend.model.dtype)}
    with PrefillLogits(backend.model) as together:
        start = time.perf_counter()
        batched = backend.generate(requests, images)
        out["s_per_item_b8"] = round((time.perf_counter() - start) / len(requests), 3)
    one = dataclasses.replace(backend.spec, batch_size=1)
    backend.spec, saved = one, backend.spec
    with PrefillLogits(backend.model) as alone_logits:
        start = time.perf_counter()
        alone = backend.generate(requests, images)
        out["s_per_item_b1"] = round((time.perf_counter() - start) / len(requests), 3)
    backend.spec = saved
    failed = [r.error for r in batched + alone if r.error]
    if failed:
        raise RuntimeError(f"generation failed: {failed[0]}")
    tolerance = LOGIT_TOLERANCE[str(backend.model.dtype)]
    out.update(logit_agreement(together.rows, alone_logits.rows, tolerance))
    out["answers_changed_alone"] = sum(a.text != b.text for a, b in zip(batched, alone))
    exact = str(backend.model.dtype) == "torch.float32"  # bf16: see logit_agreement
    out["batch_invariant"] = (out["logit_drift"] <= tolerance and out["first_tokens_agree"]
                              and (out["answers_changed_alone"] == 0 or not exact))
    out["cut_at_cap"] = sum(1 for r in batched if r.truncated)
    out["sample_answers"] = [repr(r.text[:40]) for r in batched[:2]]
    # the fill's own path, with the truncation re-ask, on two cells
    results, stats = fill_closed_form(handle, backend.identity(), task, items[:1], variants[:2], store, max_new_tokens=8,
                                      reask_budgets=REASK_BUDGETS, parse=parse_answer)
    out["reasked"] = sum(1 for asked, _ in stats.truncation.values() if asked)
    out["still_cut_off"] = sum(1 for _, cut in stats.truncation.values() if cut)
    if any(kind == "error" for kind, _ in results.values()):
        raise RuntimeError(f"the fill's answers failed: {results}")
    return out


class PrefillLogits:
    """While active, records the next-token logits of every prompt the model prefills.

    A forward hook on the whole model: a call whose `input_ids` are longer than one token is a
    prefill (decoding steps pass one token per row). Rows are keyed by their unpadded token
    ids, so a padded batch and the same prompts one at a time can be compared row by row
    (the rehearsal's prompts all differ) however the backend orders its batches. Prompts
    that share an image's prefix (hf_prefix.py) are prefilled after it, on its cache: their
    ids are the prefix's (the one-row call just before) followed by their own."""

    def __init__(self, model):
        self.model, self.rows, self._handle = model, {}, None
        self._prefix = None  # the last one-row prefill's ids: a shared image prefix (hf_prefix.py)

    def __enter__(self):
        self._handle = self.model.register_forward_hook(self._record, with_kwargs=True)
        return self

    def __exit__(self, *exc):
        self._handle.remove()

    def _record(self, module, args, kwargs, output) -> None:
        import torch

        ids, mask = kwargs.get("input_ids"), kwargs.get("attention_mask")
        if ids is None or ids.shape[1] <= 1 or getattr(output, "logits", None) is None:
            return
        logits = output.logits[:, -1, :].float().cpu()
        if mask is not None and self._prefix is not None and mask.shape[1] == self._prefix.shape[0] + ids.shape[1]:
            # suffixes prefilled on a cached prefix: the mask covers prefix, padding and suffix
            ids = torch.cat([self._prefix.expand(ids.shape[0], -1), ids], dim=1)
        if ids.shape[0] == 1 and (mask is None or mask.shape == ids.shape):
            self._prefix = ids[0]
        for row in range(ids.shape[0]):
            kept = ids[row][mask[row].bool()] if mask is not None and mask.shape == ids.shape else ids[row]
            self.rows[tuple(kept.tolist())] = logits[row]


def logit_agreement(together: dict, alone: dict, tolerance: float) -> dict:
    """How far each prompt's next-token logits in a padded batch are from the prompt alone.

    `logit_drift`: the largest change of any logit, in units of that prompt's logit standard
    deviation (a wrong padding side or attention mask moves them by about 1 or more;
    float32 on a CPU: 0; bf16: a few hundredths). `prompt_spread`: the same measure between
    different prompts, which shows the logits depend on the prompt at all.
    `first_tokens_agree`: the greedy first token is the same wherever its lead over the
    runner-up is larger than the tolerance. Random weights have many near-ties (the top two
    of 32,000 random logits are about 0.2 SD apart), so in bf16 later tokens of a correct
    implementation may differ; the full answers are required to be equal in float32 only."""
    import torch

    shared = [key for key in alone if key in together]
    if len(shared) != len(alone) or not shared:
        return {"logit_drift": float("inf"), "prompt_spread": 0.0, "first_tokens_agree": False,
                "rows_compared": len(shared)}
    a = torch.stack([alone[k] for k in shared])
    b = torch.stack([together[k] for k in shared])
    scale = a.std(dim=1, keepdim=True).clamp_min(1e-12)
    drift = float(((b - a).abs() / scale).max())
    spread = float(((a[1:] - a[:-1]).abs() / scale[1:]).max()) if len(shared) > 1 else 0.0
    top = a.topk(2, dim=1).values
    clear = ((top[:, 0] - top[:, 1]) / scale[:, 0]) > tolerance
    agree = bool((a.argmax(dim=1) == b.argmax(dim=1))[clear].all())
    return {"logit_drift": round(drift, 5), "prompt_spread": round(spread, 3), "first_tokens_agree": agree,
            "rows_compared": len(shared)}


def _describe_and_embed(backend, handle, store, task, items) -> dict:
    from harness.config.registry import load_registry
    from harness.fill.describe import fill_descriptions
    from harness.fill.embed import fill_embeddings

    registry = load_registry()
    prompts = list(registry.describe_prompts.values())[:1]
    start = time.perf_counter()
    described = fill_descriptions(handle, backend.identity(), task, items[:1], prompts, store, max_new_tokens=96)
    describe_s = time.perf_counter() - start
    if any(kind == "error" for kind, _ in described.values()):
        raise RuntimeError(f"the describe pass failed: {described}")
    embedded = fill_embeddings(handle, backend.identity(), items, store, layer=-1, pooling="mean", features="selected")
    if embedded.errors or embedded.vectors.shape[0] != len(items):
        raise RuntimeError(f"the embeddings failed: {embedded.errors}")
    return {"embedding_dim": int(embedded.vectors.shape[1]), "describe_s_per_item": round(describe_s, 3)}
