"""The top of the HTML report: summary grid, difficulty plot, input errors, batch
invariance, data egress; and the opt-in input thumbnails.

Split from report.py (which renders each test's evidence) so both stay small. Every
string that a model, a dataset or a user wrote is escaped here too.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping

__all__ = ["render_report_header", "render_run_notes", "render_answer_counts", "render_changes", "render_batch_invariance", "render_input_errors",
           "render_thumbnails"]

from .html import _MAX_TABLE_ROWS, _PNG_MAGIC, _images_html, _truncate, escape, render_summary_grid

def _remote_line(destinations: list[str]) -> str:
    """SPEC §8: the report records every remote destination that saw data."""
    if not destinations:
        body = "none: all requests stayed on this machine"
    else:
        body = ", ".join(f"<code>{escape(d)}</code>" for d in sorted(set(map(str, destinations))))
    return f'<p class="mvf-remote"><b>Remote destinations used:</b> {body}</p>'


def render_input_errors(errors: list[Mapping]) -> str:
    """Images that could not be read (SPEC §8): image id and message, escaped, capped.

    They are excluded like backend errors; listing them tells the reader which files
    to fix and why the per-class counts may be short.
    """
    if not errors:
        return ""
    items = "".join(f"<li><code>{escape(e.get('image_id', ''))}</code>: {escape(_truncate(str(e.get('error', ''))))}</li>"
                    for e in errors[:_MAX_TABLE_ROWS])
    more = len(errors) - _MAX_TABLE_ROWS
    note = f"<p><small>{more} more in errors.csv</small></p>" if more > 0 else ""
    noun = "image" if len(errors) == 1 else "images"
    return (f'<section class="mvf-input-errors"><h3>Input errors ({len(errors)} {noun} not used)</h3>'
            f"<ul>{items}</ul>{note}</section>")


def render_thumbnails(thumbnails: list[Mapping]) -> str:
    """Opt-in (--report-thumbnails) PNG thumbnails of input images, ids and labels escaped."""
    figures = []
    for t in thumbnails:
        data = t.get("png")
        if not isinstance(data, (bytes, bytearray)) or bytes(data[:8]) != _PNG_MAGIC:
            continue
        b64 = base64.b64encode(bytes(data)).decode("ascii")
        caption = f"{escape(t.get('image_id', ''))} · {escape(t.get('label', ''))}"
        figures.append(f'<figure><img src="data:image/png;base64,{b64}" alt="{caption}">'
                       f"<figcaption><small>{caption}</small></figcaption></figure>")
    if not figures:
        return ""
    return f'<div class="mvf-thumbnails"><h3>Input images (thumbnails)</h3>{"".join(figures)}</div>'


def render_batch_invariance(per_model: Mapping[str, Mapping]) -> str:
    """Share of sampled answers that change when asked one at a time, per in-process model.

    Always listed when checked (so a reader sees it was zero), flagged with examples when
    not zero: a batch-dependent answer would look like prompt fragility.
    """
    rows = {m: r for m, r in sorted(per_model.items()) if r and r.get("checked")}
    if not rows:
        return ""
    parts = ", ".join(f"{escape(m)} {r['changed']} of {r['checked']}" for m, r in rows.items())
    changed = {m: r for m, r in rows.items() if r.get("changed")}
    if not changed:
        return (f'<p class="mvf-batch"><b>Batch invariance:</b> no sampled answer changes when asked one at a '
                f"time ({parts}).</p>")
    examples = "".join(
        f"<li>{escape(m)} · {escape(e.get('task', ''))} · {escape(e.get('variant', ''))}: batched "
        f"<code>{escape(_truncate(str(e.get('batched', ''))))}</code>, alone <code>{escape(_truncate(str(e.get('alone', ''))))}</code></li>"
        for m, r in changed.items() for e in (r.get("examples") or ()))
    return (f'<section class="mvf-batch"><h3>Batch invariance: answers that change when asked one at a time</h3>'
            f"<p>{parts}. Prompt-sensitivity results for these models mix prompt effects with batch effects.</p>"
            f"<ul>{examples}</ul></section>")


_ANSWER_COLUMNS = (("answers", "answers"), ("unparsed", "parser could not read"), ("judge_read", "read by the judge"),
                   ("truncated", "hit the token cap"), ("reasked", "asked again, longer"),
                   ("cut_off_unparsed", "still cut off, unread"))


def render_answer_counts(per_subject: Mapping[str, Mapping]) -> str:
    """How each subject's answers were read: parser, judge, token cap (SPEC §3).

    Always shown, so a reader sees that nothing was cut off; a subject with answers
    still cut off after the last re-ask is flagged (they are scored as refusals).
    """
    if not per_subject:
        return ""
    head = "".join(f"<th>{escape(label)}</th>" for _, label in _ANSWER_COLUMNS)
    rows = []
    for key, counts in sorted(per_subject.items()):
        model, _, task = str(key).partition("\t")
        flag = ' class="mvf-flag"' if counts.get("cut_off_unparsed") else ""
        cells = "".join(f"<td>{int(counts.get(name, 0) or 0)}</td>" for name, _ in _ANSWER_COLUMNS)
        rows.append(f"<tr{flag}><td>{escape(model)}</td><td>{escape(task)}</td>{cells}</tr>")
    return (f'<section class="mvf-answers"><h3>How the answers were read</h3><table><tr><th>model</th><th>task</th>'
            f"{head}</tr>{''.join(rows)}</table></section>")


def render_changes(changes: Mapping | None) -> str:
    """The "changes since" an earlier run (--compare-to): label or outcome changes, the
    estimates that moved most, tests new and gone; or why the runs were not compared."""
    if not changes:
        return ""
    since = escape(str(changes.get("since", "")))
    if not changes.get("comparable"):
        return (f'<section class="mvf-changes"><h3>Changes since <code>{since}</code></h3>'
                f"<p>{escape(str(changes.get('reason', '')))}</p></section>")
    changed = list(changes.get("changed") or [])
    rows = "".join(
        f"<tr><td><code>{escape(c['test'])}</code></td><td>{escape(str(c['label'][0]))} → {escape(str(c['label'][1]))}"
        f"</td><td>{escape(str(c['outcome'][0]))} → {escape(str(c['outcome'][1]))}</td></tr>"
        for c in changed[:_MAX_TABLE_ROWS])
    moved = list(changes.get("moved") or [])[:10]
    moves = "".join(f"<tr><td><code>{escape(m['test'])}</code></td><td>{escape(str(m.get('metric')))}</td>"
                    f"<td>{m['previous']:.3f} → {m['value']:.3f} ({m['delta']:+.3f})</td></tr>" for m in moved)
    added, removed = changes.get("added") or [], changes.get("removed") or []
    return (f'<section class="mvf-changes"><h3>Changes since <code>{since}</code></h3>'
            f"<p>{len(changed)} tests changed label or outcome; {len(added)} new, {len(removed)} gone.</p>"
            + (f"<table><tr><th>test</th><th>label</th><th>outcome</th></tr>{rows}</table>" if rows else "")
            + (f"<p>Largest moves of the estimate:</p><table><tr><th>test</th><th>metric</th><th>value</th></tr>"
               f"{moves}</table>" if moves else "")
            + "</section>")


def render_image_changes(counts: list[Mapping]) -> str:
    """Per compared pair (a model and its previous version or base model) and task: how many
    (image, prompt) answers went from right to wrong and back; the cells are in changes.csv."""
    if not counts:
        return ""
    rows = "".join(
        f"<tr><td>{escape(str(c.get('model')))}</td><td>{escape(str(c.get('relation')))}: "
        f"{escape(str(c.get('other')))}</td><td>{escape(str(c.get('task')))}</td><td>{int(c.get('right_to_wrong', 0))}"
        f"</td><td>{int(c.get('wrong_to_right', 0))}</td><td>{int(c.get('images', 0))}</td></tr>" for c in counts)
    return ('<section class="mvf-image-changes"><h3>Per-image changes between compared models</h3>'
            "<table><tr><th>model</th><th>compared with</th><th>task</th><th>right → wrong</th><th>wrong → right</th>"
            f"<th>images</th></tr>{rows}</table><p><small>Every changed (image, prompt) answer is in "
            "changes.csv.</small></p></section>")


def render_run_notes(notes: list[str]) -> str:
    """What a reader must know before any verdict (e.g. a model that is not the one the
    baseline was recorded on): first in the report, escaped."""
    if not notes:
        return ""
    items = "".join(f"<li>{escape(str(n))}</li>" for n in notes)
    return f'<section class="mvf-notes"><h3>Read first</h3><ul>{items}</ul></section>'


def render_design_rates(lines: list[str], rows: list[tuple]) -> str:
    """How often a verdict of this run's design is wrong (simulated; issue 18): the whole-run
    sentences and, per test, the false pass at the threshold, the robust and fragile rates."""
    if not lines:
        return ""
    body = "".join(f"<p>{escape(line)}</p>" for line in lines)
    if rows:
        cells = "".join(
            f"<tr><td>{escape(t)}</td><td>{fp[0]:.3f} ± {fp[1]:.3f}</td><td>{rp[0]:.3f} ± {rp[1]:.3f}</td>"
            f"<td>{ff[0]:.3f} ± {ff[1]:.3f}</td></tr>" for t, fp, rp, ff in rows)
        body += ("<table><tr><th>test</th><th>passes at its threshold (false pass)</th><th>robust subject passes</th>"
                 f"<th>fragile subject fails</th></tr>{cells}</table>")
    return f'<section class="mvf-design"><h3>How often such a verdict is wrong</h3>{body}</section>'


def render_endpoint_notes(notes: list[str]) -> str:
    """What the backends adapted to or noted (a server that ignores structured output, a
    parameter it refused, a served model that changed on purpose, prompts that could not
    share their image's prefix): the verdicts stand, but the reader should know."""
    if not notes:
        return ""
    items = "".join(f"<li>{escape(_truncate(str(n)))}</li>" for n in notes[:_MAX_TABLE_ROWS])
    return f'<section class="mvf-endpoints"><h3>Backend notes</h3><ul>{items}</ul></section>'


def render_checkpoint_notes(notes: Mapping[str, list[str]]) -> str:
    """Per model, what the checkpoint preflight replaced (chat template, image processor),
    repaired from the model's config or found changed against its snapshot: a reviewer of a
    red or green run must see that the model was not run as its checkpoint ships."""
    if not notes:
        return ""
    items = "".join(f"<li><b>{escape(model)}</b><ul>"
                    + "".join(f"<li>{escape(_truncate(str(n)))}</li>" for n in lines[:_MAX_TABLE_ROWS]) + "</ul></li>"
                    for model, lines in sorted(notes.items()))
    return (f'<section class="mvf-preflight"><h3>Checkpoint preflight: replaced, repaired or changed</h3>'
            f"<ul>{items}</ul></section>")


def render_report_header(records: list[dict], *, difficulty_png: bytes | None,
                         remote_destinations: list[str],
                         task_order: list[str] | None = None,
                         input_errors: list[Mapping] | None = None,
                         batch_invariance: Mapping[str, Mapping] | None = None,
                         answer_counts: Mapping[str, Mapping] | None = None,
                         changes: Mapping | None = None,
                         image_changes: list[Mapping] | None = None,
                         endpoint_notes: list[str] | None = None,
                         run_notes: list[str] | None = None,
                         checkpoint_notes: Mapping[str, list[str]] | None = None,
                         design_rates: list[str] | None = None,
                         design_rows: list[tuple] | None = None) -> str:
    """Everything above the results table: the run's notes, grid, difficulty plot, input
    errors, batch invariance, data egress."""
    parts = [render_run_notes(run_notes or []), render_checkpoint_notes(checkpoint_notes or {}),
             render_summary_grid(records, task_order=task_order), render_changes(changes)]
    if difficulty_png:
        parts.append('<section class="mvf-summary"><h3>Balanced accuracy by task difficulty</h3>'
                     + _images_html({"balanced accuracy by task difficulty": difficulty_png})
                     + "</section>")
    parts.append(render_design_rates(design_rates or [], design_rows or []))
    parts.append(render_input_errors(input_errors or []))
    parts.append(render_answer_counts(answer_counts or {}))
    parts.append(render_image_changes(image_changes or []))
    parts.append(render_batch_invariance(batch_invariance or {}))
    parts.append(render_endpoint_notes(endpoint_notes or []))
    parts.append(_remote_line(remote_destinations))
    return "".join(parts)
