"""The FLAC encoder (prep.kernels.flac, prep.report.audio.flac_encode / flac_preview).

Checked against its NumPy twin (tests/twins_flac.py: the same bytes), against
real decoders (libsndfile, i.e. libFLAC; the ffmpeg binary with its CRC
checks; headless Chromium's Web Audio), and against libsndfile's own FLAC
writer for the quantisation of float samples.
"""

from __future__ import annotations

import base64
import io
import json
import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf
import twins_flac as twins
from chromium import Browser, chromium
from hypothesis import given, settings
from hypothesis import strategies as st

from prep.errors import ConfigError, DataError
from prep.report.audio import FLAC_BLOCKSIZE, flac_encode, flac_pcm16, flac_preview

needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="no ffmpeg binary")
needs_chromium = pytest.mark.skipif(chromium() is None, reason="no Chromium installed (.ci/run installs one)")


def _speechy(n: int, seed: int, *, gain: float = 3000.0) -> np.ndarray:
    """A resonant AR(4) process plus white noise: what LPC is for."""
    rng = np.random.default_rng(seed)
    e = rng.standard_normal(n + 400)
    y = np.zeros_like(e)
    a = (2.2, -2.1, 0.95, -0.2)  # stable: poles well inside the unit circle
    for i in range(4, e.size):
        y[i] = a[0] * y[i - 1] + a[1] * y[i - 2] + a[2] * y[i - 3] + a[3] * y[i - 4] + e[i]
    y = y[400:] / np.abs(y[400:]).max() * gain + rng.standard_normal(n) * 3.0
    return np.clip(np.rint(y), -32768, 32767).astype(np.int16)


