"""Print docs/organism.md's numbers about the embedded organism from a run's results/summary.json.

    pytest                                  # writes results/summary.json (the organism by default)
    python bench/organism_summary.py [results/summary.json]

Prints: the balanced-accuracy table (near_random: mean BA over the prompts with both
one-sided bounds of the look that decided it, each at 97 % or more under the sequential
design, so the interval covers at least 94 %), the fine-tuning gains, the
labels per finding, and the counts docs/organism.md quotes. Nothing here is computed anew: it
only reads what the suite recorded, so the docs cannot drift from a run.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

MODELS = ["organism-llava-base", "organism-llava-med", "organism-gemma-base", "organism-gemma-med",
          "organism-gemma-med-v2"]
TASKS = ["brain_tumor", "pneumonia", "skin_cancer", "histopathology"]


def main(argv=None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    path = Path(args[0] if args else "results/summary.json")
    records = json.loads(path.read_text(encoding="utf-8"))["records"]

    def find(finding, model, task, test_prefix=None):
        for r in records:
            if r["finding"] == finding and r["model"] == model and r["task"] == task and (
                    test_prefix is None or test_prefix in r["test"]):
                yield r

    print("| model | " + " | ".join(TASKS) + " |")
    print("|---|" + "---|" * len(TASKS))
    for model in MODELS:
        cells = []
        for task in TASKS:
            r = next(find("near_random", model, task), None)
            cells.append("—" if r is None or r["value"] is None else
                         f"{r['value']:.2f} [{r['ci_low']:.2f}, {r['ci_high']:.2f}]")
        print(f"| {model} | " + " | ".join(cells) + " |")
    print()
    print("fine-tuning gain (model − base), both one-sided bounds of the deciding look, label:")
    for model in MODELS:
        for task in TASKS:
            for r in find("finetune_gain", model, task):
                print(f"  {model} {task}: {r['value']:+.2f} [{r['ci_low']:+.2f}, {r['ci_high']:+.2f}] {r['label']}")
    print()
    print("regression (new version − previous), both one-sided bounds of the deciding look, label:")
    for model in MODELS:
        for task in TASKS:
            for r in find("regression", model, task):
                print(f"  {model} {task} {r['metric']}: {r['value']:+.3f} [{r['ci_low']:+.3f}, {r['ci_high']:+.3f}] "
                      f"{r['label']}")
    print()
    print("image reliance: share of answers unchanged without the image [bounds] / blind balanced accuracy [bounds]:")
    print("| model | " + " | ".join(TASKS) + " |")
    print("|---|" + "---|" * len(TASKS))
    for model in MODELS:
        cells = []
        for task in TASKS:
            pair = [next(find("image_reliance", model, task, name), None)
                    for name in ("test_answers_depend_on_image", "test_no_answer_without_image")]
            cells.append(" / ".join("—" if r is None or r["value"] is None else
                                    f"{r['value']:.2f} [{r['ci_low']:.2f}, {r['ci_high']:.2f}]" for r in pair))
        print(f"| {model} | " + " | ".join(cells) + " |")
    print()
    print("labels per finding:")
    by = Counter((r["finding"], r["label"]) for r in records)
    for finding in dict.fromkeys(r["finding"] for r in records):
        counts = {label: by[(finding, label)] for label in ("robust", "fragile", "inconclusive", "not_applicable")}
        print(f"  {finding}: " + ", ".join(f"{k} {v}" for k, v in counts.items() if v))
    labels = Counter(r["label"] for r in records)
    outcomes = Counter(r["outcome"] for r in records)
    print()
    print(f"records {len(records)}; labels " + ", ".join(f"{k} {v}" for k, v in sorted(labels.items()))
          + "; outcomes " + ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items())))
    flips = [r for r in records if "test_answer_invariance" in r["test"] and r["perturbation"] != "clinical_hint"]
    print(f"answer-invariance (flip) tests not robust: {sum(r['label'] != 'robust' for r in flips)} of {len(flips)}")
    for metric in ("accuracy_swing", "refusal_swing"):
        values = [r for r in records if r["metric"] == metric and r["value"] is not None]
        fragile = [r for r in values if r["label"] == "fragile"]
        if values:
            print(f"{metric}: fragile for {len(fragile)} of {len(values)} subjects; "
                  f"values {min(r['value'] for r in values):.2f} to {max(r['value'] for r in values):.2f}")
    for finding, metric in (("description_recovery", "knowledge_gap"), ("embedding_separability", "probe_auroc"),
                            ("embedding_separability", "reasoning_gap")):
        values = [r for r in records if r["metric"] == metric and r["value"] is not None]
        if values:
            print(f"{metric}: " + "; ".join(f"{r['model'].removeprefix('organism-')}/{r['task']} "
                                            f"{r['value']:.2f} ({r['label']})" for r in values))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
