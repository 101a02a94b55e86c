"""Shared set-up of the harness's own tests."""

import pytest


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


@pytest.fixture(scope="session")
def quick_organism(tmp_path_factory):
    """A complete organism trained for a couple of steps per stage (seconds): for the build
    machinery and for runs on "another organism" than the shipped one. name -> folder."""
    from harness.organism.build import build_organism
    from harness.organism.config import quick_config

    root = tmp_path_factory.mktemp("quick-organism")
    return build_organism(root / "organism", config=quick_config(), log=lambda *_: None)
