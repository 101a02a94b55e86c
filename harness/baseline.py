"""The baseline of known fragilities: a human-readable TOML file, written only on request.

It also records which models the fragilities were measured on (`[subjects]`: a digest of
each model's identity, the same identity the response store keys on), so that a run on
another model under the same registry name (a retrained organism, a new checkpoint, bf16
instead of float32) says so in one line before its failures, instead of a wall of
XPASS(strict) that reads like a broken suite (issue 25).

A behaviour test whose failure is recorded here runs as a strict xfail: the suite
stays green on a known model, turns red when a new model or version is fragile, and
also turns red (XPASS strict) when a recorded fragility disappears, so the baseline
is kept honest. `pytest --update-baseline` rewrites the entries of the tests that ran
and keeps the others.
"""

from __future__ import annotations

import json
import time
import tomllib
from pathlib import Path

from .core import ConfigError

HEADER = """\
# Known fragilities of the models this suite runs on (SPEC §2).
# Written by `pytest --update-baseline`; edit by hand only to remove entries.
# A test listed here is a strict xfail: it must keep failing, or the run turns red.
"""

SUBJECTS_HEADER = """\
# The models these fragilities were recorded on: a digest of each one's identity (its weights'
# fingerprint or pinned revision, dtype, replaced template or image processor). A run on a
# model whose identity differs says so before its failures.
[subjects]"""

_FIELDS = ("finding", "metric", "value", "ci_low", "ci_high", "threshold", "label", "reason")


def _read(path: Path) -> dict:
    """The baseline file's TOML ({} when there is no file)."""
    if not path.is_file():
        return {}
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), [f"invalid TOML: {exc}"]) from exc


def load_baseline(path: Path) -> dict[str, dict]:
    """Known fragilities keyed by pytest node id; a missing file means none."""
    entries = _read(path).get("fragility", [])
    problems = [f"fragility[{i}]: missing 'test'" for i, e in enumerate(entries) if "test" not in e]
    if problems:
        raise ConfigError(str(path), problems)
    return {e["test"]: e for e in entries}


def load_identities(path: Path) -> dict[str, str]:
    """Model name -> identity digest recorded with the baseline ({} when none was recorded)."""
    subjects = _read(path).get("subjects", {})
    if not isinstance(subjects, dict) or not all(isinstance(v, str) for v in subjects.values()):
        raise ConfigError(str(path), ["[subjects] must map model names to identity digests (strings)"])
    return dict(subjects)


def identity_notes(path: Path, current: dict[str, str], recorded_models: set[str]) -> list[str]:
    """One line per model of this run whose identity differs from the one the baseline was
    recorded on, naming both digests and what to do; one line if the baseline predates
    identities but records fragilities of this run's models."""
    recorded = load_identities(path)
    notes = []
    for name in sorted(current):
        then, now = recorded.get(name), current[name]
        if then is not None and then != now:
            notes.append(f"{path.name} was recorded on another {name} (identity {then[:12]} there, {now[:12]} here): "
                         "its known fragilities may not hold for this model; if the model changed on purpose, "
                         f"rerun with --update-baseline and commit {path.name}"
                         + (", else restore it (`git checkout -- fixtures/organism`)" if name.startswith("organism-")
                            else ""))
    if not recorded and recorded_models & set(current):
        notes.append(f"{path.name} records no model identities (written before they were recorded): "
                     "rerun with --update-baseline to record them")
    return notes


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(str(value), ensure_ascii=False)  # JSON string escapes are valid TOML


def render_baseline(entries: dict[str, dict], identities: dict[str, str] | None = None) -> str:
    lines = [HEADER]
    if identities:
        lines.append(SUBJECTS_HEADER)
        lines += [f"{_toml_value(name)} = {_toml_value(identities[name])}" for name in sorted(identities)]
        lines.append("")
    for test in sorted(entries):
        entry = entries[test]
        lines.append("[[fragility]]")
        lines.append(f"test = {_toml_value(test)}")
        for key in _FIELDS:
            if entry.get(key) is not None:
                lines.append(f"{key} = {_toml_value(entry[key])}")
        lines.append("")
    return "\n".join(lines)


def update_baseline(path: Path, ran: dict[str, dict | None], identities: dict[str, str] | None = None) -> dict[str, dict]:
    """Replace entries for the tests that ran (a record for a failure, None for a pass) and
    the identities of the models they ran on; keep the rest."""
    entries = load_baseline(path)
    recorded = {**load_identities(path), **(identities or {})}
    for test, record in ran.items():
        if record is None:
            entries.pop(test, None)
        else:
            entry = {k: record.get(k) for k in _FIELDS}
            entry["reason"] = (entry.get("reason") or "").splitlines()[0][:300] if entry.get("reason") else None
            entries[test] = entry
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp-{int(time.time() * 1e6)}")
    tmp.write_text(render_baseline(entries, recorded), encoding="utf-8")
    tmp.replace(path)
    return entries
