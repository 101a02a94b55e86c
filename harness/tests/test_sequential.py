"""The group-sequential design (harness.stats.sequential, issue 18): its boundaries against
published constants, scipy and brute force; and the judging of a check over looks
(harness.findings.checks.judge)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import brentq
from scipy.stats import multivariate_normal, norm

from harness.core import NotApplicable
from harness.findings import checks
from harness.stats.sequential import (Design, crossing_probabilities, hsd_spending, make_design,
                                      spending_boundaries)
from harness.verdict import Verdict

# Jennison & Turnbull (2000), Tables 2.1 and 2.3: two-sided alpha = 0.05 tests with K equally
# spaced looks (one-sided 0.025 each side): Pocock's constant C_P and O'Brien & Fleming's
# C_B (boundaries C_B sqrt(K / k)).
POCOCK = {2: 2.178, 3: 2.289, 4: 2.361, 5: 2.413}
OBRIEN_FLEMING = {2: 1.977, 3: 2.004, 4: 2.024, 5: 2.040}


@pytest.mark.parametrize("looks", [2, 3, 4, 5])
def test_the_recursion_gives_the_published_pocock_and_obrien_fleming_constants(looks):
    info = list(range(1, looks + 1))
    pocock = brentq(lambda c: sum(crossing_probabilities(info, [c] * looks)) - 0.025, 1.5, 3.5)
    obf = brentq(lambda c: sum(crossing_probabilities(info, [c * math.sqrt(looks / k) for k in info])) - 0.025,
                 1.5, 3.5)
    assert round(pocock, 3) == POCOCK[looks]
    assert round(obf, 3) == OBRIEN_FLEMING[looks]


def test_hwang_shih_decani_boundaries_match_gsdesigns_default_design():
    """gsDesign's default upper bound (K = 3, one-sided alpha 0.025, sfHSD with gamma -4)."""
    assert np.allclose(spending_boundaries((1, 2, 3), 0.025, -4.0), (3.0107, 2.5465, 1.9992), atol=1e-4)


def test_crossing_probabilities_agree_with_scipys_multivariate_normal():
    info, bounds, drift = [100.0, 150.0, 250.0], [2.0, 2.1, 2.2], 0.12
    got = np.cumsum(crossing_probabilities(info, bounds, drift))
    cov = np.sqrt(np.minimum.outer(info, info) / np.maximum.outer(info, info))
    mean = drift * np.sqrt(info)
    for k in range(1, 4):
        below = multivariate_normal(mean=mean[:k], cov=cov[:k, :k], abseps=1e-7, releps=1e-7,
                                    seed=1).cdf(np.array(bounds[:k]))
        assert got[k - 1] == pytest.approx(1.0 - below, abs=2e-5)


def test_crossing_probabilities_agree_with_brute_force():
    rng = np.random.default_rng(0)
    info = np.array([100.0, 150.0, 200.0, 300.0])
    bounds = [1.9, 2.1, 2.2, 2.3]
    paths = 200_000
    steps = np.diff(np.concatenate([[0.0], info]))
    sums = np.cumsum(rng.normal(0.0, np.sqrt(steps), size=(paths, info.size)), axis=1)
    z = sums / np.sqrt(info)
    crossed = z > np.array(bounds)
    first = np.where(crossed.any(axis=1), crossed.argmax(axis=1), -1)
    observed = np.array([(first == k).mean() for k in range(info.size)])
    expected = np.array(crossing_probabilities(list(info), bounds))
    assert np.all(np.abs(observed - expected) < 4 * np.sqrt(expected * (1 - expected) / paths) + 1e-4)


@pytest.mark.parametrize("gamma", [-4.0, 0.0, 2.0, 4.0])
def test_the_boundaries_spend_exactly_the_error_of_the_spending_function(gamma):
    looks = (100, 150, 200, 250, 300)
    bounds = spending_boundaries(looks, 0.05, gamma)
    spent = np.cumsum(crossing_probabilities([float(n) for n in looks], list(bounds)))
    assert np.allclose(spent, [hsd_spending(n / 300, 0.05, gamma) for n in looks], atol=1e-7)
    assert bounds[0] == pytest.approx(norm.isf(hsd_spending(1 / 3, 0.05, gamma)))


