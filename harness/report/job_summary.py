"""results/summary.md: the run's labels as a short Markdown table for a CI job summary.

Why: the first thing a reviewer sees of a CI run is its job summary (GitHub's
$GITHUB_STEP_SUMMARY, a merge-request comment, a model card). One row per model × task, one
cell per finding with its counts of robust / fragile / inconclusive tests (and not
applicable), then the totals and where the full report is. Model and task names are
registry names (letters, digits, '.', '_', '-'); nothing a model wrote reaches this file.
Knows nothing of pytest: it reads the records summary.json is written from.
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from pathlib import Path
from typing import Optional

from ..core import FINDINGS
LABELS = (("robust", "✅"), ("fragile", "❌"), ("inconclusive", "❔"), ("not_applicable", "–"))


def _cell(counts: Counter) -> str:
    parts = [f"{mark} {counts[label]}" for label, mark in LABELS if counts.get(label)]
    return " ".join(parts) if parts else ""


def render_summary_md(records: list[dict], *, report: Optional[str] = None, title: str = "medvlm-fragility",
                      changes: Optional[dict] = None, notes: Optional[list[str]] = None,
                      design: Optional[list[str]] = None) -> str:
    """The run's notes (read first: e.g. a model that is not the one the baseline was recorded
    on), the Markdown table (model × task, one cell per finding) and the totals."""
    cells: dict = defaultdict(Counter)
    findings = [f for f in FINDINGS if any(r.get("finding") == f for r in records)]
    findings += sorted({str(r.get("finding")) for r in records} - set(findings) - {"None"})
    for r in records:
        label = r.get("label") or ("not_applicable" if r.get("outcome") == "skipped" else r.get("outcome"))
        cells[(str(r.get("model")), str(r.get("task")), str(r.get("finding")))][label] += 1
    subjects = sorted({(m, t) for (m, t, _) in cells})
    lines = [f"## {title}", ""]
    lines += [f"> **Note:** {_md_text(n)}" for n in notes or []] + ([""] if notes else [])
    lines += ["Tests per finding: ✅ robust, ❌ fragile (shown), ❔ inconclusive, – not applicable.", "",
              "| model | task | " + " | ".join(findings) + " |",
              "|---|---|" + "---|" * len(findings)]
    for model, task in subjects:
        lines.append(f"| {model} | {task} | " + " | ".join(_cell(cells[(model, task, f)]) for f in findings) + " |")
    total = Counter(r.get("label") or "other" for r in records)
    lines += ["", "**Total**: " + ", ".join(f"{total[label]} {label.replace('_', ' ')}" for label, _ in LABELS
                                             if total.get(label)) + f" of {len(records)} tests."]
    if design:  # how often a run like this one is wrong (issue 18)
        lines += ["", " ".join(_md_text(line) for line in design)]
    if changes is not None:
        lines += ["", _changes_line(changes)]
    if report:
        lines += ["", f"Full report: `{report}`; machine-readable: `summary.json`, `responses.csv`."]
    return "\n".join(lines) + "\n"


def _changes_line(changes: dict) -> str:
    since = changes.get("since")
    if not changes.get("comparable"):
        return f"**Changes since** `{since}`: {changes.get('reason')}."
    changed = changes.get("changed") or []
    flips = ", ".join(f"`{c['test']}` {c['label'][0]} → {c['label'][1]}" for c in changed[:10])
    more = f" and {len(changed) - 10} more" if len(changed) > 10 else ""
    return (f"**Changes since** `{since}`: {len(changed)} tests changed label or outcome"
            + (f" ({flips}{more})" if flips else "") + f"; {len(changes.get('added') or [])} new, "
            f"{len(changes.get('removed') or [])} gone.")


def _md_text(text: str) -> str:
    """A note on one Markdown line: no line breaks, no HTML (notes name models and paths, and
    a job summary renders HTML)."""
    return " ".join(str(text).split()).replace("<", "&lt;").replace(">", "&gt;")


def write_summary_md(results_dir: Path, records: list[dict], *, report: Optional[str] = None,
                     changes: Optional[dict] = None, notes: Optional[list[str]] = None,
                     design: Optional[list[str]] = None) -> Path:
    """Write results/summary.md, and append it to $GITHUB_STEP_SUMMARY when that is set."""
    text = render_summary_md(records, report=report, changes=changes, notes=notes, design=design)
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / "summary.md"
    path.write_text(text, encoding="utf-8")
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if step_summary:
        with open(step_summary, "a", encoding="utf-8") as f:
            f.write(text)
    return path
