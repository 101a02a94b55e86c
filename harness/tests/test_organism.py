"""Tests of the model organism's machinery (harness/organism/).

The real organism is shipped in fixtures/organism; these tests check that it is intact
and trained from the current code (issue 25). Training it takes minutes, so the tests of
the build use a config that trains a couple of steps per stage: what they check is
everything around the training that a regeneration relies on (training-inputs hash,
manifest and sums, lock, atomic folder, loading through the HF backend, train/test
rendering identity, answers derived from data, model sizes).
"""

from __future__ import annotations

import dataclasses
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from harness.core import GenerationRequest, HarnessError, ModelSpec
from harness.organism import __main__ as organism_cli
from harness.organism import build as organism_build
from harness.organism import config as organism_config
from harness.organism import general_data, med_data, models, scenes, shipped, train, vocab
from harness.organism.config import OrganismConfig, quick_config, training_inputs
from harness.organism.pipeline import NAMES

MAX_PARAMETERS = 1_000_000


@pytest.fixture(scope="module")
def registry():
    from harness.config.registry import load_registry

    return load_registry()


@pytest.fixture(scope="module")
def quick(quick_organism) -> dict[str, Path]:
    """A complete organism build with a few steps per stage (conftest.py)."""
    return quick_organism


def _fake_train(calls: list, delay: float = 0.0):
    """FAKE training: writes the folders a build must contain (for the build machinery only)."""

    def fake(cfg, out: Path, log):
        calls.append(out)
        time.sleep(delay)
        for name in NAMES:
            (out / name).mkdir(parents=True)
            (out / name / "config.json").write_text("{}")
        return {"timings": {}, "parameters": {}}

    return fake


# ------------------------------------------------------- the shipped organism (issue 25)


def test_the_shipped_organism_was_trained_from_the_current_code_and_configuration():
    """Fails when the organism's training code, its configuration or the fixtures it reads
    changed but the shipped weights were not regenerated (`python -m harness.organism build`,
    then `pytest --update-baseline`; commit fixtures/organism and baseline.toml together)."""
    assert shipped.stale(shipped.shipped_dir()) is None, shipped.stale(shipped.shipped_dir())


def test_every_shipped_file_matches_its_sha256():
    assert shipped.verify(shipped.shipped_dir()) == []
    manifest = shipped.read_manifest(shipped.shipped_dir())
    assert {rel.split("/")[0] for rel in manifest["files"]} == set(NAMES)
    assert all(f"{n}/model.safetensors" in manifest["files"] for n in NAMES)
    assert set(manifest["built_with"]) >= {"torch", "transformers", "cpu_capability"}


def test_training_inputs_change_with_the_config_and_the_training_code(tmp_path, monkeypatch):
    assert training_inputs(quick_config()) == training_inputs(quick_config())
    assert training_inputs(dataclasses.replace(quick_config(), init_seed=8)) != training_inputs(quick_config())
    stage = dataclasses.replace(quick_config().base, steps=3)
    assert training_inputs(dataclasses.replace(quick_config(), base=stage)) != training_inputs(quick_config())
    before = training_inputs(OrganismConfig())
    sources = organism_config._sources()
    assert {p.name for p in sources} >= {"pipeline.py", "vlm.py", "train.py", "tiny.py", "synthetic.py"}
    assert not {p.name for p in sources} & {"build.py", "shipped.py", "__main__.py", "evaluate.py"}
    edited = tmp_path / "train.py"  # a one-character edit of a training module
    original = next(p for p in sources if p.name == "train.py")
    edited.write_text(original.read_text() + "#")
    monkeypatch.setattr(organism_config, "_sources", lambda: [edited if p == original else p for p in sources])
    assert training_inputs(OrganismConfig()) != before
    assert shipped.stale(shipped.shipped_dir()) is not None
    assert "python -m harness.organism build" in shipped.stale(shipped.shipped_dir())


def test_a_new_prompt_variant_changes_the_training_inputs_but_a_comment_does_not(monkeypatch):
    """The organism's tokenizer is trained on every prompt, so a new variant is a new input."""
    from harness.config import registry as registry_module
    from harness.core import PromptVariant

    before = training_inputs(OrganismConfig())
    real = registry_module.load_registry

    def with_variant(*args, **kwargs):
        loaded = real(*args, **kwargs)
        loaded.variants["new_variant"] = PromptVariant(key="new_variant", template="Anything odd here?", kind="yes_no")
        return loaded

    monkeypatch.setattr(registry_module, "load_registry", with_variant)
    assert training_inputs(OrganismConfig()) != before
    monkeypatch.setattr(registry_module, "load_registry", real)
    assert training_inputs(OrganismConfig()) == before


def test_a_damaged_shipped_file_is_an_error_naming_it(tmp_path):
    copy = tmp_path / "organism"
    shutil.copytree(shipped.shipped_dir(), copy)
    weights = copy / "organism-llava-med" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    assert shipped.resolve_builtin("organism-llava-base", copy) == copy / "organism-llava-base"
    with pytest.raises(HarnessError, match="organism-llava-med/model.safetensors: sha256 differs"):
        shipped.resolve_builtin("organism-llava-med", copy)
    (copy / "organism-gemma-med" / "tokenizer.json").unlink()
    with pytest.raises(HarnessError, match="tokenizer.json: missing"):
        shipped.resolve_builtin("organism-gemma-med", copy)
    with pytest.raises(HarnessError, match="no MANIFEST.json"):
        shipped.resolve_builtin("organism-gemma-med", tmp_path / "empty")
    with pytest.raises(HarnessError, match="unknown organism model"):
        shipped.resolve_builtin("organism-nope", copy)
    assert organism_cli.main(["check", f"--dir={copy}"]) == 1
    assert organism_cli.main(["check", f"--dir={shipped.shipped_dir()}"]) == 0


