"""Reliability, secrets (issue 5): no key or token value in any output of a run.

A full run with OPENAI_API_KEY, HF_TOKEN, GITHUB_TOKEN and CI_JOB_TOKEN set (and a CI
variable embedding a token), where the key is really used by a served model and a
wrong key really fails (HTTP 401), must not write any of those values into the HTML
report, the JUnit XML (with captured logs), the results folder, a debug log file, the
response cache or the console. pytest-metadata's Environment table is the one place
the values would otherwise reach (harness/plugin/secrets.py redacts it).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.plugin.secrets import REDACTED, redact_metadata, secret_values

from .test_reliability_support import ORACLE, make_suite_dir, report_texts, run_suite, served

pytest_plugins = ["pytester"]

SECRETS = {
    "OPENAI_API_KEY": "sk-test-0penaiSecretValue123",
    "HF_TOKEN": "hf_testHuggingFaceToken456",
    "GITHUB_TOKEN": "ghp_testGithubToken789abc",
    "CI_JOB_TOKEN": "glcbt-testCiJobToken000",
}


def files_under(*roots: Path):
    for root in roots:
        yield from (p for p in root.rglob("*") if p.is_file())


def test_no_secret_reaches_any_output(pytester, tmp_path, monkeypatch):
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    # CI variables pytest-metadata copies into the report; GIT_URL embeds a token.
    monkeypatch.setenv("CI", "true")
    monkeypatch.setenv("GIT_URL", f"https://x-access-token:{SECRETS['GITHUB_TOKEN']}@github.com/org/repo.git")
    suite = make_suite_dir(pytester)
    out = tmp_path / "out"
    entries = {ORACLE: 'api_key_env = "OPENAI_API_KEY"',  # another revision: no answers shared through the cache
               "wrong-key": 'api_key_env = "HF_TOKEN"\nrevision = "r2"'}
    with served(tmp_path, entries=entries, api_key=SECRETS["OPENAI_API_KEY"]) as (server, models_file):
        result = run_suite(
            suite, models_file, tmp_path / "cache", f"--models={ORACLE},wrong-key",
            f"--html={out / 'report.html'}", "--self-contained-html", f"--junitxml={out / 'junit.xml'}",
            "-o", "junit_logging=all", f"--results-dir={out / 'results'}",
            f"--log-file={out / 'run.log'}", "--log-file-level=DEBUG", "-v", "-rA",
            "--metadata", "deploy_password", SECRETS["GITHUB_TOKEN"],
            "--metadata", "build_note", f"job token {SECRETS['CI_JOB_TOKEN']} in a note",
        )
        statuses = {r["status"] for r in server.requests_seen}
    result.assert_outcomes(passed=7, errors=7)  # the right key works; the wrong one is refused
    assert statuses == {200}  # the wrong key is refused when the run lists the served models: no chat request
    console = "\n".join(result.outlines + result.errlines)
    assert "HTTP 401" in console
    scanned = list(files_under(out, tmp_path / "cache", pytester.path))
    assert {"report.html", "junit.xml", "summary.json", "responses.csv", "run.log", "responses.sqlite"} <= {
        p.name for p in scanned}
    for name, value in SECRETS.items():
        assert value not in console, f"{name} in the console output"
        for path in scanned:
            assert value.encode() not in path.read_bytes(), f"{name} in {path}"
    _, strings = report_texts(out / "report.html")
    environment = " ".join(strings)
    assert "x-access-token:[redacted]@github.com" in environment  # redacted, not dropped
    assert "job token [redacted] in a note" in environment


def test_metadata_redaction_rules():
    environ = {"MY_API_KEY": "abcdefgh12345", "SESSION_ID": "x", "PLAIN": "visible", "AUTHOR": "Ada"}
    secrets = secret_values(environ)
    assert secrets == {"abcdefgh12345", "x"}
    metadata = {
        "Python": "3.11.1", "Platform": "Linux-x", "Packages": {"pytest": "9.0"},
        "SOME_TOKEN": "whatever", "url": "https://u:abcdefgh12345@host/x", "note": "x", "AUTHOR": "Ada",
        "nested": {"DB_PASSWORD": "p", "list": ["abcdefgh12345", "ok"]},
    }
    redact_metadata(metadata, secrets)
    assert metadata == {
        "Python": "3.11.1", "Platform": "Linux-x", "Packages": {"pytest": "9.0"},
        "SOME_TOKEN": REDACTED, "url": f"https://u:{REDACTED}@host/x", "note": REDACTED, "AUTHOR": "Ada",
        "nested": {"DB_PASSWORD": REDACTED, "list": [REDACTED, "ok"]},
    }


def test_a_key_variable_with_an_innocent_name_is_redacted_too(pytester, tmp_path, monkeypatch):
    """api_key_env may name any variable; its value is redacted once the registry is read."""
    monkeypatch.setenv("VLLM_CRED_X", "innocent-looking-value-42")
    monkeypatch.setenv("VLLM_X", "innocent-looking-value-42")
    suite = make_suite_dir(pytester)
    with served(tmp_path, entries={ORACLE: 'api_key_env = "VLLM_X"'}) as (_, models_file):
        result = run_suite(suite, models_file, tmp_path / "cache", "--collect-only", "-q",
                           f"--html={tmp_path / 'r.html'}", "--metadata", "endpoint_note", "innocent-looking-value-42")
    assert result.ret == 0
    assert b"innocent-looking-value-42" not in (tmp_path / "r.html").read_bytes()


@pytest.mark.parametrize("name", ["OPENAI_API_KEY", "HF_TOKEN", "GITHUB_TOKEN", "CI_JOB_TOKEN", "AWS_SECRET_ACCESS_KEY",
                                  "DB_PASSWORD", "BASIC_AUTH", "GOOGLE_APPLICATION_CREDENTIALS"])
def test_secret_looking_names(name):
    assert secret_values({name: "value-of-the-secret"}) == {"value-of-the-secret"}