@given(st.floats(0.0, 1.0), st.floats(0.0, 1.0), st.floats(-8.0, 8.0))
@settings(max_examples=200, deadline=None)
def test_spending_is_increasing_from_zero_to_alpha(a, b, gamma):
    lo, hi = sorted((a, b))
    assert hsd_spending(0.0, 0.05, gamma) == pytest.approx(0.0, abs=1e-15)
    assert hsd_spending(1.0, 0.05, gamma) == pytest.approx(0.05)
    assert hsd_spending(lo, 0.05, gamma) <= hsd_spending(hi, 0.05, gamma) + 1e-15
    assert hsd_spending(0.5, 0.05, 0.0) == pytest.approx(0.025)
    assert hsd_spending(-1.0, 0.05, gamma) == hsd_spending(0.0, 0.05, gamma)
    assert hsd_spending(2.0, 0.05, gamma) == hsd_spending(1.0, 0.05, gamma)


def test_a_positive_gamma_spends_early():
    assert hsd_spending(1 / 3, 0.05, 2.0) > 0.05 / 3 > hsd_spending(1 / 3, 0.05, -2.0)


def test_the_default_design():
    design = make_design(100, 300, 50, 0.95, 2.0)
    assert design.looks == (100, 150, 200, 250, 300) and design.sequential
    assert design.confidences[0] == pytest.approx(1 - hsd_spending(1 / 3, 0.05, 2.0))
    assert all(0.95 < c < 1 for c in design.confidences)
    assert "up to 5 looks" in design.describe() and "100 (97.19%)" in design.describe()


@pytest.mark.parametrize("max_n, step", [(0, 50), (100, 50), (80, 50), (300, 0)])
def test_one_look_is_the_fixed_design(max_n, step):
    design = make_design(100, max_n, step, 0.95, 2.0)
    assert design.looks == (100,) and design.confidences == (0.95,) and not design.sequential
    assert design.describe() == "one look at 100 images per class, bounds at 95%"


def test_a_last_step_that_overshoots_ends_at_the_maximum():
    assert make_design(100, 260, 50, 0.95, 2.0).looks == (100, 150, 200, 250, 260)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError):
        crossing_probabilities([1.0, 1.0], [2.0, 2.0])
    with pytest.raises(ValueError):
        crossing_probabilities([1.0], [2.0, 2.0])
    with pytest.raises(ValueError):
        spending_boundaries((1, 2), 1.5, 2.0)


# ------------------------------------------------------------------ judging over looks


class LookedAtSubject:
    """A stand-in for harness.findings.subject.Subject: only what `judge` reads (the design,
    the images per look, the subject at another look)."""

    def __init__(self, design: Design, available: int, look: int = 0):
        self.suite = type("S", (), {"design": design})()
        self.available, self.look = available, look

    def images_at(self, look: int) -> int:
        return 2 * min(self.suite.design.looks[look], self.available)

    def at_look(self, look: int):
        return LookedAtSubject(self.suite.design, self.available, look)


def _verdict(ci_high: float) -> Verdict:
    return Verdict("f", "m", ci_high - 0.05, ci_high - 0.1, ci_high, 0.1, "le", 0.95, 200)


def scripted(highs: list[float], calls: list):
    """A check whose upper bound at look k is highs[k]: robust below 0.1, fragile when the
    lower bound (high - 0.1) passes 0.1, inconclusive between."""

    def check(view, **params):
        calls.append((view.look, params))
        return _verdict(highs[view.look])

    return check


DESIGN = make_design(100, 300, 50, 0.95, 2.0)


