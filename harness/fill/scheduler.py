"""The fill phase: every stage a selected test needs, for every subject, before any test asserts.

Stages: "closed" (closed-form answers, plus the optional judge), "blank" (the same
closed-form prompts, or the `[image_reliance] variants` subset, asked with content-free
stand-ins of the images: harness/data/content_free.py), "describe" (descriptions and the
diagnoser's answers) and "embed" (vision-encoder vectors). Each model is loaded
at most once per run, and only if some answer is missing from the store. A failure is
kept per (stage, model, task) and re-raised by the test that needs it, so one broken
model never stops the others.
"""

from __future__ import annotations

import json

from ..backends.identity import model_identity
from ..backends.served_identity import unlisted_note
from ..data.content_free import SUFFIX, content_free_items
from .batch_invariance import check_model as check_batch_invariance
from ..core import HarnessError, NotApplicable
from .describe import description_table, fill_descriptions, fill_diagnoses
from .embed import fill_embeddings
from .served_check import check_served_identity
from ..answers.parsing import parse_answer
from ..store import cache_key
from .closed_form import BackendHandle, build_table, fill_closed_form, judge_unclassified, unclassified_cells

STAGE_ORDER = ("closed", "blank", "describe", "embed")


def merge_stats(earlier, later):
    """One subject's fill counts over its looks. A later look asks again for every image of
    the earlier ones (read from the store, since they were just stored): those reads are
    not answers the store held before the run, so they leave `cached`; generated answers add up."""
    if earlier is None:
        return later
    later.cached = max(0, later.cached - earlier.generated)
    later.generated += earlier.generated
    later.image_errors = {**earlier.image_errors, **later.image_errors}
    return later


