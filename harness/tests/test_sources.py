"""Image sources (manifest, image folder, Hugging Face through a FAKE `datasets`
module, synthetic) and balanced sampling."""

from __future__ import annotations

import hashlib
import io
import math
import random
import re
import sys
import types
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from harness.core import ConfigError, HarnessError, HFSource, ImageItem, TaskSpec
from harness.data import sources
from harness.data.sampling import SamplingWarning, sample_balanced
from harness.data.hf_datasets import load_hf_dataset
from harness.data.sources import (
    load_image_folder,
    load_manifest,
    load_synthetic,
    make_image_id,
    pixel_sha256,
)

SAFE_ID = re.compile(r"^[A-Za-z0-9_./-]+$")

BRAIN = TaskSpec(
    key="brain_tumor",
    title="Brain tumor",
    modality="brain MRI",
    disease="a brain tumor",
    positive_name="tumor",
    negative_name="no tumor",
    difficulty=1,
    hints="a mass",
    positive_aliases=("yes",),
    negative_aliases=("no",),
    hf_source=HFSource("tanzuhuggingface/brainmri", positive_values=("yes",), negative_values=("no",)),
)
PNEUMONIA = TaskSpec(
    key="pneumonia",
    title="Pneumonia",
    modality="chest X-ray",
    disease="pneumonia",
    positive_name="pneumonia",
    negative_name="normal",
    difficulty=2,
    hints="opacity",
    positive_aliases=("PNEUMONIA",),
    negative_aliases=("NORMAL",),
    hf_source=HFSource(
        "danjacobellis/chexpert",
        label_column="Pneumonia",
        positive_values=("3",),
        negative_values=("2",),
        filters=(("Frontal/Lateral", "Frontal"),),
    ),
)
TASKS = {t.key: t for t in (BRAIN, PNEUMONIA)}


def _png(path, colour=(10, 20, 30), size=(8, 8)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)
    return path


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ----------------------------------------------------------------------------- manifest


def test_manifest_happy_path(tmp_path):
    a = _png(tmp_path / "img" / "a.png", (200, 0, 0))
    b = _png(tmp_path / "img" / "b.png")
    outside = _png(tmp_path.parent / f"{tmp_path.name}_abs" / "c.png")
    d = _png(tmp_path / "img" / "d.png")
    csv = tmp_path / "manifest.csv"
    csv.write_text(
        "\ufeffTask , Image , Label\n"  # BOM, odd case and spaces (Excel exports)
        "brain_tumor,img/a.png,positive\n"
        "\n"
        f"brain_tumor,{outside},No\n"
        "pneumonia, img/b.png ,1\n"
        "pneumonia,img/../img/d.png,NORMAL\n",
        encoding="utf-8",
    )
    result = load_manifest(csv, TASKS)
    assert sorted(result) == ["brain_tumor", "pneumonia"]
    brain, pneu = result["brain_tumor"], result["pneumonia"]
    assert [(i.image_id, i.label) for i in brain][0] == ("brain_tumor/img/a.png", "positive")
    assert brain[1].label == "negative" and brain[1].source == str(outside)
    assert [(i.image_id, i.label) for i in pneu] == [
        ("pneumonia/img/b.png", "positive"),
        ("pneumonia/img/d.png", "negative"),
    ]
    assert all(SAFE_ID.match(i.image_id) for i in brain + pneu)
    assert brain[0].sha256 == _sha(a) and pneu[1].sha256 == _sha(d) and pneu[0].sha256 == _sha(b)
    img = brain[0].load()
    assert img.mode == "RGB" and img.getpixel((0, 0)) == (200, 0, 0)


