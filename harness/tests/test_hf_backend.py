"""Tests of the in-process transformers backend (harness/backends/hf.py) on tiny models.

Each family is built once per session into a pytest temp cache and loaded back through
`make_backend(ModelSpec(model="builtin:..."))`, i.e. through the same from_pretrained
path a downloaded checkpoint takes.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from harness.backends import Backend, make_backend
from harness.organism import tiny
from harness.backends.identity import folder_fingerprint, model_identity
from harness.backends.hf import HFBackend, plan_batches
from harness.core import GenerationRequest, HarnessError, ModelSpec

BUILTINS = {"llava": "tiny-llava", "llava_next": "tiny-llava-next", "gemma3": "tiny-gemma3"}
IMAGE_TOKEN = {"llava": "<image>", "llava_next": "<image>", "gemma3": "<start_of_image>"}
PROMPTS = [
    "Is it normal?",
    "Is there a tumor in this brain MRI image? Answer yes or no, with one word only, please.",
    "A or B?",
    "Describe the image.",
]


def spec(family: str, **kw) -> ModelSpec:
    return ModelSpec(name=BUILTINS[family], backend="hf", model="builtin:" + BUILTINS[family], **kw)


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="session")
def backends(cache_dir) -> dict[str, HFBackend]:
    out = {f: make_backend(spec(f), cache_dir=cache_dir, device="cpu") for f in tiny.TINY_FAMILIES}
    yield out
    for b in out.values():
        b.close()


@pytest.fixture(scope="session")
def images() -> dict[str, Image.Image]:
    """Three RGB noise images of different sizes and aspect ratios."""
    sizes = {"square": (32, 32), "wide": (40, 64), "tall": (70, 50)}
    rng = np.random.RandomState(0)
    return {k: Image.fromarray(rng.randint(0, 256, (h, w, 3), dtype=np.uint8), "RGB") for k, (h, w) in sizes.items()}


def batch_requests() -> list[GenerationRequest]:
    """Prompts of different lengths over all three images, interleaved (not sorted by image)."""
    keys = ["wide", "square", "tall", "wide", "square"]
    return [GenerationRequest(prompt=PROMPTS[i % 4], image_key=k, max_new_tokens=6) for i, k in enumerate(keys)]


@pytest.fixture(scope="session")
def batch_results(backends, images):
    return {f: b.generate(batch_requests(), images) for f, b in backends.items()}


# ----------------------------------------------------------------------- generation


@pytest.mark.parametrize("family", tiny.TINY_FAMILIES)
def test_batch_gives_one_text_per_request(backends, images, batch_results, family):
    results = batch_results[family]
    assert len(results) == len(batch_requests())
    assert all(r.error is None and isinstance(r.text, str) for r in results), results
    assert any(r.ok for r in results)


@pytest.mark.parametrize("family", tiny.TINY_FAMILIES)
def test_batch_is_left_padded(backends, images, family):
    b = backends[family]
    inputs = b._encode(batch_requests(), images)
    mask = inputs["attention_mask"]
    assert mask[:, -1].all(), "right padding: the last position must be real in every row"
    assert not mask[:, 0].all(), "prompts of different lengths should need padding"
    pad = b.processor.tokenizer.pad_token_id
    assert (inputs["input_ids"][mask == 0] == pad).all()


@pytest.mark.parametrize("family", tiny.TINY_FAMILIES)
def test_batch_equals_each_request_alone(backends, images, batch_results, family):
    b = backends[family]
    alone = [b.generate([r], images)[0].text for r in batch_requests()]
    assert [r.text for r in batch_results[family]] == alone


@pytest.mark.parametrize("family", tiny.TINY_FAMILIES)
def test_generation_is_deterministic(backends, images, batch_results, family):
    again = backends[family].generate(batch_requests(), images)
    assert [r.text for r in again] == [r.text for r in batch_results[family]]


@pytest.mark.parametrize("family", tiny.TINY_FAMILIES)
def test_the_image_reaches_the_model(backends, images, family):
    import torch

    b = backends[family]
    req = [GenerationRequest(prompt="Is it normal?", image_key=k) for k in ("square", "wide")]
    with torch.inference_mode():
        logits = [b.model(**b._encode([r], images)).logits[0, -1] for r in req]
    assert not torch.allclose(logits[0], logits[1])


@pytest.mark.parametrize("family", tiny.TINY_FAMILIES)
def test_text_only_and_system_requests(backends, images, family):
    b = backends[family]
    req = GenerationRequest(prompt="Say yes.", image_key=None, max_new_tokens=3, system="You are terse.")
    (res,) = b.generate([req], images)
    assert res.error is None and isinstance(res.text, str)
    rendered = b.render_prompt(req)
    assert "Say yes." in rendered and "You are terse." in rendered
    assert IMAGE_TOKEN[family] not in rendered


def test_text_only_model_loads_as_causal_lm(tmp_path):
    """A text-only checkpoint (e.g. the description diagnoser) is served too."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = tiny._train_tokenizer("llava")
    torch.manual_seed(0)
    LlamaForCausalLM(LlamaConfig(**tiny._text_kwargs(tok))).save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    b = make_backend(ModelSpec(name="diagnoser", backend="hf", model=str(tmp_path)), cache_dir=tmp_path, device="cpu")
    reqs = [
        GenerationRequest("Description: a dark round lesion. Is there a tumor? Answer yes or no.", system="Be brief."),
        GenerationRequest("Hi"),
    ]
    batch = b.generate(reqs, {})
    assert all(r.error is None for r in batch)
    assert [r.text for r in batch] == [b.generate([r], {})[0].text for r in reqs]
    assert b.render_prompt(reqs[1]) == "USER: Hi ASSISTANT:"
    (with_image,) = b.generate([GenerationRequest("Is it normal?", "img")], {"img": Image.new("RGB", (8, 8))})
    assert with_image.text is None and "text-only" in with_image.error


