"""Pure HTML rendering for the fragility report (pytest-html 4).

Everything here turns result records (one dict per behaviour test, the
``summary.json`` record plus report-only keys) into HTML strings; the pytest
hooks that place them in the report live elsewhere.  Keeping rendering pure
makes it testable without running pytest-html.

Safety rule (SPEC §8): records carry model output and user-chosen names, and
pytest-html 4 inserts extras with ``innerHTML``, so an unescaped
``<img onerror=…>`` would run in the reader's browser.  Every string taken from
a record goes through :func:`escape`; markup, tag names and CSS classes come
only from constants in this module.
"""

from __future__ import annotations

import base64
import html
import math
import numbers
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping

from harness.core import FINDINGS
from harness.report.plots import plot_difficulty, plot_per_prompt

__all__ = [
    "CELL_STATES", "INCONCLUSIVE_STATE", "FINDINGS", "REPORT_CSS", "escape",
    "state_of", "cell_state", "render_summary_grid", "render_evidence",
    "plot_per_prompt", "plot_difficulty",
]


# outcome -> (label shown in the report, CSS class).  Class names carry an
# ``mvf-`` prefix so they never collide with pytest-html's own classes.
CELL_STATES: dict[str, tuple[str, str]] = {
    "passed": ("pass", "mvf-pass"),
    "failed": ("FAIL", "mvf-fail"),
    "xfailed": ("known", "mvf-known"),
    "xpassed": ("fixed?", "mvf-fixed"),
    "skipped": ("skipped", "mvf-skipped"),
    "error": ("error", "mvf-error"),
}
# Neither bound decides (SPEC §2): the data show neither robustness nor the fragility.
INCONCLUSIVE_STATE = ("inconclusive", "mvf-inconclusive")

# Worst first: the state a grid cell shows when several tests share it.  A
# conclusive failure outranks an inconclusive one (both fail the gate).
_WORST_FIRST = ("error", "failed", "inconclusive", "xpassed", "xfailed",
                "skipped", "passed")
_RANK = {s: i for i, s in enumerate(_WORST_FIRST)}

_MEANING = {
    "error": "the test could not run (backend errors over the limit, harness fault)",
    "failed": "fragile: the data show the fragility (the other confidence bound is past the threshold too)",
    "inconclusive": "neither bound decides (fails the gate by default): more images would decide it",
    "xpassed": "a fragility recorded in the baseline disappeared (strict: fails the run)",
    "xfailed": "a known fragility, recorded in the baseline",
    "skipped": "not run here (see the reason)",
    "passed": "the data show robustness at the chosen confidence",
}

REPORT_CSS = """
.mvf-summary table, .mvf-evidence table { border-collapse: collapse; margin: 4px 0; }
.mvf-summary th, .mvf-summary td, .mvf-evidence th, .mvf-evidence td {
  border: 1px solid #ccc; padding: 3px 6px; vertical-align: top; text-align: left; }
.mvf-grid td { min-width: 11em; }
.mvf-badge { display: inline-block; margin: 1px 0; padding: 1px 6px;
  border-radius: 3px; font-size: 12px; white-space: nowrap; }
.mvf-grid .mvf-badge { display: block; }
.mvf-pass { background: #d7f0d2; color: #1d5e1a; }
.mvf-fail { background: #c62828; color: #fff; font-weight: bold; }
.mvf-inconclusive { background: #f6c36b; color: #5a3800; }
.mvf-known { background: #e0d4f0; color: #4a2a78; }
.mvf-fixed { background: #ff8a3d; color: #fff; font-weight: bold; }
.mvf-skipped { background: #e4e4e4; color: #555; }
.mvf-error { background: #222; color: #fff; font-weight: bold; }
.mvf-legend .mvf-badge { margin-right: 4px; }
.mvf-legend li { list-style: none; }
.mvf-reason, .mvf-example { white-space: pre-wrap; word-break: break-word; }
.mvf-decisive { font-weight: bold; }
.mvf-evidence img { max-width: 100%; margin: 4px 8px 4px 0; }
.mvf-thumbnails figure { display: inline-block; margin: 2px 6px 2px 0; }
"""

_MAX_EXAMPLES = 5
_MAX_EXAMPLE_CHARS = 300
_MAX_TABLE_ROWS = 50
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def escape(text: object) -> str:
    """Escape anything for HTML text or a quoted attribute value."""
    return html.escape(str(text), quote=True)


