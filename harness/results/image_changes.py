"""Which images changed their answer between two models that are compared (issue 13).

For every compared pair in a run (a model and the `previous` version it replaces, a medical
model and its `base_model`): the (image, prompt) cells whose answer went from right to
wrong or from wrong to right, read from the run's responses.csv. A refusal counts as not
right (as in balanced accuracy); cells where either model errored are left out. Written to
results/changes.csv, counted in the report. Knows nothing of pytest.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

COLUMNS = ["relation", "model", "other", "task", "image_id", "label", "variant", "other_outcome", "outcome", "change"]


def compared_pairs(specs) -> list[tuple[str, str, str]]:
    """(relation, model, other) for every spec naming a previous version or a base model."""
    pairs = []
    for spec in specs:
        if getattr(spec, "previous", None):
            pairs.append(("previous", spec.name, spec.previous))
        if getattr(spec, "base_model", None):
            pairs.append(("base_model", spec.name, spec.base_model))
    return pairs


def image_changes(responses: pd.DataFrame, pairs) -> pd.DataFrame:
    """The cells that changed from right to wrong or wrong to right, per compared pair."""
    frames = []
    keep = ["task", "image_id", "label", "variant", "outcome"]
    for relation, model, other in pairs:
        new = responses.loc[responses["model"] == model, keep]
        old = responses.loc[responses["model"] == other, keep]
        if new.empty or old.empty:
            continue
        both = new.merge(old, on=["task", "image_id", "label", "variant"], suffixes=("", "_other"))
        both = both[(both["outcome"] != "error") & (both["outcome_other"] != "error")]
        right, was_right = both["outcome"] == both["label"], both["outcome_other"] == both["label"]
        changed = both[right != was_right].copy()
        if changed.empty:
            continue
        changed["change"] = ["wrong→right" if r else "right→wrong" for r in (changed["outcome"] == changed["label"])]
        changed.insert(0, "other", other)
        changed.insert(0, "model", model)
        changed.insert(0, "relation", relation)
        frames.append(changed.rename(columns={"outcome_other": "other_outcome"})[COLUMNS])
    if not frames:
        return pd.DataFrame(columns=COLUMNS)
    return pd.concat(frames, ignore_index=True).sort_values(["relation", "model", "task", "image_id", "variant"])


def change_counts(changes: pd.DataFrame) -> list[dict]:
    """Per (relation, model, other, task): how many cells went each way, and on how many images."""
    if changes.empty:
        return []
    out = []
    for (relation, model, other, task), rows in changes.groupby(["relation", "model", "other", "task"]):
        out.append({"relation": relation, "model": model, "other": other, "task": task,
                    "right_to_wrong": int((rows["change"] == "right→wrong").sum()),
                    "wrong_to_right": int((rows["change"] == "wrong→right").sum()),
                    "images": int(rows["image_id"].nunique())})
    return out


def write_image_changes(results_dir: Path, specs) -> list[dict]:
    """results/changes.csv (header only when nothing changed) and the counts per pair and task."""
    responses_path = Path(results_dir) / "responses.csv"
    path = Path(results_dir) / "changes.csv"
    if not responses_path.is_file():
        return []
    responses = pd.read_csv(responses_path, keep_default_na=False, na_values=[""], dtype=str)
    changes = image_changes(responses, compared_pairs(specs))
    changes.to_csv(path, index=False)
    return change_counts(changes)
