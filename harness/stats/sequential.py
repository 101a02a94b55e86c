"""Group-sequential boundaries: how confident each look must be so that looking again
does not inflate false passes (issue 18).

A verdict that is inconclusive at the first look draws more images and is judged again.
Judged every time at the fixed one-sided confidence 0.95, a subject exactly at the
threshold would pass at *some* look far more often than 5 %. An error-spending design
(Lan & DeMets 1983) fixes how much of the total error alpha = 1 - confidence may be
spent by each look: by look k, at most alpha(t_k), where t_k = n_k / n_max is the share
of the largest sample reached. The boundary c_k of look k is the normal quantile such
that, for a statistic with independent increments (a standardised estimate Z_k, whose
looks are correlated as sqrt(n_j / n_k)), the chance of first crossing at look k under the
threshold is alpha(t_k) - alpha(t_{k-1}). A look then uses the one-sided confidence
Phi(c_k) for its bounds.

The spending function is Hwang, Shih & DeCani's (1990) family,
alpha(t) = alpha (1 - exp(-gamma t)) / (1 - exp(-gamma)): gamma > 0 spends early, which
is what a gate wants (most subjects decide at the first look, so its confidence should
stay close to the fixed design's; the rest share what is left). The crossing
probabilities come from the recursive numerical integration of Armitage, McPherson &
Rowe (1969) (Jennison & Turnbull 2000, ch. 19), deterministic, so a verdict never
depends on a Monte-Carlo draw. Only the passing side is bounded here: stopping early on
the other side (fragile) can only lower the chance of a false pass (a non-binding
futility rule), so ignoring it keeps the error at or below alpha.

The tests check the recursion against the published Pocock and O'Brien-Fleming
constants, against scipy's multivariate normal distribution and against brute force.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.optimize import brentq
from scipy.stats import norm

GRID_STEP = 0.02  # spacing of the integration grid, in standard deviations of Z
GRID_LOW = -9.0  # the continuation region's lower end (the mass below it is < 1e-18)


def hsd_spending(t: float, alpha: float, gamma: float) -> float:
    """alpha(t) of the Hwang-Shih-DeCani family; gamma = 0 spends in proportion to t."""
    t = min(max(float(t), 0.0), 1.0)
    if abs(gamma) < 1e-12:  # the limit as gamma -> 0
        return alpha * t
    return alpha * math.expm1(-gamma * t) / math.expm1(-gamma)


def _simpson_weights(n: int, h: float) -> np.ndarray:
    """Composite Simpson weights for n points (n odd) spaced h apart."""
    w = np.ones(n)
    w[1:-1:2], w[2:-1:2] = 4.0, 2.0
    return w * h / 3.0


def _grid(upper: float) -> np.ndarray:
    """An odd number of equally spaced points from GRID_LOW to `upper`."""
    intervals = max(2, int(math.ceil((upper - GRID_LOW) / GRID_STEP)))
    intervals += intervals % 2
    return np.linspace(GRID_LOW, upper, intervals + 1)


@dataclass
class _State:
    """The sub-density of Z_k on the continuation region (no crossing so far), on a grid."""

    z: np.ndarray
    density: np.ndarray
    weights: np.ndarray
    info: float


def _first(info: float, boundary: float, drift: float) -> _State:
    z = _grid(boundary)
    return _State(z, norm.pdf(z - drift * math.sqrt(info)), _simpson_weights(z.size, z[1] - z[0]), info)


def _cross_next(state: _State, info: float, boundary: float, drift: float) -> float:
    """P(no crossing before, Z_next > boundary) for the next look at information `info`."""
    step = info - state.info
    mean = state.z * math.sqrt(state.info) + drift * step
    tail = norm.sf((boundary * math.sqrt(info) - mean) / math.sqrt(step))
    return float(np.sum(state.weights * state.density * tail))


def _advance(state: _State, info: float, boundary: float, drift: float) -> _State:
    """The sub-density of the next look's Z on its own continuation region."""
    step = info - state.info
    z = _grid(boundary)
    mean = state.z * math.sqrt(state.info) + drift * step  # conditional mean of S_next = Z_next sqrt(info)
    kernel = norm.pdf((z[:, None] * math.sqrt(info) - mean[None, :]) / math.sqrt(step)) * math.sqrt(info / step)
    density = kernel @ (state.weights * state.density)
    return _State(z, density, _simpson_weights(z.size, z[1] - z[0]), info)


def crossing_probabilities(info: list[float], boundaries: list[float], drift: float = 0.0) -> list[float]:
    """P(the first crossing of Z_k > c_k happens at look k), for each look.

    `info` are the looks' information (e.g. images per class), increasing; `drift` is the
    standardised effect per unit of information (0: at the threshold), so that Z_k has
    mean drift * sqrt(info_k).
    """
    if len(info) != len(boundaries) or not info:
        raise ValueError("one boundary per look, at least one look")
    if any(b <= a for a, b in zip(info, info[1:])) or info[0] <= 0:
        raise ValueError(f"information must be positive and increasing, got {info}")
    out = [float(norm.sf(boundaries[0] - drift * math.sqrt(info[0])))]
    state = _first(info[0], boundaries[0], drift)
    for k in range(1, len(info)):
        out.append(_cross_next(state, info[k], boundaries[k], drift))
        if k + 1 < len(info):
            state = _advance(state, info[k], boundaries[k], drift)
    return out


