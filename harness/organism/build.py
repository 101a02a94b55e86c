"""Building the whole organism once, into a content-addressed cache folder.

`build_organism(cache_dir)` trains the four VLMs and the diagnoser into
`cache_dir/organism/<key[:12]>/<name>`, where the key hashes everything that changes
the weights (config.organism_key). The build happens in a temp folder that is renamed
into place when complete, under an exclusive file lock, so pytest-xdist workers that
ask at the same time wait for one build instead of racing (and never see half a
folder). A finished folder is reused as is.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Optional

from harness.core import HarnessError

from .config import OrganismConfig, organism_key

NAMES = (
    "organism-llava-base", "organism-llava-med", "organism-gemma-base", "organism-gemma-med", "organism-gemma-med-v2",
    "organism-diagnoser",
)
MANIFEST = "organism.json"


def organism_root(cache_dir: Path, config: Optional[OrganismConfig] = None) -> Path:
    """The folder a build with `config` (default: OrganismConfig()) lives in."""
    return Path(cache_dir) / "organism" / organism_key(config or OrganismConfig())[:12]


def _complete(folder: Path) -> bool:
    return (folder / MANIFEST).is_file() and all((folder / n / "config.json").is_file() for n in NAMES)


def _paths(folder: Path) -> dict[str, Path]:
    return {n: folder / n for n in NAMES}


@contextlib.contextmanager
def _locked(path: Path):
    """An exclusive advisory lock on `path` (created if missing), held for the block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def build_organism(cache_dir: Path, force: bool = False, config: Optional[OrganismConfig] = None,
                   log: Callable[[str], None] = print) -> dict[str, Path]:
    """Build (or reuse) every organism model; returns name -> model folder.

    `force` rebuilds even when a complete folder exists (and replaces it).
    """
    cfg = config or OrganismConfig()
    target = organism_root(cache_dir, cfg)
    if not force and _complete(target):
        return _paths(target)
    with _locked(target.parent / f"{target.name}.lock"):
        if not force and _complete(target):  # another process built it while we waited
            return _paths(target)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            manifest = _train_all(cfg, tmp, log)
            manifest["key"] = organism_key(cfg)
            (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str))
            _replace(tmp, target)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return _paths(target)


def _replace(new: Path, target: Path) -> None:
    """Move `new` to `target`, first moving an existing target aside (forced rebuilds)."""
    if target.exists():
        old = target.with_name(f".{target.name}.old.{os.getpid()}")
        os.rename(target, old)
        shutil.rmtree(old, ignore_errors=True)
    os.rename(new, target)


def organism_home() -> Path:
    """Where builds live by default: $MEDVLM_ORGANISM_DIR, else the user's cache folder.

    Shared across runs and response caches on purpose: the build is keyed by a hash of
    everything that changes its weights, so a run with a fresh --cache-dir (the
    harness's own tests, a CI job) reuses a build instead of training for minutes again.
    """
    env = os.environ.get("MEDVLM_ORGANISM_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "medvlm-fragility"


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def resolve_builtin(name: str, cache_dir: Optional[Path] = None) -> Path:
    """The folder of organism model `name` (e.g. "organism-llava-med"), building all if needed.

    `cache_dir` defaults to organism_home().
    """
    if name not in NAMES:
        raise HarnessError(f"unknown organism model {name!r}; known: {', '.join(NAMES)}")
    root = Path(cache_dir) if cache_dir is not None else organism_home()
    if not _complete(organism_root(root)):
        _stderr(f"medvlm: training the model organism into {root} (once; a few minutes on a CPU)")
    return build_organism(root, log=_stderr)[name]


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


def _train_all(cfg: OrganismConfig, out: Path, log: Callable[[str], None]) -> dict:
    """Train everything into `out`; returns the manifest (timings, sizes, versions)."""
    import torch
    import transformers

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
    return {
        "names": list(NAMES), "timings": timings, "config": cfg.to_dict(),
        "parameters": {n: _parameters(out / n) for n in NAMES},
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
    }


def _parameters(folder: Path) -> int:
    """Parameter count of a saved model, read from its safetensors header (no loading)."""
    from safetensors import safe_open

    total = 0
    for file in sorted(folder.glob("*.safetensors")):
        with safe_open(file, "pt") as fh:
            for name in fh.keys():
                total += _numel(fh.get_slice(name).get_shape())
    return total


def _numel(shape) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n
