"""What an OpenAI-compatible server says it serves: part of an endpoint model's identity.

Why: the registry name and the served model name say nothing about the weights behind
them. Two servers that serve different checkpoints as "medgemma" (two machines, or one
server restarted on a new checkpoint) would otherwise share store keys, and the second
run would silently replay the first model's answers. So the identity of an "openai"
model carries the server's own `/v1/models` entry for the name, reduced to the fields
that name the weights (`STABLE_FIELDS`: vLLM's `root`, the path or hub id it loaded, and
`parent`; a `revision` where a server gives one). The `id` is the name itself; `owned_by`
and volatile fields (`created`, which vLLM stamps on every listing, `permission`,
transformers serve's loaded/unloaded `status`) are left out, so a restart of the same
weights keeps its answers. The base URL is left out too: replicas of one model, listed
together in `base_url`, share their answers; replicas that report different weights are
refused.

A server that names no weights (no `/v1/models` route, no root or revision in its entry,
or the name not listed: transformers serve lists a local-path model only once it is
loaded, and names nothing but the path) gives an empty served identity: its answers are
keyed on the registry's name and `revision` alone, and the run says so in its notes
(`unlisted_note`). Empty, not "unlisted", so that a model loaded mid-run keeps its keys.
"""

from __future__ import annotations

import json
from typing import Optional

from ..core import HarnessError, ModelSpec

STABLE_FIELDS = ("root", "parent", "revision")
UNLISTED: dict = {}
_NO_ROUTE = (404, 405, 501)


def stable_entry(entry: dict) -> dict:
    """The fields of a `/v1/models` entry that name the weights (empty values dropped): {} when none does."""
    return {k: entry[k] for k in STABLE_FIELDS if entry.get(k) not in (None, "")}


def entry_for(listing: list[dict], name: str) -> dict:
    """The stable entry of `name` in a model listing, or UNLISTED."""
    for entry in listing:
        if isinstance(entry, dict) and entry.get("id") == name:
            return stable_entry(entry)
    return dict(UNLISTED)


def describe(served: dict) -> str:
    """A served identity as one line of a message: `root=... revision=...`."""
    return " ".join(f"{k}={served[k]}" for k in STABLE_FIELDS if k in served) or "(no weights named in /v1/models)"


def _listing(spec: ModelSpec, url: str) -> Optional[list[dict]]:
    """The `data` of GET {url}/models with the real openai client; None when the server has
    no such route. Connection and authentication problems are setup errors. (The key is read
    here and never held in a local or an argument: a traceback shows those.)"""
    import openai

    from .openai_backend import OpenAIBackend

    client = openai.OpenAI(base_url=url, api_key=OpenAIBackend._read_key(spec), max_retries=2,
                           timeout=min(float(spec.timeout_s or 60), 30.0))
    try:
        page = client.models.list()
        return [m.model_dump() for m in page.data]
    except openai.APIStatusError as err:
        if err.status_code in _NO_ROUTE:
            return None
        raise HarnessError(f"model {spec.name!r}: listing the served models at {url}/models failed with "
                           f"HTTP {err.status_code}; the answers of an endpoint are keyed on what it serves, "
                           "so the run needs that list (check api_key_env and the server)") from None
    except openai.APIConnectionError as err:
        raise HarnessError(f"model {spec.name!r}: cannot reach {url}/models ({type(err).__name__}); the answers "
                           "of an endpoint are keyed on what it serves, so the server must be up before the "
                           "run, also for a warm one") from None
    finally:
        client.close()


def served_identity(spec: ModelSpec) -> dict:
    """The served identity of an "openai" registry entry, asked of every base_url; replicas
    must agree."""
    urls = (spec.base_url,) if isinstance(spec.base_url, str) else tuple(spec.base_url or ())
    if not urls:
        raise HarnessError(f"model {spec.name!r}: backend 'openai' needs base_url")
    seen: dict[str, dict] = {}
    for url in urls:
        listing = _listing(spec, url.rstrip("/"))
        seen[url] = dict(UNLISTED) if listing is None else entry_for(listing, spec.model)
    distinct = {json.dumps(v, sort_keys=True) for v in seen.values()}
    if len(distinct) > 1:
        lines = "; ".join(f"{url} serves {describe(v)}" for url, v in seen.items())
        raise HarnessError(f"model {spec.name!r}: the servers in base_url serve different models under "
                           f"{spec.model!r} ({lines}). Replicas must serve the same weights; give the others "
                           "their own registry entries")
    return next(iter(seen.values()))


def unlisted_note(spec: ModelSpec, served: dict) -> Optional[str]:
    """The run note for a server that does not name the weights it serves."""
    if served:
        return None
    pinned = f" and revision {spec.revision!r}" if spec.revision else " (no revision set)"
    return (f"the server names no weights for {spec.model!r} in /v1/models (no root or revision, or not listed), "
            f"so its answers are keyed on the registry name{pinned} only: set `revision` in the registry when "
            "the served weights change")
