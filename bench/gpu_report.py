"""The GPU check's report and its vLLM step (run by bench/gpu.sh; issue 19).

    python bench/gpu_report.py --out DIR            # items per second and the study-grid projection
    python bench/gpu_report.py --out DIR --vllm     # serve LLaVA-Med's rehearsal model with vLLM (dummy weights)
    python bench/gpu_report.py --out DIR --dry      # check the steps without a GPU

The projection is arithmetic from the rehearsal's measured rows (DIR/rehearsal.json): per
model, the study grid's 4,800 closed-form answers (SPEC 9: 4 tasks x 100 images x 12
prompts) at the batch-8 seconds per item, plus 800 descriptions at the measured seconds per
description; embeddings are a vision-tower pass each and left out. It is for the in-process
HF backend at full depth; SPEC 9's target (under 30 minutes on one H200) is for vLLM. Last
line: `projected_study_grid_minutes: X`.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CLOSED_PER_MODEL = 4 * 100 * 12  # SPEC 9: 4 tasks x 100 images x 12 prompts
GRID_ANSWERS = 100 * 2 * 12  # one task's closed-form grid at the suite's 100 images per class
DESCRIPTIONS_PER_MODEL = 4 * 100 * 2  # two describe prompts per image
TARGET_MINUTES = 30


def projection(rows: list[dict]) -> dict:
    per_model = {}
    for row in rows:
        if not row.get("ok") or not row.get("s_per_item_b8"):
            continue
        seconds = CLOSED_PER_MODEL * row["s_per_item_b8"] + DESCRIPTIONS_PER_MODEL * (row.get("describe_s_per_item") or 0)
        per_model[row["checkpoint"]] = {"items_per_second": round(1.0 / row["s_per_item_b8"], 2),
                                        "minutes": round(seconds / 60, 1)}
    total = round(sum(m["minutes"] for m in per_model.values()), 1) if per_model else None
    return {"per_model": per_model, "minutes": total, "target_minutes": TARGET_MINUTES}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def vllm_step(out: Path) -> dict:
    """Serve LLaVA-Med's rehearsal model (config, processor, tokenizer; weights drawn by vLLM with
    --load-format dummy) and run one task's closed-form grid through the OpenAI backend."""
    from harness.rehearsal.build import rehearsal_config, save_processor_files
    from harness.backends.checkpoint_snapshot import load_snapshot

    name = "llava-med-v1.5-mistral-7b"
    folder = Path(tempfile.mkdtemp(prefix="vllm-model-"))
    snapshot = load_snapshot(name)
    config = rehearsal_config(snapshot, depth=None)
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    save_processor_files(snapshot, folder, config, as_shipped=False)  # the repaired processor and LLaVA-Med's template
    port = _free_port()
    cmd = ["vllm", "serve", str(folder), "--load-format", "dummy", "--served-model-name", "rehearsal-llava-med",
           "--host", "127.0.0.1", "--port", str(port), "--dtype", "bfloat16", "--max-model-len", "4096"]
    log = open(out / "vllm.log", "w")
    server = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                time.sleep(2)
        models = models_file(out, port)
        start = time.perf_counter()
        done = subprocess.run(grid_command(out, models), capture_output=True, text=True, timeout=240)
        seconds = time.perf_counter() - start
        return {"answers": GRID_ANSWERS, "seconds": round(seconds, 1),
                "items_per_second": round(GRID_ANSWERS / seconds, 1), "pytest_exit": done.returncode,
                "pytest_tail": done.stdout[-500:]}
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)


def models_file(out: Path, port: int) -> Path:
    """A registry entry for the served rehearsal model (the OpenAI backend)."""
    path = out / "vllm-models.toml"
    path.write_text(f'[models.rehearsal-llava-med]\nbackend = "openai"\nmodel = "rehearsal-llava-med"\n'
                    f'base_url = "http://127.0.0.1:{port}/v1"\nconcurrency = 64\n')
    return path


def grid_command(out: Path, models: Path) -> list[str]:
    """The suite on one task's closed-form grid (near_random reads it all: 12 prompts x 100
    images per class, one look) for the served model."""
    return [sys.executable, "-m", "pytest", str(REPO / "tests"), "-q", "-p", "no:cacheprovider",
            f"--models-file={models}", "--models=rehearsal-llava-med", "--tasks=brain_tumor", "-m", "near_random",
            f"--cache-dir={out / 'vllm-cache'}", f"--baseline={out / 'no-baseline.toml'}",
            f"--thresholds={_one_look(out)}"]


def _one_look(out: Path) -> Path:
    path = out / "one-look.toml"
    path.write_text("[sequential]\nmax_n_per_class = 0\n")
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--vllm", action="store_true")
    parser.add_argument("--dry", action="store_true")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    report_path = args.out / "gpu.json"
    report = json.loads(report_path.read_text()) if report_path.is_file() else {}
    if args.dry:  # the projection on a made-up row, and the vLLM step's pytest command collected: no GPU needed
        sample = [{"checkpoint": "sample", "ok": True, "s_per_item_b8": 0.05, "describe_s_per_item": 0.5}]
        report.update({"dry": True, "projection_check": projection(sample)})
        assert report["projection_check"]["minutes"] == round((4800 * 0.05 + 800 * 0.5) / 60, 1)
        models = models_file(args.out, 9)  # nothing listens there: collection only
        collected = subprocess.run(grid_command(args.out, models) + ["--collect-only"], capture_output=True,
                                   text=True, timeout=300)
        count = sum(1 for line in collected.stdout.splitlines() if "::" in line)
        report["vllm_step_collects"] = count
        print(f"dry: the vLLM step's pytest command collects {count} tests (exit {collected.returncode})")
        if collected.returncode != 0 or count == 0:
            print(collected.stdout[-1500:], collected.stderr[-1500:])
            return 1
    elif args.vllm:
        report["vllm"] = vllm_step(args.out)
        rate = report["vllm"]["items_per_second"]
        minutes = round(4 * (CLOSED_PER_MODEL + DESCRIPTIONS_PER_MODEL) / rate / 60, 1)
        report["vllm"]["projected_study_grid_minutes"] = minutes
        print(f"vllm_items_per_second: {rate}")
        print(f"projected_study_grid_minutes_vllm: {minutes} (4 models x 5,600 generations at that rate; "
              f"SPEC target under {TARGET_MINUTES} on one H200)")
    else:
        rows = json.loads((args.out / "rehearsal.json").read_text())
        report["rehearsal"] = rows
        report["projection"] = projection(rows)
        for name, m in report["projection"]["per_model"].items():
            print(f"{name}: {m['items_per_second']} closed-form items per second (batch 8), {m['minutes']} min of the grid")
        print(f"projected_study_grid_minutes: {report['projection']['minutes']} (in-process HF backend, full depth; "
              f"SPEC target {TARGET_MINUTES} through vLLM)")
    report_path.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
