"""The checks every image input passes before any decoder sees it: a readable, non-empty
file or byte string, and a pixel count within budget (decompression bombs).

Its own module because both decoders need it: images.py (PIL formats) and dicom.py,
which images.py hands DICOM files to (so neither imports the other back).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Union

import numpy as np

from harness.core import HarnessError

PathOrBytes = Union[str, Path, bytes, bytearray, memoryview]

def check_pixel_budget(img, *, source: str, max_pixels: int) -> None:
    """Refuse images whose header claims more pixels than allowed, before decoding."""
    width, height = img.size
    if width <= 0 or height <= 0:
        raise HarnessError(f"{source}: image has no pixels ({width}x{height})")
    if width * height > max_pixels:
        raise HarnessError(
            f"{source}: possible decompression bomb: {width}x{height} = {width * height} pixels "
            f"exceeds the limit of {max_pixels}"
        )



def open_stream(path_or_bytes: PathOrBytes, source: str):
    """A binary stream over the input, after the checks that need no decoder."""
    if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
        if len(path_or_bytes) == 0:
            raise HarnessError(f"{source}: empty image data (0 bytes)")
        return io.BytesIO(bytes(path_or_bytes))
    path = Path(path_or_bytes)
    if not path.exists():
        raise HarnessError(f"{source}: image file not found")
    if not path.is_file():
        raise HarnessError(f"{source}: not a regular file")
    try:
        if path.stat().st_size == 0:
            raise HarnessError(f"{source}: empty file (0 bytes)")
        return open(path, "rb")
    except OSError as exc:
        raise HarnessError(f"{source}: cannot read file ({exc.strerror or exc})") from exc


def window_to_uint8(arr: np.ndarray) -> np.ndarray:
    """Map the finite value range of a wide greyscale array linearly onto 0..255."""
    data = arr.astype(np.float64)
    finite = np.isfinite(data)
    if not finite.any():
        return np.zeros(data.shape, dtype=np.uint8)
    lo, hi = float(data[finite].min()), float(data[finite].max())
    if hi <= lo:  # a flat image: keep it flat, at black
        return np.zeros(data.shape, dtype=np.uint8)
    scaled = (np.where(finite, data, lo) - lo) * (255.0 / (hi - lo))
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
