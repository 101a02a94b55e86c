"""Train the embedded model organism before the fill phase, visibly, when a run needs it.

The organism builds itself on first use (identity.py -> harness.organism.resolve_builtin),
but inside the fill phase its log would be captured and a first run would sit silent for
minutes. So the plugin builds it here first, writing each stage to the terminal, and in
the xdist controller before any worker starts (workers would otherwise wait on the
build lock without a word).
"""

from __future__ import annotations

from typing import Callable

ORGANISM_PREFIX = "builtin:organism-"


def organism_needed(suite, needs: dict) -> bool:
    """Do these needs ({(model, task): stages}) load anything from the organism?

    Bases are in `needs` already (stage_needs adds them); the diagnoser counts only
    when some model's descriptions are needed.
    """
    names = {model for model, _ in needs}
    if suite.diagnoser_name and any("describe" in stages for stages in needs.values()):
        names.add(suite.diagnoser_name)
    specs = [suite.registry.models[n] for n in names if n in suite.registry.models]
    return any(s.backend == "hf" and s.model.startswith(ORGANISM_PREFIX) for s in specs)


def prebuild_organism(suite, needs: dict, write: Callable[[str], None]) -> bool:
    """Build the organism if `needs` use it and it is not built yet; True if it trained."""
    if not organism_needed(suite, needs):
        return False
    from harness.organism.build import _complete, build_organism, organism_home, organism_root

    root = organism_home()
    if _complete(organism_root(root)):  # the test build_organism itself makes
        return False
    write(f"medvlm: training the model organism into {root} (once; about 4 minutes on 2 CPU cores; "
          "`python -m harness.organism build` does it ahead)")
    build_organism(root, log=lambda line: write(f"medvlm organism: {line.strip()}"))
    return True
