"""Shared validation helpers for the config loaders (thresholds and registry).

Both loaders must report problems the same way: every problem collected (never stop at
the first), each with its key path, unknown keys with a "did you mean" suggestion, and
secrets never echoed. Keeping the schema machinery here lets each loader describe its
keys as data (a table of `Key`s) instead of a chain of ifs.
"""

from __future__ import annotations

import difflib
import re
import string
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

__all__ = ["Key", "KEY_NAME", "SECRET_MSG", "closest", "did_you_mean", "read_toml", "type_name", "coerce", "check_entry",
           "placeholder_problems", "placeholders"]

# Task and prompt keys become pytest markers (-m histopathology) and test ids: identifiers.
KEY_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Keys that look like credentials: rejected with advice to use api_key_env.
SECRET_KEY = re.compile(r"(api[_-]?key|token|secret|passw(or)?d|credential)", re.I)
SECRET_MSG = ("secrets must never be written in a config file; put the key in an environment "
              "variable and name that variable with api_key_env = \"VAR_NAME\"")


def closest(key: str, candidates) -> Optional[str]:
    """The candidate most similar to `key`, or None when none is close."""
    close = difflib.get_close_matches(key, [str(c) for c in candidates], n=1, cutoff=0.6)
    return close[0] if close else None


def did_you_mean(key: str, candidates) -> str:
    """' (did you mean 'x'?)' for the closest candidate, or '' when none is close."""
    close = closest(key, candidates)
    return f" (did you mean {close!r}?)" if close else ""


def _unknown_key_hint(name: str, keys) -> str:
    """Suggestion for an unknown key. A key that looks like a credential (api_key, token,
    password...) gets the api_key_env advice, unless it is a typo of a harmless key such
    as max_new_tokens."""
    near = closest(name, keys)
    if SECRET_KEY.search(name) and near in (None, "api_key_env"):
        return f"; {SECRET_MSG}"
    return f" (did you mean {near!r}?)" if near else ""


def read_toml(path: Path) -> tuple[Optional[dict], Optional[str]]:
    """Parse one TOML file; returns (data, None) or (None, problem). The problem keeps
    tomllib's line/column, and returning it (not raising) lets callers keep collecting
    problems from other files."""
    try:
        with open(path, "rb") as f:
            return tomllib.load(f), None
    except FileNotFoundError:
        return None, "file not found"
    except IsADirectoryError:
        return None, "is a directory, not a TOML file"
    except tomllib.TOMLDecodeError as exc:
        return None, f"invalid TOML: {exc}"
    except (OSError, UnicodeDecodeError) as exc:
        return None, f"cannot read: {exc}"


def type_name(value: Any) -> str:
    """TOML's name for a value's type, for messages a config author understands."""
    return {bool: "boolean", int: "integer", float: "float", str: "string", dict: "table", list: "array"}.get(
        type(value), type(value).__name__
    )


@dataclass(frozen=True)
class Key:
    """Schema of one entry key. kind: str | int | bool | str_list | urls | values | table |
    filters. `secret` keeps the value out of error messages."""

    kind: str
    required: bool = False
    choices: tuple[str, ...] = ()
    lo: Optional[int] = None
    hi: Optional[int] = None
    secret: bool = False


def coerce(value: Any, key: Key) -> tuple[Any, Optional[str]]:
    """Check one value against its Key; returns (normalised value, problem or None)."""
    shown = "" if key.secret else f" {value!r}"
    if key.kind == "str":
        if not isinstance(value, str):
            return None, f"expected a string, got {type_name(value)}{shown}"
        if not value.strip():
            return None, "must not be empty (remove the key to leave it unset)"
        if key.choices and value not in key.choices:
            return None, f"{value!r} is not one of {', '.join(map(repr, key.choices))}{did_you_mean(value, key.choices)}"
        return value, None
    if key.kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            return None, f"expected an integer, got {type_name(value)}{shown}"
        if (key.lo is not None and value < key.lo) or (key.hi is not None and value > key.hi):
            return None, f"{value} is out of range {key.lo}..{key.hi}"
        return value, None
    if key.kind == "bool":
        return (value, None) if isinstance(value, bool) else (None, f"expected true or false, got {type_name(value)}{shown}")
    if key.kind == "table":
        return (value, None) if isinstance(value, dict) else (None, f"expected a table, got {type_name(value)}{shown}")
    return coerce_collection(value, key, shown)


def coerce_collection(value: Any, key: Key, shown: str) -> tuple[Any, Optional[str]]:
    """Lists and tables of scalars: str_list, urls (string or list), values, filters."""
    if key.kind == "filters":
        if not isinstance(value, dict) or not all(_is_label_value(v) for v in value.values()):
            return None, f"expected a table of column = value (string or integer), got{shown}"
        return tuple((str(c), str(v)) for c, v in value.items()), None
    if key.kind == "urls" and isinstance(value, str):
        value = [value]
    if key.kind == "values" and _is_label_value(value):
        value = [value]
    item_ok = _is_label_value if key.kind == "values" else (lambda v: isinstance(v, str) and v.strip() != "")
    what = "strings or integers" if key.kind == "values" else "non-empty strings"
    if not isinstance(value, list) or not value or not all(item_ok(v) for v in value):
        return None, f"expected a non-empty array of {what}, got {type_name(value)}{shown}"
    return tuple(str(v) for v in value), None


def _is_label_value(v: Any) -> bool:
    return (isinstance(v, str) and v != "") or (isinstance(v, int) and not isinstance(v, bool))


def check_entry(where: str, entry: Any, keys: dict[str, Key], problems: list[str]) -> Optional[dict]:
    """Validate one table against its schema; returns the valid values (None if not a table).

    Unknown keys get a suggestion; a key that looks like a secret gets the api_key_env advice.
    """
    if not isinstance(entry, dict):
        problems.append(f"{where}: expected a table, got {type_name(entry)}")
        return None
    clean: dict[str, Any] = {}
    for name, value in entry.items():
        if name not in keys:
            problems.append(f"{where}.{name}: unknown key{_unknown_key_hint(name, keys)}")
            continue
        norm, problem = coerce(value, keys[name])
        if problem:
            problems.append(f"{where}.{name}: {problem}")
        else:
            clean[name] = norm
    problems.extend(f"{where}: missing required key {k!r}" for k, s in keys.items() if s.required and k not in entry)
    return clean


def placeholder_problems(template: str, allowed: Sequence[str]) -> list[str]:
    """Problems with a template's {placeholders}: unknown names, format specs, bad braces."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        return [f"malformed template ({exc}); write a literal brace as {{{{ or }}}}"]
    out = []
    for _, name, spec, conv in parsed:
        if name is None:
            continue
        if name not in allowed:
            out.append(f"unknown placeholder {{{name}}}{did_you_mean(name, allowed)}; allowed: "
                       + " ".join(f"{{{a}}}" for a in allowed))
        elif spec or conv:
            out.append(f"placeholder {{{name}}} takes no format spec or conversion")
    return out


def placeholders(template: str) -> set[str]:
    """The placeholder names a template uses (empty when malformed; that is reported elsewhere)."""
    try:
        return {n for _, n, _, _ in string.Formatter().parse(template) if n}
    except ValueError:
        return set()
