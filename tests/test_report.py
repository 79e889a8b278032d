"""report.json schema, the self-contained HTML report (rendered in headless Chromium) and `voiceprep report`."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from prep.cli import main
from prep.errors import ConfigError, DataError
from prep.findings import Finding, verdict_of
from prep.report.html import _distributions, _nice_ticks, render_html, write_report_html
from prep.report.summary import REPORT_VERSION, build_report, print_summary, read_report, write_report_json
from prep.run.pipeline import stage_config
from prep.run.run_folder import RunFolder
from prep.run.runner import Job, run_jobs
from prep.stages.downmix import Downmix
from prep.stages.measure import Measure
from prep.stages.resample import Resample
from prep.stages.score import Score
from prep.stages.trim import Trim

FILES = [("alice", "alice/a01.wav"), ("alice", "alice/a02.flac"), ("bob", "bob/b01.wav"), ("bob", "bob/b03.mp3")]
STAGES = (Downmix(), Measure(mos=False), Resample(target_sample_rate=24000), Trim(), Score(mos=False))


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
        for key in ("id", "speaker", "output", "duration_s", "metrics", "verdict", "reasons", "findings", "selected",
                    "span_s"):
            assert key in clip
        assert verdict_of(Finding.from_dict(f) for f in clip["findings"]) == clip["verdict"]
        assert sorted(clip["reasons"]) == sorted(f["message"] for f in clip["findings"])
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
    # made at 10 dB unweighted SNR (pink noise + 50 Hz hum); the SNR's weighting counts neither the pink noise's
    # infrasonic power nor most of the hum's 50 Hz fundamental
    assert noisy["metrics"]["source_snr_db"] < Score().warn_snr_db
    assert {"snr.too_low", "snr.low"} & {f["code"] for f in noisy["findings"]}
    (snr,) = [f for f in noisy["findings"] if f["code"].startswith("snr.")]
    assert snr["value"] == noisy["metrics"]["source_snr_db"] and snr["metric"] == "snr_db"
    assert snr["threshold"] in (report["thresholds"]["min_snr_db"], report["thresholds"]["warn_snr_db"])


class _Page(HTMLParser):
    """Collects the clip table's rows and header cells, and every src/href."""

    def __init__(self) -> None:
        super().__init__()
        self.rows = 0
        self.headers: list[str] = []
        self.links: list[str] = []
        self.scripts = 0
        self.svgs = 0
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
        elif tag == "svg":
            self.svgs += 1
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
    assert {"clip", "verdict", "score", "findings"} <= set(page.headers)
    assert page.scripts == 1
    images = [link for link in page.links if link.startswith("data:image/")]
    assert len(images) == len(report["clips"])  # one before/after figure per clip
    assert page.svgs == 1  # the distributions, inline
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


_SVG = "{http://www.w3.org/2000/svg}"

#: Synthetic clips for the distributions: (score, source LUFS, output LUFS, source SNR, output SNR), None = missing.
_DIST_CLIPS = [
    (10, -30.2, -23.0, 31.0, 35.5),
    (50, -24.0, -23.0, 12.0, None),
    (50, -23.1, -23.0, 8.5, float("nan")),
    (90, None, -22.6, 20.0, 30.0),
]
_DIST_SERIES = {  # panel -> series -> index in _DIST_CLIPS rows
    "score": {"score": 0},
    "loudness": {"source": 1, "output": 2},
    "snr": {"source": 3, "output": 4},
}
_TIP = re.compile(r"^(\w+): (\d+) clips? in \[(-?[\d.]+), (-?[\d.]+)[)\]]$")


def _dist_report() -> dict:
    names = ("score", "source_lufs", "output_lufs", "source_snr_db", "snr_db")
    clips = [
        {
            "id": f"c{i}",
            "speaker": "s",
            "verdict": "approved",
            "metrics": {n: v for n, v in zip(names, row, strict=True) if v is not None},
        }
        for i, row in enumerate(_DIST_CLIPS)
    ]
    clips.append({"id": "bare", "speaker": "s", "verdict": "error", "metrics": {}})  # no metrics: in no histogram
    return {"clips": clips}


def _series_values(column: int) -> list[float]:
    values = [row[column] for row in _DIST_CLIPS]
    return [float(v) for v in values if v is not None and math.isfinite(v)]


