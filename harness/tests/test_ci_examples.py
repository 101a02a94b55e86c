"""The CI examples in examples/ci/ stay valid (issue 13).

actionlint checks the GitHub workflows in .ci/run; here: the GitLab job against the
keywords and structure GitLab accepts, and what every workflow must do to be a gate (run
the shared examples/ci/run-suite.sh, keep the response store between runs under
store-key.sh's key, upload the report and results, publish junit). .ci/run also runs
run-suite.sh itself on the CPU against the organism, so the command line cannot rot.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

CI = Path(__file__).resolve().parents[2] / "examples" / "ci"

# GitLab CI job keywords (docs.gitlab.com/ee/ci/yaml); top-level keys that are not jobs.
GITLAB_JOB_KEYS = {"after_script", "allow_failure", "artifacts", "before_script", "cache", "coverage", "dependencies",
                   "environment", "except", "extends", "id_tokens", "image", "inherit", "interruptible", "needs",
                   "only", "parallel", "release", "resource_group", "retry", "rules", "script", "secrets", "services",
                   "stage", "tags", "timeout", "trigger", "variables", "when", "hooks", "pages"}
GITLAB_GLOBAL_KEYS = {"default", "include", "stages", "variables", "workflow", "image", "services", "cache",
                      "before_script", "after_script"}


def _load(name):
    return yaml.safe_load((CI / name).read_text(encoding="utf-8"))


def test_gitlab_job_uses_only_gitlab_keywords_and_is_a_gate():
    doc = _load("gitlab-gpu.yml")
    jobs = {k: v for k, v in doc.items() if k not in GITLAB_GLOBAL_KEYS and not k.startswith(".")}
    assert jobs, "no job"
    for name, job in jobs.items():
        assert set(job) <= GITLAB_JOB_KEYS, (name, set(job) - GITLAB_JOB_KEYS)
        assert job["stage"] in doc["stages"]
        assert all(isinstance(line, str) for line in job["script"])
        assert any("examples/ci/run-suite.sh" in line for line in job["script"])
        assert "allow_failure" not in job  # the exit code is the gate
        assert job["artifacts"]["reports"]["junit"] == "junit.xml"
        assert "results/" in job["artifacts"]["paths"] and job["artifacts"]["when"] == "always"
        stores = [c for c in job["cache"] if ".medvlm-cache/responses.sqlite" in c["paths"]]
        assert stores and "fixtures/models.toml" in stores[0]["key"]["files"]


def test_github_workflows_run_the_shared_command_keep_the_store_and_upload_the_report():
    for name in ("github-gpu.yml", "github-endpoint.yml"):
        doc = _load(name)
        (job,) = doc["jobs"].values()
        steps = job["steps"]
        runs = " ".join(s.get("run", "") for s in steps)
        uses = [s.get("uses", "") for s in steps]
        assert "examples/ci/run-suite.sh" in runs and "examples/ci/store-key.sh" in runs, name
        assert any(u.startswith("actions/cache/restore@") for u in uses), name
        assert any(u.startswith("actions/cache/save@") for u in uses), name
        upload = next(s for s in steps if s.get("uses", "").startswith("actions/upload-artifact@"))
        assert upload["if"] == "always()" and "report.html" in upload["with"]["path"], name
        assert not any(s.get("continue-on-error") for s in steps), name  # the suite's exit code is the gate


def test_store_key_changes_with_a_pinned_revision(tmp_path):
    env = {"PATH": "/usr/bin:/bin"}
    key = subprocess.run([str(CI / "store-key.sh")], capture_output=True, text=True, check=True, env=env).stdout.strip()
    extra = tmp_path / "m.toml"
    extra.write_text('[models.x]\nbackend = "hf"\nmodel = "a/b"\nrevision = "1"\n', encoding="utf-8")
    other = subprocess.run([str(CI / "store-key.sh")], capture_output=True, text=True, check=True,
                           env={**env, "MEDVLM_MODELS_FILE": str(extra)}).stdout.strip()
    assert key.startswith("medvlm-store-") and other.startswith("medvlm-store-") and key != other
