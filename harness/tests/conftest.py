"""Shared set-up of the harness's own tests."""

import os

from harness.organism.build import organism_home

# pytester runs each inner pytest with HOME pointing at a temporary folder, where the
# user-cache default of the organism's build folder would be empty: pin the real one,
# so inner runs reuse the build instead of training the organism again for minutes.
os.environ.setdefault("MEDVLM_ORGANISM_DIR", str(organism_home()))
