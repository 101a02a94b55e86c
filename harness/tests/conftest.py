"""Shared set-up of the harness's own tests."""

import os

from harness.organism.build import organism_home

# pytester runs each inner pytest with HOME pointing at a temporary folder, where the
# user-cache default of the organism's build folder would be empty: pin the real one,
# so inner runs reuse the build instead of training the organism again for minutes.
os.environ.setdefault("MEDVLM_ORGANISM_DIR", str(organism_home()))


import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _fresh_statistics_caches():
    """Each test computes its own bootstrap weights and probe fits. The caches that share them
    between the tests of one subject would otherwise carry results from an earlier test (or
    from the unmutated code, under mutation testing) into this one."""
    from harness.findings import embedding_separability
    from harness.findings.grid import _cached_weights

    _cached_weights.cache_clear()
    embedding_separability._FITS.clear()
    yield
