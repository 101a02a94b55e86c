"""The medvlm-fragility pytest plugin: options, parametrization, the fill phase, verdicts.

Flow: configure validates everything once (Suite); collection parametrizes each
behaviour test over model × task (× perturbation) with markers; before the first test
runs, the runner fills the response store for every subject the selected tests need
(with a progress display); tests compute verdicts from stored responses only; one
hook (see evidence.py) turns each verdict into the report's evidence and records.
"""

from __future__ import annotations

import pytest

from ..core import FINDINGS, ConfigError, HarnessError
from ..suite import Suite
from .evidence import EvidencePlugin
from .gpus import pin_worker_gpu, share_cpu_threads
from .fixtures import SUBJECT_PARAM, assert_robust, subject  # noqa: F401 - fixtures exported to pytest
from .options import add_options, settings_from_config
from .params import parametrize_subjects, safe_id
from .scheduling import make_scheduler
from .secrets import pytest_metadata, redact_registry_keys  # noqa: F401 - pytest-metadata hook
from .state import SUITE_KEY


def pytest_addoption(parser):
    add_options(parser)


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config):
    """Plain `pytest` (paths from testpaths: the behaviour suite) writes its outputs by default.

    report.html (self-contained) and results/ (summary.json, responses.csv), unless
    given; runs on explicit paths (e.g. `pytest harness/tests`) and --collect-only are
    left alone. Runs before any pytest_configure, so pytest-html sees the path.
    """
    if config.args_source != pytest.Config.ArgsSource.TESTPATHS or config.option.collectonly:
        return None
    if config.getoption("--results-dir") is None:
        config.option.results_dir = "results"
    if config.pluginmanager.hasplugin("html") and not config.getoption("htmlpath", None):
        config.option.htmlpath = "report.html"
        config.option.self_contained_html = True
    return None


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "finding(key, check=...): the finding a behaviour test checks and its CheckList type")
    for key in FINDINGS:
        config.addinivalue_line("markers", f"{key}: behaviour tests of the study's '{key}' finding")
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None:
        pin_worker_gpu(workerinput.get("workerid", ""))
        share_cpu_threads(int(workerinput.get("workercount", 1)))
    try:
        suite = Suite(settings_from_config(config))
    except (ConfigError, HarnessError) as exc:
        raise pytest.UsageError(str(exc)) from None
    for key, task in suite.registry.tasks.items():
        config.addinivalue_line("markers", f"{key}: behaviour tests on the {task.title} task")
    for name in suite.registry.models:
        config.addinivalue_line("markers", f"{name}: behaviour tests of model {name}")
    config.stash[SUITE_KEY] = suite
    redact_registry_keys(config, suite.registry)
    config.pluginmanager.register(EvidencePlugin(config, suite), "medvlm-evidence")


@pytest.hookimpl(tryfirst=True, optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """--dist loadgroup: one model's tests per work unit (scheduling.py says why not xdist's own)."""
    if config.getvalue("dist") != "loadgroup" or SUITE_KEY not in config.stash:
        return None
    suite = config.stash[SUITE_KEY]
    return make_scheduler(config, log, [safe_id(m.name) for m in suite.models], [safe_id(t.key) for t in suite.tasks])


def pytest_generate_tests(metafunc):
    if SUBJECT_PARAM in metafunc.fixturenames and SUITE_KEY in metafunc.config.stash:
        parametrize_subjects(metafunc, metafunc.config.stash[SUITE_KEY])
