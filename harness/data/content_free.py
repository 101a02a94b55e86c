"""Content-free stand-ins for a task's images: the image-reliance finding's inputs (issue 20).

Does a model's answer depend on the image at all? Ask the same closed-form prompts with a
content-free image in place of each real one and compare. The stand-in is a uniform image
of the data set's mean colour at the real image's size: the processor sees the same size,
so LLaVA-NeXT's anyres picks the same tile grid and the prompt carries the same number of
image tokens; only the content is gone.

Each stand-in is an image like any other to the fill phase and the store: its own id
(`<real id>#content-free`), the real image's label (the class an answer is scored against),
and the content hash of its own pixels (`pixel_sha256`), so its answers get their own store
keys and batching, the cache and resume treat them as any others. The colour is the mean
over the images of the first look, so later looks (more images of the same task) ask about
the same stand-ins and reuse their stored answers.
"""

from __future__ import annotations

import functools
from typing import Iterable

import numpy as np
from PIL import Image

from ..core import HarnessError, ImageItem
from .images import pixel_sha256
from .sources import LazyHashItem

SUFFIX = "#content-free"


def mean_colour(items: Iterable[ImageItem]) -> tuple[int, int, int]:
    """The mean RGB colour of `items` (each image weighs the same), rounded; images that
    fail to load are left out (the fill reports them as per-image errors anyway)."""
    means = []
    for item in items:
        try:
            means.append(np.asarray(item.load().convert("RGB"), dtype=np.float64).reshape(-1, 3).mean(axis=0))
        except Exception:  # noqa: BLE001 - an unreadable image is the fill's per-image error, not ours
            continue
    if not means:
        raise HarnessError("no image could be read to compute the content-free colour")
    r, g, b = (int(round(c)) for c in np.mean(means, axis=0))
    return (r, g, b)


def content_free_item(item: ImageItem, colour: tuple[int, int, int]) -> ImageItem:
    """The stand-in of `item`: same size and label, uniform `colour`, its own id and hash.
    The real image is read once, for its size (the hash and the fill both draw the stand-in)."""
    size = functools.cache(lambda: item.load().size)

    def make() -> Image.Image:
        return Image.new("RGB", size(), tuple(colour))

    return LazyHashItem(image_id=item.image_id + SUFFIX, task=item.task, label=item.label,
                        source=f"content-free rgb{tuple(colour)} at the size of {item.source}", loader=make,
                        hasher=lambda: pixel_sha256(make()))


def content_free_items(items: list[ImageItem], colour: tuple[int, int, int]) -> list[ImageItem]:
    return [content_free_item(item, colour) for item in items]


def real_image_id(image_id: str) -> str:
    """The id of the real image a stand-in replaces (the id itself for a real image)."""
    return image_id[: -len(SUFFIX)] if image_id.endswith(SUFFIX) else image_id
