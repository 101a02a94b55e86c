"""Prefix reuse in the HF backend (issue 24): the same greedy answers with it on and off.

Real transformers models of the three families the study's checkpoints belong to (tiny,
random weights, float32 on the CPU): LLaVA, LLaVA-NeXT (anyres tiles, image newline
tokens) and Gemma-3 (image tokens attending to each other inside the prefix; a sliding
window of 16 tokens, shorter than the prompts, so its suffixes are batched by length), and
the organism's trained models. Where the prefix cannot be shared (a template that puts the
text before the image; an error on the way) the backend answers the plain way and says so
once. The real geometry is measured by bench/prefix.py.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from harness.backends import make_backend
from harness.backends.hf_prefix import PrefixReuse, _sliding_window
from harness.config.registry import load_registry
from harness.core import GenerationRequest

REGISTRY = load_registry()
TASK = REGISTRY.tasks["brain_tumor"]
PROMPTS = [v.render(TASK) for v in REGISTRY.variants.values()]  # the 12 closed-form prompts
RNG = np.random.default_rng(7)
IMAGES = {f"img{i}": Image.fromarray(RNG.integers(0, 255, (24 + 8 * i, 40 - 4 * i, 3), dtype=np.uint8))
          for i in range(3)}  # three sizes: LLaVA-NeXT picks other tile grids


def grid_requests(system=None, max_new_tokens=8):
    return [GenerationRequest(prompt=p, image_key=k, max_new_tokens=max_new_tokens, system=system)
            for k in IMAGES for p in PROMPTS]


def answers(backend, reqs, reuse: bool):
    backend.prefix_reuse = reuse
    results = backend.generate(reqs, IMAGES)
    assert all(r.error is None for r in results), [r.error for r in results if r.error][:3]
    return [(r.text, r.truncated) for r in results]


@pytest.fixture(scope="module", params=["tiny-llava", "tiny-llava-next", "tiny-gemma3", "organism-llava-base",
                                        "organism-gemma-med"])
def backend(request, tmp_path_factory):
    b = make_backend(REGISTRY.models[request.param], cache_dir=tmp_path_factory.mktemp("prefix"), device="cpu")
    b.load()
    b.prefix_min_tokens = 0  # these prompts are short: share every prefix, to test it
    yield b
    b.close()


def test_the_answers_are_the_same_with_the_prefix_shared(backend):
    reqs = grid_requests()
    plain = answers(backend, reqs, reuse=False)
    assert backend._prefix is None  # off: the plain path only
    shared = answers(backend, reqs, reuse=True)
    assert shared == plain
    prefix = backend._prefix
    assert prefix.prefixes >= len(IMAGES) and prefix.reused == len(reqs) and backend.notes() == []


def test_the_answers_are_the_same_with_a_system_prompt_and_a_larger_budget(backend):
    reqs = grid_requests(system="You are a careful radiologist.", max_new_tokens=12)
    assert answers(backend, reqs, reuse=True) == answers(backend, reqs, reuse=False)


def test_suffixes_of_different_lengths_share_a_batch_unless_a_window_is_shorter(backend):
    reuse = PrefixReuse(backend)
    encoded = [backend._encode([r], IMAGES)["input_ids"][0] for r in grid_requests()[:12]]
    lengths = {len(x) for x in encoded}
    assert len(lengths) > 1  # the prompts differ in length
    batches = reuse._suffix_batches(backend.model.config, encoded, 10, 8)
    window = _sliding_window(backend.model.config)
    if window is not None and max(lengths) + 8 > window:  # tiny Gemma-3: 16 tokens; one length per batch
        assert len(batches) == len(lengths) and all(len({len(encoded[i]) for i in b}) == 1 for b in batches)
    else:
        assert batches == [list(range(12))]


# A LLaVA template that writes the text before the image: the prompts about one image then
# share no image token in their common prefix.
TEXT_FIRST = ("{% for message in messages %}USER: {% for part in message['content'] %}{% if part['type'] == 'text' %}"
              "{{ part['text'] }}{% endif %}{% endfor %}{% for part in message['content'] %}"
              "{% if part['type'] == 'image' %} <image>{% endif %}{% endfor %} ASSISTANT:{% endfor %}")


def test_a_template_with_the_image_last_falls_back_and_says_so_once(tmp_path):
    b = make_backend(REGISTRY.models["tiny-llava"], cache_dir=tmp_path, device="cpu")
    b.load()
    b.prefix_min_tokens = 0
    b._processor.chat_template = TEXT_FIRST
    b._rendered = {}
    reqs = grid_requests()
    shared = answers(b, reqs, reuse=True)
    assert b._prefix.prefixes == 0 and b._prefix.reused == 0
    assert b.notes() == ["prefix reuse off for a batch, answers computed the plain way: the prompts about one image "
                         "do not share all of its tokens in their common prefix (does the chat template put the "
                         "image after the text?)"]
    assert shared == answers(b, reqs, reuse=False)
    b.close()


def test_an_error_on_the_way_falls_back_to_the_plain_answers(tmp_path, monkeypatch):
    b = make_backend(REGISTRY.models["tiny-llava"], cache_dir=tmp_path, device="cpu")
    b.load()
    b.prefix_min_tokens = 0
    reqs = grid_requests()
    plain = answers(b, reqs, reuse=False)

    def broken(self, group, images, encode, plain):
        raise RuntimeError("cache copy failed")

    monkeypatch.setattr(PrefixReuse, "_shared", broken)
    assert answers(b, reqs, reuse=True) == plain
    assert b.notes() == ["prefix reuse off for a batch, answers computed the plain way: RuntimeError: cache copy failed"]
    b.close()


def test_a_short_prefix_goes_the_plain_way_by_default(tmp_path):
    """The organism's prompts share 20-60 tokens: not worth a forward pass of their own."""
    b = make_backend(REGISTRY.models["organism-gemma-base"], cache_dir=tmp_path, device="cpu")
    reqs = grid_requests()
    assert b.prefix_min_tokens == 128
    b.generate(reqs, IMAGES)
    assert b._prefix.prefixes == 0 and b._prefix.reused == 0 and b.notes() == []
    assert b._prefix.worth is False  # later batches go the plain way whole, without encoding twice
    b.close()


