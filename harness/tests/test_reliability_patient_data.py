"""Reliability, patient data (issue 5): where images and model output may go.

- Images and image-derived text go only to loopback endpoints unless --allow-remote:
  a registry entry (subject, judge or diagnoser) with a non-loopback base_url stops the
  run at configuration, before any connection. A socket guard refuses (and records)
  every non-loopback connection, so these tests cannot reach a real remote host.
- Every remote destination used is listed in the report (a 127.0.0.1 server is made to
  count as "remote" by patching the backend's loopback predicate).
- Thumbnails of input images appear in the report only with --report-thumbnails.
- Model output (answers, descriptions) and server error text containing <script> or
  <img onerror=...> is escaped everywhere in the HTML report and the JUnit XML.
"""

from __future__ import annotations

import base64
import io
import ipaddress
import re
import socket
import xml.etree.ElementTree as ET

import pytest
from PIL import Image

from harness.backends import openai_backend
from harness.serve import Fault, FaultPlan

from .test_reliability_support import HOSTILE, ORACLE, OracleBackend, make_suite_dir, report_texts, run_suite, served

pytest_plugins = ["pytester"]

REMOTE_URL = "http://203.0.113.7:8000/v1"  # TEST-NET-3 (documentation range); never contacted


@pytest.fixture
def no_remote_traffic(monkeypatch):
    """Refuse and record every connection to a non-loopback address from this process."""
    attempts: list = []
    real_connect = socket.socket.connect

    def guarded(self, address):
        host = address[0] if isinstance(address, tuple) else None
        if host is not None and self.family in (socket.AF_INET, socket.AF_INET6):
            try:
                loopback = ipaddress.ip_address(host.split("%")[0]).is_loopback
            except ValueError:
                loopback = host == "localhost"
            if not loopback:
                attempts.append(address)
                raise ConnectionRefusedError(f"test guard: no traffic to {host}")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)
    return attempts


@pytest.fixture
def suite(pytester):
    return make_suite_dir(pytester)


def remote_entry(tmp_path, urls=(REMOTE_URL,)):
    path = tmp_path / "remote.toml"
    listed = ", ".join(f'"{u}"' for u in urls)
    path.write_text(f'[models.far]\nbackend = "openai"\nmodel = "far-model"\nbase_url = [{listed}]\n')
    return path


# ------------------------------------------------------------------- loopback only


@pytest.mark.parametrize("role", ["--models=far", "--judge=far", "--diagnoser=far", "mixed-urls"])
def test_a_remote_endpoint_stops_the_run_at_configuration(suite, tmp_path, no_remote_traffic, role):
    urls = ("http://127.0.0.1:9/v1", REMOTE_URL) if role == "mixed-urls" else (REMOTE_URL,)
    role_args = ("--models=far",) if role == "mixed-urls" else (role,)
    with served(tmp_path) as (server, models_file):
        result = run_suite(suite, models_file, tmp_path / "cache", f"--models-file={remote_entry(tmp_path, urls)}",
                           *role_args)
        assert server.requests_seen == []
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    text = "\n".join(result.errlines + result.outlines)
    assert f"model 'far' would send patient images or image-derived text to {REMOTE_URL}" in text
    assert "--allow-remote" in text
    assert no_remote_traffic == [] and not (tmp_path / "cache").exists()


def test_allow_remote_accepts_the_configuration(suite, tmp_path, no_remote_traffic):
    with served(tmp_path) as (_, models_file):
        result = run_suite(suite, models_file, tmp_path / "cache", f"--models-file={remote_entry(tmp_path)}",
                           "--models=far", "--allow-remote", "--collect-only", "-q")
    assert result.ret == 0
    assert sum("[far-brain_tumor" in line for line in result.outlines) == 7
    assert no_remote_traffic == []


