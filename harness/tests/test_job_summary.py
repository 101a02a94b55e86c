"""results/summary.md, the CI job summary (issue 13): counts per model × task × finding."""

from __future__ import annotations

from harness.report.job_summary import render_summary_md, write_summary_md


def _r(model, task, finding, label, outcome="passed"):
    return {"model": model, "task": task, "finding": finding, "label": label, "outcome": outcome}


RECORDS = [
    _r("m1", "brain_tumor", "near_random", "robust"),
    _r("m1", "brain_tumor", "prompt_sensitivity", "robust"),
    _r("m1", "brain_tumor", "prompt_sensitivity", "fragile", "failed"),
    _r("m1", "brain_tumor", "prompt_sensitivity", "inconclusive", "failed"),
    _r("m1", "pneumonia", "near_random", "fragile", "xfailed"),
    _r("m2", "brain_tumor", "embedding_separability", "not_applicable", "skipped"),
]


def test_one_row_per_subject_one_cell_per_finding_with_label_counts():
    text = render_summary_md(RECORDS, report="report.html")
    lines = text.splitlines()
    header = next(line for line in lines if line.startswith("| model"))
    assert header == "| model | task | near_random | prompt_sensitivity | embedding_separability |"
    assert "| m1 | brain_tumor | ✅ 1 | ✅ 1 ❌ 1 ❔ 1 |  |" in lines
    assert "| m1 | pneumonia | ❌ 1 |  |  |" in lines
    assert "| m2 | brain_tumor |  |  | – 1 |" in lines
    assert "**Total**: 2 robust, 2 fragile, 1 inconclusive, 1 not applicable of 6 tests." in lines
    assert "Full report: `report.html`" in text


def test_written_to_results_and_appended_to_the_github_step_summary(tmp_path, monkeypatch):
    step = tmp_path / "step.md"
    step.write_text("earlier step\n", encoding="utf-8")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step))
    path = write_summary_md(tmp_path / "results", RECORDS)
    assert path.read_text(encoding="utf-8") == render_summary_md(RECORDS)
    assert step.read_text(encoding="utf-8") == "earlier step\n" + render_summary_md(RECORDS)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY")
    write_summary_md(tmp_path / "results", RECORDS[:1])
    assert step.read_text(encoding="utf-8").count("## medvlm-fragility") == 1
