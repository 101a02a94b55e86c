"""A quick look at what a build produced: balanced accuracy per model x task.

Not the suite (no confidence bounds): a point-estimate table printed by
`python -m harness.organism build`, so whoever builds the organism sees at once
whether the models learnt, whether accuracy falls with task difficulty, and where
answers depend on the wording. It loads each saved folder through HFBackend and asks
the 12 closed-form variants of the registry about held-out images generated exactly
as the suite generates them (seed 42, indices 0..n-1), parsed with harness.answers.parsing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from harness.core import GenerationRequest, ModelSpec
from harness.data.synthetic import generate_image
from harness.answers.parsing import parse_answer

from .config import EVAL_SEED
from .med_data import MED_TASKS

PERTURBATIONS = ("option_order", "answer_format", "polarity", "clinical_hint")


def _backend(folder: Path, cache_dir: Path):
    from harness.backends.hf import HFBackend

    spec = ModelSpec(name=folder.name, backend="hf", model=str(folder), batch_size=96)
    return HFBackend(spec, cache_dir=cache_dir, device="cpu")


def balanced_accuracy(labels: list[str], outcomes: list[str]) -> float:
    """Mean of sensitivity and specificity; a refusal is wrong for either class."""
    pos = [o == "positive" for l, o in zip(labels, outcomes) if l == "positive"]
    neg = [o == "negative" for l, o in zip(labels, outcomes) if l == "negative"]
    return 0.5 * (np.mean(pos) + np.mean(neg))


def evaluate_vlm(folder: Path, registry, n_per_class: int, cache_dir: Path) -> dict:
    """{task: {"ba": {variant: BA}, "refused": {variant: rate}, "flip": {family: rate}}}."""
    backend = _backend(folder, cache_dir)
    result = {}
    for key in MED_TASKS:
        task = registry.tasks[key]
        images, labels = {}, []
        for label in ("positive", "negative"):
            for i in range(n_per_class):
                images[f"{label}{i}"] = generate_image(key, label, i, EVAL_SEED, 64)
                labels.append(label)
        keys = list(images)
        requests = [GenerationRequest(prompt=v.render(task), image_key=k, max_new_tokens=8)
                    for v in registry.variants.values() for k in keys]
        texts = [r.text or "" for r in backend.generate(requests, images)]
        outcomes = {}
        for j, (name, variant) in enumerate(registry.variants.items()):
            chunk = texts[j * len(keys):(j + 1) * len(keys)]
            outcomes[name] = [parse_answer(t, variant, task) for t in chunk]
        result[key] = {
            "ba": {v: balanced_accuracy(labels, o) for v, o in outcomes.items()},
            "refused": {v: float(np.mean([x == "refused" for x in o])) for v, o in outcomes.items()},
            "flip": {f: _flip_rate(registry, outcomes, f) for f in PERTURBATIONS},
        }
    backend.close()
    return result


def _flip_rate(registry, outcomes: dict, family: str) -> float:
    """Mean over the family's variant pairs of the share of images whose outcome differs."""
    rates = [np.mean([a != b for a, b in zip(outcomes[x], outcomes[y])]) for x, y in registry.pairs(family)]
    return float(np.mean(rates)) if rates else float("nan")


def format_table(results: dict[str, dict]) -> str:
    """One line per model x task: mean/min/max BA over the 12 prompts, refusals, flip rates."""
    head = f"{'model':<22}{'task':<16}{'meanBA':>7}{'minBA':>7}{'maxBA':>7}{'refus':>7}" + "".join(
        f"{p[:8]:>9}" for p in PERTURBATIONS)
    lines = [head, "-" * len(head)]
    for model, per_task in results.items():
        for task, r in per_task.items():
            ba = list(r["ba"].values())
            lines.append(
                f"{model:<22}{task:<16}{np.mean(ba):7.2f}{min(ba):7.2f}{max(ba):7.2f}"
                f"{np.mean(list(r['refused'].values())):7.2f}" + "".join(f"{r['flip'][p]:9.2f}" for p in PERTURBATIONS))
    return "\n".join(lines)


def format_variants(results: dict[str, dict]) -> str:
    """BA per prompt variant (columns) for each model x task: where the wording matters."""
    first = next(iter(next(iter(results.values())).values()))
    names = list(first["ba"])
    head = f"{'model':<22}{'task':<16}" + "".join(f"{n[:10]:>11}" for n in names)
    lines = [head]
    for model, per_task in results.items():
        for task, r in per_task.items():
            lines.append(f"{model:<22}{task:<16}" + "".join(f"{r['ba'][n]:11.2f}" for n in names))
    return "\n".join(lines)


def describe_check(paths: dict, registry, n_per_class: int, cache_dir: Path, max_new_tokens: int = 24) -> str:
    """BA of the description pipeline (VLM describes, diagnoser answers) per model x task.

    Compare with the direct answers' BA: a large positive gap is the study's "knowledge
    left to extract" (SPEC §4.4).
    """
    from harness.config.prompts import render_text

    diagnoser = _backend(paths["organism-diagnoser"], cache_dir)
    lines = [f"{'model':<22}{'task':<16}{'descBA':>7}  example description"]
    for name, folder in paths.items():
        if name == "organism-diagnoser":
            continue
        vlm = _backend(folder, cache_dir)
        for key in MED_TASKS:
            task = registry.tasks[key]
            images = {f"{label}{i}": generate_image(key, label, i, EVAL_SEED, 64)
                      for label in ("positive", "negative") for i in range(n_per_class)}
            reqs = [GenerationRequest(prompt=render_text(d, task), image_key=k, max_new_tokens=max_new_tokens)
                    for d in registry.describe_prompts.values() for k in images]
            descriptions = [r.text or "" for r in vlm.generate(reqs, images)]
            labels = [r.image_key.rstrip("0123456789") for r in reqs]
            asks = [GenerationRequest(prompt=render_text(t, task, description=d), max_new_tokens=8)
                    for t in registry.diagnoser_templates.values() for d in descriptions]
            answers = [r.text or "" for r in diagnoser.generate(asks, {})]
            yes_no = registry.variants["disease"]  # "yes" = positive, as the diagnoser templates
            outcomes = [parse_answer(a, yes_no, task) for a in answers]
            ba = balanced_accuracy(labels * len(registry.diagnoser_templates), outcomes)
            lines.append(f"{name:<22}{key:<16}{ba:7.2f}  {descriptions[0][:60]!r}")
        vlm.close()
    diagnoser.close()
    return "\n".join(lines)