@lru_cache(maxsize=64)
def spending_boundaries(looks: tuple[int, ...], alpha: float, gamma: float) -> tuple[float, ...]:
    """The boundary c_k of every look: P(first crossing at look k | threshold) equals the
    error spent between looks k - 1 and k, alpha(t_k) - alpha(t_{k-1}), t_k = n_k / n_last."""
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    info = [float(n) for n in looks]
    total = info[-1]
    spent = [hsd_spending(n / total, alpha, gamma) for n in info]
    boundaries = [float(norm.isf(spent[0]))]
    state = _first(info[0], boundaries[0], 0.0)
    for k in range(1, len(info)):
        target = spent[k] - spent[k - 1]
        if target <= 0:
            boundaries.append(math.inf)
        else:
            boundaries.append(float(brentq(lambda c: _cross_next(state, info[k], c, 0.0) - target,
                                           -5.0, 12.0, xtol=1e-10)))
        if k + 1 < len(info):
            state = _advance(state, info[k], min(boundaries[k], 12.0), 0.0)
    return tuple(boundaries)


def decide_chance(point: float, bound: float, threshold: float, n_now: int, n_last: int, conf_now: float,
                  conf_last: float) -> float:
    """The chance that the last look decides a verdict that is undecided now, if its estimate
    were the truth: the bound that has to move shrinks as 1/sqrt(n) and widens to the last
    look's confidence, and the estimate at the last look spreads by that bound's half-width
    over its z. Used to stop drawing images for a verdict that more images would not decide
    (stopping without a pass can only lower false passes)."""
    gap, half = abs(point - threshold), abs(bound - point)
    if not (math.isfinite(gap) and math.isfinite(half)) or half == 0.0:
        return 1.0
    z_now, z_last = norm.ppf(conf_now), norm.ppf(conf_last)
    half_last = half * (z_last / z_now) * math.sqrt(n_now / n_last)
    return float(norm.cdf(z_last * (gap / half_last - 1.0)))


@dataclass(frozen=True)
class Design:
    """When a verdict is judged again, and how confident each look must be.

    `looks` are images per class: the first is --n-per-class, then every `step` up to
    `max_n`. `confidences` are the one-sided confidences of each look's bounds. With one
    look it is the fixed design: the single look uses `confidence` itself.
    """

    looks: tuple[int, ...]
    confidences: tuple[float, ...]
    confidence: float
    gamma: float
    min_decide_chance: float = 0.0  # draw more images only if the last look would likely decide

    def worth_another_look(self, verdict, look: int) -> bool:
        """Should an inconclusive verdict at `look` be judged again on more images? Only if a
        later look exists and, were its estimate the truth, the last look would decide it
        with at least `min_decide_chance`."""
        if look + 1 >= len(self.looks):
            return False
        moving = verdict.bound if verdict.point_passes else verdict.other_bound
        chance = decide_chance(verdict.value, moving, verdict.threshold, self.looks[look], self.looks[-1],
                               self.confidences[look], self.confidences[-1])
        return chance >= self.min_decide_chance

    @property
    def sequential(self) -> bool:
        return len(self.looks) > 1

    def describe(self) -> str:
        if not self.sequential:
            return f"one look at {self.looks[0]} images per class, bounds at {self.confidence:.0%}"
        looks = ", ".join(f"{n} ({c:.2%})" for n, c in zip(self.looks, self.confidences))
        return (f"up to {len(self.looks)} looks, images per class (one-sided confidence of the bounds): {looks}; "
                f"error spent Hwang-Shih-DeCani, gamma {self.gamma:g}, total {1 - self.confidence:.0%}; "
                f"another look only if the last would decide with chance >= {self.min_decide_chance:g}")


def make_design(n_per_class: int, max_n_per_class: int, step_per_class: int, confidence: float,
                gamma: float, min_decide_chance: float = 0.0) -> Design:
    """The design for a run: looks from n_per_class up to max_n_per_class in steps.

    max_n_per_class <= n_per_class (or a step of 0) is the fixed design of one look.
    """
    n1 = int(n_per_class)
    if max_n_per_class <= n1 or step_per_class <= 0:
        return Design((n1,), (float(confidence),), float(confidence), float(gamma), float(min_decide_chance))
    looks = list(range(n1, int(max_n_per_class) + 1, int(step_per_class)))
    if looks[-1] != max_n_per_class:
        looks.append(int(max_n_per_class))
    boundaries = spending_boundaries(tuple(looks), 1.0 - float(confidence), float(gamma))
    return Design(tuple(looks), tuple(float(norm.cdf(c)) for c in boundaries), float(confidence), float(gamma),
                  float(min_decide_chance))
