"""Stage 0: pre-training the vision tower on general scenes, as CLIP/SigLIP are.

Real VLMs start from a vision encoder pre-trained on image-level supervision; training
a tiny ViT and a language model jointly from scratch spends most of its steps finding
any visual feature at all (the answer token attends to an average of patches, which a
small odd spot barely moves). So each family's own vision tower is first trained
alone, with linear heads over max- and mean-pooled patch features, to predict the
general scenes' facts (is there a spot, is it bright, the tone and style of the scene,
the kind, number and colour of shapes), with random flips (every one of those facts
survives a flip). The heads are thrown away; the tower goes into the VLM.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from . import scenes
from .config import Stage
from .train import lr_at

HEADS = {
    "spot": 2, "bright": 2, "tone": 3, "style": len(scenes.SPOT_STYLES),
    "shape": len(scenes.SHAPES), "count": 4, "colour": len(scenes.COLOURS),
}
_TONES = ("dark", "grey", "bright")


def targets(facts: dict) -> dict[str, int]:
    """Class index per head for one scene; -1 where the head does not apply."""
    t = {k: -1 for k in HEADS}
    if facts["kind"] == "spot":
        spot = facts["spot"]
        t["spot"] = int(spot is not None)
        t["bright"] = -1 if spot is None else int(spot["bright"])
        t["tone"] = _TONES.index(facts["tone"])
        t["style"] = scenes.SPOT_STYLES.index(facts["style"])
    else:
        t["shape"] = scenes.SHAPES.index(facts["shape"])
        t["count"] = facts["count"] - 1
        t["colour"] = list(scenes.COLOURS).index(facts["colour"])
    return t


def patch_features(model, pixel_values: torch.Tensor) -> torch.Tensor:
    """The patch features the VLM's projector receives (batch x patches x width)."""
    tower = model.model.vision_tower
    cfg = model.config
    if cfg.model_type == "llava":  # hidden state of vision_feature_layer, CLS dropped
        hidden = tower(pixel_values, output_hidden_states=True).hidden_states[cfg.vision_feature_layer]
        return hidden[:, 1:] if cfg.vision_feature_select_strategy == "default" else hidden
    return tower(pixel_values=pixel_values).last_hidden_state  # Gemma-3: SigLIP output


def pretrain_vision(model, pixels: torch.Tensor, facts: list[dict], stage: Stage) -> list[float]:
    """Train model's vision tower on scene facts for stage.steps steps; returns the losses."""
    width = model.config.vision_config.hidden_size
    with torch.random.fork_rng(devices=[]):  # the heads' init must not depend on earlier draws
        torch.manual_seed(stage.seed)
        head = torch.nn.Linear(width, sum(HEADS.values()))  # on the summary token / mean
        head_max = torch.nn.Linear(width, sum(HEADS.values()))  # on the max over patches
    table = torch.tensor([[targets(f)[k] for k in HEADS] for f in facts])
    params = [*model.model.vision_tower.parameters(), *head.parameters(), *head_max.parameters()]
    opt = torch.optim.AdamW(params, lr=stage.lr, betas=(0.9, 0.98), weight_decay=stage.weight_decay)
    rng = np.random.default_rng(stage.seed)
    model.train()
    losses = []
    for step in range(stage.steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(stage, step)
        idx = torch.from_numpy(rng.integers(0, len(facts), stage.batch_size))
        x = _flip(pixels[idx], rng)
        feats = patch_features(model, x)
        summary = feats[:, 0] if _has_cls(model) else feats.mean(1)
        loss = _multi_head_loss(head(summary), table[idx]) + _multi_head_loss(head_max(feats.max(1).values), table[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        losses.append(float(loss.detach()))
    model.eval()
    return losses


def _has_cls(model) -> bool:
    """True when the VLM receives CLIP's CLS token first (LLaVA with the "full" strategy)."""
    cfg = model.config
    return cfg.model_type == "llava" and cfg.vision_feature_select_strategy == "full"


def _flip(x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """Random horizontal and vertical flips, drawn from the stage's numpy stream."""
    h = torch.from_numpy(rng.random(len(x)) < 0.5).view(-1, 1, 1, 1)
    v = torch.from_numpy(rng.random(len(x)) < 0.5).view(-1, 1, 1, 1)
    x = torch.where(h, x.flip(3), x)
    return torch.where(v, x.flip(2), x)


def _multi_head_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Sum over heads of the cross-entropy on the rows where the head applies."""
    total, start = logits.new_zeros(()), 0
    for j, n in enumerate(HEADS.values()):
        t = target[:, j]
        keep = t >= 0
        if keep.any():
            total = total + F.cross_entropy(logits[keep, start:start + n], t[keep])
        start += n
    return total
