"""Functional tests of the performance machinery (issue 6); nothing here is timed.

- the per-image preprocessing cache (hf_batch.ImageFeatureCache) gives the model exactly
  the inputs, and so exactly the answers, of the uncached path, for the three tiny
  families (LLaVA, LLaVA-NeXT with ragged tile counts, Gemma-3);
- the image processor runs once per image per generate() call, however many prompts
  and batches ask about it;
- the GPU batch sizing arithmetic;
- the batch-invariance self-check returns a sane dict and costs nothing on a rerun;
- the bench/ scripts run in --smoke mode and end with their figure line.
"""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from harness.backends import make_backend
from harness.organism import tiny
from harness.backends.hf_batch import ImageFeatureCache, _concatenate, kv_bytes_per_token, rows_that_fit
from harness.fill.batch_invariance import check_batch_invariance, check_model
from harness.config.registry import load_registry
from harness.core import GenerationRequest
from harness.data.sources import load_synthetic
from harness.fill.closed_form import BackendHandle, fill_closed_form
from harness.store import ResponseStore
from harness.tests.test_hf_backend import spec

REPO = Path(__file__).resolve().parents[2]
PROMPTS = ["Is it normal?", "A or B?", "Is there a tumor in this brain MRI image? Answer yes or no.", "Describe it."]


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("perf-cache")


@pytest.fixture(scope="module")
def backends(cache_dir):
    out = {f: make_backend(spec(f), cache_dir=cache_dir, device="cpu") for f in tiny.TINY_FAMILIES}
    yield out
    for b in out.values():
        b.close()


@pytest.fixture(scope="module")
def images() -> dict:
    """Sizes chosen so LLaVA-NeXT tiles them differently (2 vs 5 tiles: a ragged batch)."""
    sizes = {"square": (32, 32), "wide": (40, 64), "tall": (70, 50), "big": (300, 200)}
    rng = np.random.RandomState(1)
    return {k: Image.fromarray(rng.randint(0, 256, (h, w, 3), dtype=np.uint8), "RGB") for k, (h, w) in sizes.items()}


def cold_backend(backends: dict, family: str):
    """The family's loaded backend with an empty per-image cache."""
    b = backends[family]
    b.load()
    b._image_cache.clear()
    return b


def grid_requests(images: dict, max_new_tokens: int = 5) -> list[GenerationRequest]:
    """Every prompt about every image, interleaved (not sorted by image)."""
    return [GenerationRequest(prompt=p, image_key=k, max_new_tokens=max_new_tokens) for p in PROMPTS for k in images]


class CountingImageProcessor:
    """A spy in front of the real image processor: counts the images it preprocesses."""

    def __init__(self, inner):
        self.inner = inner
        self.images = 0

    def __call__(self, images, **kwargs):
        self.images += len(images) if isinstance(images, list) else 1
        return self.inner(images, **kwargs)

    def __getattr__(self, name):
        return getattr(self.inner, name)


# -------------------------------------------------------------- per-image preprocessing


@pytest.mark.parametrize("family", tiny.TINY_FAMILIES)
def test_cached_inputs_equal_the_uncached_inputs(backends, images, family):
    b, reqs = cold_backend(backends, family), grid_requests(images)
    plain, cached = b._encode(reqs, images, use_cache=False), b._encode(reqs, images)
    assert sorted(plain) == sorted(cached)
    for name in plain:
        assert plain[name].shape == cached[name].shape and (plain[name] == cached[name]).all(), name


@pytest.mark.parametrize("family", tiny.TINY_FAMILIES)
def test_cached_answers_equal_the_uncached_answers(backends, images, family):
    b, reqs = cold_backend(backends, family), grid_requests(images)
    cached = [r.text for r in b.generate(reqs, images)]
    saved, b._image_cache = b._image_cache, None  # the uncached path: the processor preprocesses every row
    try:
        plain = [r.text for r in b.generate(reqs, images)]
    finally:
        b._image_cache = saved
    assert cached == plain
    assert all(isinstance(t, str) for t in cached)


