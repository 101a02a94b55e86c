"""The preflight a real run makes before a checkpoint's first answer (issue 12, hf_preflight.py).

Offline, with the snapshots' real processor classes (stub tokenizer) and a real tiny LLaVA
loaded through HFBackend from its folder:
- an off-format prompt (a LLaVA-1.5 template on a Mistral checkpoint) stops the model;
- a registry entry's `chat_template` file and `image_processor` settings replace the
  checkpoint's, and the rendered prompt then has the family's form;
- drift from the snapshot is a warning naming what changed, an error with strict checks;
- both replacements are part of the store identity (answers under another template are
  other answers); a template path that is not a file is a configuration problem.
"""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import pytest

from harness.backends import make_backend
from harness.backends.checkpoint_snapshot import build_processor, load_snapshot
from harness.backends.hf_preflight import (
    CheckpointDrift,
    apply_entry_overrides,
    check_against_snapshot,
    prepare_processor,
    rendered_prompt,
)
from harness.backends.identity import model_identity
from harness.config.registry import FIXTURES_DIR, load_registry
from harness.core import ConfigError, HarnessError, ModelSpec

from .test_checkpoints import LLAVA_15_TEMPLATE, _processor

pytest_plugins = ["pytester"]

LLAVA_MED = "llava-med-v1.5-mistral-7b"
TEMPLATE = FIXTURES_DIR / "checkpoints" / LLAVA_MED / "template.jinja"
PAD_TO_SQUARE = {"image_processor_type": "LlavaImageProcessor", "do_pad": True}


def _spec(**kw) -> ModelSpec:
    return ModelSpec(name=kw.pop("name", LLAVA_MED), backend="hf", model=kw.pop("model", "wnkh/llava-med"), **kw)


def _conversion(template=LLAVA_15_TEMPLATE):
    """A LLaVA-Med conversion as shipped: the given template, the snapshot's other files."""
    snap = load_snapshot(LLAVA_MED)
    return build_processor(snap, chat_template=template, tokenizer=_processor(LLAVA_MED).tokenizer)


def test_checkpoint_preflight_stops_an_off_format_prompt():
    with pytest.raises(HarnessError, match=r"off-format prompt, not run: .*LLaVA-1\.5.*chat_template = "):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CheckpointDrift)
            check_against_snapshot(_conversion(), _spec(), text_only=False, strict=False)


def test_checkpoint_preflight_entry_template_repairs_the_prompt_and_passes(tmp_path):
    processor = _conversion()
    notes = apply_entry_overrides(processor, _spec(chat_template=str(TEMPLATE)))
    assert notes == [f"chat template replaced by {TEMPLATE}"]
    assert rendered_prompt(processor, False) == "[INST] <image>\nIs there a tumor in this image? [/INST]"
    with warnings.catch_warnings():
        warnings.simplefilter("error", CheckpointDrift)  # the repaired processor is the snapshot's
        assert check_against_snapshot(processor, _spec(), text_only=False, strict=True) == []


def test_checkpoint_preflight_drift_warns_naming_the_change_and_strict_raises():
    changed = LLAVA_15_TEMPLATE.replace("ASSISTANT:", "ASSISTANT: ")
    processor = _conversion(TEMPLATE.read_text(encoding="utf-8").replace("[/INST]", "[/INST] "))
    with pytest.warns(CheckpointDrift, match="chat template differs from the snapshot"):
        with pytest.raises(HarnessError, match="off-format"):  # the extra space also breaks the form
            check_against_snapshot(processor, _spec(), text_only=False, strict=False)
    with pytest.raises(HarnessError, match=r"differs from the checkpoint snapshot .*--strict-checkpoints"):
        check_against_snapshot(_conversion(changed), _spec(), text_only=False, strict=True)
    snap_revision = load_snapshot("medgemma-4b-it").identity["revision"]
    medgemma = _processor("medgemma-4b-it")
    with pytest.warns(CheckpointDrift, match="revision 'abc' is not the snapshot's"):
        check_against_snapshot(medgemma, _spec(name="medgemma-4b-it", revision="abc"), text_only=False, strict=False)
    assert check_against_snapshot(medgemma, _spec(name="medgemma-4b-it", revision=snap_revision),
                                  text_only=False, strict=True) == []


def test_checkpoint_preflight_image_processor_settings_rebuild_a_cropping_processor_as_padding():
    from transformers import CLIPImageProcessor

    processor = _conversion(TEMPLATE.read_text(encoding="utf-8"))
    processor.image_processor = CLIPImageProcessor(**{k: v for k, v in processor.image_processor.to_dict().items()
                                                      if k not in ("image_processor_type", "do_pad")})
    notes = apply_entry_overrides(processor, _spec(image_processor=PAD_TO_SQUARE))
    # (without torchvision transformers builds the PIL flavour of the same class)
    assert type(processor.image_processor).__name__.startswith("LlavaImageProcessor")
    assert processor.image_processor.do_pad
    assert notes == ["image processor settings replaced: do_pad=True, image_processor_type='LlavaImageProcessor'"]
    with pytest.raises(HarnessError, match="not a transformers image processor class"):
        apply_entry_overrides(processor, _spec(image_processor={"image_processor_type": "NoSuchProcessor"}))


def test_checkpoint_preflight_repairs_what_the_model_config_decides():
    snap = load_snapshot(LLAVA_MED)
    broken = build_processor(snap, processor_overrides={"patch_size": None},
                             tokenizer=_processor(LLAVA_MED).tokenizer)
    notes = prepare_processor(broken, _spec(), snap.model_config, text_only=False, strict=True)
    assert notes == ["processor.patch_size was missing; set to 14 from the model config"]


