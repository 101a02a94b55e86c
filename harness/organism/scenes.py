"""General (non-medical) synthetic scenes with their ground truth.

A general VLM learns from everyday images; the organism's base models learn from two
kinds of scene that a CPU can draw by the thousand:

- *spot scenes*: a background in one of several styles (texture, a large oval, two
  ovals, stripes, a gradient, speckles) with or without ONE odd spot, brighter or
  darker (sometimes off-colour), sharp or diffuse, large or small. "Is there an
  anomaly?" is the general skill the medical tasks lean on.
- *shape scenes*: 1-4 shapes of one kind and colour on a plain or graded background
  (counting, colour, position, presence).

Each draw returns the image and a `facts` dict; questions, answers and descriptions are
all derived from the facts (general_data.py), never written per image.
"""

from __future__ import annotations

import numpy as np

from harness.data.synthetic import _Grid, _gaussian, _smooth_noise, _soft_disc, _soft_ellipse, _to_uint8

SPOT_STYLES = ("texture", "oval", "two ovals", "stripes", "gradient", "speckles")
# Words describing each style in captions ("A dark textured image ...").
STYLE_WORDS = {
    "texture": "textured", "oval": "oval", "two ovals": "two-oval", "stripes": "striped",
    "gradient": "shaded", "speckles": "speckled",
}
TINTS = {
    "grey": (1.0, 1.0, 1.0), "pink": (1.0, 0.78, 0.86), "brown": (1.0, 0.8, 0.62),
    "blue": (0.72, 0.84, 1.0), "green": (0.78, 1.0, 0.8),
}
SHAPES = ("circle", "square", "triangle")
COLOURS = {
    "red": (0.85, 0.15, 0.12), "green": (0.15, 0.7, 0.2), "blue": (0.15, 0.3, 0.9),
    "yellow": (0.92, 0.85, 0.15), "white": (0.95, 0.95, 0.95), "black": (0.05, 0.05, 0.05),
}
# How much brighter or darker than its surroundings a spot is (intensity units; the
# backgrounds sit at 0.25-0.65): from subtle to obvious.
SPOT_CONTRAST = (0.3, 0.6)
BACKGROUNDS = {"dark": 0.15, "grey": 0.45, "bright": 0.8}


def position_name(x: float, y: float) -> str:
    """Coarse position of a point in [-1, 1]^2 (y downwards), as a caption would say it."""
    h = "left" if x < -0.25 else "right" if x > 0.25 else ""
    v = "upper" if y < -0.25 else "lower" if y > 0.25 else ""
    if v and h:
        return f"{v} {h}"
    if h:
        return h
    return {"upper": "top", "lower": "bottom"}.get(v, "centre")


def tone_name(mean: float) -> str:
    return "dark" if mean < 0.3 else "bright" if mean > 0.6 else "grey"


# ------------------------------------------------------------------------ spot scenes


def _background(rng, g: _Grid, style: str):
    """(intensity map, region mask where a spot may sit, region centre/axes)."""
    level = rng.uniform(0.25, 0.65)
    texture = rng.uniform(0.02, 0.08) * _smooth_noise(rng, g.size, rng.uniform(0.04, 0.12))
    ones = np.ones_like(g.x)
    if style == "texture":
        return level + texture, ones, (0.0, 0.0, 0.8, 0.8)
    if style == "oval":
        cx, cy = rng.uniform(-0.1, 0.1, 2)
        ax, ay = rng.uniform(0.6, 0.85), rng.uniform(0.6, 0.9)
        inner = _soft_ellipse(g, cx, cy, ax, ay, 0.03)
        outer = rng.uniform(0.0, 0.15)
        img = outer + (level - outer + texture) * inner
        if rng.random() < 0.5:  # a bright rim, like a frame or a shell
            rim = _soft_ellipse(g, cx, cy, ax + 0.06, ay + 0.06, 0.02) - inner
            img += rng.uniform(0.2, 0.5) * np.clip(rim, 0, 1)
        return img, inner, (cx, cy, ax * 0.75, ay * 0.75)
    if style == "two ovals":
        img = level + 0.3 * _soft_ellipse(g, 0, 0.05, 0.95, 1.0, 0.05) + texture
        mask = np.zeros_like(g.x)
        centres = []
        for side in (-1, 1):
            lx = side * rng.uniform(0.3, 0.45)
            oval = _soft_ellipse(g, lx, rng.uniform(-0.1, 0.1), rng.uniform(0.2, 0.3), rng.uniform(0.45, 0.65), 0.06)
            img -= rng.uniform(0.2, 0.35) * oval
            mask = np.maximum(mask, oval)
            centres.append(lx)
        return img, mask, (centres[rng.integers(2)], 0.0, 0.15, 0.45)
    if style == "stripes":
        stripes = rng.uniform(0.03, 0.1) * np.sin(rng.uniform(8, 20) * (g.y if rng.random() < 0.5 else g.x) + rng.uniform(0, 6))
        return level + stripes + 0.5 * texture, ones, (0.0, 0.0, 0.8, 0.8)
    if style == "gradient":
        angle = rng.uniform(0, 2 * np.pi)
        ramp = rng.uniform(0.1, 0.3) * (g.x * np.cos(angle) + g.y * np.sin(angle))
        return level + ramp + 0.5 * texture, ones, (0.0, 0.0, 0.8, 0.8)
    # speckles: many small dots of a second intensity everywhere
    n = rng.integers(20, 60)
    centres = rng.uniform(-1, 1, (n, 2))
    d = np.sqrt((g.x[None] - centres[:, 0, None, None]) ** 2 + (g.y[None] - centres[:, 1, None, None]) ** 2)
    dots = 1.0 / (1.0 + np.exp(np.clip((d.min(axis=0) - rng.uniform(0.03, 0.06)) / 0.015, -30, 30)))
    return level + rng.choice([-1, 1]) * rng.uniform(0.1, 0.25) * dots + texture, ones, (0.0, 0.0, 0.8, 0.8)


