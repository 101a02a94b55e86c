"""Tests of configuration as data: thresholds.toml and the model/task/prompt registry.

The loaders' promise is "validated once, every problem listed", so most tests write a
small bad file and check that *each* problem is named (with its file and key path) in
one ConfigError.
"""

from __future__ import annotations

import json
import math
import tomllib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.config import (
    DEFAULT_MODELS,
    DEFAULT_TASKS,
    FIXTURES_DIR,
    load_registry,
    load_thresholds,
    render_text,
    select,
)
from harness.config.thresholds import SCHEMA, Param
from harness.core import PERTURBATION_FAMILIES, ConfigError, Thresholds

REPO = Path(__file__).resolve().parents[2]

VARIANT_KEYS = [
    "abnormal", "abnormal_oneword", "normal", "normal_oneword", "disease", "disease_oneword",
    "disease_hint", "disease_hint_oneword", "choice_ab", "choice_ab_oneword", "choice_ba", "choice_ba_oneword",
]
EXPECTED_PAIRS = {
    "answer_format": {
        ("abnormal", "abnormal_oneword"), ("normal", "normal_oneword"), ("disease", "disease_oneword"),
        ("disease_hint", "disease_hint_oneword"), ("choice_ab", "choice_ab_oneword"), ("choice_ba", "choice_ba_oneword"),
    },
    "polarity": {("abnormal", "normal"), ("abnormal_oneword", "normal_oneword")},
    "clinical_hint": {("disease", "disease_hint"), ("disease_oneword", "disease_hint_oneword")},
    "option_order": {("choice_ab", "choice_ba"), ("choice_ab_oneword", "choice_ba_oneword")},
}


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(exc_info) -> str:
    return "\n".join(exc_info.value.problems)


@pytest.fixture(scope="module")
def registry():
    return load_registry()


# ================================================================ thresholds

def test_defaults_equal_core_thresholds():
    assert load_thresholds(None) == Thresholds()


def test_repo_thresholds_file_shows_every_key_with_its_default_and_a_comment():
    path = REPO / "thresholds.toml"
    assert load_thresholds(path) == Thresholds()
    data = tomllib.loads(path.read_text())
    lines = path.read_text().splitlines()
    for section, params in SCHEMA.items():
        table = data[section] if section else data
        for key, param in params.items():
            assert table[key] == param.default, (section, key)
            line = next(ln for ln in lines if ln.split("=")[0].strip() == key)
            assert "#" in line, f"{key} has no comment"


def test_missing_keys_take_defaults_and_int_is_accepted_for_float(tmp_path):
    path = write(tmp_path, "t.toml", 'confidence = 0.9\n[near_random]\naggregate = "median"\n'
                                      "[finetune_gain]\nceiling = 1\n")
    t = load_thresholds(path)
    assert t.confidence == 0.9 and t.near_random == {"min_margin": 0.10, "aggregate": "median"}
    assert t.finetune_gain["ceiling"] == 1.0 and isinstance(t.finetune_gain["ceiling"], float)
    assert t.generation == Thresholds().generation


def test_bad_thresholds_list_every_problem_at_once(tmp_path):
    path = write(tmp_path, "bad.toml", "confidance = 0.9\nbootstrap_replicates = true\n"
                                        "[prompt_sensitivity]\nmax_flip_rate = 1.5\n")
    with pytest.raises(ConfigError) as exc:
        load_thresholds(path)
    assert exc.value.source == str(path)
    assert len(exc.value.problems) == 3
    text = problems_of(exc)
    assert "confidance: unknown key (did you mean 'confidence'?)" in text
    assert "bootstrap_replicates: expected an integer, got boolean" in text
    assert "prompt_sensitivity.max_flip_rate: 1.5 is out of range" in text


@pytest.mark.parametrize(
    "text, expected",
    [
        ("min_margin = 0.1\n", "min_margin: unknown key; 'min_margin' belongs in [near_random]"),
        ("near_random = 3\n", "near_random: expected a table"),
        ('[near_random]\naggregate = "meen"\n', "did you mean 'mean'?"),
        ("[embedding_separability]\nfolds = 2.5\n", "embedding_separability.folds: expected an integer, got float"),
        ("confidence = 0.5\n", "confidence: 0.5 is out of range; expected 0.5 < value < 1"),
        ("confidence = nan\n", "confidence: must be finite"),
        ("[generation]\nbatch_sise = 3\n", "generation.batch_sise: unknown key (did you mean 'batch_size'?)"),
        ("[tuning]\nx = 1\n", "tuning: unknown key"),
    ],
)
def test_threshold_problem_messages(tmp_path, text, expected):
    with pytest.raises(ConfigError) as exc:
        load_thresholds(write(tmp_path, "t.toml", text))
    assert expected in problems_of(exc)