def test_remote_destinations_used_are_listed_in_the_report(suite, tmp_path, no_remote_traffic, monkeypatch):
    with served(tmp_path) as (server, models_file):
        run_suite(suite, models_file, tmp_path / "c1", f"--html={tmp_path / 'local.html'}")
        monkeypatch.setattr(openai_backend, "is_loopback_url", lambda url: False)  # 127.0.0.1 counts as remote
        run_suite(suite, models_file, tmp_path / "c2", "--allow-remote", f"--html={tmp_path / 'remote.html'}")
    local, _ = report_texts(tmp_path / "local.html")
    remote, _ = report_texts(tmp_path / "remote.html")
    assert "Remote destinations used:</b> none: all requests stayed on this machine" in local
    assert f"Remote destinations used:</b> <code>{server.url}</code>" in remote
    assert no_remote_traffic == []


# ------------------------------------------------------------------------ thumbnails


def test_thumbnails_only_on_request(suite, tmp_path):
    with served(tmp_path) as (_, models_file):
        run_suite(suite, models_file, tmp_path / "cache", f"--html={tmp_path / 'plain.html'}")
        run_suite(suite, models_file, tmp_path / "cache", f"--html={tmp_path / 'thumbs.html'}",
                  "--report-thumbnails", f"--junitxml={tmp_path / 'junit.xml'}")
    plain = " ".join(report_texts(tmp_path / "plain.html")[1])
    assert "mvf-thumbnails" not in plain and "brain_tumor/yes/pos00.png" not in plain
    blocks = [s for s in report_texts(tmp_path / "thumbs.html")[1] if "mvf-thumbnails" in s]
    assert len(blocks) == 1  # once per subject
    thumbs = re.findall(r'<img src="data:image/png;base64,([^"]+)" alt="([^"]+)"', blocks[0].split("mvf-thumbnails")[1])
    assert len(thumbs) == 4 and sum("brain_tumor/yes/" in alt for _, alt in thumbs) == 2
    for data, alt in thumbs:
        img = Image.open(io.BytesIO(base64.b64decode(data)))
        assert max(img.size) <= 64
    assert b"iVBORw0KGgo" not in (tmp_path / "junit.xml").read_bytes()  # no image in the JUnit XML


# -------------------------------------------------------------------------- escaping


def test_hostile_model_output_is_escaped_in_the_report_and_junit(suite, tmp_path):
    hostile = OracleBackend(answer_suffix=" " + HOSTILE, describe_suffix=" " + HOSTILE)
    report, junit = tmp_path / "report.html", tmp_path / "junit.xml"
    with served(tmp_path, hostile) as (_, models_file), \
            served(tmp_path, entries={"broken": "max_retries = 0\nrevision = \"r2\""},
                   faults=FaultPlan.always(Fault.error(500, message=HOSTILE))) as (_, broken_file):
        result = run_suite(suite, models_file, tmp_path / "cache", f"--models-file={broken_file}",
                           f"--models={ORACLE},broken", f"--diagnoser={ORACLE}", f"--html={report}",
                           f"--junitxml={junit}", f"--results-dir={tmp_path / 'res'}", "-rA",
                           "-m", "near_random or description_recovery")
    outcomes = result.parseoutcomes()
    assert outcomes.get("errors") == 2 and outcomes.get("passed", 0) + outcomes.get("failed", 0) == 2
    page, strings = report_texts(report)
    for raw in ("<script>alert(", "<img src=x onerror", "onerror=alert(1)>"):
        assert raw not in page
        assert not [s for s in strings if raw in s], raw
    shown = " ".join(strings)
    assert "&lt;script&gt;alert(" in shown  # the model's text is there, escaped (descriptions, errors)
    assert "The image shows a bright lesion" in shown
    junit_text = junit.read_text()
    assert "<script>" not in junit_text and "<img " not in junit_text
    ET.fromstring(junit_text)  # well-formed: nothing broke out of an attribute or element
    assert "alert(" in (tmp_path / "res" / "responses.csv").read_text()  # raw text stays in the data files


def test_thumbnail_captions_are_escaped_and_only_pngs_are_shown():
    from harness.report.header import render_thumbnails

    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, format="PNG")
    html = render_thumbnails([{"image_id": '"><script>alert(1)</script>', "label": "positive", "png": buf.getvalue()},
                              {"image_id": "not-a-png", "label": "negative", "png": b"GIF89a..."}])
    assert "<script>" not in html and "&lt;script&gt;" in html and html.count("<img ") == 1
    assert render_thumbnails([]) == ""