def test_the_environment_turns_it_off(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDVLM_PREFIX_REUSE", "0")
    assert make_backend(REGISTRY.models["tiny-llava"], cache_dir=tmp_path, device="cpu").prefix_reuse is False
    monkeypatch.delenv("MEDVLM_PREFIX_REUSE")
    assert make_backend(REGISTRY.models["tiny-llava"], cache_dir=tmp_path, device="cpu").prefix_reuse is True


@pytest.mark.parametrize("checkpoint", ["llava-med-v1.5-mistral-7b", "llava-v1.6-mistral-7b", "gemma-3-4b-it"])
def test_the_answers_are_the_same_at_the_checkpoints_geometry(checkpoint, tmp_path):
    """The rehearsal's models (harness/rehearsal): random weights at the checkpoint's real
    image geometry (LLaVA-1.5's 576 image tokens, LLaVA-NeXT's 2,928 with anyres tiles and
    image newlines, Gemma-3's 256 after 4,096 SigLIP patches) and true vocabulary, one narrow
    layer per stack; the registry's 12 prompts about a 512 x 512 image, float32."""
    import dataclasses

    from harness.backends.hf import HFBackend
    from harness.rehearsal.build import CI_SHRINK, build_rehearsal_model
    from harness.rehearsal.run import _images, rehearsal_spec

    folder = build_rehearsal_model(checkpoint, tmp_path / checkpoint, depth=1, shrink=CI_SHRINK)
    spec = dataclasses.replace(rehearsal_spec(checkpoint, folder, "float32"), batch_size=12)
    b = HFBackend(spec, cache_dir=tmp_path / "cache", device="cpu")
    task, items = _images(1)
    image = {items[0].image_id: items[0].load()}
    reqs = [GenerationRequest(prompt=v.render(task), image_key=items[0].image_id, max_new_tokens=8)
            for v in REGISTRY.variants.values()]

    def run(reuse):
        b.prefix_reuse = reuse
        return [(r.text, r.truncated, r.error) for r in b.generate(reqs, image)]

    plain, shared = run(False), run(True)
    assert shared == plain and all(e is None for _, _, e in plain)
    assert b._prefix.prefixes == 1 and b._prefix.reused == 12 and b.notes() == []
    b.close()
