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


def subjects(names: list[str] | None, *, smoke: bool = False) -> tuple[list[ModelSpec], str]:
    """ModelSpecs for registry `names`; default: the organism's two medical VLMs.

    Smoke mode uses the untrained tiny-llava (no organism build needed): seconds, not minutes.
    """
    registry = load_registry()
    note = ""
    if not names:
        names, note = (["tiny-llava"], "smoke mode: tiny-llava only") if smoke else (ORGANISM_MODELS, "")
    unknown = [n for n in names if n not in registry.models]
    if unknown:
        raise SystemExit(f"unknown model(s) {', '.join(unknown)}: not in fixtures/models.toml")
    return [registry.models[n] for n in names], note


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
