"""Which models a run is about, and their identity digests (for baseline.toml's [subjects]).

The digest is of the same identity the response store keys on (harness.backends.identity),
computed without loading any weights: a local folder's content fingerprint, a hub id's
pinned revision, the dtype, a replaced template or image processor.
"""

from __future__ import annotations

from ..backends.identity import identity_digest, model_identity
from ..core import HarnessError


def run_model_names(suite, with_diagnoser: bool = True) -> set[str]:
    """The selected models, the base models and previous versions they are compared with, and
    the diagnoser when descriptions are judged: every model whose answers a verdict of this
    run can read."""
    names = set()
    for spec in suite.models:
        names.add(spec.name)
        names.update(n for n in (spec.base_model, spec.previous) if n)
    if with_diagnoser and suite.diagnoser_name:
        names.add(suite.diagnoser_name)
    return {n for n in names if n in suite.registry.models}


def current_identities(suite, names) -> dict[str, str]:
    """name -> identity digest; a model whose identity cannot be computed (e.g. its folder is
    missing) is left out: its tests say why."""
    out = {}
    for name in sorted(names):
        try:
            out[name] = identity_digest(model_identity(suite.registry.models[name], suite.settings.cache_dir))
        except (HarnessError, OSError):
            continue
    return out


def organism_notes(suite, names) -> list[str]:
    """One line when the run uses the organism and its weights were trained from other code
    or configuration than the checkout's (harness.organism.shipped.stale)."""
    if not any(suite.registry.models[n].model.startswith("builtin:organism-") for n in names):
        return []
    from ..organism.shipped import stale

    reason = stale()
    return [reason] if reason else []
