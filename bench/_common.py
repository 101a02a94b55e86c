"""Shared helpers of the bench/ scripts: subjects, grids, timing, the figure line.

Every script prints its raw numbers, then its figure as the LAST line
(`name: value`), and measures ratios within one process (both arms in the same run,
back to back), because this machine may be shared: absolute seconds are noisy, a ratio
of two arms measured minutes apart would be noisier still.
"""

from __future__ import annotations

import os
import platform
import tempfile
import time
from pathlib import Path

from harness.config.registry import load_registry
from harness.core import ModelSpec

REPO = Path(__file__).resolve().parents[1]
ORGANISM_MODELS = ["organism-llava-med", "organism-gemma-med"]
TINY_MODELS = ["tiny-llava", "tiny-gemma3"]


def machine() -> str:
    """A one-line description of where the numbers came from."""
    gpu = "no GPU"
    try:
        import torch

        if torch.cuda.is_available():
            gpu = torch.cuda.get_device_name(0)
    except Exception:  # noqa: BLE001 - the description is informational
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{os.cpu_count()} CPU cores ({platform.machine()}), {gpu}, load average {load:.2f} at start"


def subjects(names: list[str] | None, cache_dir: Path, *, smoke: bool = False) -> tuple[list[ModelSpec], str]:
    """ModelSpecs for `names` (registry names, or organism names the organism can build).

    Default: the organism models when `harness.organism` can build them
    (`resolve_builtin(name, cache_dir)`) or the registry knows them, else the tiny
    random-weight models, with a note saying so.
    """
    registry = load_registry()
    note = ""
    if not names:
        if smoke:
            names, note = ["tiny-llava"], "smoke mode: tiny-llava only"
        elif all(n in registry.models for n in ORGANISM_MODELS) or _organism_resolver() is not None:
            names = ORGANISM_MODELS
        else:
            names = TINY_MODELS
            note = ("note: the organism models are not available here (harness.organism has no resolve_builtin "
                    "and the registry has no organism entries); using the tiny random-weight models")
    specs = []
    resolver = _organism_resolver()
    for name in names:
        if name in registry.models:
            specs.append(registry.models[name])
        elif resolver is not None and name.startswith("organism-"):  # trained on first use, then cached
            specs.append(ModelSpec(name=name, backend="hf", model="builtin:" + name))
        else:
            raise SystemExit(f"unknown model {name!r}: not in the registry and no organism resolver")
    return specs, note


def _organism_resolver():
    try:
        import harness.organism as organism
    except ImportError:
        return None
    return getattr(organism, "resolve_builtin", None)


def grid(task_keys: list[str] | None, n_per_class: int, seed: int = 42):
    """(registry, tasks, items by task, variants) of the synthetic study grid."""
    from harness.data.sources import load_synthetic

    registry = load_registry()
    keys = task_keys or list(registry.tasks)
    tasks = [registry.tasks[k] for k in keys]
    items = {t.key: load_synthetic(t, n_per_class, seed) for t in tasks}
    return registry, tasks, items, list(registry.variants.values())


def temp_dir(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix))


class Timer:
    """with Timer() as t: ...; t.seconds"""

    def __enter__(self):
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self._start


def csv_arg(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None
