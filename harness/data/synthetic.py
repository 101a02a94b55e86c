"""Synthetic stand-ins for the study's four tasks, with graded, real difficulty.

No data set can be downloaded on the build machines, yet the suite needs images whose
classes a tiny model can learn to very different degrees, in the study's order:
brain tumor (easy) < pneumonia < skin cancer < histopathology (near chance by eye).
Each generator draws an anatomy-like background from ONE distribution shared by both
classes (so background statistics carry no label information) and adds a lesion
signal whose strength is set by the knobs in DIFFICULTY_PARAMS:

- brain_tumor: a bright, clearly bounded blob on a grey "MRI slice" disc.
- pneumonia: a faint, diffuse opacity inside one dark "lung field" of a chest film.
- skin_cancer: every image has a mole; malignant ones have an irregular border, a
  patchy colour and are a little larger.
- histopathology: every image is a pink patch of purple "nuclei"; carcinoma has
  slightly more, slightly larger and more variable nuclei, under much larger
  per-image stain variation.

Unknown task keys (user-added tasks) get a generic grey field with a soft blob of
medium difficulty. Images are pure functions of (task key, label, index, seed, size),
drawn with numpy only, so a run is reproducible on any machine.
"""

from __future__ import annotations

import zlib

import numpy as np
from PIL import Image

from harness.core import HarnessError

# Per-task knobs. Lengths are fractions of the half image width (1.0 = edge), so the
# images look the same at any size. "*_jitter" knobs are nuisance variation shared by
# both classes; the remaining knobs are the lesion signal that separates them.
DIFFICULTY_PARAMS: dict[str, dict] = {
    "brain_tumor": {
        "rank": 1,
        "signal": "bright blob inside the brain disc",
        "lesion_contrast": 0.50,  # added intensity at the blob centre (tissue is ~0.32)
        "lesion_radius": (0.12, 0.20),
        "gain_jitter": 0.10,
        "noise_sigma": 0.03,
    },
    "pneumonia": {
        "rank": 2,
        "signal": "diffuse opacity in one lung field",
        "opacity_contrast": 0.24,  # added intensity at the opacity centre (lung is ~0.2)
        "opacity_sigma": (0.14, 0.24),
        "gain_jitter": 0.15,
        "lung_size_jitter": 0.08,
        "noise_sigma": 0.04,
    },
    "skin_cancer": {
        "rank": 3,
        "signal": "irregular border and patchy colour of the mole (class ranges overlap)",
        "border_irregularity": {"negative": (0.0, 0.05), "positive": (0.025, 0.085)},
        "colour_variegation": {"negative": (0.02, 0.08), "positive": (0.09, 0.20)},
        "mole_radius": {"negative": (0.20, 0.32), "positive": (0.22, 0.34)},
        "tone_jitter": 0.08,
        "noise_sigma": 0.03,
    },
    "histopathology": {
        "rank": 4,
        "signal": "slightly denser, larger, more variable nuclei",
        "nuclei_count": {"negative": 46, "positive": 48},  # Poisson means per patch
        "cellularity_sd": 0.25,  # shared log-normal spread of the nuclei density
        "nucleus_radius": {"negative": 0.055, "positive": 0.0555},
        "nucleus_radius_sd": {"negative": 0.008, "positive": 0.0095},
        "stain_jitter": 0.10,
        "noise_sigma": 0.04,
    },
    "generic": {
        "rank": 2.5,
        "signal": "soft blob on a textured grey field",
        "lesion_contrast": 0.17,
        "lesion_radius": (0.14, 0.24),
        "texture_sigma": 0.06,
        "gain_jitter": 0.12,
        "noise_sigma": 0.04,
    },
}

_TASK_KEYS = ("brain_tumor", "pneumonia", "skin_cancer", "histopathology")


def difficulty_params(task_key: str) -> dict:
    """The knobs used for a task key; unknown keys fall back to the generic task."""
    return DIFFICULTY_PARAMS[task_key if task_key in _TASK_KEYS else "generic"]


def generate_image(task_key: str, label: str, index: int, seed: int, size: int = 64) -> Image.Image:
    """One deterministic RGB image of `task_key` with the given label ("positive"/"negative")."""
    if label not in ("positive", "negative"):
        raise HarnessError(f"synthetic {task_key}: label must be 'positive' or 'negative', got {label!r}")
    if size < 16:
        raise HarnessError(f"synthetic {task_key}: size must be at least 16 pixels, got {size}")
    rng = _image_rng(task_key, label, index, seed)
    draw = _GENERATORS.get(task_key, _generic)
    canvas = draw(rng, _Grid(size), label == "positive", difficulty_params(task_key))
    return Image.fromarray(_to_uint8(canvas), mode="RGB")