def test_a_decided_first_look_stops_there():
    calls: list = []
    verdict = checks.judge(LookedAtSubject(DESIGN, 10_000), scripted([0.05, 0.3], calls), metric="x")
    assert verdict.label == "robust" and calls == [(0, {"metric": "x"})]
    assert verdict.details["looks"] == [{"look": 1, "images_per_class": 100, "confidence": round(DESIGN.confidences[0], 6),
                                         "label": "robust"}]
    assert "look 1 of 5: 100 images per class" in verdict.message() and "undecided" not in verdict.message()


def test_an_inconclusive_verdict_is_judged_again_until_decided():
    calls: list = []
    verdict = checks.judge(LookedAtSubject(DESIGN, 10_000), scripted([0.15, 0.12, 0.25, 0.0, 0.0], calls))
    assert verdict.label == "fragile" and [c[0] for c in calls] == [0, 1, 2]
    assert [h["label"] for h in verdict.details["looks"]] == ["inconclusive", "inconclusive", "fragile"]
    assert "look 3 of 5: 200 images per class" in verdict.message()


def test_undecided_at_the_last_look_says_so():
    calls: list = []
    verdict = checks.judge(LookedAtSubject(DESIGN, 10_000), scripted([0.15] * 5, calls))
    assert verdict.label == "inconclusive" and len(calls) == 5
    assert "undecided at the last look (300 images per class" in verdict.message()


def test_no_more_images_stops_with_that_reason():
    calls: list = []
    verdict = checks.judge(LookedAtSubject(DESIGN, 160), scripted([0.15] * 5, calls))
    assert [c[0] for c in calls] == [0, 1, 2]  # 100, 150, then 160 (the whole class); 200 would add nothing
    assert verdict.label == "inconclusive" and "the data set has no more images (160 per class)" in verdict.message()


def test_the_fixed_design_judges_once_and_adds_nothing():
    calls: list = []
    verdict = checks.judge(LookedAtSubject(make_design(100, 0, 50, 0.95, 2.0), 10_000), scripted([0.15], calls))
    assert verdict.label == "inconclusive" and len(calls) == 1
    assert "looks" not in verdict.details and verdict.note == ""


def test_not_applicable_is_raised_from_the_first_look():
    def check(view):
        raise NotApplicable("no encoder")

    with pytest.raises(NotApplicable):
        checks.judge(LookedAtSubject(DESIGN, 10_000), check)


# ------------------------------------------------------- stopping a hopeless verdict


def test_decide_chance_is_the_normal_chance_that_the_last_look_clears_the_threshold():
    from harness.stats.sequential import decide_chance

    point, bound, threshold = 0.07, 0.11, 0.10  # an estimate that passes; its upper bound 0.04 above it
    chance = decide_chance(point, bound, threshold, 100, 300, 0.97, 0.99)
    z_now, z_last = norm.ppf(0.97), norm.ppf(0.99)
    half_last = 0.04 * z_last / z_now * math.sqrt(100 / 300)
    rng = np.random.default_rng(1)
    estimates = rng.normal(point, half_last / z_last, 400_000)  # the estimate at the last look, were 0.07 the truth
    assert chance == pytest.approx(np.mean(estimates + half_last <= threshold), abs=3e-3)
    assert decide_chance(0.10, 0.13, 0.10, 100, 300, 0.97, 0.99) == pytest.approx(norm.cdf(-norm.ppf(0.99)))  # at it: 1 %
    assert decide_chance(0.02, 0.05, 0.10, 100, 300, 0.97, 0.99) > 0.99  # far from it: almost surely
    assert decide_chance(0.07, 0.07, 0.10, 100, 300, 0.97, 0.99) == 1.0  # no width: nothing to shrink


