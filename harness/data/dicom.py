"""DICOM input (optional extra: `pip install 'medvlm-fragility[dicom]'`, i.e. pydicom).

Radiology archives export DICOM, not PNG. A DICOM file stores raw detector values that
only become a picture after two steps a viewer does silently, and a model must see the
picture a radiologist sees, not the raw numbers:

1. the modality rescale (RescaleSlope / RescaleIntercept: CT values become Hounsfield
   units) is applied FIRST, because the window is expressed in rescaled units;
2. the window (WindowCenter / WindowWidth, the linear VOI function of DICOM PS3.3
   C.11.2.1.2) maps those values onto 0..255; without a window in the file, the
   min..max of the rescaled values is used (the same auto-window as 16-bit PNGs);
3. MONOCHROME1 means "higher value = darker": it is inverted after windowing so that
   every image reaches the model with bright = dense, like MONOCHROME2.

Compressed transfer syntaxes (JPEG, JPEG 2000, RLE...) need a decoder plugin that
pydicom does not ship; without one the error names the file, the transfer syntax and
what to install, instead of pydicom's traceback half way through a run. The pixel
budget (decompression-bomb check) is applied to Rows x Columns x frames before any
pixel is decoded. Only the first frame of a multi-frame file is used, as for other
images. pydicom is imported only when a DICOM file is actually read.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from harness.core import HarnessError
from harness.data.image_input import check_pixel_budget, open_stream
from harness.data.image_input import window_to_uint8 as min_max_to_uint8

DICOM_EXTENSIONS = frozenset({".dcm", ".dicom"})
DICOM_INSTALL_HINT = "pip install 'medvlm-fragility[dicom]'  (or: pip install pydicom)"
DECODER_INSTALL_HINT = ("pip install pylibjpeg pylibjpeg-libjpeg pylibjpeg-openjpeg pylibjpeg-rle "
                        "(or: pip install python-gdcm)")
_MAGIC_OFFSET = 128
_MAGIC = b"DICM"


def is_dicom(path_or_bytes) -> bool:
    """A .dcm/.dicom path, or content with the DICM magic at byte 128 (Part 10 files)."""
    if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
        return bytes(path_or_bytes[_MAGIC_OFFSET:_MAGIC_OFFSET + 4]) == _MAGIC
    path = Path(path_or_bytes)
    if path.suffix.lower() in DICOM_EXTENSIONS:
        return True
    try:
        with open(path, "rb") as f:
            head = f.read(_MAGIC_OFFSET + 4)
    except OSError:
        return False  # load_image reports missing/unreadable files itself
    return head[_MAGIC_OFFSET:] == _MAGIC


def _import_pydicom(source: str):
    try:
        import pydicom
    except ImportError as exc:
        raise HarnessError(f"{source}: DICOM images need the optional 'pydicom' package: {DICOM_INSTALL_HINT}") from exc
    return pydicom


def load_dicom(path_or_bytes, *, source: str, max_pixels: int) -> Image.Image:
    """Read one DICOM file (path or bytes) into upright 8-bit RGB; HarnessError on any problem."""
    with open_stream(path_or_bytes, source) as stream:  # missing / empty files first
        ds = _read_dataset(_import_pydicom(source), stream, source)
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    rows, cols = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    check_pixel_budget(_Size(cols, rows * frames), source=source, max_pixels=max_pixels)
    pixels = _decode_pixels(ds, source)
    if frames > 1 and pixels.ndim >= 3 and pixels.shape[0] == frames:
        pixels = pixels[0]
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip().upper()
    if photometric in ("MONOCHROME1", "MONOCHROME2"):
        grey = window_to_uint8(rescale(pixels, ds), ds)
        if photometric == "MONOCHROME1":
            grey = 255 - grey
        return Image.fromarray(np.ascontiguousarray(grey)).convert("RGB")
    if pixels.ndim == 3 and pixels.shape[-1] == 3:  # RGB, or YBR already converted by pydicom
        rgb = pixels if pixels.dtype == np.uint8 else min_max_to_uint8(pixels)
        return Image.fromarray(np.ascontiguousarray(rgb.astype(np.uint8)))
    raise HarnessError(f"{source}: DICOM photometric interpretation {photometric!r} is not supported "
                       "(MONOCHROME1, MONOCHROME2, RGB and YBR are)")


class _Size:
    """Just enough of a PIL image for check_pixel_budget: the header's size, no pixels."""

    def __init__(self, width: int, height: int):
        self.size = (width, height)