def test_manifest_is_lazy(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(sources, "image_sha256", lambda p: calls.append(p) or "h")
    _png(tmp_path / "a.png")
    (tmp_path / "m.csv").write_text("task,image,label\nbrain_tumor,a.png,yes\n")
    (item,) = load_manifest(tmp_path / "m.csv", TASKS)["brain_tumor"]
    assert calls == []
    assert item.sha256 == "h" and item.sha256 == "h"
    assert len(calls) == 1
    assert "not computed" not in repr(item)


def test_manifest_lists_every_problem_at_once(tmp_path):
    _png(tmp_path / "ok.png")
    _png(tmp_path.parent / "secret.png")
    (tmp_path / "sub").mkdir()
    (tmp_path / "m.csv").write_text(
        "task,image,label\n"
        "brain_tumor,ok.png,yes\n"  # 2: fine
        "lung_cancer,ok.png,yes\n"  # 3: unknown task
        "brain_tumor,ok.png,perhaps\n"  # 4: unknown label (and a duplicate of 2)
        "brain_tumor,../secret.png,no\n"  # 5: escapes the folder
        "pneumonia,missing.png,0\n"  # 6: missing file
        "brain_tumor,ok.png,no\n"  # 7: duplicate of 2
        "pneumonia,,1\n"  # 8: empty path
        "pneumonia,sub,1\n"  # 9: a folder
        "pneumonia,ok.png\n"  # 10: too few fields
        "pneumonia,a,b,c,1\n"  # 11: too many fields
    )
    with pytest.raises(ConfigError) as info:
        load_manifest(tmp_path / "m.csv", TASKS)
    err = info.value
    text = str(err)
    assert str(tmp_path / "m.csv") in text
    expected = {
        3: "unknown task 'lung_cancer'",
        4: "unknown label 'perhaps'",
        5: "escapes the manifest's folder",
        6: "image file not found",
        7: "duplicate of line 2",
        8: "empty image path",
        9: "not a file",
        10: "has 2 field(s)",
        11: "unquoted comma",
    }
    for line, fragment in expected.items():
        assert any(p.startswith(f"line {line}:") and fragment in p for p in err.problems), (line, err.problems)
    assert not any(p.startswith("line 2:") for p in err.problems)
    assert "tumor" in next(p for p in err.problems if p.startswith("line 4:"))  # says what is accepted


def test_manifest_missing_columns(tmp_path):
    (tmp_path / "m.csv").write_text("task,path,class\nbrain_tumor,a.png,yes\n")
    with pytest.raises(ConfigError, match="missing column.*image, label"):
        load_manifest(tmp_path / "m.csv", TASKS)


def test_manifest_missing_or_empty(tmp_path):
    with pytest.raises(HarnessError, match="manifest file not found"):
        load_manifest(tmp_path / "none.csv", TASKS)
    (tmp_path / "m.csv").write_text("task,image,label\n")
    with pytest.raises(ConfigError, match="no data rows"):
        load_manifest(tmp_path / "m.csv", TASKS)


def test_manifest_ids_are_sanitised_and_distinct(tmp_path):
    _png(tmp_path / "scan 1 (copy).png")
    _png(tmp_path / "scan_1__copy_.png")
    (tmp_path / "m.csv").write_text(
        'task,image,label\nbrain_tumor,"scan 1 (copy).png",yes\nbrain_tumor,scan_1__copy_.png,no\n'
    )
    items = load_manifest(tmp_path / "m.csv", TASKS)["brain_tumor"]
    ids = [i.image_id for i in items]
    assert all(SAFE_ID.match(i) for i in ids) and len(set(ids)) == 2
    assert ids[1] == "brain_tumor/scan_1__copy_.png"


@given(st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=4))
def test_make_image_id_is_safe_and_keeps_distinct_inputs_apart(parts):
    image_id = make_image_id(*parts)
    assert SAFE_ID.match(image_id)
    assert ".." not in image_id.split("/")
    other = make_image_id(*parts, "x")
    assert other != image_id


# ------------------------------------------------------------------------- image folder


