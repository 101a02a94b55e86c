"""The fill phase's looks: subjects with an undecided verdict draw more images (issue 18).

The first look fills every selected subject at --n-per-class. Then, look after look of the
run's design (harness.stats.sequential), each check that is still inconclusive on the
data filled so far, and that the last look would likely decide (Design.worth_another_look),
asks for the next look's images of its subject only, and only for the
stages it reads (and its base model's or previous version's answers where it compares
with them). Robust and fragile verdicts stop at the look that decided them. The tests
later judge the same checks on the same stored answers (harness.findings.checks.judge),
so they reach the same looks without a model call.

Extra images are new store keys: nothing already asked is asked again, a killed run
resumes, and the same seed draws the same images at every look (a larger sample extends
the smaller one).
"""

from __future__ import annotations

from typing import Callable

from ..core import HarnessError, NotApplicable
from ..findings.checks import CheckSpec
from ..findings.subject import make_subject


def fill_looks(suite, needs: dict, checks: dict, factory: Callable, progress=None) -> dict:
    """Fill `needs` ({(model, task): stages}) at the first look, then the later looks that the
    undecided `checks` ({(model, task): [(CheckSpec, params)]}) need. Returns
    {look index: [(model, task), ...]} for the looks after the first (what was extended)."""
    suite.fill(needs, factory, progress=progress)
    design = suite.design
    pending = {cell: list(specs) for cell, specs in checks.items() if specs}
    extended: dict = {}
    for look in range(1, len(design.looks)):
        undecided = {}
        for (model, task), specs in pending.items():
            still = [(spec, params) for spec, params in specs if _undecided(suite, model, task, spec, params, look - 1,
                                                                            factory)]
            if still and _more_images(suite, task, look):
                undecided[(model, task)] = still
        if not undecided:
            break
        suite.fill(_needs_of(suite, undecided), factory, progress=progress, n=design.looks[look])
        extended[look] = sorted(undecided)
        pending = undecided
    return extended


def _undecided(suite, model: str, task: str, spec: CheckSpec, params: dict, look: int, factory) -> bool:
    """Is the check inconclusive at this look? A check that cannot be judged (not applicable,
    too many errors, a failed stage) is decided: its test says why, more images would not help."""
    try:
        view = make_subject(suite, model, task, factory, look)
        verdict = spec.check(view, **params)
    except (NotApplicable, HarnessError):
        return False
    return verdict.label == "inconclusive" and suite.design.worth_another_look(verdict, look)


def _more_images(suite, task_key: str, look: int) -> bool:
    task = suite.task(task_key)
    return len(suite.items(task, suite.design.looks[look])) > len(suite.items(task, suite.design.looks[look - 1]))


def _needs_of(suite, undecided: dict) -> dict:
    """{(model, task): stages} for the next look of the undecided checks, with the other
    models their checks compare with."""
    needs: dict = {}
    for (model, task), specs in undecided.items():
        for spec, _ in specs:
            needs.setdefault((model, task), set()).update(spec.stages)
            other = getattr(suite.model(model), spec.other, None) if spec.other else None
            if other:  # the other model is read the same way (the previous version's descriptions too)
                needs.setdefault((other, task), set()).update(spec.stages)
    return needs
