"""`--dist loadgroup` that keeps each model's tests on one worker, whatever pytest does to node ids.

pytest-xdist's loadgroup scheduler reads a test's group from an "@group" suffix that
its worker appends to the node id; with pytest 9.2's structured node ids that append no
longer takes effect (pytest-dev/pytest-xdist#1386), and the tests are then spread one by
one, so every worker loads every model. This scheduler derives the group itself: a
behaviour test's parameter id starts with its model's id (params.py), and every test
of one model is one work unit. Tests without a model (the harness's own tests) are their
own unit, as plain load scheduling would send them. A legacy "@group" suffix still wins.
"""

from __future__ import annotations


def model_scope(nodeid: str, model_ids: list[str], task_ids: list[str]) -> str:
    """The work unit of `nodeid`: "model:<id>" for a behaviour test, else the node id itself."""
    if nodeid.rfind("@") > nodeid.rfind("]"):
        return nodeid.split("@")[-1]
    start = nodeid.find("[")
    if start < 0 or not nodeid.endswith("]"):
        return nodeid
    param = nodeid[start + 1 : -1]
    for model in sorted(model_ids, key=len, reverse=True):  # "a-b" before "a"
        rest = param[len(model) + 1 :] if param.startswith(model + "-") else None
        if rest is not None and any(rest == t or rest.startswith(t + "-") for t in task_ids):
            return f"model:{model}"
    return nodeid


def make_scheduler(config, log, model_ids: list[str], task_ids: list[str]):
    """An xdist LoadScopeScheduling whose scopes are models (see model_scope)."""
    from xdist.scheduler.loadscope import LoadScopeScheduling

    class ModelScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return model_scope(nodeid, model_ids, task_ids)

    return ModelScheduling(config, log)
