"""Machine-readable results: summary.json (SPEC §6 schema), the per-response table and
the input images that could not be read (errors.csv)."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pandas as pd

SUMMARY_FIELDS = (
    "finding", "test", "model", "base_model", "task", "perturbation",
    "metric", "value", "ci_low", "ci_high", "threshold", "outcome", "label", "reason",
)


def _clean(value):
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    return value


def summary_record(record: dict) -> dict:
    return {key: _clean(record.get(key)) for key in SUMMARY_FIELDS}


ANSWER_COUNT_FIELDS = ("answers", "unparsed", "judge_read", "truncated", "reasked", "cut_off_unparsed")


def answer_counts(table: pd.DataFrame) -> dict:
    """How one subject's closed-form answers were read (issue 11; SPEC §3).

    answers: answers received (errors aside); unparsed: the parser could not read them
    (`refused` unless the judge could); judge_read: of those, what only the judge read;
    truncated: first answers that hit the token cap; reasked: of those, asked again with a
    larger budget; cut_off_unparsed: answers still cut off at the last budget and unread,
    scored as refusals and named here so that the cap is never silently a refusal.
    """
    answered = table[table["outcome"] != "error"]
    unparsed = answered["parsed"] == "refused"
    cut = answered["cut_off"].astype(bool) if "cut_off" in answered else pd.Series(False, index=answered.index)
    return {
        "answers": int(len(answered)),
        "unparsed": int(unparsed.sum()),
        "judge_read": int((unparsed & (answered["outcome"] != "refused")).sum()),
        "truncated": int(answered["truncated"].astype(bool).sum()) if "truncated" in answered else 0,
        "reasked": int(answered["reasked"].astype(bool).sum()) if "reasked" in answered else 0,
        "cut_off_unparsed": int((cut & (answered["outcome"] == "refused")).sum()),
    }


def unique_answer_counts(records: list[dict]) -> dict[str, dict]:
    """The answer counts the records carry ("model\ttask" -> counts), once per subject."""
    found: dict[str, dict] = {}
    for record in records:
        found.update(record.get("answer_counts") or {})
    return dict(sorted(found.items()))


def write_summary(results_dir: Path, records: list[dict], *, extra: dict | None = None) -> Path:
    """summary.json: the records (SPEC §6), how each subject's answers were read, and any
    `extra` top-level sections (the run's fingerprint, the changes since an earlier run)."""
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / "summary.json"
    answers = [{"model": key.split("\t")[0], "task": key.split("\t")[1], **counts}
               for key, counts in unique_answer_counts(records).items()]
    payload = {"version": 1, "records": [summary_record(r) for r in sorted(records, key=lambda r: r["test"])],
               "answers": answers, **(extra or {})}
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2, ensure_ascii=False), encoding="utf-8")
    tmp.replace(path)
    return path


def write_responses(results_dir: Path, tables: list[pd.DataFrame], name: str = "responses.csv") -> Path | None:
    """Append-safe per-process file; the controller merges worker files (xdist)."""
    if not tables:
        return None
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / name
    pd.concat(tables, ignore_index=True).to_csv(path, index=False)
    return path


def merge_response_parts(results_dir: Path) -> Path | None:
    parts = sorted(results_dir.glob("responses.part-*.csv"))
    if not parts:
        return None
    frames = [pd.read_csv(p, keep_default_na=False, na_values=[""]) for p in parts]
    merged = pd.concat(frames, ignore_index=True).drop_duplicates(subset=["model", "task", "image_id", "variant"])
    merged = merged.sort_values(["model", "task", "image_id", "variant"])
    path = results_dir / "responses.csv"
    merged.to_csv(path, index=False)
    for p in parts:
        p.unlink()
    return path


ERROR_FIELDS = ("task", "image_id", "error")


def unique_input_errors(records: list[dict]) -> list[dict]:
    """The bad input images named by the records (each test of a subject repeats its
    task's list), once each, sorted by task and image id."""
    seen: dict[tuple[str, str], dict] = {}
    for record in records:
        for err in record.get("input_errors") or ():
            seen.setdefault((str(err.get("task")), str(err.get("image_id"))), {k: err.get(k) for k in ERROR_FIELDS})
    return [seen[k] for k in sorted(seen)]


def write_input_errors(results_dir: Path, errors: list[dict]) -> Path:
    """errors.csv: one row per input image that could not be read (header only if none),
    so a CI job can check that no image was silently dropped."""
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / "errors.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=ERROR_FIELDS)
        writer.writeheader()
        writer.writerows({k: e.get(k) for k in ERROR_FIELDS} for e in errors)
    return path
