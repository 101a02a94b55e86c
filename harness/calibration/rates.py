"""The design's error rates as the report quotes them: written by
`python bench/calibration.py --whole-run --write`, read for a run with the same design.

A red CI job should say how often a good model fails a run like it (issue 18). The rates
are simulated for the default thresholds and the default first look; a run with other
thresholds, another --n-per-class or another [sequential] design gets no figures, and
says so, rather than figures measured for something else.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from pathlib import Path
from typing import Optional

RATES_PATH = Path(__file__).with_name("design_rates.json")
COMMAND = "python bench/calibration.py --whole-run --write"


def design_key(thresholds, n_per_class: int) -> str:
    """What the rates depend on: every statistical threshold and the first look (not the
    generation settings, which change answers, not how they are judged, nor the
    [regression] margins: the whole run simulates a model that names no previous version)."""
    values = {k: v for k, v in dataclasses.asdict(thresholds).items() if k not in ("generation", "regression")}
    payload = json.dumps({"thresholds": values, "n_per_class": int(n_per_class)}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


def write_rates(result, thresholds=None, n_per_class: int = 100, path: Path = RATES_PATH) -> Path:
    from ..core import Thresholds

    worst_test, worst = result.worst_fragile
    fp_test, fp = result.max_false_pass
    payload = {
        "key": design_key(thresholds or Thresholds(), n_per_class),
        "command": COMMAND,
        "date": time.strftime("%Y-%m-%d"),
        "design": result.design.describe(),
        "runs": result.runs,
        "whole_run": {"robust_pass": list(result.robust_pass), "task_robust_pass": list(result.task_robust_pass),
                      "fragile_fail": list(worst), "fragile_worst_test": worst_test,
                      "mean_images_per_class": list(result.mean_images_per_class),
                      "max_false_pass": list(fp), "max_false_pass_test": fp_test},
        "per_test": [{"test": t, **{k: (list(v) if isinstance(v, tuple) else v) for k, v in r.items() if k != "subjects"}}
                     for t, r in result.per_test.items()],  # a list: the table's order
    }
    path.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


def rates_for(thresholds, n_per_class: int, path: Path = RATES_PATH) -> Optional[dict]:
    """The stored rates if they were simulated for this design and these thresholds, else None."""
    if not path.is_file():
        return None
    stored = json.loads(path.read_text(encoding="utf-8"))
    return stored if stored.get("key") == design_key(thresholds, n_per_class) else None


def rates_lines(thresholds, n_per_class: int, tasks: int, path: Path = RATES_PATH) -> list[str]:
    """The sentences the report header and summary.md show: how often such a run is wrong."""
    rates = rates_for(thresholds, n_per_class, path)
    if rates is None:
        return [f"No design error rates for these thresholds and --n-per-class={n_per_class}: they are simulated "
                f"for the defaults only (`{COMMAND}` at your settings measures them)."]
    w = rates["whole_run"]
    (x, xse), (tp, tse), (y, yse) = w["robust_pass"], w["task_robust_pass"], w["fragile_fail"]
    fp, fpse = w["max_false_pass"]
    per_model = x if tasks == 4 else tp ** tasks
    lines = [
        f"Design error rates (simulated, `{COMMAND}`, {rates['date']}): {rates['design']}.",
        f"A model robust on every test passes all its tests in {tasks} task{'s' if tasks != 1 else ''} "
        f"{per_model:.1%} of the time" + (f" ({x:.3f} ± {xse:.3f} for 4 tasks)" if tasks == 4 else
                                          f" (one task {tp:.3f} ± {tse:.3f}, tasks taken as independent)")
        + f"; a model fragile on one test fails the run at least {y:.1%} of the time (± {yse:.1%}; worst case "
          f"{w['fragile_worst_test']}); a subject exactly at a test's threshold passes it at most {fp:.1%} "
          f"(± {fpse:.1%}; {w['max_false_pass_test']}).",
    ]
    return lines


def per_test_rows(thresholds, n_per_class: int, path: Path = RATES_PATH) -> list[tuple]:
    """(test, false pass, robust pass, fragile fail) per test, for the report's table; [] without rates."""
    rates = rates_for(thresholds, n_per_class, path)
    if rates is None:
        return []
    return [(r["test"], r["false_pass"], r["robust_pass"], r["fragile_fail"]) for r in rates["per_test"]]