@given(st.floats(0.001, 0.2), st.floats(0.001, 0.2), st.floats(0.001, 0.2))
@settings(max_examples=200, deadline=None)
def test_decide_chance_grows_with_the_distance_from_the_threshold(gap, extra, half):
    from harness.stats.sequential import decide_chance

    near = decide_chance(0.5 + gap, 0.5 + gap - half, 0.5, 100, 300, 0.97, 0.99)
    far = decide_chance(0.5 + gap + extra, 0.5 + gap + extra - half, 0.5, 100, 300, 0.97, 0.99)
    assert 0.0 <= near <= far <= 1.0
    assert decide_chance(0.5 - gap, 0.5 - gap + half, 0.5, 100, 300, 0.97, 0.99) == pytest.approx(near)


def test_another_look_only_while_the_last_look_would_likely_decide():
    design = make_design(100, 300, 50, 0.95, 2.0, min_decide_chance=0.2)
    hopeful = Verdict("f", "m", 0.06, 0.02, 0.105, 0.1, "le", 0.97, 200)  # passes, bound just over
    hopeless = Verdict("f", "m", 0.099, 0.06, 0.14, 0.1, "le", 0.97, 200)  # on the threshold
    assert design.worth_another_look(hopeful, 0) and not design.worth_another_look(hopeless, 0)
    assert not design.worth_another_look(hopeful, len(design.looks) - 1)  # no look after the last
    assert make_design(100, 300, 50, 0.95, 2.0).worth_another_look(hopeless, 0)  # min 0: always
    calls: list = []
    verdict = checks.judge(LookedAtSubject(design, 10_000), scripted([0.14] * 5, calls))
    assert len(calls) == 1 and verdict.label == "inconclusive"
    assert "undecided at look 1: more images would not likely decide it" in verdict.message()


def test_another_look_is_judged_at_the_last_look_from_the_bound_that_has_to_move():
    """Pins worth_another_look (mutation testing: the second-to-last look, the other bound
    and `>` survived): the chance is computed at the last look's images and confidence,
    from the bound on the far side of the threshold, and `min_decide_chance` itself is enough."""
    from types import SimpleNamespace

    from harness.stats.sequential import Design, decide_chance

    looks, confs = (100, 200, 400), (0.97, 0.98, 0.99)
    passing = SimpleNamespace(value=0.08, bound=0.115, other_bound=0.05, threshold=0.10, point_passes=True)
    failing = SimpleNamespace(value=0.12, bound=0.15, other_bound=0.085, threshold=0.10, point_passes=False)
    for verdict, moving in ((passing, passing.bound), (failing, failing.other_bound)):
        chance = decide_chance(verdict.value, moving, verdict.threshold, 100, 400, 0.97, 0.99)
        assert 0.0 < chance < 1.0
        for other in (decide_chance(verdict.value, moving, verdict.threshold, 100, 200, 0.97, 0.98),
                      decide_chance(verdict.value, moving, verdict.threshold, 100, 400, 0.97, 0.98),
                      decide_chance(verdict.value, moving, verdict.threshold, 100, 200, 0.97, 0.99)):
            assert abs(other - chance) > 1e-6  # the tests below tell the last look from the others
        assert Design(looks, confs, 0.99, 2.0, chance).worth_another_look(verdict, 0)
        assert not Design(looks, confs, 0.99, 2.0, chance + 1e-9).worth_another_look(verdict, 0)
        assert not Design(looks, confs, 0.99, 2.0, 0.0).worth_another_look(verdict, 2)  # no later look


def test_the_fixed_design_keeps_its_settings_and_a_step_of_one_is_a_look_per_image():
    """Pins make_design's edges (mutation testing): one look keeps gamma and the futility
    setting it was given; a step of 1 is a valid (if costly) design, not the fixed one."""
    from harness.stats.sequential import make_design

    fixed = make_design(100, 100, 50, 0.95, 2.0, 0.05)
    assert fixed.looks == (100,) and fixed.confidences == (0.95,)
    assert fixed.gamma == 2.0 and fixed.min_decide_chance == 0.05 and not fixed.sequential
    assert make_design(100, 300, 0, 0.95, 2.0).looks == (100,)
    every = make_design(10, 13, 1, 0.95, 2.0)
    assert every.looks == (10, 11, 12, 13) and every.sequential