def test_old_threshold_files_are_told_what_changed(tmp_path):
    """Keys and values that changed meaning are refused with the reason, never silently reinterpreted."""
    text = ('inconclusive = "maybe"\n[near_random]\naggregate = "max"\n'
            "[prompt_sensitivity]\nmax_accuracy_swing = 0.1\nmax_refusal_swing = 0.2\n")
    with pytest.raises(ConfigError) as exc:
        load_thresholds(write(tmp_path, "old.toml", text))
    problems = problems_of(exc)
    assert "prompt_sensitivity.max_accuracy_swing: renamed to max_true_accuracy_swing" in problems
    assert "sampling noise removed" in problems
    assert "prompt_sensitivity.max_refusal_swing: renamed to max_true_refusal_swing" in problems
    assert "near_random.aggregate: 'max' was removed: a percentile bound of the maximum" in problems
    assert "inconclusive: 'maybe' is not allowed; expected one of 'fail', 'pass'" in problems


def test_new_threshold_keys_validate(tmp_path):
    t = load_thresholds(write(tmp_path, "t.toml", 'inconclusive = "pass"\n[prompt_sensitivity]\nmax_hint_harm = 0.03\n'
                                                  "[embedding_separability]\nimages_per_class = 150\ncomponents = 8\n"))
    assert t.inconclusive == "pass" and t.prompt_sensitivity["max_hint_harm"] == 0.03
    assert t.embedding_separability["images_per_class"] == 150 and t.embedding_separability["components"] == 8
    with pytest.raises(ConfigError, match="probe_replicates: 10 is out of range"):
        load_thresholds(write(tmp_path, "t2.toml", "[embedding_separability]\nprobe_replicates = 10\n"))


def test_invalid_toml_names_file_and_position(tmp_path):
    path = write(tmp_path, "broken.toml", "seed = 1\nconfidence = = 0.9\n")
    with pytest.raises(ConfigError) as exc:
        load_thresholds(path)
    assert str(path) in str(exc.value)
    assert "invalid TOML" in str(exc.value) and "line 2" in str(exc.value)


