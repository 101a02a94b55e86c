"""`python -m harness.organism build|check`.

build: regenerate the organism (by default the shipped one in fixtures/organism), print how
long each stage took, which files changed, and a quick evaluation table, so whoever
rebuilds it sees at once what the models learnt and what to commit. check: are the shipped
files intact and trained from the current code and configuration?
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.organism", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="regenerate the organism's weights and print a quick evaluation")
    build.add_argument("--force", action="store_true",
                       help="retrain even when the folder holds an organism trained from the current inputs")
    build.add_argument("--out", default=None,
                       help="folder to build into (default: the shipped fixtures/organism; "
                            "load another folder with MEDVLM_ORGANISM_DIR=DIR)")
    build.add_argument("--eval-images", type=int, default=None,
                       help="held-out images per class and task for the table (default from the config; 0: none)")
    check = sub.add_parser("check", help="exit 1 unless the organism's files match their sums and its training inputs")
    check.add_argument("--dir", default=None, help="the organism folder (default: $MEDVLM_ORGANISM_DIR, else the shipped one)")
    args = parser.parse_args(argv)
    if args.command == "check":
        return _check(Path(args.dir) if args.dir else None)
    return _build(args)


def _check(folder) -> int:
    from .shipped import organism_dir, read_manifest, stale, verify

    folder = folder or organism_dir()
    problems = verify(folder) + [p for p in [stale(folder)] if p]
    for line in problems:
        print(f"organism: {line}")
    if not problems:
        built = read_manifest(folder).get("built_with", {})
        print(f"organism in {folder}: every file matches its sha256 and the training inputs are current "
              f"(built with torch {built.get('torch')}, {built.get('cpu_capability')} kernels)")
    return 1 if problems else 0


def _build(args) -> int:
    from .build import build_organism, up_to_date
    from .config import OrganismConfig, training_inputs
    from .shipped import changed_files, read_manifest, shipped_dir

    target = Path(args.out) if args.out else shipped_dir()
    cfg = OrganismConfig()
    before = read_manifest(target)
    if not args.force and up_to_date(target, training_inputs(cfg)):
        print(f"organism in {target} is up to date (trained from the current code and configuration); "
              "--force retrains it")
        paths = build_organism(target, config=cfg)
    else:
        start = time.perf_counter()
        paths = build_organism(target, force=True, config=cfg)
        after = read_manifest(target)
        print(f"organism trained into {target} in {time.perf_counter() - start:.0f} s")
        _print_build(after)
        _print_changes(before, after, changed_files(before, after), shipped=target == shipped_dir())
    n = cfg.eval_images_per_class if args.eval_images is None else args.eval_images
    if n > 0:
        _print_evaluation(paths, n)
    return 0


def _print_changes(before: dict, after: dict, diff: dict, shipped: bool) -> None:
    if not before:
        print("  a new organism (no earlier manifest in this folder)")
        return
    moved = diff["changed"] + diff["added"] + diff["removed"]
    if not moved:
        print("  no file changed: the weights are byte-identical; the manifest records the new training inputs")
        return
    for kind in ("changed", "added", "removed"):
        for rel in diff[kind]:
            print(f"  {kind}: {rel}")
    if shipped:
        print(f"  {len(moved)} files changed: this is a different organism. Run `pytest --update-baseline`, "
              "then commit fixtures/organism and baseline.toml together.")


def _print_build(manifest: dict) -> None:
    """Seconds per training stage and parameter count of each model."""
    for family, stages in manifest.get("timings", {}).items():
        parts = ", ".join(f"{k} {v:.0f} s" for k, v in stages.items())
        print(f"  {family:<10} {parts}")
    for name, count in manifest.get("parameters", {}).items():
        print(f"  {name:<22} {count:>9,} parameters")


def _print_evaluation(paths: dict, n: int) -> None:
    import tempfile

    from harness.config.registry import load_registry

    from . import evaluate

    registry = load_registry()
    cache_dir = Path(tempfile.mkdtemp(prefix="medvlm-organism-eval-"))
    start = time.perf_counter()
    results = {}
    for name, folder in paths.items():
        if name != "organism-diagnoser":
            results[name] = evaluate.evaluate_vlm(folder, registry, n, cache_dir)
    print(f"\nquick evaluation: {n} held-out images per class (seed 42), 12 prompt variants "
          f"({time.perf_counter() - start:.0f} s); BA = balanced accuracy, refusals wrong; "
          "flip = share of images whose answer changes within a perturbation pair")
    print(evaluate.format_table(results))
    print("\nBA per prompt variant")
    print(evaluate.format_variants(results))
    gaps = evaluate.describe_check(paths, registry, n, cache_dir)
    if gaps:
        print("\ndescriptions read by the diagnoser (BA over 2 describe prompts x 3 templates)")
        print(gaps)


if __name__ == "__main__":
    sys.exit(main())
