"""The model organism of the study (SPEC §7): tiny VLMs trained on the CPU in minutes.

Two architecture families (LLaVA: CLIP + Llama; Gemma-3: SigLIP + Gemma-3), each as a
*base* trained on general synthetic image-language data and a *med* variant tuned from
it on the four synthetic medical tasks in a narrow set of phrasings, plus a tiny
text-only *diagnoser* that answers yes/no from image descriptions. Everything is
trained from code in this package, deterministically, and cached by a hash of that
code and its configuration.

    from harness.organism import build_organism, resolve_builtin
    paths = build_organism(organism_home())          # name -> model folder
    folder = resolve_builtin("organism-llava-med")   # one model, building if needed

Builds live in organism_home() ($MEDVLM_ORGANISM_DIR, else ~/.cache/medvlm-fragility),
shared by every run whatever its --cache-dir. `python -m harness.organism build
[--force] [--cache-dir DIR]` builds and prints timings and a quick evaluation table.
"""

from .build import NAMES, build_organism, organism_home, organism_root, resolve_builtin
from .config import OrganismConfig, organism_key

__all__ = ["NAMES", "OrganismConfig", "build_organism", "organism_home", "organism_key", "organism_root", "resolve_builtin"]