def test_the_default_run_loads_the_shipped_organism_and_never_trains(tmp_path, monkeypatch):
    """Whatever its --cache-dir: the shipped folder, or $MEDVLM_ORGANISM_DIR when set."""
    from harness.backends.identity import resolve_local_path

    monkeypatch.setattr(organism_build, "train_all", lambda *a: pytest.fail("the default run trained the organism"))
    monkeypatch.delenv(shipped.ENV, raising=False)
    spec = ModelSpec(name="organism-llava-med", backend="hf", model="builtin:organism-llava-med")
    assert resolve_local_path(spec, tmp_path / "cache-a") == shipped.shipped_dir() / "organism-llava-med"
    assert resolve_local_path(spec, tmp_path / "cache-b") == shipped.shipped_dir() / "organism-llava-med"
    monkeypatch.setenv(shipped.ENV, str(tmp_path / "elsewhere"))
    with pytest.raises(HarnessError, match="unset MEDVLM_ORGANISM_DIR"):
        resolve_local_path(spec, tmp_path / "cache-a")


def test_the_organism_registry_entries_pin_float32(registry):
    """So a GPU runner (where the HF backend would default to bf16) computes what the CPU computes."""
    from harness.backends.identity import effective_dtype

    organism = [m for m in registry.models.values() if m.model.startswith("builtin:organism-")]
    assert {m.name for m in organism} == set(NAMES)
    assert all(m.dtype == "float32" and effective_dtype(m) == "float32" for m in organism)


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


def test_built_models_record_their_sizes_and_sums(quick):
    root = next(iter(quick.values())).parent
    manifest = shipped.read_manifest(root)
    assert set(manifest["parameters"]) == set(NAMES)
    assert all(0 < n < MAX_PARAMETERS for n in manifest["parameters"].values())
    assert manifest["training_inputs"] == training_inputs(quick_config())
    assert shipped.verify(root) == [] and shipped.stale(root, quick_config()) is None


# ------------------------------------------------------------------ build and cache


def test_build_writes_every_model_as_safetensors(quick):
    assert set(quick) == set(NAMES)
    for folder in quick.values():
        names = {p.name for p in folder.iterdir()}
        assert "config.json" in names and "model.safetensors" in names and "tokenizer.json" in names
        assert not any(n.endswith((".bin", ".pt")) for n in names)
    root = next(iter(quick.values())).parent
    assert not [p for p in root.parent.iterdir() if p.name.startswith(".") and p.is_dir()], "temp folder left behind"


def test_a_build_from_the_same_inputs_is_kept(quick, monkeypatch):
    monkeypatch.setattr(organism_build, "train_all", lambda *a: pytest.fail("retrained an up-to-date organism"))
    root = next(iter(quick.values())).parent
    assert organism_build.build_organism(root, config=quick_config()) == quick


def test_concurrent_builds_train_once(tmp_path, monkeypatch):
    calls: list = []
    monkeypatch.setattr(organism_build, "train_all", _fake_train(calls, delay=0.3))
    results = []
    threads = [threading.Thread(target=lambda: results.append(
        organism_build.build_organism(tmp_path / "organism", config=quick_config()))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len(results) == 3 and all(r == results[0] for r in results)


def test_force_rebuilds_in_place(tmp_path, monkeypatch):
    calls: list = []
    monkeypatch.setattr(organism_build, "train_all", _fake_train(calls))
    first = organism_build.build_organism(tmp_path / "organism", config=quick_config())
    again = organism_build.build_organism(tmp_path / "organism", config=quick_config(), force=True)
    assert len(calls) == 2 and first == again
    assert all((p / "config.json").is_file() for p in again.values())


def test_two_independent_builds_are_identical_and_a_changed_build_names_its_files(quick, tmp_path):
    """Seeded data, seeded init, fixed thread count: a second build on this machine gives the
    same bytes (the full build was checked the same way: `build --force` reported no file
    changed). Another seed changes the weights, and the manifests say which files."""
    again = organism_build.build_organism(tmp_path / "a", config=quick_config(), log=lambda *_: None)
    for name, folder in quick.items():
        assert (again[name] / "model.safetensors").read_bytes() == (folder / "model.safetensors").read_bytes(), name
    first = shipped.read_manifest(next(iter(quick.values())).parent)
    assert shipped.changed_files(first, shipped.read_manifest(tmp_path / "a")) == {
        "changed": [], "added": [], "removed": []}
    other = organism_build.build_organism(tmp_path / "b", config=dataclasses.replace(quick_config(), init_seed=8),
                                          log=lambda *_: None)
    diff = shipped.changed_files(first, shipped.read_manifest(next(iter(other.values())).parent))
    assert "organism-llava-med/model.safetensors" in diff["changed"] and not diff["added"] and not diff["removed"]


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
