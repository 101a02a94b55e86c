"""A verdict compares one-sided confidence bounds (never a point estimate) with a threshold.

Three labels (SPEC §2):

- robust: the passing-side bound clears the threshold, so the data show robustness at
  the chosen confidence (the burden of proof is on the model);
- fragile: the *other* bound lies past the threshold, so the data show the fragility
  at the same confidence;
- inconclusive: neither bound decides. The gate fails on it by default (it must not
  pass on missing evidence; `inconclusive = "pass"` in thresholds.toml relaxes that),
  and the message estimates, from the bound that would have to move, how many images
  per class would likely decide it.

A label of "fragile" from the point estimate alone would call noise a fragility: at a
threshold, half of all robust-enough subjects have their estimate on the wrong side.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal, Optional

import numpy as np
import pytest

from .stats.bootstrap import bca_bounds, images_to_decide, percentile_bounds

LABELS = ("robust", "fragile", "inconclusive")


class FragilityFound(pytest.fail.Exception):
    """Raised by a behaviour test whose property is not shown to hold (fragile or inconclusive).

    A pytest failure without a traceback: the message (finding, label, numbers, bounds,
    threshold) is the whole story, and the baseline's strict xfails match this type
    only, so a crash is never mistaken for a known fragility.
    """

    def __init__(self, message: str):
        super().__init__(msg=message, pytrace=False)


def _clears(value: float, threshold: float, direction: str, strict: bool) -> bool:
    """Is `value` on the passing side of `threshold`? (ge: above, strictly if `strict`; le: at or below)."""
    if value is None or math.isnan(value):
        return False
    if direction == "ge":
        return value > threshold if strict else value >= threshold
    return value <= threshold


@dataclass
class Verdict:
    finding: str
    metric: str
    value: float
    ci_low: float
    ci_high: float
    threshold: float
    direction: Literal["ge", "le"]  # ge: robust iff ci_low >= threshold; le: robust iff ci_high <= threshold
    confidence: float
    n_images: int
    n_classes: int = 2
    description: str = ""  # what property was checked, in words
    details: dict = field(default_factory=dict)
    strict: bool = False  # "ge" only: the lower bound must exceed the threshold
    note: str = ""  # how the verdict was reached, e.g. its look in a sequential design (said in the message)
    warning: str = ""  # what makes the verdict doubtful, e.g. answers above chance without the image (in the message)

    @property
    def bound(self) -> float:
        """The bound that must clear the threshold for a pass."""
        return self.ci_low if self.direction == "ge" else self.ci_high

    @property
    def other_bound(self) -> float:
        """The bound that, past the threshold, shows the fragility."""
        return self.ci_high if self.direction == "ge" else self.ci_low

    @property
    def passed(self) -> bool:
        return _clears(self.bound, self.threshold, self.direction, self.strict)

    @property
    def fragility_shown(self) -> bool:
        other = self.other_bound
        if other is None or math.isnan(other):
            return False
        return not _clears(other, self.threshold, self.direction, self.strict)

    @property
    def label(self) -> str:
        if self.passed:
            return "robust"
        return "fragile" if self.fragility_shown else "inconclusive"

    @property
    def inconclusive(self) -> bool:
        return self.label == "inconclusive"

    @property
    def point_passes(self) -> bool:
        return _clears(self.value, self.threshold, self.direction, self.strict)

    @property
    def images_needed_per_class(self) -> Optional[int]:
        """For an inconclusive verdict: images per class at which the bound that has to move
        would likely clear the threshold (the passing bound if the estimate passes, the
        other bound if it fails), from that bound's own distance to the estimate."""
        if not self.inconclusive:
            return None
        moving = self.bound if self.point_passes else self.other_bound
        total = images_to_decide(self.value, moving, self.threshold, self.n_images, self.confidence)
        return None if total is None else int(math.ceil(total / max(self.n_classes, 1)))

    def message(self) -> str:
        side, other_side = ("lower", "upper") if self.direction == "ge" else ("upper", "lower")
        relation = (">" if self.strict else "≥") if self.direction == "ge" else "≤"
        text = (
            f"[{self.finding}] {self.label}: {self.description} — {self.metric} = {_fmt(self.value)}, "
            f"one-sided {self.confidence * 100:.4g}% {side} bound {_fmt(self.bound)} "
            f"(needs {relation} {_fmt(self.threshold)}), {other_side} bound {_fmt(self.other_bound)}, "
            f"n = {self.n_images} images"
        )
        if self.label == "fragile":
            text += f"; the {other_side} bound is past the threshold too: the fragility is shown"
        elif self.label == "inconclusive":
            text += "; neither bound decides"
            if self.images_needed_per_class:
                text += f"; about {self.images_needed_per_class} images per class would likely decide it"
        if self.note:
            text += f" [{self.note}]"
        if self.warning:
            text += f" WARNING: {self.warning}"
        return text

    def record(self) -> dict:
        """The JSON-able numbers the report and summary.json show."""
        return {
            "finding": self.finding,
            "metric": self.metric,
            "value": _num(self.value),
            "ci_low": _num(self.ci_low),
            "ci_high": _num(self.ci_high),
            "threshold": _num(self.threshold),
            "direction": self.direction,
            "confidence": self.confidence,
            "n_images": self.n_images,
            "label": self.label,
            "inconclusive": self.inconclusive,
            "images_needed": self.images_needed_per_class,
            "details": self.details,
            "warning": self.warning or None,
        }


def verdict_from_replicates(
    *,
    finding: str,
    metric: str,
    point: float,
    replicates: np.ndarray,
    threshold: float,
    direction: Literal["ge", "le"],
    confidence: float,
    n_images: int,
    description: str,
    details: Optional[dict] = None,
    strict: bool = False,
    jackknife: Optional[np.ndarray] = None,
) -> Verdict:
    """A verdict whose bounds are the replicates' one-sided BCa bounds (given the statistic's
    leave-one-image-out values, `jackknife`), else their percentile bounds."""
    if jackknife is not None:
        low, high = bca_bounds(float(point), np.asarray(replicates, dtype=float), jackknife, confidence)
    else:
        low, high = percentile_bounds(np.asarray(replicates, dtype=float), confidence)
    return Verdict(
        finding=finding,
        metric=metric,
        value=float(point),
        ci_low=float(low),
        ci_high=float(high),
        threshold=float(threshold),
        direction=direction,
        confidence=confidence,
        n_images=n_images,
        description=description,
        details=details or {},
        strict=strict,
    )


def _fmt(x: Optional[float]) -> str:
    return "nan" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"


def _num(x) -> Optional[float]:
    if x is None:
        return None
    x = float(x)
    return None if math.isnan(x) else round(x, 6)
