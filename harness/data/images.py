"""Decode one image file (or its bytes) into the normalised form every backend expects.

Medical images arrive in many shapes: 16-bit greyscale PNG/TIFF exports, CMYK scans,
palette images with transparency, phone photos with an EXIF rotation, and now and then
a truncated download or a file that only claims to be an image. A backend should only
ever see an upright, fully decoded 8-bit RGB image, and a bad file should stop with a
message naming the file, not with a stack trace from deep inside a decoder half way
through a run. This module is that single gate.

Decisions:
- Transparent pixels are composited on BLACK: radiology images (MRI, X-ray, CT) have a
  black surround, so black is the neutral "no tissue" value a model has seen in
  training; white would add a bright frame that looks like anatomy.
- 16-bit and 32-bit integer/float images are windowed by their ACTUAL value range
  (min..max of the finite values) onto 0..255, like a viewer's auto-window. A 12-bit
  scan stored in 16 bits would otherwise keep only 16 grey levels, and clipping at 255
  would turn most of it white.
- The decompression-bomb limit is checked from the header (width x height) before any
  pixel is decoded, without touching PIL's process-wide MAX_IMAGE_PIXELS or
  LOAD_TRUNCATED_IMAGES, which other code in the process may rely on. PIL still
  refuses on its own anything above twice its global limit; that is reported the same
  way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from harness.core import HarnessError, sha256_bytes, sha256_file
from harness.data.image_input import PathOrBytes, check_pixel_budget, window_to_uint8 as _window_to_uint8
from harness.data.image_input import open_stream as _open_stream


DEFAULT_MAX_PIXELS = 50_000_000

# Modes that carry an alpha channel (directly or via a palette transparency entry).
_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})
# Modes with more than 8 bits per sample: windowed to 8 bits instead of clipped.
_WIDE_MODES = frozenset({"I", "F", "I;16", "I;16L", "I;16B", "I;16N", "I;32", "I;32B"})


def load_image(path_or_bytes: PathOrBytes, *, source: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Open, check, fully decode and normalise one image to upright 8-bit RGB.

    `source` names the image in every error message (a path, or a dataset reference for
    in-memory bytes). Raises HarnessError for a missing, empty, non-image, truncated or
    corrupt file and for images larger than `max_pixels` pixels. DICOM files (.dcm, or
    the DICM magic) go through harness.data.dicom (rescale, window, MONOCHROME1).
    """
    from harness.data.dicom import is_dicom, load_dicom

    if is_dicom(path_or_bytes):
        return load_dicom(path_or_bytes, source=source, max_pixels=max_pixels)
    stream = _open_stream(path_or_bytes, source)
    try:
        with stream:
            img = _open_image(stream, source)
            with img:
                return normalise_image(img, source=source, max_pixels=max_pixels)
    except HarnessError:
        raise
    except Exception as exc:  # a decoder failing in an unforeseen way is still bad input
        raise HarnessError(f"{source}: unreadable image ({type(exc).__name__}: {exc})") from exc


def normalise_image(img: Image.Image, *, source: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Return a new, fully decoded, upright RGB copy of an already opened PIL image.

    Used by load_image and for images that arrive as PIL objects (Hugging Face
    datasets). Only the first frame of a multi-frame image is kept.
    """
    check_pixel_budget(img, source=source, max_pixels=max_pixels)
    _decode(img, source)
    try:
        upright = ImageOps.exif_transpose(img)
    except Exception as exc:
        raise HarnessError(f"{source}: unreadable EXIF orientation ({type(exc).__name__}: {exc})") from exc
    rgb = to_rgb(upright, source=source)
    if rgb is img:  # never hand out the caller's object (it may be closed or mutated)
        rgb = rgb.copy()
    return rgb


def to_rgb(img: Image.Image, *, source: str = "image") -> Image.Image:
    """Convert any PIL mode to 8-bit RGB (see the module docstring for the choices)."""
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in _WIDE_MODES:
        return Image.fromarray(_window_to_uint8(np.asarray(img)), mode="L").convert("RGB")
    if mode in _ALPHA_MODES or (mode == "P" and "transparency" in img.info):
        return _composite_on_black(img.convert("RGBA"))
    try:
        return img.convert("RGB")  # L, 1, P, CMYK, YCbCr, HSV, ...
    except (ValueError, OSError) as exc:
        raise HarnessError(f"{source}: image mode {mode!r} cannot be converted to RGB ({exc})") from exc


def image_sha256(path: Union[str, Path]) -> str:
    """Content hash of the file's bytes: the image part of every response-cache key."""
    try:
        return sha256_file(Path(path))
    except OSError as exc:
        raise HarnessError(f"{path}: cannot read file for hashing ({exc.strerror or exc})") from exc


def pixel_sha256(img: Image.Image) -> str:
    """Content hash of an in-memory image: mode, size and raw pixel bytes.

    Hashing raw pixels rather than a PNG encoding keeps the hash (and so the response
    cache) stable across Pillow and zlib versions, whose compressed bytes differ.
    """
    header = f"{img.mode}:{img.width}x{img.height}:".encode()
    return sha256_bytes(header + img.tobytes())


def _open_image(stream, source: str) -> Image.Image:
    """Identify the format from the header; nothing is decoded yet."""
    try:
        return Image.open(stream)
    except UnidentifiedImageError as exc:
        raise HarnessError(f"{source}: not an image (unrecognised format)") from exc
    except Image.DecompressionBombError as exc:
        raise HarnessError(f"{source}: possible decompression bomb ({exc})") from exc
    except Exception as exc:
        raise HarnessError(f"{source}: corrupt image header ({type(exc).__name__}: {exc})") from exc


def _decode(img: Image.Image, source: str) -> None:
    """Decode every pixel now, so a truncated file fails here and not in a backend."""
    try:
        img.load()
    except Image.DecompressionBombError as exc:
        raise HarnessError(f"{source}: possible decompression bomb ({exc})") from exc
    except Exception as exc:
        raise HarnessError(f"{source}: truncated or corrupt image data ({type(exc).__name__}: {exc})") from exc


def _composite_on_black(rgba: Image.Image) -> Image.Image:
    """Flatten transparency onto black (the radiological background)."""
    background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")
