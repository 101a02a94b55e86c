"""The baseline of known fragilities: a human-readable TOML file, written only on request.

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

_FIELDS = ("finding", "metric", "value", "ci_low", "ci_high", "threshold", "label", "reason")


def load_baseline(path: Path) -> dict[str, dict]:
    """Known fragilities keyed by pytest node id; a missing file means none."""
    if not path.is_file():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), [f"invalid TOML: {exc}"]) from exc
    entries = data.get("fragility", [])
    problems = [f"fragility[{i}]: missing 'test'" for i, e in enumerate(entries) if "test" not in e]
    if problems:
        raise ConfigError(str(path), problems)
    return {e["test"]: e for e in entries}


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(str(value), ensure_ascii=False)  # JSON string escapes are valid TOML


def render_baseline(entries: dict[str, dict]) -> str:
    lines = [HEADER]
    for test in sorted(entries):
        entry = entries[test]
        lines.append("[[fragility]]")
        lines.append(f"test = {_toml_value(test)}")
        for key in _FIELDS:
            if entry.get(key) is not None:
                lines.append(f"{key} = {_toml_value(entry[key])}")
        lines.append("")
    return "\n".join(lines)


def update_baseline(path: Path, ran: dict[str, dict | None]) -> dict[str, dict]:
    """Replace entries for the tests that ran: a record for a failure, None for a pass."""
    entries = load_baseline(path)
    for test, record in ran.items():
        if record is None:
            entries.pop(test, None)
        else:
            entry = {k: record.get(k) for k in _FIELDS}
            entry["reason"] = (entry.get("reason") or "").splitlines()[0][:300] if entry.get("reason") else None
            entries[test] = entry
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp-{int(time.time() * 1e6)}")
    tmp.write_text(render_baseline(entries), encoding="utf-8")
    tmp.replace(path)
    return entries
