"""A registry name whose server now serves other weights: refused unless the user says so.

Why: the served identity is in the store key (harness.backends.served_identity), so the
answers of two models never mix. But a name in a CI gate or a regression check stands
for one model; when the server behind "medgemma" starts serving another checkpoint, the
run would quietly test a different model under the old name, against a baseline and a
previous version recorded for the first. The store remembers, per registry name, what
the servers served the last time (`served:<name>` in its meta table, with the registry's
`revision`). A run whose servers serve something else stops that model with a message
naming both, unless

- the registry's `revision` changed as well (the user recorded the change), or
- `--accept-served-change=<name>[,<name>...]` (or `all`) is given: on purpose.

Either way the new identity is remembered and a note says what changed.
"""

from __future__ import annotations

import json
from typing import Optional

from ..backends.served_identity import describe
from ..core import HarnessError, ModelSpec

OPTION = "--accept-served-change"


def meta_name(spec: ModelSpec) -> str:
    return f"served:{spec.name}"


def accepted(spec: ModelSpec, accept: Optional[list[str]]) -> bool:
    return bool(accept) and ("all" in accept or spec.name in accept)


def check_served_identity(store, spec: ModelSpec, identity: dict, accept: Optional[list[str]] = None) -> Optional[str]:
    """Compare the servers' identity with the one remembered for this registry name.

    Returns a note when the change is let through, None when nothing changed; raises
    HarnessError when it changed and nobody said it may."""
    served = identity.get("served")
    if served is None:  # not an endpoint model
        return None
    current = {"served": served, "revision": spec.revision}
    stored = store.get_meta(meta_name(spec))
    before = json.loads(stored) if stored else None
    if before == current:
        return None
    if before is None or before.get("served") == served:  # first run, or only the registry revision moved
        store.set_meta(meta_name(spec), json.dumps(current, sort_keys=True))
        return None
    was, now = describe(before["served"]), describe(served)
    if before.get("revision") == spec.revision and not accepted(spec, accept):
        raise HarnessError(
            f"model {spec.name!r}: its servers now serve {now}, but this store's answers under that name came "
            f"from {was}. The name no longer stands for the model the earlier runs (and any baseline or "
            f"regression record) tested. If the change is on purpose, set a new `revision` in the registry "
            f"entry or pass {OPTION}={spec.name}; otherwise point base_url back at the model's server")
    store.set_meta(meta_name(spec), json.dumps(current, sort_keys=True))
    why = "its registry revision changed" if before.get("revision") != spec.revision else f"{OPTION} was given"
    return (f"served model changed under this name ({why}): was {was} (revision {before.get('revision')}), "
            f"now {now} (revision {spec.revision}); its answers are kept apart from the earlier ones")
