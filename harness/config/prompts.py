"""Prompt variants, describe prompts and diagnoser templates: validation and rendering.

Split from registry.py because prompts carry their own rules: which placeholders a
template may use, which fields each kind (yes_no / choice) takes, and what each
perturbation family may change between a variant and its base. A pair that changed
something else would measure a different fragility under the family's name, so these
rules are checked at load time rather than trusted.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

from harness.config.schema import KEY_NAME, Key, check_entry, did_you_mean, placeholder_problems, placeholders, type_name
from harness.core import LABELS, PERTURBATION_FAMILIES, PromptVariant, TaskSpec, TextTemplate

__all__ = [
    "TASK_PLACEHOLDERS", "VARIANT_PLACEHOLDERS", "DIAGNOSER_PLACEHOLDERS", "FAMILY_RULES",
    "build_variant", "text_builder", "perturbs_refs", "perturbs_problems", "render_text",
]

TASK_PLACEHOLDERS = ("modality", "disease", "hints", "positive", "negative")
VARIANT_PLACEHOLDERS = TASK_PLACEHOLDERS + ("option_a", "option_b")
DIAGNOSER_PLACEHOLDERS = TASK_PLACEHOLDERS + ("description",)

VARIANT_KEYS = {
    "template": Key("str", required=True),
    "kind": Key("str", required=True, choices=("yes_no", "choice")),
    "yes_means": Key("str", choices=LABELS),
    "options": Key("str_list"),
    "perturbs": Key("table"),
}
TEXT_KEYS = {"template": Key("str", required=True)}


def _check_perturbs(where: str, table: dict, problems: list[str]) -> tuple[tuple[str, str], ...]:
    """Families must be known; whether the base variants exist is checked after merging."""
    out = []
    for family, base in table.items():
        if family not in PERTURBATION_FAMILIES:
            problems.append(f"{where}.perturbs.{family}: unknown perturbation family{did_you_mean(family, PERTURBATION_FAMILIES)}; "
                            f"known: {', '.join(PERTURBATION_FAMILIES)}")
        elif not isinstance(base, str) or not base:
            problems.append(f"{where}.perturbs.{family}: expected the key of a variant, got {type_name(base)} {base!r}")
        else:
            out.append((family, base))
    return tuple(out)


def _kind_problems(where: str, v: dict, entry: dict) -> list[str]:
    """yes_no and choice variants take different fields; the template must match the kind."""
    kind, used = v.get("kind"), placeholders(v.get("template", ""))
    if kind == "yes_no":
        out = [f"{where}.options: only for kind 'choice'"] if "options" in entry else []
        if used & {"option_a", "option_b"}:
            out.append(f"{where}.template: {{option_a}}/{{option_b}} are only for kind 'choice'")
        return out
    if kind != "choice":
        return []
    out = [f"{where}.yes_means: only for kind 'yes_no' (a choice variant maps labels with options)"] if "yes_means" in entry else []
    if "options" not in entry:
        out.append(f"{where}: kind 'choice' needs options = [\"positive\", \"negative\"] (in either order)")
    elif "options" in v and sorted(v["options"]) != sorted(LABELS):
        out.append(f"{where}.options: must be \"positive\" and \"negative\" in some order, got {list(v['options'])}")
    if not {"option_a", "option_b"} <= used:
        out.append(f"{where}.template: kind 'choice' must show both {{option_a}} and {{option_b}}")
    return out


def build_variant(where: str, key: str, entry: Any, problems: list[str]) -> Optional[PromptVariant]:
    """One [variants.<key>] entry -> PromptVariant, or None with its problems appended."""
    before = len(problems)
    if not KEY_NAME.match(key):
        problems.append(f"{where}: invalid variant key {key!r}; use letters, digits and '_'")
    v = check_entry(where, entry, VARIANT_KEYS, problems)
    if v is None:
        return None
    if "template" in v:
        problems.extend(f"{where}.template: {p}" for p in placeholder_problems(v["template"], VARIANT_PLACEHOLDERS))
    problems.extend(_kind_problems(where, v, entry))
    perturbs = _check_perturbs(where, v.get("perturbs", {}), problems)
    if len(problems) > before:
        return None
    options = tuple(v["options"]) if v["kind"] == "choice" else ("positive", "negative")
    return PromptVariant(key=key, template=v["template"], kind=v["kind"],
                         yes_means=v.get("yes_means", "positive"), options=options, perturbs=perturbs)


def text_builder(allowed: Sequence[str], required: Sequence[str] = ()) -> Callable:
    """Builder for describe prompts / diagnoser templates with their allowed placeholders."""

    def build(where: str, key: str, entry: Any, problems: list[str]) -> Optional[TextTemplate]:
        before = len(problems)
        if not KEY_NAME.match(key):
            problems.append(f"{where}: invalid key {key!r}; use letters, digits and '_'")
        v = check_entry(where, entry, TEXT_KEYS, problems)
        if v is None or "template" not in v:
            return None
        problems.extend(f"{where}.template: {p}" for p in placeholder_problems(v["template"], allowed))
        missing = [r for r in required if r not in placeholders(v["template"])]
        problems.extend(f"{where}.template: must contain {{{r}}}" for r in missing)
        return TextTemplate(key=key, template=v["template"]) if len(problems) == before else None

    return build


def _rule_option_order(v: PromptVariant, b: PromptVariant) -> Optional[str]:
    if v.kind != "choice" or b.kind != "choice":
        return "both variants must be kind 'choice'"
    return None if v.options == b.options[::-1] else "options must be the base variant's options reversed"


def _rule_polarity(v: PromptVariant, b: PromptVariant) -> Optional[str]:
    if v.kind != "yes_no" or b.kind != "yes_no":
        return "both variants must be kind 'yes_no'"
    return None if v.yes_means != b.yes_means else "yes_means must differ from the base variant's (inverted question)"


def _rule_answer_format(v: PromptVariant, b: PromptVariant) -> Optional[str]:
    same = v.kind == b.kind and (v.yes_means, v.options) == (b.yes_means, b.options)
    return None if same else "kind, yes_means and options must equal the base variant's (only the format changes)"


def _rule_clinical_hint(v: PromptVariant, b: PromptVariant) -> Optional[str]:
    if v.kind != b.kind or (v.yes_means, v.options) != (b.yes_means, b.options):
        return "kind, yes_means and options must equal the base variant's (only the hint is added)"
    if "hints" not in placeholders(v.template) or "hints" in placeholders(b.template):
        return "the template must use {hints} and the base variant's must not"
    return None


# What each perturbation family may change: a pair that changes something else would
# measure a different fragility under the family's name.
FAMILY_RULES: dict[str, Callable[[PromptVariant, PromptVariant], Optional[str]]] = {
    "option_order": _rule_option_order,
    "polarity": _rule_polarity,
    "answer_format": _rule_answer_format,
    "clinical_hint": _rule_clinical_hint,
}


def perturbs_refs(entry: Any) -> tuple[tuple[str, str], ...]:
    """The well-formed (family, base key) pairs of a raw entry, even when the entry has
    other problems, so that unknown base variants are reported in the same run."""
    table = entry.get("perturbs") if isinstance(entry, dict) else None
    if not isinstance(table, dict):
        return ()
    return tuple((f, b) for f, b in table.items() if f in PERTURBATION_FAMILIES and isinstance(b, str) and b)


def perturbs_problems(variants: dict, refs: dict, origin: dict) -> list[str]:
    """Each `perturbs` entry must name another known variant and obey its family's rule.

    `variants` maps key -> PromptVariant (None when invalid), `refs` key -> perturbs_refs.
    """
    out = []
    for key, pairs in refs.items():
        for family, base_key in pairs:
            where = f"{origin[key]}: variants.{key}.perturbs.{family}"
            if base_key == key:
                out.append(f"{where}: a variant cannot perturb itself")
            elif base_key not in variants:
                out.append(f"{where}: unknown variant {base_key!r}{did_you_mean(base_key, variants)}")
            elif variants[key] is not None and variants[base_key] is not None:
                problem = FAMILY_RULES[family](variants[key], variants[base_key])
                if problem:
                    out.append(f"{where}: {problem}")
    return out


def render_text(template: TextTemplate, task: TaskSpec, description: Optional[str] = None) -> str:
    """Render a describe prompt (no description) or a diagnoser template (with one).

    The counterpart of PromptVariant.render for TextTemplate, so that every caller fills
    the same placeholders the loader validated.
    """
    values = {"modality": task.modality, "disease": task.disease, "hints": task.hints,
              "positive": task.positive_name, "negative": task.negative_name}
    if description is not None:
        values["description"] = description
    try:
        return template.template.format(**values)
    except KeyError as exc:
        raise ValueError(f"template {template.key!r} needs {exc.args[0]!r}; pass description= for a diagnoser") from None
