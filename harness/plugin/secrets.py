"""Keep secrets out of the report's Environment table (SPEC §8).

pytest-html shows pytest-metadata's dictionary as the report's "Environment" table
(and pytest prints it under `-v`). That dictionary takes values from the command line
(`--metadata KEY VALUE`, JSON) and from CI environment variables, some of which embed
credentials (a CI repository URL carries the job token). The harness itself never
writes a key anywhere, so this table is the one door left open; this hook closes it:

- an entry whose NAME looks secret (KEY, TOKEN, SECRET, PASSWORD, AUTH, CREDENTIAL...)
  keeps its name, its value is replaced by "[redacted]";
- any occurrence of a secret VALUE (the value of an environment variable whose name
  looks secret, or of a variable a registry model names as api_key_env) is replaced
  wherever it appears, at any depth.

Short values are only redacted where they are the whole value, so a one-character
"secret" cannot mangle version numbers.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, MutableMapping

import pytest

REDACTED = "[redacted]"
SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSW|PASSPHRASE|AUTH(?!OR)|CREDENTIAL|COOKIE|PRIVATE|SESSION", re.I)
_MIN_SUBSTRING = 8  # shorter secret values are redacted only as whole values


def looks_secret(name: object) -> bool:
    return bool(SECRET_NAME.search(str(name)))


def secret_values(environ: Mapping[str, str], extra_names: Iterable[str] = ()) -> set[str]:
    """Values of environment variables that look secret by name, or are named explicitly."""
    names = {n for n in environ if looks_secret(n)} | {n for n in extra_names if n in environ}
    return {environ[n].strip() for n in names if environ[n] and environ[n].strip()}


def _scrub(value, secrets: set[str]):
    if isinstance(value, MutableMapping):
        redact_metadata(value, secrets)
        return value
    if isinstance(value, (list, tuple)):
        return type(value)(_scrub(v, secrets) for v in value)
    if not isinstance(value, str):
        return value
    if value.strip() in secrets:
        return REDACTED
    for secret in sorted(secrets, key=len, reverse=True):
        if len(secret) >= _MIN_SUBSTRING and secret in value:
            value = value.replace(secret, REDACTED)
    return value


def redact_metadata(metadata: MutableMapping, secrets: set[str]) -> None:
    """Redact, in place, secret-looking keys and every secret value (see the module doc)."""
    for key in list(metadata):
        value = metadata[key]
        if looks_secret(key) and not isinstance(value, Mapping):
            metadata[key] = REDACTED
        else:
            metadata[key] = _scrub(value, secrets)


@pytest.hookimpl(optionalhook=True)
def pytest_metadata(metadata, config):
    """pytest-metadata's hook: called once its dictionary is complete, before any report."""
    redact_metadata(metadata, secret_values(os.environ))


def redact_registry_keys(config, registry) -> None:
    """Once the registry is known: also redact the values of every api_key_env it names
    (a variable such as VLLM_CRED is not always recognisable by its name)."""
    try:
        from pytest_metadata.plugin import metadata_key
    except ImportError:
        return
    metadata = config.stash.get(metadata_key, None)
    if metadata is None:
        return
    names = [m.api_key_env for m in registry.models.values() if m.api_key_env]
    redact_metadata(metadata, secret_values(os.environ, names))
