"""Whole runs of the gate, simulated: how often a good model passes every test, and how
often a model fragile on one test fails the run (issue 18).

A gate is judged by the run, not by one test: thirteen tests per task over four tasks. Each
simulated run has, for every task and test, its own simulated subject (the per-test
table's robust subjects, harness/calibration/cases.py), judged through the run's design
(the looks of harness.stats.sequential, each look's confidence, a verdict decided at a
look stopping there), exactly as Case.run_design does. The tests of one run are simulated
independently: the per-test subjects differ in their truths, so a joint subject would be
a different study; positive dependence between the tests of one task would raise the
whole-run pass rate, so independence is the cautious assumption for robust subjects.

- whole_run_robust_pass: the share of runs in which a subject robust on every test
  passes every test;
- whole_run_fragile_fail: for each test in turn, runs robust everywhere except that test
  on one task, where the subject is the table's fragile one; the share that fail, and
  the worst case over which test it is (the other tests' outcomes are the robust runs';
  common random numbers, so the comparison is paired);
- mean_images_per_class: the images per class a robust run's model × task answered (the
  largest look any of its tests needed; the probe's own embedded images are not counted);
- max_false_pass_rate: each test at its threshold, through all the looks; the largest share.

The probe test reads its own images_per_class (300) whatever the look, and its fit is
the costly part, so its outcomes come from a pool of simulated subjects reused across
runs; the reasoning gap's embeddings likewise (as in study.py), with fresh direct answers
for every run.
"""

from __future__ import annotations

import math
import time
import zlib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace

import numpy as np

from ..core import Thresholds
from ..stats.sequential import Design, make_design
from . import cases as C
from .study import _one_thread

TASKS = 4  # the suite's four tasks


@dataclass(frozen=True)
class WholeRunBudget:
    """Simulated subjects: `runs` whole runs (4 tasks each), `threshold` subjects per test at
    its threshold, `pool` probe subjects and reasoning-gap embedding subjects."""

    runs: int = 500
    threshold: int = 3000
    pool: int = 100

    def scaled(self, factor: float) -> "WholeRunBudget":
        return WholeRunBudget(max(20, int(self.runs * factor)), max(50, int(self.threshold * factor)),
                              max(10, int(self.pool * factor)))


def default_design(thresholds: Thresholds | None = None, n_per_class: int = 100) -> Design:
    t = thresholds or Thresholds()
    seq = t.sequential
    return make_design(n_per_class, int(seq["max_n_per_class"]), int(seq["step_per_class"]), t.confidence,
                       float(seq["spending_gamma"]), float(seq["min_decide_chance"]))


def _rng(*parts) -> np.random.Generator:
    return np.random.default_rng([zlib.crc32(repr(parts).encode())])


def test_names() -> list[str]:
    """The tests of one task (thirteen), in the per-test table's order."""
    names = list(dict.fromkeys(c.test for c in C.closed_cases()))
    return names + ["probe_auroc", "reasoning_gap"]


def _closed_case(test: str, kind: str) -> C.Case:
    return next(c for c in C.closed_cases() if c.test == test and c.kind == kind)


def _thresholds(sequential: dict | None) -> Thresholds:
    t = Thresholds()
    return t if sequential is None else replace(t, sequential={**t.sequential, **sequential})


def _closed_job(args) -> tuple:
    """(test, kind) -> [(label, images per class at the deciding look)] for `count` subjects."""
    test, kind, start, count, n_per_class, sequential = args
    thresholds = _thresholds(sequential)
    design = default_design(thresholds, n_per_class)
    case = _closed_case(test, kind)
    out = []
    for i in range(start, start + count):
        verdict, n = case.run_design(_rng("whole-run", test, kind, i), design, thresholds)
        out.append((verdict.label, n))
    return (test, kind), out


def _embedding_job(args) -> dict:
    """The probe's pools (one look: its n never changes) and the reasoning gap's paths."""
    from ..findings import embedding_separability

    counts, pool, n_per_class, sequential = args
    thresholds = _thresholds(sequential)
    design = default_design(thresholds, n_per_class)
    out: dict = {}
    for case in C.probe_cases():
        paths = []
        for i in range(pool):
            verdict, _ = case.run_design(_rng("whole-run", case.test, case.kind, i), design, thresholds)
            paths.append((verdict.label, 0))
        out[(case.test, case.kind)] = paths
    embedding_separability.FIT_CACHE_LIMIT = max(pool + 8, 64)
    study = C.ReasoningGap(_rng("whole-run-reasoning-embeddings"), pool, thresholds)
    for kind, gap in (("threshold", 0.10), ("robust", 0.0), ("fragile", 0.20)):
        case = study.case(kind, gap)
        paths = []
        for i in range(counts[kind]):
            verdict, n = case.run_design(_rng("whole-run", case.test, kind, i), design, thresholds, index=i)
            paths.append((verdict.label, n))
        out[(case.test, kind)] = paths
    return out