def test_image_folder_maps_aliases(tmp_path):
    for rel in ["yes/a.png", "yes/deeper/b.JPG", "tumor/c.png", "no/d.png", "NO TUMOR/e.png", "no/._f.png", "no/g.txt"]:
        path = tmp_path / "brain_tumor" / rel
        if rel.endswith(".txt") or "._" in rel:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("not an image")
        else:
            _png(path)
    (tmp_path / "brain_tumor" / ".hidden").mkdir()
    (tmp_path / "brain_tumor" / "README.md").write_text("notes")
    items = load_image_folder(tmp_path, BRAIN)
    got = {(i.image_id, i.label) for i in items}
    assert got == {
        ("brain_tumor/yes/a.png", "positive"),
        ("brain_tumor/yes/deeper/b.JPG", "positive"),
        ("brain_tumor/tumor/c.png", "positive"),
        ("brain_tumor/no/d.png", "negative"),
        (make_image_id("brain_tumor", "NO TUMOR/e.png"), "negative"),
    }
    assert all(SAFE_ID.match(i.image_id) for i in items)
    assert items[0].load().mode == "RGB"


def test_image_folder_kaggle_style_names(tmp_path):
    _png(tmp_path / "pneumonia" / "PNEUMONIA" / "p.jpeg")
    _png(tmp_path / "pneumonia" / "NORMAL" / "n.jpeg")
    _png(tmp_path / "pneumonia" / "0" / "z.png")
    labels = {i.image_id: i.label for i in load_image_folder(tmp_path, PNEUMONIA)}
    assert labels == {
        "pneumonia/PNEUMONIA/p.jpeg": "positive",
        "pneumonia/NORMAL/n.jpeg": "negative",
        "pneumonia/0/z.png": "negative",
    }


def test_image_folder_unknown_classes_listed(tmp_path):
    _png(tmp_path / "brain_tumor" / "yes" / "a.png")
    _png(tmp_path / "brain_tumor" / "maybe" / "b.png")
    _png(tmp_path / "brain_tumor" / "glioma" / "c.png")
    _png(tmp_path / "brain_tumor" / "stray.png")
    with pytest.raises(ConfigError) as info:
        load_image_folder(tmp_path, BRAIN)
    text = str(info.value)
    assert "'maybe'" in text and "'glioma'" in text and "stray.png" in text
    assert str(tmp_path / "brain_tumor") in text


def test_image_folder_missing_or_empty(tmp_path):
    with pytest.raises(HarnessError, match="no folder for task 'brain_tumor'"):
        load_image_folder(tmp_path, BRAIN)
    (tmp_path / "brain_tumor" / "yes").mkdir(parents=True)
    (tmp_path / "brain_tumor" / "yes" / "x.txt").write_bytes(b"notes")
    with pytest.raises(HarnessError, match="no images found.*accepted extensions.*\\.dcm"):
        load_image_folder(tmp_path, BRAIN)


# ------------------------------------------------------- Hugging Face, via a FAKE module


class FakeImageFeature:
    """Stands in for datasets.Image (decode=True yields PIL images)."""

    def __init__(self, decode: bool = True):
        self.decode = decode


class FakeClassLabel:
    """Stands in for datasets.ClassLabel."""

    def __init__(self, names):
        self.names = list(names)


class FakeDataset:
    """The slice of datasets.Dataset the loader uses; counts row reads."""

    def __init__(self, columns: dict, features: dict, log: dict):
        self._columns, self.features, self.log = columns, features, log

    @property
    def column_names(self):
        return list(self._columns)

    def __len__(self):
        return len(next(iter(self._columns.values())))

    def __getitem__(self, key):
        if isinstance(key, str):
            return list(self._columns[key])
        self.log["rows"] += 1
        row = {c: values[key] for c, values in self._columns.items()}
        for c, f in self.features.items():
            if isinstance(f, FakeImageFeature) and f.decode and isinstance(row[c], dict):
                row[c] = Image.open(io.BytesIO(row[c]["bytes"]))
        return row

    def cast_column(self, column, feature):
        self.log["casts"].append((column, feature.decode))
        return FakeDataset(self._columns, {**self.features, column: feature}, self.log)

    def select_columns(self, columns):
        return FakeDataset({c: self._columns[c] for c in columns}, self.features, self.log)