def _svg_of(page: str) -> ET.Element:
    found = re.findall(r"<svg\b.*?</svg>", page, flags=re.DOTALL)
    assert len(found) == 1, "one distributions SVG"
    return ET.fromstring(found[0])  # valid standalone XML


def test_distributions_svg_counts_match_np_histogram(tmp_path):
    page = render_html(_dist_report(), tmp_path, max_plots=0)
    assert "matplotlib" not in page and "data:image/png" not in page
    svg = _svg_of(page)
    assert svg.tag == _SVG + "svg" and svg.get("width") == "100%"
    assert [float(v) for v in svg.get("viewBox").split()][:2] == [0.0, 0.0]
    panels = {g.get("data-metric"): g for g in svg.iter(_SVG + "g") if g.get("class") == "panel"}
    assert list(panels) == list(_DIST_SERIES)  # one panel per metric, in order
    for metric, series in _DIST_SERIES.items():
        panel = panels[metric]
        every = [v for column in series.values() for v in _series_values(column)]
        bins = np.linspace(min(every) - 0.5, max(every) + 0.5, min(30, max(5, len(every))) + 1)
        np.testing.assert_allclose([float(b) for b in panel.get("data-bins").split()], bins)
        bars = [r for r in panel.iter(_SVG + "rect") if r.get("data-series")]
        assert {r.get("data-series") for r in bars} == set(series)
        per_count = set()
        for label, column in series.items():
            values = _series_values(column)
            counts = np.zeros(len(bins) - 1, dtype=int)
            for bar in (r for r in bars if r.get("data-series") == label):
                i, count = int(bar.get("data-bin")), int(bar.get("data-count"))
                assert count > 0 and counts[i] == 0  # empty bins are not drawn, no bin twice
                counts[i] = count
                tip = _TIP.match(bar.find(_SVG + "title").text)
                assert tip, bar.find(_SVG + "title").text
                assert tip[1] == label and int(tip[2]) == count
                assert float(tip[3]) == pytest.approx(bins[i], abs=0.006)
                assert float(tip[4]) == pytest.approx(bins[i + 1], abs=0.006)
                per_count.add(round(float(bar.get("height")) / count, 1))  # heights proportional to counts
            assert counts.sum() == len(values)
            np.testing.assert_array_equal(counts, np.histogram(values, bins=bins)[0])
        assert len(per_count) == 1
        texts = [t.text for t in panel.iter(_SVG + "text")]
        assert (len(series) > 1) == all(label in texts for label in series)  # legend only when overlaid
        assert str(max(np.histogram(_series_values(c), bins=bins)[0].max() for c in series.values())) in texts
    # scores 10, 50, 50, 90: five bins of 16.2 over [9.5, 90.5]; the last one is closed, as in np.histogram
    tips = [t.text for t in panels["score"].iter(_SVG + "title")]
    assert tips == ["score: 1 clip in [9.5, 25.7)", "score: 2 clips in [41.9, 58.1)", "score: 1 clip in [74.3, 90.5]"]


def test_nice_ticks_are_round_and_few():
    for lo, hi in [(9.5, 90.5), (-30.7, -22.1), (49.5, 50.5), (-0.3, 0.4), (0.0, 1234.0), (7.9, 8.1)]:
        ticks = _nice_ticks(lo, hi)
        assert 3 <= len(ticks) <= 7, (lo, hi, ticks)
        values = [v for v, _ in ticks]
        assert values == sorted(values) and lo - 1e-9 <= values[0] and values[-1] <= hi + 1e-9
        steps = np.diff(values)
        step = steps[0]
        np.testing.assert_allclose(steps, step)
        assert round(step / 10 ** math.floor(math.log10(step)), 6) in (1, 2, 5)
        for v, label in ticks:
            assert float(label) == pytest.approx(v) and label != "-0"
    assert [label for _, label in _nice_ticks(9.5, 90.5)] == ["20", "40", "60", "80"]


def test_no_distributions_without_metrics(tmp_path):
    assert _distributions([]) is None
    bare = [{}, {"metrics": None}, {"metrics": {}}, {"metrics": {"score": float("nan"), "snr_db": "loud", "x": True}}]
    assert _distributions(bare) is None
    clips = [dict(c, id=f"c{i}", verdict="error") for i, c in enumerate(bare)]
    text = render_html({"clips": clips}, tmp_path, max_plots=0)
    page = _Page()
    page.feed(text)
    assert page.rows == len(clips) and page.svgs == 0
    assert "Distributions" not in text
    text = render_html(build_report([], profile="test"), tmp_path)
    assert "<svg" not in text and text.rstrip().endswith("</html>")


