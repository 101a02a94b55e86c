"""Tests for the report renderers: grid states, evidence, plots, escaping."""

from __future__ import annotations

import io
from html.parser import HTMLParser

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from harness.report import html as report
from harness.report.html import (
    CELL_STATES,
    cell_state,
    escape,
    plot_difficulty,
    plot_per_prompt,
    render_evidence,
    render_summary_grid,
)
from harness.report.header import render_batch_invariance, render_report_header

PNG = b"\x89PNG"
ALLOWED_TAGS = {"section", "div", "span", "table", "tr", "th", "td", "img", "style",
                "h2", "h3", "p", "ul", "li", "code", "small", "b", "br"}


def rec(model="m1", task="t1", finding="near_random", outcome="passed", **kw) -> dict:
    """A complete record with plausible defaults; keywords override."""
    base = dict(finding=finding, test=f"tests/test_x.py::test_a[{model}-{task}]",
                model=model, base_model=None, task=task, perturbation=None,
                metric="balanced_accuracy_mean", value=0.71, ci_low=0.64,
                ci_high=0.78, threshold=0.6, outcome=outcome, reason="",
                n_images=100, confidence=0.95, direction="ge", inconclusive=False,
                images_needed=None, details={}, examples=[])
    base.update(kw)
    return base


class Collector(HTMLParser):
    """Records every start tag with its attributes, and all text."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    handle_startendtag = handle_starttag

    def handle_data(self, data):
        self.text.append(data)


def parse(html: str) -> Collector:
    c = Collector()
    c.feed(html)
    c.close()
    return c


def grid_rows(html: str) -> list[list[str]]:
    """The grid table as rows of cell texts (th and td alike)."""
    class Rows(HTMLParser):
        def __init__(self):
            super().__init__()
            self.rows, self.cell, self.in_grid, self.in_style = [], None, False, False

        def handle_starttag(self, tag, attrs):
            if tag == "table" and ("class", "mvf-grid") in attrs:
                self.in_grid = True
            elif self.in_grid and tag == "tr":
                self.rows.append([])
            elif self.in_grid and tag in ("td", "th"):
                self.cell = []

        def handle_endtag(self, tag):
            if tag == "table":
                self.in_grid = False
            elif self.in_grid and tag in ("td", "th"):
                self.rows[-1].append(" ".join(self.cell))
                self.cell = None

        def handle_data(self, data):
            if self.cell is not None:
                self.cell.append(data.strip())

    p = Rows()
    p.feed(html)
    return p.rows


# ---------------------------------------------------------------- states

def test_cell_states_cover_every_outcome():
    labels = {k: v[0] for k, v in CELL_STATES.items()}
    assert labels == {"passed": "pass", "failed": "FAIL", "xfailed": "known",
                      "xpassed": "fixed?", "skipped": "skipped", "error": "error"}
    assert len({v[1] for v in CELL_STATES.values()}) == 6


def test_inconclusive_verdicts_have_their_own_label():
    assert cell_state(rec(outcome="failed", inconclusive=True))[0] == "inconclusive"
    assert cell_state(rec(outcome="failed", label="inconclusive"))[0] == "inconclusive"
    assert cell_state(rec(outcome="failed", label="fragile"))[0] == "FAIL"
    assert cell_state(rec(outcome="failed"))[0] == "FAIL"
    # `inconclusive = "pass"`: the test passed, the cell still says the data did not decide
    assert cell_state(rec(outcome="passed", label="inconclusive"))[0] == "inconclusive"
    assert cell_state(rec(outcome="passed", label="robust"))[0] == "pass"
    # a known (xfailed) inconclusive fragility stays "known"
    assert cell_state(rec(outcome="xfailed", label="inconclusive"))[0] == "known"


def test_unknown_outcome_is_shown_as_error():
    assert cell_state(rec(outcome="weird"))[0] == "error"


# ---------------------------------------------------------------- grid

def test_grid_has_one_row_per_model_and_one_column_per_task():
    records = [rec(model=m, task=t) for m in ("zeta", "alpha") for t in ("skin", "brain", "histo")]
    records.append(rec(model="alpha-med", base_model="alpha", task="brain",
                       finding="finetune_gain", outcome="failed"))
    rows = grid_rows(render_summary_grid(records, task_order=["brain", "skin", "histo"]))
    assert rows[0] == ["model", "brain", "skin", "histo"]
    assert [r[0] for r in rows[1:]] == ["alpha", "alpha-med base: alpha", "zeta"]
    assert all(len(r) == 4 for r in rows)
    assert rows[2][1] == "finetune_gain: FAIL"
    assert rows[2][2] == "—"  # no tests for that cell
    assert rows[1][1] == "near_random: pass"


def test_tasks_sorted_without_order_and_unlisted_tasks_appended():
    records = [rec(task=t) for t in ("c", "a", "b")]
    assert grid_rows(render_summary_grid(records))[0] == ["model", "a", "b", "c"]
    assert grid_rows(render_summary_grid(records, task_order=["c", "zz"]))[0] == \
        ["model", "c", "a", "b"]


def test_cell_shows_worst_state_and_count():
    outcomes = ["passed", "failed", "passed", "xfailed", "failed", "passed"]
    records = [rec(finding="prompt_sensitivity", outcome=o, test=f"t{i}")
               for i, o in enumerate(outcomes)]
    records.append(rec(finding="near_random", outcome="xfailed"))
    cell = grid_rows(render_summary_grid(records))[1][1]
    assert cell == "near_random: known prompt_sensitivity: FAIL 2/6"


@pytest.mark.parametrize("worse,better", [
    ("error", "failed"), ("failed", "xpassed"), ("xpassed", "xfailed"),
    ("xfailed", "skipped"), ("skipped", "passed")])
def test_worst_order(worse, better):
    records = [rec(outcome=better, test="a"), rec(outcome=worse, test="b")]
    label = CELL_STATES[worse][0]
    assert grid_rows(render_summary_grid(records))[1][1] == f"near_random: {label} 1/2"


def test_conclusive_failure_outranks_inconclusive_one():
    records = [rec(outcome="failed", inconclusive=True), rec(outcome="failed"),
               rec(outcome="failed", inconclusive=True)]
    assert grid_rows(render_summary_grid(records))[1][1] == "near_random: FAIL 1/3"
    only_incl = [rec(outcome="failed", inconclusive=True)]
    assert grid_rows(render_summary_grid(only_incl))[1][1] == "near_random: inconclusive"


def test_grid_has_heading_totals_legend_and_css():
    records = [rec(outcome=o) for o in ("passed", "passed", "failed", "xpassed")]
    html = render_summary_grid(records)
    assert "<h2>Fragility summary</h2>" in html and "<style>" in html
    text = " ".join(parse(html).text)
    assert "Totals (4 tests):" in text
    assert "1 FAIL" in text and "1 fixed?" in text and "2 pass" in text
    assert "mvf-legend" in html and "disappeared" in text


def test_grid_of_no_records_still_renders():
    html = render_summary_grid([])
    assert "no behaviour tests recorded" in html
    assert grid_rows(html) == [["model"]]


# ---------------------------------------------------------------- evidence

def test_evidence_numbers_table():
    html = render_evidence(rec(value=0.7123, ci_low=0.6, ci_high=0.8, threshold=0.6,
                               n_images=80, direction="ge"))
    text = " ".join(parse(html).text)
    for piece in ("balanced_accuracy_mean", "0.712", "0.600", "0.800", "80",
                  "passes iff lower bound ≥ 0.600", "one-sided, 95 %", "pass"):
        assert piece in text, piece
    assert '<td class="mvf-decisive">0.600</td>' in html


def test_evidence_upper_bound_rule_and_missing_numbers():
    html = render_evidence(rec(metric="flip_rate", direction="le", threshold=0.1,
                               value=float("nan"), ci_low=None, ci_high=0.2))
    text = " ".join(parse(html).text)
    assert "passes iff upper bound ≤ 0.100" in text
    assert "n/a" in text and "—" in text
    assert '<td class="mvf-decisive">0.200</td>' in html


def test_evidence_inconclusive_says_how_many_images():
    html = render_evidence(rec(outcome="failed", inconclusive=True, images_needed=140))
    text = "".join(parse(html).text)
    assert "inconclusive — about 140 images per class would likely decide it" in text
    html = render_evidence(rec(outcome="failed", inconclusive=True))
    assert "more images would be needed" in html


def test_evidence_shows_a_verdicts_warning_escaped_and_none_without_one():
    html = render_evidence(rec(warning="suspect: answers <b>above</b> chance without the image"))
    assert '<p class="mvf-warning"><b>Warning:</b> suspect: answers &lt;b&gt;above&lt;/b&gt; chance' in html
    assert "mvf-warning" not in render_evidence(rec()) and "mvf-warning" not in render_evidence(rec(warning=None))


def test_evidence_details_with_per_variant_table():
    details = {"cochran_q": 3.2, "cochran_p": 0.000012, "note": "ok",
               "per_variant": [
                   {"variant": "abnormal", "value": 0.6, "low": 0.5, "high": 0.7,
                    "refusal_rate": 0.1},
                   {"variant": "normal", "value": 0.4, "low": 0.3, "high": 0.5}]}
    html = render_evidence(rec(details=details))
    tags = [t for t, _ in parse(html).tags]
    assert tags.count("table") == 3  # numbers, details, per_variant
    text = parse(html).text
    assert "cochran_q" in text and "3.200" in text and "1.2e-05" in text
    assert ["variant", "value", "low", "high", "refusal_rate"] == \
        [t for t in text if t in ("variant", "value", "low", "high", "refusal_rate")][-5:]
    assert "abnormal" in text and "normal" in text


def test_examples_are_truncated_and_limited():
    long = "x" * 1000
    examples = [{"image_id": f"img{i}", "variant": "v", "text": long} for i in range(8)]
    html = render_evidence(rec(examples=examples))
    shown = [t for t in parse(html).text if t.startswith("x")]
    assert len(shown) == 5
    assert all(len(t) == 300 and t.endswith("…") for t in shown)
    assert "3 more not shown" in html


def test_truncation_never_splits_an_entity():
    text = "a" * 298 + "&&&&"
    html = render_evidence(rec(examples=[{"image_id": 1, "variant": "v", "text": text}]))
    assert "a" * 298 + "&amp;…" in html


def test_images_become_png_data_uris_and_non_png_is_refused():
    png = plot_per_prompt([], chance=None, threshold=None, title="empty")
    html = render_evidence(rec(), images={"per prompt <b>": png, "evil": b"<svg onload=x>"})
    imgs = [a for t, a in parse(html).tags if t == "img"]
    assert len(imgs) == 1
    assert imgs[0]["src"].startswith("data:image/png;base64,")
    assert imgs[0]["alt"] == "per prompt <b>"
    assert "evil: not a PNG, not shown" in html


# ---------------------------------------------------------------- plots

def check_png(data: bytes, max_w: int = 5 * 90 + 1) -> None:
    assert data.startswith(PNG)
    with Image.open(io.BytesIO(data)) as im:
        assert im.format == "PNG" and 50 < im.width <= max_w


def test_plot_per_prompt():
    rows = [{"variant": f"v{i} cost $5", "value": 0.5 + i / 30, "low": 0.4, "high": 0.9}
            for i in range(12)]
    rows += [{"variant": "nan bounds", "value": 0.6, "low": float("nan"), "high": None},
             {"variant": "nan value", "value": float("nan"), "low": 0.1, "high": 0.2},
             {"variant": "$\\frac{"}]
    check_png(plot_per_prompt(rows, chance=0.5, threshold=0.6, title="BA per prompt $x"))


def test_plot_per_prompt_empty_and_unbounded_metric():
    check_png(plot_per_prompt([], chance=None, threshold=None, title="empty"))
    rows = [{"variant": "a", "value": 3.0, "low": 2.0, "high": 5.0}]
    check_png(plot_per_prompt(rows, chance=None, threshold=4.0, title="q"))


def test_plot_difficulty():
    points = [{"model": m, "task": t, "difficulty": d, "value": v, "low": v - 0.1,
               "high": v + 0.1}
              for m, off in (("gemma", 0.0), ("medgemma", 0.05))
              for t, d, v in (("brain", 1, 0.9), ("pneumonia", 2, 0.7),
                              ("skin", 3, 0.6), ("histo", 4, 0.52))
              for v in [v + off]]
    points.append({"model": "broken", "task": "skin", "difficulty": float("nan"),
                   "value": float("nan"), "low": None, "high": None})
    points.append({"model": "partial", "task": "brain", "difficulty": 1,
                   "value": 0.8, "low": float("nan"), "high": float("nan")})
    check_png(plot_difficulty(points))
    check_png(plot_difficulty([]))


def test_task_ranks_follow_difficulty():
    pts = [{"task": "b", "difficulty": 2}, {"task": "a", "difficulty": 3},
           {"task": "z", "difficulty": None}, {"task": "c", "difficulty": 1}]
    from harness.report.plots import _task_ranks
    assert _task_ranks(pts) == ["c", "b", "a", "z"]


# ---------------------------------------------------------------- header

def test_header_lists_remote_destinations():
    png = plot_difficulty([])
    html = render_report_header([rec()], difficulty_png=png, remote_destinations=[])
    assert "none: all requests stayed on this machine" in html
    assert "Fragility summary" in html and "data:image/png;base64," in html
    html = render_report_header([rec()], difficulty_png=None,
                                remote_destinations=["https://b.example/v1", "<x>"])
    assert "https://b.example/v1" in html and "&lt;x&gt;" in html
    assert "data:image" not in html


# ---------------------------------------------------------------- escaping

ATTACKS = ["<script>alert(1)</script>", "<img src=x onerror=alert(1)>", '"><b x="',
           "' onmouseover='alert(1)", "a & b &amp; <", "</td></tr></table>",
           "<style>*{}</style>", "<!-- x", "]]><![CDATA[", "javascript:alert(1)"]
hostile = st.one_of(st.sampled_from(ATTACKS), st.text(max_size=40),
                    st.builds(lambda a, b: a + b, st.sampled_from(ATTACKS), st.text(max_size=10)))


def assert_safe(html: str) -> None:
    low = html.lower()
    assert "<script" not in low and "<img src=x" not in low and "<svg" not in low
    for tag, attrs in parse(html).tags:
        assert tag in ALLOWED_TAGS, tag
        assert not any(name.startswith("on") for name in attrs), attrs
        assert set(attrs) <= {"class", "title", "src", "alt"}, attrs
        if tag == "img":
            assert attrs["src"].startswith("data:image/png;base64,")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(model=hostile, task=hostile, reason=hostile, test_id=hostile, detail=hostile,
       text=hostile, finding=hostile)
def test_hostile_strings_are_always_escaped(model, task, reason, test_id, detail, text, finding):
    r = rec(model=model, base_model=detail, task=task, test=test_id, reason=reason,
            finding=finding, metric=detail, perturbation=text, outcome="failed",
            details={detail: detail, "per_variant": [{"variant": text, detail: reason}],
                     "nested": {text: [detail, 1.0]}},
            examples=[{"image_id": detail, "variant": model, "text": text}])
    assert_safe(render_summary_grid([r, rec()], task_order=[task]))
    assert_safe(render_evidence(r, images={text: b"\x89PNG\r\n\x1a\n", detail: b"<svg>"}))
    assert_safe(render_report_header([r], difficulty_png=None, remote_destinations=[text]))


def test_escaped_text_round_trips():
    attack = ATTACKS[1] + ' "q" & \'s\''
    r = rec(model=attack, reason=attack, examples=[{"image_id": 1, "variant": "v",
                                                   "text": attack}])
    for html in (render_summary_grid([r]), render_evidence(r)):
        assert_safe(html)
        assert attack in "".join(parse(html).text)
    assert escape('<a href="x">&') == "&lt;a href=&quot;x&quot;&gt;&amp;"


def test_module_exports_the_api():
    for name in ("CELL_STATES", "render_summary_grid", "render_evidence", "plot_per_prompt",
                 "plot_difficulty", "escape"):
        assert name in report.__all__


def test_batch_invariance_is_listed_when_zero_and_flagged_with_escaped_examples_when_not():
    zero = render_batch_invariance({"m1": {"checked": 24, "changed": 0, "examples": []}})
    assert "no sampled answer changes" in zero and "m1 0 of 24" in zero
    attack = "<script>alert(1)</script>"
    html = render_batch_invariance({"m<2>": {"checked": 24, "changed": 2, "examples": [
        {"task": "pneumonia", "variant": "normal", "batched": attack, "alone": "No"}]}})
    assert "<script>" not in html and "&lt;script&gt;" in html and "m&lt;2&gt; 2 of 24" in html
    assert "mix prompt effects with batch effects" in html
    assert render_batch_invariance({}) == "" and render_batch_invariance({"m": {"checked": 0}}) == ""
    header = render_report_header([rec()], difficulty_png=None, remote_destinations=[],
                                  batch_invariance={"m1": {"checked": 24, "changed": 0}})
    assert "Batch invariance" in header
