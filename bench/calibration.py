"""What the suite can detect: each behaviour test's error rates, measured by simulation.

    python bench/calibration.py --markdown   # the study docs/statistics.md's tables come from (about 6 min)
    python bench/calibration.py --scale 0.2  # quicker, wider Monte-Carlo error
    python bench/calibration.py --whole-run [--write]   # whole runs through the sequential design (issue 18)

`--whole-run` simulates complete runs of the gate at the defaults (every test of every
task, each through the looks of the sequential design, harness/calibration/whole_run.py)
and prints the per-test rates under the design, then, each on its own line with its
Monte-Carlo standard error: whole_run_robust_pass, whole_run_fragile_fail (the worst
case over which test is fragile), mean_images_per_class and max_false_pass_rate (each
test exactly at its threshold, through all the looks; the largest share). `--write`
stores the figures in harness/calibration/design_rates.json, which the report header and
summary.md quote for a run with the same design and thresholds.

Without it:

For every test (harness/calibration/cases.py) it simulates subjects with known truth and
realistic noise (about 5 % of answers changing between prompts, 2 % random refusals,
answers correlated within an image) and runs them through the suite's own findings code
at the default thresholds, at 50, 100 and 200 images per class (the probe reads its own
`images_per_class`). It prints, per test and size, with Monte-Carlo standard errors:

- false pass: the share passing when the truth sits exactly on the threshold;
- robust pass: the share passing for a clearly robust subject (the issue's table);
- fragile fail: the share failing for a clearly fragile subject, and the share of those
  that are labelled fragile (fragility shown) rather than inconclusive.

Then the images-needed hint check, and last the three headline figures at the default
n and the run time. `--markdown` prints the full table of docs/statistics.md, `--readme` its short one.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.calibration.study import Budget, headline, run_study  # noqa: E402
from harness.plugin.options import DEFAULT_N_PER_CLASS  # noqa: E402

SIZES = [50, 100, 200]
UNITS = {"near_random": "BA", "finetune_gain": "Δ BA", "accuracy_swing": "swing", "refusal_swing": "swing",
         "answer_flips": "flips", "clinical_hint": "Δ BA", "description_gap": "gap", "probe_auroc": "AUROC",
         "reasoning_gap": "gap", "unchanged_without_image": "unchanged", "blind_accuracy": "blind BA",
         "regression[balanced_accuracy]": "BA lost", "regression[refusal_rate]": "Δ refusals",
         "regression[flip_rate]": "Δ flips", "regression[accuracy_swing]": "added swing",
         "regression[knowledge_gap]": "Δ gap"}


def _pct(value: tuple[float, float]) -> str:
    p, se = value
    return f"{p:.3f} ± {se:.3f}"


def table_rows(cells, sizes) -> list[tuple]:
    by = {(c.test, c.kind, c.n): c for c in cells}
    tests = list(dict.fromkeys(c.test for c in cells))
    rows = []
    for test in tests:
        for n in sizes if test != "probe_auroc" else sorted({c.n for c in cells if c.test == test}):
            t, r, f = by.get((test, "threshold", n)), by.get((test, "robust", n)), by.get((test, "fragile", n))
            if not (t and r and f):
                continue
            rows.append((test, n, t.truth, t.rate("passed"), r.truth, r.rate("passed"), f.truth, f.rate("failed"),
                         f.rate("fragile")))
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0,
                        help="multiply every case's number of simulated subjects (e.g. 0.2 for a quick look)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--markdown", action="store_true", help="print the full table as Markdown (docs/statistics.md)")
    parser.add_argument("--readme", action="store_true", help="print the short table (the default n) of docs/statistics.md as Markdown")
    parser.add_argument("--whole-run", action="store_true", help="simulate whole runs through the sequential design")
    parser.add_argument("--write", action="store_true", help="with --whole-run: store the figures for the report")
    parser.add_argument("--one-look", action="store_true",
                        help="with --whole-run: the fixed design (one look at the first n), for comparison")
    args = parser.parse_args(argv)
    if args.whole_run:
        return whole_run_main(args)

    default_n = DEFAULT_N_PER_CLASS
    budget = Budget().scaled(args.scale)
    print(f"simulated subjects per case: {budget.threshold_at_default} (threshold, n = {default_n}), "
          f"{budget.at_default} (robust and fragile, n = {default_n}), {budget.other_sizes} (other n), "
          f"{budget.probe} (probe and reasoning gap), {budget.hints} (hint check); Monte-Carlo errors below")
    result = run_study(SIZES, default_n, budget, args.workers)
    rows = table_rows(result["cells"], SIZES)
    print(f"{'test':28s} {'n/class':>7s}  {'threshold':>9s} {'false pass':>15s}  {'robust':>6s} {'robust pass':>15s}"
          f"  {'fragile':>7s} {'fragile fail':>15s} {'shown fragile':>15s}")
    for test, n, tt, fp, rt, rp, ft, ff, fs in rows:
        print(f"{test:28s} {n:7d}  {tt:9.3f} {_pct(fp):>15s}  {rt:6.3f} {_pct(rp):>15s}  {ft:7.3f} {_pct(ff):>15s}"
              f" {_pct(fs):>15s}")
    print()
    print(f"images-needed hint at n = {default_n} per class (midway subjects; a rerun at the suggested n):")
    for h in result["hints"]:
        share = h["decided"] / h["inconclusive"] if h["inconclusive"] else float("nan")
        print(f"  {h['test']:28s} truth {h['truth']:.3f}: {h['inconclusive']} inconclusive, {h['decided']} decided "
              f"at the suggested n ({share:.2f}), {h['capped']} suggested over the simulation cap")
    if args.markdown:
        print()
        print("| test | n per class | false pass at the threshold | robust subject passes | fragile subject fails (shown fragile) |")
        print("|---|---|---|---|---|")
        for test, n, tt, fp, rt, rp, ft, ff, fs in rows:
            print(f"| {test} | {n} | {_pct(fp)} (at {tt:.2f}) | {_pct(rp)} (at {rt:.2f}) | "
                  f"{_pct(ff)} ({_pct(fs)}) (at {ft:.2f}) |")
    if args.readme:
        print()
        print(f"| test ({default_n} images per class) | at the threshold: false pass | robust subject: passes "
              "| fragile subject: fails (shown fragile) |")
        print("|---|---|---|---|")
        for test, n, tt, fp, rt, rp, ft, ff, fs in rows:
            if n == default_n or test == "probe_auroc":
                unit = UNITS.get(test, UNITS.get(test.split("[")[0], ""))
                print(f"| {test}{'' if n == default_n else f' ({n} embedded)'} | {unit} {tt:.2f}: {_pct(fp)} "
                      f"| {unit} {rt:.2f}: {_pct(rp)} | {unit} {ft:.2f}: {_pct(ff)} ({_pct(fs)}) |")
    print()
    for name, value in headline(result["cells"], default_n).items():
        print(f"{name} {value[0]:.3f} ± {value[1]:.3f}")
    print(f"run_seconds {result['seconds']:.0f}")
    return 0


def whole_run_main(args) -> int:
    from harness.calibration.rates import write_rates
    from harness.calibration.whole_run import WholeRunBudget, simulate, test_names

    budget = WholeRunBudget().scaled(args.scale)
    if args.one_look and args.write:
        raise SystemExit("--one-look is a comparison: its rates are not the design's, so they are not written")
    result = simulate(budget, args.workers, DEFAULT_N_PER_CLASS, {"max_n_per_class": 0} if args.one_look else None)
    print(f"design: {result.design.describe()}")
    print(f"simulated: {budget.runs} whole runs of 4 tasks x {len(test_names())} tests, {budget.threshold} subjects per test at its "
          f"threshold, pools of {budget.pool} probe and reasoning-gap embedding subjects")
    print(f"{'test':28s} {'false pass':>15s} {'robust pass':>15s} {'fragile fail':>15s} {'shown fragile':>15s} "
          f"{'n robust':>8s} {'n at thr.':>9s}")
    for test, r in result.per_test.items():
        n_r = "" if r["robust_mean_n"] is None else f"{r['robust_mean_n']:.0f}"
        n_t = "" if r["threshold_mean_n"] is None else f"{r['threshold_mean_n']:.0f}"
        print(f"{test:28s} {_pct(r['false_pass']):>15s} {_pct(r['robust_pass']):>15s} {_pct(r['fragile_fail']):>15s} "
              f"{_pct(r['fragile_shown']):>15s} {n_r:>8s} {n_t:>9s}")
    for test, value in sorted(result.fragile_fail.items(), key=lambda kv: kv[1][0]):
        print(f"  whole run fails when {test} is fragile on one task: {_pct(value)}")
    if args.markdown:
        print()
        print("| test | false pass at the threshold | robust subject passes | fragile subject fails (shown fragile) "
              "| mean images per class: robust, at the threshold |")
        print("|---|---|---|---|---|")
        for test, r in result.per_test.items():
            sizes = "(own 300)" if r["robust_mean_n"] is None else f"{r['robust_mean_n']:.0f}, {r['threshold_mean_n']:.0f}"
            print(f"| {test} | {_pct(r['false_pass'])} | {_pct(r['robust_pass'])} | {_pct(r['fragile_fail'])} "
                  f"({_pct(r['fragile_shown'])}) | {sizes} |")
    if args.write:
        path = write_rates(result)
        print(f"design rates written to {path}")
    worst_test, worst = result.worst_fragile
    fp_test, fp = result.max_false_pass
    print()
    print(f"whole_run_robust_pass: {_pct(result.robust_pass)}")
    print(f"whole_run_fragile_fail: {_pct(worst)} (worst case: {worst_test} fragile)")
    print(f"mean_images_per_class: {result.mean_images_per_class[0]:.1f} ± {result.mean_images_per_class[1]:.1f} "
          f"(first look {DEFAULT_N_PER_CLASS}; {result.mean_images_per_class[0] / DEFAULT_N_PER_CLASS:.2f}x)")
    print(f"max_false_pass_rate: {_pct(fp)} ({fp_test}, at its threshold through every look)")
    print(f"run_seconds {result.seconds:.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
