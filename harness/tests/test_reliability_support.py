"""Shared helpers of the reliability tests (test_reliability_*.py); holds no tests.

The end-to-end reliability tests run the real behaviour suite (pytester, in process)
against an "oracle" model served over the OpenAI API on 127.0.0.1 by harness.serve:
it answers every closed-form prompt correctly from the image's brightness (bright =
positive), so verdicts are known in advance, no weights are built, and faults
(HTTP errors, empty answers, timeouts, wrong keys) come from the server's FaultPlan.
Everything stays on loopback.
"""

from __future__ import annotations

import contextlib
import html
import json
import re
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from harness.backends import Backend
from harness.config.prompts import render_text
from harness.config.registry import load_registry
from harness.core import GenerationResult, ModelSpec
from harness.serve import start_server

REPO = Path(__file__).resolve().parents[2]
TASK = "brain_tumor"
ORACLE = "oracle"
FAST_TESTS = "near_random or prompt_sensitivity"  # closed-form findings only: no encoder, no diagnoser
HOSTILE = '<script>alert("medvlm")</script><img src=x onerror=alert(1)>'


class OracleBackend(Backend):
    """Answers closed-form prompts correctly from the image (mean brightness > 127 is
    positive), describes images (plus `describe_suffix`), and as a text-only diagnoser
    answers {"answer": "yes"} iff the description mentions a bright lesion."""

    def __init__(self, *, answer_suffix: str = "", describe_suffix: str = ""):
        self.spec = ModelSpec(name=ORACLE, backend="hf", model=ORACLE)
        self.answer_suffix, self.describe_suffix = answer_suffix, describe_suffix
        registry = load_registry()
        self.variants = {v.render(t): v for t in registry.tasks.values() for v in registry.variants.values()}
        self.describe = {render_text(p, t) for t in registry.tasks.values() for p in registry.describe_prompts.values()}

    def generate(self, requests, images):
        return [GenerationResult(text=self._answer(r, images)) for r in requests]

    def _answer(self, request, images) -> str:
        if request.image_key is None:
            return '{"answer": "yes"}' if "bright lesion" in request.prompt else '{"answer": "no"}'
        label = "positive" if np.asarray(images[request.image_key]).mean() > 127 else "negative"
        if request.prompt in self.describe:
            seen = "a bright lesion" if label == "positive" else "normal dark tissue"
            return f"The image shows {seen}.{self.describe_suffix}"
        variant = self.variants.get(request.prompt)
        if variant is None:
            return "Yes."
        if variant.kind == "choice":
            return ("A" if variant.options[0] == label else "B") + self.answer_suffix
        return ("Yes." if variant.yes_means == label else "No.") + self.answer_suffix


@contextlib.contextmanager
def served(tmp_path: Path, backend: Backend | None = None, *, entries: dict | None = None, **server_kw):
    """Serve `backend` (an OracleBackend by default) on 127.0.0.1; yields (handle, models
    file). `entries` maps registry names to extra TOML lines for that entry."""
    handle = start_server(backend or OracleBackend(), served_name=ORACLE, **server_kw)
    try:
        lines = []
        for name, extra in (entries or {ORACLE: ""}).items():
            lines += [f"[models.{name}]", 'backend = "openai"', f'model = "{ORACLE}"',
                      f'base_url = "{handle.url}"', extra, ""]
        models_file = tmp_path / f"served-{handle.port}.toml"
        models_file.write_text("\n".join(lines))
        yield handle, models_file
    finally:
        handle.stop()


def make_suite_dir(pytester):
    """A project folder with the behaviour suite and the plugin, as a user's checkout has."""
    pytester.makeconftest('pytest_plugins = ["harness.plugin"]\n')
    for test_file in (REPO / "tests").glob("test_*.py"):
        shutil.copy(test_file, pytester.path / test_file.name)
    return pytester


def run_suite(pytester, models_file: Path, cache: Path, *extra: str, models: str = ORACLE, n: int = 6):
    """The behaviour suite's closed-form findings on one task, in process, on an image
    folder of n bright and n dark images (unless `extra` names other data)."""
    if not any(e.startswith(("--data-root", "--manifest")) for e in extra):
        root = cache.parent / f"data-{n}"
        if not root.exists():
            image_folder(root, n, n)
        extra = (f"--data-root={root}", *extra)
    return pytester.runpytest(
        f"--models-file={models_file}", f"--models={models}", f"--tasks={TASK}", f"--n-per-class={n}",
        f"--cache-dir={cache}", f"--baseline={cache.parent / 'no-baseline.toml'}", "-p", "no:cacheprovider",
        "-m", FAST_TESTS, *extra)


def write_image(path: Path, label: str, index: int, size: int = 16) -> Path:
    """A distinct (by content) bright (positive) or dark (negative) PNG."""
    value = 230 if label == "positive" else 25
    arr = np.full((size, size, 3), value, dtype=np.uint8)
    arr.flat[index % arr.size] = (value + 1 + index) % 256
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr, "RGB").save(path)
    return path


def image_folder(root: Path, n_pos: int, n_neg: int) -> Path:
    """root/brain_tumor/{yes,no}/*.png with known labels (ImageFolder layout)."""
    for i in range(n_pos):
        write_image(root / TASK / "yes" / f"pos{i:02d}.png", "positive", i)
    for i in range(n_neg):
        write_image(root / TASK / "no" / f"neg{i:02d}.png", "negative", i)
    return root


def summary(results: Path) -> dict:
    return {r["test"]: r for r in json.loads((results / "summary.json").read_text())["records"]}


def report_texts(report: Path) -> tuple[str, list[str]]:
    """The HTML page, and every string inside pytest-html's data blob (test rows, extras,
    logs) as the browser's script will see it after decoding the attribute and JSON."""
    page = report.read_text(encoding="utf-8")
    match = re.search(r'data-jsonblob="([^"]*)"', page)
    strings: list[str] = []

    def walk(value):
        if isinstance(value, str):
            strings.append(value)
        elif isinstance(value, dict):
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    if match:
        walk(json.loads(html.unescape(match.group(1))))
    return page, strings
