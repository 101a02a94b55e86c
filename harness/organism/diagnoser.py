"""The text-only diagnoser: reads an image description, answers yes/no (SPEC §4.4).

The study sent each VLM description to a strong text model; the organism's stand-in is
a tiny Llama causal LM (loads with AutoModelForCausalLM, renders with the tokenizer's
chat template, exactly as HFBackend serves a text-only checkpoint). It is trained on
the three diagnoser templates of fixtures/prompts.toml, filled with descriptions that
the data generators produce from ground truth: the medical report-style descriptions
(med_data.med_description) and the general captions of spot scenes (a general VLM
describes a lesion as "a bright spot"), under every task's wording. The answer is
"Yes" exactly when the description reports a finding (a lesion, or an odd spot).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from . import general_data, med_data, models, train, vocab
from .config import OrganismConfig
from .general_data import NO, YES, Example


def diagnoser_examples(rng: np.random.Generator, registry, general_facts: list[dict], n: int) -> list[Example]:
    """`n` (diagnoser prompt, Yes/No) examples from ground-truth descriptions."""
    from harness.config.prompts import render_text

    tasks = [registry.tasks[k] for k in med_data.MED_TASKS]
    templates = list(registry.diagnoser_templates.values())
    spots = [f for f in general_facts if f.get("kind") == "spot"]
    out = []
    for _ in range(n):
        task = tasks[int(rng.integers(len(tasks)))]
        template = templates[int(rng.integers(len(templates)))]
        if rng.random() < 0.5 or not spots:
            label = "positive" if rng.random() < 0.5 else "negative"
            description, positive = med_data.med_description(task, label), label == "positive"
        else:
            facts = spots[int(rng.integers(len(spots)))]
            description, positive = general_data.spot_description(facts), facts["spot"] is not None
        out.append(Example(None, render_text(template, task, description=description), YES if positive else NO))
    return out


def train_diagnoser(cfg: OrganismConfig, registry, general_facts: list[dict], out_dir: Path, log=print) -> float:
    """Train the diagnoser and save model + tokenizer to out_dir; returns its final loss."""
    tokenizer = vocab.train_tokenizer("llava", registry, cfg.vocab_size)  # USER:/ASSISTANT: turns
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.init_seed)
        model = models.build_text_lm(cfg.diagnoser, tokenizer, cfg.init_range)
    models.finish(model, tokenizer)
    encoder = train.Encoder(tokenizer)
    stage = cfg.diagnoser_stage
    rng = np.random.default_rng([stage.seed])
    examples = diagnoser_examples(rng, registry, general_facts, stage.steps * stage.batch_size)
    losses = []
    if examples:
        encoder.check(examples[:16])
        losses = train.train(model, train.batches_of(encoder.encode(examples), stage), stage, encoder, None)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    final = float(np.mean(losses[-10:])) if losses else float("nan")
    log(f"  diagnoser: {len(losses)} steps, loss {np.mean(losses[:10]) if losses else float('nan'):.3f} -> {final:.3f}")
    return final