def _fmt(x: object) -> str:
    """Format a number compactly (3 decimals) and escape anything else."""
    if x is None:
        return "—"
    if isinstance(x, (bool, numbers.Integral)):
        return escape(x)
    if isinstance(x, numbers.Real):
        x = float(x)
        if math.isnan(x):
            return "n/a"
        if x != 0 and (abs(x) < 1e-3 or abs(x) >= 1e4):
            return escape(f"{x:.3g}")
        return escape(f"{x:.3f}")
    return escape(x)


def _badge(state: str, text: str, title: str = "") -> str:
    """A coloured state label; ``text`` and ``title`` must be already escaped."""
    css = state_css(state)
    tip = f' title="{title}"' if title else ""
    return f'<span class="mvf-badge {css}"{tip}>{text}</span>'


# ---------------------------------------------------------------- states

def state_of(record: Mapping) -> str:
    """The record's report state: an outcome, or ``"inconclusive"``.

    An unknown outcome is shown as an error: it means the harness produced a
    record it should not have, and hiding it would hide a fault.
    """
    outcome = record.get("outcome")
    if outcome in ("failed", "passed") and (record.get("label") == "inconclusive" or record.get("inconclusive")):
        return "inconclusive"  # fails by default; passes only under `inconclusive = "pass"`
    return outcome if outcome in CELL_STATES else "error"


def state_css(state: str) -> str:
    """CSS class of a report state."""
    return INCONCLUSIVE_STATE[1] if state == "inconclusive" else CELL_STATES[state][1]


def state_label(state: str) -> str:
    """Short label of a report state."""
    return INCONCLUSIVE_STATE[0] if state == "inconclusive" else CELL_STATES[state][0]


def cell_state(record: Mapping) -> tuple[str, str]:
    """(label, CSS class) for one record, honouring the inconclusive flag."""
    s = state_of(record)
    return state_label(s), state_css(s)


def _worst(states: Iterable[str]) -> str:
    return min(states, key=_RANK.__getitem__)


# ---------------------------------------------------------------- grid

def _task_columns(records: list[Mapping], task_order: list[str] | None) -> list[str]:
    """Tasks in the requested order; tasks not named there follow, sorted."""
    present = {str(r.get("task")) for r in records}
    ordered = [t for t in (task_order or []) if t in present]
    return ordered + sorted(present - set(ordered))


def _finding_order(findings: Iterable[str]) -> list[str]:
    """Known findings in the study's order, then any others alphabetically."""
    found = set(findings)
    return [f for f in FINDINGS if f in found] + sorted(found - set(FINDINGS))


def _cell_html(recs: list[Mapping]) -> str:
    """Badges for one (model, task) cell: worst state per finding, with count."""
    if not recs:
        return '<td class="mvf-empty">—</td>'
    by_finding: dict[str, list[Mapping]] = defaultdict(list)
    for r in recs:
        by_finding[str(r.get("finding"))].append(r)
    badges = []
    for finding in _finding_order(by_finding):
        group = by_finding[finding]
        states = [state_of(r) for r in group]
        worst = _worst(states)
        text = f"{escape(finding)}: {escape(state_label(worst))}"
        if len(group) > 1:
            text += f" {states.count(worst)}/{len(group)}"
        tests = "\n".join(str(r.get("test", "")) for r, s in zip(group, states)
                          if s == worst)
        badges.append(_badge(worst, text, escape(tests)))
    return "<td>" + "".join(badges) + "</td>"


def _model_header(model: str, recs: list[Mapping]) -> str:
    bases = sorted({str(r["base_model"]) for r in recs if r.get("base_model")})
    base = f"<br><small>base: {escape(', '.join(bases))}</small>" if bases else ""
    return f"<th><b>{escape(model)}</b>{base}</th>"


def _totals(records: list[Mapping]) -> str:
    """One line counting tests per state, worst first."""
    counts = Counter(state_of(r) for r in records)
    parts = [_badge(s, f"{counts[s]} {escape(state_label(s))}")
             for s in _WORST_FIRST if counts[s]]
    body = " ".join(parts) if parts else "no behaviour tests recorded"
    return f'<p class="mvf-totals">Totals ({len(records)} tests): {body}</p>'


