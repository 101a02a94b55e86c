"""Medical fine-tuning data: the four synthetic tasks in a NARROW set of phrasings.

Medical fine-tuning sets are mostly one kind of question per finding and report-style
descriptions. So the "med" variants see only the disease-specific yes/no question of
fixtures/prompts.toml ("Does this brain MRI image show a brain tumor?") and the
describe prompts; never the inverted "Is this image normal?", the A/B choices or the
"one word" suffixes. Whatever the suite then measures on those other phrasings is
whatever the narrow tuning did to the base's general skills (SPEC §7).

Images come from harness/data/synthetic.py with `train_seed`, never the suite's seed
42, so the suite's evaluation images are held out. Answers and descriptions are
functions of the generator's label and of what its docstring says the generator draws
for that class; none is written for a particular image or model.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from harness.core import TaskSpec
from harness.data.synthetic import generate_image

from .general_data import NO, YES, Example

MED_TASKS = ("brain_tumor", "pneumonia", "skin_cancer", "histopathology")
# The only closed-form variant of the registry the med models are tuned on.
MED_VARIANTS = ("disease",)
DESCRIBE_SHARE = 0.3

# What synthetic.py draws for each class of each task (see its module docstring).
FINDINGS = {
    "brain_tumor": {"positive": "a bright round mass", "negative": "no mass"},
    "pneumonia": {"positive": "a hazy opacity in one lung", "negative": "clear lungs"},
    "skin_cancer": {"positive": "an irregular mole with patchy colour", "negative": "a smooth mole with even colour"},
    "histopathology": {"positive": "dense, large and variable nuclei", "negative": "small, regular nuclei"},
}


def med_description(task: TaskSpec, label: str) -> str:
    """Report-style description of a task image of class `label`."""
    return f"A {task.modality} image with {FINDINGS[task.key][label]}."


def med_images(tasks: Sequence[TaskSpec], per_class: int, seed: int, size: int) -> list[tuple[str, str, object]]:
    """(task key, label, PIL image) for `per_class` training images per class and task."""
    out = []
    for task in tasks:
        for index in range(per_class):
            for label in ("positive", "negative"):
                out.append((task.key, label, generate_image(task.key, label, index, seed, size)))
    return out


def med_example(rng: np.random.Generator, image: int, task: TaskSpec, label: str, registry) -> Example:
    """One medical example about bank image `image` (of `task`, class `label`)."""
    from harness.config.prompts import render_text

    if rng.random() < DESCRIBE_SHARE:
        describe = list(registry.describe_prompts.values())
        prompt = render_text(describe[int(rng.integers(len(describe)))], task)
        return Example(image, prompt, med_description(task, label))
    variant = registry.variants[MED_VARIANTS[int(rng.integers(len(MED_VARIANTS)))]]
    yes = (label == variant.yes_means)
    return Example(image, variant.render(task), YES if yes else NO)


def med_phrases(tasks: Sequence[TaskSpec]) -> list[str]:
    """Descriptions of every task and class, for the tokenizer's corpus."""
    return [med_description(t, label) for t in tasks if t.key in FINDINGS for label in ("positive", "negative")]
