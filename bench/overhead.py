"""Harness overhead per closed-form item, the model excluded.

    python bench/overhead.py [--tasks t1,t2] [--n-per-class N] [--smoke]

The model is replaced by `InstantFakeBackend`, a FAKE backend used only for this
measurement: it returns canned answer texts instantly, so every second measured is the
harness's own work: building requests and store keys, loading images, writing answers
to the SQLite store in per-chunk transactions, parsing answers into the response table,
pivoting it into the image x prompt grid, and the statistics of the near_random and
prompt_sensitivity tests (2000 bootstrap replicates each, thresholds.toml defaults).

Two passes over the same grid, in one process:
  cold: a fresh store (every answer "generated" by the fake and written);
  warm: the same grid again, every answer read from the store (a rerun).
The figure is the cold pass (the larger). Last line: `overhead_ms_per_item: <ms>`.
"""

from __future__ import annotations

import argparse
import sys
import zlib

from _common import Timer, csv_arg, grid, machine, temp_dir

from harness.backends.base import Backend
from harness.core import PERTURBATION_FAMILIES, GenerationResult, ModelSpec, NotApplicable

CANNED = ["Yes.", "No.", "A", "B", "Yes", "No", "I cannot tell from this image."]


class InstantFakeBackend(Backend):
    """FAKE model for the overhead measurement only: a canned answer per request, instantly."""

    def __init__(self, spec: ModelSpec):
        self.spec = spec
        self.calls = 0

    def generate(self, requests, images):
        self.calls += len(requests)
        return [GenerationResult(text=CANNED[zlib.crc32(f"{r.prompt}|{r.image_key}".encode()) % len(CANNED)])
                for r in requests]


def one_pass(handle, identity, tasks, items, variants, store, thresholds) -> tuple[dict, int]:
    """Fill + table + grid + statistics for every task; returns seconds by phase, items."""
    from harness.findings import near_random, prompt_sensitivity
    from harness.findings.grid import grid_from_table
    from harness.answers.parsing import parse_answer
    from harness.fill.closed_form import build_table, fill_closed_form

    phases = {"fill": 0.0, "table": 0.0, "grid": 0.0, "statistics": 0.0}
    n = 0
    for task in tasks:
        with Timer() as t:
            results, stats = fill_closed_form(handle, identity, task, items[task.key], variants, store,
                                              max_new_tokens=thresholds.generation["max_new_tokens"], chunk_size=64)
        phases["fill"] += t.seconds
        n += stats.requested
        with Timer() as t:
            table = build_table("fake", task, items[task.key], variants, results, parse_answer)
        phases["table"] += t.seconds
        with Timer() as t:
            g = grid_from_table(table, [v.key for v in variants])
        phases["grid"] += t.seconds
        with Timer() as t:
            checks = [lambda: near_random.evaluate(g, thresholds),
                      lambda: prompt_sensitivity.accuracy_swing(g, thresholds),
                      lambda: prompt_sensitivity.refusal_swing(g, thresholds)]
            checks += [lambda f=f: prompt_sensitivity.flip_rate(g, variants, f, thresholds) for f in PERTURBATION_FAMILIES]
            for check in checks:
                try:
                    check()
                except NotApplicable:
                    pass
        phases["statistics"] += t.seconds
    return phases, n


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tasks", help="comma-separated task keys (default: all four)")
    ap.add_argument("--n-per-class", type=int, default=50, help="images per class (the study: 50)")
    ap.add_argument("--smoke", action="store_true", help="one task, 5 images per class")
    args = ap.parse_args(argv)
    if args.smoke:
        args.tasks, args.n_per_class = args.tasks or "brain_tumor", 5

    from harness.config.thresholds import load_thresholds
    from harness.fill.closed_form import BackendHandle, closed_form_key
    from harness.store import ResponseStore

    print(f"machine: {machine()}")
    with Timer() as sampling:
        registry, tasks, items, variants = grid(csv_arg(args.tasks), args.n_per_class)
    thresholds = load_thresholds(None)
    spec = ModelSpec(name="instant-fake", backend="fake", model="instant-fake")
    fake = InstantFakeBackend(spec)
    handle = BackendHandle(spec=spec, factory=lambda _spec: fake)
    identity = fake.identity()
    store = ResponseStore(temp_dir("bench-overhead-") / "responses.sqlite")
    cold, n = one_pass(handle, identity, tasks, items, variants, store, thresholds)
    assert fake.calls == n, (fake.calls, n)
    warm, n2 = one_pass(handle, identity, tasks, items, variants, store, thresholds)
    assert fake.calls == n and n2 == n, "the warm pass must read every answer from the store"

    keys = [closed_form_key(identity, v.render(t), i, thresholds.generation["max_new_tokens"])
            for t in tasks for i in items[t.key] for v in variants]
    with Timer() as lookup:
        found = store.get_many(keys)
    assert len(found) == len(keys)

    print(f"grid: {len(tasks)} tasks x {n // len(tasks) // len(variants)} images x {len(variants)} prompts = {n} items "
          f"(sampling the synthetic images: {sampling.seconds:.2f}s, not counted)")
    for name, phases in (("cold", cold), ("warm", warm)):
        total = sum(phases.values())
        parts = ", ".join(f"{k} {v / n * 1000:.3f}" for k, v in phases.items())
        print(f"{name}: {total:.2f}s = {total / n * 1000:.3f} ms/item ({parts} ms/item)")
    print(f"store lookup: {len(keys)} keys in {lookup.seconds * 1000:.1f} ms = {lookup.seconds / len(keys) * 1e6:.1f} us/key")
    print(f"overhead_ms_per_item: {sum(cold.values()) / n * 1000:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