def _signals() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(5)
    n = 9000
    t = np.arange(n)
    square = np.where(np.sin(2 * np.pi * t / 101) >= 0, 32767, -32768).astype(np.int16)
    return {
        "speechy": _speechy(n, 1),
        "silence": np.zeros(n, np.int16),
        "dc": np.full(300, -1234, np.int16),
        "square_full_scale": square,
        "white_full_scale": rng.integers(-32768, 32768, n).astype(np.int16),
        "white_quiet": rng.integers(-40, 41, n).astype(np.int16),
        "sine": np.rint(20000 * np.sin(2 * np.pi * t / 37.3)).astype(np.int16),
        "extremes": np.tile(np.array([32767, -32768], np.int16), n // 2),
        "one_sample": np.array([-32768], np.int16),
        "two_samples": np.array([5, -7], np.int16),
        "five_samples": np.array([1, 2, 4, 8, 16], np.int16),
        "nine_samples": _speechy(9, 2),
        "odd_length": _speechy(FLAC_BLOCKSIZE + 257, 3),
        "one_block_exactly": _speechy(FLAC_BLOCKSIZE, 4),
        "short_block": _speechy(255, 5),
        "stereo": np.stack([_speechy(5001, 6), _speechy(5001, 7) // 3]),
        "stereo_silent_left": np.stack([np.zeros(700, np.int16), _speechy(700, 8)]),
    }


SIGNALS = _signals()


def _decode_sf(data: bytes) -> tuple[np.ndarray, int]:
    y, rate = sf.read(io.BytesIO(data), dtype="int16", always_2d=True)
    return y.T, rate


@pytest.mark.parametrize("name", sorted(SIGNALS))
def test_kernel_bytes_equal_the_twins(name):
    pcm = SIGNALS[name]
    for rate in (44100, 11025):
        assert flac_encode(pcm, sample_rate=rate) == twins.encode(pcm, rate), (name, rate)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 2 * FLAC_BLOCKSIZE + 5), channels=st.integers(1, 2), seed=st.integers(0, 10_000),
       gain=st.sampled_from([0.0, 1.0, 300.0, 32767.0]))
def test_kernel_equals_twin_and_round_trips_on_random_audio(n, channels, seed, gain):
    rng = np.random.default_rng(seed)
    smooth = np.cumsum(rng.standard_normal((channels, n)), axis=1)
    x = smooth / max(1.0, np.abs(smooth).max()) * gain + rng.standard_normal((channels, n)) * gain / 50
    pcm = np.clip(np.rint(x), -32768, 32767).astype(np.int16)
    data = flac_encode(pcm, sample_rate=16000)
    assert data == twins.encode(pcm, 16000)
    back, rate = _decode_sf(data)
    assert rate == 16000
    np.testing.assert_array_equal(back, pcm)


@pytest.mark.parametrize("rate", [8000, 11025, 22050, 44100, 48000, 88200, 96000, 100000, 192000, 250000, 384000])
@pytest.mark.parametrize("name", ["speechy", "stereo", "one_sample", "odd_length"])
def test_round_trip_through_libsndfile_at_each_rate(rate, name):
    pcm = np.atleast_2d(SIGNALS[name])
    back, got_rate = _decode_sf(flac_encode(pcm, sample_rate=rate))
    assert got_rate == rate
    np.testing.assert_array_equal(back, pcm)


def test_header_rate_codes_are_what_the_twin_derives_from_the_spec():
    pcm = SIGNALS["speechy"][:600]
    for rate in (8000, 12000, 44100, 50000, 65535, 65540, 123456, 1_048_575):  # table, kHz, Hz, 10 Hz, STREAMINFO
        data = flac_encode(pcm, sample_rate=rate)
        assert data == twins.encode(pcm, rate), rate
        assert int.from_bytes(data[18:21], "big") >> 4 == rate  # STREAMINFO's 20-bit rate


def test_lpc_compresses_like_libflac_level_4():
    pcm = SIGNALS["speechy"]
    ours = len(flac_encode(pcm, sample_rate=44100))
    buf = io.BytesIO()
    sf.write(buf, pcm, 44100, format="FLAC", subtype="PCM_16", compression_level=0.5)  # libFLAC level 4
    theirs = len(buf.getvalue())
    fixed_only = len(twins.encode(pcm, 44100, max_order=0))
    assert ours <= 1.03 * theirs, (ours, theirs)
    assert ours < 0.95 * fixed_only, (ours, fixed_only)  # the LPC subframes pay


@needs_ffmpeg
@pytest.mark.parametrize("name", ["speechy", "stereo", "one_sample", "white_full_scale", "square_full_scale"])
def test_ffmpeg_decodes_with_crc_checks_and_rejects_a_corrupt_frame(name):
    pcm = np.atleast_2d(SIGNALS[name])
    data = flac_encode(pcm, sample_rate=48000)
    cmd = ["ffmpeg", "-v", "error", "-err_detect", "crccheck", "-i", "-", "-f", "s16le", "-"]
    done = subprocess.run(cmd, input=data, capture_output=True, check=False)
    assert done.returncode == 0 and done.stderr == b"", done.stderr
    back = np.frombuffer(done.stdout, "<i2").reshape(-1, pcm.shape[0]).T
    np.testing.assert_array_equal(back, pcm)
    # one bit flipped in the last frame's body: its CRC-16 no longer matches
    bad = bytearray(data)
    bad[-3] ^= 0x10
    done = subprocess.run(cmd, input=bytes(bad), capture_output=True, check=False)
    assert b"crc" in done.stderr.lower() or done.returncode != 0, done.stderr


def test_quantisation_is_libsndfiles_flac_conversion():
    steps = np.arange(-32768, 32768, dtype=np.float64)
    x = np.concatenate([steps / 32768, (steps + 0.5) / 32768, (steps + 0.25) / 32768, steps / 32767,
                        np.nextafter((steps + 0.5) / 32768, 2), np.nextafter((steps + 0.5) / 32768, -2),
                        [1.0, -1.0, 1.5, -2.0, np.inf, -np.inf, 0.0, -0.0, 1e-30]]).astype(np.float32)
    buf = io.BytesIO()
    sf.write(buf, np.clip(x, -1.0, 1.0), 8000, format="FLAC", subtype="PCM_16")  # what flac_preview did before
    theirs, _ = sf.read(io.BytesIO(buf.getvalue()), dtype="int16")
    np.testing.assert_array_equal(flac_pcm16(x), theirs)
    np.testing.assert_array_equal(twins.quantise16(x), theirs)
    ours, _ = sf.read(io.BytesIO(flac_preview(x, sample_rate=8000)), dtype="int16")
    np.testing.assert_array_equal(ours, theirs)


def test_preview_of_float_stereo_is_the_quantised_source():
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((2, 7000)) * 0.3).astype(np.float32)
    x[0, 10] = 1.7  # beyond full scale: clipped
    back, rate = _decode_sf(flac_preview(x, sample_rate=22050))
    assert rate == 22050
    np.testing.assert_array_equal(back, flac_pcm16(x))
    assert back[0, 10] == 32767


