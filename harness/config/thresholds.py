"""thresholds.toml: the numbers every verdict is compared against, validated once.

A typo in a threshold file must never silently fall back to a default (a gate that
quietly uses 0.10 instead of the intended 0.05 is worse than no gate), so every key is
checked against one schema table and *all* problems are reported together, each with
its dotted key path, before any model is loaded.

The schema below is the single source of truth for names, types, ranges and defaults;
`harness.core.Thresholds` is the validated result.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from harness.config.schema import did_you_mean, read_toml, type_name
from harness.core import ConfigError, Thresholds

__all__ = ["Param", "SCHEMA", "load_thresholds", "default_thresholds", "validate_thresholds"]


@dataclass(frozen=True)
class Param:
    """One threshold key: its default (whose type is the key's type) and allowed values.

    `lo`/`hi` bound numbers (inclusive unless `*_open`); `choices` lists allowed
    strings. `doc` says what the key means and its unit (shown in error messages).
    """

    default: Any
    lo: Optional[float] = None
    hi: Optional[float] = None
    lo_open: bool = False
    hi_open: bool = False
    choices: tuple[str, ...] = ()
    doc: str = ""
    names: bool = False  # "all" or a non-empty list of names (checked against the registry by the suite)

    @property
    def kind(self) -> type:
        return type(self.default)

    def range_text(self) -> str:
        """Human-readable allowed range, e.g. '0.5 < value < 1' or 'one of mean, median'."""
        if self.choices:
            return "one of " + ", ".join(repr(c) for c in self.choices)
        parts = []
        if self.lo is not None:
            parts.append(f"{self.lo:g} {'<' if self.lo_open else '<='} ")
        parts.append("value")
        if self.hi is not None:
            parts.append(f" {'<' if self.hi_open else '<='} {self.hi:g}")
        return "".join(parts)


_UNIT = "a fraction in [0, 1]"

# Section "" holds the top-level keys; every other section is a [table] of the same name
# and becomes the dict field of the same name on core.Thresholds.
SCHEMA: dict[str, dict[str, Param]] = {
    "": {
        "confidence": Param(0.95, 0.5, 1.0, lo_open=True, hi_open=True, doc="one-sided confidence level of every bound"),
        "bootstrap_replicates": Param(2000, 100, 100_000, doc="bootstrap resamples (images are the unit)"),
        "seed": Param(12345, 0, None, doc="seed of the bootstrap and of sampling"),
        "max_error_rate": Param(0.05, 0.0, 1.0, doc="share of backend errors above which a test errors"),
        "inconclusive": Param("fail", choices=("fail", "pass"), doc="whether an inconclusive verdict fails the gate"),
    },
    "near_random": {
        "min_margin": Param(0.10, 0.0, 0.5, doc="balanced-accuracy margin above chance (0.5)"),
        "aggregate": Param("mean", choices=("mean", "median"), doc="how variants are aggregated"),
    },
    "finetune_gain": {
        "min_gain": Param(0.0, -1.0, 1.0, doc="required lower bound of BA(model) - BA(base)"),
        "ceiling": Param(0.95, 0.0, 1.0, doc="base BA at or above which non-inferiority is tested"),
        "noninferiority_margin": Param(0.02, 0.0, 1.0, doc="allowed BA loss when the base is at ceiling"),
    },
    "regression": {
        "max_ba_loss": Param(0.03, 0.0, 1.0, doc="non-inferiority margin: BA the new version may lose against its "
                                                 "previous one"),
        "max_refusal_increase": Param(0.03, 0.0, 1.0, doc="margin for the refusal rate, " + _UNIT),
        "max_flip_increase": Param(0.03, 0.0, 1.0, doc="margin for the answer flip rate, " + _UNIT),
        "max_swing_increase": Param(0.10, 0.0, 1.0, doc="margin for the noise-free accuracy swing, " + _UNIT),
        "max_gap_increase": Param(0.10, 0.0, 1.0, doc="margin for the knowledge gap, " + _UNIT),
    },
    "prompt_sensitivity": {
        "max_true_accuracy_swing": Param(0.10, 0.0, 1.0, doc="noise-free swing of BA over variants, " + _UNIT),
        "max_true_refusal_swing": Param(0.10, 0.0, 1.0, doc="noise-free swing of the refusal rate, " + _UNIT),
        "max_flip_rate": Param(0.10, 0.0, 1.0, doc="share of answered images whose answer flips, " + _UNIT),
        "max_hint_harm": Param(0.05, 0.0, 1.0, doc="BA a clinical hint may cost, " + _UNIT),
    },
    "description_recovery": {
        "max_latent_gap": Param(0.10, 0.0, 1.0, doc="BA(descriptions) - BA(direct answers)"),
    },
    "image_reliance": {
        "max_unchanged_without_image": Param(0.90, 0.0, 1.0, doc="share of answers that stay the same when a "
                                                                 "content-free image replaces the real one, " + _UNIT),
        "max_blind_margin": Param(0.05, 0.0, 0.5, doc="balanced accuracy above chance (0.5) that answers about "
                                                      "content-free images may reach"),
        "variants": Param("all", names=True, doc="prompt variants (keys in the prompts file) asked with the content-free images; "
                                  "\"all\" or a list"),
    },
    "embedding_separability": {
        "min_probe_auroc": Param(0.75, 0.5, 1.0, doc="probe AUROC lower bound"),
        "max_reasoning_gap": Param(0.10, 0.0, 1.0, doc="probe BA - answer BA"),
        "features": Param("selected", choices=("selected", "projector", "hidden"),
                          doc="which image features the probe reads: what the projector receives, its output, "
                              "or the raw hidden layer `layer`"),
        "layer": Param(-1, None, None, doc="vision-encoder layer index for features = \"hidden\" (negative counts "
                                           "from the end)"),
        "pooling": Param("mean", choices=("mean", "cls", "max"), doc="how patch embeddings are pooled"),
        "folds": Param(5, 2, 20, doc="stratified cross-validation folds"),
        "images_per_class": Param(300, 1, 100_000, doc="images per class embedded for the probe (at least --n-per-class)"),
        "probe_replicates": Param(400, 50, 100_000, doc="bootstrap replicates of the refitted probe"),
        "components": Param(32, 1, 1024, doc="principal components the probe reads"),
    },
    "sequential": {
        "max_n_per_class": Param(300, 0, 100_000, doc="images per class of the last look: an undecided verdict draws "
                                                       "more images up to this (at most --n-per-class: one look)"),
        "step_per_class": Param(50, 1, 100_000, doc="images per class added at each further look"),
        "spending_gamma": Param(2.0, -10.0, 10.0, doc="Hwang-Shih-DeCani parameter of the error spent per look "
                                                      "(> 0 spends early)"),
        "min_decide_chance": Param(0.05, 0.0, 1.0, doc="an undecided verdict draws more images only if, were its "
                                                      "estimate the truth, the last look would decide it with at "
                                                      "least this chance"),
    },
    "generation": {
        "max_new_tokens": Param(8, 1, 4096, doc="tokens generated for a closed-form answer"),
        "reask_max_new_tokens": Param(64, 1, 4096, doc="tokens for asking again an answer cut off at max_new_tokens "
                                                        "that does not parse"),
        "last_reask_max_new_tokens": Param(256, 1, 4096, doc="tokens for the last re-ask, when the first re-ask was "
                                                             "cut off too"),
        "describe_max_new_tokens": Param(96, 1, 4096, doc="tokens generated for a description"),
        "batch_size": Param(16, 1, 4096, doc="prompts per batch for in-process models"),
    },
}


def _check_value(dotted: str, value: Any, param: Param) -> tuple[Any, Optional[str]]:
    """Validate one value against its Param; returns (normalised value, problem or None).

    bool is rejected where a number is expected (TOML `true` is not 1); an integer is
    accepted where a float is expected and converted.
    """
    kind = param.kind
    if param.names and value != param.default:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            return None, f"{dotted}: expected \"all\" or a list of names, got {type_name(value)} {value!r}"
        if not value:
            return None, f"{dotted}: an empty list asks nothing; name at least one, or delete the key for all"
        if len(set(value)) < len(value):
            return None, f"{dotted}: {value!r} names one entry twice"
        return list(value), None
    if isinstance(value, bool) or not (isinstance(value, kind) or (kind is float and isinstance(value, int))):
        want = {float: "a number", int: "an integer", str: "a string"}[kind]
        return None, f"{dotted}: expected {want}, got {type_name(value)} {value!r}"
    if kind is float:
        value = float(value)
        if not math.isfinite(value):
            return None, f"{dotted}: must be finite, got {value!r} (allowed: {param.range_text()})"
    if param.choices:
        if f"{dotted}={value}" in MIGRATIONS:
            return None, f"{dotted}: {MIGRATIONS[f'{dotted}={value}']}"
        if value not in param.choices:
            return None, f"{dotted}: {value!r} is not allowed; expected {param.range_text()}{did_you_mean(value, param.choices)}"
        return value, None
    if not _in_range(value, param):
        return None, f"{dotted}: {value!r} is out of range; expected {param.range_text()} ({param.doc})"
    return value, None


def _in_range(value: float, p: Param) -> bool:
    if p.lo is not None and (value <= p.lo if p.lo_open else value < p.lo):
        return False
    if p.hi is not None and (value >= p.hi if p.hi_open else value > p.hi):
        return False
    return True


# Keys and values that earlier versions accepted, with what became of them: an old file
# gets this explanation instead of a bare "unknown key", so no threshold silently changes
# meaning.
MIGRATIONS: dict[str, str] = {
    "prompt_sensitivity.max_accuracy_swing": (
        "renamed to max_true_accuracy_swing: the swing is now the spread of the *true* per-prompt balanced "
        "accuracy with the sampling noise removed (the old max − min of 12 noisy estimates failed robust "
        "models on most runs); it keeps its unit (BA points), so check the value and rename the key"),
    "prompt_sensitivity.max_refusal_swing": (
        "renamed to max_true_refusal_swing: the refusal swing is now the spread of the true per-prompt "
        "refusal rate with the sampling noise removed; check the value and rename the key"),
    "near_random.aggregate=max": (
        "'max' was removed: a percentile bound of the maximum over prompts is biased upwards and passed "
        "models at the threshold 33-100 % of the time; use 'mean' (default) or 'median'"),
}


def _unknown_key(dotted: str, key: str, local: dict[str, Param], section: str) -> str:
    """Message for a key not in the schema, pointing to where it belongs if it exists elsewhere."""
    if dotted in MIGRATIONS:
        return f"{dotted}: {MIGRATIONS[dotted]}"
    elsewhere = [s for s, params in SCHEMA.items() if s != section and key in params]
    if elsewhere:
        home = elsewhere[0]
        return f"{dotted}: unknown key; {key!r} belongs " + (f"in [{home}]" if home else "at the top level")
    candidates = list(local) + ([s for s in SCHEMA if s] if section == "" else [])
    return f"{dotted}: unknown key{did_you_mean(key, candidates)}"


def _validate_section(section: str, data: dict, problems: list[str]) -> dict[str, Any]:
    """Validate the keys of one section; returns the section's values with defaults filled in."""
    params = SCHEMA[section]
    values = {k: p.default for k, p in params.items()}
    for key, raw in data.items():
        dotted = f"{section}.{key}" if section else key
        if section == "" and key in SCHEMA and key:
            continue  # a table, validated separately
        if key not in params:
            problems.append(_unknown_key(dotted, key, params, section))
            continue
        value, problem = _check_value(dotted, raw, params[key])
        if problem:
            problems.append(problem)
        else:
            values[key] = value
    return values


def validate_thresholds(data: dict, problems: list[str]) -> Thresholds:
    """Turn a parsed thresholds document into Thresholds, appending every problem found."""
    top = _validate_section("", data, problems)
    tables: dict[str, dict] = {}
    for section in (s for s in SCHEMA if s):
        raw = data.get(section, {})
        if not isinstance(raw, dict):
            problems.append(f"{section}: expected a table [{section}], got {type_name(raw)} {raw!r}")
            raw = {}
        tables[section] = _validate_section(section, raw, problems)
    return Thresholds(**top, **tables)


def default_thresholds() -> Thresholds:
    """The schema's defaults (identical to core.Thresholds(); a test keeps them in sync)."""
    return validate_thresholds({}, [])


def load_thresholds(path: Optional[Path] = None) -> Thresholds:
    """Load and validate a thresholds file; None gives the defaults.

    Missing keys take their defaults. Raises ConfigError(str(path), problems) listing
    every unknown key, wrong type, out-of-range value or TOML syntax error at once.
    """
    if path is None:
        return default_thresholds()
    path = Path(path)
    data, problem = read_toml(path)
    if data is None:
        raise ConfigError(str(path), [problem])
    problems: list[str] = []
    result = validate_thresholds(data, problems)
    if problems:
        raise ConfigError(str(path), problems)
    return result