@pytest.mark.parametrize("family", tiny.TINY_FAMILIES)
def test_each_image_is_preprocessed_once_per_generate_call(cache_dir, images, family):
    b = make_backend(spec(family, batch_size=3), cache_dir=cache_dir, device="cpu")  # many small batches
    b.load()
    spy = CountingImageProcessor(b._image_cache.inner)
    b._image_cache.inner = spy
    reqs = grid_requests(images)  # 4 prompts x 4 images, interleaved, in 6 batches
    results = b.generate(reqs, images)
    assert all(r.error is None for r in results)
    assert spy.images == len(images)  # not len(reqs) == 16
    assert b._image_cache.calls == len(images)
    b.generate(reqs, images)  # a later call about the same image objects preprocesses nothing again
    assert spy.images == len(images)
    fresh = {k: im.copy() for k, im in images.items()}  # other objects: preprocessed, once each
    b.generate(reqs, fresh)
    assert spy.images == 2 * len(images)
    b.close()


def test_the_cache_is_bounded_and_keyed_by_the_image_object(backends, images):
    inner = backends["llava"].processor.image_processor
    cache = ImageFeatureCache(inner, max_images=2)
    for image in images.values():
        cache([image], return_tensors="pt")
    assert cache.calls == len(images) and len(cache._entries) == 2
    cache([images["big"]], return_tensors="pt")  # the most recent one is still there
    assert cache.calls == len(images)
    cache([images["square"]], return_tensors="pt")  # evicted long ago
    assert cache.calls == len(images) + 1


def test_concatenate_pads_ragged_axes_with_zeros():
    import torch

    a = {"pixel_values": torch.ones(1, 2, 3), "sizes": [[1, 2]]}
    b = {"pixel_values": torch.full((1, 5, 3), 2.0), "sizes": [[3, 4]]}
    joined = _concatenate([a, b])
    assert joined["pixel_values"].shape == (2, 5, 3)
    assert (joined["pixel_values"][0, 2:] == 0).all() and (joined["pixel_values"][1] == 2).all()
    assert joined["sizes"] == [[1, 2], [3, 4]]


def test_an_unsupported_image_processor_falls_back_to_the_plain_path(cache_dir, images):
    b = make_backend(spec("llava"), cache_dir=cache_dir, device="cpu")
    b.load()

    class OddOutput(CountingImageProcessor):
        def __call__(self, imgs, **kwargs):
            out = dict(super().__call__(imgs, **kwargs))
            out["note"] = "a string the cache cannot concatenate"
            return out

    b._image_cache.inner = OddOutput(b._image_cache.inner)
    reqs = grid_requests({"square": images["square"]})
    texts = [r.text for r in b.generate(reqs, images)]
    assert b._image_cache is None  # switched off for this backend, answers still come
    assert texts == [r.text for r in b.generate(reqs, images)]
    b.close()


# --------------------------------------------------------------------- GPU batch sizing


def test_rows_that_fit_follow_memory_and_length():
    gib = 1 << 30
    per_token = 128 * 1024  # e.g. 32 layers x 8 KV heads x 128 dims x 2 (K, V) x 2 bytes (bf16)
    short = rows_that_fit(40 * gib, per_token, seq_len=700, max_new_tokens=8, cap=4096)
    long = rows_that_fit(40 * gib, per_token, seq_len=700, max_new_tokens=512, cap=4096)
    assert short > long >= 1
    assert rows_that_fit(40 * gib, per_token, 700, 8, cap=64) == 64
    assert rows_that_fit(1, per_token, 700, 8, cap=64) == 1  # never zero


def test_kv_bytes_per_token_reads_the_text_config(backends):
    cfg = backends["gemma3"].model.config.get_text_config()
    heads = cfg.num_key_value_heads
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    assert kv_bytes_per_token(backends["gemma3"].model.config, 2) == 2 * cfg.num_hidden_layers * heads * head_dim * 2


def test_cpu_batch_size_is_the_configured_one(cache_dir):
    assert make_backend(spec("llava"), cache_dir=cache_dir, device="cpu").batch_size == 16
    assert make_backend(spec("llava", batch_size=5), cache_dir=cache_dir, device="cpu").batch_size == 5


# ----------------------------------------------------------------------- batch invariance


@pytest.fixture(scope="module")
def filled(backends, tmp_path_factory):
    """tiny-llava's closed-form answers for 4 images x 12 prompts, in a fresh store."""
    registry = load_registry()
    task = registry.tasks["brain_tumor"]
    items = load_synthetic(task, 2, 42)
    variants = list(registry.variants.values())
    store = ResponseStore(tmp_path_factory.mktemp("bi") / "responses.sqlite")
    backend = backends["llava"]
    handle = BackendHandle(spec=backend.spec, factory=lambda _s: backend)
    identity = backend.identity()
    fill_closed_form(handle, identity, task, items, variants, store, max_new_tokens=8)
    return SimpleNamespace(handle=handle, identity=identity, grids=[(task, items, variants)], store=store,
                           registry=registry, task=task, items=items, variants=variants)


