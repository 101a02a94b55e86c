"""Training one VLM family: a base on general data, then a med variant tuned from it.

Both families share one image bank (general scenes first, then the medical training
images), generated once per build; each family turns it into pixel values with its
own image processor. The base is trained and saved, then the same weights continue
into the narrow medical fine-tuning, exactly as a medical VLM is tuned from a general
checkpoint.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from . import general_data, med_data, models, scenes, train, vision, vocab
from .config import OrganismConfig

FAMILIES = {"llava": "llava", "gemma": "gemma3"}  # organism family -> tokenizer/template family


@dataclass
class Bank:
    """All training images of one build, with what each one is."""

    images: list = field(default_factory=list)  # PIL images
    facts: list = field(default_factory=list)  # general: scene facts; medical: {"task", "label"}
    n_general: int = 0
    n_med: int = 0  # the medical images follow the general ones


def make_bank(cfg: OrganismConfig, tasks) -> Bank:
    """General scenes (half with a spot, the rest spot-free or shapes) + medical images."""
    from PIL import Image

    rng = np.random.default_rng([cfg.train_seed, 1])
    bank = Bank()
    for i in range(cfg.general_images):
        if i % 4 == 3:
            arr, facts = scenes.shape_scene(rng, 64)
        else:
            arr, facts = scenes.spot_scene(rng, 64, positive=bool(rng.random() < 0.5))
        bank.images.append(Image.fromarray(arr))
        bank.facts.append(facts)
    bank.n_general = len(bank.images)
    for key, label, img in med_data.med_images(tasks, cfg.med_images_per_class, cfg.train_seed, 64):
        bank.images.append(img)
        bank.facts.append({"task": key, "label": label})
    bank.n_med = len(bank.images) - bank.n_general
    return bank


def general_examples(rng: np.random.Generator, bank: Bank, n: int, mix: general_data.Mix) -> list[general_data.Example]:
    out = []
    for _ in range(n):
        i = int(rng.integers(bank.n_general))
        prompt, answer = general_data.general_question(rng, bank.facts[i], mix)
        out.append(general_data.Example(i, prompt, answer))
    return out


def med_examples(rng: np.random.Generator, bank: Bank, registry, n: int, general_share: float, mix: general_data.Mix):
    """Medical examples, with a `general_share` of general ones mixed in (replay)."""
    n_med = bank.n_med
    general = general_examples(rng, bank, n, mix)
    out = []
    for k in range(n):
        if rng.random() < general_share or n_med == 0:
            out.append(general[k])
            continue
        i = bank.n_general + int(rng.integers(n_med))
        f = bank.facts[i]
        out.append(med_data.med_example(rng, i, registry.tasks[f["task"]], f["label"], registry))
    return out


def _fit(model, encoder, examples, stage, pixels, callback=None) -> list[float]:
    if not examples:
        return []
    encoder.check(examples[:16])
    encoded = encoder.encode(examples)
    return train.train(model, train.batches_of(encoded, stage), stage, encoder, pixels, callback)


def new_model(family: str, cfg: OrganismConfig, registry):
    """(model, processor, encoder) of a fresh, untrained model of `family`."""
    tokenizer = vocab.train_tokenizer(FAMILIES[family], registry, cfg.vocab_size)
    geo = cfg.llava if family == "llava" else cfg.gemma
    build = models.build_llava if family == "llava" else models.build_gemma
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.init_seed)
        model, processor = build(geo, tokenizer, cfg.init_range)
    models.finish(model, tokenizer)
    return model, processor, train.Encoder(processor)


def train_family(family: str, cfg: OrganismConfig, registry, bank: Bank, out_base: Path, out_med: Path,
                 log=print, callback=None) -> dict[str, float]:
    """Train and save `organism-<family>-base` to out_base and `-med` to out_med.

    Stages: the vision tower alone (vision.py), alignment (captions and plain
    questions), instruction tuning (every general form) -> base; then the narrow
    medical tuning -> med. Returns seconds per stage. `callback(stage, step, model)`
    is for diagnostics.
    """
    times = {}
    clock = time.perf_counter()

    def lap(name: str, losses) -> None:
        nonlocal clock
        now = time.perf_counter()
        times[name] = now - clock
        clock = now
        if losses:
            log(f"  {family} {name}: {len(losses)} steps in {times[name]:.0f} s, "
                f"loss {np.mean(losses[:10]):.3f} -> {np.mean(losses[-10:]):.3f}")

    def hook(name):
        return None if callback is None else (lambda step: callback(name, step, model))

    model, processor, encoder = new_model(family, cfg, registry)
    pixels = train.pixel_bank(processor, bank.images)
    lap("setup", None)
    losses = vision.pretrain_vision(model, pixels[: bank.n_general], bank.facts[: bank.n_general], cfg.vision)
    lap("vision", losses)
    rng = np.random.default_rng([cfg.align.seed, len(family)])
    examples = general_examples(rng, bank, cfg.align.steps * cfg.align.batch_size, general_data.Mix.align())
    lap("align", _fit(model, encoder, examples, cfg.align, pixels, hook("align")))
    rng = np.random.default_rng([cfg.base.seed, len(family)])
    examples = general_examples(rng, bank, cfg.base.steps * cfg.base.batch_size, cfg.base_mix)
    lap("base", _fit(model, encoder, examples, cfg.base, pixels, hook("base")))
    _save(model, processor, out_base)
    stage = cfg.med_stage(family)
    rng = np.random.default_rng([stage.seed, len(family)])
    examples = med_examples(rng, bank, registry, stage.steps * stage.batch_size, stage.general_share, cfg.base_mix)
    lap("med", _fit(model, encoder, examples, stage, pixels, hook("med")))
    _save(model, processor, out_med)
    if family == "gemma":  # its next version, tuned further from the saved one (OrganismConfig.gemma_med_v2)
        stage = cfg.gemma_med_v2
        rng = np.random.default_rng([stage.seed, len(family)])
        examples = med_examples(rng, bank, registry, stage.steps * stage.batch_size, stage.general_share, cfg.base_mix)
        lap("med-v2", _fit(model, encoder, examples, stage, pixels, hook("med-v2")))
        _save(model, processor, out_med.with_name(out_med.name + "-v2"))
    return times


def _save(model, processor, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    processor.save_pretrained(folder)