@dataclass
class WholeRunResult:
    design: Design
    runs: int
    robust_pass: tuple[float, float]
    fragile_fail: dict[str, tuple[float, float]]
    mean_images_per_class: tuple[float, float]
    per_test: dict[str, dict] = field(default_factory=dict)
    seconds: float = 0.0
    task_robust_pass: tuple[float, float] = (math.nan, math.nan)  # one task's tests

    @property
    def worst_fragile(self) -> tuple[str, tuple[float, float]]:
        return min(self.fragile_fail.items(), key=lambda kv: kv[1][0])

    @property
    def max_false_pass(self) -> tuple[str, tuple[float, float]]:
        return max(((t, r["false_pass"]) for t, r in self.per_test.items()), key=lambda kv: kv[1][0])


def _share(flags) -> tuple[float, float]:
    flags = np.asarray(flags, dtype=float)
    p = float(flags.mean()) if flags.size else math.nan
    return p, math.sqrt(p * (1 - p) / flags.size) if flags.size else math.nan


def _passes(label: str, thresholds: Thresholds) -> bool:
    return label == "robust" or (label == "inconclusive" and thresholds.inconclusive == "pass")


def simulate(budget: WholeRunBudget = WholeRunBudget(), workers: int = 2, n_per_class: int = 100,
             sequential: dict | None = None) -> WholeRunResult:
    """Whole runs at the defaults; `sequential` overrides keys of [sequential] (e.g.
    {"max_n_per_class": 0}: the fixed design of one look, for comparison)."""
    start = time.perf_counter()
    thresholds = _thresholds(sequential)
    design = default_design(thresholds, n_per_class)
    closed = [t for t in test_names() if t not in ("probe_auroc", "reasoning_gap")]
    counts = {"robust": budget.runs * TASKS, "fragile": budget.runs, "threshold": budget.threshold}
    chunk = 250
    jobs = [(test, kind, s, min(chunk, counts[kind] - s), n_per_class, sequential)
            for test in closed for kind in counts for s in range(0, counts[kind], chunk)]
    jobs.sort(key=lambda j: -j[3] * (3 if j[1] == "threshold" else 1))
    paths: dict = {}
    with ProcessPoolExecutor(max_workers=workers, initializer=_one_thread) as pool:
        embedded = pool.submit(_embedding_job, (counts, budget.pool, n_per_class, sequential))
        for key, out in pool.map(_closed_job, jobs):
            paths.setdefault(key, []).extend(out)
        paths.update(embedded.result())
    return compose(paths, budget.runs, thresholds, design, time.perf_counter() - start)


def compose(paths: dict, runs: int, thresholds: Thresholds, design: Design, seconds: float = 0.0) -> WholeRunResult:
    """Whole runs from simulated subject paths {(test, kind): [(label, images per class)]}:
    run r, task k uses the robust path r * 4 + k of every test (pools, shorter, are reused in
    turn); a fragile run replaces one test's path on the first task by its fragile path r."""

    def path(test: str, kind: str, index: int):
        pool_ = paths[(test, kind)]
        return pool_[index % len(pool_)]

    tests = test_names()
    run_pass, cell_pass, cell_n = [], [], []
    for r in range(runs):
        ok = True
        for task in range(TASKS):
            cell = [path(t, "robust", r * TASKS + task) for t in tests]
            cell_pass.append(all(_passes(label, thresholds) for label, _ in cell))
            ok &= cell_pass[-1]
            cell_n.append(max(n for (label, n), t in zip(cell, tests) if t != "probe_auroc"))
        run_pass.append(ok)
    fragile_fail = {}
    for t in tests:
        fails = []
        for r in range(runs):
            ok = _passes(path(t, "fragile", r)[0], thresholds)
            ok &= all(_passes(path(u, "robust", r * TASKS + task)[0], thresholds)
                      for task in range(TASKS) for u in tests if not (task == 0 and u == t))
            fails.append(not ok)
        fragile_fail[t] = _share(fails)
    per_test = {}
    for t in tests:
        robust, fragile, threshold = paths[(t, "robust")], paths[(t, "fragile")], paths[(t, "threshold")]
        per_test[t] = {
            "false_pass": _share([_passes(label, thresholds) for label, _ in threshold]),
            "robust_pass": _share([_passes(label, thresholds) for label, _ in robust]),
            "fragile_fail": _share([not _passes(label, thresholds) for label, _ in fragile]),
            "fragile_shown": _share([label == "fragile" for label, _ in fragile]),
            "robust_mean_n": float(np.mean([n for _, n in robust])) if t != "probe_auroc" else None,
            "threshold_mean_n": float(np.mean([n for _, n in threshold])) if t != "probe_auroc" else None,
            "subjects": {"robust": len(robust), "fragile": len(fragile), "threshold": len(threshold)},
        }
    cells = np.asarray(cell_n, dtype=float)
    return WholeRunResult(design, runs, _share(run_pass), fragile_fail,
                          (float(cells.mean()), float(cells.std(ddof=1) / math.sqrt(cells.size))), per_test,
                          seconds, _share(cell_pass))