def test_max_new_tokens_bounds_the_answer(backends, images):
    b = backends["llava"]
    reqs = [GenerationRequest(prompt="Describe the image.", image_key="square", max_new_tokens=n) for n in (1, 5)]
    short, long = b.generate(reqs, images)
    assert len(b.processor.tokenizer(short.text, add_special_tokens=False)["input_ids"]) <= 2
    assert long.text.startswith(short.text)


@pytest.mark.parametrize("family", tiny.TINY_FAMILIES)
def test_rendered_prompt_uses_the_processors_template(backends, family):
    b = backends[family]
    rendered = b.render_prompt(GenerationRequest(prompt="Is there a lesion?", image_key="x"))
    assert "Is there a lesion?" in rendered
    assert rendered.index(IMAGE_TOKEN[family]) < rendered.index("Is there a lesion?")  # image first
    expected = b.processor.apply_chat_template(b.messages(GenerationRequest("Is there a lesion?", "x")), tokenize=False, add_generation_prompt=True)
    assert rendered == expected


def test_gemma_template_bos_is_not_doubled(backends, images):
    b = backends["gemma3"]
    ids = b._encode([GenerationRequest("Is it normal?", "square")], images)["input_ids"][0].tolist()
    bos = b.processor.tokenizer.bos_token_id
    assert ids[0] == bos and ids.count(bos) == 1


# --------------------------------------------------------------------------- errors


def test_missing_image_fails_only_that_request(backends, images):
    reqs = [GenerationRequest("Is it normal?", "square"), GenerationRequest("Is it normal?", "nope")]
    ok, missing = backends["llava"].generate(reqs, images)
    assert ok.error is None and ok.text is not None
    assert missing.text is None and missing.error.startswith("KeyError:") and "nope" in missing.error


