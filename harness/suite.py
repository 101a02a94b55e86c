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
from .fill.scheduler import Filler
from .fill.closed_form import RunStats
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
        if self.registry is not None and self.thresholds is not None:
            problems.extend(self._blank_variant_problems())
        if problems:
            raise ConfigError("medvlm-fragility configuration", problems)
        self.variants = list(self.registry.variants.values())
        self.store = ResponseStore(settings.cache_dir / "responses.sqlite")
        self._items: dict[tuple[str, int], list[ImageItem]] = {}
        self._hf_pools: dict[str, list[ImageItem]] = {}
        # (stage, model, task, images per class) -> table / embeddings, one per look filled
        self.results: dict[tuple[str, str, str, int], object] = {}
        self.failures: dict[tuple[str, str, str, int], Exception] = {}
        self.fill_stats: dict[tuple[str, str], RunStats] = {}
        self.remote_destinations: set[str] = set()
        # "<model>: <line>" for what endpoint backends noticed about their servers (e.g. a
        # server that ignored response_format), gathered when each backend is closed
        self.endpoint_notes: set[str] = set()
        # model -> what its checkpoint preflight replaced, repaired or found changed (hf models;
        # harness/backends/hf_preflight.py), for the report header and summary.md
        self.checkpoint_notes: dict[str, list[str]] = {}
        self._content_free_colours: dict[str, tuple[int, int, int]] = {}  # task -> the stand-ins' colour

    def _blank_variant_problems(self) -> list[str]:
        from .config.schema import did_you_mean

        wanted = self.thresholds.image_reliance["variants"]
        if wanted == "all":
            return []
        known = list(self.registry.variants)
        return [f"thresholds [image_reliance] variants: {name!r} is not a prompt variant{did_you_mean(name, known)}"
                for name in wanted if name not in self.registry.variants]

    @property
    def blank_variants(self) -> list:
        """The variants asked with the content-free images ([image_reliance] variants; default all)."""
        wanted = self.thresholds.image_reliance["variants"]
        return list(self.variants) if wanted == "all" else [v for v in self.variants if v.key in wanted]

    def content_free_colour(self, task: TaskSpec) -> tuple[int, int, int]:
        """The stand-ins' colour: the mean of the first look's images, computed once per task, so
        every look asks about the same stand-ins (a later look's are new images, not new colours)."""
        if task.key not in self._content_free_colours:
            from .data.content_free import mean_colour

            self._content_free_colours[task.key] = mean_colour(self.items(task))
        return self._content_free_colours[task.key]

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

    @property
    def design(self):
        """The looks of this run (harness.stats.sequential): images per class at each look and
        the confidence of each look's bounds; one look when [sequential] allows no more."""
        if getattr(self, "_design", None) is None:
            from .stats.sequential import make_design

            seq = self.thresholds.sequential
            self._design = make_design(self.settings.n_per_class, int(seq["max_n_per_class"]), int(seq["step_per_class"]),
                                       self.thresholds.confidence, float(seq["spending_gamma"]),
                                       float(seq["min_decide_chance"]))
        return self._design

    def items(self, task: TaskSpec, n: Optional[int] = None) -> list[ImageItem]:
        """The balanced, seeded sample of a task's images at `n` per class (default: the first
        look, --n-per-class); a larger draw extends a smaller one (loaded once per process).
        A later look may ask for more images than a class has: it gets them all, silently (the
        verdict says that the data ran out), while a short first look warns as before."""
        if n and n > self.settings.n_per_class:
            import warnings

            from .data.sampling import SamplingWarning

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", SamplingWarning)
                return self._sample(task, n)
        return self._sample(task, n or self.settings.n_per_class)

    def probe_items(self, task: TaskSpec, n: Optional[int] = None) -> list[ImageItem]:
        """The images embedded for the probe: `images_per_class` per class, at least the answered
        sample, and containing it (a larger draw extends the smaller one), so the reasoning gap
        pairs the probe with the direct answers on the same images."""
        import warnings

        from .data.sampling import SamplingWarning

        wanted = max(n or self.settings.n_per_class, int(self.thresholds.embedding_separability["images_per_class"]))
        with warnings.catch_warnings():  # a class smaller than the probe's wish is used whole, as intended
            warnings.simplefilter("ignore", SamplingWarning)
            return self._sample(task, wanted)

    def _sample(self, task: TaskSpec, n_per_class: int) -> list[ImageItem]:
        key = (task.key, n_per_class)
        if key not in self._items:
            from .data import hf_datasets, sampling, sources

            s = self.settings
            if self._explicit_items is not None:
                pool = self._explicit_items.get(task.key, [])
                if not pool:
                    raise HarnessError(f"task {task.key!r}: no images in {s.manifest or s.data_root}")
                chosen = sampling.sample_balanced(pool, n_per_class, s.seed)
            elif s.hf_datasets:
                if task.key not in self._hf_pools:
                    self._hf_pools[task.key] = hf_datasets.load_hf_dataset(task)
                chosen = sampling.sample_balanced(self._hf_pools[task.key], n_per_class, s.seed)
            else:
                chosen = sources.load_synthetic(task, n_per_class, s.seed)
                self._remember_pixel_hashes(task, chosen)
            self._items[key] = chosen
        return self._items[key]

    def _remember_pixel_hashes(self, task: TaskSpec, items: list[ImageItem]) -> None:
        """Generated images: their pixel hashes (every cache key needs one) come from the store
        when an earlier run computed them, else are computed once and stored."""
        from .data.sources import synthetic_hash_key

        keys = {item.image_id: synthetic_hash_key(item) for item in items}
        known = self.store.get_many(list(keys.values()))
        rows = []
        for item in items:
            key = keys[item.image_id]
            if key in known:
                item.sha256 = known[key]
            else:
                rows.append({"key": key, "stage": "image_sha", "model": "synthetic", "task": task.key,
                             "image_id": item.image_id, "variant": None, "text": item.sha256})
        self.store.put_many(rows)

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

    def fill(self, needs: dict, factory: Callable, progress=None, n: Optional[int] = None) -> None:
        """Fill the store for {(model, task): {stages}} at `n` images per class (default: the
        first look); each model loads at most once."""
        Filler(self, factory, progress, n=n or self.settings.n_per_class).run(needs)

    def _result(self, stage: str, model: str, task: str, factory: Callable, n: Optional[int] = None):
        key = (stage, model, task, n or self.settings.n_per_class)
        if key not in self.results and key not in self.failures:
            self.fill({(model, task): {stage}}, factory, n=key[3])
        if key in self.failures:
            raise self.failures[key]
        return self.results[key]

    def table(self, model: str, task: str, factory: Callable, n: Optional[int] = None) -> pd.DataFrame:
        """The closed-form response table of one subject at `n` images per class."""
        return self._result("closed", model, task, factory, n)

    def description_table(self, model: str, task: str, factory: Callable, n: Optional[int] = None) -> pd.DataFrame:
        return self._result("describe", model, task, factory, n)

    def blank_table(self, model: str, task: str, factory: Callable, n: Optional[int] = None) -> pd.DataFrame:
        """The closed-form answers about the content-free stand-ins of one subject's images."""
        return self._result("blank", model, task, factory, n)

    def embeddings(self, model: str, task: str, factory: Callable, n: Optional[int] = None):
        return self._result("embed", model, task, factory, n)

    def latest(self, stage: str, model: str, task: str):
        """The result of the largest look filled for a stage and subject (None if none): the
        report and responses.csv show every image a run asked about."""
        found = [(k[3], v) for k, v in self.results.items() if k[:3] == (stage, model, task)]
        return max(found, key=lambda kv: kv[0])[1] if found else None

    def all_tables(self) -> list[pd.DataFrame]:
        cells = {(stage, m, t) for (stage, m, t, _) in self.results if stage in ("closed", "blank")}
        return [self.latest(stage, m, t) for stage, m, t in sorted(cells, key=lambda c: (c[1], c[2], c[0] != "closed"))]
