"""Command-line options of the suite (SPEC §6) and the settings object they produce."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

GROUP = "medvlm-fragility"


# The default sample size, chosen from the calibration study (bench/calibration.py, docs/statistics.md
# "What the suite can detect"): the smallest of 50/100/200 per class at which every test
# passes its robust subject >= 0.9 and fails its fragile subject >= 0.8.
DEFAULT_N_PER_CLASS = 100


def add_options(parser) -> None:
    group = parser.getgroup(GROUP, "medvlm-fragility: behaviour tests for medical VLMs")
    add = group.addoption
    add("--models", default=None, help="comma-separated registry model names (default: the embedded organism)")
    add("--models-file", action="append", default=[], metavar="PATH", help="extra model registry TOML (repeatable)")
    add("--tasks", default=None, help="comma-separated task keys (default: all four)")
    add("--tasks-file", action="append", default=[], metavar="PATH", help="extra task registry TOML (repeatable)")
    add("--manifest", default=None, metavar="PATH", help="CSV with columns task,image,label")
    add("--data-root", default=None, metavar="DIR", help="ImageFolder root: DIR/<task>/<class>/<image>")
    add("--hf-datasets", action="store_true", default=False,
        help="load each task from its Hugging Face dataset (needs the 'datasets' extra and a local cache)")
    add("--n-per-class", type=int, default=DEFAULT_N_PER_CLASS, metavar="N",
        help=f"images sampled per class (default {DEFAULT_N_PER_CLASS}, chosen from bench/calibration.py)")
    add("--seed", type=int, default=42, metavar="N", help="sampling seed (default 42)")
    add("--cache-dir", default=None, metavar="DIR", help="response store and built models (default .medvlm-cache)")
    add("--results-dir", default=None, metavar="DIR", help="write summary.json and responses.csv here")
    add("--diagnoser", default=None, metavar="NAME", help="registry model used as the text-only diagnoser")
    add("--judge", default=None, metavar="NAME", help="registry model that classifies answers the parser cannot")
    add("--strict-checkpoints", action="store_true", default=False,
        help="a model whose processor differs from its checkpoint snapshot (fixtures/checkpoints) is an error, "
             "not a warning")
    add("--accept-served-change", default=None, metavar="NAMES",
        help="endpoint models (comma-separated registry names, or 'all') whose servers may now serve other "
             "weights than the store remembers under the name (default: such a model is refused)")
    add("--allow-remote", action="store_true", default=False,
        help="allow images and image-derived text to go to non-loopback endpoints")
    add("--report-thumbnails", action="store_true", default=False,
        help="show small thumbnails of a few input images per subject in the HTML report "
             "(off by default: input images are patient data)")
    add("--update-baseline", action="store_true", default=False,
        help="record this run's failures as the known fragilities (baseline file)")
    add("--compare-to", default=None, metavar="DIR",
        help="an earlier run's --results-dir: add the changes since it to report.html and summary.json")
    add("--thresholds", default=None, metavar="PATH", help="thresholds TOML (default <rootdir>/thresholds.toml)")
    add("--baseline", default=None, metavar="PATH", help="baseline TOML (default <rootdir>/baseline.toml)")


PATH_OPTIONS = ("--models-file", "--tasks-file", "--manifest", "--data-root", "--cache-dir",
                "--results-dir", "--thresholds", "--baseline", "--compare-to")


def separated_path_values(args) -> list[str]:
    """Path options written as `--opt PATH` where PATH exists.

    pytest picks its rootdir and ini file from the command line before plugins add
    their options, so an existing PATH given as a separate word is taken for a test
    path and the project's configuration is silently not read. `--opt=PATH` is safe.
    """
    args = list(args)
    return [f"{a} {b}" for a, b in zip(args, args[1:]) if a in PATH_OPTIONS and Path(b).exists()]


def found_project_configuration(config) -> bool:
    """Did pytest find an ini file (the project's pyproject.toml) at its rootdir?

    `--opt PATH` (a space) goes wrong only when PATH lies outside the project: pytest then
    picks rootdir from the paths on the command line, finds no ini file, and ignores
    `testpaths` and the suite's options. Inside the project the space form is harmless
    (the option is registered by entry point, so its value is never collected), and CI
    scripts and newcomers write it that way.
    """
    inipath = getattr(config, "inipath", None)
    return inipath is not None and Path(inipath).resolve().parent == Path(config.rootpath).resolve()


def _split(value: Optional[str]) -> Optional[list[str]]:
    if not value:
        return None
    return [v.strip() for v in value.split(",") if v.strip()]


@dataclass
class Settings:
    rootdir: Path
    models: Optional[list[str]]
    models_files: list[Path]
    tasks: Optional[list[str]]
    tasks_files: list[Path]
    manifest: Optional[Path]
    data_root: Optional[Path]
    hf_datasets: bool
    n_per_class: int
    seed: int
    cache_dir: Path
    results_dir: Optional[Path]
    diagnoser: Optional[str]
    judge: Optional[str]
    allow_remote: bool
    update_baseline: bool
    thresholds_path: Path
    baseline_path: Path
    report_thumbnails: bool = False
    strict_checkpoints: bool = False
    compare_to: Optional[Path] = None
    accept_served_change: Optional[list[str]] = None
    problems: list[str] = field(default_factory=list)


def settings_from_config(config) -> Settings:
    opt = config.getoption
    root = Path(config.rootpath)

    def path(value, default=None):
        if value is None:
            return default
        p = Path(value)
        return p if p.is_absolute() else Path.cwd() / p

    s = Settings(
        rootdir=root,
        models=_split(opt("--models")),
        models_files=[path(p) for p in opt("--models-file")],
        tasks=_split(opt("--tasks")),
        tasks_files=[path(p) for p in opt("--tasks-file")],
        manifest=path(opt("--manifest")),
        data_root=path(opt("--data-root")),
        hf_datasets=opt("--hf-datasets"),
        n_per_class=opt("--n-per-class"),
        seed=opt("--seed"),
        cache_dir=path(opt("--cache-dir"), root / ".medvlm-cache"),
        results_dir=path(opt("--results-dir")),
        diagnoser=opt("--diagnoser"),
        judge=opt("--judge"),
        allow_remote=opt("--allow-remote"),
        accept_served_change=_split(opt("--accept-served-change")),
        update_baseline=opt("--update-baseline"),
        thresholds_path=path(opt("--thresholds"), root / "thresholds.toml"),
        baseline_path=path(opt("--baseline"), root / "baseline.toml"),
        report_thumbnails=opt("--report-thumbnails"),
        strict_checkpoints=opt("--strict-checkpoints"),
        compare_to=path(opt("--compare-to")),
    )
    if not found_project_configuration(config):
        for pair in separated_path_values(config.invocation_params.args):
            opt, value = pair.split(" ", 1)
            s.problems.append(f"write {opt}={value} (with '='): pytest took the separate path for a test path "
                              f"and did not find the project's configuration")
    if s.n_per_class < 1:
        s.problems.append(f"--n-per-class must be at least 1, got {s.n_per_class}")
    if s.manifest and s.data_root:
        s.problems.append("give either --manifest or --data-root, not both")
    for p in [*s.models_files, *s.tasks_files, *([s.manifest] if s.manifest else [])]:
        if not p.is_file():
            s.problems.append(f"{p}: file not found")
    if s.compare_to and not (s.compare_to / "summary.json").is_file():
        s.problems.append(f"{s.compare_to}: --compare-to needs an earlier --results-dir (no summary.json there)")
    if s.data_root and not s.data_root.is_dir():
        s.problems.append(f"{s.data_root}: --data-root is not a directory")
    return s