def test_failing_batch_gives_error_results(backends, images, monkeypatch):
    b = backends["llava"]

    def boom(*args, **kwargs):
        raise RuntimeError("device fell over\nsecond line")

    monkeypatch.setattr(b.model, "generate", boom)
    results = b.generate(batch_requests(), images)
    assert [(r.text, r.error) for r in results] == [(None, "RuntimeError: device fell over")] * len(results)


def _out_of_memory_above(rows: int, b, monkeypatch) -> list[int]:
    """Make the model's generate raise CUDA's out-of-memory error on batches of more than
    `rows` rows; returns the list the batch size of every call is appended to."""
    import torch

    real = b.model.generate
    sizes: list[int] = []

    def limited(**kwargs):
        sizes.append(kwargs["input_ids"].shape[0])
        if kwargs["input_ids"].shape[0] > rows:
            raise torch.OutOfMemoryError("CUDA out of memory")
        return real(**kwargs)

    monkeypatch.setattr(b.model, "generate", limited)
    return sizes


def test_oom_retries_in_halves(backends, images, monkeypatch):
    b = backends["llava"]
    sizes = _out_of_memory_above(2, b, monkeypatch)
    monkeypatch.setattr(b, "prefix_reuse", False)  # the plain path: one generate call per batch
    results = b.generate(batch_requests(), images)
    assert all(r.error is None for r in results)
    assert sizes == [5, 2, 3, 1, 2]  # 5 -> 2 + 3, then 3 -> 1 + 2


def test_an_oom_while_sharing_a_prefix_also_retries_in_halves(backends, images, monkeypatch):
    """Prefix reuse (hf_prefix.py) lets an out-of-memory error through, so the batch is halved
    as on the plain path, never answered with errors."""
    b = backends["llava"]
    expected = [r.text for r in b.generate(batch_requests(), images)]
    notes = b.notes()  # the backend is shared: earlier tests may have left notes
    monkeypatch.setattr(b, "prefix_min_tokens", 0)  # its prompts are short: share them anyway
    if b._prefix is not None:  # an earlier test may have found its prompts too short to share
        monkeypatch.setattr(b._prefix, "worth", True)
    sizes = _out_of_memory_above(1, b, monkeypatch)
    results = b.generate(batch_requests(), images)
    assert [r.text for r in results] == expected and all(r.error is None for r in results)
    assert max(sizes) == 2 and sizes.count(1) >= 5 and b.notes() == notes  # an OOM is not a fallback


def test_unknown_backend_and_bad_models_are_setup_errors(cache_dir, tmp_path):
    with pytest.raises(HarnessError, match="unknown backend 'grpc'"):
        make_backend(ModelSpec(name="m", backend="grpc", model="x"), cache_dir=cache_dir)
    with pytest.raises(HarnessError, match="not a model folder"):
        make_backend(ModelSpec(name="m", backend="hf", model=str(tmp_path / "missing")), cache_dir=cache_dir).identity()
    with pytest.raises(HarnessError, match="unknown builtin"):
        make_backend(ModelSpec(name="m", backend="hf", model="builtin:tiny-nope"), cache_dir=cache_dir).identity()
    with pytest.raises(HarnessError, match="unknown dtype"):
        make_backend(ModelSpec(name="m", backend="hf", model="x", dtype="int3"), cache_dir=cache_dir)


def test_pickle_only_checkpoint_is_refused(backends, tmp_path):
    """Weights load from safetensors only: a folder with just pytorch_model.bin fails clearly."""
    import torch

    src = Path(backends["llava"].source()[0])
    for f in src.iterdir():
        if f.name != "model.safetensors":
            (tmp_path / f.name).write_bytes(f.read_bytes())
    torch.save(backends["llava"].model.state_dict(), tmp_path / "pytorch_model.bin")
    b = make_backend(ModelSpec(name="pickled", backend="hf", model=str(tmp_path)), cache_dir=tmp_path, device="cpu")
    with pytest.raises(HarnessError, match="'pickled'.*safetensors only"):
        b.generate([GenerationRequest("hi")], {})


