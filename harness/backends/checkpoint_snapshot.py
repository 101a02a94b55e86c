"""Checkpoint snapshots: the facts that decide a real checkpoint's prompt and pixels, kept
as small plain files under fixtures/checkpoints/<registry name>/, and rebuilt offline.

Why this exists (issue 12): nothing in this project can download the study's checkpoints,
yet a hub update or a transformers upgrade can silently change the prompt they receive
(a chat template edited upstream, a processor setting dropped by a community conversion).
A snapshot pins what the checkpoint publishes at one revision:

- checkpoint.json        repo, revision, family, the special tokens, the template's sha256
- chat_template.json / template.jinja   the chat template, byte for byte
- processor_config.json, preprocessor_config.json, generation_config.json, added_tokens.json
- model_config.json      the config.json fields that decide image tokens (a subset)
- SOURCE.md              where every fact came from

From a snapshot the harness builds the real transformers processor offline (a stub
tokenizer that has only the checkpoint's special tokens stands in for the real vocabulary:
image-token counts, BOS and template text do not depend on the rest of it), and renders
prompts through HFBackend's own code path. The same functions serve the preflight of a
real run: `processor_drift` compares a live processor with its snapshot, `prompt_form_problems`
rejects a prompt that matches no known form of its family, and `repair_from_model_config`
fills processor settings that broken conversions lack from what the model's config decides.
"""

from __future__ import annotations

import hashlib
import json
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from harness.config.registry import FIXTURES_DIR
from harness.core import HarnessError

SNAPSHOT_ROOT = FIXTURES_DIR / "checkpoints"

# Metadata keys of the processor files that say what a file is, not how it processes.
_META_KEYS = {"image_processor_type", "processor_class", "_processor_class"}

# The processor attributes that decide the number of image tokens (LLaVA) or the image
# sequence (Gemma-3); compared with the snapshot by the preflight.
PROCESSOR_FIELDS = ("patch_size", "vision_feature_select_strategy", "num_additional_image_tokens",
                    "image_seq_length", "image_token")

# The known prompt forms of one user turn with one image and no system message, after the
# chat template (before the processor expands the image placeholder). A rendered prompt
# that matches none of its family's forms is off-format: the study was criticised for
# sending LLaVA-1.5 "USER: ... ASSISTANT:" prompts to Mistral-based checkpoints.
PROMPT_FORMS = {
    "mistral_inst": re.compile(r"\A\[INST\] <image>\n(?P<text>(?:(?!\[INST\]|\[/INST\]|<<SYS>>).)+)"
                               r" \[/INST\]\Z", re.S),
    "gemma3": re.compile(r"\A<bos><start_of_turn>user\n<start_of_image>"
                         r"(?P<text>(?:(?!<start_of_turn>|<end_of_turn>).)+)"
                         r"<end_of_turn>\n<start_of_turn>model\n\Z", re.S),
}
# Forms that are recognisably wrong for a family: named in the error message.
KNOWN_WRONG_FORMS = {
    "LLaVA-1.5 (USER: ... ASSISTANT:)": re.compile(r"USER:.*ASSISTANT:", re.S),
    "system block": re.compile(r"<<SYS>>|<start_of_turn>system", re.S),
}


@dataclass(frozen=True)
class Snapshot:
    """One checkpoint snapshot folder (see the module docstring for its files)."""

    name: str
    folder: Path
    identity: dict

    def json(self, filename: str) -> dict:
        """A JSON file of the snapshot ({} when the snapshot does not have it)."""
        path = self.folder / filename
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}

    @property
    def template_path(self) -> Path:
        return self.folder / self.identity["chat_template_file"]

    @property
    def chat_template(self) -> str:
        """The chat template text, read from a .jinja file or a chat_template.json."""
        path = self.template_path
        text = path.read_text(encoding="utf-8")
        if path.suffix != ".json":
            return text
        try:
            return json.loads(text)["chat_template"]
        except (ValueError, KeyError, TypeError) as exc:
            raise HarnessError(f"{path}: not a chat_template.json ({type(exc).__name__}: {exc})") from None

    @property
    def special_tokens(self) -> dict:
        return dict(self.identity["special_tokens"])

    @property
    def preprocessor(self) -> dict:
        return self.json("preprocessor_config.json")

    @property
    def processor_config(self) -> dict:
        return self.json("processor_config.json")

    @property
    def model_config(self) -> dict:
        return self.json("model_config.json")

    @property
    def generation_config(self) -> dict:
        return self.json("generation_config.json")


def snapshot_names(root: Path = SNAPSHOT_ROOT) -> list[str]:
    """The registry names that have a snapshot folder."""
    return sorted(p.parent.name for p in Path(root).glob("*/checkpoint.json"))