def _image_rng(task_key: str, label: str, index: int, seed: int) -> np.random.Generator:
    """An independent stream per image: stable across processes (crc32, not hash())."""
    key = [int(seed) & 0xFFFFFFFF, zlib.crc32(task_key.encode()), 1 if label == "positive" else 0, int(index)]
    return np.random.default_rng(key)


class _Grid:
    """Pixel coordinates in [-1, 1] (x to the right, y downwards)."""

    def __init__(self, size: int):
        axis = (np.arange(size) + 0.5) / size * 2.0 - 1.0
        self.size = size
        self.y, self.x = np.meshgrid(axis, axis, indexing="ij")


def _to_uint8(canvas: np.ndarray) -> np.ndarray:
    if canvas.ndim == 2:
        canvas = np.repeat(canvas[:, :, None], 3, axis=2)
    return np.clip(np.rint(canvas * 255.0), 0, 255).astype(np.uint8)


def _soft_disc(g: _Grid, cx: float, cy: float, radius, softness: float) -> np.ndarray:
    """1 inside a disc (radius may vary with angle), 0 outside, with a soft edge."""
    d = np.hypot(g.x - cx, g.y - cy)
    z = np.clip((d - radius) / softness, -30.0, 30.0)
    return 1.0 / (1.0 + np.exp(z))


def _soft_ellipse(g: _Grid, cx: float, cy: float, ax: float, ay: float, softness: float) -> np.ndarray:
    d = np.hypot((g.x - cx) / ax, (g.y - cy) / ay)
    z = np.clip((d - 1.0) / softness, -30.0, 30.0)
    return 1.0 / (1.0 + np.exp(z))


def _smooth_noise(rng: np.random.Generator, size: int, cutoff: float) -> np.ndarray:
    """Unit-variance low-pass noise (tissue texture); cutoff in cycles per pixel."""
    white = rng.standard_normal((size, size))
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.rfftfreq(size)[None, :]
    field = np.fft.irfft2(np.fft.rfft2(white) * np.exp(-(fx**2 + fy**2) / (2 * cutoff**2)), s=(size, size))
    return (field - field.mean()) / (field.std() + 1e-12)


def _gaussian(g: _Grid, cx: float, cy: float, sigma: float) -> np.ndarray:
    return np.exp(-((g.x - cx) ** 2 + (g.y - cy) ** 2) / (2 * sigma**2))


def _union_of_discs(g: _Grid, centres: np.ndarray, radii: np.ndarray, softness: float) -> np.ndarray:
    """Soft mask of many small discs; the edge sigmoid is monotone, so the union is
    the sigmoid of the smallest signed distance (one exp per pixel, not per disc)."""
    if len(radii) == 0:
        return np.zeros_like(g.x)
    d = (g.x[None] - centres[:, 0, None, None]) ** 2 + (g.y[None] - centres[:, 1, None, None]) ** 2
    signed = (np.sqrt(d) - radii[:, None, None]).min(axis=0)
    return 1.0 / (1.0 + np.exp(np.clip(signed / softness, -30.0, 30.0)))


def _brain(rng, g: _Grid, positive: bool, p: dict) -> np.ndarray:
    """Axial MRI slice: skull ring, grey tissue, dark ventricles; tumor = bright blob."""
    cx, cy = rng.uniform(-0.05, 0.05, 2)
    ax, ay = rng.uniform(0.72, 0.82), rng.uniform(0.84, 0.92)
    head = _soft_ellipse(g, cx, cy, ax, ay, 0.02)
    brain = _soft_ellipse(g, cx, cy, ax - 0.07, ay - 0.07, 0.03)
    tissue = 0.32 + 0.05 * _smooth_noise(rng, g.size, 0.06)
    img = 0.02 + 0.53 * (head - brain) + tissue * brain
    for side in (-1, 1):
        vent = _soft_ellipse(g, cx + side * 0.09, cy - 0.05, 0.06, 0.2, 0.15)
        img -= 0.18 * vent * brain
    if positive:
        r = rng.uniform(*p["lesion_radius"])
        angle, dist = rng.uniform(0, 2 * np.pi), rng.uniform(0.15, 0.55)
        lx, ly = cx + dist * ax * np.cos(angle), cy + dist * ay * np.sin(angle)
        img += p["lesion_contrast"] * _soft_disc(g, lx, ly, r, 0.02) * brain
    img *= 1.0 + rng.uniform(-p["gain_jitter"], p["gain_jitter"])
    return img + p["noise_sigma"] * rng.standard_normal(img.shape)