@pytest.mark.parametrize("trust", [False, True])
def test_loading_flags_are_passed(cache_dir, monkeypatch, trust):
    import transformers

    calls = {}

    def spy(name, real):
        def wrapper(*args, **kwargs):
            calls[name] = kwargs
            return real(*args, **kwargs)

        return wrapper

    for cls in (transformers.AutoProcessor, transformers.AutoModelForImageTextToText):
        monkeypatch.setattr(cls, "from_pretrained", spy(cls.__name__, cls.from_pretrained))
    kw = {"trust_remote_code": True, "revision": "main"} if trust else {}
    make_backend(spec("llava", **kw), cache_dir=cache_dir, device="cpu").load()
    model_kwargs = calls["AutoModelForImageTextToText"]
    assert model_kwargs["use_safetensors"] is True
    assert model_kwargs["dtype"] is __import__("torch").float32
    for name in calls:
        assert calls[name]["trust_remote_code"] is trust
        assert calls[name]["revision"] == ("main" if trust else None)


# ------------------------------------------------------------------------- identity


def test_identity_fingerprints_the_built_folder(backends, cache_dir, tmp_path):
    ident = backends["llava"].identity()
    assert ident == model_identity(spec("llava"), cache_dir)  # what the store keys on
    assert (ident["backend"], ident["model"], ident["revision"]) == ("hf", "builtin:tiny-llava", None)
    same = folder_fingerprint(tiny.build_tiny_model("llava", tmp_path / "same", seed=0))
    other = folder_fingerprint(tiny.build_tiny_model("llava", tmp_path / "other", seed=1))
    assert ident["fingerprint"] == same != other


def test_identity_of_a_hub_model_is_cheap_and_names_the_revision(cache_dir):
    hub = ModelSpec(name="g", backend="hf", model="google/gemma-3-4b-it", revision="abc")
    b = make_backend(hub, cache_dir=cache_dir, device="cuda")
    assert b.identity() == {"backend": "hf", "model": "google/gemma-3-4b-it", "revision": "abc", "fingerprint": None,
                            "dtype": "float32"}  # this machine has no GPU: fp32 is what would run
    assert b._model is None  # nothing was loaded


def test_identity_follows_the_folder_content(backends, tmp_path):
    src = Path(backends["gemma3"].source()[0])
    for f in src.iterdir():
        (tmp_path / f.name).write_bytes(f.read_bytes())
    spec_local = ModelSpec(name="local", backend="hf", model=str(tmp_path))
    before = make_backend(spec_local, cache_dir=tmp_path, device="cpu").identity()["fingerprint"]
    assert before == backends["gemma3"].identity()["fingerprint"]
    (tmp_path / "generation_config.json").write_text("{}")
    assert make_backend(spec_local, cache_dir=tmp_path, device="cpu").identity()["fingerprint"] != before


# ------------------------------------------------------------------------- plumbing


def test_plan_batches_groups_by_settings_and_image():
    reqs = [
        GenerationRequest("a", "img2"),
        GenerationRequest("b", "img1"),
        GenerationRequest("c", None),
        GenerationRequest("d", "img2", max_new_tokens=64),
        GenerationRequest("e", "img1"),
        GenerationRequest("f", "img2"),
    ]
    assert plan_batches(reqs, list(range(6)), batch_size=16) == [[1, 4, 0, 5], [2], [3]]
    assert plan_batches(reqs, list(range(6)), batch_size=3) == [[1, 4, 0], [5], [2], [3]]
    with pytest.raises(HarnessError):
        plan_batches(reqs, [0], batch_size=0)


def test_backends_are_backends(backends):
    assert all(isinstance(b, Backend) for b in backends.values())
    assert backends["llava"].embed([]).shape[0] == 0  # the HF backend exposes its vision encoder


def test_importing_backends_does_not_import_torch():
    code = "import sys, harness.backends; print('torch' in sys.modules, 'transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
