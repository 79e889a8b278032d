"""report.json schema, the self-contained HTML report (rendered in headless Chromium) and `voiceprep report`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from prep.cli import main
from prep.downmix import Downmix
from prep.errors import ConfigError
from prep.pipeline import stage_config
from prep.quality import Measure, Score
from prep.report import REPORT_VERSION, build_report, print_summary, read_report, write_report_json
from prep.report_html import render_html, write_report_html
from prep.resample import Resample
from prep.runner import Job, run_jobs
from prep.vad import Trim

FILES = [("alice", "alice/a01.wav"), ("alice", "alice/a02.flac"), ("bob", "bob/b01.wav"), ("bob", "bob/b03.mp3")]
STAGES = (Downmix(), Measure(), Resample(target_rate=24000), Trim(), Score(mos=False))


@pytest.fixture(scope="module")
def run_out(tmp_path_factory, demo_dir) -> tuple[Path, dict]:
    """A small real run: four demo files through downmix, measure, resample, trim and score."""
    out = tmp_path_factory.mktemp("run")
    jobs = [Job(path=str(demo_dir / rel), speaker=speaker) for speaker, rel in FILES]
    clips = run_jobs(jobs, STAGES, out_dir=out)
    report = build_report(clips, profile="test", stages=[{"stage": s.name, "config": stage_config(s)} for s in STAGES])
    write_report_json(report, out)
    return out, report


def test_report_json_schema_and_round_trip(run_out):
    out, report = run_out
    back = read_report(out)
    assert back == json.loads(json.dumps(report))
    assert back["report_version"] == REPORT_VERSION
    for key in ("profile", "pipeline", "thresholds", "summary", "speakers", "clips", "created"):
        assert key in back
    assert back["thresholds"]["min_snr_db"] == Score().min_snr_db
    assert len(back["clips"]) == len(FILES)
    for clip in back["clips"]:
        for key in ("id", "speaker", "output", "duration_s", "metrics", "verdict", "reasons", "selected", "span_s"):
            assert key in clip
        assert 0 <= clip["metrics"]["score"] <= 100
        assert clip["verdict"] in ("approved", "warning", "rejected")
        assert (out / clip["output"]).is_file()


def test_report_speakers_match_clips(run_out):
    _, report = run_out
    assert sorted(report["speakers"]) == ["alice", "bob"]
    for name, entry in report["speakers"].items():
        mine = [c for c in report["clips"] if c["speaker"] == name]
        assert entry["clips"] == len(mine)
        assert sum(entry["verdicts"].values()) == len(mine)
        selected = {c["id"] for c in mine if c["selected"]}
        assert set(entry["selection"]["clips"]) == selected
        usable = [c for c in mine if c["verdict"] in ("approved", "warning")]
        assert entry["usable_s"] == pytest.approx(sum(c["duration_s"] for c in usable), abs=0.01)
        assert all(c["verdict"] != "rejected" for c in mine if c["selected"])
    noisy = next(c for c in report["clips"] if c["source"].endswith("b03.mp3"))
    assert noisy["metrics"]["input_snr_db"] < 15  # made at 10 dB SNR with hum
    assert noisy["verdict"] == "rejected" or any("noise" in r for r in noisy["reasons"])


class _Page(HTMLParser):
    """Collects the clip table's rows and header cells, and every src/href."""

    def __init__(self) -> None:
        super().__init__()
        self.rows = 0
        self.headers: list[str] = []
        self.links: list[str] = []
        self.scripts = 0
        self._in_table = self._in_body = self._in_th = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table" and a.get("id") == "clips":
            self._in_table = True
        elif self._in_table and tag == "tbody":
            self._in_body = True
        elif self._in_body and tag == "tr":
            self.rows += 1
        elif self._in_table and tag == "th":
            self._in_th = True
            self.headers.append("")
        elif tag == "script":
            self.scripts += 1
            assert "src" not in a, "scripts must be inline"
        for key in ("src", "href"):
            if a.get(key):
                self.links.append(a[key])

    def handle_endtag(self, tag):
        if tag == "table":
            self._in_table = self._in_body = False
        elif tag == "th":
            self._in_th = False

    def handle_data(self, data):
        if self._in_th:
            self.headers[-1] += data


def test_html_is_self_contained_with_one_row_per_clip(run_out):
    out, report = run_out
    page = _Page()
    page.feed(render_html(report, out))
    assert page.rows == len(report["clips"])
    assert {"clip", "verdict", "score", "reasons"} <= set(page.headers)
    assert page.scripts == 1
    images = [link for link in page.links if link.startswith("data:image/")]
    assert len(images) == len(report["clips"]) + 1  # one before/after figure per clip + distributions
    external = [link for link in page.links if "://" in link]
    assert external == []
    audio = [link for link in page.links if link.endswith(".wav")]
    assert all((out / link).is_file() for link in audio) and len(audio) == len(report["clips"])


def test_html_handles_missing_audio_and_empty_reports(run_out, tmp_path):
    _, report = run_out
    moved = json.loads(json.dumps(report))
    for clip in moved["clips"]:
        clip["source"] = str(tmp_path / "gone.wav")
    page = _Page()
    page.feed(render_html(moved, tmp_path))  # neither sources nor clip files exist here
    assert page.rows == len(report["clips"])
    empty = build_report([], profile="test")
    page = _Page()
    page.feed(render_html(empty, tmp_path))
    assert page.rows == 0


def _chromium() -> str | None:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    return "/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None


def test_html_renders_in_headless_chromium(run_out, tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("no Chromium installed (.ci/run installs one)")
    from matplotlib.image import imread

    out, report = run_out
    page = write_report_html(report, out)
    shot = tmp_path / "shot.png"
    cmd = [
        browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1280,2000",
        page.resolve().as_uri(),
    ]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    pixels = imread(str(shot))[..., :3]
    assert pixels.shape[0] >= 1000 and pixels.shape[1] >= 1000
    non_white = np.mean(np.any(pixels < 0.95, axis=-1))
    assert non_white > 0.15, f"page looks blank ({non_white:.1%} non-white pixels)"
    assert float(pixels.std()) > 0.1


def test_cli_report_regenerates_html(run_out, capsys):
    out, report = run_out
    html_path = out / "report.html"
    html_path.unlink(missing_ok=True)
    assert main(["report", str(out)]) == 0
    text = html_path.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    for clip in report["clips"]:
        assert clip["id"] in text
    printed = capsys.readouterr().out
    assert "alice" in printed and "bob" in printed and "report.html" in printed


def test_cli_report_errors(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert "no such report" in capsys.readouterr().err
    (tmp_path / "report.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ConfigError, match="cannot read"):
        read_report(tmp_path)
    (tmp_path / "report.json").write_text("[]", encoding="utf-8")
    with pytest.raises(ConfigError, match="not a voiceprep report"):
        read_report(tmp_path)


def test_print_summary_lists_speakers_and_reasons(run_out):
    from rich.console import Console

    out, report = run_out
    console = Console(record=True, width=200)
    print_summary(report, out, console=console)
    text = console.export_text()
    assert "alice" in text and "bob" in text
    for clip in report["clips"]:
        assert clip["id"] in text
    console = Console(record=True, width=200)
    print_summary(report, out, console=console, max_clip_rows=1)  # many clips: reasons are counted instead
    many = console.export_text()
    assert report["clips"][0]["id"] not in many
    kinds = {r.split(":")[0] for c in report["clips"] for r in c["reasons"]}
    assert not kinds or "commonest reasons" in many
