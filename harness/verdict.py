"""A verdict compares a one-sided confidence bound (never a point estimate) with a threshold.

The burden of proof is on the model: it passes only when the data show robustness at
the chosen confidence. A failure whose point estimate is on the passing side is
*inconclusive*: it still fails (a gate must not pass on missing evidence) but says so
and estimates how many images per class would likely decide it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal, Optional

import numpy as np
import pytest

from .stats.bootstrap import images_needed, percentile_bounds


class FragilityFound(pytest.fail.Exception):
    """Raised by a behaviour test whose property does not hold (the model is fragile).

    A pytest failure without a traceback: the message (finding, numbers, bound,
    threshold) is the whole story, and the baseline's strict xfails match this type
    only, so a crash is never mistaken for a known fragility.
    """

    def __init__(self, message: str):
        super().__init__(msg=message, pytrace=False)


@dataclass
class Verdict:
    finding: str
    metric: str
    value: float
    ci_low: float
    ci_high: float
    threshold: float
    direction: Literal["ge", "le"]  # ge: pass iff ci_low >= threshold; le: pass iff ci_high <= threshold
    confidence: float
    n_images: int
    n_classes: int = 2
    description: str = ""  # what property was checked, in words
    details: dict = field(default_factory=dict)
    images_needed_total: Optional[int] = None
    strict: bool = False  # for "gt" style thresholds (lower bound must exceed)

    @property
    def bound(self) -> float:
        return self.ci_low if self.direction == "ge" else self.ci_high

    @property
    def passed(self) -> bool:
        if self.bound is None or math.isnan(self.bound):
            return False
        if self.direction == "ge":
            return self.bound > self.threshold if self.strict else self.bound >= self.threshold
        return self.bound <= self.threshold

    @property
    def point_passes(self) -> bool:
        if math.isnan(self.value):
            return False
        if self.direction == "ge":
            return self.value > self.threshold if self.strict else self.value >= self.threshold
        return self.value <= self.threshold

    @property
    def inconclusive(self) -> bool:
        return not self.passed and self.point_passes

    @property
    def images_needed_per_class(self) -> Optional[int]:
        if not self.inconclusive or self.images_needed_total is None:
            return None
        return int(math.ceil(self.images_needed_total / max(self.n_classes, 1)))

    def message(self) -> str:
        side = "lower" if self.direction == "ge" else "upper"
        relation = (">" if self.strict else "≥") if self.direction == "ge" else "≤"
        head = "inconclusive" if self.inconclusive else ("robust" if self.passed else "fragile")
        text = (
            f"[{self.finding}] {head}: {self.description} — {self.metric} = {_fmt(self.value)}, "
            f"one-sided {self.confidence:.0%} {side} bound {_fmt(self.bound)} "
            f"(needs {relation} {_fmt(self.threshold)}), n = {self.n_images} images"
        )
        if self.inconclusive and self.images_needed_per_class:
            text += f"; about {self.images_needed_per_class} images per class would likely decide it"
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
            "inconclusive": self.inconclusive,
            "images_needed": self.images_needed_per_class,
            "details": self.details,
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
    bounds: Optional[tuple[float, float]] = None,
) -> Verdict:
    """Turn a point estimate and its bootstrap replicates into a verdict.

    The bounds are the replicates' percentile bounds unless a finding computes its own
    (`bounds`, e.g. the swings' simultaneous bounds); the replicates still give the
    standard error behind the images-needed hint.
    """
    low, high = bounds if bounds is not None else percentile_bounds(np.asarray(replicates, dtype=float), confidence)
    needed = images_needed(point, threshold, np.asarray(replicates, dtype=float), n_images, confidence)
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
        images_needed_total=needed,
        strict=strict,
    )


def _fmt(x: Optional[float]) -> str:
    return "nan" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"


def _num(x) -> Optional[float]:
    if x is None:
        return None
    x = float(x)
    return None if math.isnan(x) else round(x, 6)
