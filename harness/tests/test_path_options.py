"""`--models-file my.toml` (a space) is accepted while pytest still finds the project (issue 13).

pytest picks its rootdir and ini file from the command line's paths before it knows the
suite's options: a separate path outside the project moves the rootdir away, the project's
configuration is not read, and the run would silently collect nothing useful. Inside the
project nothing goes wrong, so the space form is accepted there and refused (with the
`=` advice) only outside. Real pytest subprocesses, collection only.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ENTRY = '[models.my-tiny]\nbackend = "hf"\nmodel = "builtin:tiny-llava"\nreask = false\n'


def collect(models_file: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "pytest", "--models-file", str(models_file), "--models=my-tiny",
           "--tasks=brain_tumor", "--co", "-q", "-p", "no:cacheprovider", f"--cache-dir={tmp_path / 'cache'}"]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)


def test_space_separated_models_file_inside_the_project_is_accepted(tmp_path):
    inside = REPO / f"models-{uuid.uuid4().hex[:8]}.toml"
    inside.write_text(ENTRY, encoding="utf-8")
    try:
        done = collect(inside.relative_to(REPO), tmp_path)
    finally:
        inside.unlink()
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "tests collected" in done.stdout and "test_answer_invariance[my-tiny-brain_tumor" in done.stdout


def test_space_separated_models_file_outside_the_project_is_refused_with_the_advice(tmp_path):
    outside = tmp_path / "my.toml"
    outside.write_text(ENTRY, encoding="utf-8")
    done = collect(outside, tmp_path)
    assert done.returncode != 0
    assert f"write --models-file={outside} (with '=')" in done.stdout + done.stderr
