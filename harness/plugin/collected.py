"""Run-level evidence gathered from the suite and the records: per-subject report extras,
batch-invariance checks, fill counts and endpoint notes.

Split from evidence.py (the pytest hooks) so the HTML hooks can read them without importing
the hooks module back (no import circle). Under xdist the controller fills nothing: each
function merges this process's state with what the workers' records carried.
"""

from __future__ import annotations

from ..data.content_free import SUFFIX as CONTENT_FREE
from ..results import answer_counts


def subject_evidence(suite, finding: str, model: str, task: str, with_plots: bool) -> dict:
    """Report-only evidence read from the stored stages: example descriptions, a t-SNE map."""
    extra: dict = {}
    if finding == "description_recovery":
        table = suite.latest("describe", model, task)
        if table is not None:
            rows = table.dropna(subset=["description"]).drop_duplicates("image_id").head(3)
            extra["examples"] = [{"image_id": r.image_id, "variant": r.variant, "text": r.description}
                                 for r in rows.itertuples()]
    if finding == "embedding_separability" and with_plots:
        emb = suite.latest("embed", model, task)
        if emb is not None and len(emb.image_ids) >= 5:
            from ..findings.embedding_separability import scatter_sample, tsne_points

            pick = scatter_sample(emb.is_pos)
            cache = suite.__dict__.setdefault("_tsne_cache", {})
            if (model, task) not in cache:
                cache[(model, task)] = tsne_points(emb.vectors[pick], suite.thresholds.seed).tolist()
            extra["scatter"] = {"points": cache[(model, task)], "is_pos": emb.is_pos[pick].tolist()}
    return extra


def batch_invariance_by_model(suite, records: list[dict]) -> dict[str, dict]:
    """model -> batch-invariance check, from this process and the records (xdist workers' fills)."""
    found: dict[str, dict] = {}
    for r in records:
        found.update(r.get("batch_invariance") or {})
    for model, check in (getattr(suite, "batch_invariance", None) or {}).items():
        if check and check.get("checked"):
            found[model] = check
    return found


def fill_counts(suite, records: list[dict]) -> list[dict]:
    """Closed-form fill counts, one per (model, task): this process's, else the records'
    (under xdist the controller fills nothing; each worker's counts travel with its records)."""
    if suite.fill_stats:
        return [{"cached": s.cached, "generated": s.generated, "errors": s.errors} for s in suite.fill_stats.values()]
    found: dict[str, dict] = {}
    for r in records:
        found.update(r.get("fill_counts") or {})
    return list(found.values())


def endpoint_notes(suite, records: list[dict]) -> list[str]:
    """What the backends adapted to or noted (endpoints; the HF backend's prefix reuse): this
    process's, and the records' under xdist."""
    found = set(getattr(suite, "endpoint_notes", ()) or ())
    for r in records:
        found.update(r.get("endpoint_notes") or ())
    return sorted(found)


def checkpoint_notes(suite, records: list[dict]) -> dict[str, list[str]]:
    """model -> its checkpoint preflight's notes (this process's, and the records' under xdist)."""
    found: dict[str, list[str]] = {}
    for r in records:
        found.update(r.get("checkpoint_notes") or {})
    found.update(getattr(suite, "checkpoint_notes", None) or {})
    return found


def checkpoint_lines(notes: dict[str, list[str]]) -> list[str]:
    """The same as one line per note, for the terminal and summary.md."""
    return [f"{model}: checkpoint preflight: {note}" for model, lines in sorted(notes.items()) for note in lines]


def blind_notes(records: list[dict]) -> list[str]:
    """One line per subject whose answers about content-free images are not shown to stay
    near chance (test_no_answer_without_image not robust): its accuracy verdicts are suspect.
    Registry names and numbers only (nothing a model wrote)."""
    lines = []
    for r in sorted(records, key=lambda r: (str(r.get("model")), str(r.get("task")))):
        if r.get("finding") != "image_reliance" or not str(r.get("test", "")).split("[")[0].endswith(
                "test_no_answer_without_image") or r.get("label") not in ("fragile", "inconclusive"):
            continue
        shown = "are above chance (shown)" if r["label"] == "fragile" else "may be above chance (not ruled out)"
        lines.append(f"{r.get('model')} × {r.get('task')}: answers about content-free images {shown} "
                     f"(balanced accuracy {_num(r.get('value'))}, upper bound {_num(r.get('ci_high'))}, limit "
                     f"{_num(r.get('threshold'))}); the prompt or a text prior may give the class away, so this "
                     "subject's accuracy verdicts are suspect")
    return lines


def _num(x) -> str:
    return "n/a" if x is None else f"{float(x):.3f}"


def run_evidence(suite, model: str, base, task: str) -> dict:
    """What a record carries of the run beside its verdict, for this subject and its base: fill
    counts (real images and content-free stand-ins), how the answers were read, input errors,
    data egress, checkpoint preflight and endpoint notes, batch invariance. Each travels with
    the record, so under xdist the controller's terminal line and report have them."""
    extra: dict = {}
    stats = suite.fill_stats.get((model, task))
    counts = {}  # for the controller's terminal line under xdist: this subject's fills and its base's
    for name, key in [(m, k) for m in (model, base) for k in (task, task + CONTENT_FREE)]:
        filled = suite.fill_stats.get((name, key))  # the real images' answers, then the stand-ins'
        if filled is not None:
            counts[f"{name}\t{key}"] = {"cached": filled.cached, "generated": filled.generated, "errors": filled.errors}
    if counts:
        extra["fill_counts"] = counts
    memo = suite.__dict__.setdefault("_answer_counts", {})
    answers = {f"{name}\t{task}": memo.get((name, task)) or memo.setdefault(
                   (name, task), answer_counts(suite.latest("closed", name, task)))
               for name in (model, base) if suite.latest("closed", name, task) is not None}
    if answers:  # how the answers were read: parser, judge, token cap (travels with the record under xdist)
        extra["answer_counts"] = answers
    if stats is not None and stats.image_errors:  # travels with the record, so xdist keeps it
        extra["input_errors"] = [{"task": task, "image_id": k, "error": v} for k, v in sorted(stats.image_errors.items())]
    if suite.remote_destinations:
        extra["remote_destinations"] = sorted(suite.remote_destinations)
    preflight = {name: suite.checkpoint_notes[name] for name in (model, base)
                 if name in suite.checkpoint_notes}
    if preflight:  # travels with the record, so the controller's report has it under xdist
        extra["checkpoint_notes"] = preflight
    if getattr(suite, "endpoint_notes", None):  # e.g. a server that ignores response_format
        extra["endpoint_notes"] = sorted(suite.endpoint_notes)
    checks = getattr(suite, "batch_invariance", {})
    invariance = {name: checks[name] for name in (model, base)
                  if checks.get(name) and checks[name].get("checked")}
    if invariance:  # travels with the record too (xdist): this subject's check and its base's
        extra["batch_invariance"] = invariance
    return extra
