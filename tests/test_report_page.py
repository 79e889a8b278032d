"""report.html in a real browser: before/after players, figure axes, --embed-audio, the clip table's width.

The page is opened in headless Chromium (tests/chromium.py, the DevTools protocol over a pipe).
"""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from chromium import Browser, chromium
from PIL import Image
from scipy import signal

from prep.cli import main
from prep.dsp.estimators import bandwidth_hz
from prep.errors import ConfigError
from prep.report import html as report_html
from prep.report.audio import audio_data_uri, flac_preview, opus_ogg, preview_bytes
from prep.report.html import clip_figure_jpeg, display_top_hz, render_html, write_report_html
from prep.report.summary import build_report, write_report_json
from prep.run.pipeline import stage_config
from prep.run.run_folder import RunFolder
from prep.run.runner import Job, run_jobs
from prep.stages.downmix import Downmix
from prep.stages.measure import Measure
from prep.stages.resample import Resample
from prep.stages.score import Score
from prep.stages.trim import Trim

STAGES = (Downmix(), Measure(mos=False), Resample(target_sample_rate=24000), Trim(), Score(mos=False))
needs_chromium = pytest.mark.skipif(chromium() is None, reason="no Chromium installed (.ci/run installs one)")


def _band_limited(demo_dir: Path, path: Path, *, cutoff_hz: float = 4500.0, rate: int = 48000) -> None:
    """A demo recording low-passed at ``cutoff_hz`` and stored at ``rate`` (most of its band empty)."""
    audio, src_rate = sf.read(str(demo_dir / "alice" / "a01.wav"), dtype="float64")
    sos = signal.butter(10, cutoff_hz, fs=src_rate, output="sos")
    audio = signal.resample_poly(signal.sosfiltfilt(sos, audio), rate, src_rate)
    sf.write(str(path), audio.astype(np.float32), rate, subtype="FLOAT")


@pytest.fixture(scope="module")
def run(tmp_path_factory, demo_dir) -> tuple[Path, dict]:
    """A real run of a 4.5 kHz band-limited 48 kHz WAV and an AAC .m4a (a format libsndfile cannot read)."""
    root = tmp_path_factory.mktemp("page")
    narrow = root / "in" / "narrow.wav"
    narrow.parent.mkdir()
    _band_limited(demo_dir, narrow)
    out = root / "OUT"
    jobs = [Job(path=str(narrow), speaker="ann"), Job(path=str(demo_dir / "alice" / "a04.m4a"), speaker="ann")]
    clips = run_jobs(jobs, STAGES, out_dir=out)
    report = build_report(clips, profile="test", stages=[{"stage": s.name, "config": stage_config(s)} for s in STAGES])
    write_report_json(report, out)
    report = json.loads(json.dumps(report))
    assert all(c.get("output") for c in report["clips"])
    return out, report


def _decode(data: bytes) -> tuple[str, float, int]:
    import av

    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.audio[0]
        samples = sum(frame.samples for frame in container.decode(stream))
        return stream.codec_context.name, samples / stream.rate, stream.channels


def test_opus_preview_keeps_length_channels_and_pitch():
    rate = 22050  # not an Opus rate: encoded at 24 kHz
    t = np.arange(2 * rate) / rate
    stereo = np.stack([0.3 * np.sin(2 * np.pi * 440 * t), 0.3 * np.sin(2 * np.pi * 660 * t)]).astype(np.float32)
    data = opus_ogg(stereo, sample_rate=rate)
    assert data[:4] == b"OggS"
    codec, seconds, channels = _decode(data)
    assert codec == "opus" and channels == 2 and seconds == pytest.approx(2.0, abs=0.03)
    assert len(data) < 2.0 * 2 * 32000 / 8 * 1.3  # ~32 kb/s per channel
    import av

    with av.open(io.BytesIO(data)) as container:
        pcm = np.concatenate([f.to_ndarray().reshape(2, -1) for f in container.decode(audio=0)], axis=1)
        out_rate = container.streams.audio[0].rate
    for channel, hz in ((0, 440), (1, 660)):
        spectrum = np.abs(np.fft.rfft(pcm[channel]))
        assert np.fft.rfftfreq(pcm.shape[1], 1 / out_rate)[np.argmax(spectrum)] == pytest.approx(hz, abs=2)
    codec, _, channels = _decode(opus_ogg(np.zeros((3, 800), np.float32), sample_rate=8000))
    assert channels == 1  # more than two channels: mono


