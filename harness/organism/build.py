"""Building the organism on purpose: train everything into a folder, with its manifest.

The default run never trains (the weights are shipped, see shipped.py). This module is
what `python -m harness.organism build` runs to regenerate them: it trains in a temp
folder next to the target, writes the manifest (sha256 of every file, the hash of the
training inputs, what it was built with) and renames it into place, under an exclusive
file lock, so two builds into one folder train once and nobody sees half a folder.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Optional

from .config import OrganismConfig, training_inputs
from .pipeline import NAMES, train_all
from .shipped import complete, manifest_for, read_manifest, write_manifest


def up_to_date(folder: Path, inputs: str) -> bool:
    """A complete organism in `folder` trained from these training inputs."""
    return complete(folder) and read_manifest(folder).get("training_inputs") == inputs


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


def build_organism(target: Path, force: bool = False, config: Optional[OrganismConfig] = None,
                   log: Callable[[str], None] = print) -> dict[str, Path]:
    """Train every organism model into `target` (name -> model folder).

    A complete folder trained from the same inputs is kept unless `force`; otherwise it is
    replaced as a whole, so a folder never mixes two builds.
    """
    cfg = config or OrganismConfig()
    target = Path(target)
    inputs = training_inputs(cfg)
    if not force and up_to_date(target, inputs):
        return _paths(target)
    with _locked(target.parent / f".{target.name}.lock"):
        if not force and up_to_date(target, inputs):  # another process built it while we waited
            return _paths(target)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            facts = train_all(cfg, tmp, log)
            write_manifest(tmp, manifest_for(tmp, cfg, inputs, facts))
            _replace(tmp, target)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return _paths(target)


def _paths(folder: Path) -> dict[str, Path]:
    return {n: folder / n for n in NAMES}


def _replace(new: Path, target: Path) -> None:
    """Move `new` to `target`, first moving an existing target aside."""
    if target.exists():
        old = target.with_name(f".{target.name}.old.{os.getpid()}")
        os.rename(target, old)
        shutil.rmtree(old, ignore_errors=True)
    os.rename(new, target)