def test_batch_invariance_reports_a_sane_share_and_reruns_for_free(filled):
    calls = filled.handle.calls
    result = check_batch_invariance(filled.handle, filled.identity, filled.grids, filled.store, max_new_tokens=8)
    assert result["checked"] == 24 and filled.handle.calls == calls + 24  # 24 requests, one at a time
    assert 0 <= result["changed"] <= result["checked"]
    assert result["share"] == pytest.approx(result["changed"] / result["checked"])
    assert len(result["examples"]) == min(result["changed"], 3)
    again = check_batch_invariance(filled.handle, filled.identity, filled.grids, filled.store, max_new_tokens=8)
    assert again == result and filled.handle.calls == calls + 24  # read from the store


def test_batch_invariance_detects_a_changed_answer(filled):
    from harness.fill.batch_invariance import alone_key, sample_cells

    cells = sample_cells(filled.identity, filled.grids, filled.store, max_new_tokens=8, n=4)
    rows = [{"key": alone_key(filled.identity, c[3], c[1], 8), "stage": "closed_batch1", "model": "m", "task": "t",
             "text": "certainly not " + c[4]} for c in cells[:1]]
    other_store = ResponseStore(filled.store.path.parent / "copy.sqlite")
    other_store.put_many([{"key": k, "stage": "closed", "model": "m", "task": "t", "text": v}
                          for k, v in filled.store.get_many(_closed_keys(filled)).items()])
    other_store.put_many(rows)
    result = check_batch_invariance(filled.handle, filled.identity, filled.grids, other_store, max_new_tokens=8,
                                    n=4, generate=False)
    assert result["checked"] == 1 and result["changed"] == 1 and result["share"] == 1.0


def _closed_keys(filled) -> list[str]:
    from harness.fill.closed_form import closed_form_key

    return [closed_form_key(filled.identity, v.render(t), i, 8) for t, items, vs in filled.grids for i in items for v in vs]


def test_check_model_runs_once_for_hf_models_and_never_loads_one(filled):
    check_batch_invariance(filled.handle, filled.identity, filled.grids, filled.store, max_new_tokens=8)
    suite = SimpleNamespace(results={("closed", "tiny-llava", "brain_tumor", 2): object()}, store=filled.store,
                            settings=SimpleNamespace(n_per_class=2),
                            thresholds=SimpleNamespace(generation={"max_new_tokens": 8}),
                            task=lambda k: filled.task, items=lambda t: filled.items, variants=filled.variants)
    unloaded = BackendHandle(spec=filled.handle.spec, factory=lambda _s: pytest.fail("the check loaded a model"))
    result = check_model(suite, unloaded, filled.identity, ["brain_tumor"])
    assert result["checked"] == 24  # from the answers the earlier test stored
    assert suite.batch_invariance == {"tiny-llava": result}
    assert check_model(suite, unloaded, filled.identity, ["brain_tumor"]) is result  # once per run
    endpoint = dataclasses.replace(filled.handle.spec, name="served", backend="openai")
    assert check_model(suite, BackendHandle(spec=endpoint, factory=None), filled.identity, ["brain_tumor"]) is None


# ------------------------------------------------------------------------- bench scripts


def test_bench_scripts_run_in_smoke_mode(tmp_path):
    """All five scripts at once (they are mostly waiting on subprocesses and sleeps)."""
    scripts = {"throughput": "speedup_vs_one_at_a_time", "replay": "replay_seconds",
               "overhead": "overhead_ms_per_item", "endpoint": "endpoint_speedup_at_concurrency",
               "prefix": "prefix_reuse_speedup"}
    procs = {}
    for name in scripts:
        cmd = [sys.executable, str(REPO / "bench" / f"{name}.py"), "--smoke"]
        if name == "throughput":
            cmd.append(f"--cache-dir={tmp_path}")
        procs[name] = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for name, figure in scripts.items():
        out, err = procs[name].communicate(timeout=300)
        assert procs[name].returncode == 0, f"{name}: {err[-2000:]}"
        last = out.strip().splitlines()[-1]
        assert re.fullmatch(rf"{figure}: \d+(\.\d+)?", last), (name, last)