def spot_scene(rng: np.random.Generator, size: int, positive: bool) -> tuple[np.ndarray, dict]:
    """One spot scene as uint8 RGB and its facts (style, tint, tone, spot or None)."""
    g = _Grid(size)
    style = SPOT_STYLES[rng.integers(len(SPOT_STYLES))]
    tint_name = "grey" if rng.random() < 0.5 else list(TINTS)[rng.integers(1, len(TINTS))]
    img, region, (cx, cy, ax, ay) = _background(rng, g, style)
    img = img[:, :, None] * np.array(TINTS[tint_name])[None, None, :]
    spot = None
    if positive:
        r = rng.uniform(0.1, 0.25)
        angle, dist = rng.uniform(0, 2 * np.pi), np.sqrt(rng.uniform(0, 1))
        sx, sy = cx + dist * ax * np.cos(angle), cy + dist * ay * np.sin(angle)
        bright = rng.random() < 0.6
        contrast = rng.uniform(*SPOT_CONTRAST) * (1 if bright else -1)
        diffuse = rng.random() < 0.2
        shape = _gaussian(g, sx, sy, r * 0.8) if diffuse else _soft_disc(g, sx, sy, r, rng.uniform(0.01, 0.05))
        colour = np.ones(3)
        if rng.random() < 0.1:  # an off-colour spot
            colour = rng.uniform(0.3, 1.2, 3)
        img = img + contrast * (shape * np.clip(region, 0.3, 1))[:, :, None] * colour[None, None, :]
        spot = {"bright": bright, "large": r > 0.17, "diffuse": diffuse, "position": position_name(sx, sy)}
    img = img * (1 + rng.uniform(-0.1, 0.1)) + rng.uniform(0.01, 0.04) * rng.standard_normal(img.shape)
    facts = {"kind": "spot", "style": style, "style_word": STYLE_WORDS[style], "tint": tint_name, "tone": tone_name(float(img.mean())), "spot": spot}
    return _to_uint8(img), facts


# ----------------------------------------------------------------------- shape scenes


def _shape_mask(g: _Grid, shape: str, x: float, y: float, r: float) -> np.ndarray:
    if shape == "circle":
        return _soft_disc(g, x, y, r, 0.01)
    if shape == "square":
        inside = np.maximum(np.abs(g.x - x), np.abs(g.y - y))
        return 1.0 / (1.0 + np.exp(np.clip((inside - r * 0.85) / 0.01, -30, 30)))
    # triangle pointing up: apex above the centre, base below it
    apex, base = y - r, y + 0.8 * r
    half_width = r * np.clip((g.y - apex) / (base - apex), 0, None)
    z = np.maximum(np.maximum(g.y - base, apex - g.y), np.abs(g.x - x) - half_width) / 0.01
    return 1.0 / (1.0 + np.exp(np.clip(z, -30, 30)))


def shape_scene(rng: np.random.Generator, size: int) -> tuple[np.ndarray, dict]:
    """1-4 shapes of one kind and colour on a plain or graded background, and the facts."""
    g = _Grid(size)
    bg_name = list(BACKGROUNDS)[rng.integers(len(BACKGROUNDS))]
    shape = SHAPES[rng.integers(len(SHAPES))]
    colour_names = [c for c in COLOURS if abs(np.mean(COLOURS[c]) - BACKGROUNDS[bg_name]) > 0.2]
    colour = colour_names[rng.integers(len(colour_names))]
    count = int(rng.integers(1, 5))
    cells = rng.permutation(9)[:count]  # one shape per cell of a 3 x 3 grid: no overlaps
    img = BACKGROUNDS[bg_name] + 0.1 * (g.y if rng.random() < 0.5 else 0 * g.y)
    img = np.repeat(img[:, :, None], 3, axis=2)
    positions = []
    for cell in cells:
        x = (cell % 3 - 1) * 0.62 + rng.uniform(-0.08, 0.08)
        y = (cell // 3 - 1) * 0.62 + rng.uniform(-0.08, 0.08)
        mask = _shape_mask(g, shape, x, y, rng.uniform(0.14, 0.2))[:, :, None]
        img = img * (1 - mask) + np.array(COLOURS[colour])[None, None, :] * mask
        positions.append(position_name(x, y))
    img = img + 0.02 * rng.standard_normal(img.shape)
    facts = {"kind": "shapes", "background": bg_name, "shape": shape, "colour": colour,
             "count": count, "positions": positions}
    return _to_uint8(img), facts
