"""Task images from a Hugging Face dataset (the optional `datasets` extra).

Split from sources.py: the loader maps a dataset's label column (class names, strings,
CheXpert-style values) onto positive/negative with the task's `hf_source` settings,
and keeps images undecoded until used, hashing them lazily.
"""

from __future__ import annotations

import functools
import numbers
import os
from pathlib import Path
from typing import Optional

from PIL import Image

from harness.core import HarnessError, ImageItem, TaskSpec, sha256_bytes
from harness.data.images import image_sha256, load_image, normalise_image, pixel_sha256
from harness.data.sources import DATASETS_INSTALL_HINT, LazyHashItem, make_image_id

def load_hf_dataset(task: TaskSpec, *, cache_dir: Optional[str | Path] = None) -> list[ImageItem]:
    """The rows of task.hf_source whose label maps to a class, as lazy items.

    `datasets` is an optional extra, imported only here. Downloads are never forced:
    datasets itself honours HF_DATASETS_OFFLINE / HF_HUB_OFFLINE and reuses its cache
    (or `cache_dir`). Rows whose label is neither a positive nor a negative value (e.g.
    CheXpert's uncertain or blank entries) and rows failing a filter are skipped.
    """
    src = task.hf_source
    if src is None:
        raise HarnessError(f"task {task.key!r} has no Hugging Face source (hf_source) configured")
    datasets = _import_datasets()
    ds = _load_split(datasets, task, cache_dir)
    features = getattr(ds, "features", None) or {}
    needed = [src.image_column, src.label_column, *(col for col, _ in src.filters)]
    missing = sorted({c for c in needed if c not in ds.column_names})
    if missing:
        has = ", ".join(ds.column_names)
        raise HarnessError(f"{_hf_ref(src)}: missing column(s) {', '.join(missing)} (has: {has})")
    labels = _hf_labels(task, ds, features)
    raw = _undecoded_images(datasets, ds, src.image_column, features.get(src.image_column))
    items = [_hf_item(task, raw, index, label) for index, label in enumerate(labels) if label is not None]
    if not items:
        seen = sorted({str(v) for v in list(ds[src.label_column])[:10_000]})[:10]
        raise HarnessError(
            f"{_hf_ref(src)}: no row maps to a class for task {task.key!r} "
            f"(positive values {list(src.positive_values)}, negative values {list(src.negative_values)}, "
            f"filters {list(src.filters)}; label values seen include {seen})"
        )
    return items


def _import_datasets():
    try:
        import datasets
    except ImportError as exc:
        message = f"Hugging Face datasets need the optional 'datasets' package: {DATASETS_INSTALL_HINT}"
        raise HarnessError(message) from exc
    return datasets


def _hf_ref(src) -> str:
    return f"hf:{src.dataset}[{src.split}]"


