"""The runner fills the response store for a model × task × prompt grid.

Prediction and assertion are separate: tests never call a model, they read the table
this module returns. A model is loaded only when some answer is missing from the
store, so a second run of the same grid makes zero model calls.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

import pandas as pd

from ..core import GenerationRequest, HarnessError, ImageItem, ModelSpec, PromptVariant, TaskSpec
from ..store import ResponseStore, cache_key

Progress = Callable[[str, int, int], None]  # (label, done, total)

TABLE_COLUMNS = ["model", "task", "image_id", "label", "variant", "text", "outcome", "error", "parsed", "judge_reply",
                 "truncated", "reasked", "cut_off"]


@dataclass
class BackendHandle:
    """Creates the backend on first need, so a fully cached grid never loads a model."""

    spec: ModelSpec
    factory: Callable[[ModelSpec], object]
    _backend: object = None
    calls: int = 0

    def get(self):
        if self._backend is None:
            self._backend = self.factory(self.spec)
        return self._backend

    def close(self) -> None:
        if self._backend is not None and hasattr(self._backend, "close"):
            self._backend.close()
        self._backend = None


@dataclass
class RunStats:
    """What one fill did: used by the progress display and by tests of the cache."""

    requested: int = 0
    cached: int = 0
    generated: int = 0
    errors: int = 0
    empty: int = 0  # answers that were empty: refusals, asked again by the next run
    image_errors: dict = field(default_factory=dict)
    # (image_id, variant_key) -> (asked again with a larger budget, the answer used still
    # hit its cap), for every cell whose first answer hit the cap (see fill_closed_form)
    truncation: dict = field(default_factory=dict)
    reask_errors: int = 0  # re-asks that failed: the cut-off answer is kept (and reported)


def _load_images(items: list[ImageItem]) -> tuple[dict, dict]:
    """Load every image once; a bad image becomes a per-image error, never a crash."""
    images, errors = {}, {}
    for item in items:
        try:
            images[item.image_id] = item.load()
        except HarnessError as exc:
            errors[item.image_id] = str(exc)
        except Exception as exc:  # noqa: BLE001 - any decoder failure is a per-image error
            errors[item.image_id] = f"{item.source}: {type(exc).__name__}: {exc}"
    return images, errors


def closed_form_key(identity: dict, prompt: str, item: ImageItem, max_new_tokens: int) -> str:
    """The store key of one closed-form answer (greedy decoding, so only the token limit varies)."""
    settings = {"max_new_tokens": max_new_tokens, "do_sample": False}
    return cache_key(identity, stage="closed", prompt=prompt, image_sha=item.sha256, settings=settings)


def fill_closed_form(
    handle: BackendHandle,
    identity: dict,
    task: TaskSpec,
    items: list[ImageItem],
    variants: list[PromptVariant],
    store: ResponseStore,
    *,
    max_new_tokens: int,
    reask_budgets: tuple[int, ...] = (),
    parse: Optional[Callable] = None,
    chunk_size: int = 64,
    progress: Optional[Progress] = None,
) -> tuple[dict, RunStats]:
    """Answer every (image, variant) pair not yet stored; returns texts and errors by cell.

    The result maps (image_id, variant_key) to ("text", str) or ("error", message).

    An answer that stopped at the token cap and that `parse` cannot read ("refused") is
    asked again with each larger budget of `reask_budgets` in turn (SPEC §3: a cut-off
    answer is never silently a refusal); the longer answer replaces it. Each budget has
    its own store key, so a warm run reads the same answers and makes the same decisions
    without asking the model; `stats.truncation` records what happened per cell.
    """
    stats = RunStats()
    cells = [(item, variant, variant.render(task)) for item in items for variant in variants]
    keyed = [(*c, closed_form_key(identity, c[2], c[0], max_new_tokens)) for c in cells]
    stats.requested = len(keyed)
    results, cut = _answers(handle, task, keyed, store, stats, max_new_tokens, chunk_size, progress)
    stats.truncation = {cell: (False, True) for cell in cut}
    pending = [c for c in cells if (c[0].image_id, c[1].key) in cut]
    for budget in sorted(b for b in set(reask_budgets) if b > max_new_tokens):
        pending = [c for c in pending if parse is not None and _unread(results[(c[0].image_id, c[1].key)], c[1], task, parse)]
        if not pending:
            break
        keyed = [(*c, closed_form_key(identity, c[2], c[0], budget)) for c in pending]
        again, cut_again = _answers(handle, task, keyed, store, RunStats(), budget, chunk_size, None)
        cut_now: set = set()
        for cell_id, answer in again.items():
            if answer[0] == "text":
                results[cell_id] = answer
                stats.truncation[cell_id] = (True, cell_id in cut_again)
                if cell_id in cut_again:
                    cut_now.add(cell_id)
            else:
                stats.reask_errors += 1
        pending = [c for c in pending if (c[0].image_id, c[1].key) in cut_now]
    if progress:
        progress(f"{handle.spec.name} × {task.key}", stats.requested, stats.requested)
    return results, stats


def _unread(answer: tuple, variant: PromptVariant, task: TaskSpec, parse) -> bool:
    return answer[0] == "text" and parse(answer[1], variant, task) == "refused"


def _answers(handle, task, keyed, store, stats, max_new_tokens, chunk_size, progress) -> tuple[dict, set]:
    """Stored answers of `keyed` cells, the missing ones generated; also the cells cut off."""
    stored = store.get_answers([c[3] for c in keyed])
    stats.cached += sum(1 for c in keyed if c[3] in stored)
    results = {(c[0].image_id, c[1].key): ("text", stored[c[3]][0]) for c in keyed if c[3] in stored}
    # an unknown flag (an answer stored before schema 2) may be a cut-off answer
    cut = {(c[0].image_id, c[1].key) for c in keyed if c[3] in stored and stored[c[3]][1] is not False}
    missing = [c for c in keyed if c[3] not in stored]
    # Cells with one key are one request (the same pixels, prompt and settings: e.g. the
    # content-free stand-ins of images of one size): asked once, the answer shared, as a
    # warm run would read it from the store.
    first: dict = {}
    for cell in missing:
        first.setdefault(cell[3], cell)
    if first:
        _generate_missing(handle, task, list(first.values()), store, results, cut, stats, max_new_tokens, chunk_size,
                          progress)
    for cell in missing:
        source = first[cell[3]]
        if source is cell:
            continue
        cell_id, source_id = (cell[0].image_id, cell[1].key), (source[0].image_id, source[1].key)
        results[cell_id] = results[source_id]
        if source_id in cut:
            cut.add(cell_id)
        if results[cell_id][0] == "error":
            stats.errors += 1
        else:
            stats.cached += 1
    return results, cut


def _generate_missing(handle, task, missing, store, results, cut, stats, max_new_tokens, chunk_size, progress):
    """Generate in chunks grouped by image, storing each chunk as soon as it returns."""
    by_image: dict[str, list] = {}
    for cell in missing:
        by_image.setdefault(cell[0].image_id, []).append(cell)
    item_by_id = {cells[0][0].image_id: cells[0][0] for cells in by_image.values()}
    images, image_errors = _load_images(list(item_by_id.values()))
    stats.image_errors.update(image_errors)
    pending = []
    for image_id, cells in by_image.items():
        if image_id in image_errors:
            for cell in cells:
                results[(image_id, cell[1].key)] = ("error", image_errors[image_id])
                stats.errors += 1
            continue
        pending.extend(cells)
    done = stats.cached
    for start in range(0, len(pending), chunk_size):
        chunk = pending[start : start + chunk_size]
        requests = [GenerationRequest(prompt=c[2], image_key=c[0].image_id, max_new_tokens=max_new_tokens) for c in chunk]
        needed = {c[0].image_id: images[c[0].image_id] for c in chunk}
        outputs = handle.get().generate(requests, needed)
        handle.calls += len(requests)
        rows = []
        for cell, out in zip(chunk, outputs):
            cell_id = (cell[0].image_id, cell[1].key)
            if out.ok:
                results[cell_id] = ("text", out.text)
                if out.truncated:
                    cut.add(cell_id)
                rows.append({"key": cell[3], "stage": "closed", "model": handle.spec.name, "task": task.key,
                             "image_id": cell[0].image_id, "variant": cell[1].key, "text": out.text,
                             "truncated": out.truncated})
                stats.generated += 1
            elif out.empty:  # the model said nothing: a refusal (SPEC §3), not stored (SPEC §8)
                results[cell_id] = ("text", "")
                stats.generated += 1
                stats.empty += 1
                if out.truncated:  # nothing readable up to the cap (special tokens only): asked again
                    cut.add(cell_id)
            else:
                results[cell_id] = ("error", out.error)
                stats.errors += 1
        store.put_many(rows)
        done += len(chunk)
        if progress and done < stats.requested:
            progress(f"{handle.spec.name} × {task.key}", done, stats.requested)


def build_table(model: str, task: TaskSpec, items, variants, results: dict, parse, judged: dict | None = None,
                truncation: dict | None = None) -> pd.DataFrame:
    """One row per (image, variant): the parser's outcome, the judge's where it was asked.

    `outcome` is what the statistics use: the judge's verdict for answers the parser
    could not classify, the parser's otherwise; `parsed` and `judge_reply` keep both.
    `truncated`: the first answer hit the token cap; `reasked`: the answer used came from
    a larger budget; `cut_off`: the answer used still hit its cap (RunStats.truncation).
    """
    rows = []
    judged = judged or {}
    truncation = truncation or {}
    for item in items:
        for variant in variants:
            cell = (item.image_id, variant.key)
            kind, value = results.get(cell, ("error", "no response"))
            reasked, cut_off = truncation.get(cell, (False, False))
            if kind == "error":
                rows.append((model, task.key, item.image_id, item.label, variant.key, None, "error", value, None, None,
                             False, None, False))
                continue
            parsed = parse(value, variant, task)
            outcome, reply = parsed, None
            if parsed == "refused" and cell in judged:
                outcome, reply = judged[cell]
            rows.append((model, task.key, item.image_id, item.label, variant.key, value, outcome, None, parsed, reply,
                         cell in truncation, reasked, cut_off))
    return pd.DataFrame(rows, columns=TABLE_COLUMNS)


def unclassified_cells(results: dict, variants, task: TaskSpec, parse) -> list[tuple[str, PromptVariant, str]]:
    """Answers (not errors) that the deterministic parser maps to 'refused'."""
    by_key = {v.key: v for v in variants}
    return [
        (image_id, by_key[vkey], value)
        for (image_id, vkey), (kind, value) in results.items()
        if kind == "text" and vkey in by_key and parse(value, by_key[vkey], task) == "refused"
    ]


def judge_unclassified(
    handle: BackendHandle,
    identity: dict,
    task: TaskSpec,
    cells: list[tuple[str, PromptVariant, str]],
    store: ResponseStore,
    *,
    max_new_tokens: int = 16,
) -> dict:
    """Ask an LLM judge about answers the parser left unclassified; both results are kept.

    `cells` holds (image_id, variant, answer text). Judge replies are stored like any
    answer (stage "judge"), so a rerun asks the judge nothing. Returns
    {(image_id, variant_key): (judge outcome, judge reply)}.
    """
    from .judge import JUDGE_VERSION, judge_messages, parse_judge_reply

    settings = {"max_new_tokens": max_new_tokens, "do_sample": False, "judge_version": JUDGE_VERSION}
    planned = []
    for image_id, variant, text in cells:
        system, user = judge_messages(variant.render(task), text, variant, task)
        key = cache_key(identity, stage="judge", prompt=system["content"] + "\n\n" + user["content"],
                        image_sha=None, settings=settings)
        planned.append((image_id, variant, system["content"], user["content"], key))
    stored = store.get_many([p[4] for p in planned])
    missing = [p for p in planned if p[4] not in stored]
    if missing:
        requests = [GenerationRequest(prompt=p[3], system=p[2], max_new_tokens=max_new_tokens) for p in missing]
        outputs = handle.get().generate(requests, {})
        handle.calls += len(requests)
        rows = []
        for p, out in zip(missing, outputs):
            if out.ok:
                stored[p[4]] = out.text
                rows.append({"key": p[4], "stage": "judge", "model": handle.spec.name, "task": task.key,
                             "image_id": p[0], "variant": p[1].key, "text": out.text})
        store.put_many(rows)
    return {(p[0], p[1].key): (parse_judge_reply(stored[p[4]]), stored[p[4]]) for p in planned if p[4] in stored}
