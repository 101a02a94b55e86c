"""The synthetic tasks: deterministic, the lesion signal is where it should be, the
background carries no label, and difficulty really grows from brain_tumor to
histopathology (a linear probe on generic image statistics says so)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from harness.core import HarnessError
from harness.data.synthetic import DIFFICULTY_PARAMS, difficulty_params, generate_image

TASKS = ("brain_tumor", "pneumonia", "skin_cancer", "histopathology")
N_PER_CLASS = 150
SEED = 0


@pytest.fixture(scope="module")
def images():
    """{task: {label: float array (n, 64, 64, 3) in [0, 1]}}, generated once."""
    def batch(task, label):
        return np.stack([np.asarray(generate_image(task, label, i, SEED), np.float64) for i in range(N_PER_CLASS)]) / 255

    return {task: {label: batch(task, label) for label in ("positive", "negative")} for task in (*TASKS, "retina_user_task")}


def _effect_size(pos: np.ndarray, neg: np.ndarray) -> float:
    return float((pos.mean() - neg.mean()) / np.sqrt((pos.var() + neg.var()) / 2))


# ---------------------------------------------------------------------------- basics


def test_deterministic():
    for task in (*TASKS, "anything_else"):
        a = generate_image(task, "positive", 3, 42)
        b = generate_image(task, "positive", 3, 42)
        assert a.mode == "RGB" and a.size == (64, 64)
        assert a.tobytes() == b.tobytes()


def test_every_argument_changes_the_image():
    base = generate_image("pneumonia", "positive", 0, 1).tobytes()
    others = [("pneumonia", "positive", 1, 1), ("pneumonia", "positive", 0, 2), ("pneumonia", "negative", 0, 1)]
    for other in (*others, ("brain_tumor", "positive", 0, 1)):
        assert generate_image(*other).tobytes() != base, other


@pytest.mark.parametrize("size", [32, 96])
def test_size(size):
    assert generate_image("histopathology", "negative", 0, 0, size=size).size == (size, size)


def test_bad_arguments():
    with pytest.raises(HarnessError, match="label"):
        generate_image("brain_tumor", "maybe", 0, 0)
    with pytest.raises(HarnessError, match="size"):
        generate_image("brain_tumor", "positive", 0, 0, size=4)


def test_difficulty_table():
    ranks = [DIFFICULTY_PARAMS[t]["rank"] for t in TASKS]
    assert ranks == sorted(ranks) and len(set(ranks)) == 4
    assert difficulty_params("retina_user_task") is DIFFICULTY_PARAMS["generic"]
    assert ranks[0] < DIFFICULTY_PARAMS["generic"]["rank"] < ranks[-1]


# -------------------------------------------------------------- where the signal lives


def _central_disc(radius: float = 26.0) -> np.ndarray:
    yy, xx = np.mgrid[0:64, 0:64]
    return np.hypot(yy - 31.5, xx - 31.5) < radius


def _erode(mask: np.ndarray, steps: int) -> np.ndarray:
    for _ in range(steps):
        mask = mask & np.roll(mask, 1, 0) & np.roll(mask, -1, 0) & np.roll(mask, 1, 1) & np.roll(mask, -1, 1)
    return mask


def _brightest(a):  # brain: a bright blob
    return np.percentile(a.mean(2), 99.5)


def _lung_darkness_ratio(a):  # pneumonia: opacity lifts the dark lung fields
    g = a.mean(2)
    return np.percentile(g, 30) / np.percentile(g, 90)


def _mole_variegation(a):  # skin: patchy colour inside the mole
    g = a.mean(2)
    core = _erode((g < 0.5) & _central_disc(), 2)
    return g[core].std() / g[core].mean()


def _mole_border(a):  # skin: irregular outline (boundary length / sqrt(area))
    m = (a.mean(2) < 0.5) & _central_disc()
    edges = (m[1:] != m[:-1]).sum() + (m[:, 1:] != m[:, :-1]).sum()
    return edges / np.sqrt(m.sum())


def _nuclear_fraction(a):  # histopathology: more / larger nuclei (purple: low green)
    return (a[..., 1] < 0.5).mean()


@pytest.mark.parametrize(
    "task, statistic, min_effect",
    [
        ("brain_tumor", _brightest, 3.0),
        ("pneumonia", _lung_darkness_ratio, 1.2),
        ("skin_cancer", _mole_variegation, 1.0),
        ("skin_cancer", _mole_border, 0.3),
        ("histopathology", _nuclear_fraction, 0.1),
        ("retina_user_task", _brightest, 0.3),
    ],
)
def test_positive_differs_in_the_intended_statistic(images, task, statistic, min_effect):
    pos = np.array([statistic(a) for a in images[task]["positive"]])
    neg = np.array([statistic(a) for a in images[task]["negative"]])
    assert _effect_size(pos, neg) > min_effect


def _border_frame(a):
    frame = np.ones(a.shape[:2], bool)
    frame[6:-6, 6:-6] = False
    return a[frame].mean()


def _skin_tone(a):
    return a[20:44, 3:8].mean()  # left of the mole, inside the dermatoscope vignette


def _stroma_colour(a):
    return a[a[..., 1] > 0.55].mean()


@pytest.mark.parametrize(
    "task, background",
    [
        ("brain_tumor", _border_frame),
        ("pneumonia", _border_frame),
        ("skin_cancer", _skin_tone),
        ("histopathology", _stroma_colour),
    ],
)
def test_background_carries_no_label(images, task, background):
    pos = np.array([background(a) for a in images[task]["positive"]])
    neg = np.array([background(a) for a in images[task]["negative"]])
    assert abs(_effect_size(pos, neg)) < 0.3


# ------------------------------------------------------------------ graded difficulty


def _generic_features(a: np.ndarray) -> list[float]:
    """Task-agnostic image statistics: per-channel and grey-level moments and
    percentiles, plus edge strength. The same for every task, so the probe's accuracy
    ranks how visible each task's lesion signal is."""
    grey = a.mean(2)
    feats: list[float] = []
    for channel in (a[..., 0], a[..., 1], a[..., 2], grey):
        feats += [channel.mean(), channel.std(), *np.percentile(channel, [1, 5, 25, 50, 75, 95, 99])]
    gy, gx = np.gradient(grey)
    magnitude = np.hypot(gx, gy)
    return feats + [magnitude.mean(), np.percentile(magnitude, 95)]


def _probe_accuracy(images, task: str) -> float:
    pos, neg = images[task]["positive"], images[task]["negative"]
    x = np.array([_generic_features(a) for a in np.concatenate([pos, neg])])
    y = np.array([1] * len(pos) + [0] * len(neg))
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    return float(cross_val_score(probe, x, y, cv=folds).mean())


def test_probe_accuracy_falls_with_difficulty(images):
    acc = {task: _probe_accuracy(images, task) for task in (*TASKS, "retina_user_task")}
    ordered = [acc[t] for t in TASKS]
    assert all(a > b + 0.03 for a, b in zip(ordered, ordered[1:])), acc
    assert acc["brain_tumor"] >= 0.95, acc
    assert 0.5 <= acc["histopathology"] <= 0.7, acc  # near chance, yet not below it
    assert acc["histopathology"] < acc["retina_user_task"] < acc["brain_tumor"], acc  # generic task: medium
