"""Tests of the model organism's machinery (harness/organism/).

Training the real organism takes minutes, so these tests use a config that trains a
couple of steps per stage: what they check is everything around the training that a
full build relies on (cache key, lock, atomic folder, loading through the HF backend,
train/test rendering identity, answers derived from data, model sizes).
"""

from __future__ import annotations

import dataclasses
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from harness.core import GenerationRequest, HarnessError, ModelSpec
from harness.organism import build as organism_build
from harness.organism import general_data, med_data, models, scenes, train, vocab
from harness.organism.config import OrganismConfig, organism_key, quick_config

MAX_PARAMETERS = 1_000_000


@pytest.fixture(scope="module")
def registry():
    from harness.config.registry import load_registry

    return load_registry()


@pytest.fixture(scope="module")
def quick(tmp_path_factory) -> dict[str, Path]:
    """A complete organism build with a few steps per stage."""
    root = tmp_path_factory.mktemp("organism")
    return organism_build.build_organism(root, config=quick_config(), log=lambda *_: None)


def _fake_train(calls: list, delay: float = 0.0):
    """A stand-in for the training: writes the folders a build must contain."""

    def fake(cfg, out: Path, log):
        calls.append(out)
        time.sleep(delay)
        for name in organism_build.NAMES:
            (out / name).mkdir(parents=True)
            (out / name / "config.json").write_text("{}")
        return {"timings": {}, "parameters": {}}

    return fake


# ------------------------------------------------------------------------ cache key


def test_cache_key_is_stable_and_changes_with_the_config():
    assert organism_key(quick_config()) == organism_key(quick_config())
    assert organism_key(dataclasses.replace(quick_config(), init_seed=8)) != organism_key(quick_config())
    stage = dataclasses.replace(quick_config().base, steps=3)
    assert organism_key(dataclasses.replace(quick_config(), base=stage)) != organism_key(quick_config())


def test_training_images_never_come_from_the_suites_seed():
    with pytest.raises(ValueError, match="42"):
        OrganismConfig(train_seed=42)


# ------------------------------------------------------------------------ model sizes


@pytest.mark.parametrize("family", ["llava", "gemma", "diagnoser"])
def test_every_organism_model_stays_tiny(registry, family):
    """The default geometry (what a real build trains) stays under a million parameters."""
    cfg = OrganismConfig()
    tok = vocab.train_tokenizer("gemma3" if family == "gemma" else "llava", registry, cfg.vocab_size)
    if family == "llava":
        model, _ = models.build_llava(cfg.llava, tok, cfg.init_range)
    elif family == "gemma":
        model, _ = models.build_gemma(cfg.gemma, tok, cfg.init_range)
    else:
        model = models.build_text_lm(cfg.diagnoser, tok, cfg.init_range)
    assert 10_000 < models.parameter_count(model) < MAX_PARAMETERS


def test_built_models_record_their_sizes(quick):
    import json

    manifest = json.loads((next(iter(quick.values())).parent / organism_build.MANIFEST).read_text())
    assert set(manifest["parameters"]) == set(organism_build.NAMES)
    assert all(0 < n < MAX_PARAMETERS for n in manifest["parameters"].values())


# ------------------------------------------------------------------ build and cache


def test_build_writes_every_model_as_safetensors(quick):
    assert set(quick) == set(organism_build.NAMES)
    for folder in quick.values():
        names = {p.name for p in folder.iterdir()}
        assert "config.json" in names and "model.safetensors" in names and "tokenizer.json" in names
        assert not any(n.endswith((".bin", ".pt")) for n in names)
    root = next(iter(quick.values())).parent
    assert not [p for p in root.parent.iterdir() if p.name.startswith(".")], "temp folder left behind"


def test_a_complete_build_is_reused(quick, monkeypatch):
    monkeypatch.setattr(organism_build, "_train_all", lambda *a: pytest.fail("rebuilt a cached organism"))
    cache = next(iter(quick.values())).parent.parent.parent
    assert organism_build.build_organism(cache, config=quick_config()) == quick