def _read_dataset(pydicom, stream, source: str):
    try:
        ds = pydicom.dcmread(stream)
    except Exception as exc:  # InvalidDicomError, truncated headers, bad tags
        raise HarnessError(f"{source}: not a readable DICOM file ({type(exc).__name__}: {_first_line(exc)})") from exc
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        raise HarnessError(f"{source}: DICOM file has no pixel data")
    return ds


def _transfer_syntax(ds):
    meta = getattr(ds, "file_meta", None)
    return getattr(meta, "TransferSyntaxUID", None) if meta is not None else None


def _decode_pixels(ds, source: str) -> np.ndarray:
    """The stored values as an array; a compressed syntax without a decoder is named."""
    syntax = _transfer_syntax(ds)
    compressed = syntax is not None and getattr(syntax, "is_compressed", False)
    missing = _missing_decoder(syntax) if compressed else None
    if missing is not None:
        raise HarnessError(
            f"{source}: DICOM pixel data is compressed with {syntax.name} ({syntax}) and no decoder "
            f"for it is installed ({missing}); install one: {DECODER_INSTALL_HINT}"
        )
    try:
        return np.asarray(ds.pixel_array)
    except Exception as exc:
        what = f"compressed ({syntax.name}) " if compressed else ""
        raise HarnessError(f"{source}: DICOM {what}pixel data cannot be decoded, corrupt or unsupported "
                           f"({type(exc).__name__}: {_first_line(exc)})") from exc


def _missing_decoder(syntax):
    """What is missing to decode `syntax` (pydicom >= 3 can tell before decoding); None if
    a decoder is available or the installed pydicom cannot say (its error then speaks)."""
    try:
        from pydicom.pixels import get_decoder
    except ImportError:
        return None
    try:
        decoder = get_decoder(syntax)
    except NotImplementedError:
        return "pydicom has no decoder for this transfer syntax"
    if decoder.is_available:
        return None
    return "; ".join(decoder.missing_dependencies) or "no decoder plugin available"


def _first_value(value):
    """DICOM multi-valued elements (several windows): the first one."""
    if value is None:
        return None
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return value[0] if len(value) else None
    return value


def rescale(pixels: np.ndarray, ds) -> np.ndarray:
    """Stored values -> modality units (e.g. Hounsfield units): value * slope + intercept."""
    slope = _first_value(ds.get("RescaleSlope", None))
    intercept = _first_value(ds.get("RescaleIntercept", None))
    out = pixels.astype(np.float64)
    slope = 1.0 if slope in (None, "") else float(slope)
    intercept = 0.0 if intercept in (None, "") else float(intercept)
    return out * slope + intercept


def window_to_uint8(values: np.ndarray, ds) -> np.ndarray:
    """The file's linear window (first of several) onto 0..255; min..max when it has none."""
    center = _first_value(ds.get("WindowCenter", None))
    width = _first_value(ds.get("WindowWidth", None))
    try:
        center, width = float(center), float(width)
    except (TypeError, ValueError):
        return min_max_to_uint8(values)
    if not (np.isfinite(center) and np.isfinite(width)) or width < 1:
        return min_max_to_uint8(values)
    # DICOM PS3.3 C.11.2.1.2.1, linear function.
    scaled = ((values - (center - 0.5)) / (width - 1 if width > 1 else 1) + 0.5) * 255.0
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:300] if lines else type(exc).__name__
