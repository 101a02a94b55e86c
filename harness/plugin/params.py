"""Parametrization of behaviour tests over model × task (× perturbation family).

Ids are built from registry names only, never from model output. Each parameter set
carries markers for its task, its model and its finding, so `pytest -m histopathology`
or `-m "prompt_sensitivity and not pneumonia"` select by data, and an xdist group per
model so `--dist loadgroup` loads each model in one worker.
"""

from __future__ import annotations

import re

import pytest

from ..core import DIRECTIONAL_FAMILIES, PERTURBATION_FAMILIES

_SAFE_ID = re.compile(r"[^A-Za-z0-9_.+-]")


def safe_id(text: str) -> str:
    return _SAFE_ID.sub("_", text)


def finding_of(metafunc) -> str | None:
    marker = metafunc.definition.get_closest_marker("finding")
    return marker.args[0] if marker and marker.args else None


def subject_models(metafunc, suite) -> list:
    """The models a test runs on: all selected ones, or only fine-tuned ones for finetune_gain."""
    if finding_of(metafunc) == "finetune_gain":
        return [m for m in suite.models if m.base_model]
    if finding_of(metafunc) == "regression":
        return [m for m in suite.models if m.previous]
    return list(suite.models)


def parametrize_subjects(metafunc, suite) -> None:
    finding = finding_of(metafunc)
    with_perturbation = "perturbation" in metafunc.fixturenames
    params = []
    for model in subject_models(metafunc, suite):
        for task in suite.tasks:
            marks = [getattr(pytest.mark, task.key), getattr(pytest.mark, model.name),
                     pytest.mark.xdist_group(safe_id(model.name))]
            if finding:
                marks.append(getattr(pytest.mark, finding))
            base_id = f"{safe_id(model.name)}-{safe_id(task.key)}"
            if with_perturbation:
                for family in PERTURBATION_FAMILIES:
                    family_marks = marks
                    if finding and family in DIRECTIONAL_FAMILIES:  # a hint must not hurt: a direction check
                        family_marks = [*marks, pytest.mark.finding(finding, check="direction")]
                    params.append(pytest.param((model.name, task.key), family, id=f"{base_id}-{family}",
                                               marks=family_marks))
            else:
                params.append(pytest.param((model.name, task.key), id=base_id, marks=marks))
    names = ["subject", "perturbation"] if with_perturbation else ["subject"]
    if not params:
        reason = {"finetune_gain": "no selected model names a base_model",
                  "regression": "no selected model names a previous version"}.get(finding, "no model or task selected")
        params = [pytest.param(*([None] * len(names)), marks=pytest.mark.skip(reason=reason), id="none")]
    metafunc.parametrize(names if with_perturbation else "subject", params, indirect=["subject"])
