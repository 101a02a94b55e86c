"""`python -m harness.organism build [--force] [--cache-dir DIR]`.

Builds the organism (or finds it in the cache), prints how long each stage took and a
quick evaluation table, so whoever builds it sees at once what the models learnt.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.organism", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="build the organism models (cached) and print a quick evaluation")
    build.add_argument("--force", action="store_true", help="rebuild even if the cache holds a complete build")
    build.add_argument("--cache-dir", default=None,
                       help="folder for builds (default: $MEDVLM_ORGANISM_DIR, else ~/.cache/medvlm-fragility)")
    build.add_argument("--eval-images", type=int, default=None,
                       help="held-out images per class and task for the table (default from the config; 0: none)")
    args = parser.parse_args(argv)

    from .build import MANIFEST, build_organism, organism_home
    from .config import OrganismConfig

    cache_dir = Path(args.cache_dir) if args.cache_dir else organism_home()

    cfg = OrganismConfig()
    start = time.perf_counter()
    paths = build_organism(cache_dir, force=args.force, config=cfg)
    built = time.perf_counter() - start
    root = next(iter(paths.values())).parent
    manifest = json.loads((root / MANIFEST).read_text())
    print(f"organism in {root} ({built:.0f} s{'' if args.force or built > 5 else ', from the cache'})")
    _print_build(manifest)
    n = cfg.eval_images_per_class if args.eval_images is None else args.eval_images
    if n > 0:
        _print_evaluation(paths, n, cache_dir)
    print(f"total {time.perf_counter() - start:.0f} s")
    return 0


def _print_build(manifest: dict) -> None:
    """Seconds per training stage and parameter count of each model."""
    for family, stages in manifest["timings"].items():
        parts = ", ".join(f"{k} {v:.0f} s" for k, v in stages.items())
        print(f"  {family:<10} {parts}")
    for name, count in manifest["parameters"].items():
        print(f"  {name:<22} {count:>9,} parameters")


def _print_evaluation(paths: dict, n: int, cache_dir: Path) -> None:
    from harness.config.registry import load_registry

    from . import evaluate

    registry = load_registry()
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