def test_concurrent_builds_train_once(tmp_path, monkeypatch):
    calls: list = []
    monkeypatch.setattr(organism_build, "_train_all", _fake_train(calls, delay=0.3))
    results = []
    threads = [threading.Thread(target=lambda: results.append(
        organism_build.build_organism(tmp_path, config=quick_config()))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len(results) == 3 and all(r == results[0] for r in results)


def test_force_rebuilds_in_place(tmp_path, monkeypatch):
    calls: list = []
    monkeypatch.setattr(organism_build, "_train_all", _fake_train(calls))
    first = organism_build.build_organism(tmp_path, config=quick_config())
    again = organism_build.build_organism(tmp_path, config=quick_config(), force=True)
    assert len(calls) == 2 and first == again
    assert all((p / "config.json").is_file() for p in again.values())


def test_resolve_builtin(tmp_path, monkeypatch):
    calls: list = []
    monkeypatch.setattr(organism_build, "_train_all", _fake_train(calls))
    folder = organism_build.resolve_builtin("organism-gemma-med", tmp_path)
    assert folder == organism_build.organism_root(tmp_path) / "organism-gemma-med"
    assert organism_build.resolve_builtin("organism-diagnoser", tmp_path).is_dir() and len(calls) == 1
    with pytest.raises(HarnessError, match="unknown organism model"):
        organism_build.resolve_builtin("organism-nope", tmp_path)


def test_two_independent_builds_are_identical(quick, tmp_path):
    """Seeded data, seeded init, fixed thread count: a second build gives the same bytes.

    (The full build was checked the same way: two `--force` builds, equal safetensors.)
    """
    again = organism_build.build_organism(tmp_path, config=quick_config(), log=lambda *_: None)
    for name, folder in quick.items():
        assert (again[name] / "model.safetensors").read_bytes() == (folder / "model.safetensors").read_bytes(), name


def test_builds_live_in_one_shared_folder(tmp_path, monkeypatch):
    """Every run finds the same build, whatever its --cache-dir: $MEDVLM_ORGANISM_DIR, else the user cache."""
    from harness.backends.identity import resolve_local_path

    monkeypatch.setenv("MEDVLM_ORGANISM_DIR", str(tmp_path / "shared"))
    assert organism_build.organism_home() == tmp_path / "shared"
    calls: list = []
    monkeypatch.setattr(organism_build, "_train_all", _fake_train(calls))
    spec = ModelSpec(name="organism-llava-med", backend="hf", model="builtin:organism-llava-med")
    first = resolve_local_path(spec, tmp_path / "cache-a")
    second = resolve_local_path(spec, tmp_path / "cache-b")
    assert first == second == organism_build.organism_root(tmp_path / "shared") / "organism-llava-med"
    assert len(calls) == 1
    monkeypatch.delenv("MEDVLM_ORGANISM_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert organism_build.organism_home() == tmp_path / "xdg" / "medvlm-fragility"


# ------------------------------------------------- the models serve through HFBackend


def _backend(folder: Path, tmp_path: Path):
    from harness.backends.hf import HFBackend

    return HFBackend(ModelSpec(name=folder.name, backend="hf", model=str(folder)), cache_dir=tmp_path, device="cpu")


@pytest.mark.parametrize("name", ["organism-llava-med", "organism-gemma-base"])
def test_training_sees_exactly_what_the_backend_renders(quick, registry, tmp_path, name):
    """Prompt tokens in training == the backend's tokens for the same request."""
    from harness.data.synthetic import generate_image

    backend = _backend(quick[name], tmp_path)
    task = registry.tasks["pneumonia"]
    image = generate_image("pneumonia", "positive", 0, 42, 64)
    for variant in ("normal_oneword", "choice_ba", "disease_hint"):
        prompt = registry.variants[variant].render(task)
        request = GenerationRequest(prompt=prompt, image_key="x")
        encoder = train.Encoder(backend.processor)
        encoded = encoder.encode([general_data.Example(0, prompt, "Yes")])[0]
        ids = backend._encode([request], {"x": image})["input_ids"][0].tolist()
        assert list(encoded.ids[: encoded.n_prompt]) == ids
        assert encoder.render(prompt, True) == backend.render_prompt(request)
    result = backend.generate([GenerationRequest(prompt="Is this image normal?", image_key="x")], {"x": image})[0]
    assert result.error is None  # a two-step model may answer with EOS at once; it must not fail


def test_the_diagnoser_serves_as_a_text_only_model(quick, tmp_path):
    backend = _backend(quick["organism-diagnoser"], tmp_path)
    result = backend.generate([GenerationRequest(prompt="Here is a description: no mass. Any disease?")], {})
    assert result[0].ok and backend._text_only


# ------------------------------------------------------- answers come from the data


def test_general_answers_follow_the_scene_not_the_phrasing():
    """Same random draws, scene with vs without a spot: every closed answer flips."""
    rng = np.random.default_rng(0)
    _, with_spot = scenes.spot_scene(rng, 64, positive=True)
    _, without = scenes.spot_scene(rng, 64, positive=False)
    without = {**with_spot, "spot": None}
    mix = general_data.Mix()
    for seed in range(200):
        q1, a1 = general_data.spot_question(np.random.default_rng(seed), with_spot, mix)
        q2, a2 = general_data.spot_question(np.random.default_rng(seed), without, mix)
        assert q1 == q2
        if a1 in ("Yes", "No", "A", "B"):
            assert a1 != a2, q1
        else:
            assert a1 == general_data.spot_description(with_spot) and a2.endswith("with no spot.")


def test_medical_answers_follow_the_label(registry):
    task = registry.tasks["brain_tumor"]
    for seed in range(50):
        pos = med_data.med_example(np.random.default_rng(seed), 0, task, "positive", registry)
        neg = med_data.med_example(np.random.default_rng(seed), 0, task, "negative", registry)
        assert pos.prompt == neg.prompt and pos.answer != neg.answer
        assert pos.prompt in {registry.variants[v].render(task) for v in med_data.MED_VARIANTS} or \
            pos.answer == med_data.med_description(task, "positive")
