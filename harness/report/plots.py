"""Small PNG plots for the HTML report.

The figures are built with matplotlib's object API (``Figure`` plus the Agg
canvas) rather than ``pyplot``: pyplot keeps global state that leaks between
tests and xdist workers, and needs a GUI backend decision we do not want to
make on a CI runner.  Figures are small (about 5 x 3.5 in at 90 dpi) so that a
report with dozens of them stays light enough to attach as a CI artifact.

Inputs come from measured statistics, so any number may be missing or NaN
(a bootstrap that could not run, a model that refused everything); the plots
draw what is there and never raise on such holes.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

DPI = 90
WIDTH_IN = 5.0
HEIGHT_IN = 3.5
_LABEL_MAX = 32


def _num(x: object) -> float:
    """Return ``x`` as a float, NaN for anything missing or non-numeric."""
    if isinstance(x, bool):
        return float(x)
    try:
        return float(x)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan


def _plain(text: object, limit: int = _LABEL_MAX) -> str:
    """Make a label safe for matplotlib text.

    A ``$`` would switch matplotlib into mathtext, and an unbalanced or
    malformed formula raises at draw time; variant and task names are user
    data, so dollars are escaped and long names shortened.
    """
    s = " ".join(str(text).split())
    if len(s) > limit:
        s = s[: limit - 1] + "…"
    return s.replace("$", r"\$")


def _new_axes(height: float = HEIGHT_IN):
    """A fresh figure with the Agg canvas attached, and its single axes."""
    fig = Figure(figsize=(WIDTH_IN, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def _to_png(fig: Figure) -> bytes:
    """Render to PNG bytes (no timestamp metadata, so output is stable)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return buf.getvalue()


def _no_data(ax, title: str) -> None:
    """Mark an empty plot explicitly instead of showing blank axes."""
    ax.set_title(_plain(title, 60), fontsize=9)
    ax.text(0.5, 0.5, "no data", ha="center", va="center",
            transform=ax.transAxes, color="0.4")
    ax.set_xticks([])
    ax.set_yticks([])


def _errors(value: float, low: float, high: float) -> tuple[float, float]:
    """Distances from the point to its bounds; 0 where a bound is unknown."""
    if math.isnan(value):
        return 0.0, 0.0
    below = value - low if math.isfinite(low) else 0.0
    above = high - value if math.isfinite(high) else 0.0
    return max(below, 0.0), max(above, 0.0)


def _unit_range(values: Iterable[float]) -> bool:
    """True when every finite number lies in [0, 1] (rates, accuracies)."""
    return all(0.0 <= v <= 1.0 for v in values if math.isfinite(v))


def plot_per_prompt(rows: list[dict], *, chance: float | None,
                    threshold: float | None, title: str) -> bytes:
    """Per-variant estimates with their intervals, one row per prompt variant.

    This is the picture behind prompt sensitivity: when the bars of two
    phrasings of the same question do not overlap, the model's answer depends
    on wording.  ``rows`` hold ``variant``, ``value``, ``low`` and ``high``.
    """
    n = len(rows)
    fig, ax = _new_axes(HEIGHT_IN if n <= 12 else min(0.25 * n + 0.5, 8.0))
    if not rows:
        _no_data(ax, title)
        return _to_png(fig)
    ys = list(range(n))
    vals = [_num(r.get("value")) for r in rows]
    lows = [_num(r.get("low")) for r in rows]
    highs = [_num(r.get("high")) for r in rows]
    errs = [_errors(v, lo, hi) for v, lo, hi in zip(vals, lows, highs)]
    ax.errorbar(vals, ys, xerr=[[e[0] for e in errs], [e[1] for e in errs]],
                fmt="o", color="#1f5fa8", ecolor="#7fa6d6", capsize=3, ms=4)
    if chance is not None and math.isfinite(_num(chance)):
        ax.axvline(_num(chance), color="0.35", ls="--", lw=1, label="chance")
    if threshold is not None and math.isfinite(_num(threshold)):
        ax.axvline(_num(threshold), color="#b03030", ls=":", lw=1.3,
                   label="threshold")
    ax.set_yticks(ys, [_plain(r.get("variant", "?")) for r in rows], fontsize=7)
    ax.invert_yaxis()
    if _unit_range(vals + lows + highs + [_num(chance), _num(threshold)]):
        ax.set_xlim(-0.02, 1.02)
    ax.tick_params(axis="x", labelsize=7)
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(_plain(title, 60), fontsize=9)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="best")
    return _to_png(fig)


