"""`--compare-to=DIR`: the changes since an earlier run, from the stored summaries (issue 13)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from harness.results.compare import compare_runs
from harness.report.job_summary import render_summary_md
from harness.report.header import render_changes

REPO = Path(__file__).resolve().parents[2]
RUN = {"images_sha256": {"brain_tumor": "i"}, "thresholds_sha256": "t"}


def _rec(test, label, outcome, value, metric="m"):
    return {"test": test, "label": label, "outcome": outcome, "value": value, "metric": metric}


def test_changes_list_label_flips_moves_and_tests_new_and_gone():
    before = {"run": RUN, "records": [_rec("a", "robust", "passed", 0.8), _rec("b", "fragile", "failed", 0.5),
                                      _rec("gone", "robust", "passed", 0.9)]}
    after = {"run": RUN, "records": [_rec("a", "inconclusive", "failed", 0.7), _rec("b", "fragile", "failed", 0.5),
                                     _rec("new", "robust", "passed", None)]}
    changes = compare_runs(after, before, previous_dir="old")
    assert changes["comparable"] and changes["reason"] is None
    assert changes["changed"] == [{"test": "a", "label": ["robust", "inconclusive"], "outcome": ["passed", "failed"],
                                   "value": [0.8, 0.7]}]
    assert [(m["test"], round(m["delta"], 6)) for m in changes["moved"]] == [("a", -0.1)]
    assert changes["added"] == ["new"] and changes["removed"] == ["gone"]
    assert "robust → inconclusive" in render_changes(changes)
    assert "1 tests changed label or outcome (`a` robust → inconclusive); 1 new, 1 gone." in render_summary_md(
        after["records"], changes=changes)


def test_runs_on_other_images_or_thresholds_are_not_compared():
    before = {"run": RUN, "records": [_rec("a", "robust", "passed", 0.8)]}
    other = compare_runs({"run": {**RUN, "images_sha256": {"brain_tumor": "x"}},
                          "records": [_rec("a", "fragile", "failed", 0.1)]},
                         before, previous_dir="old")
    assert not other["comparable"] and other["changed"] == [] and "different images" in other["reason"]
    both = compare_runs({"run": {"images_sha256": {"brain_tumor": "x"}, "thresholds_sha256": "y"}, "records": []}, before,
                        previous_dir="old")
    assert both["reason"] == "not compared: the runs used different images and different thresholds"
    assert compare_runs({"run": RUN, "records": []}, None, previous_dir="d")["reason"] == "d holds no summary.json"
    subset = compare_runs({"run": {"images_sha256": {}, "thresholds_sha256": "t"}, "records": []}, before,
                          previous_dir="old")  # a run of other tasks: comparable, nothing shared
    assert subset["comparable"] and subset["removed"] == ["a"]
    assert "<script>" not in render_changes({"since": "<script>", "comparable": False, "reason": "<b>"})


def _run(tmp_path, results, *extra):
    cmd = [sys.executable, "-m", "pytest", str(REPO / "tests"), "-q", "-p", "no:cacheprovider",
           "--models=tiny-llava", "--tasks=brain_tumor", "-m", "near_random or prompt_sensitivity",
           f"--cache-dir={tmp_path / 'cache'}", f"--results-dir={tmp_path / results}",
           "--baseline=/nonexistent.toml", *extra]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    summary = tmp_path / results / "summary.json"
    assert summary.is_file(), done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(summary.read_text())


def test_a_rerun_compared_with_its_first_run_reports_no_change_and_other_images_are_not_compared(tmp_path):
    first = _run(tmp_path, "a", "--n-per-class=4")
    assert set(first["run"]["images_sha256"]) == {"brain_tumor"} and "changes" not in first
    again = _run(tmp_path, "b", "--n-per-class=4", f"--compare-to={tmp_path / 'a'}", f"--html={tmp_path / 'r.html'}")
    changes = again["changes"]
    assert changes["comparable"] and changes["changed"] == [] and changes["added"] == changes["removed"] == []
    assert "Changes since" in (tmp_path / "r.html").read_text(encoding="utf-8")
    assert "**Changes since**" in (tmp_path / "b" / "summary.md").read_text(encoding="utf-8")
    other = _run(tmp_path, "c", "--n-per-class=3", f"--compare-to={tmp_path / 'a'}")
    assert not other["changes"]["comparable"] and "different images" in other["changes"]["reason"]
