"""Machine-readable results: summary.json (SPEC §6 schema) and the per-response table."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

SUMMARY_FIELDS = (
    "finding", "test", "model", "base_model", "task", "perturbation",
    "metric", "value", "ci_low", "ci_high", "threshold", "outcome", "reason",
)


def _clean(value):
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    return value


def summary_record(record: dict) -> dict:
    return {key: _clean(record.get(key)) for key in SUMMARY_FIELDS}


def write_summary(results_dir: Path, records: list[dict]) -> Path:
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / "summary.json"
    payload = {"version": 1, "records": [summary_record(r) for r in sorted(records, key=lambda r: r["test"])]}
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