def _legend() -> str:
    items = "".join(
        f"<li>{_badge(s, escape(state_label(s)))}{escape(_MEANING[s])}</li>"
        for s in _WORST_FIRST)
    return f'<ul class="mvf-legend">{items}</ul>'


def render_summary_grid(records: list[dict], *, task_order: list[str] | None = None) -> str:
    """The model x task overview that opens the report.

    One row per model, one column per task; a cell shows, per finding, the
    worst state among its tests and how many tests share that state, so a
    reader sees at a glance where a model is fragile before reading details.
    """
    tasks = _task_columns(records, task_order)
    by_model: dict[str, list[Mapping]] = defaultdict(list)
    for r in records:
        by_model[str(r.get("model"))].append(r)
    head = "<tr><th>model</th>" + "".join(f"<th>{escape(t)}</th>" for t in tasks) + "</tr>"
    rows = []
    for model in sorted(by_model):
        recs = by_model[model]
        cells = [_cell_html([r for r in recs if str(r.get("task")) == t]) for t in tasks]
        rows.append("<tr>" + _model_header(model, recs) + "".join(cells) + "</tr>")
    return (f"<style>{REPORT_CSS}</style>"
            '<section class="mvf-summary"><h2>Fragility summary</h2>'
            + _totals(records)
            + f'<table class="mvf-grid">{head}{"".join(rows)}</table>'
            + _legend() + "</section>")


# ---------------------------------------------------------------- evidence

def _confidence_text(record: Mapping) -> str:
    conf = record.get("confidence")
    if isinstance(conf, (int, float)) and not isinstance(conf, bool) and math.isfinite(conf):
        return f"one-sided, {conf * 100:g} %"
    return "one-sided"


def _threshold_text(record: Mapping) -> str:
    """The pass rule in words, e.g. 'passes iff lower bound ≥ 0.600'."""
    thr = record.get("threshold")
    if thr is None:
        return "—"
    rule = {"ge": "lower bound ≥", "le": "upper bound ≤"}.get(record.get("direction"))
    return f"passes iff {rule} {_fmt(thr)}" if rule else _fmt(thr)


def _verdict_text(record: Mapping) -> str:
    state = state_of(record)
    text = _badge(state, escape(state_label(state)))
    if state == "inconclusive":
        need = record.get("images_needed")
        if isinstance(need, int) and not isinstance(need, bool) and need > 0:
            text += f" — about {need} images per class would likely decide it"
        else:
            text += " — more images would be needed to decide it"
    return text


def _numbers_table(record: Mapping) -> str:
    """Metric, estimate, bounds, rule, sample size and verdict."""
    decisive = {"ge": "ci_low", "le": "ci_high"}.get(record.get("direction"))
    conf = escape(_confidence_text(record))

    def bound(key: str) -> str:
        cls = ' class="mvf-decisive"' if key == decisive else ""
        return f"<td{cls}>{_fmt(record.get(key))}</td>"

    subject = escape(record.get("model", ""))
    if record.get("base_model"):
        subject += f" <small>(base: {escape(record['base_model'])})</small>"
    task = escape(record.get("task", ""))
    if record.get("perturbation"):
        task += f" · perturbation: {escape(record['perturbation'])}"
    rows = [
        ("test", f"<td><code>{escape(record.get('test', ''))}</code></td>"),
        ("model", f"<td>{subject}</td>"),
        ("task", f"<td>{task}</td>"),
        ("metric", f"<td>{escape(record.get('metric', ''))}</td>"),
        ("value", f"<td>{_fmt(record.get('value'))}</td>"),
        (f"lower bound ({conf})", bound("ci_low")),
        (f"upper bound ({conf})", bound("ci_high")),
        ("threshold", f"<td>{_threshold_text(record)}</td>"),
        ("images", f"<td>{_fmt(record.get('n_images'))}</td>"),
        ("verdict", f"<td>{_verdict_text(record)}</td>"),
    ]
    body = "".join(f"<tr><th>{name}</th>{cell}</tr>" for name, cell in rows)
    return f'<table class="mvf-numbers">{body}</table>'


def _is_record_list(value: object) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, Mapping) for v in value)