def fake_datasets_module(ds: FakeDataset, calls: list, error: Exception | None = None):
    """A FAKE `datasets` module: the real package is an optional extra, not installed."""
    fake = types.ModuleType("datasets", "FAKE datasets module for harness tests")
    fake.Image, fake.ClassLabel = FakeImageFeature, FakeClassLabel

    def load_dataset(path, **kwargs):
        calls.append((path, kwargs))
        if error is not None:
            raise error
        return ds

    fake.load_dataset = load_dataset
    return fake


def _png_bytes(colour, mode="RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, (6, 4), colour).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def log():
    return {"rows": 0, "casts": []}


def test_hf_string_labels_with_image_feature(monkeypatch, log, tmp_path):
    images = [{"bytes": _png_bytes((i * 40, 0, 0)), "path": None} for i in range(6)]
    columns = {"image": images, "label": ["yes", "no", "Yes", "maybe", "no", None]}
    ds = FakeDataset(columns, {"image": FakeImageFeature()}, log)
    calls = []
    monkeypatch.setitem(sys.modules, "datasets", fake_datasets_module(ds, calls))
    items = load_hf_dataset(BRAIN, cache_dir=tmp_path)
    assert calls == [("tanzuhuggingface/brainmri", {"split": "train", "cache_dir": str(tmp_path)})]
    assert [(i.image_id, i.label) for i in items] == [
        ("brain_tumor/tanzuhuggingface/brainmri/train/0", "positive"),
        ("brain_tumor/tanzuhuggingface/brainmri/train/1", "negative"),
        ("brain_tumor/tanzuhuggingface/brainmri/train/2", "positive"),
        ("brain_tumor/tanzuhuggingface/brainmri/train/4", "negative"),
    ]
    assert log["rows"] == 0, "listing must not read images"
    assert log["casts"] == [("image", False)]
    assert items[3].sha256 == hashlib.sha256(images[4]["bytes"]).hexdigest()
    img = items[2].load()
    assert img.mode == "RGB" and img.getpixel((0, 0)) == (80, 0, 0)
    assert items[2].source == "hf:tanzuhuggingface/brainmri[train]#2"


def test_hf_chexpert_style_values_and_filters(monkeypatch, log, tmp_path):
    pil = [Image.new("L", (5, 5), 10 * i) for i in range(7)]
    file_png = tmp_path / "row6.png"
    file_png.write_bytes(_png_bytes((1, 2, 3)))
    images = pil[:6] + [{"bytes": None, "path": str(file_png)}]
    columns = {
        "image": images,
        "Pneumonia": [3.0, 2.0, 1.0, math.nan, 3.0, 2, 3],  # 3 present, 2 absent, others uncertain/blank
        "Frontal/Lateral": [0, 0, 0, 0, 1, 0, 0],
    }
    ds = FakeDataset(columns, {"Frontal/Lateral": FakeClassLabel(["Frontal", "Lateral"])}, log)
    monkeypatch.setitem(sys.modules, "datasets", fake_datasets_module(ds, []))
    items = load_hf_dataset(PNEUMONIA)
    assert [(i.image_id.rsplit("/", 1)[1], i.label) for i in items] == [
        ("0", "positive"),
        ("1", "negative"),
        ("5", "negative"),
        ("6", "positive"),
    ]
    assert log["casts"] == []  # not an Image feature: values are used as they are
    assert items[1].sha256 == pixel_sha256(pil[1])
    assert items[1].load().getpixel((0, 0)) == (10, 10, 10)
    assert items[3].sha256 == hashlib.sha256(file_png.read_bytes()).hexdigest()
    assert items[3].load().getpixel((0, 0)) == (1, 2, 3)


def test_hf_class_label_names_and_task_names(monkeypatch, log):
    source = HFSource("Falah/skin-cancer", positive_values=("malignant",), negative_values=("0",))
    skin = TaskSpec("skin_cancer", "Skin", "dermatoscopy", "melanoma", "malignant", "benign", 3, "h", hf_source=source)
    features = {"label": FakeClassLabel(["benign", "malignant", "other"])}
    ds = FakeDataset({"image": [b"x"] * 3, "label": [1, 0, 2]}, features, log)
    monkeypatch.setitem(sys.modules, "datasets", fake_datasets_module(ds, []))
    assert [i.label for i in load_hf_dataset(skin)] == ["positive", "negative"]
    bare = TaskSpec("skin_cancer", "S", "d", "m", "malignant", "benign", 3, "h", hf_source=HFSource("Falah/skin"))
    assert [i.label for i in load_hf_dataset(bare)] == ["positive", "negative"]  # via label_from_name
    features = {"label": FakeClassLabel(["malignant", "benign"])}
    reversed_names = FakeDataset({"image": [b"x"] * 2, "label": [0, 1]}, features, log)
    monkeypatch.setitem(sys.modules, "datasets", fake_datasets_module(reversed_names, []))
    assert [i.label for i in load_hf_dataset(bare)] == ["positive", "negative"]  # the class name beats the index


def test_hf_bad_image_bytes_fail_on_load_naming_the_row(monkeypatch, log):
    ds = FakeDataset({"image": [{"bytes": b"garbage", "path": None}], "label": ["yes"]}, {}, log)
    monkeypatch.setitem(sys.modules, "datasets", fake_datasets_module(ds, []))
    (item,) = load_hf_dataset(BRAIN)
    with pytest.raises(HarnessError, match=re.escape("hf:tanzuhuggingface/brainmri[train]#0: not an image")):
        item.load()


def test_hf_without_datasets_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)  # makes `import datasets` fail
    with pytest.raises(HarnessError, match=re.escape("pip install 'medvlm-fragility[datasets]'")):
        load_hf_dataset(BRAIN)


