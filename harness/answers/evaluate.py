"""How well the answer parser reads real model answers: `python -m harness.answers.evaluate`.

Why: every verdict of the suite starts from reading one answer as positive, negative or
refused (SPEC §3), so the parser is itself a measurement and is measured. The corpus
(fixtures/answers/real_answers.csv, described in fixtures/answers/README.md) holds real
answers of several medical VLMs to closed questions, each with the reading a careful
person gives it. This module replays the corpus through `harness.answers.parsing.parse_answer`
and prints, for each split (``main``: the answers the rules were designed on;
``heldout``: other records, read before the parser saw them and measured once, as
fixtures/answers/README.md, "Held-out protocol", says):

- agreement on the clear answers (human reading positive, negative or refused;
  ``ambiguous`` rows are shown in the confusion table but never scored),
- the opposite-label count (human positive read as negative or the reverse; must be 0),
- the invented answers (human refused, parser committed),
- agreement by model and by style tag, and the confusion table human x parser.

``--parser MODULE|FILE.py`` replays another module with the same ``parse_answer``, e.g.
the parser this one replaced (``git show <rev>:harness/answers/parsing.py > /tmp/old.py``);
``--show-disagreements`` lists the rows read differently.
"""

from __future__ import annotations

import argparse
import csv
import importlib
import importlib.util
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Optional

from ..core import PromptVariant, TaskSpec

CORPUS = Path(__file__).resolve().parents[2] / "fixtures" / "answers" / "real_answers.csv"
READINGS = ("positive", "negative", "refused", "ambiguous")
OUTCOMES = ("positive", "negative", "refused")
SPLITS = ("main", "heldout")

Parser = Callable[[str, PromptVariant, TaskSpec], str]


@dataclass(frozen=True)
class Case:
    """One corpus row, ready for the parser: the answer, the variant it answered, its task."""

    row: dict
    text: str
    variant: PromptVariant
    task: TaskSpec

    @property
    def reading(self) -> str:
        return self.row["reading"]


def load_corpus(path: Path = CORPUS) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def to_case(row: dict) -> Case:
    """The row as the suite would see it: a task named after the question's finding, and a
    variant with the question's polarity (yes_no) or option order (choice)."""
    positive, negative = row["positive_name"], row["negative_name"]
    task = TaskSpec(key="corpus", title="corpus", modality="image", disease=positive, positive_name=positive,
                    negative_name=negative, difficulty=1, hints="")
    if row["kind"] == "choice":
        a, b = row["options"].split(",")
        variant = PromptVariant(key="corpus", template=row["question"], kind="choice", options=(a, b))
    else:
        variant = PromptVariant(key="corpus", template=row["question"], kind="yes_no", yes_means=row["yes_means"])
    return Case(row=row, text=row["answer"], variant=variant, task=task)


def cases(rows: Iterable[dict]) -> list[Case]:
    return [to_case(r) for r in rows]


@dataclass
class Tally:
    """Counts for one group of rows (a split, a model or a style)."""

    clear: int = 0
    agree: int = 0
    opposite: int = 0
    invented: int = 0  # human refused, parser committed
    committed: int = 0  # human positive/negative
    committed_agree: int = 0

    def add(self, reading: str, outcome: str) -> None:
        if reading == "ambiguous":
            return
        self.clear += 1
        self.agree += outcome == reading
        if reading in ("positive", "negative"):
            self.committed += 1
            self.committed_agree += outcome == reading
            self.opposite += outcome in ("positive", "negative") and outcome != reading
        elif outcome != "refused":
            self.invented += 1

    @property
    def agreement(self) -> float:
        return self.agree / self.clear if self.clear else float("nan")


@dataclass
class SplitReport:
    split: str
    total: Tally
    by_model: dict[str, Tally]
    by_style: dict[str, Tally]
    confusion: Counter  # (reading, outcome) -> count
    disagreements: list[tuple[Case, str]]


