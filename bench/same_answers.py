"""Do two runs of the suite on the same models agree, answer by answer and verdict by verdict?

    python bench/same_answers.py --stores A/responses.sqlite B/responses.sqlite \
        --results A_RESULTS B_RESULTS

Why: the default run must give the same verdicts on every machine (issue 25). Two runs
of the same shipped weights under different CPU kernels or thread counts ask the same
questions, so their stores hold the same keys (the key hashes the weights, not the
machine); every text that differs is an answer the arithmetic changed. Prints the
counts per stage, the largest change of an embedding, and the verdicts (label and
outcome from summary.json) that differ among the tests both runs have (a run of one task
against a run of all four compares that task); exits 1 when a verdict differs or no test is
shared. The last line is `verdicts_differ: N`.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from collections import Counter
from pathlib import Path

import numpy as np


def _texts(path: Path) -> dict[str, tuple[str, str]]:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        return {k: (stage, text) for k, stage, text in conn.execute("SELECT key, stage, text FROM responses")}


def _vectors(path: Path) -> dict[str, np.ndarray]:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        return {k: np.frombuffer(data, dtype=np.float32) for k, data in conn.execute("SELECT key, data FROM embeddings")}


def compare_stores(a: Path, b: Path) -> dict:
    ta, tb = _texts(a), _texts(b)
    shared = ta.keys() & tb.keys()
    per_stage = Counter(ta[k][0] for k in shared)
    differ = Counter(ta[k][0] for k in shared if ta[k][1] != tb[k][1])
    va, vb = _vectors(a), _vectors(b)
    both = va.keys() & vb.keys()
    diffs = [float(np.max(np.abs(va[k] - vb[k]))) for k in both if va[k].shape == vb[k].shape]
    return {"answers": len(shared), "only_in_one": len(ta.keys() ^ tb.keys()), "per_stage": dict(per_stage),
            "differ": dict(differ), "examples": [(ta[k][0], ta[k][1], tb[k][1]) for k in sorted(shared)
                                                 if ta[k][1] != tb[k][1]][:5],
            "embeddings": len(both), "embedding_max_abs_diff": max(diffs) if diffs else 0.0}


def compare_verdicts(a: Path, b: Path) -> dict:
    ra = {r["test"]: r for r in json.loads((a / "summary.json").read_text())["records"]}
    rb = {r["test"]: r for r in json.loads((b / "summary.json").read_text())["records"]}
    shared = sorted(ra.keys() & rb.keys())
    differ = [t for t in shared if (ra[t]["label"], ra[t]["outcome"]) != (rb[t]["label"], rb[t]["outcome"])]
    moved = [t for t in shared if ra[t].get("value") != rb[t].get("value")]
    return {"verdicts": len(shared), "only_in_one": len(ra.keys() ^ rb.keys()), "differ": differ, "values_moved": moved,
            "labels": {t: (ra[t]["label"], rb[t]["label"]) for t in differ}}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stores", nargs=2, type=Path, metavar=("A", "B"), help="two responses.sqlite files")
    parser.add_argument("--results", nargs=2, type=Path, metavar=("A", "B"), required=True,
                        help="two --results-dir folders (summary.json)")
    args = parser.parse_args(argv)
    if args.stores:
        s = compare_stores(*args.stores)
        print(f"answers_compared: {s['answers']} (keys in one store only: {s['only_in_one']})")
        for stage, n in sorted(s["per_stage"].items()):
            print(f"  {stage}: {s['differ'].get(stage, 0)} of {n} differ")
        for stage, x, y in s["examples"]:
            print(f"  e.g. {stage}: {x!r} -> {y!r}")
        print(f"answers_differ: {sum(s['differ'].values())}")
        print(f"embeddings_compared: {s['embeddings']}, max_abs_diff: {s['embedding_max_abs_diff']:.3g}")
    v = compare_verdicts(*args.results)
    print(f"verdicts_compared: {v['verdicts']} (tests in one run only: {v['only_in_one']})")
    print(f"values_moved: {len(v['values_moved'])}")
    for test, (x, y) in v["labels"].items():
        print(f"  {test}: {x} -> {y}")
    print(f"verdicts_differ: {len(v['differ'])}")
    return 1 if v["differ"] or not v["verdicts"] else 0


if __name__ == "__main__":
    sys.exit(main())