def test_hf_offline_failure_is_explained(monkeypatch, log):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    fake = fake_datasets_module(None, [], ConnectionError("offline, not in cache"))
    monkeypatch.setitem(sys.modules, "datasets", fake)
    with pytest.raises(HarnessError) as info:
        load_hf_dataset(BRAIN)
    text = str(info.value)
    assert "tanzuhuggingface/brainmri" in text and "Offline mode is on" in text and "not in cache" in text


def test_hf_configuration_problems(monkeypatch, log):
    ds = FakeDataset({"img": [b""], "label": ["maybe"]}, {}, log)
    monkeypatch.setitem(sys.modules, "datasets", fake_datasets_module(ds, []))
    with pytest.raises(HarnessError, match="missing column.*image"):
        load_hf_dataset(BRAIN)
    ds2 = FakeDataset({"image": [b""], "label": ["maybe"]}, {}, log)
    monkeypatch.setitem(sys.modules, "datasets", fake_datasets_module(ds2, []))
    with pytest.raises(HarnessError, match="no row maps to a class.*maybe"):
        load_hf_dataset(BRAIN)
    no_source = TaskSpec("t", "T", "m", "d", "p", "n", 1, "h")
    with pytest.raises(HarnessError, match="no Hugging Face source"):
        load_hf_dataset(no_source)


# ---------------------------------------------------------------------------- synthetic


def test_load_synthetic_items():
    items = load_synthetic(BRAIN, 3, seed=7)
    assert [i.label for i in items] == ["positive"] * 3 + ["negative"] * 3
    assert items[0].image_id == "brain_tumor/synthetic/seed7/positive/00000"
    assert len({i.image_id for i in items}) == 6 and all(SAFE_ID.match(i.image_id) for i in items)
    again = load_synthetic(BRAIN, 3, seed=7)
    assert [i.sha256 for i in items] == [i.sha256 for i in again]
    assert items[0].sha256 != load_synthetic(BRAIN, 1, seed=8)[0].sha256
    img = items[0].load()
    assert img.mode == "RGB" and img.size == (64, 64)
    assert items[0].sha256 == pixel_sha256(img)


