"""Reliability, inputs (issue 5): bad images, DICOM, bad manifests and registries.

Bad input gets a per-image `error` naming the file and the run continues; the report
and errors.csv list the bad images; too many of them make the subject's tests ERROR.
Configuration problems stop the run, all listed, before any model is asked anything.
(Single-file behaviour of load_image: test_images.py; manifest rules: test_sources.py.)
"""

from __future__ import annotations

import csv
import io
import os
import struct
import sys
import zlib

import numpy as np
import pytest
from PIL import Image, ImageFile

from harness.core import HarnessError
from harness.data.images import load_image
from harness.data.sources import load_image_folder
from harness.config.registry import load_registry

from .test_reliability_support import TASK, image_folder, make_suite_dir, run_suite, served, summary, write_image

pytest_plugins = ["pytester"]


# ------------------------------------------------------------------------------ DICOM


def make_dicom(path, arr, *, photometric="MONOCHROME2", syntax=None, pixel_data=None, **attrs):
    """A minimal Part 10 file (secondary capture), uncompressed explicit VR little endian
    unless `syntax` says otherwise (then `pixel_data` must be encapsulated)."""
    pydicom = pytest.importorskip("pydicom")
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = syntax or ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Rows, ds.Columns = arr.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    for key, value in attrs.items():
        setattr(ds, key, value)
    ds.PixelData = pixel_data if pixel_data is not None else arr.astype(np.uint16).tobytes()
    if int(pydicom.__version__.split(".")[0]) >= 3:
        ds.save_as(path, enforce_file_format=True)
    else:  # pydicom 2.x
        ds.is_little_endian, ds.is_implicit_VR = True, False
        ds.save_as(path, write_like_original=False)
    return path


RAMP = np.tile(np.linspace(0, 4000, 64), (8, 1)).astype(np.uint16)  # a 12-bit range in 16 bits


def grey(img) -> np.ndarray:
    arr = np.asarray(img)
    assert img.mode == "RGB" and (arr[..., 0] == arr[..., 1]).all() and (arr[..., 1] == arr[..., 2]).all()
    return arr[..., 0].astype(int)


def test_dicom_without_window_uses_the_full_range(tmp_path):
    out = grey(load_image(make_dicom(tmp_path / "a.dcm", RAMP), source="a.dcm"))
    assert out.min() == 0 and out.max() == 255 and len(np.unique(out)) > 50


def test_dicom_rescale_is_applied_before_the_window(tmp_path):
    # Stored 0, 500, 1000, 1500 -> HU -1000, 0, 1000, 2000; the window [0, 2000] is in HU.
    arr = np.array([[0, 500, 1000, 1500]], dtype=np.uint16)
    path = make_dicom(tmp_path / "ct.dcm", arr, RescaleSlope=2, RescaleIntercept=-1000,
                      WindowCenter=1000, WindowWidth=2000)
    out = grey(load_image(path, source="ct.dcm"))[0]
    assert out[0] == 0 and out[1] <= 1 and abs(out[2] - 128) <= 1 and out[3] == 255  # without rescale: 64 / 191


def test_dicom_monochrome1_is_inverted(tmp_path):
    mono2 = grey(load_image(make_dicom(tmp_path / "m2.dcm", RAMP), source="m2"))
    mono1 = grey(load_image(make_dicom(tmp_path / "m1.dcm", RAMP, photometric="MONOCHROME1"), source="m1"))
    assert (mono1 + mono2 == 255).all()


def test_dicom_compressed_without_decoder_names_file_and_decoder(tmp_path):
    pytest.importorskip("pydicom")
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEGLSLossless

    try:
        from pydicom.pixels import get_decoder

        if get_decoder(JPEGLSLossless).is_available:
            pytest.skip("a JPEG-LS decoder is installed here")
    except ImportError:
        pass
    path = make_dicom(tmp_path / "jls.dcm", RAMP, syntax=JPEGLSLossless,
                      pixel_data=encapsulate([b"\xff\xd8\xff\xf7" + bytes(40)]))
    with pytest.raises(HarnessError) as info:
        load_image(path, source=str(path))
    message = str(info.value)
    assert str(path) in message and "JPEG-LS" in message and "no decoder" in message and "pip install" in message


def test_dicom_bad_files_name_the_file(tmp_path, monkeypatch):
    pytest.importorskip("pydicom")
    fake = tmp_path / "fake.dcm"
    fake.write_text("not a dicom file at all\n" * 10)
    with pytest.raises(HarnessError, match="fake.dcm: not a readable DICOM file"):
        load_image(fake, source=str(fake))
    big = make_dicom(tmp_path / "big.dcm", RAMP[:1, :4], Rows=20000, Columns=20000)  # header lies, data is tiny
    with pytest.raises(HarnessError, match="big.dcm: possible decompression bomb"):
        load_image(big, source=str(big), max_pixels=1_000_000)
    monkeypatch.setitem(sys.modules, "pydicom", None)  # as if the extra were not installed
    with pytest.raises(HarnessError, match=r"fake.dcm: DICOM images need .*pip install"):
        load_image(fake, source=str(fake))