# -- through HFBackend, with real (tiny, random) weights --------------------------------
@pytest.fixture(scope="module")
def tiny_llava_folder(tmp_path_factory) -> Path:
    cache = tmp_path_factory.mktemp("cache")
    backend = make_backend(load_registry().models["tiny-llava"], cache_dir=cache, device="cpu")
    return Path(backend.source()[0])


def _tiny(folder, **kw) -> ModelSpec:
    return ModelSpec(name="my-llava-med", backend="hf", model=str(folder), snapshot=LLAVA_MED, reask=False, **kw)


def test_checkpoint_preflight_in_the_backend_stops_or_runs_the_model(tiny_llava_folder, tmp_path):
    off = tmp_path / "llava15.jinja"
    off.write_text(LLAVA_15_TEMPLATE, encoding="utf-8")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CheckpointDrift)  # a tiny model's tokens are not LLaVA-Med's
        with pytest.raises(HarnessError, match="off-format"):
            make_backend(_tiny(tiny_llava_folder, chat_template=str(off)), cache_dir=tmp_path, device="cpu").load()
        backend = make_backend(_tiny(tiny_llava_folder, chat_template=str(TEMPLATE)), cache_dir=tmp_path,
                               device="cpu")
        backend.load()
    assert backend.load_notes[0] == f"chat template replaced by {TEMPLATE}"
    assert any(n.startswith("snapshot drift: ") for n in backend.load_notes)
    with pytest.raises(HarnessError, match="--strict-checkpoints"):
        make_backend(_tiny(tiny_llava_folder, chat_template=str(TEMPLATE)), cache_dir=tmp_path, device="cpu",
                     strict_checkpoints=True).load()


def test_checkpoint_preflight_replacements_are_part_of_the_store_identity(tiny_llava_folder, tmp_path):
    plain = model_identity(dataclasses.replace(_tiny(tiny_llava_folder), snapshot=None), tmp_path)
    templated = model_identity(_tiny(tiny_llava_folder, chat_template=str(TEMPLATE)), tmp_path)
    padded = model_identity(_tiny(tiny_llava_folder, image_processor=PAD_TO_SQUARE), tmp_path)
    assert "chat_template_sha256" not in plain and "image_processor" not in plain
    assert templated["chat_template_sha256"] == load_snapshot(LLAVA_MED).identity["chat_template_sha256"]
    assert padded["image_processor"] == PAD_TO_SQUARE and len({str(plain), str(templated), str(padded)}) == 3


def test_checkpoint_preflight_registry_keys_are_validated(tmp_path):
    models = tmp_path / "m.toml"
    models.write_text(
        '[models.a]\nbackend = "hf"\nmodel = "x/y"\nchat_template = "fixtures/nope.jinja"\nsnapshot = "nope"\n'
        'image_processor = {do_pad = true}\n\n'
        '[models.b]\nbackend = "openai"\nmodel = "m"\nbase_url = "http://127.0.0.1:1/v1"\nchat_template = '
        f'"{TEMPLATE}"\n\n'
        f'[models.c]\nbackend = "hf"\nmodel = "x/z"\nchat_template = "fixtures/checkpoints/{LLAVA_MED}/template.jinja"\n'
        'image_processor = {image_processor_type = "LlavaImageProcessor", do_pad = true}\n')
    with pytest.raises(ConfigError) as err:
        load_registry(models_files=[models])
    text = str(err.value)
    assert "models.a.chat_template: 'fixtures/nope.jinja' is not a file" in text
    assert "models.a.snapshot: no checkpoint snapshot 'nope'" in text
    assert "models.b.chat_template: only for backend 'hf'" in text
    assert "models.c" not in text


def test_the_preflight_notes_reach_the_terminal_report_and_summary_md_and_a_warm_run_keeps_them(
        tiny_llava_folder, pytester, tmp_path):
    """A reviewer of a run must see that a template was replaced (issue 21): beside the model, in
    the terminal, the report's header and summary.md; stored with the model's identity, so a
    warm run that never loads the model says the same."""
    from .test_reliability_support import make_suite_dir, report_texts

    make_suite_dir(pytester)
    models = tmp_path / "models.toml"
    models.write_text(f'[models.my-llava-med]\nbackend = "hf"\nmodel = "{tiny_llava_folder}"\nsnapshot = "{LLAVA_MED}"\n'
                      f'chat_template = "{TEMPLATE}"\nreask = false\n')
    one_look = tmp_path / "thresholds.toml"
    one_look.write_text("[sequential]\nmax_n_per_class = 0\n")
    note = f"my-llava-med: checkpoint preflight: chat template replaced by {TEMPLATE}"
    for run, generated in (("cold", True), ("warm", False)):
        res = tmp_path / run
        result = pytester.runpytest(f"--models-file={models}", "--models=my-llava-med", "--tasks=brain_tumor",
                                    "--n-per-class=2", f"--cache-dir={tmp_path / 'cache'}", f"--results-dir={res}",
                                    f"--thresholds={one_look}", f"--baseline={tmp_path / 'none.toml'}",
                                    f"--html={res / 'report.html'}", "--self-contained-html", "-p", "no:cacheprovider",
                                    "-m", "near_random", "-W", "ignore::UserWarning")
        result.stdout.fnmatch_lines([f"medvlm: {note}", "medvlm: my-llava-med: checkpoint preflight: snapshot drift: *"])
        assert ("0 generated by models" in result.stdout.str()) is not generated, run
        summary_md = (res / "summary.md").read_text()
        assert f"> **Note:** {note}" in summary_md
        page, _ = report_texts(res / "report.html")
        assert "Checkpoint preflight: replaced, repaired or changed" in page and f"chat template replaced by {TEMPLATE}" in page
