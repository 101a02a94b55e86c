"""The run's state: validated configuration, selected subjects, samples and response tables.

Built once per pytest process. Everything a user can get wrong (thresholds,
registries, options, manifests) is checked here, before any model loads, and all
problems are reported together.
"""

from __future__ import annotations

import ipaddress
from typing import Callable, Optional
from urllib.parse import urlparse

import pandas as pd

from .backends.identity import model_identity
from .config.registry import DEFAULT_MODELS, DEFAULT_TASKS, load_registry, select
from .config.thresholds import load_thresholds
from .core import ConfigError, HarnessError, ImageItem, ModelSpec, TaskSpec
from .parsing import parse_answer
from .runner import BackendHandle, RunStats, build_table, fill_closed_form, judge_unclassified, unclassified_cells
from .store import ResponseStore


def is_loopback_url(url: str) -> bool:
    host = urlparse(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Suite:
    def __init__(self, settings):
        self.settings = settings
        problems = list(settings.problems)
        self.thresholds = self._load(problems, lambda: load_thresholds(
            settings.thresholds_path if settings.thresholds_path.is_file() else None))
        self.registry = self._load(problems, lambda: load_registry(settings.models_files, settings.tasks_files))
        if self.registry is not None:
            self.models = self._load(problems, lambda: select(self.registry, settings.models or DEFAULT_MODELS, "models"))
            self.tasks = self._load(problems, lambda: select(self.registry, settings.tasks or DEFAULT_TASKS, "tasks"))
            for role, name in (("--judge", settings.judge), ("--diagnoser", settings.diagnoser)):
                if name and name not in self.registry.models:
                    problems.append(f"{role} {name!r} is not a registry model")
            problems.extend(self._remote_problems())
        if problems:
            raise ConfigError("medvlm-fragility configuration", problems)
        self.variants = list(self.registry.variants.values())
        self.store = ResponseStore(settings.cache_dir / "responses.sqlite")
        self._explicit_items = self._load_explicit_data()
        self._items: dict[str, list[ImageItem]] = {}
        self._tables: dict[tuple[str, str], pd.DataFrame] = {}
        self._failures: dict[tuple[str, str], str] = {}
        self.fill_stats: dict[tuple[str, str], RunStats] = {}
        self.remote_destinations: set[str] = set()
        self._judge_handle: Optional[BackendHandle] = None
        self._judge_identity: dict = {}
        self._factory: Optional[Callable] = None

    @staticmethod
    def _load(problems: list[str], loader):
        try:
            return loader()
        except ConfigError as exc:
            problems.extend(f"{exc.source}: {p}" for p in exc.problems)
        except HarnessError as exc:
            problems.append(str(exc))
        return None

    def _remote_problems(self) -> list[str]:
        if self.settings.allow_remote:
            return []
        names = [m.name for m in self.models or []] + [n for n in (self.settings.judge, self.settings.diagnoser) if n]
        problems = []
        for name in names:
            spec = self.registry.models[name]
            for url in spec.base_url:
                if not is_loopback_url(url):
                    problems.append(
                        f"model {name!r} would send patient images or image-derived text to {url}; "
                        "only loopback endpoints are allowed unless --allow-remote is given"
                    )
        return problems

    # -- data ---------------------------------------------------------------------------
    def _load_explicit_data(self) -> Optional[dict[str, list[ImageItem]]]:
        from .data import sources

        s = self.settings
        task_map = {t.key: t for t in self.tasks}
        if s.manifest:
            all_tasks = dict(self.registry.tasks)
            loaded = sources.load_manifest(s.manifest, all_tasks)
            return {k: v for k, v in loaded.items() if k in task_map}
        if s.data_root:
            return {t.key: sources.load_image_folder(s.data_root, t) for t in self.tasks}
        return None

    def items(self, task: TaskSpec) -> list[ImageItem]:
        """The balanced, seeded sample of a task's images (loaded once per process)."""
        if task.key not in self._items:
            from .data import sampling, sources

            s = self.settings
            if self._explicit_items is not None:
                pool = self._explicit_items.get(task.key, [])
                if not pool:
                    raise HarnessError(f"task {task.key!r}: no images in {s.manifest or s.data_root}")
                chosen = sampling.sample_balanced(pool, s.n_per_class, s.seed)
            elif s.hf_datasets:
                chosen = sampling.sample_balanced(sources.load_hf_dataset(task), s.n_per_class, s.seed)
            else:
                chosen = sources.load_synthetic(task, s.n_per_class, s.seed)
            self._items[task.key] = chosen
        return self._items[task.key]

    # -- responses ------------------------------------------------------------------------
    def model(self, name: str) -> ModelSpec:
        return self.registry.models[name]

    def task(self, key: str) -> TaskSpec:
        return self.registry.tasks[key]

    def fill(self, pairs: list[tuple[str, str]], factory: Callable, progress=None) -> None:
        """Fill the store for each (model, task) pair; a model is loaded only if needed."""
        self._factory = factory
        by_model: dict[str, list[str]] = {}
        for model, task in pairs:
            by_model.setdefault(model, []).append(task)
        for model_name, task_keys in by_model.items():
            spec = self.model(model_name)
            handle = BackendHandle(spec=spec, factory=factory)
            try:
                identity = model_identity(spec, self.settings.cache_dir)
                for task_key in task_keys:
                    self._fill_one(handle, identity, task_key, progress)
            except HarnessError as exc:
                for task_key in task_keys:
                    self._failures.setdefault((model_name, task_key), str(exc))
            finally:
                handle.close()
        if self._judge_handle is not None:
            self._judge_handle.close()

    def _fill_one(self, handle, identity, task_key, progress) -> None:
        task = self.task(task_key)
        key = (handle.spec.name, task_key)
        if key in self._tables:
            return
        try:
            items = self.items(task)
        except HarnessError as exc:
            self._failures[key] = str(exc)
            return
        gen = self.thresholds.generation
        max_new = handle.spec.max_new_tokens or gen["max_new_tokens"]
        results, stats = fill_closed_form(
            handle, identity, task, items, self.variants, self.store,
            max_new_tokens=max_new, chunk_size=max(gen["batch_size"] * 4, 16), progress=progress,
        )
        self.fill_stats[key] = stats
        judged = self._judge(task, results, progress) if self.settings.judge else None
        self._tables[key] = build_table(handle.spec.name, task, items, self.variants, results, parse_answer, judged)

    def _judge(self, task: TaskSpec, results: dict, progress) -> dict:
        """Send what the parser could not classify to the --judge model (cached)."""
        cells = unclassified_cells(results, self.variants, task, parse_answer)
        if not cells:
            return {}
        if self._judge_handle is None:
            spec = self.model(self.settings.judge)
            self._judge_handle = BackendHandle(spec=spec, factory=self._factory)
            self._judge_identity = model_identity(spec, self.settings.cache_dir)
        if progress:
            progress(f"judge {self.settings.judge} × {task.key}", 0, len(cells))
        judged = judge_unclassified(self._judge_handle, self._judge_identity, task, cells, self.store)
        if progress:
            progress(f"judge {self.settings.judge} × {task.key}", len(cells), len(cells))
        return judged

    def table(self, model: str, task: str, factory: Callable) -> pd.DataFrame:
        key = (model, task)
        if key not in self._tables and key not in self._failures:
            self.fill([key], factory)
        if key in self._failures:
            raise HarnessError(f"{model} × {task}: {self._failures[key]}")
        return self._tables[key]

    def all_tables(self) -> list[pd.DataFrame]:
        return list(self._tables.values())
