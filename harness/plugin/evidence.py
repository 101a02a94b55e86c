"""Run-level hooks: baseline xfails, the fill phase, and evidence from one hook.

`pytest_runtest_makereport` is the single place where a verdict becomes evidence: a
record (SPEC §6 fields plus report-only numbers) travels in `report.user_properties`
(so pytest-xdist carries it to the controller) and the HTML fragment goes to
pytest-html's `extras`. Tests themselves never touch the report.
"""

from __future__ import annotations

import sys
import time

import pytest

from ..baseline import identity_notes, load_baseline, update_baseline
from ..core import ConfigError
from ..fill.adaptive import fill_looks
from ..findings.checks import BY_TEST
from ..results import merge_response_parts, write_responses
from .collected import (batch_invariance_by_model, blind_notes, checkpoint_lines, checkpoint_notes, endpoint_notes,
                        fill_counts, run_evidence, subject_evidence)
from .outputs import write_run_outputs
from ..verdict import FragilityFound
from .fixtures import backend_factory
from .identities import current_identities, organism_notes, run_model_names
from .state import VERDICT_KEY

RECORD_PROPERTY = "medvlm_record"


def _is_worker(config) -> bool:
    return hasattr(config, "workerinput")


def _is_controller(config) -> bool:
    return config.pluginmanager.getplugin("dsession") is not None


def subject_of(item):
    callspec = getattr(item, "callspec", None)
    if callspec is None or "subject" not in callspec.params or callspec.params["subject"] is None:
        return None
    model, task = callspec.params["subject"]
    return model, task, callspec.params.get("perturbation")


def finding_of(item) -> str | None:
    marker = item.get_closest_marker("finding")
    return marker.args[0] if marker and marker.args else None


FINDING_STAGES = {
    "near_random": {"closed"},
    "prompt_sensitivity": {"closed"},
    "finetune_gain": {"closed"},
    "regression": {"closed"},  # the knowledge-gap regression adds "describe" (its BY_TEST stages)
    "description_recovery": {"closed", "describe"},
    "embedding_separability": {"closed", "embed"},
    "image_reliance": {"closed", "blank"},
}


def stage_needs(items, suite) -> dict:
    """{(model, task): stages} for the selected items: the finding's stages and the test's
    own (BY_TEST); the base model of finetune_gain is asked the closed questions, the
    previous version of a regression test what that test reads of the new one."""
    needs: dict = {}
    for item in items:
        subject = subject_of(item)
        if subject is None:
            continue
        model, task, _ = subject
        finding = finding_of(item)
        spec = BY_TEST.get(getattr(item, "originalname", None) or item.name)
        stages = set(FINDING_STAGES.get(finding, {"closed"})) | (set(spec.stages) if spec else set())
        needs.setdefault((model, task), set()).update(stages)
        entry = suite.registry.models.get(model)
        if finding == "finetune_gain" and entry is not None and entry.base_model:
            needs.setdefault((entry.base_model, task), set()).add("closed")
        if finding == "regression" and entry is not None and entry.previous:
            needs.setdefault((entry.previous, task), set()).update(stages)
    return needs


def checks_of(items) -> dict:
    """{(model, task): [(CheckSpec, params)]}: each selected behaviour test's check and its
    parameters (perturbation, metric), for the fill phase's adaptive looks."""
    out: dict = {}
    for item in items:
        subject = subject_of(item)
        spec = BY_TEST.get(getattr(item, "originalname", None) or item.name)
        if subject is None or spec is None:
            continue
        params = {k: v for k, v in item.callspec.params.items() if k != "subject"}
        out.setdefault(subject[:2], []).append((spec, params))
    return out


def group_of(item):
    """The item's xdist_group name (one per model; see params.py), None without one."""
    mark = item.get_closest_marker("xdist_group")
    if mark is None:
        return None
    return mark.args[0] if mark.args else mark.kwargs.get("name")


def items_by_group(items) -> dict:
    groups: dict = {}
    for item in items:
        groups.setdefault(group_of(item), []).append(item)
    return groups


