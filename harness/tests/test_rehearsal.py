"""The rehearsal at the study checkpoints' real geometry (issue 19).

CI runs `python -m harness.rehearsal --shrink` (one layer per stack, narrow widths, the
true image geometry, vocabulary and special-token ids) for one checkpoint of each family,
and shows that the two planted mistakes fail it. The four checkpoints at their true widths
run through the command itself (docs/endpoints-and-gpus.md), not here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.backends.checkpoint_snapshot import load_snapshot
from harness.rehearsal.build import CI_SHRINK, rehearsal_config

REPO = Path(__file__).resolve().parents[2]
GEOMETRY = {"vision": ("image_size", "patch_size"),
            "top": ("image_token_index", "mm_tokens_per_image", "image_grid_pinpoints", "boi_token_index",
                    "eoi_token_index", "vision_feature_layer", "vision_feature_select_strategy")}


def rehearse(tmp_path: Path, *args: str) -> tuple[int, list[dict], str]:
    out = tmp_path / "rows.json"
    done = subprocess.run([sys.executable, "-m", "harness.rehearsal", "--shrink", "--json", str(out), *args],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    rows = json.loads(out.read_text()) if out.exists() else []
    return done.returncode, rows, done.stdout + done.stderr


@pytest.mark.parametrize("name", ["llava-v1.6-mistral-7b", "llava-med-v1.5-mistral-7b", "gemma-3-4b-it",
                                  "medgemma-4b-it"])
def test_shrinking_keeps_the_image_geometry_vocabulary_and_token_ids(name):
    snapshot = load_snapshot(name)
    full = rehearsal_config(snapshot, depth=None)
    small = rehearsal_config(snapshot, depth=1, shrink=CI_SHRINK)
    for key in GEOMETRY["top"]:
        assert small.get(key) == full.get(key), key
    for key in GEOMETRY["vision"]:
        assert small["vision_config"][key] == full["vision_config"][key], key
    assert small["text_config"]["vocab_size"] == full["text_config"]["vocab_size"]
    assert small["text_config"]["num_hidden_layers"] == small["vision_config"]["num_hidden_layers"] == 1
    # the completed config agrees with every field the snapshot recorded
    recorded = snapshot.model_config
    for key, value in recorded.items():
        if isinstance(value, dict) and key in full:
            for sub, v in value.items():
                if key != "original":
                    assert full[key].get(sub) == v, f"{key}.{sub}"
        elif key != "original":
            assert full.get(key) == value, key


def test_the_full_depth_config_is_the_checkpoints_size():
    """Parameter counts from the completed configs, against the published sizes (7.57 B for
    LLaVA-NeXT-Mistral-7B, 4.30 B for Gemma-3-4B)."""
    from transformers import AutoConfig, AutoModelForImageTextToText

    counts = {}
    for name in ("llava-v1.6-mistral-7b", "gemma-3-4b-it"):
        config = rehearsal_config(load_snapshot(name), depth=None)
        config = AutoConfig.for_model(config.pop("model_type"), **config)
        import torch

        with torch.device("meta"):
            model = AutoModelForImageTextToText.from_config(config)
        counts[name] = sum(p.numel() for p in model.parameters()) / 1e9
    assert counts["llava-v1.6-mistral-7b"] == pytest.approx(7.57, abs=0.02)
    assert counts["gemma-3-4b-it"] == pytest.approx(4.30, abs=0.02)


def test_one_checkpoint_of_each_family_rehearses_ok(tmp_path):
    code, rows, output = rehearse(tmp_path, "--names", "llava-v1.6-mistral-7b,gemma-3-4b-it")
    assert code == 0, output
    by_name = {row["checkpoint"]: row for row in rows}
    assert by_name["llava-v1.6-mistral-7b"]["image_tokens"] == 2928  # anyres: 512 x 512 -> a 2 x 2 grid of 336 tiles
    assert by_name["gemma-3-4b-it"]["image_tokens"] == 256
    for row in rows:
        assert row["ok"] and row["batch_invariant"] and row["preflight_clean"], row
        assert row["reasked"] > 0  # random weights never stop: the truncation re-ask ran
        assert row["embedding_dim"] == CI_SHRINK["vision"]["hidden_size"]  # what the projector receives
        assert row["s_per_item_b1"] > 0 and row["s_per_item_b8"] > 0 and row["peak_memory_mb"] > 0


@pytest.mark.parametrize("broken, expected", [
    ("llava-med-template", "off-format prompt"),
    ("gemma-image-token", "image"),
])
def test_a_planted_mistake_fails_the_rehearsal(tmp_path, broken, expected):
    code, rows, output = rehearse(tmp_path, "--break", broken)
    assert code == 1, output
    assert len(rows) == 1 and not rows[0]["ok"]
    assert expected in (rows[0].get("error") or ""), rows[0]
