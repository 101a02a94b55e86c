"""pytest-xdist: workers pinned one GPU each, and the same verdicts as a serial run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from harness.plugin.gpus import pin_worker_gpu, worker_index

REPO = Path(__file__).resolve().parents[2]


def test_worker_gpu_pinning():
    env: dict = {}
    assert pin_worker_gpu("gw3", env, count=2) == "1" and env["CUDA_VISIBLE_DEVICES"] == "1"
    assert pin_worker_gpu("gw0", {}, count=0) is None  # no GPU: nothing to pin
    assert pin_worker_gpu("gw1", {"CUDA_VISIBLE_DEVICES": "7"}, count=4) is None  # the user's choice wins
    assert worker_index("master") is None and worker_index("gw12") == 12


def _summary(tmp_path: Path, name: str, cache: Path, *extra: str) -> dict:
    results = tmp_path / name
    cmd = [sys.executable, "-m", "pytest", str(REPO / "tests"), "-q", "-p", "no:cacheprovider",
           "--models=tiny-llava,tiny-gemma3", "--tasks=brain_tumor,pneumonia", "--n-per-class=6",
           f"--cache-dir={cache}", f"--results-dir={results}", "--baseline=/nonexistent.toml", *extra]
    subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    records = json.loads((results / "summary.json").read_text())["records"]
    return {r["test"]: (r["outcome"], r["value"], r["ci_low"], r["ci_high"]) for r in records}


def test_two_workers_give_the_serial_verdicts(tmp_path):
    serial = _summary(tmp_path, "serial", tmp_path / "cache-serial")
    parallel = _summary(tmp_path, "parallel", tmp_path / "cache-parallel", "-n", "2")
    assert serial and parallel == serial
