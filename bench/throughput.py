"""Closed-form throughput: our HF backend against the study's one-image-at-a-time loop.

    python bench/throughput.py [--models a,b] [--tasks t1,t2] [--n-per-class N]
                               [--study-items K] [--same-budget-items M] [--rounds R] [--smoke]

Arms, on the same models, the same synthetic grid, in one process, interleaved by round:
  (a) ours: harness.fill.closed_form.fill_closed_form through HFBackend (processor chat template,
      left-padded batches, each image preprocessed once, greedy, max_new_tokens from
      thresholds.toml, answers written to a fresh store) over the whole grid;
  (b) the study's approach: transformers.pipeline("image-text-to-text") called once per
      (image, prompt), greedy, max_new_tokens=2048 and, for LLaVA-family models, the
      forced min_new_tokens=32;
  (b') the same loop with OUR token limit (like for like: what batching and the per-image
      cache buy on their own).
Arms (b) and (b') are slow, so they run a capped number of cells spread over the grid
and are extrapolated per item; raw timings and per-item rates are printed.
Last line: `speedup_vs_one_at_a_time: <ratio>` (extrapolated time of (b) over the grid /
time of (a)); the line before it is `speedup_same_token_budget: <ratio>`.
"""

from __future__ import annotations

import argparse
import sys
import warnings

from _common import Timer, csv_arg, grid, machine, subjects, temp_dir

STUDY_MAX_NEW_TOKENS = 2048
STUDY_MIN_NEW_TOKENS = 32  # forced on LLaVA-family models by the study's scripts
LLAVA_FAMILY = ("llava", "llava_next")


def spread(cells: list, k: int) -> list:
    """k cells evenly spaced over the grid (different images and prompts)."""
    if k >= len(cells):
        return list(cells)
    step = len(cells) / k
    return [cells[int(i * step)] for i in range(k)]


def run_ours(backend, spec, tasks, items, variants, max_new: int) -> tuple[float, int, dict]:
    """Arm (a): the whole grid through fill_closed_form into a fresh store.

    Afterwards (untimed) the batch-invariance self-check runs on that store: the share of
    24 sampled answers that change when asked one at a time.
    """
    from harness.fill.batch_invariance import check_batch_invariance
    from harness.fill.closed_form import BackendHandle, fill_closed_form
    from harness.store import ResponseStore

    store = ResponseStore(temp_dir("bench-store-") / "responses.sqlite")
    handle = BackendHandle(spec=spec, factory=lambda _spec: backend)
    identity = backend.identity()
    n = 0
    with Timer() as t:
        for task in tasks:
            _, stats = fill_closed_form(handle, identity, task, items[task.key], variants, store,
                                        max_new_tokens=max_new, chunk_size=64)
            assert stats.generated + stats.errors == stats.requested and stats.cached == 0, stats
            n += stats.requested
    invariance = check_batch_invariance(handle, identity, [(task, items[task.key], variants) for task in tasks],
                                        store, max_new_tokens=max_new)
    store.close()
    return t.seconds, n, invariance


