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

from .config.registry import DEFAULT_MODELS, DEFAULT_TASKS, load_registry, select
from .config.thresholds import load_thresholds
from .core import ConfigError, HarnessError, ImageItem, ModelSpec, TaskSpec
from .filler import Filler
from .runner import RunStats
from .store import ResponseStore

DEFAULT_DIAGNOSER = "organism-diagnoser"


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
        # The manifest / image folder is checked in the same round, so one run lists every
        # problem (it needs the registry's tasks, so only a broken registry hides it).
        self._explicit_items = None
        if self.registry is not None and self.tasks is not None:
            self._explicit_items = self._load(problems, self._load_explicit_data)
        if problems:
            raise ConfigError("medvlm-fragility configuration", problems)
        self.variants = list(self.registry.variants.values())
        self.store = ResponseStore(settings.cache_dir / "responses.sqlite")
        self._items: dict[str, list[ImageItem]] = {}
        self.results: dict[tuple[str, str, str], object] = {}  # (stage, model, task) -> table / embeddings
        self.failures: dict[tuple[str, str, str], Exception] = {}
        self.fill_stats: dict[tuple[str, str], RunStats] = {}
        self.remote_destinations: set[str] = set()

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
            from .data import hf_datasets, sampling, sources

            s = self.settings
            if self._explicit_items is not None:
                pool = self._explicit_items.get(task.key, [])
                if not pool:
                    raise HarnessError(f"task {task.key!r}: no images in {s.manifest or s.data_root}")
                chosen = sampling.sample_balanced(pool, s.n_per_class, s.seed)
            elif s.hf_datasets:
                chosen = sampling.sample_balanced(hf_datasets.load_hf_dataset(task), s.n_per_class, s.seed)
            else:
                chosen = sources.load_synthetic(task, s.n_per_class, s.seed)
            self._items[task.key] = chosen
        return self._items[task.key]

    # -- responses ------------------------------------------------------------------------
    def model(self, name: str) -> ModelSpec:
        return self.registry.models[name]

    def task(self, key: str) -> TaskSpec:
        return self.registry.tasks[key]

    @property
    def diagnoser_name(self) -> Optional[str]:
        """--diagnoser, else the embedded organism's diagnoser when the registry has one."""
        if self.settings.diagnoser:
            return self.settings.diagnoser
        return DEFAULT_DIAGNOSER if DEFAULT_DIAGNOSER in self.registry.models else None

    def fill(self, needs: dict, factory: Callable, progress=None) -> None:
        """Fill the store for {(model, task): {stages}}; each model loads at most once."""
        Filler(self, factory, progress).run(needs)

    def _result(self, stage: str, model: str, task: str, factory: Callable):
        key = (stage, model, task)
        if key not in self.results and key not in self.failures:
            self.fill({(model, task): {stage}}, factory)
        if key in self.failures:
            raise self.failures[key]
        return self.results[key]

    def table(self, model: str, task: str, factory: Callable) -> pd.DataFrame:
        """The closed-form response table of one subject."""
        return self._result("closed", model, task, factory)

    def description_table(self, model: str, task: str, factory: Callable) -> pd.DataFrame:
        return self._result("describe", model, task, factory)

    def embeddings(self, model: str, task: str, factory: Callable):
        return self._result("embed", model, task, factory)

    def all_tables(self) -> list[pd.DataFrame]:
        return [v for (stage, _, _), v in self.results.items() if stage == "closed"]