def _task_ranks(points: list[dict]) -> list[str]:
    """Tasks ordered by difficulty (unknown difficulty last, then by name)."""
    diff: dict[str, float] = {}
    for p in points:
        task = str(p.get("task"))
        d = _num(p.get("difficulty"))
        # keep the first finite difficulty seen for a task
        if task not in diff or not math.isfinite(diff[task]):
            diff[task] = d
    return sorted(diff, key=lambda t: (not math.isfinite(diff[t]),
                                       diff[t] if math.isfinite(diff[t]) else 0.0,
                                       t))


def plot_difficulty(points: list[dict], *, chance: float = 0.5) -> bytes:
    """Balanced accuracy against task difficulty, one line per model.

    The study's headline is that medical VLMs sink towards chance as tasks
    get harder; plotting every model on one axis makes that slope (and
    whether a medical variant sits above its base) visible at a glance.
    ``points`` hold ``model``, ``task``, ``difficulty``, ``value``, ``low``,
    ``high``.
    """
    fig, ax = _new_axes()
    title = "Balanced accuracy by task difficulty"
    if not points:
        _no_data(ax, title)
        return _to_png(fig)
    tasks = _task_ranks(points)
    rank = {t: i for i, t in enumerate(tasks)}
    models = sorted({str(p.get("model")) for p in points})
    for i, model in enumerate(models):
        offset = (i - (len(models) - 1) / 2) * 0.06
        mine = sorted((p for p in points if str(p.get("model")) == model),
                      key=lambda p: rank[str(p.get("task"))])
        mine = [p for p in mine if math.isfinite(_num(p.get("value")))]
        if not mine:
            continue
        xs = [rank[str(p.get("task"))] + offset for p in mine]
        vals = [_num(p.get("value")) for p in mine]
        errs = [_errors(v, _num(p.get("low")), _num(p.get("high")))
                for v, p in zip(vals, mine)]
        ax.errorbar(xs, vals, yerr=[[e[0] for e in errs], [e[1] for e in errs]],
                    fmt="-o", capsize=3, ms=4, lw=1.2, label=_plain(model))
    ax.axhline(_num(chance), color="0.35", ls="--", lw=1, label="chance")
    ax.set_xticks(range(len(tasks)), [_plain(t, 18) for t in tasks], fontsize=7)
    ax.set_xlim(-0.5, len(tasks) - 0.5)
    ax.set_ylim(0.0, 1.03)
    ax.set_xlabel("task (easier → harder)", fontsize=8)
    ax.set_ylabel("balanced accuracy", fontsize=8)
    ax.tick_params(axis="y", labelsize=7)
    ax.grid(axis="y", alpha=0.3)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=6, loc="best")
    return _to_png(fig)


def plot_scatter(points: list, is_pos: list, *, title: str, labels: tuple[str, str] = ("positive", "negative")) -> bytes:
    """A 2-D scatter (t-SNE of vision-encoder embeddings), coloured by true class.

    The study judged separability by eye from such plots; here the probe decides and
    the scatter only helps a reader see why.
    """
    fig, ax = _new_axes()
    pts = [(float(x), float(y), bool(p)) for (x, y), p in zip(points, is_pos)
           if math.isfinite(_num(x)) and math.isfinite(_num(y))]
    if not pts:
        _no_data(ax, title)
        return _to_png(fig)
    for flag, colour, name in ((True, "tab:red", labels[0]), (False, "tab:blue", labels[1])):
        xs = [p[0] for p in pts if p[2] == flag]
        ys = [p[1] for p in pts if p[2] == flag]
        ax.scatter(xs, ys, s=10, c=colour, alpha=0.7, label=_plain(name, 40))
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(_plain(title, 60), fontsize=9)
    ax.legend(fontsize=6, loc="best")
    return _to_png(fig)