class EvidencePlugin:
    def __init__(self, config, suite):
        self.config = config
        self.suite = suite
        self.records: dict[str, dict] = {}
        self.outputs: dict = {}  # the changes since an earlier run and per-image changes, set at the session's end
        self._unfilled_groups: dict = {}  # xdist workers: group -> its items, until filled
        self._thumbnails_shown: set = set()
        self.baseline = {}
        self.run_notes: list[str] = []  # lines a reader must see first: terminal, report header, summary.md
        self._identities_checked = False
        if not suite.settings.update_baseline:
            try:
                self.baseline = load_baseline(suite.settings.baseline_path)
            except ConfigError as exc:
                raise pytest.UsageError(str(exc)) from None
        if config.pluginmanager.hasplugin("html"):
            from .html_hooks import HtmlHooks

            config.pluginmanager.register(HtmlHooks(self), "medvlm-html")

    def _identity_notes(self, with_diagnoser: bool = True) -> None:
        """Before any test runs: say so when a model differs from the one the baseline was
        recorded on (its recorded fragilities would XPASS, or new ones fail, for that reason
        alone). Once per run, and only for a run with behaviour tests."""
        if self._identities_checked or self.suite.settings.update_baseline or not self.baseline:
            return
        self._identities_checked = True
        params = [test.rsplit("[", 1)[-1] for test in self.baseline]  # "<model>-<task>[-<perturbation>]]"
        names = run_model_names(self.suite, with_diagnoser)
        with_entries = {n for n in names if any(p.startswith(f"{n}-") for p in params)}
        notes = identity_notes(self.suite.settings.baseline_path, current_identities(self.suite, names), with_entries)
        notes += organism_notes(self.suite, names)
        self.run_notes.extend(notes)
        for line in notes:
            self._write_line(f"medvlm: {line}")

    def pytest_collection_finish(self, session):
        subjects = [item for item in session.items if subject_of(item) is not None]
        if not _is_worker(session.config) and subjects:
            self._identity_notes(any(finding_of(item) == "description_recovery" for item in subjects))

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node, ids):
        """xdist controller (it collects nothing itself): the workers' collection names the tests."""
        from .params import safe_id

        prefixes = tuple(f"{safe_id(m.name)}-{safe_id(t.key)}" for m in self.suite.models for t in self.suite.tasks)
        behaviour = [i for i in ids if i.endswith("]") and "[" in i and i[i.rfind("[") + 1:].startswith(prefixes)]
        if behaviour:
            self._identity_notes(any("test_no_suppressed_knowledge" in i for i in behaviour))

    # -- collection: known fragilities become strict xfails ------------------------------
    def pytest_collection_modifyitems(self, items):
        for item in items:
            entry = self.baseline.get(item.nodeid)
            if entry is not None and subject_of(item) is not None:
                reason = f"known fragility recorded in {self.suite.settings.baseline_path.name}"
                item.add_marker(pytest.mark.xfail(strict=True, raises=FragilityFound, reason=reason))

    # -- the fill phase: every needed answer is in the store before any test asserts ------
    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session):
        if session.config.option.collectonly or _is_controller(session.config):
            return None
        if _is_worker(session.config):
            # An xdist worker collects every test but runs only the groups sent to it:
            # it fills a model's answers when that model's first test arrives.
            self._unfilled_groups = items_by_group(session.items)
            return None
        needs = stage_needs(session.items, self.suite)
        if needs:
            fill_looks(self.suite, needs, checks_of(session.items), backend_factory(self.suite), progress=self._progress())
        return None

    def _write_line(self, line: str) -> None:
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(line)
        else:
            print(line, file=sys.stderr)

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item):
        """xdist worker: fill everything the item's group (one model, --dist loadgroup) needs, once."""
        pending = self._unfilled_groups.pop(group_of(item), None) if self._unfilled_groups else None
        if pending:
            needs = stage_needs(pending, self.suite)
            if needs:
                fill_looks(self.suite, needs, checks_of(pending), backend_factory(self.suite), progress=None)

    def _progress(self):
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is None or _is_worker(self.config):
            return None
        state = {"label": None, "last": 0.0}
        tty = reporter.isatty() if callable(getattr(reporter, "isatty", None)) else bool(getattr(reporter, "isatty", False))

        def show(label: str, done: int, total: int) -> None:
            now = time.monotonic()
            finished = done >= total
            if label != state["label"]:
                reporter.ensure_newline()
                state["label"] = label
                state["last"] = 0.0
            if not finished and (not tty or now - state["last"] < 0.5):
                return
            state["last"] = now
            width = 30
            filled = int(width * done / max(total, 1))
            line = f"medvlm fill {label}: [{'#' * filled}{'.' * (width - filled)}] {done}/{total}"
            if tty:
                reporter.rewrite(line)
            if finished:
                if not tty:
                    reporter.write(line)
                reporter.write_line("")

        return show

    # -- evidence ---------------------------------------------------------------------------
    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        outcome = yield
        report = outcome.get_result()
        subject = subject_of(item)
        if subject is None:
            return
        final = report.when == "call" or (report.when == "setup" and not report.passed)
        if not final:
            return
        record = self._record(item, report, call, subject)
        report.user_properties.append((RECORD_PROPERTY, record))
        if self.config.pluginmanager.hasplugin("html"):
            from .html_hooks import attach_evidence

            attach_evidence(report, record, self._with_plots(), self._thumbnails(subject))

    def _thumbnails(self, subject):
        """Opt-in thumbnails (--report-thumbnails), once per subject: input images are
        patient data, so by default the report shows none."""
        model, task, _ = subject
        if not (self.suite.settings.report_thumbnails and self._with_plots()) or (model, task) in self._thumbnails_shown:
            return None
        self._thumbnails_shown.add((model, task))
        from .html_hooks import make_thumbnails

        try:
            return make_thumbnails(self.suite.items(self.suite.task(task)))
        except Exception:  # noqa: BLE001 - a source that cannot list images: its tests say why
            return None

    def _record(self, item, report, call, subject) -> dict:
        model, task, perturbation = subject
        spec = self.suite.registry.models.get(model)
        verdict = item.stash.get(VERDICT_KEY, None)
        record = {
            "finding": finding_of(item),
            "test": item.nodeid,
            "model": model,
            "base_model": spec.base_model if spec else None,
            "task": task,
            "perturbation": perturbation,
            "metric": None, "value": None, "ci_low": None, "ci_high": None, "threshold": None,
            "outcome": _outcome(report, call, item),
            "reason": _reason(report, call),
            "check": (item.get_closest_marker("finding").kwargs.get("check") if item.get_closest_marker("finding") else None),
        }
        if verdict is not None:
            record.update(verdict.record())
            if not record["reason"]:
                record["reason"] = verdict.message()
        record["label"] = _label(record["outcome"], verdict)
        record.update(subject_evidence(self.suite, record["finding"], model, task, self._with_plots()))
        record.update(run_evidence(self.suite, model, record["base_model"], task))
        return record

    def _with_plots(self) -> bool:
        return self.config.pluginmanager.hasplugin("html") and self.config.getoption("htmlpath", None) is not None

    def pytest_runtest_logreport(self, report):
        for name, value in getattr(report, "user_properties", []):
            if name == RECORD_PROPERTY:
                self.records[value["test"]] = value

    def pytest_terminal_summary(self, terminalreporter):
        counts = fill_counts(self.suite, list(self.records.values()))
        if counts:
            terminalreporter.write_line(
                f"medvlm: {sum(c['cached'] for c in counts)} answers read from the store, "
                f"{sum(c['generated'] for c in counts)} generated by models, {sum(c['errors'] for c in counts)} errors"
            )
        checks = batch_invariance_by_model(self.suite, list(self.records.values()))
        for line in endpoint_notes(self.suite, list(self.records.values())):
            terminalreporter.write_line(f"medvlm: backend: {line}")
        for line in checkpoint_lines(checkpoint_notes(self.suite, list(self.records.values()))):
            terminalreporter.write_line(f"medvlm: {line}")
        for line in blind_notes(list(self.records.values())):
            terminalreporter.write_line(f"medvlm: {line}")
        if checks:
            changed = sum(c["changed"] for c in checks.values())
            checked = sum(c["checked"] for c in checks.values())
            terminalreporter.write_line(f"medvlm: batch invariance: {changed} of {checked} sampled answers change "
                                        f"when asked one at a time ({len(checks)} models)")

    # -- end of session -----------------------------------------------------------------
    def pytest_sessionfinish(self, session):
        settings = self.suite.settings
        if settings.results_dir:
            tables = self.suite.all_tables()
            if _is_worker(session.config):
                worker = session.config.workerinput.get("workerid", "w")
                write_responses(settings.results_dir, tables, f"responses.part-{worker}.csv")
                return
            if _is_controller(session.config):
                merge_response_parts(settings.results_dir)
            else:
                write_responses(settings.results_dir, tables)
        if _is_worker(session.config):
            return
        if self.records:
            records = list(self.records.values())
            self.outputs = write_run_outputs(self.suite, records, report=session.config.getoption("htmlpath", None),
                                             notes=self.run_notes + checkpoint_lines(checkpoint_notes(self.suite, records))
                                             + blind_notes(records))
        if settings.update_baseline and self.records:
            # a pass or a skip (not applicable) drops a recorded fragility; errors keep it
            ran = {t: (r if r["outcome"] == "failed" else None) for t, r in self.records.items()
                   if r["outcome"] in ("passed", "failed", "skipped")}
            entries = update_baseline(settings.baseline_path, ran,
                                      current_identities(self.suite, run_model_names(self.suite)))
            sys.stderr.write(f"\nmedvlm: baseline {settings.baseline_path} now records {len(entries)} known fragilities\n")


def _outcome(report, call, item) -> str:
    if report.when == "setup":
        return "skipped" if report.skipped else "error"
    if hasattr(report, "wasxfail"):
        return "xfailed" if report.skipped else "xpassed"
    if report.passed:
        return "passed"
    if report.skipped:
        return "skipped"
    longrepr = str(report.longrepr or "")
    if longrepr.startswith("[XPASS(strict)]"):
        return "xpassed"
    if call.excinfo is not None and call.excinfo.errisinstance(FragilityFound):
        return "failed"
    return "error"


def _label(outcome: str, verdict) -> str:
    """robust / fragile / inconclusive from the verdict; a skip is not_applicable; a test
    that errored before a verdict has no evidence either way: inconclusive."""
    if verdict is not None:
        return verdict.label
    return "not_applicable" if outcome == "skipped" else "inconclusive"


def _reason(report, call) -> str:
    if report.skipped and isinstance(report.longrepr, tuple):
        return str(report.longrepr[2])
    if call.excinfo is not None:
        if call.excinfo.errisinstance(FragilityFound):
            return str(call.excinfo.value)
        return f"{call.excinfo.typename}: {call.excinfo.value}"
    longrepr = str(report.longrepr or "")
    return longrepr.splitlines()[0] if longrepr else ""

