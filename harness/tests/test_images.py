"""load_image: bad files fail with a HarnessError naming the file; every mode comes
back as upright 8-bit RGB; PIL's process-wide settings are left alone."""

from __future__ import annotations

import hashlib
import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, ImageFile

from harness.core import HarnessError
from harness.data.images import image_sha256, load_image, normalise_image


def _png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _gradient_rgb(w: int = 64, h: int = 48) -> Image.Image:
    x = np.linspace(0, 255, w, dtype=np.float64)
    arr = np.stack([np.tile(x, (h, 1)), np.tile(x[::-1], (h, 1)), np.full((h, w), 90.0)], axis=2)
    noise = np.random.default_rng(0).integers(0, 40, (h, w, 3))
    return Image.fromarray(np.clip(arr + noise, 0, 255).astype(np.uint8), "RGB")


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height (8-bit greyscale), with one
    small IDAT: it opens instantly but would need width*height bytes to decode."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


@pytest.fixture
def pil_globals():
    """PIL's process-wide knobs before the test; asserted unchanged after it."""
    before = (Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES)
    yield
    assert (Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES) == before


# ----------------------------------------------------------------------------- bad input


def _expect_error(path, *fragments: str, **kwargs) -> str:
    with pytest.raises(HarnessError) as info:
        load_image(path, source=str(path), **kwargs)
    message = str(info.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message.lower(), message
    return message


def test_missing_file(tmp_path, pil_globals):
    _expect_error(tmp_path / "nope.png", "not found")


def test_empty_file(tmp_path, pil_globals):
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    _expect_error(path, "empty")


def test_empty_bytes_names_the_source(pil_globals):
    with pytest.raises(HarnessError, match="hf:x#3: empty"):
        load_image(b"", source="hf:x#3")


def test_directory_is_not_an_image(tmp_path, pil_globals):
    _expect_error(tmp_path, "not a regular file")


def test_not_an_image(tmp_path, pil_globals):
    path = tmp_path / "notes.png"
    path.write_text("patient notes, definitely not pixels\n" * 20)
    _expect_error(path, "not an image")


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_file(tmp_path, pil_globals, fmt):
    buf = io.BytesIO()
    _gradient_rgb(256, 256).save(buf, format=fmt)
    data = buf.getvalue()
    path = tmp_path / f"cut.{fmt.lower()}"
    path.write_bytes(data[: len(data) // 2])
    _expect_error(path, "truncated or corrupt")


def test_corrupt_pixel_data(tmp_path, pil_globals):
    data = bytearray(_png_bytes(_gradient_rgb(128, 128)))
    start = data.index(b"IDAT") + 20
    data[start : start + 200] = bytes(range(200))  # garbage inside the compressed stream
    path = tmp_path / "corrupt.png"
    path.write_bytes(bytes(data))
    _expect_error(path, "corrupt")


def test_decompression_bomb_header(tmp_path, pil_globals):
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_header_only(100_000, 100_000))
    assert path.stat().st_size < 200
    _expect_error(path, "decompression bomb")


def test_pixel_limit_is_checked_before_decoding(tmp_path, pil_globals):
    # 5000x5000 is below PIL's own limit and its data is missing: decoding it would
    # report truncation, so a "bomb" message proves the check ran on the header.
    path = tmp_path / "big.png"
    path.write_bytes(_png_header_only(5000, 5000))
    _expect_error(path, "decompression bomb", "25000000", max_pixels=1_000_000)
    _expect_error(path, "truncated")  # under the default limit it gets as far as decoding


def test_pixel_limit_applies_to_in_memory_images(pil_globals):
    with pytest.raises(HarnessError, match="mem: possible decompression bomb"):
        normalise_image(Image.new("RGB", (100, 100)), source="mem", max_pixels=5000)


# --------------------------------------------------------------------------------- modes


def test_rgb_round_trip_is_exact(tmp_path):
    img = _gradient_rgb()
    path = tmp_path / "rgb.png"
    img.save(path)
    out = load_image(path, source=str(path))
    assert out.mode == "RGB" and out.size == img.size
    assert np.array_equal(np.asarray(out), np.asarray(img))


def test_bytes_input_matches_file_input(tmp_path):
    img = _gradient_rgb()
    path = tmp_path / "rgb.png"
    img.save(path)
    a = load_image(path, source="a")
    b = load_image(path.read_bytes(), source="b")
    assert np.array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("top", [4095, 65535])
def test_16bit_keeps_grey_levels(tmp_path, top):
    ramp = np.tile(np.linspace(0, top, 512).astype(np.uint16), (8, 1))
    img = Image.fromarray(ramp)
    assert img.mode.startswith("I;16")
    path = tmp_path / "ramp16.png"
    img.save(path)
    out = np.asarray(load_image(path, source=str(path)))
    grey = out[:, :, 0]
    assert np.array_equal(grey, out[:, :, 1]) and np.array_equal(grey, out[:, :, 2])
    assert len(np.unique(grey)) > 100
    assert grey.min() == 0 and grey.max() == 255
    assert np.all(np.diff(grey[0].astype(int)) >= 0)  # order of intensities preserved


def test_float_and_32bit_images_are_windowed(tmp_path):
    ramp = np.tile(np.linspace(-1.0, 3.0, 300, dtype=np.float32), (4, 1))
    for mode, arr in (("F", ramp), ("I", (ramp * 100_000).astype(np.int32))):
        path = tmp_path / f"ramp_{mode}.tif"
        Image.fromarray(arr, mode=mode).save(path)
        grey = np.asarray(load_image(path, source=str(path)))[:, :, 0]
        assert len(np.unique(grey)) > 100, mode
        assert (grey.min(), grey.max()) == (0, 255), mode


def test_flat_16bit_image_does_not_divide_by_zero(tmp_path):
    path = tmp_path / "flat16.png"
    Image.fromarray(np.full((8, 8), 1234, np.uint16)).save(path)
    assert np.asarray(load_image(path, source=str(path))).max() == 0


def test_cmyk_becomes_rgb(tmp_path):
    path = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (32, 16), (0, 255, 255, 0)).save(path, quality=95)  # pure red ink
    out = load_image(path, source=str(path))
    assert out.mode == "RGB" and out.size == (32, 16)
    r, g, b = np.asarray(out)[8, 16]
    assert r > 200 and g < 60 and b < 60


def test_palette_with_transparency_composited_on_black(tmp_path):
    img = Image.new("P", (16, 16), 1)
    img.putpalette([255, 255, 255, 200, 30, 30] + [0] * 762)
    img.paste(0, (0, 0, 8, 16))  # left half: index 0, declared transparent
    path = tmp_path / "pal.png"
    img.save(path, transparency=0)
    arr = np.asarray(load_image(path, source=str(path)))
    assert arr.shape == (16, 16, 3)
    assert arr[:, :8].max() == 0  # transparent white -> black
    assert tuple(arr[0, 12]) == (200, 30, 30)


@pytest.mark.parametrize(
    "mode, colour, expected",
    [
        ("LA", (255, 0), (0, 0, 0)),
        ("LA", (200, 255), (200, 200, 200)),
        ("RGBA", (255, 255, 255, 0), (0, 0, 0)),
        ("RGBA", (10, 20, 30, 255), (10, 20, 30)),
        ("RGBA", (255, 255, 255, 128), (128, 128, 128)),
    ],
)
def test_alpha_composited_on_black(tmp_path, mode, colour, expected):
    path = tmp_path / f"{mode}.png"
    Image.new(mode, (8, 8), colour).save(path)
    arr = np.asarray(load_image(path, source=str(path)))
    assert arr.shape == (8, 8, 3)
    assert np.abs(arr[4, 4].astype(int) - np.array(expected)).max() <= 1


@pytest.mark.parametrize("mode", ["L", "1", "P"])
def test_other_modes_become_rgb(tmp_path, mode):
    path = tmp_path / f"{mode}.png"
    _gradient_rgb().convert(mode).save(path)
    out = load_image(path, source=str(path))
    assert out.mode == "RGB" and out.size == (64, 48)


def test_exif_orientation_applied(tmp_path):
    stored = Image.new("RGB", (40, 20), (0, 0, 255))
    stored.paste((255, 0, 0), (0, 0, 8, 8))  # marker in the stored top-left corner
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display": stored top-left shows top-right
    path = tmp_path / "phone.jpg"
    stored.save(path, exif=exif, quality=95)
    out = load_image(path, source=str(path))
    assert out.size == (20, 40)
    arr = np.asarray(out).astype(int)
    assert arr[2, 17, 0] > 200 and arr[2, 17, 2] < 60  # top-right is red
    assert arr[2, 2, 0] < 60 and arr[2, 2, 2] > 200  # top-left is blue
    assert arr[37, 17, 0] < 60


def test_normalise_returns_a_new_loaded_image():
    src = Image.new("RGB", (4, 4), (1, 2, 3))
    out = normalise_image(src, source="mem")
    assert out is not src and out.mode == "RGB"
    out.putpixel((0, 0), (9, 9, 9))
    assert src.getpixel((0, 0)) == (1, 2, 3)


# ---------------------------------------------------------------------------- hashing


def test_image_sha256_hashes_file_bytes(tmp_path):
    path = tmp_path / "x.png"
    _gradient_rgb().save(path)
    assert image_sha256(path) == hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(HarnessError, match="missing.png"):
        image_sha256(tmp_path / "missing.png")