def test_invalid_input_is_refused():
    with pytest.raises(DataError, match="no audio"):
        flac_preview(np.zeros(0, np.float32), sample_rate=8000)
    with pytest.raises(DataError, match="no audio"):
        flac_encode(np.zeros((1, 0), np.int16), sample_rate=8000)
    with pytest.raises(DataError, match="NaN"):
        flac_preview(np.array([0.1, np.nan], np.float32), sample_rate=8000)
    with pytest.raises(DataError, match="int16"):
        flac_encode(np.zeros(10, np.int32), sample_rate=8000)
    with pytest.raises(DataError, match="channels"):
        flac_encode(np.zeros((3, 10), np.int16), sample_rate=8000)
    with pytest.raises(DataError, match="1048576 Hz"):
        flac_encode(np.zeros(10, np.int16), sample_rate=1_048_576)
    with pytest.raises(ConfigError, match="sample_rate"):
        flac_encode(np.zeros(10, np.int16), sample_rate=0)


_DECODE = """
(async () => {
  const out = [];
  for (const [uri, rate] of %s) {
    try {
      const bytes = await (await fetch(uri)).arrayBuffer();
      const ctx = new OfflineAudioContext(1, 1, rate);
      const buf = await ctx.decodeAudioData(bytes);
      const chans = [];
      for (let c = 0; c < buf.numberOfChannels; c++) chans.push(Array.from(buf.getChannelData(c)));
      out.push({rate: buf.sampleRate, channels: chans});
    } catch (e) { out.push({error: String(e)}); }
  }
  return out;
})()
"""


@needs_chromium
def test_chromium_decodes_the_samples(tmp_path):
    cases = [("speechy", 44100), ("stereo", 48000), ("one_sample", 8000), ("odd_length", 11025),
             ("white_full_scale", 96000)]
    files = [(np.atleast_2d(SIGNALS[name][..., :6000]), rate) for name, rate in cases]
    uris = [["data:audio/flac;base64," + base64.b64encode(flac_encode(p, sample_rate=r)).decode(), r]
            for p, r in files]
    page = tmp_path / "blank.html"
    page.write_text("<!doctype html><title>flac</title>", encoding="utf-8")
    with Browser(tmp_path / "profile") as browser:
        browser.goto(page.resolve().as_uri())
        assert browser.js("document.createElement('audio').canPlayType('audio/flac')") in ("maybe", "probably")
        decoded = browser.js(_DECODE % json.dumps(uris), timeout_s=120)
    for (pcm, rate), got in zip(files, decoded, strict=True):
        assert "error" not in got, got
        assert got["rate"] == rate
        v = np.array(got["channels"], np.float64)  # Chromium scales by 1/32768 below zero, 1/32767 above
        np.testing.assert_array_equal(np.rint(np.where(v < 0, v * 32768, v * 32767)), pcm)
