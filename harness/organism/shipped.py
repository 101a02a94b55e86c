"""The organism as shipped in the repository: fixtures/organism/, with a manifest of sha256 sums.

Why shipped, not retrained on each machine: training amplifies last-bit differences
between CPUs (SIMD kernels, thread counts) over thousands of steps, so an organism
retrained elsewhere is a different subject, and 35 of 224 verdicts moved on another CPU
(issue 25). Inference is not so fragile: the same weights give the same answers under
torch's vector and scalar kernels (docs/organism.md has the measurement). So the default
run loads these files and never trains; `python -m harness.organism build` regenerates
them on purpose.

MANIFEST.json records, beside the sha256 of every file, the hash of the training inputs
(config.training_inputs: configuration, training code, what training reads of the
fixtures) and what the build ran on. A model folder is checked against its sums when it
is first used, so a damaged or half-replaced file is an error naming it, never a quietly
different subject.
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Optional

from harness.core import HarnessError, sha256_file

from .pipeline import NAMES

MANIFEST = "MANIFEST.json"
ENV = "MEDVLM_ORGANISM_DIR"  # load the organism from this folder instead (a build made with --out)
REGENERATE = "python -m harness.organism build"


def shipped_dir() -> Path:
    """fixtures/organism in the repository this package runs from."""
    return Path(__file__).resolve().parents[2] / "fixtures" / "organism"


def organism_dir() -> Path:
    """Where the default run loads the organism from: $MEDVLM_ORGANISM_DIR, else the shipped folder."""
    env = os.environ.get(ENV)
    return Path(env).expanduser() if env else shipped_dir()


def read_manifest(folder: Path) -> dict:
    path = Path(folder) / MANIFEST
    if not path.is_file():
        return {}
    return json.loads(path.read_text(encoding="utf-8"))


def write_manifest(folder: Path, manifest: dict) -> None:
    (Path(folder) / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def complete(folder: Path) -> bool:
    folder = Path(folder)
    return (folder / MANIFEST).is_file() and all((folder / n / "config.json").is_file() for n in NAMES)


def file_digests(folder: Path) -> dict[str, str]:
    """sha256 of every file of every model folder, by path relative to `folder`."""
    folder = Path(folder)
    out = {}
    for name in NAMES:
        for path in sorted(p for p in (folder / name).rglob("*") if p.is_file() and not p.name.startswith(".")):
            out[path.relative_to(folder).as_posix()] = sha256_file(path)
    return out


def built_with() -> dict:
    """The machine and libraries a build ran on (a retrained organism differs with them)."""
    import torch
    import transformers

    return {"torch": torch.__version__, "transformers": transformers.__version__,
            "python": platform.python_version(), "machine": platform.machine(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability()}


def manifest_for(folder: Path, config, inputs: str, facts: dict) -> dict:
    """The manifest of a fresh build in `folder`."""
    return {"format": 1, "training_inputs": inputs, "config": config.to_dict(), "built_with": built_with(),
            "files": file_digests(folder), "parameters": facts.get("parameters", {}), "timings": facts.get("timings", {})}


def changed_files(old: dict, new: dict) -> dict[str, list[str]]:
    """Files that differ between two manifests: changed, added, removed."""
    a, b = old.get("files") or {}, new.get("files") or {}
    return {"changed": sorted(k for k in a.keys() & b.keys() if a[k] != b[k]),
            "added": sorted(b.keys() - a.keys()), "removed": sorted(a.keys() - b.keys())}


def verify(folder: Path, names=NAMES) -> list[str]:
    """Problems of the shipped files of `names`: missing, or not matching the manifest's sums."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    if not manifest:
        return [f"{folder}: no {MANIFEST} (no organism here)"]
    sums = manifest.get("files") or {}
    problems = []
    for name in names:
        listed = {k: v for k, v in sums.items() if k.split("/", 1)[0] == name}
        if not listed:
            problems.append(f"{folder / name}: not in {MANIFEST}")
        for rel, digest in sorted(listed.items()):
            path = folder / rel
            if not path.is_file():
                problems.append(f"{path}: missing")
            elif sha256_file(path) != digest:
                problems.append(f"{path}: sha256 differs from {MANIFEST}")
    return problems


def stale(folder: Optional[Path] = None, config=None) -> Optional[str]:
    """None when the organism in `folder` was trained from the current training inputs, else why not."""
    from .config import OrganismConfig, training_inputs

    folder = Path(folder) if folder is not None else organism_dir()
    recorded = read_manifest(folder).get("training_inputs")
    current = training_inputs(config or OrganismConfig())
    if recorded == current:
        return None
    return (f"the organism in {folder} was trained from other code or configuration (training inputs "
            f"{str(recorded)[:12]} there, {current[:12]} now): regenerate it with `{REGENERATE}`, then "
            "`pytest --update-baseline`, and commit both")


_VERIFIED: dict[tuple[str, str], float] = {}


def resolve_builtin(name: str, folder: Optional[Path] = None) -> Path:
    """The folder of organism model `name` (e.g. "organism-llava-med"), checked against the
    manifest the first time (and again if the file changed since). Never trains."""
    if name not in NAMES:
        raise HarnessError(f"unknown organism model {name!r}; known: {', '.join(NAMES)}")
    root = Path(folder) if folder is not None else organism_dir()
    target = root / name
    manifest_path = root / MANIFEST
    stamp = manifest_path.stat().st_mtime_ns if manifest_path.is_file() else None
    if _VERIFIED.get((str(root), name)) != stamp or stamp is None:
        problems = verify(root, (name,))
        if problems:
            hint = (f"restore the shipped files (`git checkout -- {root}`) or regenerate them with `{REGENERATE}`"
                    if root == shipped_dir() else f"build one there with `{REGENERATE} --out={root}`, or unset {ENV}")
            raise HarnessError(f"organism model {name!r}: " + "; ".join(problems[:3]) + f" ({hint})")
        _VERIFIED[(str(root), name)] = stamp
    return target
