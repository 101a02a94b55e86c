"""Where task images come from: a CSV manifest, an image folder tree, a Hugging Face
dataset (hf_datasets.py), or the synthetic generator. Every source returns ImageItems that are cheap
to list: no pixel is decoded and no byte is hashed until it is needed, so a folder or
dataset with hundreds of thousands of images can be listed and then sampled down to
the 2 x 50 the study uses.

Image ids are stable, readable and safe to use in file names and node ids: only
[A-Za-z0-9_./-]. An id that had to be changed to get there carries a short hash of
the original, so two different originals never share an id.
"""

from __future__ import annotations

import csv
import functools
import os
import re
from pathlib import Path
from typing import Callable, Iterable, Optional

from PIL import Image

from harness.core import LABELS, ConfigError, HarnessError, ImageItem, TaskSpec, sha256_bytes
from harness.data.dicom import DICOM_EXTENSIONS
from harness.data.images import image_sha256, load_image, pixel_sha256
from harness.data.synthetic import generate_image

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", *DICOM_EXTENSIONS})
MANIFEST_COLUMNS = ("task", "image", "label")
DATASETS_INSTALL_HINT = "pip install 'medvlm-fragility[datasets]'"

_UNSAFE_ID_CHARS = re.compile(r"[^A-Za-z0-9_./-]")


class LazyHashItem(ImageItem):
    """An ImageItem whose `sha256` is computed on first access and then kept.

    The response cache needs the content hash of every image it looks up, but only of
    the images actually sampled; hashing a whole data set at listing time would read
    every file. Reading `item.sha256` works exactly as for a plain ImageItem.
    """

    def __init__(self, *args, hasher: Optional[Callable[[], str]] = None, **kwargs):
        self._hasher = hasher
        self._sha256 = ""
        super().__init__(*args, **kwargs)

    @property
    def sha256(self) -> str:
        if not self._sha256 and self._hasher is not None:
            self._sha256 = self._hasher()
        return self._sha256

    @sha256.setter
    def sha256(self, value: str) -> None:
        self._sha256 = value or ""

    def __repr__(self) -> str:  # must not hash (or fail on a missing file) just to print
        digest = self._sha256[:12] or "<not computed>"
        return f"LazyHashItem(image_id={self.image_id!r}, task={self.task!r}, label={self.label!r}, sha256={digest})"


def make_image_id(*parts: object) -> str:
    """Join parts with '/' into a safe id; ids that had to change get a hash suffix."""
    raw = "/".join(str(p) for p in parts)
    segments = [s for s in raw.replace("\\", "/").split("/") if s not in ("", ".")]
    clean = _UNSAFE_ID_CHARS.sub("_", "/".join("__" if s == ".." else s for s in segments))
    if clean != raw:
        clean = f"{clean}-{sha256_bytes(raw.encode('utf-8', 'surrogateescape'))[:8]}"
    return clean


def _file_item(task: TaskSpec, label: str, path: Path, image_id: str) -> ImageItem:
    return LazyHashItem(
        image_id=image_id,
        task=task.key,
        label=label,
        source=str(path),
        loader=functools.partial(load_image, path, source=str(path)),
        hasher=functools.partial(_file_hash_or_marker, path),
    )


def _file_hash_or_marker(path: Path) -> str:
    """The file's content hash; for a file that cannot be read (deleted or made
    unreadable after listing, a dangling link) a marker that matches no stored answer.

    Hashing happens when the runner builds cache keys, before images are decoded; an
    exception there would fail every image of the subject. With a marker, the image's
    own load fails next and becomes a per-image `error` naming the file, and the rest
    of the run continues. Nothing is stored for an image that fails to load, so the
    marker keys no answer (unless the file comes back between hashing and loading; its
    answers are then stored under the marker and asked again on the next run).
    """
    try:
        return image_sha256(path)
    except HarnessError as exc:
        return "unreadable:" + sha256_bytes(str(exc).encode("utf-8", "surrogateescape"))


# ----------------------------------------------------------------------------- manifest


