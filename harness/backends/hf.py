"""In-process Hugging Face transformers backend.

Why it looks the way it does (SPEC §5, §8, §9):
- prompts go through the processor's OWN chat template (the study's scripts hand-wrote
  a LLaVA format that did not match the checkpoint);
- greedy decoding with the request's short `max_new_tokens` and no forced minimum;
- batched, left-padded generation, requests sharing an image kept together, each image
  preprocessed once per model however many prompts ask about it, and on a GPU batches
  sized by the free memory (hf_batch.py);
- weights only from safetensors, `trust_remote_code` only when the registry says so;
- a failing batch becomes error results (never scored as wrong answers), a CUDA OOM
  first retries the batch in halves;
- loading is lazy, so a run answered entirely from the cache never loads the model.

"builtin:<name>" models (tiny random-weight checkpoints from harness/organism/tiny.py) are built into the
harness cache once and then loaded from that folder through the same `from_pretrained`
calls as any downloaded checkpoint.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Optional

from harness.backends.base import Backend, error_text
from harness.backends.hf_batch import (GPU_MAX_BATCH, CacheUnsupported, ImageFeatureCache, cached_image_processor, gpu_rows,
                                       hit_token_cap, plan_batches)
from harness.backends.hf_prefix import PREFIX_MIN_TOKENS
from harness.core import GenerationRequest, GenerationResult, HarnessError, ModelSpec

DEFAULT_BATCH_SIZE = 16

_DTYPES = {
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
    "float16": "float16",
    "fp16": "float16",
    "half": "float16",
    "float32": "float32",
    "fp32": "float32",
    "float": "float32",
    "auto": "auto",
}


class HFBackend(Backend):
    """A transformers image-text-to-text model (or a text-only causal LM) in this process."""

    def __init__(self, spec: ModelSpec, *, cache_dir: Path, device: Optional[str] = None,
                 strict_checkpoints: bool = False):
        if spec.dtype is not None and spec.dtype.lower() not in _DTYPES:
            raise HarnessError(f"model {spec.name!r}: unknown dtype {spec.dtype!r} (known: {', '.join(_DTYPES)})")
        self.spec = spec
        self.cache_dir = Path(cache_dir)
        self._device = device
        self._source: Optional[tuple[str, bool]] = None
        self._identity: Optional[dict] = None
        self._model = None
        self._processor = None
        self._tokenizer = None
        self._text_only = False
        self._image_cache: Optional[ImageFeatureCache] = None  # per-image processor outputs
        self._rendered: dict = {}  # chat-template renderings, by (system, prompt, has image)
        self.strict_checkpoints = strict_checkpoints  # snapshot drift is an error, not a warning
        self.load_notes: list[str] = []  # what the preflight replaced, repaired or found changed
        # prompts about one image share a prefix of >= prefix_min_tokens (hf_prefix.py); MEDVLM_PREFIX_REUSE=0: off
        self.prefix_reuse, self.prefix_min_tokens = os.environ.get("MEDVLM_PREFIX_REUSE", "1") != "0", PREFIX_MIN_TOKENS
        self._prefix = None

    # ----------------------------------------------------------------- where and how

    @property
    def device(self) -> str:
        """The torch device: the one given, else "cuda" when available, else "cpu"."""
        if self._device is None:
            import torch

            self._device = "cuda" if torch.cuda.is_available() else "cpu"
        return self._device

    @property
    def dtype_name(self) -> str:
        """bf16 on CUDA, fp32 elsewhere, unless the registry entry sets `dtype`."""
        if self.spec.dtype is not None:
            return _DTYPES[self.spec.dtype.lower()]
        return "bfloat16" if self.device.startswith("cuda") else "float32"

    def source(self) -> tuple[str, bool]:
        """(what to pass to from_pretrained, whether it is a local folder).

        Builds a builtin tiny model on first use; a path that looks local but does not
        exist is a setup error rather than a confusing hub lookup.
        """
        if self._source is None:
            self._source = self._resolve_source()
        return self._source

    def _resolve_source(self) -> tuple[str, bool]:
        from harness.backends.identity import resolve_local_path

        local = resolve_local_path(self.spec, self.cache_dir)  # builds builtin:<name> if needed
        if local is not None:
            return str(local), True
        model = self.spec.model
        if model.startswith(("/", ".", "~")) or Path(model).expanduser().exists():
            raise HarnessError(f"model {self.spec.name!r}: {model!r} is not a model folder")
        return model, False

    def identity(self) -> dict:
        """The store's identity of this model (see harness.backends.identity): backend,
        model, revision, a content fingerprint of a local folder, dtype when set."""
        from harness.backends.identity import model_identity

        if self._identity is None:
            self.source()  # setup errors (missing folder, unknown builtin) surface here
            self._identity = model_identity(self.spec, self.cache_dir)
        return dict(self._identity)

    # ------------------------------------------------------------------------ loading

    @property
    def loaded(self) -> bool:
        """Were the weights loaded (and the preflight run) in this process?"""
        return self._model is not None

    def load(self) -> None:
        """Load processor and model (once). Any failure is a HarnessError naming the model."""
        if self._model is not None:
            return
        source, local = self.source()
        try:
            self._load(source)
        except HarnessError:
            raise
        except Exception as exc:  # every loading failure is a setup problem
            hint = ""
            if local and not any(Path(source).glob("*.safetensors")):
                hint = " (weights are loaded from safetensors only, never from pickled .bin/.pt files)"
            raise HarnessError(f"model {self.spec.name!r}: cannot load {source!r}: {error_text(exc)}{hint}") from exc

    def _load(self, source: str) -> None:
        import torch
        from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForImageTextToText, AutoProcessor

        from harness.backends.hf_preflight import prepare_processor
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # the suite draws its own progress; tqdm bars clutter CI logs

        common = {"revision": self.spec.revision, "trust_remote_code": self.spec.trust_remote_code}
        processor = AutoProcessor.from_pretrained(source, **common)
        # before any weights: the entry's replacements, repairs from the model's config,
        # the snapshot comparison and the prompt-form check (hf_preflight.py)
        text_only = getattr(processor, "tokenizer", processor) is processor
        config = AutoConfig.from_pretrained(source, **common).to_dict()
        self.load_notes = prepare_processor(processor, self.spec, config, text_only=text_only,
                                            strict=self.strict_checkpoints)
        dtype = self.dtype_name if self.dtype_name == "auto" else getattr(torch, self.dtype_name)
        if self.dtype_name == "float32" and self.device.startswith("cuda"):
            full_float32_on_cuda()
        kwargs = {**common, "dtype": dtype, "use_safetensors": True}
        try:
            model = AutoModelForImageTextToText.from_pretrained(source, **kwargs)
        except ValueError as exc:
            if "Unrecognized configuration class" not in str(exc):
                raise
            # A text-only model (e.g. the description-recovery diagnoser).
            model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
        self.adopt(processor, model.to(self.device).eval())

    def adopt(self, processor, model) -> None:
        """Use this processor and model (`model` may be a stand-in that answers device and
        dtype only: offline checks render and encode with a snapshot's processor)."""
        self._model = model
        self._processor = processor
        self._tokenizer = getattr(processor, "tokenizer", processor)
        self._text_only = self._tokenizer is processor
        self._rendered = {}
        image_processor = getattr(processor, "image_processor", None)
        self._image_cache = ImageFeatureCache(image_processor) if image_processor is not None else None
        self._tokenizer.padding_side = "left"
        if self._tokenizer.pad_token is None:
            self._tokenizer.pad_token = self._tokenizer.eos_token

    @property
    def model(self):
        self.load()
        return self._model

    @property
    def processor(self):
        self.load()
        return self._processor

    # ---------------------------------------------------------------------- prompting

    def messages(self, request: GenerationRequest) -> list[dict]:
        """The chat messages of a request: optional system turn, then image first, then text.

        The image comes before the text so that all prompts about one image share a
        prefix (prefix caching in vLLM, and fewer tokens that differ between variants).
        """
        msgs = []
        if request.system:
            msgs.append({"role": "system", "content": self._content(request.system, None)})
        msgs.append({"role": "user", "content": self._content(request.prompt, request.image_key)})
        return msgs

    def _content(self, text: str, image_key: Optional[str]):
        if self._text_only:  # plain-text templates expect a string
            return text
        parts = [{"type": "text", "text": text}]
        if image_key is not None:
            parts.insert(0, {"type": "image"})
        return parts

    def render_prompt(self, request: GenerationRequest) -> str:
        """The exact text the model sees (before image-token expansion), via its own template.

        Memoised: a grid renders the same dozen prompts for every image, and a Jinja
        render costs more than the rest of building a request.
        """
        self.load()
        key = (request.system, request.prompt, request.image_key is not None)
        text = self._rendered.get(key)
        if text is None:
            if len(self._rendered) >= 4096:  # diagnoser prompts embed descriptions: keep it bounded
                self._rendered.clear()
            text = self._processor.apply_chat_template(self.messages(request), add_generation_prompt=True, tokenize=False)
            self._rendered[key] = text
        return text

    # --------------------------------------------------------------------- generation

    def generate(self, requests: list[GenerationRequest], images: dict) -> list[GenerationResult]:
        """One result per request, in order; see Backend.generate for the error contract."""
        results: list[Optional[GenerationResult]] = [None] * len(requests)
        for i, req in enumerate(requests):
            if req.image_key is not None and req.image_key not in images:
                results[i] = GenerationResult(text=None, error=f"KeyError: no image for image_key {req.image_key!r}")
        pending = [i for i, r in enumerate(results) if r is None]
        if pending:
            self.load()
        if self._text_only:  # never answer an image question without the image
            for i in [i for i in pending if requests[i].image_key is not None]:
                results[i] = GenerationResult(text=None, error=f"ValueError: {self.spec.name!r} is a text-only model")
                pending.remove(i)
        for batch in plan_batches(requests, pending, self.batch_size):
            outputs = self._run_batch([requests[i] for i in batch], images)
            for i, res in zip(batch, outputs):
                results[i] = res
        return results  # type: ignore[return-value]

    @property
    def batch_size(self) -> int:
        """Rows per planned batch: the registry's batch_size, else 16 on the CPU and up to
        64 on a GPU, where each batch is then cut to what the free memory holds."""
        if self.spec.batch_size:
            return self.spec.batch_size
        return GPU_MAX_BATCH if self.device.startswith("cuda") else DEFAULT_BATCH_SIZE

    def _run_batch(self, reqs: list[GenerationRequest], images: dict) -> list[GenerationResult]:
        """Generate one batch; on CUDA OOM retry in halves, on any other failure error results."""
        import torch

        try:
            return [GenerationResult(text=t, truncated=cut) for t, cut in self._generate_batch(reqs, images)]
        except HarnessError:
            raise
        except Exception as exc:
            if isinstance(exc, torch.cuda.OutOfMemoryError):
                torch.cuda.empty_cache()
                if len(reqs) > 1:
                    half = len(reqs) // 2
                    return self._run_batch(reqs[:half], images) + self._run_batch(reqs[half:], images)
            return [GenerationResult(text=None, error=error_text(exc)) for _ in reqs]

    def _generate_batch(self, reqs: list[GenerationRequest], images: dict) -> list[tuple[str, bool]]:
        """Prompts about one image share its prefix (hf_prefix.py) when they can; else the plain way."""
        if self.prefix_reuse and len(reqs) > 1 and reqs[0].image_key is not None:
            from .hf_prefix import PrefixReuse, PrefixUnavailable

            if self._prefix is None:
                self._prefix = PrefixReuse(self)
            try:
                return self._prefix.generate(reqs, images, self._encode, self._generate_plain)
            except HarnessError:
                raise
            except Exception as exc:  # noqa: BLE001 - never a lost answer: the plain path answers instead
                import torch

                if isinstance(exc, torch.cuda.OutOfMemoryError):
                    raise
                self._prefix.note_once(str(exc) if isinstance(exc, PrefixUnavailable) else error_text(exc))
        return self._generate_plain(reqs, images)

    def notes(self) -> list[str]:
        """What the run should know about how this model's answers were computed."""
        return list(self._prefix.notes) if self._prefix is not None else []

    def _generate_plain(self, reqs: list[GenerationRequest], images: dict) -> list[tuple[str, bool]]:
        """Tokenize a batch (left-padded), decode greedily; per row the new text and
        whether it stopped at the token cap instead of on an end-of-sequence token."""
        import torch

        inputs = self._encode(reqs, images)
        fit = gpu_rows(self._model, self.device, inputs["input_ids"].shape[1], reqs[0].max_new_tokens, len(reqs))
        if fit is not None and fit < len(reqs):  # too long for the free memory: run it in parts
            return self._generate_plain(reqs[:fit], images) + self._generate_plain(reqs[fit:], images)
        config = self._generation_config(reqs[0].max_new_tokens)
        with torch.inference_mode():
            out = self._model.generate(**inputs, generation_config=config)
        new_tokens = out[:, inputs["input_ids"].shape[1] :]
        texts = [t.strip() for t in self._tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]
        cut = hit_token_cap(new_tokens.tolist(), config.eos_token_id, reqs[0].max_new_tokens)
        return list(zip(texts, cut))

    def _encode(self, reqs: list[GenerationRequest], images: dict, *, use_cache: bool = True):
        """Processor inputs of a batch, on the model's device, floats in the model's dtype.

        With `use_cache` each image's processor outputs are computed once and reused
        (hf_batch.ImageFeatureCache); the inputs are identical to the uncached path.
        """
        prompts = [self.render_prompt(r) for r in reqs]
        kwargs: dict = {"text": prompts, "padding": True, "return_tensors": "pt"}
        bos = self._tokenizer.bos_token
        if bos and all(p.startswith(bos) for p in prompts):
            # The template already wrote BOS (Gemma-3 style): a second one would shift
            # every prediction. Same rule as the processors' own tokenize=True path.
            kwargs["add_special_tokens"] = False
        if reqs[0].image_key is not None:
            kwargs["images"] = [[images[r.image_key]] for r in reqs]
        inputs = None
        if "images" in kwargs and use_cache and self._image_cache is not None:
            try:
                with cached_image_processor(self._processor, self._image_cache):
                    inputs = self._processor(**kwargs)
            except CacheUnsupported:  # an unusual image processor: preprocess per call as before
                self._image_cache = None
        if inputs is None:
            inputs = self._processor(**kwargs)
        inputs = inputs.to(self._model.device)
        for name, value in inputs.items():  # pixel values in the model's dtype, ids untouched
            if value.is_floating_point():
                inputs[name] = value.to(self._model.dtype)
        return inputs

    def _generation_config(self, max_new_tokens: int):
        """Greedy decoding of exactly up to `max_new_tokens`, whatever the checkpoint's defaults.

        The checkpoint's own sampling settings and any minimum length are cleared so that
        answers are deterministic and short answers are not padded out (SPEC §5).
        """
        gc = copy.deepcopy(self._model.generation_config)
        gc.do_sample = False
        gc.num_beams = 1
        gc.temperature = None
        gc.top_p = None
        gc.top_k = None
        gc.min_new_tokens = None
        gc.min_length = 0
        gc.max_length = None
        gc.max_new_tokens = max_new_tokens
        if gc.pad_token_id is None:
            gc.pad_token_id = self._tokenizer.pad_token_id
        return gc

    # ---------------------------------------------------------------------- embeddings

    def embed(self, images: list, *, layer: int = -1, pooling: str = "mean", features: str = "selected"):
        """Pooled image features, (n_images, width); see hf_embed.py for `features`."""
        from harness.backends.hf_embed import embed_images

        self.load()
        if self._text_only:
            raise NotImplementedError(f"{self.spec.name!r} is a text-only model: no vision encoder")
        return embed_images(self._model, self._processor, images, layer=layer, pooling=pooling, features=features,
                            batch_size=self.spec.batch_size or DEFAULT_BATCH_SIZE)

    # ------------------------------------------------------------------------ closing

    def close(self) -> None:
        """Drop the model and free accelerator memory; the backend can load again later."""
        self._model = self._processor = self._tokenizer = self._image_cache = None
        self._rendered = {}
        if self._device is not None and self._device.startswith("cuda"):
            import torch

            torch.cuda.empty_cache()


def full_float32_on_cuda() -> None:
    """float32 means float32 on a GPU too: PyTorch lets cuDNN convolutions (a vision tower's
    patch embedding) use TF32, which keeps 10 mantissa bits, and a registry entry that pins
    float32 (the organism does) asks for the CPU's arithmetic, so the same answers."""
    import torch

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