def load_snapshot(name: str, root: Path = SNAPSHOT_ROOT) -> Snapshot:
    """The snapshot of registry entry `name`; a HarnessError naming what is missing."""
    folder = Path(root) / name
    path = folder / "checkpoint.json"
    if not path.is_file():
        known = ", ".join(snapshot_names(root)) or "none"
        raise HarnessError(f"no checkpoint snapshot for {name!r} under {root} (known: {known})")
    identity = json.loads(path.read_text(encoding="utf-8"))
    snap = Snapshot(name=name, folder=folder, identity=identity)
    if not snap.template_path.is_file():
        raise HarnessError(f"{path}: chat_template_file {identity['chat_template_file']!r} is missing")
    return snap


def sha256_file(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def integrity_problems(snapshot: Snapshot, expected_template_sha256: Optional[str] = None) -> list[str]:
    """What is wrong with a snapshot's own files: the template no longer matches the
    sha256 recorded in checkpoint.json (or the one the caller expects)."""
    problems = []
    actual = sha256_file(snapshot.template_path)
    for where, expected in (("checkpoint.json", snapshot.identity.get("chat_template_sha256")),
                            ("the expected value", expected_template_sha256)):
        if expected is not None and actual != expected:
            problems.append(f"{snapshot.name}: {snapshot.template_path.name} has sha256 {actual[:12]}…, "
                            f"{where} says {expected[:12]}…")
    return problems


# ------------------------------------------------------------------------ offline build


def stub_tokenizer(special_tokens: dict, extra_tokens: tuple = ()):
    """A byte-level tokenizer that knows only the checkpoint's special tokens.

    It encodes any text (one token per byte), keeps every special token whole, and, like
    the real Llama/Mistral/Gemma tokenizers, prepends BOS itself when asked for special
    tokens, so one-BOS checks see what the real tokenizer would do.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    named = {k: v for k, v in special_tokens.items() if v}
    core = ("unk_token", "bos_token", "eos_token", "pad_token")
    extra = {k: v for k, v in named.items() if k not in core}
    specials = list(dict.fromkeys([named[k] for k in core if k in named] + list(extra.values()) + list(extra_tokens)))
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=len(specials) + 256, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator([], trainer=trainer)
    bos = named["bos_token"]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", pair=f"{bos} $A $B", special_tokens=[(bos, tok.token_to_id(bos))])
    kwargs = {k: named.get(k) for k in core}
    return PreTrainedTokenizerFast(tokenizer_object=tok, extra_special_tokens=extra,
                                   additional_special_tokens=list(extra_tokens) or None, **kwargs)


def build_processor(snapshot: Snapshot, *, chat_template: Optional[str] = None,
                    preprocessor_overrides: Optional[dict] = None, processor_overrides: Optional[dict] = None,
                    tokenizer=None):
    """The snapshot's real transformers processor, loaded offline through AutoProcessor.

    The snapshot's processor files (with any overrides, `None` values deleting a key) and
    a stub tokenizer are written to a temporary folder and loaded back with
    `AutoProcessor.from_pretrained`, the path a downloaded checkpoint takes.
    """
    from transformers import AutoProcessor

    def merged(base: dict, overrides: Optional[dict]) -> dict:
        out = dict(base)
        for key, value in (overrides or {}).items():
            if value is None:
                out.pop(key, None)
            else:
                out[key] = value
        return out

    tokenizer = tokenizer or stub_tokenizer(snapshot.special_tokens, tuple(snapshot.identity.get("extra_tokens", ())))
    with tempfile.TemporaryDirectory(prefix="snapshot-") as tmp:
        folder = Path(tmp)
        tokenizer.save_pretrained(folder)
        files = {
            "preprocessor_config.json": json.dumps(merged(snapshot.preprocessor, preprocessor_overrides)),
            "processor_config.json": json.dumps(merged(snapshot.processor_config, processor_overrides)),
            "chat_template.jinja": chat_template if chat_template is not None else snapshot.chat_template,
        }
        for filename, text in files.items():
            (folder / filename).write_text(text, encoding="utf-8")
        processor = AutoProcessor.from_pretrained(folder, local_files_only=True)
    return processor


def attach_processor(backend, processor):
    """Make an HFBackend render and encode with `processor` without loading any weights.

    Prompts and model inputs depend on the processor only, so offline checks give the
    backend the processor and a stand-in model that only answers device and dtype.
    """
    import torch

    class _NoWeights:
        device = torch.device("cpu")
        dtype = torch.float32

    backend.adopt(processor, _NoWeights())
    return backend


# --------------------------------------------------------------------------- preflight


def _plain(value: Any) -> Any:
    """JSON-comparable form of a processor attribute (SizeDict, enums, tuples)."""
    if hasattr(value, "items"):
        return {k: _plain(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "value") and not isinstance(value, (int, float, str, bool)):
        return value.value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def processor_drift(processor, snapshot: Snapshot) -> list[str]:
    """How a (live) processor differs from its snapshot, one line per difference.

    Compared: the chat template (byte for byte), the processor settings that decide image
    tokens, every image-processor setting the snapshot records, and the special tokens.
    An empty list means the processor renders and preprocesses as the snapshot says.
    """
    drift = []
    template = getattr(processor, "chat_template", None)
    expected = snapshot.chat_template
    if template != expected:
        got = "none" if template is None else f"sha256 {hashlib.sha256(template.encode()).hexdigest()[:12]}…"
        drift.append(f"chat template differs from the snapshot's ({got}, snapshot "
                     f"sha256 {hashlib.sha256(expected.encode()).hexdigest()[:12]}…)")
    wanted = {k: v for k, v in snapshot.processor_config.items() if k in PROCESSOR_FIELDS}
    for key, value in sorted(wanted.items()):
        live = getattr(processor, key, None)
        if _plain(live) != _plain(value):
            drift.append(f"processor.{key} is {live!r}, snapshot {value!r}")
    image_processor = getattr(processor, "image_processor", None)
    settings = image_processor.to_dict() if image_processor is not None else {}
    for key, value in sorted(snapshot.preprocessor.items()):
        if key in _META_KEYS or value is None and settings.get(key) in (None, False):
            continue
        if key not in settings and key in ("aspect_ratio_setting",):
            continue  # recorded by older transformers, no longer an attribute
        if _plain(settings.get(key)) != _plain(value):
            drift.append(f"image_processor.{key} is {settings.get(key)!r}, snapshot {value!r}")
    tokenizer = getattr(processor, "tokenizer", None)
    for key, value in sorted(snapshot.special_tokens.items()):
        live = getattr(tokenizer, key, None) if tokenizer is not None else None
        if value is not None and live != value:
            drift.append(f"tokenizer.{key} is {live!r}, snapshot {value!r}")
    return drift


def prompt_form_problems(form: str, rendered: str) -> list[str]:
    """Why `rendered` (one user turn: image then text, no system) is not of `form`; [] if it is."""
    if form not in PROMPT_FORMS:
        raise HarnessError(f"unknown prompt form {form!r}; known: {', '.join(PROMPT_FORMS)}")
    if PROMPT_FORMS[form].match(rendered):
        return []
    problems = [f"the prompt {rendered[:80]!r} does not have the {form} form "
                f"(expected like {PROMPT_EXAMPLES[form]!r})"]
    problems += [f"it looks like {label}" for label, rx in KNOWN_WRONG_FORMS.items() if rx.search(rendered)]
    return problems


PROMPT_EXAMPLES = {
    "mistral_inst": "[INST] <image>\\n{question} [/INST]",
    "gemma3": "<bos><start_of_turn>user\\n<start_of_image>{question}<end_of_turn>\\n<start_of_turn>model\\n",
}


def repair_from_model_config(processor, model_config: dict) -> list[str]:
    """Make a LLaVA processor's image-token settings agree with what the model decides.

    The model, not the processor files, decides how many image features reach the
    language model: `patch_size` (vision config), `vision_feature_select_strategy` (model
    config) and `num_additional_image_tokens` (the vision tower's class token: CLIP 1,
    SigLIP 0). Conversions ship these missing (patch_size None: every request errors) or
    defaulted (num_additional_image_tokens 0 on a CLIP tower: one image token short, an
    error at generation). Each setting that differs from the model's is set to it and
    returned as a line for the run's record; settings the config cannot decide stay.
    `model_config` is a config.json dict (or a snapshot's model_config.json subset).
    """
    vision = model_config.get("vision_config") or {}
    decided = {
        "patch_size": vision.get("patch_size"),
        "vision_feature_select_strategy": model_config.get("vision_feature_select_strategy"),
        "num_additional_image_tokens": {"clip_vision_model": 1, "siglip_vision_model": 0}.get(vision.get("model_type")),
    }
    repairs = []
    for key, value in decided.items():
        if value is None or not hasattr(processor, key):
            continue
        current = getattr(processor, key)
        if current != value:
            setattr(processor, key, value)
            state = "was missing" if current is None else f"was {current!r}"
            repairs.append(f"processor.{key} {state}; set to {value!r} from the model config")
    return repairs
