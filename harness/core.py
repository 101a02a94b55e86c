"""The shared vocabulary of the harness: specs loaded from TOML and the items that flow
between data loading, backends, the response store and the statistics.

Everything here is plain data so that every other module can depend on it without
depending on each other.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal, Optional

Label = Literal["positive", "negative"]
Outcome = Literal["positive", "negative", "refused", "error"]
OUTCOMES: tuple[str, ...] = ("positive", "negative", "refused", "error")
LABELS: tuple[str, ...] = ("positive", "negative")

FINDINGS: tuple[str, ...] = (
    "near_random",
    "finetune_gain",
    "prompt_sensitivity",
    "description_recovery",
    "embedding_separability",
    "image_reliance",  # not one of the study's findings: does the answer depend on the image at all?
    "regression",  # not one of the study's findings: a new version against the one it replaces
)
PERTURBATION_FAMILIES: tuple[str, ...] = ("option_order", "answer_format", "polarity", "clinical_hint")
# Families that add information rather than reword: judged by direction ("must not hurt"),
# not by invariance (a hint that helps is no fragility).
DIRECTIONAL_FAMILIES: frozenset[str] = frozenset({"clinical_hint"})

# Bumped whenever the way a prompt reaches a model changes: part of every cache key.
PROTOCOL_VERSION = 1


class HarnessError(Exception):
    """A problem the user must fix (bad config, bad data); the message says what and where."""


class NotApplicable(Exception):
    """A check that cannot be made for this subject: reported as a skip with this reason, never a pass."""


class ConfigError(HarnessError):
    """Configuration problems, all listed at once."""

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{source}: {len(self.problems)} problem(s)\n{lines}")


@dataclass(frozen=True)
class ModelSpec:
    """One registry entry (fixtures/models.toml or --models-file)."""

    name: str
    backend: str  # "hf" | "openai"
    model: str  # HF repo id, local path, "builtin:<name>" or served model name
    revision: Optional[str] = None
    base_url: tuple[str, ...] = ()
    api_key_env: Optional[str] = None
    base_model: Optional[str] = None
    previous: Optional[str] = None  # the registry name of the version this one replaces (regression tests)
    trust_remote_code: bool = False
    dtype: Optional[str] = None  # None: bf16 on GPU, fp32 on CPU
    max_new_tokens: Optional[int] = None  # overrides the closed-form default
    # ask an answer cut off at the token cap again with a larger budget (SPEC §3); off only
    # for test models with random weights, whose every answer is cut-off noise
    reask: bool = True
    batch_size: Optional[int] = None
    # "hf" only (issue 12): a chat template file that replaces the checkpoint's (an absolute
    # path, resolved by the registry), image-processor settings that replace the
    # checkpoint's (`image_processor_type` names a class to rebuild it as), and the
    # checkpoint snapshot under fixtures/checkpoints/ that the preflight compares with
    # (default: the one named like the entry, when there is one)
    chat_template: Optional[str] = None
    image_processor: dict = field(default_factory=dict, hash=False, compare=True)
    snapshot: Optional[str] = None
    tags: tuple[str, ...] = ()
    # "openai" backend: requests in flight, per-request timeout, retries of 429/5xx/timeouts
    concurrency: int = 8
    timeout_s: float = 60.0
    max_retries: int = 4


@dataclass(frozen=True)
class HFSource:
    """A Hugging Face dataset and how its labels map to positive/negative."""

    dataset: str
    split: str = "train"
    image_column: str = "image"
    label_column: str = "label"
    positive_values: tuple[str, ...] = ()
    negative_values: tuple[str, ...] = ()
    filters: tuple[tuple[str, str], ...] = ()  # (column, required value as str)


@dataclass(frozen=True)
class TaskSpec:
    """One binary task (fixtures/tasks.toml or --tasks-file)."""

    key: str
    title: str
    modality: str  # e.g. "brain MRI"
    disease: str  # e.g. "a brain tumor"
    positive_name: str  # class name shown in A/B prompts, e.g. "tumor"
    negative_name: str  # e.g. "no tumor"
    difficulty: int  # 1 (easiest) .. 4
    hints: str  # clinical signs to look for
    positive_aliases: tuple[str, ...] = ()  # folder names / manifest labels meaning positive
    negative_aliases: tuple[str, ...] = ()
    hf_source: Optional[HFSource] = None

    def label_from_name(self, name: str) -> Optional[Label]:
        """Map a folder name or manifest label to positive/negative; None when unknown."""
        n = name.strip().lower()
        if n in ("positive", "1", self.positive_name.lower()) or n in {a.lower() for a in self.positive_aliases}:
            return "positive"
        if n in ("negative", "0", self.negative_name.lower()) or n in {a.lower() for a in self.negative_aliases}:
            return "negative"
        return None


@dataclass(frozen=True)
class PromptVariant:
    """One closed-form prompt variant.

    kind "yes_no": `yes_means` says which label a "yes" maps to (polarity).
    kind "choice": `options` gives the label behind option A then option B.
    `perturbs` maps a perturbation family to the variant this one is the perturbed
    counterpart of (e.g. {"answer_format": "abnormal"} for "abnormal_oneword").
    """

    key: str
    template: str
    kind: Literal["yes_no", "choice"]
    yes_means: Label = "positive"
    options: tuple[Label, Label] = ("positive", "negative")
    perturbs: tuple[tuple[str, str], ...] = ()

    def render(self, task: TaskSpec) -> str:
        names = {"positive": task.positive_name, "negative": task.negative_name}
        return self.template.format(
            modality=task.modality,
            disease=task.disease,
            hints=task.hints,
            positive=task.positive_name,
            negative=task.negative_name,
            option_a=names[self.options[0]],
            option_b=names[self.options[1]],
        )

    def option_names(self, task: TaskSpec) -> tuple[str, str]:
        names = {"positive": task.positive_name, "negative": task.negative_name}
        return names[self.options[0]], names[self.options[1]]


@dataclass(frozen=True)
class TextTemplate:
    """A describe prompt or diagnoser template (used by the description finding)."""

    key: str
    template: str


@dataclass
class ImageItem:
    """One image of a task sample. `load` returns a normalised RGB PIL image."""

    image_id: str
    task: str
    label: Label
    source: str  # path or dataset reference, for error messages
    loader: Callable[[], "object"]
    sha256: str = ""

    def load(self):
        return self.loader()


@dataclass(frozen=True)
class GenerationRequest:
    """One prompt about one image (or text only when image is None)."""

    prompt: str
    image_key: Optional[str] = None  # ImageItem.image_id; backend receives images separately
    max_new_tokens: int = 8
    system: Optional[str] = None


@dataclass
class GenerationResult:
    """What a backend returned for one request.

    `error` set: the backend failed (timeout, HTTP error, OOM): excluded, counted, never
    cached. No error and no text: the call succeeded and the model wrote nothing, which
    is the model's behaviour, scored as a refusal (SPEC §3), not stored.
    `truncated`: generation stopped at the request's token cap rather than on its own
    (HF: no end-of-sequence token within `max_new_tokens`; OpenAI: `finish_reason` is
    "length"). The runner asks such an answer again with a larger budget when it does not
    parse (SPEC §3: the cap is never silently a refusal).
    """

    text: Optional[str]
    error: Optional[str] = None
    truncated: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None and self.text is not None and self.text.strip() != ""

    @property
    def empty(self) -> bool:
        return self.error is None and not (self.text or "").strip()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class Thresholds:
    """The validated thresholds.toml (see harness/config/thresholds.py for the schema)."""

    confidence: float = 0.95
    bootstrap_replicates: int = 2000
    seed: int = 12345
    max_error_rate: float = 0.05
    inconclusive: str = "fail"
    near_random: dict = field(default_factory=lambda: {"min_margin": 0.10, "aggregate": "mean"})
    regression: dict = field(
        default_factory=lambda: {"max_ba_loss": 0.03, "max_refusal_increase": 0.03, "max_flip_increase": 0.03,
                                 "max_swing_increase": 0.10, "max_gap_increase": 0.10}
    )
    finetune_gain: dict = field(
        default_factory=lambda: {"min_gain": 0.0, "ceiling": 0.95, "noninferiority_margin": 0.02}
    )
    prompt_sensitivity: dict = field(
        default_factory=lambda: {"max_true_accuracy_swing": 0.10, "max_true_refusal_swing": 0.10,
                                 "max_flip_rate": 0.10, "max_hint_harm": 0.05}
    )
    description_recovery: dict = field(default_factory=lambda: {"max_latent_gap": 0.10})
    image_reliance: dict = field(
        default_factory=lambda: {"max_unchanged_without_image": 0.90, "max_blind_margin": 0.05, "variants": "all"}
    )
    embedding_separability: dict = field(
        default_factory=lambda: {
            "min_probe_auroc": 0.75,
            "max_reasoning_gap": 0.10,
            "features": "selected",
            "layer": -1,
            "pooling": "mean",
            "folds": 5,
            "images_per_class": 300,
            "probe_replicates": 400,
            "components": 32,
        }
    )
    sequential: dict = field(
        default_factory=lambda: {"max_n_per_class": 300, "step_per_class": 50, "spending_gamma": 2.0,
                                 "min_decide_chance": 0.05}
    )
    generation: dict = field(
        default_factory=lambda: {"max_new_tokens": 8, "reask_max_new_tokens": 64, "last_reask_max_new_tokens": 256,
                                 "describe_max_new_tokens": 96, "batch_size": 16}
    )
