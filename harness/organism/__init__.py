"""The model organism of the study (SPEC §7): tiny VLMs trained on the CPU in minutes.

Two architecture families (LLaVA: CLIP + Llama; Gemma-3: SigLIP + Gemma-3), each as a
*base* trained on general synthetic image-language data and a *med* variant tuned from
it on the four synthetic medical tasks in a narrow set of phrasings, plus a tiny
text-only *diagnoser* that answers yes/no from image descriptions. Everything is
trained from code in this package, deterministically on one machine.

The trained weights are shipped in fixtures/organism/ (shipped.py says why) and the
default run loads them; it never trains:

    from harness.organism import resolve_builtin
    folder = resolve_builtin("organism-llava-med")   # fixtures/organism/organism-llava-med, checked

`python -m harness.organism build` regenerates the shipped weights on purpose and says
which files changed; `python -m harness.organism check` tells whether they are intact and
trained from the current code.
"""

from .build import build_organism
from .config import OrganismConfig, training_inputs
from .pipeline import NAMES
from .shipped import organism_dir, resolve_builtin, shipped_dir, stale

__all__ = ["NAMES", "OrganismConfig", "build_organism", "organism_dir", "resolve_builtin", "shipped_dir", "stale",
           "training_inputs"]