def _pneumonia(rng, g: _Grid, positive: bool, p: dict) -> np.ndarray:
    """Chest film: bright body, two dark lungs with ribs; pneumonia = hazy opacity."""
    body = _soft_ellipse(g, 0.0, 0.1, 0.95, 1.05, 0.05)
    img = 0.05 + 0.5 * body
    lungs = np.zeros_like(img)
    centres = []
    for side in (-1, 1):
        s = 1.0 + rng.uniform(-p["lung_size_jitter"], p["lung_size_jitter"])
        lx, ly = side * rng.uniform(0.36, 0.44), rng.uniform(-0.05, 0.05)
        lungs = np.maximum(lungs, _soft_ellipse(g, lx, ly, 0.27 * s, 0.62 * s, 0.08))
        centres.append((lx, ly, s))
    ribs = 0.05 * np.sin(g.y * rng.uniform(13, 16) + rng.uniform(0, np.pi)) ** 2
    img = img - lungs * (0.32 - ribs) + 0.03 * _smooth_noise(rng, g.size, 0.08)
    if positive:
        lx, ly, s = centres[rng.integers(2)]
        oy = ly + rng.uniform(-0.35, 0.35) * s
        opacity = _gaussian(g, lx + rng.uniform(-0.08, 0.08), oy, rng.uniform(*p["opacity_sigma"]))
        img += p["opacity_contrast"] * opacity * lungs
    img *= 1.0 + rng.uniform(-p["gain_jitter"], p["gain_jitter"])
    return img + p["noise_sigma"] * rng.standard_normal(img.shape)


def _skin(rng, g: _Grid, positive: bool, p: dict) -> np.ndarray:
    """Dermatoscopy: skin tone, vignette, one mole; melanoma = irregular and patchy."""
    cls = "positive" if positive else "negative"
    tone = np.array([0.86, 0.66, 0.56]) * (1.0 + rng.uniform(-p["tone_jitter"], p["tone_jitter"]))
    skin = tone[None, None, :] * (1.0 + 0.03 * _smooth_noise(rng, g.size, 0.05))[:, :, None]
    cx, cy = rng.uniform(-0.15, 0.15, 2)
    theta = np.arctan2(g.y - cy, g.x - cx)
    radius = rng.uniform(*p["mole_radius"][cls]) * np.ones_like(theta)
    irregularity = rng.uniform(*p["border_irregularity"][cls])
    for k in range(2, 6):
        amp = irregularity * rng.uniform(0.5, 1.5)
        radius = radius * (1.0 + amp * np.cos(k * theta + rng.uniform(0, 2 * np.pi)))
    mole = _soft_disc(g, cx, cy, radius, 0.025)
    pigment = np.array([0.42, 0.27, 0.18]) * rng.uniform(0.8, 1.2)
    patches = 1.0 + rng.uniform(*p["colour_variegation"][cls]) * _smooth_noise(rng, g.size, 0.1)
    img = skin * (1 - mole[:, :, None]) + (pigment[None, None, :] * patches[:, :, None]) * mole[:, :, None]
    vignette = _soft_disc(g, 0.0, 0.0, 1.05, 0.06)[:, :, None]
    return img * vignette + p["noise_sigma"] * rng.standard_normal(img.shape)


def _histo(rng, g: _Grid, positive: bool, p: dict) -> np.ndarray:
    """H&E patch: pink stroma with purple nuclei; carcinoma = denser, larger nuclei."""
    cls = "positive" if positive else "negative"
    stain = 1.0 + rng.uniform(-p["stain_jitter"], p["stain_jitter"], 3)
    pink = np.array([0.92, 0.70, 0.82]) * stain
    texture = 1.0 + 0.05 * _smooth_noise(rng, g.size, 0.1)
    img = pink[None, None, :] * texture[:, :, None]
    cellularity = np.exp(rng.normal(0.0, p["cellularity_sd"]))
    n = rng.poisson(p["nuclei_count"][cls] * cellularity)  # per patch: lengths are size-relative
    centres = rng.uniform(-1.0, 1.0, (n, 2))
    radii = np.clip(rng.normal(p["nucleus_radius"][cls], p["nucleus_radius_sd"][cls], n), 0.02, None)
    nuclei = _union_of_discs(g, centres, radii, 0.015)
    purple = np.array([0.42, 0.26, 0.58]) * stain * rng.uniform(0.85, 1.15)
    img = img * (1 - nuclei[:, :, None]) + purple[None, None, :] * nuclei[:, :, None]
    return img + p["noise_sigma"] * rng.standard_normal(img.shape)


def _generic(rng, g: _Grid, positive: bool, p: dict) -> np.ndarray:
    """Any other task: a textured grey field; positive = a soft blob of medium contrast."""
    img = 0.4 + p["texture_sigma"] * _smooth_noise(rng, g.size, 0.06)
    if positive:
        lx, ly = rng.uniform(-0.5, 0.5, 2)
        img += p["lesion_contrast"] * _soft_disc(g, lx, ly, rng.uniform(*p["lesion_radius"]), 0.06)
    img *= 1.0 + rng.uniform(-p["gain_jitter"], p["gain_jitter"])
    return img + p["noise_sigma"] * rng.standard_normal(img.shape)


_GENERATORS = {
    "brain_tumor": _brain,
    "pneumonia": _pneumonia,
    "skin_cancer": _skin,
    "histopathology": _histo,
}
