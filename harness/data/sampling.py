"""Draw the balanced per-class sample every finding is computed on.

The study used 50 images per class and seed 42. Here the sample must be a pure
function of (the set of items, K, seed): listing order differs between file systems
and dataset versions, so items are sorted by image_id before drawing. Each (task,
class) pool gets its own random stream, so adding images to one class does not
reshuffle the other, and the draw takes a prefix of a fixed permutation, so the sample
for K is contained in the sample for K + 1 (raising --n-per-class extends a run, and
its cached responses stay useful).
"""

from __future__ import annotations

import warnings
import zlib
from collections import Counter

import numpy as np

from harness.core import LABELS, HarnessError, ImageItem


class SamplingWarning(UserWarning):
    """A class had fewer images than requested; all of them were used."""


def sample_balanced(items: list[ImageItem], n_per_class: int, seed: int) -> list[ImageItem]:
    """Up to `n_per_class` items per (task, label), sorted by (task, label, image_id).

    Positive comes before negative. A short class is taken whole and reported with a
    SamplingWarning naming the task and the counts; the caller decides whether a
    smaller sample is acceptable.
    """
    if n_per_class < 1:
        raise HarnessError(f"n_per_class must be at least 1, got {n_per_class}")
    _check_items(items)
    tasks = sorted({item.task for item in items})
    sample: list[ImageItem] = []
    for task in tasks:
        for label in LABELS:
            pool = sorted((i for i in items if i.task == task and i.label == label), key=lambda i: i.image_id)
            sample.extend(_draw(pool, n_per_class, _rng(seed, task, label), task, label))
    return sample


def _rng(seed: int, task: str, label: str) -> np.random.Generator:
    """One stream per (seed, task, class); crc32 is stable across processes."""
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, zlib.crc32(task.encode()), LABELS.index(label)])


def _draw(pool: list[ImageItem], k: int, rng: np.random.Generator, task: str, label: str) -> list[ImageItem]:
    if len(pool) < k:
        warnings.warn(
            SamplingWarning(
                f"task {task!r}: class {label!r} has {len(pool)} image(s), fewer than the {k} requested; "
                f"using all {len(pool)}"
            ),
            stacklevel=3,
        )
        return list(pool)
    chosen = np.sort(rng.permutation(len(pool))[:k])
    return [pool[i] for i in chosen]


def _check_items(items: list[ImageItem]) -> None:
    """Labels must be binary. Duplicate ids would make the draw depend on input order (and collide in the
    response cache and results tables), so they are refused."""
    bad = sorted({item.image_id for item in items if item.label not in LABELS})
    if bad:
        raise HarnessError(f"items with a label other than positive/negative: {', '.join(bad[:10])}")
    counts = Counter((item.task, item.image_id) for item in items)
    dupes = sorted(f"{task}:{image_id}" for (task, image_id), n in counts.items() if n > 1)
    if dupes:
        shown = ", ".join(dupes[:10]) + (f" and {len(dupes) - 10} more" if len(dupes) > 10 else "")
        raise HarnessError(f"duplicate image ids in the sample pool: {shown}")