def run_pipeline(pipe, cells, gen_kwargs: dict) -> tuple[float, int, int]:
    """Arms (b)/(b'): one pipeline call per (image, prompt); returns seconds, calls, new tokens."""
    model = pipe.model
    real = model.generate
    counted = [0]

    def counting_generate(*args, **kwargs):  # exact new-token count, nothing else changes
        out = real(*args, **kwargs)
        sequences = getattr(out, "sequences", out)
        counted[0] += sequences.shape[1] - kwargs["input_ids"].shape[1]
        return out

    model.generate = counting_generate
    try:
        with Timer() as t:
            for image, prompt in cells:
                messages = [{"role": "user", "content": [{"type": "image", "image": image},
                                                         {"type": "text", "text": prompt}]}]
                pipe(text=messages, generate_kwargs=gen_kwargs, return_full_text=False)
    finally:
        del model.generate
    return t.seconds, len(cells), counted[0]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", help="comma-separated registry/organism names (default: the organism models)")
    ap.add_argument("--tasks", help="comma-separated task keys (default: all four)")
    ap.add_argument("--n-per-class", type=int, default=10)
    ap.add_argument("--study-items", type=int, default=48, help="cells per model for arm (b), 2048-token budget")
    ap.add_argument("--same-budget-items", type=int, default=96, help="cells per model for arm (b')")
    ap.add_argument("--rounds", type=int, default=2, help="interleaved rounds (each arm runs once per round)")
    ap.add_argument("--cache-dir", default=".medvlm-cache", help="where built models live")
    ap.add_argument("--smoke", action="store_true", help="seconds, not minutes: tiny-llava, one task, tiny caps")
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore")

    import transformers
    from pathlib import Path

    from harness.backends import make_backend
    from harness.config.thresholds import load_thresholds

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    study_max = STUDY_MAX_NEW_TOKENS
    if args.smoke:
        args.tasks = args.tasks or "brain_tumor"
        args.n_per_class, args.study_items, args.same_budget_items, args.rounds = 1, 1, 2, 1
        study_max = 64
    specs, note = subjects(csv_arg(args.models), smoke=args.smoke)
    registry, tasks, items, variants = grid(csv_arg(args.tasks), args.n_per_class)
    max_new = load_thresholds(None).generation["max_new_tokens"]
    print(f"machine: {machine()}")
    if note:
        print(note)
    if args.smoke:
        print(f"smoke mode: the study arm uses max_new_tokens={study_max} instead of {STUDY_MAX_NEW_TOKENS}")
    grid_items = sum(len(items[t.key]) for t in tasks) * len(variants)
    print(f"grid per model: {len(tasks)} tasks x {grid_items // len(variants) // len(tasks)} images x "
          f"{len(variants)} prompts = {grid_items} closed-form answers; ours: max_new_tokens={max_new}")
    total_a = total_b = total_same = 0.0
    for spec in specs:
        backend = make_backend(spec, cache_dir=Path(args.cache_dir), device="cpu")
        with Timer() as load:
            backend.load()
        model, processor = backend.model, backend.processor
        family = model.config.model_type
        pipe = transformers.pipeline("image-text-to-text", model=model, processor=processor, device="cpu")
        study = {"max_new_tokens": study_max, "do_sample": False}
        if family in LLAVA_FAMILY:
            study["min_new_tokens"] = STUDY_MIN_NEW_TOKENS
        same = {"max_new_tokens": max_new, "do_sample": False}
        cells = [(items[t.key][i].load(), v.render(t)) for t in tasks for i in range(len(items[t.key])) for v in variants]
        study_cells = spread(cells, max(args.study_items, args.rounds))
        same_cells = spread(cells, max(args.same_budget_items, args.rounds))
        from harness.core import GenerationRequest

        run_pipeline(pipe, cells[:1], same)  # warm-up, both paths
        backend.generate([GenerationRequest(cells[0][1], "warm-up", max_new)], {"warm-up": cells[0][0]})
        a = [0.0, 0]
        b = [0.0, 0, 0]
        s = [0.0, 0, 0]
        for r in range(args.rounds):
            backend._image_cache.clear()  # each round starts cold, as a real run does
            backend._rendered.clear()
            secs, n, invariance = run_ours(backend, spec, tasks, items, variants, max_new)
            a[0] += secs
            a[1] += n
            for acc, part in ((s, same_cells[r::args.rounds]), (b, study_cells[r::args.rounds])):
                res = run_pipeline(pipe, part, same if acc is s else study)
                for i in range(3):
                    acc[i] += res[i]
        rate_a, rate_b, rate_s = a[0] / a[1], b[0] / b[1], s[0] / s[1]
        print(f"[{spec.name}] family={family} load={load.seconds:.2f}s")
        print(f"  (a) ours:              {a[1]} answers in {a[0]:.2f}s = {rate_a * 1000:.2f} ms/answer")
        print(f"  (b) study, {study_max} tok:  {b[1]} answers in {b[0]:.2f}s = {rate_b * 1000:.1f} ms/answer "
              f"({b[2] / b[1]:.0f} new tokens/answer{', min_new_tokens=32' if 'min_new_tokens' in study else ''})")
        print(f"  (b') one at a time, {max_new} tok: {s[1]} answers in {s[0]:.2f}s = {rate_s * 1000:.2f} ms/answer "
              f"({s[2] / s[1]:.1f} new tokens/answer)")
        share = "n/a" if invariance["share"] is None else f"{invariance['share']:.3f}"
        print(f"  batch invariance: {invariance['changed']} of {invariance['checked']} sampled answers change "
              f"when asked one at a time (share {share})")
        print(f"  per-model speedup: vs study {rate_b / rate_a:.1f}x, same token budget {rate_s / rate_a:.1f}x")
        total_a += rate_a * grid_items
        total_b += rate_b * grid_items
        total_same += rate_s * grid_items
        backend.close()
    print(f"grid of {len(specs)} model(s) x {grid_items} answers, extrapolated per item: ours {total_a:.1f}s, "
          f"study loop {total_b:.1f}s, one-at-a-time at our token limit {total_same:.1f}s")
    print(f"speedup_same_token_budget: {total_same / total_a:.2f}")
    print(f"speedup_vs_one_at_a_time: {total_b / total_a:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