def load_manifest(csv_path: Path, tasks: dict[str, TaskSpec]) -> dict[str, list[ImageItem]]:
    """Read a task,image,label CSV (SPEC section 6) into items per task.

    All rows are validated before anything is returned, and every problem is reported
    in one ConfigError (a HarnessError) with its line number, so a user fixes a
    manifest in one pass. Only tasks that appear in the manifest are keys of the result.
    """
    csv_path = Path(csv_path)
    header, rows = _read_csv(csv_path)
    base = Path(os.path.normpath(os.path.abspath(csv_path.parent)))
    problems: list[str] = []
    entries: list[tuple[TaskSpec, str, Path]] = []
    seen: dict[tuple[str, Path], int] = {}
    for line, row in rows:
        entry = _check_manifest_row(line, row, header, base, tasks, seen, problems)
        if entry is not None:
            entries.append(entry)
    if not rows:
        problems.append("no data rows")
    if problems:
        raise ConfigError(str(csv_path), problems)
    result: dict[str, list[ImageItem]] = {}
    for task, label, path in entries:
        rel = path.relative_to(base).as_posix() if base in path.parents else path.as_posix()
        result.setdefault(task.key, []).append(_file_item(task, label, path, make_image_id(task.key, rel)))
    return result


def _read_csv(csv_path: Path) -> tuple[dict[str, int], list[tuple[int, list[str]]]]:
    """Header (column -> position) and the non-blank rows with their line numbers."""
    if not csv_path.is_file():
        raise HarnessError(f"{csv_path}: manifest file not found")
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            first = next(reader, None)
            rows = [(reader.line_num, r) for r in reader if any(c.strip() for c in r)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise HarnessError(f"{csv_path}: cannot read manifest ({exc})") from exc
    header = {name.strip().lower(): i for i, name in reversed(list(enumerate(first or [])))}
    missing = [c for c in MANIFEST_COLUMNS if c not in header]
    if missing:
        found = ", ".join(first or []) or "nothing"
        raise ConfigError(str(csv_path), [f"missing column(s) {', '.join(missing)} (header has: {found})"])
    return header, rows


def _check_manifest_row(line, row, header, base, tasks, seen, problems) -> Optional[tuple[TaskSpec, str, Path]]:
    """Validate one row, appending every problem found; the entry when it is clean."""
    before = len(problems)
    if len(row) > len(header) or len(row) <= max(header[c] for c in MANIFEST_COLUMNS):
        hint = " (unquoted comma in a value?)" if len(row) > len(header) else ""
        problems.append(f"line {line}: has {len(row)} field(s), the header has {len(header)}{hint}")
        return None
    task_key, image, label_text = (row[header[c]].strip() for c in MANIFEST_COLUMNS)
    task = tasks.get(task_key)
    if task is None:
        problems.append(f"line {line}: unknown task {task_key!r} (known: {', '.join(sorted(tasks)) or 'none'})")
    label = task.label_from_name(label_text) if task is not None else None
    if task is not None and label is None:
        problems.append(f"line {line}: unknown label {label_text!r} for task {task_key!r} ({_label_help(task)})")
    path = _resolve_manifest_image(line, image, base, problems)
    if path is not None and task is not None:
        first = seen.setdefault((task.key, path), line)
        if first != line:
            problems.append(f"line {line}: duplicate of line {first} (task {task_key!r}, image {image!r})")
    if len(problems) > before or task is None or label is None or path is None:
        return None
    return task, label, path


def _resolve_manifest_image(line: int, image: str, base: Path, problems: list[str]) -> Optional[Path]:
    """Absolute paths are taken as they are; relative ones must stay inside `base`."""
    if not image:
        problems.append(f"line {line}: empty image path")
        return None
    given = Path(image)
    path = Path(os.path.normpath(given if given.is_absolute() else base / given))
    if not given.is_absolute() and path != base and base not in path.parents:
        problems.append(f"line {line}: image path {image!r} escapes the manifest's folder {base}")
        return None
    if not path.exists():
        problems.append(f"line {line}: image file not found: {path}")
        return None
    if not path.is_file():
        problems.append(f"line {line}: image path is not a file: {path}")
        return None
    return path


def _label_help(task: TaskSpec) -> str:
    pos = ", ".join(["positive", "1", task.positive_name, *task.positive_aliases])
    neg = ", ".join(["negative", "0", task.negative_name, *task.negative_aliases])
    return f"positive: {pos}; negative: {neg}"


# ------------------------------------------------------------------------ image folder


def load_image_folder(root: Path, task: TaskSpec) -> list[ImageItem]:
    """Images under root/<task.key>/<class folder>/** (any depth below the class).

    Class folder names go through task.label_from_name, so yes/no, NORMAL/PNEUMONIA,
    0/1 and the task's aliases all work; folders that map to no class are an error
    rather than silently ignored, since a typo would otherwise drop a whole class.
    """
    task_dir = Path(root) / task.key
    if not task_dir.is_dir():
        raise HarnessError(f"{task_dir}: no folder for task {task.key!r} (expected {task_dir}/<class>/<images>)")
    entries = sorted(e for e in task_dir.iterdir() if not e.name.startswith("."))
    class_dirs = [e for e in entries if e.is_dir()]
    unknown = [d.name for d in class_dirs if task.label_from_name(d.name) is None]
    problems = [f"unknown class folder {name!r} ({_label_help(task)})" for name in unknown]
    problems += [f"image {e.name!r} is not inside a class folder" for e in entries if e.is_file() and _is_image(e)]
    if problems:
        raise ConfigError(str(task_dir), problems)
    items = [
        _file_item(task, task.label_from_name(d.name), f, make_image_id(task.key, f.relative_to(task_dir).as_posix()))
        for d in class_dirs
        for f in _walk_images(d)
    ]
    if not items:
        raise HarnessError(f"{task_dir}: no images found ({_no_images_hint(task_dir)})")
    return items


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def _walk_images(folder: Path) -> Iterable[Path]:
    """Image files below `folder` in a fixed order; hidden files and folders (macOS
    '._x.png' resource forks, .git) are skipped, symlinked folders are not followed."""
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if _is_image(Path(name)):
                yield Path(dirpath) / name


def _no_images_hint(task_dir: Path) -> str:
    return f"accepted extensions: {' '.join(sorted(IMAGE_EXTENSIONS))}"


# ------------------------------------------------------------------ Hugging Face datasets


def load_synthetic(task: TaskSpec, n_per_class: int, seed: int, size: int = 64) -> list[ImageItem]:
    """`n_per_class` generated images per class (see harness.data.synthetic)."""
    if n_per_class < 0:
        raise HarnessError(f"synthetic {task.key}: n_per_class must be >= 0, got {n_per_class}")
    items: list[ImageItem] = []
    for label in LABELS:
        for index in range(n_per_class):
            make = functools.partial(generate_image, task.key, label, index, seed, size)
            items.append(
                LazyHashItem(
                    image_id=make_image_id(task.key, "synthetic", f"seed{seed}", label, f"{index:05d}"),
                    task=task.key,
                    label=label,
                    source=f"synthetic:{task.key}/{label}/{index}?seed={seed}&size={size}",
                    loader=make,
                    hasher=functools.partial(_hash_generated, make),
                )
            )
    return items


def _hash_generated(make: Callable[[], Image.Image]) -> str:
    return pixel_sha256(make())


@functools.lru_cache(maxsize=1)
def _generator_fingerprint() -> str:
    """What decides a generated image's pixels besides its parameters: the generator's code
    and the numpy and Pillow versions (numpy's Generator streams may change between releases)."""
    import numpy
    import PIL

    from harness.data import synthetic

    code = Path(synthetic.__file__).read_bytes()
    return sha256_bytes(code + f"|numpy {numpy.__version__}|pillow {PIL.__version__}".encode())


def synthetic_hash_key(item: ImageItem) -> str:
    """A store key under which a generated image's pixel hash can be remembered: its source
    (task, label, index, seed, size) and the generator's fingerprint. Generating and hashing
    the few hundred images of a run costs seconds; looking the hashes up costs nothing."""
    return sha256_bytes(f"image-sha|{item.source}|{_generator_fingerprint()}".encode())
