"""SIMULATED subjects (named as such: no model runs here) behind the real server and client.

A simulated subject answers the suite's real prompts about real image files over the
real OpenAI API (harness.serve on 127.0.0.1, the openai client), with a behaviour fixed
by construction, so an end-to-end run has a known right verdict. The image's class is
read from its brightness (the test images are bright when positive, dark when negative,
as in test_reliability_support.py); every "random" choice is a hash of the image's
pixels and the prompt, so answers are deterministic and the same on every run.

- RobustSubject: right about 90 % of images, the same way under every prompt; about
  5 % of answers change between prompts (a cell re-decided by its own hash); 2 % of
  answers are refusals at random; descriptions say what it perceived. Every test of
  near_random, prompt_sensitivity and description_recovery should pass on it.
- KnowsNothingRefuser: refuses everything about 40 % of the images and guesses on the
  rest; its descriptions guess too. It has no knowledge, so none can be hidden.
- YesSayer: the robust subject, but on the images it finds hard (a third of them) it
  answers "Yes" to every yes/no question, whatever the question's polarity: fragile on
  prompts (its answers flip between "Is it abnormal?" and "Is it normal?").
- WordyRobustSubject: the robust subject, but every closed-form answer comes after a
  nine-word preamble, and it honours the token cap as a server does (one word = one
  token; an answer longer than `max_tokens` is cut and marked `finish_reason: "length"`).
  At the default 8-token cap none of its first answers can be read (issue 11).

Both also act as the text-only diagnoser: {"answer": "yes"} iff a description says
"bright lesion".
"""

from __future__ import annotations

import hashlib

import numpy as np

from harness.backends import Backend
from harness.config.prompts import render_text
from harness.config.registry import load_registry
from harness.core import GenerationResult, ModelSpec

REFUSAL = "I cannot determine this from the image."


def _unit(*parts) -> float:
    """A deterministic number in [0, 1) from the parts."""
    digest = hashlib.sha256("|".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0 ** 64


class SimulatedSubject(Backend):
    def __init__(self, name: str):
        self.spec = ModelSpec(name=name, backend="hf", model=name)
        registry = load_registry()
        self.variants = {v.render(t): v for t in registry.tasks.values() for v in registry.variants.values()}
        self.describe = {render_text(p, t) for t in registry.tasks.values() for p in registry.describe_prompts.values()}

    def generate(self, requests, images):
        return [GenerationResult(text=self._reply(r, images)) for r in requests]

    def wrap(self, text: str, request) -> str:
        """What the subject writes around its answer (nothing, by default)."""
        return text

    def _reply(self, request, images) -> str:
        if request.image_key is None:  # the diagnoser
            return '{"answer": "yes"}' if "bright lesion" in request.prompt else '{"answer": "no"}'
        pixels = np.asarray(images[request.image_key])
        image = hashlib.sha256(pixels.tobytes()).hexdigest()
        label = "positive" if pixels.mean() > 127 else "negative"
        perceived = self.perceive(image, request.prompt, label)
        if perceived is None:
            return REFUSAL
        if request.prompt in self.describe:
            seen = "a bright lesion" if perceived == "positive" else "normal dark tissue"
            return f"The image shows {seen}."
        variant = self.variants.get(request.prompt)
        if variant is None:
            return REFUSAL
        if variant.kind == "choice":
            return self.wrap("A" if variant.options[0] == perceived else "B", request)
        return self.wrap("Yes." if variant.yes_means == perceived else "No.", request)

    def perceive(self, image: str, prompt: str, label: str) -> str | None:
        raise NotImplementedError


def _other(label: str) -> str:
    return "negative" if label == "positive" else "positive"


class RobustSubject(SimulatedSubject):
    ACCURACY, REDRAW, REFUSALS = 0.90, 0.06, 0.02

    def perceive(self, image, prompt, label):
        if _unit("refuse", image, prompt) < self.REFUSALS:
            return None
        knows = _unit("image", image) < self.ACCURACY
        if _unit("redraw", image, prompt) < self.REDRAW:  # this prompt re-decides the image on its own
            knows = _unit("cell", image, prompt) < self.ACCURACY
        return label if knows else _other(label)


class KnowsNothingRefuser(SimulatedSubject):
    REFUSED_IMAGES = 0.40

    def perceive(self, image, prompt, label):
        if _unit("refuse", image) < self.REFUSED_IMAGES:
            return None
        return "positive" if _unit("guess", image, prompt) < 0.5 else "negative"


class YesSayer(RobustSubject):
    HARD = 1 / 3

    def _reply(self, request, images):
        variant = self.variants.get(request.prompt)
        if request.image_key is not None and variant is not None and variant.kind == "yes_no":
            pixels = np.asarray(images[request.image_key])
            if _unit("hard", hashlib.sha256(pixels.tobytes()).hexdigest()) < self.HARD:
                return "Yes."
        return super()._reply(request, images)


class WordyRobustSubject(RobustSubject):
    PREAMBLE = "After looking carefully at the image, my answer is:"  # nine words

    def generate(self, requests, images):
        results = []
        for request in requests:
            words = self._reply(request, images).split()
            cut = len(words) > request.max_new_tokens
            results.append(GenerationResult(text=" ".join(words[:request.max_new_tokens]), truncated=cut))
        return results

    def wrap(self, text, request):
        return f"{self.PREAMBLE} {text}"