# ----------------------------------------------------------------------------- sampling


def _items(n_pos: int, n_neg: int, task: str = "t") -> list[ImageItem]:
    def make(label, i):
        return ImageItem(image_id=f"{task}/{label}/{i:03d}", task=task, label=label, source="mem", loader=lambda: None)

    return [make("positive", i) for i in range(n_pos)] + [make("negative", i) for i in range(n_neg)]


def _ids(items):
    return [i.image_id for i in items]


def test_sampling_is_deterministic_and_order_independent():
    pool = _items(30, 40)
    first = sample_balanced(pool, 5, seed=42)
    shuffled = pool[:]
    random.Random(1).shuffle(shuffled)
    assert _ids(sample_balanced(shuffled, 5, seed=42)) == _ids(first)
    assert _ids(sample_balanced(pool, 5, seed=43)) != _ids(first)
    assert [i.label for i in first] == ["positive"] * 5 + ["negative"] * 5
    assert _ids(first[:5]) == sorted(_ids(first[:5]))


def test_sampling_short_class_warns_and_takes_all():
    with pytest.warns(SamplingWarning, match=r"task 't': class 'negative' has 3 image\(s\), fewer than the 5"):
        sample = sample_balanced(_items(10, 3), 5, seed=0)
    assert [i.label for i in sample].count("negative") == 3


def test_sampling_one_class_unaffected_by_the_other():
    a = sample_balanced(_items(20, 20), 5, seed=3)
    b = sample_balanced(_items(20, 35), 5, seed=3)
    assert _ids(a[:5]) == _ids(b[:5])


def test_sampling_rejects_bad_pools():
    with pytest.raises(HarnessError, match="duplicate image ids"):
        sample_balanced(_items(2, 2) + _items(1, 0), 1, seed=0)
    with pytest.raises(HarnessError, match="at least 1"):
        sample_balanced(_items(2, 2), 0, seed=0)


@settings(max_examples=60, deadline=None)
@given(
    n_pos=st.integers(0, 25),
    n_neg=st.integers(0, 25),
    k=st.integers(1, 12),
    seed=st.integers(0, 2**32 - 1),
    order=st.randoms(use_true_random=False),
)
def test_sampling_properties(n_pos, n_neg, k, seed, order):
    pool = _items(n_pos, n_neg) + _items(3, 2, task="other")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)
        sample = sample_balanced(pool, k, seed)
        shuffled = pool[:]
        order.shuffle(shuffled)
        again = sample_balanced(shuffled, k, seed)
        bigger = sample_balanced(pool, k + 1, seed)
    assert _ids(again) == _ids(sample)  # deterministic, independent of input order
    assert set(_ids(sample)) <= set(_ids(pool))  # a subset, no repeats
    assert len(set(_ids(sample))) == len(sample)
    for task, n_p, n_n in (("t", n_pos, n_neg), ("other", 3, 2)):
        got = [i.label for i in sample if i.task == task]
        assert got.count("positive") == min(k, n_p) and got.count("negative") == min(k, n_n)
    assert set(_ids(sample)) <= set(_ids(bigger))  # raising K extends the sample
    assert _ids(sample) == _ids(sorted(sample, key=lambda i: (i.task, i.label != "positive", i.image_id)))


def test_sampling_runs_on_real_sources(tmp_path):
    items = load_synthetic(PNEUMONIA, 6, seed=1)
    sample = sample_balanced(items, 4, seed=42)
    assert len(sample) == 8 and np.asarray(sample[0].load()).shape == (64, 64, 3)
