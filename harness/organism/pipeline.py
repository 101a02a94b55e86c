"""The whole training of the organism, in order: images, both VLM families, the diagnoser.

Kept apart from build.py (which only decides where a build goes and what it replaces) so
that the hash of the training inputs (config.training_inputs) covers exactly the code that
changes the weights: editing how a build is stored or shipped must not mark the shipped
weights as stale.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Callable

from .config import OrganismConfig

NAMES = (
    "organism-llava-base", "organism-llava-med", "organism-gemma-base", "organism-gemma-med", "organism-gemma-med-v2",
    "organism-diagnoser",
)


@contextlib.contextmanager
def _threads(n: int):
    """torch on `n` threads for the block (fixed, so that builds are reproducible)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def train_all(cfg: OrganismConfig, out: Path, log: Callable[[str], None]) -> dict:
    """Train everything into `out`; returns the manifest's build facts (timings, sizes)."""
    from harness.config.registry import load_registry

    from . import diagnoser, med_data, vlm

    registry = load_registry()  # the repo's own fixtures: the organism must not depend on user files
    timings: dict[str, dict] = {}
    with _threads(cfg.threads):
        start = time.perf_counter()
        bank = vlm.make_bank(cfg, [registry.tasks[k] for k in med_data.MED_TASKS])
        timings["images"] = {"total": time.perf_counter() - start}
        log(f"  images: {len(bank.images)} generated in {timings['images']['total']:.0f} s")
        for family in ("llava", "gemma"):
            timings[family] = vlm.train_family(
                family, cfg, registry, bank, out / f"organism-{family}-base", out / f"organism-{family}-med", log)
        start = time.perf_counter()
        diagnoser.train_diagnoser(cfg, registry, bank.facts[: bank.n_general], out / "organism-diagnoser", log)
        timings["diagnoser"] = {"total": time.perf_counter() - start}
    return {"names": list(NAMES), "timings": timings, "parameters": {n: parameters(out / n) for n in NAMES}}


def parameters(folder: Path) -> int:
    """Parameter count of a saved model, read from its safetensors header (no loading)."""
    from safetensors import safe_open

    total = 0
    for file in sorted(folder.glob("*.safetensors")):
        with safe_open(file, "pt") as fh:
            for name in fh.keys():
                n = 1
                for d in fh.get_slice(name).get_shape():
                    n *= int(d)
                total += n
    return total
