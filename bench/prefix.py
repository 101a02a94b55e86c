"""Prefix reuse in the HF backend, measured: the closed-form grid with reuse off and on.

    python bench/prefix.py [--images 3] [--width 512] [--depth 4] [--models NAME,NAME]

The rehearsal's models (harness/rehearsal: random weights at a study checkpoint's real
geometry: its image size, vision tower patching, anyres tiles, image-token count and
vocabulary) with `--depth` layers per stack and `--width` wide stacks, so that two CPU cores
run them in minutes (about 3.5 minutes at the defaults). Why 4 layers of 512 and not fewer:
the vocabulary is never cut (Gemma-3's has 262,144 entries), so with one narrow layer the
logits of the 8 decoded tokens, which every answer computes whether or not the prefix is
shared, would weigh far more than they do in the real 34-layer model (one layer of 256:
Gemma-3 3.2x, one of 1024: 4.5x; four of 512: 8.4x, measured here with 2 images).

Each model answers the closed-form grid (the registry's 12 prompts about each of `--images`
synthetic 512 x 512 brain MRIs, 8 new tokens, float32, batches of 12: one image's prompts)
through the HF backend, in one process, on the same requests: first with prefix reuse off
(today's path), then on (harness/backends/hf_prefix.py). Load and a warm-up batch are not
timed.

Prints one line per model (image tokens, prompt tokens, seconds off and on, its speedup,
answers equal), then `same_answers: a/b` over all models, and last
`prefix_reuse_speedup: X`, the smaller of the models' speedups (reuse on over reuse off).
Depth and width are cut, the image geometry is not: the tokens that reuse saves (the vision
tower and the prefix's prefill, 11 of every 12 times) are the real ones, the absolute
seconds are not. docs/performance.md has the full-depth arithmetic.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import machine  # noqa: E402

MODELS = ["llava-v1.6-mistral-7b", "gemma-3-4b-it"]  # the two families of the study's checkpoints
MAX_NEW_TOKENS = 8


def shrink(width: int) -> dict:
    heads = 4
    return {"text": {"hidden_size": width, "intermediate_size": 2 * width, "num_attention_heads": heads,
                     "num_key_value_heads": 2, "head_dim": width // heads},
            "vision": {"hidden_size": width, "intermediate_size": 2 * width, "num_attention_heads": heads}}


def requests(images: int):
    from harness.core import GenerationRequest
    from harness.rehearsal.run import _images

    from harness.config.registry import load_registry

    task, items = _images(images)
    items = items[:images]
    prompts = [v.render(task) for v in load_registry().variants.values()]
    loaded = {item.image_id: item.load() for item in items}
    reqs = [GenerationRequest(prompt=p, image_key=item.image_id, max_new_tokens=MAX_NEW_TOKENS)
            for item in items for p in prompts]
    return reqs, loaded


def measure(name: str, width: int, depth: int, images: int, work: Path) -> dict:
    from harness.backends.hf import HFBackend
    from harness.rehearsal.build import build_rehearsal_model
    from harness.rehearsal.run import _image_tokens, rehearsal_spec

    folder = build_rehearsal_model(name, work / name, depth=depth, shrink=shrink(width))
    spec = dataclasses.replace(rehearsal_spec(name, folder, "float32"), batch_size=12)
    backend = HFBackend(spec, cache_dir=work / "cache", device="cpu")
    backend.load()
    reqs, loaded = requests(images)
    backend.prefix_reuse = False
    backend.generate(reqs[:2], loaded)  # warm-up: first calls allocate
    timings, answers = {}, {}
    for reuse in (False, True):
        backend.prefix_reuse = reuse
        start = time.perf_counter()
        results = backend.generate(reqs, loaded)
        timings[reuse] = time.perf_counter() - start
        answers[reuse] = [r.text if r.error is None else f"ERROR {r.error}" for r in results]
    prompt_tokens = int(backend._encode(reqs[:1], loaded)["input_ids"].shape[1])
    row = {"model": name, "image_tokens": _image_tokens(backend, reqs[0], loaded), "prompt_tokens": prompt_tokens,
           "off_s": timings[False], "on_s": timings[True], "speedup": timings[False] / timings[True],
           "same": sum(a == b for a, b in zip(answers[False], answers[True])), "requests": len(reqs),
           "prefixes": backend._prefix.prefixes if backend._prefix else 0, "notes": backend.notes()}
    backend.close()
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=3, help="images (12 prompts each) per model")
    ap.add_argument("--width", type=int, default=512, help="width of every stack (the geometry is not cut)")
    ap.add_argument("--depth", type=int, default=4, help="layers per stack")
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--smoke", action="store_true", help="one image, one layer of 64 (a check that it runs)")
    args = ap.parse_args(argv)
    if args.smoke:
        args.images, args.width, args.depth = 1, 64, 1
    print(f"machine: {machine()}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-prefix-") as tmp:
        for name in [m.strip() for m in args.models.split(",") if m.strip()]:
            row = measure(name, args.width, args.depth, args.images, Path(tmp))
            rows.append(row)
            print(f"{row['model']}: {row['image_tokens']} image tokens of {row['prompt_tokens']}; "
                  f"{row['requests']} requests; reuse off {row['off_s']:.1f}s, on {row['on_s']:.1f}s "
                  f"({row['prefixes']} prefixes): {row['speedup']:.2f}x; answers equal {row['same']}/{row['requests']}"
                  + (f"; notes: {row['notes']}" if row["notes"] else ""))
    same, total = sum(r["same"] for r in rows), sum(r["requests"] for r in rows)
    print(f"same_answers: {same}/{total}")
    print(f"prefix_reuse_speedup: {min(r['speedup'] for r in rows):.2f}")
    return 0 if same == total else 1


if __name__ == "__main__":
    sys.exit(main())