def _load_split(datasets, task: TaskSpec, cache_dir):
    """load_dataset with the library's own cache and offline handling, errors named."""
    src = task.hf_source
    kwargs = {"split": src.split}
    if cache_dir is not None:
        kwargs["cache_dir"] = str(cache_dir)
    try:
        return datasets.load_dataset(src.dataset, **kwargs)
    except Exception as exc:
        flags = (os.environ.get(v, "").strip().lower() for v in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE"))
        offline = any(f in ("1", "true", "yes", "on") for f in flags)
        hint = " Offline mode is on: the dataset must already be in the local cache." if offline else ""
        raise HarnessError(
            f"{_hf_ref(src)}: could not load the dataset for task {task.key!r} ({type(exc).__name__}: {exc}).{hint}"
        ) from exc


def _hf_labels(task: TaskSpec, ds, features) -> list[Optional[str]]:
    """Per row: "positive", "negative" or None (unmapped label or filtered out)."""
    src = task.hf_source
    pos = {v.strip().lower() for v in src.positive_values}
    neg = {v.strip().lower() for v in src.negative_values}
    if pos & neg:
        raise HarnessError(f"{_hf_ref(src)}: value(s) {sorted(pos & neg)} listed as both positive and negative")
    feature = features.get(src.label_column)
    labels = [_map_label(task, _value_keys(v, feature), pos, neg) for v in ds[src.label_column]]
    for column, required in src.filters:
        want, col_feature = required.strip().lower(), features.get(column)
        keep = [want in _value_keys(v, col_feature) for v in ds[column]]
        labels = [label if ok else None for label, ok in zip(labels, keep)]
    return labels


def _value_keys(value, feature) -> list[str]:
    """The lowercase strings a cell value can be matched by, most meaningful first:
    for a ClassLabel column its class name, then its text, then its integer form
    (3.0 -> "3", True -> "1")."""
    if value is None:
        return []
    keys = [str(value).strip().lower()]
    if isinstance(value, bool) or (isinstance(value, float) and value.is_integer()):
        keys.append(str(int(value)))
    elif isinstance(value, numbers.Integral):
        names = getattr(feature, "names", None)
        if names and 0 <= int(value) < len(names):
            keys.insert(0, str(names[int(value)]).strip().lower())
    return keys


def _map_label(task: TaskSpec, keys: list[str], pos: set[str], neg: set[str]) -> Optional[str]:
    if not pos and not neg:  # no explicit values: the task's own names and aliases
        return next((label for label in map(task.label_from_name, keys) if label is not None), None)
    is_pos, is_neg = bool(pos.intersection(keys)), bool(neg.intersection(keys))
    return "positive" if is_pos and not is_neg else "negative" if is_neg and not is_pos else None


def _undecoded_images(datasets, ds, column: str, feature):
    """A view of the image column that yields the stored bytes/path, not a decoded
    image: hashing then reads bytes only, and load_image applies its own checks."""
    image_type = getattr(datasets, "Image", None)
    if isinstance(image_type, type) and isinstance(feature, image_type):
        try:
            ds = ds.cast_column(column, image_type(decode=False))
        except Exception:  # an old or unusual datasets version: decoded images work too
            pass
    select = getattr(ds, "select_columns", None)
    return select([column]) if select is not None else ds


def _hf_item(task: TaskSpec, raw, index: int, label: str) -> ImageItem:
    src = task.hf_source
    ref = f"{_hf_ref(src)}#{index}"
    return LazyHashItem(
        image_id=make_image_id(task.key, src.dataset, src.split, index),
        task=task.key,
        label=label,
        source=ref,
        loader=functools.partial(_hf_load, raw, index, src.image_column, ref),
        hasher=functools.partial(_hf_hash, raw, index, src.image_column, ref),
    )


def _hf_payload(raw, index: int, column: str, ref: str):
    """The row's image as a PIL image, bytes or a local path."""
    value = raw[index][column]
    if isinstance(value, Image.Image):
        return value
    if isinstance(value, dict):
        if value.get("bytes"):
            return bytes(value["bytes"])
        if value.get("path"):
            return Path(value["path"])
        raise HarnessError(f"{ref}: image entry has neither bytes nor a path")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str):
        return Path(value)
    raise HarnessError(f"{ref}: unsupported image value of type {type(value).__name__}")


def _hf_load(raw, index: int, column: str, ref: str) -> Image.Image:
    payload = _hf_payload(raw, index, column, ref)
    if isinstance(payload, Image.Image):
        return normalise_image(payload, source=ref)
    return load_image(payload, source=ref if isinstance(payload, bytes) else f"{ref} ({payload})")


def _hf_hash(raw, index: int, column: str, ref: str) -> str:
    payload = _hf_payload(raw, index, column, ref)
    if isinstance(payload, Image.Image):
        return pixel_sha256(payload)
    if isinstance(payload, bytes):
        return sha256_bytes(payload)
    return image_sha256(payload)


# -------------------------------------------------------------------------- synthetic
