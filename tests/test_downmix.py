"""Phase-aware downmix: never cancel an inverted channel, skip a dead one."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prep.clip import Clip
from prep.errors import ConfigError
from prep.run.decode import load
from prep.stages.downmix import Downmix, downmix, measure_channels

RATE = 16000


def _speechlike(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / RATE
    carrier = sum(np.sin(2 * np.pi * f * t + rng.uniform(0, 6)) / k for k, f in enumerate((140, 280, 420, 700), 1))
    envelope = 0.5 * (1 + np.sin(2 * np.pi * 3 * t))
    return (0.3 * carrier * envelope + 0.01 * rng.standard_normal(n)).astype(np.float32)


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.asarray(x, np.float64) ** 2)))


def test_correlated_channels_are_averaged():
    s = _speechlike(RATE)
    mono, rep = downmix(np.stack([s, 0.8 * s]))
    np.testing.assert_allclose(mono, 0.9 * s, atol=1e-6)
    assert rep.inverted == () and rep.dead == ()
    assert mono.dtype == np.float32 and mono.ndim == 1


def test_inverted_channel_is_flipped_not_cancelled():
    s = _speechlike(RATE)
    naive = np.stack([s, -s]).mean(axis=0)
    assert _rms(naive) < 1e-6  # what a plain average does
    mono, rep = downmix(np.stack([s, -s]))
    assert rep.inverted == (1,)
    assert np.corrcoef(mono, s)[0, 1] > 0.999
    assert _rms(mono) == pytest.approx(_rms(s), rel=1e-3)


def test_dead_channel_is_ignored_and_level_kept():
    s = _speechlike(RATE)
    dead = np.random.default_rng(1).standard_normal(RATE).astype(np.float32) * 1e-6
    mono, rep = downmix(np.stack([dead, s]))
    assert rep.dead == (0,)
    np.testing.assert_allclose(mono, s, atol=1e-7)


def test_digital_silence_channel_is_dead():
    s = _speechlike(RATE)
    mono, rep = downmix(np.stack([s, np.zeros_like(s)]))
    assert rep.dead == (1,)
    assert rep.rms_db[1] == -np.inf
    np.testing.assert_allclose(mono, s)


def test_all_silent_input_gives_silence_without_error():
    mono, _rep = downmix(np.zeros((2, 1001), np.float32))
    assert mono.shape == (1001,) and not mono.any()


def test_three_channels_one_inverted_one_dead():
    s = _speechlike(RATE)
    x = np.stack([s, -0.9 * s, np.zeros_like(s)])
    mono, rep = downmix(x)
    assert rep.inverted == (1,) and rep.dead == (2,)
    np.testing.assert_allclose(mono, 0.95 * s, atol=1e-6)


def test_uncorrelated_channels_are_averaged_not_flipped():
    a, b = _speechlike(RATE, 1), _speechlike(RATE, 2)
    b = np.roll(b, 777)
    mono, rep = downmix(np.stack([a, b]))
    assert rep.inverted == ()
    np.testing.assert_allclose(mono, (a + b) / 2, atol=1e-6)


def test_mono_passthrough_and_validation():
    s = _speechlike(1001)
    mono, _ = downmix(s)
    np.testing.assert_array_equal(mono, s)
    with pytest.raises(ConfigError, match="inverted_corr"):
        downmix(np.stack([s, s]), inverted_corr=1.5)
    with pytest.raises(ConfigError, match="shape"):
        downmix(np.zeros((2, 2, 2)))


@settings(max_examples=40, deadline=None)
@given(
    gain=st.floats(0.2, 1.0),
    sign=st.sampled_from([-1.0, 1.0]),
    n=st.integers(400, 3001),
    seed=st.integers(0, 2**16),
)
def test_mix_of_scaled_copies_never_loses_level(gain, sign, n, seed):
    s = _speechlike(n, seed)
    mono, _ = downmix(np.stack([s, np.float32(sign * gain) * s]))
    # the loudest channel's level is at most halved... and never cancelled
    assert _rms(mono) >= 0.5 * _rms(s) * (1 + gain) * 0.999
    assert abs(np.corrcoef(mono, s)[0, 1]) > 0.999


def test_measure_channels_correlation_sign():
    s = _speechlike(RATE)
    rep = measure_channels(np.stack([s, -s]))
    assert rep.correlation[1] == pytest.approx(-1.0, abs=1e-6)


def _clip(audio: np.ndarray) -> Clip:
    return Clip(id="x", source="x.wav", source_sha256="0", speaker="s", sample_rate=RATE, audio=audio)


def test_stage_records_what_it_did_on_fixture(demo_dir):
    audio, _ = load(demo_dir / "bob" / "b01.wav")  # right channel inverted
    out = Downmix().apply(_clip(audio))
    assert out.audio.ndim == 1
    assert out.metrics["downmix_mode"] == "polarity_corrected"
    assert out.metrics["inverted_channels"] == [1]
    assert _rms(out.audio) == pytest.approx(_rms(audio[0]), rel=0.01)
    assert [(f.code, f.severity) for f in out.findings] == [("downmix.inverted", "info")]
    assert "polarity" in out.findings[0].message and out.verdict == "approved"  # info: no effect on the verdict

    audio, _rate = load(demo_dir / "bob" / "b02.flac")  # dead right channel
    out = Downmix().apply(_clip(audio))
    assert out.metrics["downmix_mode"] == "single_live_channel"
    assert out.metrics["dead_channels"] == [1]
    assert [f.code for f in out.findings] == ["downmix.dead_channel"] and out.verdict == "approved"
    np.testing.assert_allclose(out.audio, audio[0])
