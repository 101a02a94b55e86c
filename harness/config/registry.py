"""The registry: models, tasks and prompts as data (fixtures/*.toml plus user files).

Adding a model, a task or a prompt variant is one TOML entry, never code. Because a
registry typo would otherwise surface as a confusing failure deep inside a long GPU
run, everything is validated once, up front, and *every* problem is reported in one
ConfigError, each prefixed with its file and key path.

Files and layout:
  models files   [models.<name>]      -> ModelSpec
  tasks files    [tasks.<key>]        -> TaskSpec   ([tasks.<key>.hf_source] -> HFSource)
  prompts file   [variants.<key>]     -> PromptVariant (order in the file is kept)
                 [describe.<key>]     -> TextTemplate (describe prompts)
                 [diagnoser.<key>]    -> TextTemplate (text-only diagnoser templates)

The repo's fixtures/models.toml, tasks.toml and prompts.toml are always loaded first,
then the extra files in order. A later entry with the same name replaces the earlier
one WHOLE (no field-by-field merge), so an override never inherits a stale base_url or
revision from the entry it replaces; it keeps the earlier entry's position in order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Sequence

from harness.config.prompts import (
    DIAGNOSER_PLACEHOLDERS,
    TASK_PLACEHOLDERS,
    VARIANT_PLACEHOLDERS,
    build_variant,
    perturbs_problems,
    perturbs_refs,
    render_text,
    text_builder,
)
from harness.config.schema import KEY_NAME, SECRET_MSG, Key, check_entry, did_you_mean, read_toml, type_name
from harness.core import ConfigError, HFSource, ModelSpec, PromptVariant, TaskSpec, TextTemplate

__all__ = [
    "Registry", "load_registry", "select", "render_text", "FIXTURES_DIR",
    "DEFAULT_MODELS", "DEFAULT_TASKS", "BACKENDS", "DTYPES",
    "TASK_PLACEHOLDERS", "VARIANT_PLACEHOLDERS", "DIAGNOSER_PLACEHOLDERS",
]

FIXTURES_DIR = Path(__file__).resolve().parents[2] / "fixtures"
# The embedded model organism (SPEC section 7): two families, each a base and its medical variant.
DEFAULT_MODELS = ["organism-llava-base", "organism-llava-med", "organism-gemma-base", "organism-gemma-med",
                  "organism-gemma-med-v2"]
DEFAULT_TASKS = ["brain_tumor", "pneumonia", "skin_cancer", "histopathology"]

BACKENDS = ("hf", "openai")
DTYPES = ("auto", "float32", "float16", "bfloat16")

# Model names appear in --models a,b and test ids: no commas, spaces or brackets.
_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

MODEL_KEYS = {
    "backend": Key("str", required=True, choices=BACKENDS),
    "model": Key("str", required=True),
    "revision": Key("str"),
    "base_url": Key("urls"),
    "api_key_env": Key("str", secret=True),
    "base_model": Key("str"),
    "previous": Key("str"),
    "trust_remote_code": Key("bool"),
    "dtype": Key("str", choices=DTYPES),
    "max_new_tokens": Key("int", lo=1, hi=4096),
    "reask": Key("bool"),
    "chat_template": Key("str"),
    "image_processor": Key("table"),
    "snapshot": Key("str"),
    "batch_size": Key("int", lo=1, hi=4096),
    "tags": Key("str_list"),
    "concurrency": Key("int", lo=1, hi=1024),
    "max_retries": Key("int", lo=0, hi=100),
}
# Number-valued model keys (schema.Key has no float kind): checked in _build_model.
MODEL_FLOAT_KEYS = ("timeout_s",)
TASK_KEYS = {
    "title": Key("str"),
    "modality": Key("str", required=True),
    "disease": Key("str", required=True),
    "positive_name": Key("str", required=True),
    "negative_name": Key("str", required=True),
    "difficulty": Key("int", required=True, lo=1, hi=9),
    "hints": Key("str", required=True),
    "positive_aliases": Key("str_list"),
    "negative_aliases": Key("str_list"),
    "hf_source": Key("table"),
}
HF_SOURCE_KEYS = {
    "dataset": Key("str", required=True),
    "split": Key("str"),
    "image_column": Key("str"),
    "label_column": Key("str"),
    "positive_values": Key("values", required=True),
    "negative_values": Key("values", required=True),
    "filters": Key("filters"),
}
SECTIONS = {"models": ("models",), "tasks": ("tasks",), "prompts": ("variants", "describe", "diagnoser")}


@dataclass
class Registry:
    """Every model, task, prompt variant and text template known to this run."""

    models: dict[str, ModelSpec] = field(default_factory=dict)
    tasks: dict[str, TaskSpec] = field(default_factory=dict)
    variants: dict[str, PromptVariant] = field(default_factory=dict)  # in file order
    describe_prompts: dict[str, TextTemplate] = field(default_factory=dict)
    diagnoser_templates: dict[str, TextTemplate] = field(default_factory=dict)

    def pairs(self, family: str) -> list[tuple[str, str]]:
        """(base variant key, perturbed variant key) for one perturbation family."""
        return [(dict(v.perturbs)[family], k) for k, v in self.variants.items() if family in dict(v.perturbs)]


# ---------------------------------------------------------------- entry builders
# Each builder validates one entry and returns its spec, or None when it has problems
# (which it appends). Cross-entry checks (base_model, perturbs) run after merging.

_LOOKS_SECRET = re.compile(r"^(sk-|hf_|ghp_|gho_|github_pat_|xox[abp]-|AKIA)")


def _looks_like_secret(value: str) -> bool:
    """True for a value that looks like a credential rather than a variable name."""
    mixed = any(c.islower() for c in value) and any(c.isupper() for c in value) and any(c.isdigit() for c in value)
    return bool(_LOOKS_SECRET.match(value)) or (len(value) >= 24 and mixed) or not _ENV_NAME.match(value)


def _check_urls(where: str, urls: Iterable[str], problems: list[str]) -> None:
    """base_url must be http(s) and must not embed credentials (they would reach logs)."""
    for url in urls:
        m = re.match(r"^https?://([^/\s]+)", url)
        if not m:
            problems.append(f"{where}.base_url: {url!r} is not an http:// or https:// URL")
        elif "@" in m.group(1):
            problems.append(f"{where}.base_url: must not embed credentials (user:password@); {SECRET_MSG}")


def _build_model(where: str, name: str, entry: Any, problems: list[str]) -> Optional[ModelSpec]:
    before = len(problems)
    if not _MODEL_NAME.match(name):
        problems.append(f"{where}: invalid model name {name!r}; use letters, digits, '.', '_' or '-' "
                        "(names appear in --models a,b and in test ids)")
    floats = {k: x for k, x in entry.items() if k in MODEL_FLOAT_KEYS} if isinstance(entry, dict) else {}
    rest = {k: x for k, x in entry.items() if k not in floats} if isinstance(entry, dict) else entry
    v = check_entry(where, rest, MODEL_KEYS, problems)
    if v is None:
        return None
    for k, value in floats.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf"):
            problems.append(f"{where}.{k}: expected a number of seconds > 0, got {value!r}")
        else:
            v[k] = float(value)
    backend = v.get("backend")
    if backend == "hf" and "base_url" in entry:
        problems.append(f"{where}.base_url: only for backend 'openai' (an 'hf' model runs in-process)")
    if backend == "openai" and "base_url" not in entry:
        problems.append(f"{where}: backend 'openai' needs base_url, e.g. \"http://127.0.0.1:8000/v1\"")
    _check_urls(where, v.get("base_url", ()), problems)
    for k in ("chat_template", "image_processor", "snapshot"):
        if k in v and backend != "hf":
            problems.append(f"{where}.{k}: only for backend 'hf' (a served model's template is the server's)")
    if "chat_template" in v:
        template = _project_path(v["chat_template"])
        if not template.is_file():
            problems.append(f"{where}.chat_template: {v['chat_template']!r} is not a file (a path relative to the "
                            f"project root, e.g. \"fixtures/checkpoints/<name>/template.jinja\")")
        v["chat_template"] = str(template)
    if "snapshot" in v and not (FIXTURES_DIR / "checkpoints" / v["snapshot"] / "checkpoint.json").is_file():
        problems.append(f"{where}.snapshot: no checkpoint snapshot {v['snapshot']!r} under fixtures/checkpoints/")
    if "api_key_env" in v and _looks_like_secret(v["api_key_env"]):
        problems.append(f"{where}.api_key_env: must be the NAME of an environment variable "
                        "(letters, digits, underscores), and this value looks like a key itself; " + SECRET_MSG)
    return ModelSpec(name=name, **v) if len(problems) == before else None


def _project_path(value: str) -> Path:
    """A path from a registry entry: absolute, or relative to the project root."""
    path = Path(value).expanduser()
    return path if path.is_absolute() else FIXTURES_DIR.parent / path


def _build_hf_source(where: str, entry: Any, problems: list[str]) -> Optional[HFSource]:
    before = len(problems)
    v = check_entry(where, entry, HF_SOURCE_KEYS, problems)
    if v is None:
        return None
    both = set(v.get("positive_values", ())) & set(v.get("negative_values", ()))
    if both:
        problems.append(f"{where}: values {sorted(both)} are listed as both positive and negative")
    return HFSource(**v) if len(problems) == before else None


def _alias_problems(where: str, v: dict) -> list[str]:
    """Positive and negative names/aliases must not overlap, or label_from_name would be
    ambiguous (it checks positive first, silently winning)."""
    pos = {"positive", "1", v.get("positive_name", "")} | set(v.get("positive_aliases", ()))
    neg = {"negative", "0", v.get("negative_name", "")} | set(v.get("negative_aliases", ()))
    both = {a.strip().lower() for a in pos} & {a.strip().lower() for a in neg}
    both.discard("")
    return [f"{where}: {sorted(both)} mean both positive and negative (names/aliases overlap)"] if both else []


def _build_task(where: str, key: str, entry: Any, problems: list[str]) -> Optional[TaskSpec]:
    before = len(problems)
    if not KEY_NAME.match(key):
        problems.append(f"{where}: invalid task key {key!r}; use letters, digits and '_' (it becomes a pytest marker)")
    v = check_entry(where, entry, TASK_KEYS, problems)
    if v is None:
        return None
    hf = _build_hf_source(f"{where}.hf_source", v.pop("hf_source"), problems) if "hf_source" in v else None
    problems.extend(_alias_problems(where, v))
    if v.get("hints", "").rstrip().endswith((".", "!", "?", ";")):
        problems.append(f"{where}.hints: write a phrase without final punctuation; templates add it "
                        "(e.g. \"Look for {hints}.\")")
    title = v.pop("title", key.replace("_", " ").capitalize())
    return TaskSpec(key=key, title=title, hf_source=hf, **v) if len(problems) == before else None


BUILDERS: dict[str, Callable] = {
    "models": _build_model,
    "tasks": _build_task,
    "variants": build_variant,
    "describe": text_builder(TASK_PLACEHOLDERS),
    "diagnoser": text_builder(DIAGNOSER_PLACEHOLDERS, required=("description",)),
}


# ---------------------------------------------------------------- cross-entry checks

def _base_model_ref(entry: Any) -> Optional[str]:
    """The raw base_model of an entry, read even when the entry has other problems."""
    base = entry.get("base_model") if isinstance(entry, dict) else None
    return base if isinstance(base, str) and base else None


def _base_model_problems(bases: dict[str, Optional[str]], origin: dict) -> list[str]:
    """base_model must name a registered model, and chains of base models must end.

    `bases` maps every declared model name to its base_model (or None).
    """
    out = []
    for name, base in bases.items():
        if base is not None and base not in bases:
            out.append(f"{origin[name]}: models.{name}.base_model: unknown model {base!r}{did_you_mean(base, bases)}")
    reported: set[frozenset] = set()
    for start in bases:
        chain, cur = [], start
        while cur in bases and cur not in chain:
            chain.append(cur)
            cur = bases[cur]
        if cur in chain and frozenset(chain[chain.index(cur):]) not in reported:
            cycle = chain[chain.index(cur):]
            reported.add(frozenset(cycle))
            out.append(f"{origin[cycle[0]]}: models.{cycle[0]}.base_model: cycle " + " -> ".join(cycle + [cycle[0]]))
    return out


def _previous_problems(models: dict, origin: dict) -> list[str]:
    """`previous` must name another registered model (the version this one replaces)."""
    out = []
    for name, spec in models.items():
        previous = getattr(spec, "previous", None)
        if previous is None:
            continue
        if previous == name:
            out.append(f"{origin[name]}: models.{name}.previous: a model cannot replace itself")
        elif previous not in models:
            out.append(f"{origin[name]}: models.{name}.previous: unknown model {previous!r}"
                       f"{did_you_mean(previous, models)}")
    return out


# Cross-entry references read from the raw entries (valid or not): section -> extractor.
REFS: dict[str, Callable[[Any], Any]] = {"models": _base_model_ref, "variants": perturbs_refs}


# ---------------------------------------------------------------- loading

def _load_file(path: Path, kind: str, merged: dict, refs: dict, origin: dict, problems: list[str]) -> None:
    """Validate one file's entries into `merged[section]` (None for an invalid entry, so
    that references to it do not add 'unknown' noise) and record their cross-entry
    references in `refs`; later files replace whole entries."""
    data, problem = read_toml(path)
    if data is None:
        problems.append(f"{path}: {problem}")
        return
    allowed = SECTIONS[kind]
    for section, entries in data.items():
        if section not in allowed:
            layout = ", ".join(f"[{s}.<name>]" for s in allowed)
            problems.append(f"{path}: {section}: unknown top-level key{did_you_mean(section, allowed)}; "
                            f"a {kind} file holds {layout}")
            continue
        if not isinstance(entries, dict):
            problems.append(f"{path}: {section}: expected tables [{section}.<name>], got {type_name(entries)}")
            continue
        for name, entry in entries.items():
            merged[section][name] = BUILDERS[section](f"{path}: {section}.{name}", name, entry, problems)
            origin[section][name] = str(path)
            if section in REFS:
                refs[section][name] = REFS[section](entry)


def load_registry(
    models_files: Sequence[Path] = (),
    tasks_files: Sequence[Path] = (),
    prompts_file: Optional[Path] = None,
) -> Registry:
    """Load the repo's fixtures, then the extra files in order, and validate everything.

    A later entry with the same name overrides the earlier one WHOLE. Raises one
    ConfigError listing every problem (file and key path) across all files.
    """
    plan = [(FIXTURES_DIR / "models.toml", "models"), (FIXTURES_DIR / "tasks.toml", "tasks"),
            (FIXTURES_DIR / "prompts.toml", "prompts")]
    plan += [(Path(p), "models") for p in models_files] + [(Path(p), "tasks") for p in tasks_files]
    if prompts_file is not None:
        plan.append((Path(prompts_file), "prompts"))
    merged: dict[str, dict] = {s: {} for s in BUILDERS}
    origin: dict[str, dict] = {s: {} for s in BUILDERS}
    refs: dict[str, dict] = {s: {} for s in REFS}
    problems: list[str] = []
    for path, kind in plan:
        _load_file(path, kind, merged, refs, origin, problems)
    problems += _base_model_problems(refs["models"], origin["models"])
    problems += _previous_problems(merged["models"], origin["models"])
    problems += perturbs_problems(merged["variants"], refs["variants"], origin["variants"])
    if problems:
        raise ConfigError("registry (models, tasks, prompts)", _by_file(problems, [p for p, _ in plan]))
    return Registry(models=merged["models"], tasks=merged["tasks"], variants=merged["variants"],
                    describe_prompts=merged["describe"], diagnoser_templates=merged["diagnoser"])


def _by_file(problems: list[str], paths: list[Path]) -> list[str]:
    """Group problems by file, in loading order (cross-entry checks run last)."""
    def rank(problem: str) -> int:
        return next((i for i, p in enumerate(paths) if problem.startswith(f"{p}:")), len(paths))
    return sorted(problems, key=rank)


def select(registry: Registry, names: Optional[Sequence[str]], kind: str) -> list:
    """The specs named on the command line (None: the defaults), in the order given.

    Items may themselves be comma-separated ("a,b"); duplicates are dropped. Raises
    ConfigError listing every unknown name with a suggestion.
    """
    if kind not in ("models", "tasks"):
        raise ValueError(f"kind must be 'models' or 'tasks', not {kind!r}")
    pool = registry.models if kind == "models" else registry.tasks
    if names is None:
        names = DEFAULT_MODELS if kind == "models" else DEFAULT_TASKS
    chosen = list(dict.fromkeys(n.strip() for item in names for n in item.split(",") if n.strip()))
    if not chosen:
        raise ConfigError(f"--{kind}", [f"no {kind} selected"])
    singular = kind[:-1]
    unknown = [f"unknown {singular} {n!r}{did_you_mean(n, pool)}; known: {', '.join(pool)}"
               for n in chosen if n not in pool]
    if unknown:
        raise ConfigError(f"--{kind}", unknown)
    return [pool[n] for n in chosen]