def test_missing_thresholds_file(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        load_thresholds(tmp_path / "nope.toml")


def _valid_value(p: Param):
    if p.names:  # "all" or a non-empty list of distinct names
        return st.one_of(st.just(p.default), st.lists(st.text("abc_", min_size=1, max_size=6), min_size=1, max_size=4,
                                                      unique=True))
    if p.choices:
        return st.sampled_from(p.choices)
    if isinstance(p.default, float):
        return st.floats(p.lo, p.hi, exclude_min=p.lo_open, exclude_max=p.hi_open, allow_nan=False)
    lo = -(2**31) if p.lo is None else int(p.lo)
    hi = 2**62 if p.hi is None else int(p.hi)
    return st.integers(lo, hi)


def _toml(data: dict) -> str:
    """Minimal TOML writer for the thresholds schema (scalars and one level of tables)."""
    def scalar(v):
        return json.dumps(v) if isinstance(v, (str, list)) else repr(v)

    top = [f"{k} = {scalar(v)}" for k, v in data.items() if not isinstance(v, dict)]
    tables = [f"[{s}]\n" + "\n".join(f"{k} = {scalar(v)}" for k, v in t.items())
              for s, t in data.items() if isinstance(t, dict)]
    return "\n".join(top + tables) + "\n"


def _valid_document():
    sections = {s: st.fixed_dictionaries({k: _valid_value(p) for k, p in params.items()})
                for s, params in SCHEMA.items() if s}
    return st.fixed_dictionaries({k: _valid_value(p) for k, p in SCHEMA[""].items()}, optional=sections)


FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FAST
@given(doc=_valid_document())
def test_valid_values_round_trip(tmp_path, doc):
    t = load_thresholds(write(tmp_path, "rt.toml", _toml(doc)))
    for key, value in doc.items():
        got = getattr(t, key)
        if isinstance(value, dict):
            assert {k: got[k] for k in value} == value
        else:
            assert got == value and type(got) is type(value)


def _float_params():
    return [(s, k, p) for s, params in SCHEMA.items() for k, p in params.items() if isinstance(p.default, float)]


@st.composite
def _out_of_range(draw):
    section, key, p = draw(st.sampled_from(_float_params()))
    below = st.floats(max_value=p.lo if p.lo_open else p.lo - 1e-9, allow_nan=False)
    above = st.floats(min_value=p.hi if p.hi_open else p.hi + 1e-9, allow_nan=False)
    value = draw(st.one_of(below, above, st.just(math.nan)))
    return section, key, value


@FAST
@given(case=_out_of_range())
def test_out_of_range_floats_are_rejected(tmp_path, case):
    section, key, value = case
    doc = {section: {key: value}} if section else {key: value}
    with pytest.raises(ConfigError) as exc:
        load_thresholds(write(tmp_path, "oor.toml", _toml(doc)))
    dotted = f"{section}.{key}" if section else key
    assert len(exc.value.problems) == 1 and exc.value.problems[0].startswith(dotted + ":")


# ================================================================ registry: repo files

def test_repo_registry_has_the_study_protocol(registry):
    assert list(registry.tasks) == DEFAULT_TASKS
    assert [registry.tasks[k].difficulty for k in DEFAULT_TASKS] == [1, 2, 3, 4]
    assert list(registry.variants) == VARIANT_KEYS
    assert list(registry.describe_prompts) == ["generic", "disease"]
    assert list(registry.diagnoser_templates) == ["specialist", "disease", "generic"]
    assert registry.models["llava-med-v1.5-mistral-7b"].base_model == "llava-v1.6-mistral-7b"
    assert registry.models["medgemma-4b-it"].base_model == "gemma-3-4b-it"
    assert registry.models["gemma-3-4b-it"].model == "google/gemma-3-4b-it"
    for name in DEFAULT_MODELS:
        assert registry.models[name].model == f"builtin:{name}" and registry.models[name].backend == "hf"


def test_perturbation_pairs(registry):
    assert set(EXPECTED_PAIRS) == set(PERTURBATION_FAMILIES)
    for family, pairs in EXPECTED_PAIRS.items():
        assert set(registry.pairs(family)) == pairs
        assert len(pairs) >= 2
    assert dict(registry.variants["normal"].perturbs) == {"polarity": "abnormal"}
    assert registry.variants["normal"].yes_means == "negative"
    assert registry.variants["choice_ba"].options == ("negative", "positive")


def test_every_prompt_renders_for_every_task(registry):
    for task in registry.tasks.values():
        for v in registry.variants.values():
            text = v.render(task)
            assert "{" not in text and "}" not in text and task.modality in text, (v.key, task.key)
            if v.kind == "choice":
                a, b = v.option_names(task)
                assert text.index(f"A. {a}") < text.index(f"B. {b}")
            if "hint" in v.key:
                assert task.hints in text and ".." not in text
        for t in registry.describe_prompts.values():
            assert "{" not in render_text(t, task)
        for t in registry.diagnoser_templates.values():
            text = render_text(t, task, description="A {braced} description.")
            assert "A {braced} description." in text and "yes or no" in text
    with pytest.raises(ValueError, match="description"):
        render_text(registry.diagnoser_templates["generic"], registry.tasks["pneumonia"])


def test_task_labels_and_sources(registry):
    brain, pneu, histo = registry.tasks["brain_tumor"], registry.tasks["pneumonia"], registry.tasks["histopathology"]
    assert brain.label_from_name("yes") == "positive" and brain.label_from_name("No_Tumor") == "negative"
    assert pneu.label_from_name("NORMAL") == "negative" and histo.label_from_name("1") == "positive"
    assert pneu.hf_source.label_column == "Pneumonia" and "3" in pneu.hf_source.positive_values
    assert pneu.hf_source.filters == (("Frontal/Lateral", "Frontal"),)
    assert brain.hf_source.dataset == "tanzuhuggingface/brainmri"


# ================================================================ registry: extra files

def test_models_file_overrides_whole_entry_and_extends(tmp_path):
    extra = write(tmp_path, "models.toml", """
[models.tiny-llava]
backend = "openai"
model = "served-tiny"
base_url = "http://127.0.0.1:8000/v1"

[models.my-med]
backend = "openai"
model = "my-med"
base_url = ["http://127.0.0.1:8001/v1", "http://127.0.0.1:8002/v1"]
api_key_env = "MY_KEY"
base_model = "tiny-llava"
""")
    reg = load_registry(models_files=[extra])
    over = reg.models["tiny-llava"]
    assert (over.backend, over.model, over.tags) == ("openai", "served-tiny", ())  # tags not inherited
    assert over.base_url == ("http://127.0.0.1:8000/v1",)
    assert list(reg.models).index("tiny-llava") == list(load_registry().models).index("tiny-llava")
    new = reg.models["my-med"]
    assert new.base_url == ("http://127.0.0.1:8001/v1", "http://127.0.0.1:8002/v1")
    assert (new.api_key_env, new.base_model) == ("MY_KEY", "tiny-llava")


def test_later_files_win_and_tasks_and_prompts_extend(tmp_path):
    first = write(tmp_path, "a.toml", '[models.x]\nbackend = "hf"\nmodel = "org/a"\n')
    second = write(tmp_path, "b.toml", '[models.x]\nbackend = "hf"\nmodel = "org/b"\n')
    tasks = write(tmp_path, "tasks.toml", """
[tasks.fracture]
modality = "wrist X-ray"
disease = "a fracture"
positive_name = "fracture"
negative_name = "no fracture"
difficulty = 5
hints = "a lucent line through the cortex"
""")
    prompts = write(tmp_path, "prompts.toml", """
[variants.disease]
template = "Is {disease} visible in this {modality} image?"
kind = "yes_no"

[variants.present]
template = "Is {disease} present?"
kind = "yes_no"
perturbs = { answer_format = "disease" }
""")
    reg = load_registry(models_files=[first, second], tasks_files=[tasks], prompts_file=prompts)
    assert reg.models["x"].model == "org/b"
    assert reg.tasks["fracture"].title == "Fracture" and list(reg.tasks)[-1] == "fracture"
    assert reg.variants["disease"].template.startswith("Is {disease} visible")
    assert list(reg.variants)[4] == "disease" and list(reg.variants)[-1] == "present"
    for v in reg.variants.values():
        assert "{" not in v.render(reg.tasks["fracture"])


BAD_MODELS = """
[models.a]
backend = "hff"
model = "org/a"

[models.b]
backend = "hf"

[models.c]
backend = "hf"
model = "org/c"
base_url = "http://127.0.0.1:8000/v1"
revison = "abc"
trust_remote_code = "yes"

[models.d]
backend = "openai"
model = "served"
api_key = "sk-THIS-IS-A-SECRET-123"

[models.e]
backend = "hf"
model = "org/e"
base_model = "gemma-3-4b"

[models.f]
backend = "hf"
model = "org/f"
base_model = "g"

[models.g]
backend = "hf"
model = "org/g"
base_model = "f"

[models.h]
backend = "openai"
model = "served"
base_url = "http://127.0.0.1:9000/v1"
api_key_env = "sk-ANOTHERSECRETvalue42"

[models."bad,name"]
backend = "hf"
model = "org/x"
max_new_tokens = 0
"""

BAD_TASKS = """
[tasks.t1]
modality = "CT"
disease = "a bleed"
positive_name = "bleed"
negative_name = "bleed"
difficulty = 12
hints = "hyperdense blood."
extra = 1

[tasks.t1.hf_source]
dataset = "org/ds"
positive_values = ["1"]
negative_values = ["1", "0"]
"""

BAD_PROMPTS = """
[variants.v1]
template = "Does this {modality} show {diseas}?"
kind = "yes_no"
options = ["positive", "negative"]

[variants.v2]
template = "A. {option_a} B. {option_b}"
kind = "choice"

[variants.v3]
template = "Is this {modality} image normal?"
kind = "yes_no"
perturbs = { polarty = "abnormal", answer_format = "nonexistent" }

[variants.v4]
template = "Is this {modality} image abnormal?"
kind = "yes_no"
perturbs = { polarity = "abnormal" }

[variants.v5]
template = "A. {option_a} B. {option_b}"
kind = "choice"
options = ["positive", "negative"]
perturbs = { option_order = "choice_ab" }

[describe.d1]
template = "Describe {description}."

[diagnoser.x1]
template = "Is {disease} present? Answer yes or no."
"""


def test_registry_errors_are_listed_together(tmp_path):
    models = write(tmp_path, "models.toml", BAD_MODELS)
    tasks = write(tmp_path, "tasks.toml", BAD_TASKS)
    prompts = write(tmp_path, "prompts.toml", BAD_PROMPTS)
    with pytest.raises(ConfigError) as exc:
        load_registry(models_files=[models], tasks_files=[tasks], prompts_file=prompts)
    expected = [
        (models, "models.a.backend: 'hff' is not one of 'hf', 'openai' (did you mean 'hf'?)"),
        (models, "models.b: missing required key 'model'"),
        (models, "models.c.base_url: only for backend 'openai'"),
        (models, "models.c.revison: unknown key (did you mean 'revision'?)"),
        (models, "models.c.trust_remote_code: expected true or false"),
        (models, "models.d.api_key: unknown key; secrets must never be written"),
        (models, "models.d: backend 'openai' needs base_url"),
        (models, "models.e.base_model: unknown model 'gemma-3-4b' (did you mean 'gemma-3-4b-it'?)"),
        (models, "base_model: cycle f -> g -> f"),
        (models, "models.h.api_key_env: must be the NAME of an environment variable"),
        (models, "invalid model name 'bad,name'"),
        (models, "max_new_tokens: 0 is out of range 1..4096"),
        (tasks, "tasks.t1.difficulty: 12 is out of range 1..9"),
        (tasks, "tasks.t1.extra: unknown key"),
        (tasks, "tasks.t1: ['bleed'] mean both positive and negative"),
        (tasks, "tasks.t1.hints: write a phrase without final punctuation"),
        (tasks, "tasks.t1.hf_source: values ['1'] are listed as both positive and negative"),
        (prompts, "variants.v1.template: unknown placeholder {diseas} (did you mean 'disease'?)"),
        (prompts, "variants.v1.options: only for kind 'choice'"),
        (prompts, "variants.v2: kind 'choice' needs options"),
        (prompts, "variants.v3.perturbs.polarty: unknown perturbation family (did you mean 'polarity'?)"),
        (prompts, "variants.v3.perturbs.answer_format: unknown variant 'nonexistent'"),
        (prompts, "variants.v4.perturbs.polarity: yes_means must differ"),
        (prompts, "variants.v5.perturbs.option_order: options must be the base variant's options reversed"),
        (prompts, "describe.d1.template: unknown placeholder {description}"),
        (prompts, "diagnoser.x1.template: must contain {description}"),
    ]
    for path, message in expected:
        assert any(p.startswith(str(path)) and message in p for p in exc.value.problems), message
    assert len(exc.value.problems) == len(expected)
    assert "THIS-IS-A-SECRET" not in str(exc.value) and "ANOTHERSECRET" not in str(exc.value)


def test_registry_file_errors_do_not_hide_other_files(tmp_path):
    broken = write(tmp_path, "broken.toml", "[models.x\nbackend = 'hf'\n")
    wrong_layout = write(tmp_path, "layout.toml", '[model.x]\nbackend = "hf"\nmodel = "m"\n')
    with pytest.raises(ConfigError) as exc:
        load_registry(models_files=[broken, tmp_path / "missing.toml", wrong_layout])
    text = problems_of(exc)
    assert f"{broken}: invalid TOML" in text and "line 1" in text
    assert f"{tmp_path / 'missing.toml'}: file not found" in text
    assert f"{wrong_layout}: model: unknown top-level key (did you mean 'models'?)" in text


def test_token_typo_is_suggested_not_treated_as_secret(tmp_path):
    path = write(tmp_path, "m.toml", '[models.x]\nbackend = "hf"\nmodel = "m"\nmax_new_token = 4\n')
    with pytest.raises(ConfigError, match="did you mean 'max_new_tokens'"):
        load_registry(models_files=[path])


# ================================================================ select

def test_select_defaults_order_and_unknown_names(registry):
    assert [m.name for m in select(registry, None, "models")] == DEFAULT_MODELS
    assert [t.key for t in select(registry, None, "tasks")] == DEFAULT_TASKS
    chosen = select(registry, ["pneumonia,brain_tumor", "pneumonia"], "tasks")
    assert [t.key for t in chosen] == ["pneumonia", "brain_tumor"]
    with pytest.raises(ConfigError) as exc:
        select(registry, ["medgema-4b-it", "tiny-llava", "nope"], "models")
    assert exc.value.source == "--models" and len(exc.value.problems) == 2
    assert "did you mean 'medgemma-4b-it'?" in exc.value.problems[0]
    with pytest.raises(ConfigError, match="no tasks selected"):
        select(registry, [" , "], "tasks")
    with pytest.raises(ValueError):
        select(registry, None, "variants")


def test_fixtures_dir_is_the_repo_fixtures():
    assert FIXTURES_DIR == REPO / "fixtures"


@pytest.mark.parametrize("value, problem", [
    ([], "an empty list asks nothing"), (["a", "a"], "names one entry twice"), ("some", 'expected "all" or a list'),
    ([1], 'expected "all" or a list'), (3, 'expected "all" or a list')])
def test_a_list_of_names_is_all_or_distinct_names(tmp_path, value, problem):
    text = "[image_reliance]\nvariants = " + json.dumps(value) + "\n"
    with pytest.raises(ConfigError, match=problem):
        load_thresholds(write(tmp_path, "v.toml", text))
    assert load_thresholds(write(tmp_path, "ok.toml", '[image_reliance]\nvariants = ["a", "b"]\n')).image_reliance[
        "variants"] == ["a", "b"]
