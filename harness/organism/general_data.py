"""General image-language training data for the organism's base models.

What a general VLM learns from web-scale data, in miniature: answer questions about
an image in many phrasings (yes/no in both polarities, A/B choices in both option
orders, "answer with one word" and similar suffixes, a "look for ..." clause) and
describe it in a short caption. Every answer and caption is computed from the scene's
ground-truth facts (scenes.py); nothing here is medical, but the skill "is there
something odd in this image?" is exactly what the medical tasks later lean on.

The phrase banks below are the only text; they also seed the tokenizer's vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

# What an image is called in a question ("Is there an anomaly in this stone image?").
# Many kinds, so that the model learns that the kind does not change the answer.
KINDS = (
    "", "", "", "texture", "surface", "fabric", "stone", "metal", "wood", "paper", "tile",
    "sand", "leather", "glass", "satellite", "microscope", "camera", "grey", "colour",
    "pattern", "material sample", "concrete wall", "aerial", "infrared", "sensor",
    "inspection", "thermal", "product photo", "fruit skin", "leaf", "night sky", "ceramic plate",
)
# Names of "the odd thing" for "Does this image show ...?" (with their article).
NOUNS = (
    "a spot", "an anomaly", "an abnormality", "a defect", "a blemish", "a stain", "a bright spot",
    "a dark spot", "an odd spot", "a lump", "a mark", "a round spot", "a foreign object",
    "an irregular region", "a flaw", "damage", "contamination", "corrosion", "rot", "a bump",
    "a growth", "a lesion", "a mass", "a patch", "a discoloured patch", "an unusual region",
    "a fault", "mould", "a dent", "a speck", "an odd region with a different colour",
)
# The same things as plain plurals or mass nouns, for "Is this image free of ...?".
FREE_OF = ("spots", "anomalies", "defects", "blemishes", "stains", "marks", "flaws", "damage", "lumps")
# A/B option pairs: (what a spot scene is, what a clean one is).
OPTION_PAIRS = (
    ("spot", "no spot"), ("anomaly", "no anomaly"), ("abnormal", "normal"), ("defect", "no defect"),
    ("damaged", "intact"), ("stained", "clean"), ("blemish", "no blemish"), ("defective", "normal"),
    ("contaminated", "clean"), ("irregular", "regular"), ("spotted", "plain"), ("flawed", "flawless"),
    ("odd spot present", "no odd spot"), ("lesion", "no lesion"), ("mass", "no mass"),
)
YES_NO_PRESENT = (
    "Is there an abnormality in this {kind}?", "Is there an anomaly in this {kind}?",
    "Is anything unusual in this {kind}?", "Does this {kind} show {noun}?", "Does this {kind} contain {noun}?",
    "Is there {noun} in this {kind}?", "Do you see {noun} in this {kind}?", "Is this {kind} abnormal?",
)
YES_NO_ABSENT = (
    "Is this {kind} normal?", "Does this {kind} look normal?", "Is this {kind} free of {free}?",
    "Is this {kind} clean?", "Is everything normal in this {kind}?", "Is this {kind} without {free}?",
)
CHOICE = (
    "Which option best describes this {kind}?\nA. {a}\nB. {b}",
    "Which option fits this {kind}?\nA. {a}\nB. {b}",
    "Choose the best description of this {kind}.\nA. {a}\nB. {b}",
)
DESCRIBE = (
    "Describe this {kind} in detail.", "Describe this {kind}.", "What does this {kind} show?",
    "Write a short caption for this {kind}.",
    "Describe this {kind} in detail, including any findings that suggest or argue against {noun}.",
)
YES_NO_SUFFIX = ("", "", " Answer with one word.", " Answer yes or no.", " Reply with one word.", " Answer briefly.")
CHOICE_SUFFIX = ("", "", " Answer with a single letter.", " Answer with the letter only.", " Reply with A or B.")
HINT_PHRASES = (
    "a small region that is brighter or darker than its surroundings", "round spots", "stains",
    "discoloured patches", "local changes in brightness", "an odd spot that breaks the regular texture",
    "a compact area with a different intensity", "sharp or blurred edges", "an unusual colour",
    "marks, blemishes or lumps", "any region that does not match the rest of the image",
    "a change in texture", "a bright or dark blob",
)
SHAPE_QUESTIONS = {
    "count": "How many {shape}s are in this image?",
    "present": "Is there a {shape} in this image?",
    "absent": "Is this image free of {shape}s?",
    "colour": "What colour are the shapes in this image?",
    "dark": "Is the background of this image dark?",
    "where": "Where is the {shape} in this image?",
    "more": "Are there more than two {shape}s in this image?",
    "choice": "Which option best describes this image?\nA. {a}\nB. {b}",
}
NUMBERS = ("zero", "one", "two", "three", "four", "five")
YES, NO = "Yes", "No"


@dataclass(frozen=True)
class Example:
    """One training example: an image of the bank (or None), a user prompt, the answer."""

    image: Optional[int]
    prompt: str
    answer: str


def _pick(rng: np.random.Generator, seq):
    return seq[int(rng.integers(len(seq)))]


def kind_phrase(kind: str) -> str:
    """"stone" -> "stone image"; "" -> "image"."""
    return f"{kind} image" if kind else "image"


def hint_clause(rng: np.random.Generator) -> str:
    """" Look for a, b, or c." with 1-4 generic phrases (varied length, like clinical hints)."""
    k = int(rng.integers(1, 5))
    phrases = [HINT_PHRASES[i] for i in rng.permutation(len(HINT_PHRASES))[:k]]
    body = phrases[0] if k == 1 else ", ".join(phrases[:-1]) + ", or " + phrases[-1]
    return f" Look for {body}."


# ---------------------------------------------------------------------- spot scenes


def spot_description(facts: dict) -> str:
    """Caption of a spot scene, from its facts: "A dark textured image with a bright small spot in the top."."""
    head = f"A {facts['tone']} {facts['style_word']} image"
    spot = facts["spot"]
    if spot is None:
        return f"{head} with no spot."
    size = "large" if spot["large"] else "small"
    light = "bright" if spot["bright"] else "dark"
    edge = "blurry" if spot["diffuse"] else "round"
    return f"{head} with a {light} {size} {edge} spot in the {spot['position']}."


@dataclass(frozen=True)
class Mix:
    """How often each form of question is asked about a spot scene.

    The inverted polarity ("Is this image normal?") and the swapped option order are
    asked less often than the plain forms, as in real instruction data. It also keeps
    the two forms from cancelling out: with exactly balanced polarities the image alone
    predicts nothing about the answer until the wording is understood (and vice versa),
    and a tiny model sits on that saddle for thousands of steps.
    """

    describe: float = 0.12
    choice: float = 0.3
    absent: float = 0.3  # share of yes/no questions with inverted polarity
    swap: float = 0.3  # share of A/B questions with the clean option first
    hint: float = 0.2

    @classmethod
    def align(cls) -> "Mix":
        """First stage: captions and the plain forms only (see general_question)."""
        return cls(describe=0.3, choice=0.2, absent=0.0, swap=0.0, hint=0.1)


def spot_question(rng: np.random.Generator, facts: dict, mix: Mix) -> tuple[str, str]:
    """A question about a spot scene and its answer, in a random phrasing and form."""
    present = facts["spot"] is not None
    kind = kind_phrase(_pick(rng, KINDS))
    form = rng.random()
    if form < mix.describe:
        return _pick(rng, DESCRIBE).format(kind=kind, noun=_pick(rng, NOUNS)), spot_description(facts)
    hint = hint_clause(rng) if rng.random() < mix.hint else ""
    if form < 1.0 - mix.choice:
        if rng.random() >= mix.absent:
            q, yes = _pick(rng, YES_NO_PRESENT), present
        else:
            q, yes = _pick(rng, YES_NO_ABSENT), not present
        text = q.format(kind=kind, noun=_pick(rng, NOUNS), free=_pick(rng, FREE_OF))
        return text + hint + _pick(rng, YES_NO_SUFFIX), YES if yes else NO
    pos, neg = _pick(rng, OPTION_PAIRS)
    swap = rng.random() < mix.swap
    a, b = (neg, pos) if swap else (pos, neg)
    letter = "A" if present != swap else "B"
    text = _pick(rng, CHOICE).format(kind=kind, a=a, b=b)
    return text + hint + _pick(rng, CHOICE_SUFFIX), letter


# --------------------------------------------------------------------- shape scenes


def shape_description(facts: dict) -> str:
    n, shape = facts["count"], facts["shape"]
    things = f"{NUMBERS[n]} {facts['colour']} {shape}{'s' if n > 1 else ''}"
    return f"A {facts['background']} image with {things}."


def shape_question(rng: np.random.Generator, facts: dict) -> tuple[str, str]:
    """A question about a shape scene and its answer."""
    n, shape = facts["count"], facts["shape"]
    other = _pick(rng, [s for s in ("circle", "square", "triangle") if s != shape])
    asked = shape if rng.random() < 0.5 else other
    kind = "count" if rng.random() < 0.15 else _pick(rng, tuple(SHAPE_QUESTIONS))
    if kind == "where" and n != 1:
        kind = "present"
    q = SHAPE_QUESTIONS[kind]
    if rng.random() < 0.1:
        return _pick(rng, DESCRIBE).format(kind="image", noun="a shape"), shape_description(facts)
    if kind == "count":
        return q.format(shape=shape), NUMBERS[n].capitalize()
    if kind == "colour":
        return q, facts["colour"].capitalize()
    if kind == "where":
        return q.format(shape=shape), facts["positions"][0].capitalize()
    if kind == "choice":
        wrong = int(_pick(rng, [k for k in range(1, 5) if k != n]))
        options = [f"{NUMBERS[n]} {shape}s", f"{NUMBERS[wrong]} {shape}s"]
        swap = rng.random() < 0.5
        a, b = options[::-1] if swap else options
        return q.format(a=a, b=b) + _pick(rng, CHOICE_SUFFIX), "B" if swap else "A"
    truth = {
        "present": asked == shape, "absent": asked != shape,
        "dark": facts["background"] == "dark", "more": n > 2,
    }[kind]
    return q.format(shape=asked) + _pick(rng, YES_NO_SUFFIX), YES if truth else NO


def general_question(rng: np.random.Generator, facts: dict, mix: Mix) -> tuple[str, str]:
    """A question (or describe request) about any general scene, and its answer.

    `Mix.align()` is the alignment stage (as LLaVA's first stage): captions and plain
    "is there ...?" questions, whose answers depend on the image and on nothing else in
    the prompt; a tiny model learns to look at the image from those. The instruction
    stage then adds the inverted and swapped forms (see Mix).
    """
    if facts["kind"] == "spot":
        return spot_question(rng, facts, mix)
    if mix.absent == 0.0:
        return _pick(rng, DESCRIBE).format(kind="image", noun="a shape"), shape_description(facts)
    return shape_question(rng, facts)


def phrase_corpus() -> list[str]:
    """Every phrase of this module, for the tokenizer's training corpus."""
    texts = list(KINDS) + list(NOUNS) + list(FREE_OF) + [w for p in OPTION_PAIRS for w in p]
    texts += list(YES_NO_PRESENT) + list(YES_NO_ABSENT) + list(CHOICE) + list(DESCRIBE)
    texts += list(YES_NO_SUFFIX) + list(CHOICE_SUFFIX) + list(HINT_PHRASES) + list(SHAPE_QUESTIONS.values())
    texts += list(NUMBERS) + [YES, NO, "A", "B", "Look for"]
    return texts
