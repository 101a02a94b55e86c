"""`python -m harness.rehearsal`: the study's four checkpoints rehearsed at their real geometry.

    python -m harness.rehearsal                      # one layer per stack, bf16, this machine (CPU)
    python -m harness.rehearsal --full-depth --device cuda    # on a GPU
    python -m harness.rehearsal --names gemma-3-4b-it --break gemma-image-token   # must fail

For each checkpoint (or `--names`), in a process of its own (so its peak memory is its own):
build the random-weight model from the checkpoint's completed config (harness/rehearsal/
build.py), then run it through the suite's HF backend (run.py). Prints one row per checkpoint
and exits 1 if any row is not ok. `--json FILE` writes the rows.

`--break` plants a known mistake, to show the rehearsal catches it:
  llava-med-template   the LLaVA-Med entry without its chat-template override (the
                       conversion ships none that renders an image message)
  gemma-image-token    a Gemma-3 config whose image token is not the processor's
  padding-side         LLaVA-NeXT's tokenizer padding on the right (a batch then reads the
                       next token after the padding, not after the prompt)
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NAMES = ("llava-v1.6-mistral-7b", "llava-med-v1.5-mistral-7b", "gemma-3-4b-it", "medgemma-4b-it")
BREAKS = {
    "llava-med-template": ("llava-med-v1.5-mistral-7b", {"drop": ("chat_template",)}),
    "gemma-image-token": ("gemma-3-4b-it", {"image_token_index": 262143}),
    "padding-side": ("llava-v1.6-mistral-7b", {"padding_side": "right"}),
}
COLUMNS = ("checkpoint", "image_tokens", "peak_memory_mb", "s_per_item_b1", "s_per_item_b8", "batch_invariant",
           "preflight_clean", "ok")


def one(name: str, *, depth, shrink: bool, device: str, dtype, broken: str | None, workdir: Path) -> dict:
    """Build and rehearse one checkpoint in this process."""
    from .build import CI_SHRINK, build_rehearsal_model
    from .run import rehearse

    plant = BREAKS[broken][1] if broken else {}

    def edit(config: dict) -> None:
        if "image_token_index" in plant:
            config["image_token_index"] = plant["image_token_index"]

    start = time.perf_counter()
    folder = workdir / name
    try:
        build_rehearsal_model(name, folder, depth=depth, shrink=CI_SHRINK if shrink else None, config_edit=edit,
                              device=device)
    except Exception as exc:  # noqa: BLE001 - a build that fails is a row that is not ok
        return {"checkpoint": name, "ok": False, "error": f"build: {type(exc).__name__}: {exc}"}
    built = time.perf_counter() - start
    row = rehearse(name, folder, device=device, dtype=dtype, drop=plant.get("drop", ()),
                   padding_side=plant.get("padding_side"))
    shutil.rmtree(folder, ignore_errors=True)  # at full depth a folder is 8 to 15 GB
    row["build_s"] = round(built, 1)
    row["seconds"] = round(time.perf_counter() - start, 1)
    row["broken"] = broken
    return row


def _row_text(row: dict) -> str:
    def cell(key):
        value = row.get(key)
        if isinstance(value, bool):
            return "yes" if value else "no"
        return "-" if value is None else str(value)

    return "  ".join(f"{cell(k):>{max(len(k), 10) if k != 'checkpoint' else 26}}" for k in COLUMNS)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.rehearsal", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--names", default=",".join(NAMES), help="checkpoints (registry names)")
    parser.add_argument("--depth", type=int, default=1, help="layers per stack (default 1)")
    parser.add_argument("--full-depth", action="store_true", help="every layer (for a GPU)")
    parser.add_argument("--shrink", action="store_true", help="narrow widths for CI (never the image geometry)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="bfloat16",
                        help="bfloat16 (default: the checkpoints' published dtype, and the HF backend's on a GPU) "
                             "or float32")
    parser.add_argument("--break", dest="broken", choices=sorted(BREAKS), default=None)
    parser.add_argument("--json", default=None, help="write the rows to this file")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)  # the per-checkpoint child process
    parser.add_argument("--workdir", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    depth = None if args.full_depth else args.depth
    if args.one:
        row = one(args.one, depth=depth, shrink=args.shrink, device=args.device, dtype=args.dtype,
                  broken=args.broken, workdir=Path(args.workdir))
        print(json.dumps(row))
        return 0
    names = [n.strip() for n in args.names.split(",") if n.strip()]
    if args.broken:
        names = [BREAKS[args.broken][0]]
    rows = []
    print("  ".join(f"{k:>{max(len(k), 10) if k != 'checkpoint' else 26}}" for k in COLUMNS))
    with tempfile.TemporaryDirectory(prefix="rehearsal-models-") as workdir:
        for name in names:
            cmd = [sys.executable, "-m", "harness.rehearsal", "--one", name, "--workdir", workdir,
                   "--device", args.device, f"--depth={args.depth}"]
            cmd += ["--full-depth"] if args.full_depth else []
            cmd += ["--shrink"] if args.shrink else []
            cmd += ["--dtype", args.dtype] if args.dtype else []
            cmd += ["--break", args.broken] if args.broken else []
            done = subprocess.run(cmd, capture_output=True, text=True)
            lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
            row = json.loads(lines[-1]) if lines else {"checkpoint": name, "ok": False,
                                                       "error": (done.stderr or done.stdout)[-800:]}
            rows.append(row)
            print(_row_text(row), flush=True)
            if row.get("error"):
                print(f"    {row['error'][:400]}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    return 0 if rows and all(r.get("ok") for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
