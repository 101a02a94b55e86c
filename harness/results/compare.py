"""Run-to-run comparison without re-running: `--compare-to=DIR` (issue 13).

A release check asks "what changed since the last run?". Both runs' `summary.json` hold
every test's label, outcome and estimate, so the answer needs no model: tests whose label
or outcome changed, the estimates that moved, tests that appeared or went away. Two runs
are comparable only when they asked about the same images under the same thresholds;
`run_fingerprint` records both in summary.json, and a comparison of runs that differ says
so instead of listing differences that are not changes of the models.

Knows nothing of pytest: the plugin passes records and directories in.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Optional

import pandas as pd

def _sha(payload) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def run_fingerprint(results_dir: Path, thresholds) -> dict:
    """What two comparable runs share: per task, the sampled images (image id and label, from
    responses.csv), and the thresholds (every value of thresholds.toml as validated). Per
    task, so that a run of some tasks compares with a run of all of them on those tasks."""
    images: dict = {}
    responses = Path(results_dir) / "responses.csv"
    if responses.is_file():
        table = pd.read_csv(responses, usecols=["task", "image_id", "label"], keep_default_na=False, dtype=str)
        for task, rows in table.drop_duplicates().groupby("task"):
            images[task] = _sha(sorted(map(tuple, rows[["image_id", "label"]].itertuples(index=False, name=None))))
    values = asdict(thresholds) if is_dataclass(thresholds) else dict(thresholds or {})
    return {"images_sha256": images, "thresholds_sha256": _sha(values)}


def load_summary(directory: Path) -> Optional[dict]:
    path = Path(directory) / "summary.json"
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def compare_runs(current: dict, previous: Optional[dict], *, previous_dir: str) -> dict:
    """The "changes since" of `current` (a summary payload) against `previous`."""
    out: dict = {"since": previous_dir, "comparable": False, "reason": None,
                 "changed": [], "moved": [], "added": [], "removed": []}
    if previous is None:
        out["reason"] = f"{previous_dir} holds no summary.json"
        return out
    now, then = current.get("run") or {}, previous.get("run") or {}
    images_now, images_then = now.get("images_sha256") or {}, then.get("images_sha256") or {}
    differs = []
    if any(images_now[t] != images_then[t] for t in images_now.keys() & images_then.keys()):
        differs.append("different images")
    if now.get("thresholds_sha256") != then.get("thresholds_sha256"):
        differs.append("different thresholds")
    if differs:
        out["reason"] = "not compared: the runs used " + " and ".join(differs)
        return out
    out["comparable"] = True
    old = {r["test"]: r for r in previous.get("records", [])}
    new = {r["test"]: r for r in current.get("records", [])}
    for test in sorted(new.keys() & old.keys()):
        a, b = old[test], new[test]
        if (a.get("label"), a.get("outcome")) != (b.get("label"), b.get("outcome")):
            out["changed"].append({"test": test, "label": [a.get("label"), b.get("label")],
                                   "outcome": [a.get("outcome"), b.get("outcome")],
                                   "value": [a.get("value"), b.get("value")]})
        if a.get("value") is not None and b.get("value") is not None and a.get("value") != b.get("value"):
            out["moved"].append({"test": test, "metric": b.get("metric"), "previous": a["value"], "value": b["value"],
                                 "delta": b["value"] - a["value"]})
    out["added"] = sorted(new.keys() - old.keys())
    out["removed"] = sorted(old.keys() - new.keys())
    out["moved"].sort(key=lambda m: -abs(m["delta"]))
    return out
