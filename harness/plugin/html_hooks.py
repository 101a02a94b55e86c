"""pytest-html integration, registered only when pytest-html is active.

The report starts with the summary grid (model × task, one cell per finding) and the
balanced-accuracy-by-difficulty plot; each behaviour test's row carries its numbers
and a per-prompt plot. All text that a model or a user wrote is escaped by report.py.
"""

from __future__ import annotations

import io
import math

from ..calibration.rates import per_test_rows, rates_lines
from ..results import unique_answer_counts, unique_input_errors
from .collected import batch_invariance_by_model, blind_notes, checkpoint_notes, endpoint_notes
from ..report.plots import plot_scatter
from ..report.html import plot_difficulty, plot_per_prompt, render_evidence
from ..report.header import render_report_header, render_thumbnails

THUMBNAILS_PER_CLASS = 2
THUMBNAIL_PX = 64


def _plots_for(record: dict) -> dict[str, bytes]:
    details = record.get("details") or {}
    scatter = record.get("scatter")
    if scatter:
        title = "t-SNE of vision-encoder embeddings"
        return {title: plot_scatter(scatter["points"], scatter["is_pos"], title=title)}
    rows = details.get("per_variant")
    if not rows:
        return {}
    if record.get("finding") == "finetune_gain":
        delta_rows = [{"variant": r["variant"], "value": r.get("delta"), "low": r.get("delta"), "high": r.get("delta")}
                      for r in rows]
        title = "gain over the base model per prompt (point estimates)"
        return {title: plot_per_prompt(delta_rows, chance=0.0, threshold=None, title=title)}
    if record.get("finding") == "description_recovery":
        title = "balanced accuracy from descriptions, per describe prompt / template"
        return {title: plot_per_prompt(rows, chance=0.5, threshold=None, title=title)}
    metric = record.get("metric") or ""
    if metric.startswith("balanced_accuracy"):
        chance, threshold, title = details.get("chance"), record.get("threshold"), "balanced accuracy per prompt"
    elif metric == "accuracy_swing":
        chance, threshold, title = 0.5, None, "balanced accuracy per prompt"
    elif metric == "refusal_swing":
        chance, threshold, title = None, None, "refusal rate per prompt"
    else:
        return {}
    plot_rows = [
        {"variant": r["variant"], "value": r.get("value"),
         "low": r.get("low", r.get("value")), "high": r.get("high", r.get("value"))}
        for r in rows
    ]
    return {title: plot_per_prompt(plot_rows, chance=chance, threshold=threshold, title=title)}


def attach_evidence(report, record: dict, with_plots: bool, thumbnails: list | None = None) -> None:
    """The evidence block in the report only: thumbnails never enter the record, so they
    never reach summary.json or the JUnit XML (which carries the record)."""
    from pytest_html import extras

    images = _plots_for(record) if with_plots else {}
    html = render_evidence(record, images) + (render_thumbnails(thumbnails) if thumbnails else "")
    report.extras = list(getattr(report, "extras", [])) + [extras.html(html)]


def make_thumbnails(items, per_class: int = THUMBNAILS_PER_CLASS, px: int = THUMBNAIL_PX) -> list[dict]:
    """Small PNGs of the first few images of each class (--report-thumbnails only);
    an image that cannot be read is left out (it is listed under input errors)."""
    thumbs = []
    for label in ("positive", "negative"):
        for item in [i for i in items if i.label == label][:per_class]:
            try:
                img = item.load()
            except Exception:  # noqa: BLE001 - a bad image is reported elsewhere
                continue
            img.thumbnail((px, px))
            buf = io.BytesIO()
            img.save(buf, format="PNG")
            thumbs.append({"image_id": item.image_id, "label": item.label, "png": buf.getvalue()})
    return thumbs


def difficulty_points(records: list[dict], tasks: dict) -> list[dict]:
    points = []
    for r in records:
        if r.get("finding") != "near_random" or r.get("value") is None or r["task"] not in tasks:
            continue
        points.append({
            "model": r["model"], "task": r["task"], "difficulty": tasks[r["task"]].difficulty,
            "value": r["value"],
            "low": r["ci_low"] if r.get("ci_low") is not None else math.nan,
            "high": r["ci_high"] if r.get("ci_high") is not None else math.nan,
        })
    return points


def remote_destinations(suite, records: list[dict]) -> list[str]:
    """This process's destinations plus those the records carry (xdist workers' fills)."""
    found = set(suite.remote_destinations)
    for r in records:
        found.update(r.get("remote_destinations") or ())
    return sorted(found)


class HtmlHooks:
    def __init__(self, evidence):
        self.evidence = evidence

    def pytest_html_report_title(self, report):
        report.title = "medvlm-fragility report"

    def pytest_html_results_summary(self, prefix, summary, postfix, session=None):
        suite = self.evidence.suite
        records = list(self.evidence.records.values())
        points = difficulty_points(records, suite.registry.tasks)
        png = plot_difficulty(points) if points else None
        order = sorted(suite.registry.tasks, key=lambda k: suite.registry.tasks[k].difficulty)
        prefix.append(render_report_header(
            records, difficulty_png=png, remote_destinations=remote_destinations(suite, records), task_order=order,
            input_errors=unique_input_errors(records), batch_invariance=batch_invariance_by_model(suite, records),
            answer_counts=unique_answer_counts(records), changes=self.evidence.outputs.get("changes"),
            image_changes=self.evidence.outputs.get("image_changes"),
            endpoint_notes=endpoint_notes(suite, records), run_notes=self.evidence.run_notes + blind_notes(records),
            checkpoint_notes=checkpoint_notes(suite, records),
            design_rates=rates_lines(suite.thresholds, suite.settings.n_per_class, len(suite.tasks)),
            design_rows=per_test_rows(suite.thresholds, suite.settings.n_per_class)))
