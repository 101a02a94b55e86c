"""How the image-reliance defaults were chosen: pass rates around them, by simulation.

    python bench/image_reliance_defaults.py            # about 2 min on two cores
    python bench/image_reliance_defaults.py --subjects 100   # quicker, wider Monte-Carlo error

Both tests of the image_reliance finding run their simulated subjects
(harness/calibration/cases.py: unchanged_case, blind_case) through the sequential design
at the default thresholds, and print the share labelled robust (passes the gate) and
fragile, with Monte-Carlo standard errors, for:

- max_unchanged_without_image (default 0.90): subjects that look (an unchanged share of
  0.5 to 0.85: a model that reads a uniform image as one class keeps the answers about
  that class's images) and subjects that ignore the image more or less (0.95 to 1.0);
- max_blind_margin, at 0.05 (the default) and 0.10: subjects without a cue (balanced
  accuracy 0.49: 2 % refusals) whose answers about the content-free images vary with the
  image on a share of 0.2, 0.5 or 1.0 of the images (identical stand-ins get identical
  answers from a deterministic model; only their sizes differ), and cued subjects (0.60,
  0.65, 0.75).

The last lines are the figures docs/statistics.md quotes.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import zlib
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from harness.calibration import cases as C  # noqa: E402
from harness.calibration.study import _one_thread  # noqa: E402
from harness.calibration.whole_run import default_design  # noqa: E402
from harness.core import Thresholds  # noqa: E402

UNCHANGED = (0.50, 0.70, 0.80, 0.85, 0.95, 0.98, 1.0)
BLIND = ((0.49, 0.2), (0.49, 0.5), (0.49, 1.0), (0.60, 1.0), (0.65, 1.0), (0.75, 1.0))
MARGINS = (0.05, 0.10)


def _job(args) -> tuple:
    test, truth, varying, margin, subjects = args
    base = Thresholds()
    thresholds = dataclasses.replace(base, image_reliance={**base.image_reliance, "max_blind_margin": margin})
    design = default_design(thresholds, 100)
    case = C.unchanged_case("row", truth) if test == "unchanged" else C.blind_case("row", truth, varying)
    labels = []
    for i in range(subjects):
        rng = np.random.default_rng([zlib.crc32(repr((test, truth, varying, margin, i)).encode())])
        labels.append(case.run_design(rng, design, thresholds)[0].label)
    return args, labels


def _rate(labels, label) -> str:
    p = float(np.mean([x == label for x in labels]))
    return f"{p:.3f} ± {math.sqrt(p * (1 - p) / len(labels)):.3f}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=400, help="simulated subjects per row")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    jobs = [("unchanged", t, 1.0, 0.05, args.subjects) for t in UNCHANGED]
    jobs += [("blind", t, s, m, args.subjects) for m in MARGINS for t, s in BLIND]
    print(f"{args.subjects} simulated subjects per row, 100 images per class at the first look, the sequential design")
    print(f"{'test':10s} {'truth':>6s} {'varying':>7s} {'limit':>6s}  {'robust (passes)':>15s}  {'fragile (shown)':>15s}")
    results = {}
    with ProcessPoolExecutor(max_workers=args.workers, initializer=_one_thread) as pool:
        for (test, truth, varying, margin, _), labels in pool.map(_job, jobs):
            limit = 0.90 if test == "unchanged" else 0.5 + margin
            results[(test, truth, varying, margin)] = labels
            print(f"{test:10s} {truth:6.2f} {varying:7.1f} {limit:6.2f}  {_rate(labels, 'robust'):>15s}  "
                  f"{_rate(labels, 'fragile'):>15s}", flush=True)
    print()
    print(f"looking_subject_0.85_passes: {_rate(results[('unchanged', 0.85, 1.0, 0.05)], 'robust')}")
    print(f"ignoring_subject_0.98_shown_fragile: {_rate(results[('unchanged', 0.98, 1.0, 0.05)], 'fragile')}")
    for margin in MARGINS:
        print(f"margin_{margin:.2f}: no cue, every image's answers its own, passes "
              f"{_rate(results[('blind', 0.49, 1.0, margin)], 'robust')}; a cue of 0.65 shown "
              f"{_rate(results[('blind', 0.65, 1.0, margin)], 'fragile')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
