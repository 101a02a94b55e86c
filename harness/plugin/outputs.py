"""What a run leaves in --results-dir at its end, and the comparison with an earlier run.

Split from evidence.py (which collects each test's record) so that the pytest hook there
only decides *when* to write: summary.json (with the run's fingerprint and, with
`--compare-to`, the changes since that run), summary.md (the CI job summary) and
errors.csv. The writers themselves know nothing of pytest (harness/results.py,
harness/report/job_summary.py, harness/results/compare.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from ..results.compare import compare_runs, load_summary, run_fingerprint
from ..results.image_changes import write_image_changes
from ..report.job_summary import write_summary_md
from ..results import summary_record, unique_input_errors, write_input_errors, write_summary


def write_run_outputs(suite, records: list[dict], *, report: Optional[str], notes: Optional[list[str]] = None) -> dict:
    """Write the end-of-run files; returns what the report shows of them: the "changes since"
    (None without --compare-to) and the per-image change counts of the compared pairs."""
    settings = suite.settings
    compare_to: Optional[Path] = getattr(settings, "compare_to", None)
    changes = None
    if settings.results_dir is None:
        if compare_to is not None:
            changes = {"since": str(compare_to), "comparable": False, "reason": "needs --results-dir",
                       "changed": [], "moved": [], "added": [], "removed": []}
        return {"changes": changes, "image_changes": []}
    run = run_fingerprint(settings.results_dir, suite.thresholds)
    pairs = [suite.registry.models[m.name] for m in suite.models]
    extra: dict = {"run": run, "image_changes": write_image_changes(settings.results_dir, pairs)}
    if compare_to is not None:
        previous = load_summary(compare_to)  # before this run overwrites it, when it is the same folder
        current = {"records": [summary_record(r) for r in records], "run": run}
        changes = compare_runs(current, previous, previous_dir=str(compare_to))
        extra["changes"] = changes
    write_summary(settings.results_dir, records, extra=extra)
    from ..calibration.rates import rates_lines

    write_summary_md(settings.results_dir, records, report=report, changes=changes, notes=notes,
                     design=rates_lines(suite.thresholds, settings.n_per_class, len(suite.tasks)))
    write_input_errors(settings.results_dir, unique_input_errors(records))
    return {"changes": changes, "image_changes": extra["image_changes"]}