def _list_table(items: list[Mapping], depth: int) -> str:
    """A list of dicts (e.g. per_variant) as a table, columns in first-seen order."""
    cols: list[str] = []
    for it in items:
        cols += [str(k) for k in it if str(k) not in cols]
    head = "".join(f"<th>{escape(c)}</th>" for c in cols)
    rows = []
    for it in items[:_MAX_TABLE_ROWS]:
        by_name = {str(k): v for k, v in it.items()}
        rows.append("<tr>" + "".join(f"<td>{_value_html(by_name.get(c), depth + 1)}</td>"
                                     for c in cols) + "</tr>")
    more = len(items) - _MAX_TABLE_ROWS
    note = f"<p><small>{more} more rows not shown</small></p>" if more > 0 else ""
    return f'<table class="mvf-list"><tr>{head}</tr>{"".join(rows)}</table>{note}'


def _value_html(value: object, depth: int = 0) -> str:
    """Render one details value: nested tables for structure, text otherwise."""
    if depth < 3 and isinstance(value, Mapping) and value:
        return _kv_table(value, depth + 1)
    if depth < 3 and _is_record_list(value):
        return _list_table(value, depth + 1)  # type: ignore[arg-type]
    if isinstance(value, (list, tuple)):
        shown = ", ".join(_fmt(v) for v in value[:20])
        return shown + (", …" if len(value) > 20 else "")
    return _fmt(value)


def _kv_table(details: Mapping, depth: int = 0) -> str:
    rows = "".join(f"<tr><th>{escape(k)}</th><td>{_value_html(v, depth)}</td></tr>"
                   for k, v in details.items())
    return f'<table class="mvf-details">{rows}</table>'


def _truncate(text: str, limit: int = _MAX_EXAMPLE_CHARS) -> str:
    """Cut before escaping, so an entity is never split in half."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _examples_html(examples: object) -> str:
    """At most five raw model answers, escaped and shortened."""
    if not isinstance(examples, list) or not examples:
        return ""
    items = []
    for ex in examples[:_MAX_EXAMPLES]:
        ex = ex if isinstance(ex, Mapping) else {"text": ex}
        where = " · ".join(escape(ex[k]) for k in ("image_id", "variant")
                           if ex.get(k) is not None)
        text = escape(_truncate(str(ex.get("text") or "")))
        items.append(f"<li><small>{where}</small><br>"
                     f'<code class="mvf-example">{text}</code></li>')
    more = len(examples) - _MAX_EXAMPLES
    note = f"<p><small>{more} more not shown</small></p>" if more > 0 else ""
    return f"<h3>Example model outputs</h3><ul>{''.join(items)}</ul>{note}"


def _images_html(images: Mapping[str, bytes] | None) -> str:
    """Inline PNGs as data URIs; anything that is not a PNG is named, not shown."""
    if not images:
        return ""
    parts = []
    for name, data in images.items():
        if isinstance(data, (bytes, bytearray)) and bytes(data[:8]) == _PNG_MAGIC:
            b64 = base64.b64encode(bytes(data)).decode("ascii")
            parts.append(f'<img src="data:image/png;base64,{b64}" alt="{escape(name)}"'
                         f' title="{escape(name)}">')
        else:
            parts.append(f"<p><small>{escape(name)}: not a PNG, not shown</small></p>")
    return f'<div class="mvf-plots">{"".join(parts)}</div>'


def render_evidence(record: dict, images: dict[str, bytes] | None = None) -> str:
    """The evidence block shown under one test's row in the report.

    A verdict is only as credible as the numbers behind it, so the block
    shows the estimate, both one-sided bounds (the decisive one in bold), the
    pass rule, sample size, the extra statistics, a few raw answers and plots.
    """
    title = f"{escape(record.get('finding', ''))} · {escape(record.get('metric', ''))}"
    parts = [f'<div class="mvf-evidence"><h3>{title}</h3>', _numbers_table(record)]
    if record.get("warning"):  # e.g. answers above chance without the image: the verdict is suspect
        parts.append(f'<p class="mvf-warning"><b>Warning:</b> {escape(record["warning"])}</p>')
    if record.get("reason"):
        parts.append(f'<div class="mvf-reason"><small>{escape(record["reason"])}</small></div>')
    details = record.get("details")
    if isinstance(details, Mapping) and details:
        parts.append("<h3>Details</h3>" + _kv_table(details))
    parts.append(_examples_html(record.get("examples")))
    parts.append(_images_html(images))
    parts.append("</div>")
    return "".join(parts)


# ---------------------------------------------------------------- header
