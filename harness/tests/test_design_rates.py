"""The design's error rates as the report quotes them (harness/calibration/rates.py, issue 18)."""

from __future__ import annotations

import dataclasses
import json

from harness.calibration import rates
from harness.calibration.whole_run import WholeRunResult, default_design
from harness.core import Thresholds


def _result() -> WholeRunResult:
    per_test = {t: {"false_pass": (0.05, 0.004), "robust_pass": (1.0, 0.0), "fragile_fail": (1.0, 0.0),
                    "fragile_shown": (0.9, 0.01), "robust_mean_n": 101.0, "threshold_mean_n": 280.0,
                    "subjects": {}} for t in ("near_random", "finetune_gain")}
    per_test["finetune_gain"]["false_pass"] = (0.055, 0.004)
    return WholeRunResult(default_design(), 500, (0.998, 0.002), {"near_random": (1.0, 0.0),
                                                                   "finetune_gain": (0.95, 0.01)},
                          (130.0, 1.0), per_test, 600.0, (0.99, 0.001))


def test_the_rates_written_are_read_back_for_the_same_design_only(tmp_path):
    path = tmp_path / "rates.json"
    rates.write_rates(_result(), path=path)
    stored = json.loads(path.read_text())
    assert stored["whole_run"]["fragile_worst_test"] == "finetune_gain"
    assert stored["whole_run"]["max_false_pass_test"] == "finetune_gain"
    assert rates.rates_for(Thresholds(), 100, path) == stored
    assert rates.rates_for(Thresholds(), 50, path) is None  # another first look
    other = dataclasses.replace(Thresholds(), confidence=0.9)
    assert rates.rates_for(other, 100, path) is None
    changed_generation = dataclasses.replace(Thresholds(), generation={**Thresholds().generation, "batch_size": 4})
    assert rates.rates_for(changed_generation, 100, path) == stored  # answers' settings do not change how they are judged


def test_the_report_lines_say_how_often_such_a_run_is_wrong(tmp_path):
    path = tmp_path / "rates.json"
    rates.write_rates(_result(), path=path)
    lines = rates.rates_lines(Thresholds(), 100, 4, path)
    text = " ".join(lines)
    assert "passes all its tests in 4 tasks 99.8% of the time (0.998 ± 0.002 for 4 tasks)" in text
    assert "fails the run at least 95.0% of the time" in text and "worst case finetune_gain" in text
    assert "at most 5.5%" in text and rates.COMMAND in text
    one_task = " ".join(rates.rates_lines(Thresholds(), 100, 1, path))
    assert "in 1 task 99.0% of the time (one task 0.990 ± 0.001, tasks taken as independent)" in one_task
    assert rates.per_test_rows(Thresholds(), 100, path)[0] == ("near_random", [0.05, 0.004], [1.0, 0.0], [1.0, 0.0])
    other = rates.rates_lines(Thresholds(), 30, 4, path)
    assert len(other) == 1 and "No design error rates" in other[0] and "--n-per-class=30" in other[0]
    assert rates.per_test_rows(Thresholds(), 30, path) == []


def test_the_shipped_rates_are_for_the_shipped_defaults():
    """`python bench/calibration.py --whole-run --write` was run for thresholds.toml's defaults."""
    from pathlib import Path

    from harness.config.thresholds import load_thresholds

    shipped = load_thresholds(Path(__file__).resolve().parents[2] / "thresholds.toml")
    assert rates.rates_for(shipped, 100) is not None
    assert rates.rates_for(Thresholds(), 100) is not None


def test_the_report_and_summary_show_the_rates():
    from harness.report.header import render_design_rates
    from harness.report.job_summary import render_summary_md

    html = render_design_rates(["A model <robust> passes."], [("near_random", (0.05, 0.004), (1.0, 0.0), (1.0, 0.0))])
    assert "How often such a verdict is wrong" in html and "&lt;robust&gt;" in html and "0.050 ± 0.004" in html
    assert render_design_rates([], []) == ""
    md = render_summary_md([], design=["Design error rates: x.", "A model passes."])
    assert "Design error rates: x. A model passes." in md


def test_whole_runs_are_composed_from_subject_paths():
    """The whole-run arithmetic on hand-made paths: a run passes only if all 44 tests pass, a
    fragile run replaces one test on the first task, a model x task answers the largest look
    any of its tests needed (the probe's own images not counted)."""
    from harness.calibration.whole_run import compose, test_names

    tests = test_names()
    runs = 4
    paths = {}
    for t in tests:
        n = 0 if t == "probe_auroc" else 100
        paths[(t, "robust")] = [("robust", n)] * (runs * 4)
        paths[(t, "fragile")] = [("fragile", n)] * runs
        paths[(t, "threshold")] = [("inconclusive", 300)] * 9 + [("robust", 300)]
    paths[("near_random", "robust")][5] = ("inconclusive", 300)  # run 1, task 1: one test undecided
    paths[("finetune_gain", "robust")][6] = ("robust", 150)  # run 1, task 2: a later look, passed
    paths[("finetune_gain", "fragile")][3] = ("robust", 100)  # run 3: the fragile test passed anyway
    result = compose(paths, runs, Thresholds(), default_design())
    assert result.robust_pass[0] == 0.75  # run 1 fails
    assert result.task_robust_pass[0] == 15 / 16
    assert result.fragile_fail["near_random"][0] == 1.0
    assert result.fragile_fail["finetune_gain"][0] == 0.75  # run 3 passes; run 1 fails through near_random
    assert result.worst_fragile == ("finetune_gain", result.fragile_fail["finetune_gain"])
    assert result.mean_images_per_class[0] == (14 * 100 + 300 + 150) / 16
    assert result.per_test["near_random"]["false_pass"][0] == 0.1
    assert result.per_test["probe_auroc"]["robust_mean_n"] is None
    lenient = dataclasses.replace(Thresholds(), inconclusive="pass")
    assert compose(paths, runs, lenient, default_design()).robust_pass[0] == 1.0