def evaluate(rows: Iterable[dict], parse: Optional[Parser] = None) -> dict[str, SplitReport]:
    """Replay every row through `parse` (default: harness.answers.parsing.parse_answer), per split."""
    if parse is None:
        from .parsing import parse_answer as parse
    reports: dict[str, SplitReport] = {}
    for case in cases(rows):
        split = case.row["split"]
        rep = reports.setdefault(split, SplitReport(split, Tally(), defaultdict(Tally), defaultdict(Tally),
                                                    Counter(), []))
        outcome = parse(case.text, case.variant, case.task)
        rep.total.add(case.reading, outcome)
        rep.by_model[case.row["model"]].add(case.reading, outcome)
        for style in filter(None, case.row["styles"].split(",")):
            rep.by_style[style].add(case.reading, outcome)
        rep.confusion[(case.reading, outcome)] += 1
        if case.reading != "ambiguous" and outcome != case.reading:
            rep.disagreements.append((case, outcome))
    return reports


def _pct(t: Tally) -> str:
    return f"{100 * t.agreement:5.1f} %" if t.clear else "    -  "


def format_report(reports: dict[str, SplitReport], show_disagreements: bool = False) -> str:
    out: list[str] = []
    for split in [s for s in SPLITS if s in reports] + sorted(set(reports) - set(SPLITS)):
        rep, t = reports[split], reports[split].total
        n = sum(rep.confusion.values())
        out.append(f"== split {split}: {n} answers, {t.clear} clear (ambiguous ones not scored)")
        out.append(f"   agreement {t.agree}/{t.clear} = {_pct(t).strip()}; committed answers read right "
                   f"{t.committed_agree}/{t.committed}; opposite label {t.opposite}; "
                   f"invented answers (human refused, parser committed) {t.invented}")
        out.append("   by model:")
        for name, mt in sorted(rep.by_model.items()):
            out.append(f"     {name:32s} {_pct(mt)}  ({mt.agree}/{mt.clear}, opposite {mt.opposite})")
        out.append("   by style:")
        for name, st in sorted(rep.by_style.items(), key=lambda kv: (-kv[1].clear, kv[0])):
            out.append(f"     {name:32s} {_pct(st)}  ({st.agree}/{st.clear}, opposite {st.opposite})")
        out.append("   confusion (rows: human reading, columns: parser outcome):")
        out.append("     " + " " * 10 + "".join(f"{o:>10s}" for o in OUTCOMES))
        for r in READINGS:
            out.append(f"     {r:10s}" + "".join(f"{rep.confusion[(r, o)]:10d}" for o in OUTCOMES))
        if show_disagreements:
            out.append("   disagreements:")
            for case, outcome in rep.disagreements:
                text = case.text.replace("\n", "\\n")
                out.append(f"     [{case.row['id']}] human {case.reading}, parser {outcome}: {text[:160]}")
        out.append("")
    return "\n".join(out)


def _load_parser(name: Optional[str]) -> Optional[Parser]:
    if not name:
        return None
    if name.endswith(".py"):  # a file outside the package, e.g. `git show HEAD~1:harness/answers/parsing.py`
        # loaded as a module of the harness package, so its relative imports (from .core) resolve
        spec = importlib.util.spec_from_file_location("harness._parser_under_test", name)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    else:
        module = importlib.import_module(name)
    return module.parse_answer


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m harness.answers.evaluate", description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", type=Path, default=CORPUS, help="the corpus CSV (default: %(default)s)")
    ap.add_argument("--parser", help="module name or .py file whose parse_answer to replay (default: harness.answers.parsing)")
    ap.add_argument("--split", choices=SPLITS, help="only this split")
    ap.add_argument("--show-disagreements", action="store_true", help="list every row the parser reads differently")
    args = ap.parse_args(argv)
    rows = [r for r in load_corpus(args.corpus) if not args.split or r["split"] == args.split]
    reports = evaluate(rows, _load_parser(args.parser))
    print(format_report(reports, args.show_disagreements))
    return 0


if __name__ == "__main__":
    sys.exit(main())