def test_writing_the_report_does_not_import_matplotlib(run_out):
    out, report = run_out
    drawn = [c for c in report["clips"] if c.get("output")]
    figures = [out / "plots" / c["speaker"] / f"{c['id']}.jpg" for c in drawn]
    folder = RunFolder(out)
    assert drawn and [folder.plot_path(c["speaker"], c["id"]) for c in drawn] == figures
    assert all(f.is_file() for f in figures), "workers store figures"
    code = (
        "import sys\n"
        "from prep.report.summary import read_report\n"
        "from prep.report.html import write_report_html\n"
        "page = write_report_html(read_report(sys.argv[1]), sys.argv[1])\n"
        "assert '<svg' in page.read_text(encoding='utf-8')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'matplotlib'))\n"
    )
    done = subprocess.run([sys.executable, "-c", code, str(out)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_figures_need_no_matplotlib(run_out):
    """A missing figure is redrawn by the report writer with the stored colour table, never importing matplotlib."""
    out, report = run_out
    drawn = [c for c in report["clips"] if c.get("output")]
    victim = RunFolder(out).plot_path(drawn[0]["speaker"], drawn[0]["id"])
    victim.unlink()
    code = (
        "import sys\n"
        "from prep.report.summary import read_report\n"
        "from prep.report.html import write_report_html\n"
        "page = write_report_html(read_report(sys.argv[1]), sys.argv[1]).read_text(encoding='utf-8')\n"
        "print(page.count('data:image/jpeg'))\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'matplotlib'))\n"
    )
    done = subprocess.run([sys.executable, "-c", code, str(out)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    figures, modules = done.stdout.strip().splitlines()
    assert modules == "[]"
    assert int(figures) == len(drawn), "the missing figure is drawn again, the others are reused"


def test_colour_table_is_matplotlibs_magma():
    """The stored table equals matplotlib's magma (the peer it replaces)."""
    colormaps = pytest.importorskip("matplotlib").colormaps
    from prep.report.colormap import magma_lut

    cmap = colormaps["magma"]
    expected = cmap(np.arange(cmap.N), bytes=True)[:, :3]
    np.testing.assert_array_equal(magma_lut(), expected)


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
    assert main(["report", str(tmp_path)]) == 2  # nothing has run here: a usage error
    assert "no such report" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="no such report"):
        read_report(tmp_path)
    report = tmp_path / "report.json"
    report.write_text("{not json", encoding="utf-8")
    with pytest.raises(DataError, match=r"report\.json: corrupt report \(line 1"):
        read_report(tmp_path)
    report.write_text("[]", encoding="utf-8")
    with pytest.raises(DataError, match="not a voiceprep report"):
        read_report(tmp_path)
    report.write_bytes(b'{"clips": ["\xff"]}')
    with pytest.raises(DataError, match="cannot read the report"):
        read_report(tmp_path)


@pytest.mark.parametrize("content", ["{not json", '{"clips": 3}', '{"clips": [1, 2'])
def test_cli_corrupt_report_exits_1_naming_the_file(tmp_path, capsys, content):
    """A corrupt report is bad data (exit 1), not a usage error (exit 2)."""
    (tmp_path / "report.json").write_text(content, encoding="utf-8")
    assert main(["report", str(tmp_path), "-q"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(tmp_path / "report.json") in err
    assert "Traceback" not in err


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
    print_summary(report, out, console=console, max_clip_rows=1)  # many clips: only the counts per code
    many = console.export_text()
    assert report["clips"][0]["id"] not in many
    counts: dict[str, int] = {}
    for c in report["clips"]:
        for code in {f["code"] for f in c["findings"] if f["severity"] != "info"}:
            counts[code] = counts.get(code, 0) + 1
    assert counts, "the test files have problems to count"
    line = next(x for x in many.splitlines() if x.startswith("problems by code"))
    shown = dict(re.findall(r"([a-z]+\.[a-z_]+) \((\d+)\)", line))
    assert {k: int(v) for k, v in shown.items()} == counts


def _coded_clips() -> list:
    from prep.clip import Clip
    from prep.findings import finding

    def clip(cid: str, *found) -> Clip:
        return Clip(id=cid, source=f"{cid}.wav", source_sha256="0" * 64, speaker="s", sample_rate=16000,
                    span_s=(0.0, 12.0), metrics={"duration_s": 12.0, "score": 80.0}, findings=tuple(found))

    snr_low = finding("snr.low", metric="snr_db", value=15.5, threshold=20.0)
    short = finding("duration.short", metric="duration_s", value=8.25, threshold=10.0)
    return [
        clip("a", snr_low, short),
        clip("b", finding("snr.low", metric="snr_db", value=12.0, threshold=20.0)),
        clip("c", finding("snr.too_low", metric="snr_db", value=9.6, threshold=10.0), short),
        clip("d", finding("downmix.inverted", channels=[1])),
        clip("e"),
    ]


def test_report_counts_clips_per_finding_code(tmp_path):
    report = json.loads(json.dumps(build_report(_coded_clips(), profile="test")))
    assert report["summary"]["findings"] == {
        "snr.too_low": {"severity": "reject", "clips": 1},
        "duration.short": {"severity": "warning", "clips": 2},
        "snr.low": {"severity": "warning", "clips": 2},
        "downmix.inverted": {"severity": "info", "clips": 1},
    }
    by_id = {c["id"]: c for c in report["clips"]}
    assert [f["code"] for f in by_id["a"]["findings"]] == ["snr.low", "duration.short"]
    assert by_id["c"]["findings"][0] == {"code": "snr.too_low", "severity": "reject", "metric": "snr_db",
                                         "value": 9.6, "threshold": 10.0,
                                         "message": "too noisy: SNR ≈ 9.6 dB (< 10 dB)"}
    assert [c["verdict"] for c in report["clips"]] == ["warning", "warning", "rejected", "approved", "approved"]
    # the page: one row per code with its count, and each clip's findings with their codes
    text = render_html(report, tmp_path, max_plots=0)
    rows = re.findall(r"<tr><td><code class='fc'>([a-z._]+)</code></td><td>.*?</td><td class='num'>(\d+)</td>", text)
    assert dict(rows) == {"snr.too_low": "1", "duration.short": "2", "snr.low": "2", "downmix.inverted": "1"}
    section = text[text.index("<section"):]
    assert "<code class='fc'>snr.too_low</code> too noisy: SNR ≈ 9.6 dB (&lt; 10 dB)" in section
    # the terminal: problems (not info) counted per code
    from rich.console import Console

    console = Console(record=True, width=200)
    print_summary(report, tmp_path, console=console, max_clip_rows=0)
    line = next(x for x in console.export_text().splitlines() if x.startswith("problems by code"))
    assert dict(re.findall(r"([a-z]+\.[a-z_]+) \((\d+)\)", line)) == {
        "snr.too_low": "1", "duration.short": "2", "snr.low": "2"}


def test_an_old_report_without_findings_still_renders_and_counts(tmp_path):
    report = json.loads(json.dumps(build_report(_coded_clips(), profile="test")))
    report["report_version"] = 2
    for clip in report["clips"]:
        del clip["findings"]
    del report["summary"]["findings"]
    text = render_html(report, tmp_path, max_plots=0)
    rows = re.findall(r"<tr><td><code class='fc'>([a-z._]+)</code></td><td>.*?</td><td class='num'>(\d+)</td>", text)
    assert dict(rows) == {"legacy.reason": "4"}  # a to d had reasons (d's an info under an approved verdict)
    assert [c["verdict"] for c in report["clips"]] == ["warning", "warning", "rejected", "approved", "approved"]
    assert "too noisy: SNR ≈ 9.6 dB (&lt; 10 dB)" in text


def test_clip_figure_takes_each_sample_rate_by_keyword():
    from prep.report.html import clip_figure_jpeg

    tone = (0.1 * np.sin(2 * np.pi * 440 * np.arange(8000) / 16000)).astype(np.float32)
    jpeg = clip_figure_jpeg(tone, tone[:4000], before_sample_rate=16000, after_sample_rate=8000)
    assert jpeg[:2] == b"\xff\xd8"  # a JPEG
    assert clip_figure_jpeg(None, None)[:2] == b"\xff\xd8"  # two empty panels
    with pytest.raises(ConfigError, match="after_sample_rate"):
        clip_figure_jpeg(tone, tone, before_sample_rate=16000)
