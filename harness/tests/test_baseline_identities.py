"""baseline.toml's [subjects]: the identities of the models the fragilities were recorded on (issue 25)."""

from __future__ import annotations

import pytest

from harness.backends.identity import identity_digest
from harness.baseline import identity_notes, load_baseline, load_identities, update_baseline
from harness.core import ConfigError

RECORD = {"finding": "near_random", "metric": "m", "value": 0.5, "ci_low": 0.4, "ci_high": 0.6, "threshold": 0.6,
          "label": "fragile", "reason": "why"}


def test_identities_are_written_read_back_and_kept_for_models_that_did_not_run(tmp_path):
    path = tmp_path / "baseline.toml"
    update_baseline(path, {"t.py::test_a[m.1-task]": RECORD}, {"m.1": "a" * 16, "base": "b" * 16})
    assert load_identities(path) == {"m.1": "a" * 16, "base": "b" * 16}
    assert set(load_baseline(path)) == {"t.py::test_a[m.1-task]"}
    update_baseline(path, {"t.py::test_a[m.1-task]": None}, {"m.1": "c" * 16})
    assert load_identities(path) == {"m.1": "c" * 16, "base": "b" * 16}
    assert load_baseline(path) == {}
    assert load_identities(tmp_path / "missing.toml") == {}


def test_a_malformed_subjects_table_is_a_configuration_error(tmp_path):
    path = tmp_path / "baseline.toml"
    path.write_text("[subjects]\nm = 3\n")
    with pytest.raises(ConfigError, match="identity digests"):
        load_identities(path)
    path.write_text("[subjects\n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_identities(path)


def test_one_line_per_changed_model_naming_both_identities_and_what_to_do(tmp_path):
    path = tmp_path / "baseline.toml"
    update_baseline(path, {"t.py::test_a[organism-x-task]": RECORD},
                    {"organism-x": "1" * 16, "served": "2" * 16, "same": "3" * 16})
    notes = identity_notes(path, {"organism-x": "4" * 16, "served": "5" * 16, "same": "3" * 16, "new": "6" * 16},
                           {"organism-x"})
    assert len(notes) == 2
    assert notes[0].startswith("baseline.toml was recorded on another organism-x (identity 111111111111 there, "
                               "444444444444 here)") and "git checkout -- fixtures/organism" in notes[0]
    assert "another served (identity 222222222222 there, 555555555555 here)" in notes[1]
    assert "--update-baseline" in notes[1] and "git checkout" not in notes[1]
    assert identity_notes(path, {"same": "3" * 16}, {"same"}) == []


def test_a_baseline_without_identities_says_so_once_when_it_concerns_the_run(tmp_path):
    path = tmp_path / "baseline.toml"
    update_baseline(path, {"t.py::test_a[m-task]": RECORD})
    notes = identity_notes(path, {"m": "1" * 16}, {"m"})
    assert len(notes) == 1 and "records no model identities" in notes[0]
    assert identity_notes(path, {"m": "1" * 16}, set()) == []


def test_the_identity_digest_follows_the_identity():
    a = {"backend": "hf", "model": "x", "fingerprint": "f", "dtype": "float32"}
    assert identity_digest(a) == identity_digest(dict(reversed(list(a.items()))))
    assert identity_digest(a) != identity_digest({**a, "dtype": "bfloat16"})
    assert len(identity_digest(a)) == 16
