"""A model served over the OpenAI API on 127.0.0.1 runs through the whole suite.

The same model in-process and behind the local server (real HTTP, real openai client)
must give the same verdicts; only the embedding tests skip, with a reason. The served
model is the organism's medical LLaVA, naming its (in-process) base, so every finding
but embeddings applies to it: finetune_gain, description recovery with the organism's
diagnoser, prompt sensitivity, near-random.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from harness.backends import make_backend
from harness.config.registry import load_registry
from harness.serve import start_server

REPO = Path(__file__).resolve().parents[2]
MODEL = "organism-llava-med"
BASE = "organism-llava-base"
SERVED = "served-under-another-name"


def run_suite(tmp_path: Path, name: str, models: str, *extra: str) -> dict:
    results = tmp_path / name
    cmd = [sys.executable, "-m", "pytest", str(REPO / "tests"), "-q", "-p", "no:cacheprovider",
           f"--models={models}", "--tasks=brain_tumor", "--n-per-class=6", f"--cache-dir={tmp_path / 'cache'}",
           f"--results-dir={results}", "--baseline=/nonexistent.toml", *extra]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert (results / "summary.json").exists(), done.stdout[-3000:] + done.stderr[-3000:]
    return {r["test"]: r for r in json.loads((results / "summary.json").read_text())["records"]}


def test_served_model_gives_the_in_process_verdicts(tmp_path):
    backend = make_backend(load_registry().models[MODEL], cache_dir=tmp_path / "cache", device="cpu")
    server = start_server(backend, served_name=SERVED)
    try:
        models_file = tmp_path / "served.toml"
        models_file.write_text(
            f'[models.{SERVED}]\nbackend = "openai"\nmodel = "{SERVED}"\nbase_url = "{server.url}"\n'
            f'base_model = "{BASE}"\n')
        served = run_suite(tmp_path, "served", SERVED, f"--models-file={models_file}")
    finally:
        server.stop()
        backend.close()
    local = run_suite(tmp_path, "local", MODEL)
    assert len(served) == len(local) > 0
    for test, record in local.items():
        twin = served[test.replace(MODEL, SERVED)]
        if record["finding"] == "embedding_separability":
            assert twin["outcome"] == "skipped" and "vision encoder" in twin["reason"]
            continue
        assert twin["outcome"] != "skipped", (test, twin["reason"])
        same = ("outcome", "metric", "value", "ci_low", "ci_high")
        assert {k: twin[k] for k in same} == {k: record[k] for k in same}, test