class Filler:
    def __init__(self, suite, factory, progress=None, n: int | None = None):
        self.suite = suite
        self.factory = factory
        self.progress = progress
        self.n = n or suite.settings.n_per_class  # images per class: the look being filled
        if progress is not None and self.n != suite.settings.n_per_class:
            self.progress = lambda label, done, total: progress(f"{label} (look at {self.n} per class)", done, total)
        self.helpers: dict[str, tuple[BackendHandle, dict]] = {}  # judge / diagnoser, loaded lazily

    def run(self, needs: dict) -> None:
        by_model: dict[str, dict[str, set]] = {}
        for (model, task), stages in needs.items():
            by_model.setdefault(model, {}).setdefault(task, set()).update(stages)
        try:
            for model, tasks in by_model.items():
                self._run_model(model, tasks)
        finally:
            for handle, _ in self.helpers.values():
                self._close(handle)

    def _run_model(self, model: str, tasks: dict) -> None:
        spec = self.suite.model(model)
        handle = BackendHandle(spec=spec, factory=self.factory)
        try:
            identity = model_identity(spec, self.suite.settings.cache_dir)
            self._served_notes(spec, identity)
        except HarnessError as exc:
            for task, stages in tasks.items():
                for stage in stages:
                    self.suite.failures[(stage, model, task, self.n)] = exc
            return
        try:
            for task, stages in tasks.items():
                for stage in [s for s in STAGE_ORDER if s in stages]:
                    self._run_stage(stage, handle, identity, task)
            # hf models only, once per run (at the first look); its answers are stored, so a rerun costs nothing
            if self.n == self.suite.settings.n_per_class:
                check_batch_invariance(self.suite, handle, identity, [t for t, s in tasks.items() if "closed" in s])
        finally:
            self._checkpoint_notes(handle, identity)
            self._close(handle)

    def _served_notes(self, spec, identity) -> None:
        """Endpoint models: refuse a changed served identity (harness.fill.served_check) and note
        one let through, or a server that does not say what it serves."""
        if "served" not in identity:
            return
        notes = [check_served_identity(self.suite.store, spec, identity, self.suite.settings.accept_served_change),
                 unlisted_note(spec, identity["served"])]
        self.suite.endpoint_notes.update(f"{spec.name}: {line}" for line in notes if line)

    def _checkpoint_notes(self, handle, identity) -> None:
        """What the checkpoint preflight replaced, repaired or found changed (hf models), for the
        report and summary.md beside the model. Stored under the model's identity when the model
        was loaded, so a warm run, which never loads it, says the same."""
        name = handle.spec.name
        if name in self.suite.checkpoint_notes:
            return
        key = cache_key(identity, stage="preflight", prompt="", image_sha=None, settings={})
        backend = handle._backend
        if backend is not None and getattr(backend, "loaded", False) and hasattr(backend, "load_notes"):
            notes = list(backend.load_notes)
            self.suite.store.put_many([{"key": key, "stage": "preflight", "model": name, "task": "(all)",
                                        "text": json.dumps(notes)}])
        else:
            stored = self.suite.store.get_many([key]).get(key)
            notes = json.loads(stored) if stored else []
        if notes:
            self.suite.checkpoint_notes[name] = notes

    def _run_stage(self, stage: str, handle, identity, task_key: str) -> None:
        key = (stage, handle.spec.name, task_key, self.n)
        if key in self.suite.results or key in self.suite.failures:
            return
        try:
            task = self.suite.task(task_key)
            items = self.suite.probe_items(task, self.n) if stage == "embed" else self.suite.items(task, self.n)
            if stage == "blank":
                items = content_free_items(items, self.suite.content_free_colour(task))
            runner = {"closed": self._closed, "blank": self._blank, "describe": self._describe, "embed": self._embed}[stage]
            self.suite.results[key] = runner(handle, identity, task, items)
        except (HarnessError, NotApplicable) as exc:
            self.suite.failures[key] = exc

    def _close(self, handle: BackendHandle) -> None:
        backend = handle._backend
        if backend is not None and hasattr(backend, "remote_destinations"):
            self.suite.remote_destinations.update(backend.remote_destinations())
        if backend is not None and hasattr(backend, "notes"):  # e.g. response_format ignored, prefix reuse off
            self.suite.endpoint_notes.update(f"{handle.spec.name}: {line}" for line in backend.notes())
        handle.close()

    def _helper(self, role: str, name: str):
        if role not in self.helpers:
            spec = self.suite.model(name)
            identity = model_identity(spec, self.suite.settings.cache_dir)
            self._served_notes(spec, identity)
            self.helpers[role] = (BackendHandle(spec=spec, factory=self.factory), identity)
        return self.helpers[role]

    # -- stages ---------------------------------------------------------------------------
    def _blank(self, handle, identity, task, items):
        """The closed-form stage on the content-free stand-ins, with the variants the
        `[image_reliance]` section asks for; its counts are kept apart (`<task>#content-free`)."""
        shown = self.progress
        progress = None if shown is None else (  # the display names the pass: "model × task (content-free images)"
            lambda label, done, total: shown(f"{label} (content-free images)", done, total))
        return self._closed(handle, identity, task, items, self.suite.blank_variants, stats_key=task.key + SUFFIX,
                            progress=progress)

    def _closed(self, handle, identity, task, items, variants=None, stats_key=None, progress=None):
        suite = self.suite
        variants = suite.variants if variants is None else variants
        stats_key = (handle.spec.name, stats_key or task.key)
        gen = suite.thresholds.generation
        max_new = handle.spec.max_new_tokens or gen["max_new_tokens"]
        results, stats = fill_closed_form(
            handle, identity, task, items, variants, suite.store,
            max_new_tokens=max_new,
            reask_budgets=(gen["reask_max_new_tokens"], gen["last_reask_max_new_tokens"]) if handle.spec.reask else (),
            parse=parse_answer, chunk_size=max(gen["batch_size"] * 4, 16), progress=progress or self.progress,
        )
        suite.fill_stats[stats_key] = merge_stats(suite.fill_stats.get(stats_key), stats)
        judged = None
        if suite.settings.judge:
            cells = unclassified_cells(results, variants, task, parse_answer)
            if cells:
                judge, judge_identity = self._helper("judge", suite.settings.judge)
                judged = judge_unclassified(judge, judge_identity, task, cells, suite.store)
        return build_table(handle.spec.name, task, items, variants, results, parse_answer, judged,
                           truncation=stats.truncation)

    def _describe(self, handle, identity, task, items):
        suite = self.suite
        name = suite.diagnoser_name
        if not name:
            raise NotApplicable("no text-only diagnoser is configured: pass --diagnoser NAME (a registry model)")
        prompts = list(suite.registry.describe_prompts.values())
        templates = list(suite.registry.diagnoser_templates.values())
        descriptions = fill_descriptions(handle, identity, task, items, prompts, suite.store,
                                         max_new_tokens=suite.thresholds.generation["describe_max_new_tokens"])
        diagnoser, diagnoser_identity = self._helper("diagnoser", name)
        diagnoses = fill_diagnoses(diagnoser, diagnoser_identity, task, descriptions, templates, suite.store)
        return description_table(handle.spec.name, task, items, descriptions, diagnoses)

    def _embed(self, handle, identity, task, items):
        cfg = self.suite.thresholds.embedding_separability
        return fill_embeddings(handle, identity, items, self.suite.store, layer=cfg["layer"], pooling=cfg["pooling"],
                               features=cfg["features"])