def test_dicom_is_found_in_folders_and_by_its_magic(tmp_path):
    (tmp_path / TASK / "yes").mkdir(parents=True)
    path = make_dicom(tmp_path / TASK / "yes" / "scan.dcm", RAMP)
    write_image(tmp_path / TASK / "no" / "n.png", "negative", 0)
    items = load_image_folder(tmp_path, load_registry().tasks[TASK])
    assert sorted(i.image_id for i in items) == [f"{TASK}/no/n.png", f"{TASK}/yes/scan.dcm"]
    from_bytes = load_image(path.read_bytes(), source="bytes")  # no extension: the DICM magic decides
    assert (np.asarray(from_bytes) == np.asarray(load_image(path, source="file"))).all()


# ----------------------------------------------------------------- bad images, end to end


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _bomb_png(width: int, height: int) -> bytes:
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(bytes(64))) + chunk(b"IEND", b"")


def add_bad_images(folder) -> dict[str, str]:
    """Seven bad 'positive' files; returns {file name: what its error must say}."""
    noisy = Image.fromarray(np.random.default_rng(0).integers(0, 256, (128, 128, 3), dtype=np.uint8))
    good = _png(noisy)
    corrupt = bytearray(good)
    start = corrupt.index(b"IDAT") + 20
    corrupt[start:start + 200] = bytes(range(200))
    files = {
        "corrupt.png": (bytes(corrupt), "corrupt"),
        "truncated.png": (good[: len(good) // 2], "truncated"),
        "empty.png": (b"", "empty"),
        "notes.png": (b"patient notes, not pixels\n" * 20, "not an image"),
        "bomb.png": (_bomb_png(100_000, 100_000), "decompression bomb"),
        "fake.dcm": (b"not a dicom file\n" * 20, "dicom"),
    }
    for name, (data, _) in files.items():
        (folder / name).write_bytes(data)
    os.symlink(folder / "deleted-since.png", folder / "missing.png")  # listed, but the file is gone
    return {**{n: f for n, (_, f) in files.items()}, "missing.png": "not found"}


def test_bad_images_are_listed_and_the_run_continues_until_the_error_limit(pytester, tmp_path):
    suite = make_suite_dir(pytester)
    root = image_folder(tmp_path / "data", n_pos=6, n_neg=13)
    expected = add_bad_images(root / TASK / "yes")
    lenient = tmp_path / "lenient.toml"
    lenient.write_text("max_error_rate = 0.5\n")
    pil_before = (Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES)
    with served(tmp_path) as (server, models_file):
        common = (f"--data-root={root}", f"--results-dir={tmp_path / 'res'}", f"--html={tmp_path / 'r.html'}")
        result = run_suite(suite, models_file, tmp_path / "cache", *common, f"--thresholds={lenient}", n=13)
        # 13 positives (6 good, 7 bad) and 13 negatives: every bad file is in the sample.
        result.assert_outcomes(passed=7)
        result.stdout.fnmatch_lines(["*0 answers read from the store, 228 generated by models, 84 errors*"])
        assert len(server.requests_seen) == 19 * 12  # bad images never reach the model
        strict = run_suite(suite, models_file, tmp_path / "cache", *common, n=13)  # default limit: 5 %
    assert (Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES) == pil_before
    with open(tmp_path / "res" / "errors.csv", newline="") as f:
        rows = {r["image_id"].rsplit("/", 1)[1]: r for r in csv.DictReader(f)}
    assert set(rows) == set(expected)
    for name, fragment in expected.items():
        assert name in rows[name]["error"] and fragment in rows[name]["error"].lower(), rows[name]
    page = (tmp_path / "r.html").read_text()
    assert "Input errors (7 images not used)" in page and all(f"{TASK}/yes/{n}" in page for n in expected)
    strict.assert_outcomes(errors=7)
    strict.stdout.fnmatch_lines(["*228 answers read from the store, 0 generated by models, 84 errors*"])
    records = summary(tmp_path / "res").values()
    assert {r["outcome"] for r in records} == {"error"}
    assert all("26.9%" in r["reason"] and "limit 5.0%" in r["reason"] for r in records)


def test_input_errors_reach_the_report_and_errors_csv_from_xdist_workers(pytester, tmp_path):
    suite = make_suite_dir(pytester)
    root = image_folder(tmp_path / "data", n_pos=6, n_neg=7)
    (root / TASK / "yes" / "notes.png").write_text("not pixels\n" * 20)
    lenient = tmp_path / "lenient.toml"
    lenient.write_text("max_error_rate = 0.5\n")
    with served(tmp_path) as (_, models_file):
        result = run_suite(suite, models_file, tmp_path / "cache", f"--data-root={root}", f"--thresholds={lenient}",
                           f"--results-dir={tmp_path / 'res'}", f"--html={tmp_path / 'r.html'}", "-n", "2", n=7)
    result.assert_outcomes(passed=7)
    with open(tmp_path / "res" / "errors.csv", newline="") as f:
        assert [r["image_id"] for r in csv.DictReader(f)] == [f"{TASK}/yes/notes.png"]
    assert "Input errors (1 image not used)" in (tmp_path / "r.html").read_text()


def test_an_image_deleted_after_listing_is_a_per_image_error(tmp_path):
    root = image_folder(tmp_path, n_pos=1, n_neg=1)
    items = load_image_folder(root, load_registry().tasks[TASK])
    victim = next(i for i in items if i.label == "positive")
    os.remove(victim.source)
    assert victim.sha256.startswith("unreadable:")  # a key that matches no stored answer, no crash
    with pytest.raises(HarnessError, match="image file not found"):
        victim.load()


# ------------------------------------------------- configuration problems: before any model


def test_manifest_problems_are_all_listed_before_any_model_is_asked(pytester, tmp_path):
    suite = make_suite_dir(pytester)
    data = tmp_path / "data"
    for name in ("a.png", "b.png"):
        write_image(data / name, "positive", 0)
    write_image(tmp_path / "outside.png", "positive", 1)
    manifest = data / "manifest.csv"
    manifest.write_text("task,image,label\n"
                        "brain_tumour,a.png,positive\n"     # unknown task
                        "brain_tumor,a.png,maybe\n"         # unknown label
                        "brain_tumor,b.png,tumor\n"
                        "brain_tumor,b.png,tumor\n"         # duplicate row
                        "brain_tumor,../outside.png,0\n"    # escapes the manifest's folder
                        "brain_tumor,gone.png,1\n")         # missing file
    with served(tmp_path) as (server, models_file):
        result = run_suite(suite, models_file, tmp_path / "cache", f"--manifest={manifest}")
        assert server.requests_seen == []
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    text = "\n".join(result.errlines + result.outlines)
    for fragment in ("5 problem(s)", "line 2: unknown task 'brain_tumour'", "line 3: unknown label 'maybe'",
                     "line 5: duplicate of line 4", "line 6: image path '../outside.png' escapes",
                     "line 7: image file not found"):
        assert fragment in text, fragment
    assert not (tmp_path / "cache").exists()  # no store opened, no model built


def test_manifest_and_other_problems_are_listed_in_one_round(pytester, tmp_path):
    """A bad threshold, an unknown model and a bad manifest row: all three in one message."""
    suite = make_suite_dir(pytester)
    data = tmp_path / "data"
    write_image(data / "a.png", "positive", 0)
    manifest = data / "manifest.csv"
    manifest.write_text("task,image,label\nbrain_tumor,a.png,maybe\n")
    (suite.path / "thresholds.toml").write_text("[near_random]\nmin_margin = 7\n")
    result = suite.runpytest("--collect-only", "-p", "no:cacheprovider", f"--manifest={manifest}",
                             "--models=no-such-model", f"--cache-dir={tmp_path / 'cache'}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    text = "\n".join(result.errlines + result.outlines)
    for fragment in ("min_margin", "no-such-model", "unknown label 'maybe'"):
        assert fragment in text, (fragment, text[-3000:])


def test_bad_registry_toml_stops_the_run_before_any_model_is_asked(pytester, tmp_path):
    suite = make_suite_dir(pytester)
    broken = tmp_path / "broken.toml"
    broken.write_text('[models.x]\nbackend = "hf"\nmodel = "unterminated\n')
    with served(tmp_path) as (server, models_file):
        result = run_suite(suite, models_file, tmp_path / "cache", f"--models-file={broken}")
        assert server.requests_seen == []
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    text = "\n".join(result.errlines + result.outlines)
    assert "broken.toml" in text and "line 3" in text
    assert not (tmp_path / "cache").exists()


def test_input_error_list_is_escaped_capped_and_deduplicated():
    from harness.report.header import render_input_errors
    from harness.results import unique_input_errors

    hostile = {"task": TASK, "image_id": "x/<img src=x onerror=alert(1)>.png", "error": "<script>alert(1)</script>"}
    records = [{"input_errors": [hostile]}, {"input_errors": [hostile]}, {}]
    errors = unique_input_errors(records)
    assert errors == [hostile]
    html = render_input_errors(errors)
    assert "<script>" not in html and "<img src=x" not in html and "&lt;script&gt;" in html
    many = [{"task": TASK, "image_id": f"i{k:03d}", "error": "bad"} for k in range(60)]
    html = render_input_errors(many)
    assert "Input errors (60 images not used)" in html and html.count("<li>") == 50 and "10 more in errors.csv" in html
    assert render_input_errors([]) == ""
