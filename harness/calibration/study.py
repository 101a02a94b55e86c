"""Run the calibration cases through the suite's own findings code and count verdicts.

For each case (harness/calibration/cases.py) and sample size, `subjects` simulated
subjects are drawn, each with its own seeded generator, and judged with the suite's
default thresholds (bootstrap replicates, probe refits, confidence: nothing is
lightened for speed). The result per (test, case, n) is the share of subjects that
pass the gate (robust), the share labelled fragile and the share inconclusive, each a
binomial proportion whose Monte-Carlo standard error is reported beside it.

The images-needed hint is checked on the "midway" subjects: for each inconclusive
verdict at the default n, a fresh subject with the same truth is drawn at the suggested
sample size and judged again; the hint is useful if that rerun is decided (robust or
fragile) in at least half the cases.
"""

from __future__ import annotations

import math
import time
import zlib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits

from ..core import Thresholds
from ..findings import embedding_separability
from . import cases as C

HINT_CAP_PER_CLASS = 2000  # reruns suggested above this are reported apart (too costly to simulate)


@dataclass
class Cell:
    test: str
    kind: str
    truth: float
    n: int
    subjects: int
    passed: int
    fragile: int
    inconclusive: int

    def rate(self, what: str) -> tuple[float, float]:
        """(share, Monte-Carlo standard error) of `what` in passed / fragile / inconclusive / failed."""
        count = self.subjects - self.passed if what == "failed" else getattr(self, what)
        p = count / self.subjects if self.subjects else math.nan
        return p, math.sqrt(p * (1.0 - p) / self.subjects) if self.subjects else math.nan


def _rng(*parts) -> np.random.Generator:
    return np.random.default_rng([zlib.crc32(repr(parts).encode())])


def _count(case: C.Case, n: int, subjects: int, thresholds: Thresholds, run=None) -> Cell:
    labels = {"robust": 0, "fragile": 0, "inconclusive": 0}
    for index in range(subjects):
        rng = _rng(case.test, case.kind, case.truth, n, index)
        verdict = case.run(rng, n, thresholds) if run is None else run(rng, n, thresholds, index=index)
        labels[verdict.label] += 1
    passed = labels["robust"] + (labels["inconclusive"] if thresholds.inconclusive == "pass" else 0)
    return Cell(case.test, case.kind, case.truth, n, subjects, passed, labels["fragile"], labels["inconclusive"])


def _closed_job(args) -> Cell:
    index, n, subjects = args
    return _count(C.table_cases()[index], n, subjects, Thresholds())


def _probe_job(args) -> Cell:
    index, subjects = args
    thresholds = Thresholds()
    n = int(thresholds.embedding_separability["images_per_class"])
    return _count(C.probe_cases()[index], n, subjects, thresholds)


def _reasoning_job(args) -> list[Cell]:
    sizes, subjects = args
    thresholds = Thresholds()
    embedding_separability.FIT_CACHE_LIMIT = max(subjects + 8, 64)  # every subject's fit is reused across cases
    study = C.ReasoningGap(_rng("reasoning-gap-embeddings"), subjects, thresholds)
    cells = []
    for kind, gap in (("threshold", 0.10), ("robust", 0.0), ("fragile", 0.20)):
        case = study.case(kind, gap)
        for n in sizes:
            cells.append(_count(case, n, subjects, thresholds, run=case.run))
    return cells


def _hint_job(args) -> dict:
    index, n, subjects = args
    case = C.midway_cases()[index]
    thresholds = Thresholds()
    inconclusive = decided = capped = 0
    for i in range(subjects):
        verdict = case.run(_rng(case.test, "midway", n, i), n, thresholds)
        if verdict.label != "inconclusive":
            continue
        inconclusive += 1
        suggested = verdict.images_needed_per_class
        if suggested is None or suggested > HINT_CAP_PER_CLASS:
            capped += 1
            continue
        rerun = case.run(_rng(case.test, "rerun", n, i), suggested, thresholds)
        decided += rerun.label != "inconclusive"
    return {"test": case.test, "truth": case.truth, "n": n, "inconclusive": inconclusive, "decided": decided,
            "capped": capped}


@dataclass(frozen=True)
class Budget:
    """Simulated subjects per case. The headline figures are at the default n, so the cases
    there get more subjects (the false-pass rate most: the maximum over tests of noisy rates
    is biased upwards by its Monte-Carlo error); the other sizes show the trend."""

    threshold_at_default: int = 8000
    at_default: int = 1000
    other_sizes: int = 300
    probe: int = 200
    hints: int = 200

    def closed(self, kind: str, n: int, default_n: int) -> int:
        if n != default_n:
            return self.other_sizes
        return self.threshold_at_default if kind == "threshold" else self.at_default

    def scaled(self, factor: float) -> "Budget":
        return Budget(*(max(20, int(v * factor)) for v in (self.threshold_at_default, self.at_default,
                                                         self.other_sizes, self.probe, self.hints)))


def _one_thread() -> None:
    """Each worker process computes on one core: BLAS threads in two processes on two cores
    spin against each other (the study ran two to three times slower with them)."""
    global _LIMITS
    _LIMITS = threadpool_limits(limits=1)


_LIMITS = None


def run_study(sizes: list[int], default_n: int, budget: Budget, workers: int = 2) -> dict:
    """Every case at every size; returns cells, hint checks and the seconds it took."""
    start = time.perf_counter()
    cases = C.table_cases()
    closed = [(i, n, budget.closed(cases[i].kind, n, default_n)) for i in range(len(cases)) for n in sizes]
    closed.sort(key=lambda job: -job[1] * job[2])  # largest first: the pool ends together
    with ProcessPoolExecutor(max_workers=workers, initializer=_one_thread) as pool:
        reasoning = pool.submit(_reasoning_job, (sizes, budget.probe))
        probe = [pool.submit(_probe_job, (i, budget.probe)) for i in range(len(C.probe_cases()))]
        hints = [pool.submit(_hint_job, (i, default_n, budget.hints)) for i in range(len(C.midway_cases()))]
        cells = list(pool.map(_closed_job, closed))
        cells += [f.result() for f in probe] + reasoning.result()
        hint_rows = [f.result() for f in hints]
    return {"cells": cells, "hints": hint_rows, "seconds": time.perf_counter() - start}


def headline(cells: list[Cell], default_n: int) -> dict[str, tuple[float, float]]:
    """The three figures the issue asks for, at the default n (the probe at its own size)."""
    at_default = [c for c in cells if c.n == default_n or c.test == "probe_auroc"]

    def extreme(kind: str, what: str, pick) -> tuple[float, float]:
        values = [c.rate(what) for c in at_default if c.kind == kind]
        return pick(values, key=lambda v: v[0])

    return {
        "max_false_pass_rate": extreme("threshold", "passed", max),
        "min_robust_pass_rate": extreme("robust", "passed", min),
        "min_fragile_fail_rate": extreme("fragile", "failed", min),
    }