def test_opus_preview_is_120_ms_packets_at_the_rate_of_its_band_and_covers_the_span():
    import struct

    import av

    for rate, band_hz, opus_hz in ((44100, None, 48000), (48000, 5000.0, 12000), (22050, None, 24000),
                                   (16000, None, 16000)):
        n = int(1.37 * rate) + 11  # not a whole number of packets
        x = np.zeros(n, np.float32)
        t = np.arange(int(0.02 * rate)) / rate
        x[rate // 2 : rate // 2 + t.size] = 0.5 * np.sin(2 * np.pi * 1000 * t) * np.hanning(t.size)  # a blip at 0.51 s
        data = opus_ogg(x, sample_rate=rate, bandwidth_hz=band_hz)
        head = data.index(b"OpusHead")  # RFC 7845: the input rate is bytes 12-15 of the ID header
        assert struct.unpack("<I", data[head + 12 : head + 16])[0] == opus_hz
        with av.open(io.BytesIO(data)) as container:
            stream = container.streams.audio[0]
            durations = [p.duration for p in container.demux(stream) if p.size]
        assert durations[:-1] == [5760] * (len(durations) - 1)  # 120 ms at Opus's 48 kHz clock
        with av.open(io.BytesIO(data)) as container:
            y = np.concatenate([f.to_ndarray().reshape(-1) for f in container.decode(audio=0)])
        assert y.size / 48000 == pytest.approx(n / rate, abs=0.01)  # the span, to within the codec's look-ahead
        envelope = np.convolve(np.abs(y), np.ones(96) / 96, "same")
        assert np.argmax(envelope) / 48000 == pytest.approx(0.51, abs=0.002)  # not shifted


def test_run_writes_a_source_preview_of_each_clip_span_whatever_the_format(run):
    out, report = run
    folder = RunFolder(out)
    for clip in report["clips"]:
        preview = folder.preview_path(clip["speaker"], clip["id"])
        assert preview.name == f"{clip['id']}.source.flac"
        assert preview.parent == folder.plot_path(clip["speaker"], clip["id"]).parent
        info = sf.info(str(preview))
        start, end = clip["span_s"]
        assert (info.format, info.subtype, info.channels) == ("FLAC", "PCM_16", 1)
        assert info.samplerate == clip["input"]["sample_rate"]  # lossless, at the source's own rate
        assert info.duration == pytest.approx(end - start, abs=0.001)
        assert preview.stat().st_size < (end - start) * info.samplerate * 2  # compressed: under 16-bit PCM
    assert any(c["source"].endswith(".m4a") for c in report["clips"])


def test_the_preview_is_the_downmixed_source_span_within_16_bit_quantisation(tmp_path, demo_dir):
    from prep.run.runner import process_job

    audio, rate = sf.read(str(demo_dir / "alice" / "a01.wav"), dtype="float32")
    rng = np.random.default_rng(3)
    left = (audio + 0.01 * rng.standard_normal(audio.size)).astype(np.float32)
    path = tmp_path / "in" / "stereo.wav"
    path.parent.mkdir()
    # identical channels: the downmix (phase-aware or a mean) is the channel itself
    sf.write(str(path), np.stack([left, left], axis=1), rate, subtype="FLOAT")
    (clip,) = process_job(Job(path=str(path), speaker="ann"), STAGES, out_dir=tmp_path / "OUT")
    preview, preview_rate = sf.read(str(RunFolder(tmp_path / "OUT").preview_path(clip.speaker, clip.id)),
                                    dtype="float64")
    assert preview_rate == rate and preview.ndim == 1
    i0, i1 = round(clip.span_s[0] * rate), round(clip.span_s[1] * rate)
    assert 0 < i1 - i0 < left.size  # a trimmed span, not the whole file
    assert preview.size == i1 - i0
    np.testing.assert_allclose(preview, left[i0:i1], rtol=0, atol=1.01 / 32767)
    assert np.abs(preview - left[i0:i1]).max() > 0  # quantised to 16 bits: not the float source itself


def _spectrogram_rows(jpeg: bytes, panel: int) -> np.ndarray:
    """Mean brightness of each pixel row of one panel's spectrogram (0 = black)."""
    img = np.asarray(Image.open(io.BytesIO(jpeg)).convert("L"), dtype=float)
    top = report_html._WAVE_H + report_html._WAVE_GAP
    x0 = panel * report_html._FIG_PANEL_W + report_html._AXIS_L
    spec = img[top : top + report_html._SPEC_H, x0 + 2 : x0 + report_html._PANEL_W - 2]
    return spec.mean(axis=1)


def test_band_limited_spectrogram_is_not_mostly_black(run, tmp_path, demo_dir):
    out, report = run
    (narrow,) = [c for c in report["clips"] if c["source"].endswith("narrow.wav")]
    source_bw = narrow["metrics"]["source_bandwidth_hz"]
    assert 4000 < source_bw < 5500
    stored = RunFolder(out).plot_path(narrow["speaker"], narrow["id"]).read_bytes()
    for panel in (0, 1):
        rows = _spectrogram_rows(stored, panel)
        assert np.mean(rows < 25) < 0.2, f"panel {panel}: {np.mean(rows < 25):.0%} of the rows are black"
    # the same audio over its whole band (the old display): mostly black, so the check above can fail
    path = tmp_path / "n.wav"
    _band_limited(demo_dir, path)
    audio, rate = sf.read(str(path), dtype="float32")
    whole = clip_figure_jpeg(audio, None, before_sample_rate=rate)
    assert np.mean(_spectrogram_rows(whole, 0) < 25) > 0.6
    fitted = clip_figure_jpeg(audio, None, before_sample_rate=rate,
                              top_hz=display_top_hz(bandwidth_hz(audio, sample_rate=rate), sample_rate=rate))
    assert np.mean(_spectrogram_rows(fitted, 0) < 25) < 0.2


def test_display_top_follows_the_bandwidth():
    assert display_top_hz(4950.0, sample_rate=48000) == 6000
    assert display_top_hz(3900.0, sample_rate=8000) == 4000  # capped at Nyquist
    assert display_top_hz(15000.0, sample_rate=48000) == 18000
    assert display_top_hz(None, sample_rate=44100) == 22050
    assert display_top_hz(0.0, sample_rate=16000) == 8000
    assert display_top_hz(float("nan"), sample_rate=16000) == 8000


def test_figures_have_labelled_time_and_frequency_axes():
    rate = 16000
    tone = (0.3 * np.sin(2 * np.pi * 1000 * np.arange(3 * rate) / rate)).astype(np.float32)
    img = np.asarray(Image.open(io.BytesIO(clip_figure_jpeg(tone, None, before_sample_rate=rate))).convert("L"))
    spec_top = report_html._WAVE_H + report_html._WAVE_GAP
    spec_bottom = spec_top + report_html._SPEC_H
    left = img[spec_top:spec_bottom, : report_html._AXIS_L - 3]  # frequency labels
    below = img[spec_bottom + 3 :, report_html._AXIS_L : report_html._AXIS_L + report_html._PANEL_W]  # time labels
    assert (left < 160).mean() > 0.01 and (below < 160).mean() > 0.01
    # the empty right panel has neither
    x0 = report_html._FIG_PANEL_W
    assert (img[spec_top:spec_bottom, x0 : x0 + report_html._AXIS_L - 3] < 160).mean() == 0
    assert (img[spec_bottom + 3 :, x0:] < 160).mean() == 0
    # the kHz labels sit where their frequency is: the 1 kHz tone's row lines up with the "1" tick
    rows = _spectrogram_rows(clip_figure_jpeg(tone, None, before_sample_rate=rate, top_hz=4000), 0)
    assert np.argmax(rows) == pytest.approx((1 - 1000 / 4000) * (report_html._SPEC_H - 1), abs=2)


_PLAYERS = """
Array.from(document.querySelectorAll('section.clip')).map(function(section){
  function box(el){ var r = el.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; }
  function side(name){
    var div = section.querySelector('.caps .' + name);
    if (!div) return null;
    var audio = div.querySelector('audio');
    return {caption: box(div.querySelector('span')), player: audio ? box(audio) : null,
            src: audio ? audio.getAttribute('src') : null};
  }
  return {id: section.id, before: side('before'), after: side('after'),
          image: section.querySelector('img') ? box(section.querySelector('img')) : null};
})
"""

_LOAD_ALL = """
Promise.all(Array.from(document.querySelectorAll('audio')).map(function(a){
  return new Promise(function(done){
    a.addEventListener('loadedmetadata', function(){ done({src: a.getAttribute('src').slice(0, 40),
                                                          state: a.readyState, duration: a.duration}); });
    a.addEventListener('error', function(){ done({src: a.getAttribute('src').slice(0, 40), error: a.error.code}); });
    a.preload = 'metadata';
    a.load();
  });
}))
"""


@needs_chromium
def test_players_sit_under_their_captions_and_relative_links_resolve(run, tmp_path):
    out, report = run
    page = write_report_html(report, out)
    text = page.read_text(encoding="utf-8")
    assert "data:audio" not in text and "--embed-audio" in text  # the note says how to embed
    with Browser(tmp_path / "profile", width=1400) as browser:
        browser.goto(page.resolve().as_uri())
        sections = browser.js(_PLAYERS)
        loaded = browser.js(_LOAD_ALL)
        flac = browser.js("document.createElement('audio').canPlayType('audio/flac')")
    assert flac in ("maybe", "probably")
    assert len(sections) == len(report["clips"])
    for section, clip in zip(sections, report["clips"], strict=True):
        before, after = section["before"], section["after"]
        assert before["src"].endswith(".source.flac")
        folder = RunFolder(out)
        assert before["src"] == folder.relative(folder.preview_path(clip["speaker"], clip["id"]))
        assert after["src"] == clip["output"]
        for side in (before, after):
            caption, player = side["caption"], side["player"]
            assert player[1] >= caption[3] - 1, "player under its caption"
            assert player[0] < caption[2] and caption[0] < player[2], "in the caption's column"
            assert caption[1] >= section["image"][3] - 1, "under the figure"
        assert before["player"][2] <= after["player"][0], "source on the left, clip on the right"
        mid = (section["image"][0] + section["image"][2]) / 2
        assert before["player"][2] <= mid + 1 and after["player"][0] >= mid - 1  # each under its own panel
    assert len(loaded) == 2 * len(report["clips"])
    assert all("error" not in a and a["state"] >= 1 and a["duration"] > 0 for a in loaded), loaded
    durations = [a["duration"] for a in loaded]
    expected = [x for c in report["clips"] for x in (c["span_s"][1] - c["span_s"][0], c["duration_s"])]
    np.testing.assert_allclose(durations, expected, atol=0.05)


@needs_chromium
def test_embedded_audio_page_plays_when_copied_alone(run, tmp_path, caplog):
    out, report = run
    assert main(["report", str(out), "--embed-audio", "-q"]) == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    copy = Path(shutil.copy(out / "report.html", elsewhere / "report.html"))
    text = copy.read_text(encoding="utf-8")
    assert "Audio is embedded in this page" in text and " MB of Opus" in text
    with Browser(tmp_path / "profile", width=1400) as browser:
        browser.goto(copy.resolve().as_uri())
        sources = browser.js("Array.from(document.querySelectorAll('audio')).map(a => a.getAttribute('src'))")
        loaded = browser.js(_LOAD_ALL)
        links = browser.js("Array.from(document.querySelectorAll('[src],[href]'))"
                           ".map(e => e.getAttribute('src') || e.getAttribute('href'))")
    assert len(sources) == 2 * len(report["clips"])
    assert all(s.startswith("data:audio/ogg;base64,") for s in sources)  # the FLAC previews as Opus
    flac_bytes = sum(RunFolder(out).preview_path(c["speaker"], c["id"]).stat().st_size for c in report["clips"])
    embedded = sum(len(s) * 3 / 4 for s in sources[::2])  # the before players' base64
    assert embedded < flac_bytes / 3, "previews embedded as Opus, not as FLAC"
    assert all(link.startswith(("data:", "#")) for link in links), "no relative or external links"
    assert all("error" not in a and a["state"] >= 1 and a["duration"] > 0 for a in loaded), loaded
    # a large page is warned about
    report_html.EMBED_WARN_BYTES, saved = 1000, report_html.EMBED_WARN_BYTES
    try:
        with caplog.at_level(logging.WARNING, logger="prep.report.html"):
            render_html(report, out, embed_audio=True)
    finally:
        report_html.EMBED_WARN_BYTES = saved
    assert any("embedded audio" in r.getMessage() for r in caplog.records)


def test_a_missing_preview_is_made_again_by_the_report(run):
    out, report = run
    clip = report["clips"][0]
    preview = RunFolder(out).preview_path(clip["speaker"], clip["id"])
    preview.unlink()
    text = render_html(report, out)
    assert preview.is_file() and RunFolder(out).relative(preview) in text


def test_a_run_made_befores_opus_preview_is_still_played(run, tmp_path):
    old, report = run
    out = Path(shutil.copytree(old, tmp_path / "OUT"))
    folder = RunFolder(out)
    clip = report["clips"][0]
    flac = folder.preview_path(clip["speaker"], clip["id"])
    audio, rate = sf.read(str(flac), dtype="float32")
    flac.unlink()
    ogg = folder.preview_path(clip["speaker"], clip["id"], "opus")
    assert ogg.name == f"{clip['id']}.source.ogg"
    ogg.write_bytes(opus_ogg(audio, sample_rate=rate))
    text = render_html(report, out)
    assert folder.relative(ogg) in text and not flac.exists()  # shown as it is, not made again
    embedded = render_html(report, out, embed_audio=True)
    assert audio_data_uri(ogg.read_bytes()) in embedded  # embedded as it is
    # a stale Ogg preview (older than its clip) is not shown: a fresh FLAC one is made instead
    stamp = (out / clip["output"]).stat().st_mtime - 60
    os.utime(ogg, (stamp, stamp))
    text = render_html(report, out)
    assert flac.is_file() and folder.relative(flac) in text and folder.relative(ogg) not in text


def test_preview_formats():
    rate = 22050
    x = (0.3 * np.sin(2 * np.pi * 440 * np.arange(rate) / rate)).astype(np.float32)
    assert preview_bytes(x, sample_rate=rate)[:4] == b"fLaC"
    codec, seconds, _ = _decode(preview_bytes(x, sample_rate=rate, preview_format="opus"))
    assert codec == "opus" and seconds == pytest.approx(1.0, abs=0.03)
    with pytest.raises(ConfigError, match="'mp3'"):
        preview_bytes(x, sample_rate=rate, preview_format="mp3")
    y, out_rate = sf.read(io.BytesIO(flac_preview(np.stack([x, -x, x]), sample_rate=rate)), dtype="float32")
    assert out_rate == rate and y.ndim == 1  # more than two channels: their mean
    np.testing.assert_allclose(y, x / 3, atol=1.01 / 32767)
    clipped, _ = sf.read(io.BytesIO(flac_preview(np.array([1.5, -2.0, 0.5], np.float32), sample_rate=8000)))
    np.testing.assert_allclose(clipped, [1.0, -1.0, 0.5], atol=1.01 / 32767)  # clipped, not wrapped


def _wide_report() -> dict:
    """Clips with long ids and speaker names, every metric and many findings: the widest rows."""
    from prep.findings import finding

    found = [
        finding("snr.low", metric="snr_db", value=15.5, threshold=20.0).to_dict(),
        finding("duration.short", metric="duration_s", value=8.25, threshold=10.0).to_dict(),
        finding("bandwidth.narrow", metric="bandwidth_hz", value=4000.0, threshold=7000.0).to_dict(),
        finding("tonal.background", metric="tonal_ratio", value=0.62, threshold=0.5).to_dict(),
        finding("downmix.inverted", channels=[1]).to_dict(),
    ]
    metrics = {"score": 71.0, "duration_s": 12.25, "speech_ratio": 0.81, "source_snr_db": 18.2, "snr_db": 31.0,
               "source_bandwidth_hz": 11025.0, "source_clipping_ratio": 0.0012, "source_reverb_s": 0.41,
               "source_tonal_ratio": 0.62, "source_lufs": -31.2, "output_lufs": -23.0,
               "output_true_peak_dbtp": -1.5, "voice_similarity": 0.93}
    clips = []
    for i in range(6):
        clips.append({
            "id": f"a_very_long_recording_name_from_a_podcast_episode_{i:03d}-3f2a9c1e", "speaker": "speaker_" * 5,
            "source": "/far/away/input.m4a", "output": None, "verdict": "warning", "duration_s": 12.25,
            "span_s": [1.0, 13.25], "metrics": dict(metrics), "findings": found, "selected": i % 2 == 0,
        })
    clips.append({"id": "bare", "speaker": "s", "verdict": "error", "metrics": {}, "findings": []})
    return {"clips": clips}


@needs_chromium
def test_clip_table_fits_1400_px_and_shows_a_dash_for_empty_fields(run, tmp_path):
    out, report = run
    pages = [write_report_html(report, out), tmp_path / "wide.html"]
    pages[1].write_text(render_html(_wide_report(), tmp_path, max_plots=0), encoding="utf-8")
    with Browser(tmp_path / "profile", width=1400) as browser:
        for page in pages:
            browser.goto(page.resolve().as_uri())
            wrap = browser.js("(function(w){ return [w.scrollWidth, w.clientWidth]; })"
                              "(document.querySelector('.wrap'))")
            doc = browser.js("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
            cells = browser.js("Array.from(document.querySelectorAll('#clips td')).map(td => td.textContent.trim())")
            rows = browser.js("document.querySelectorAll('#clips tbody tr').length")
            opened = browser.js("(function(){ var d = document.querySelector('#clips details'); d.open = true;"
                                " return d.textContent; })()")
            wrap_open = browser.js("(function(w){ return w.scrollWidth - w.clientWidth; })"
                                   "(document.querySelector('.wrap'))")
            assert wrap[0] <= wrap[1] and doc[0] <= doc[1] <= 1400, (page.name, wrap, doc)  # (scroll bar)
            assert wrap_open <= 0, "the opened details row still fits"
            assert cells and all(cells), f"{page.name}: empty cells"
            assert rows == (len(report["clips"]) if page.name == "report.html" else 7)
            assert "LUFS out" in opened and "tonal" in opened  # secondary columns fold into the details
            heads = browser.js("Array.from(document.querySelectorAll('#clips thead th')).map(th => th.textContent)")
            assert "voice" in heads and "LUFS out" not in heads  # voice similarity stays in the row
    wide = pages[1].read_text(encoding="utf-8")
    assert wide.count("<td") > 7 * 12 and "—" in wide  # the bare clip's fields


def test_run_and_report_take_embed_audio():
    from prep.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["run", "x", "-o", "o", "--embed-audio"]).embed_audio
    assert not parser.parse_args(["run", "x", "-o", "o"]).embed_audio
    assert parser.parse_args(["report", "o", "--embed-audio"]).embed_audio
    assert not parser.parse_args(["report", "o"]).embed_audio


def test_opus_rate_holds_the_measured_band():
    from prep.report.audio import opus_rate

    assert opus_rate(sample_rate=44100) == 48000 and opus_rate(sample_rate=22050) == 24000
    assert opus_rate(sample_rate=16000) == 16000
    assert opus_rate(sample_rate=44100, bandwidth_hz=7800.0) == 16000  # a 16 kHz recording stored at 44.1 kHz
    assert opus_rate(sample_rate=44100, bandwidth_hz=8300.0) == 24000
    assert opus_rate(sample_rate=48000, bandwidth_hz=4900.0) == 12000
    assert opus_rate(sample_rate=44100, bandwidth_hz=19000.0) == 48000
    assert opus_rate(sample_rate=16000, bandwidth_hz=20000.0) == 16000  # never above the file's own rate
    assert opus_rate(sample_rate=44100, bandwidth_hz=float("nan")) == 48000
    assert opus_rate(sample_rate=44100, bandwidth_hz=0.0) == 48000


def test_a_stereo_sources_preview_is_its_downmix_at_the_sources_rate(tmp_path, demo_dir):
    from prep.run.runner import process_job

    audio, rate = sf.read(str(demo_dir / "alice" / "a01.wav"), dtype="float32")
    sos = signal.butter(10, 3500.0, fs=rate, output="sos")
    narrow = signal.resample_poly(signal.sosfiltfilt(sos, audio), 48000, rate).astype(np.float32)
    path = tmp_path / "in" / "stereo.wav"
    path.parent.mkdir()
    sf.write(str(path), np.stack([narrow, 0.8 * narrow], axis=1), 48000, subtype="FLOAT")
    (clip,) = process_job(Job(path=str(path), speaker="ann"), STAGES, out_dir=tmp_path / "OUT")
    assert clip.metrics["source_bandwidth_hz"] < 6000
    info = sf.info(str(RunFolder(tmp_path / "OUT").preview_path(clip.speaker, clip.id)))
    assert (info.format, info.channels, info.samplerate) == ("FLAC", 1, 48000)  # lossless: the source's rate
    assert info.duration == pytest.approx(clip.span_s[1] - clip.span_s[0], abs=0.001)


def test_preview_format_opus_writes_ogg_previews_for_short_and_long_files(tmp_path, demo_dir):
    from prep.run.longform import LongForm

    audio, rate = sf.read(str(demo_dir / "alice" / "a01.wav"), dtype="float32")
    gap = np.zeros(rate // 2, np.float32)
    long = tmp_path / "in" / "long.wav"
    long.parent.mkdir()
    sf.write(str(long), np.concatenate([audio, gap] * max(2, int(np.ceil(16 * rate / (audio.size + gap.size))))),
             rate)
    jobs = [Job(path=str(demo_dir / "alice" / "a01.wav"), speaker="ann"), Job(path=str(long), speaker="ann")]
    config = LongForm(long_file_s=12.0, min_piece_s=3.0, max_piece_s=6.0, block_s=2.0)
    out = tmp_path / "OUT"
    with pytest.raises(ConfigError, match="'wav'"):
        run_jobs(jobs, STAGES, out_dir=out, longform=config, preview_format="wav")
    clips = run_jobs(jobs, STAGES, out_dir=out, longform=config, preview_format="opus")
    folder = RunFolder(out)
    written = [c for c in clips if c.output]
    assert len([c for c in written if c.source == str(long)]) >= 2  # the long file's pieces
    assert {c.source for c in written} == {j.path for j in jobs}
    for clip in written:
        ogg = folder.preview_path(clip.speaker, clip.id, "opus")
        codec, seconds, _ = _decode(ogg.read_bytes())
        assert codec == "opus" and seconds == pytest.approx(clip.span_s[1] - clip.span_s[0], abs=0.03)
        assert not folder.preview_path(clip.speaker, clip.id).exists()
    # run again with FLAC previews: they replace the Opus ones
    clips = run_jobs(jobs, STAGES, out_dir=out, longform=config, resume=False)
    for clip in (c for c in clips if c.output):
        assert sf.info(str(folder.preview_path(clip.speaker, clip.id))).format == "FLAC"
        assert not folder.preview_path(clip.speaker, clip.id, "opus").exists()


def test_run_has_a_preview_format_option():
    from prep.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["run", "in", "-o", "out"]).preview_format == "flac"
    assert parser.parse_args(["run", "in", "-o", "out", "--preview-format", "opus"]).preview_format == "opus"
    with pytest.raises(SystemExit):
        parser.parse_args(["run", "in", "-o", "out", "--preview-format", "mp3"])


def test_the_before_figure_draws_the_downmix_the_preview_plays(tmp_path, demo_dir):
    from prep.run.runner import process_job

    audio, rate = sf.read(str(demo_dir / "alice" / "a01.wav"), dtype="float32")
    path = tmp_path / "in" / "inverted.wav"
    path.parent.mkdir()
    sf.write(str(path), np.stack([audio, -audio], axis=1), rate, subtype="FLOAT")  # the channels' mean is silence
    (clip,) = process_job(Job(path=str(path), speaker="ann"), STAGES, out_dir=tmp_path / "OUT")
    assert clip.metrics["downmix_mode"] == "polarity_corrected"
    folder = RunFolder(tmp_path / "OUT")
    preview, _ = sf.read(str(folder.preview_path(clip.speaker, clip.id)), dtype="float32")
    assert np.sqrt(np.mean(preview**2)) > 0.01  # the player plays the speech
    stored = folder.plot_path(clip.speaker, clip.id).read_bytes()
    before, after = _spectrogram_rows(stored, 0), _spectrogram_rows(stored, 1)
    # the speech's spectrum, like the clip's (the channels' mean, silence, draws an empty white panel)
    assert np.mean(before) == pytest.approx(np.mean(after), rel=0.3)
    assert np.corrcoef(before, after)[0, 1] > 0.8
