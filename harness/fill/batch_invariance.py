"""Batch-invariance self-check: do batched answers equal the answers given one at a time?

Why: the HF backend answers in left-padded batches for speed, and batching can change a
greedy answer (padding, different kernels, float round-off near a tie). Prompt-
sensitivity findings compare answers across prompts that ran in different batches, so
an answer that depends on its batch would look like prompt fragility. This check
re-asks a fixed small sample of closed-form cells one at a time (batch size 1) and
reports the share whose text differs from the stored batched answer; the report shows
it when it is not zero.

Cheap by design: `SAMPLE` cells per model (24 short generations), chosen
deterministically by their store key (a hash, so the sample is spread over tasks, images
and prompts without an RNG), and the one-at-a-time answers are stored under their own
stage, so a rerun computes the figure from the store without loading the model.
"""

from __future__ import annotations

from typing import Optional

from ..core import GenerationRequest, HarnessError, ImageItem, PromptVariant, TaskSpec
from .closed_form import BackendHandle, _load_images, closed_form_key
from ..store import ResponseStore, cache_key

SAMPLE = 24
STAGE = "closed_batch1"
MAX_EXAMPLES = 3


def alone_key(identity: dict, prompt: str, item: ImageItem, max_new_tokens: int) -> str:
    """Store key of a one-at-a-time answer: the closed-form settings plus batch_size=1."""
    settings = {"max_new_tokens": max_new_tokens, "do_sample": False, "batch_size": 1}
    return cache_key(identity, stage=STAGE, prompt=prompt, image_sha=item.sha256, settings=settings)


def sample_cells(identity: dict, grids: list[tuple[TaskSpec, list[ImageItem], list[PromptVariant]]],
                 store: ResponseStore, *, max_new_tokens: int, n: int = SAMPLE) -> list[tuple]:
    """The first `n` cells, in store-key order, that have a stored batched answer.

    Returns (task, item, variant, prompt, batched_text) tuples.
    """
    cells = []
    for task, items, variants in grids:
        for variant in variants:
            prompt = variant.render(task)
            for item in items:
                cells.append((closed_form_key(identity, prompt, item, max_new_tokens), task, item, variant, prompt))
    cells.sort(key=lambda c: c[0])
    chosen: list[tuple] = []
    page = max(4 * n, 64)
    for start in range(0, len(cells), page):
        chunk = cells[start : start + page]
        stored = store.get_many([c[0] for c in chunk])
        chosen.extend((c[1], c[2], c[3], c[4], stored[c[0]]) for c in chunk if c[0] in stored)
        if len(chosen) >= n:
            break
    return chosen[:n]


def check_batch_invariance(handle: BackendHandle, identity: dict,
                           grids: list[tuple[TaskSpec, list[ImageItem], list[PromptVariant]]],
                           store: ResponseStore, *, max_new_tokens: int, n: int = SAMPLE,
                           generate: bool = True) -> dict:
    """{"checked", "changed", "share", "examples"} for one model.

    `grids` lists the (task, items, variants) whose closed-form answers are already in
    the store. Cells whose one-at-a-time answer is missing are generated (when
    `generate`), one request per generate() call, and stored; a cell without a
    one-at-a-time answer is left out of `checked`. `share` is None when nothing could be
    checked.
    """
    cells = sample_cells(identity, grids, store, max_new_tokens=max_new_tokens, n=n)
    keys = [alone_key(identity, c[3], c[1], max_new_tokens) for c in cells]
    alone = store.get_many(keys)
    missing = [(c, k) for c, k in zip(cells, keys) if k not in alone]
    if missing and generate:
        images, _errors = _load_images(list({c[1].image_id: c[1] for c, _ in missing}.values()))
        rows = []
        for (task, item, variant, prompt, _), key in missing:
            if item.image_id not in images:
                continue
            request = GenerationRequest(prompt=prompt, image_key=item.image_id, max_new_tokens=max_new_tokens)
            (out,) = handle.get().generate([request], {item.image_id: images[item.image_id]})
            handle.calls += 1
            if out.ok:
                alone[key] = out.text
                rows.append({"key": key, "stage": STAGE, "model": handle.spec.name, "task": task.key,
                             "image_id": item.image_id, "variant": variant.key, "text": out.text})
        store.put_many(rows)
    checked = changed = 0
    examples = []
    for (task, item, variant, _, batched), key in zip(cells, keys):
        if key not in alone:
            continue
        checked += 1
        if alone[key] != batched:
            changed += 1
            if len(examples) < MAX_EXAMPLES:
                examples.append({"task": task.key, "image_id": item.image_id, "variant": variant.key,
                                 "batched": batched, "alone": alone[key]})
    return {"checked": checked, "changed": changed, "share": changed / checked if checked else None,
            "examples": examples}


def check_model(suite, handle: BackendHandle, identity: dict, task_keys: list[str]) -> Optional[dict]:
    """The fill phase's entry point: check one model over the tasks whose closed stage ran.

    Only in-process "hf" models are checked (an endpoint batches on the server, out of
    the harness's hands). The result is kept in `suite.batch_invariance[model]`; a
    setup failure is kept there as {"error": message} and never fails the run.
    """
    if handle.spec.backend != "hf":
        return None
    if not hasattr(suite, "batch_invariance"):
        suite.batch_invariance = {}
    if handle.spec.name in suite.batch_invariance:  # once per model and run (later fills are partial)
        return suite.batch_invariance[handle.spec.name]
    first = suite.settings.n_per_class  # the first look: every selected subject has it
    done = [k for k in task_keys if ("closed", handle.spec.name, k, first) in suite.results]
    if not done:
        return None
    max_new = handle.spec.max_new_tokens or suite.thresholds.generation["max_new_tokens"]
    grids = [(suite.task(k), suite.items(suite.task(k)), suite.variants) for k in done]
    # Never load a model only for this check (a fully cached grid loads no model): when
    # the model is not loaded, the figure comes from what earlier runs stored.
    loaded = handle._backend is not None
    try:
        result = check_batch_invariance(handle, identity, grids, suite.store, max_new_tokens=max_new, generate=loaded)
    except HarnessError as exc:
        result = {"error": str(exc)}
    suite.batch_invariance[handle.spec.name] = result
    return result
