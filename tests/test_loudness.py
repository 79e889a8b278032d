"""Tests of prep.dsp.loudness: EBU conformance signals, agreement with libebur128, kernels vs twins, normalisation."""

from __future__ import annotations

import dataclasses
import itertools
import math

import numpy as np
import pytest
import twins_loudness as twins
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.signal import lfilter, sosfreqz

from prep.clip import Clip
from prep.dsp.loudness import (
    LoudnessMeter,
    integrated_loudness,
    kweighting_sos,
    loudness_range,
    momentary,
    short_term,
    true_peak,
)
from prep.errors import ConfigError, PrepError
from prep.run.pipeline import run_stages
from prep.stages.loudness import Loudness, limiter_gain, normalize, peak_envelope

RATES = (8000, 16000, 22050, 24000, 44100, 48000, 96000)


# -- signal helpers (definitions, not code under test) -------------------------


def tone_sequence(sample_rate: int, parts: list[tuple[float, float]], *, channels: int = 2, freq: float = 1000.0):
    """1 kHz sine, ``parts`` = [(peak level dBFS, seconds), ...], same signal in every channel (EBU test style)."""
    pieces = []
    for level_db, seconds in parts:
        n = round(seconds * sample_rate)
        t = np.arange(n) / sample_rate
        pieces.append(10.0 ** (level_db / 20.0) * np.sin(2 * np.pi * freq * t))
    mono = np.concatenate(pieces).astype(np.float32)
    return np.repeat(mono[None, :], channels, axis=0)


def speech_like(sample_rate: int, seconds: float, *, channels: int = 1, seed: int = 0, level: float = 0.1):
    """Noise with a voice-band tilt, a 4 Hz syllabic envelope and pauses: a stand-in for speech."""
    rng = np.random.default_rng(seed)
    n = round(seconds * sample_rate)
    t = np.arange(n) / sample_rate
    noise = lfilter([0.3], [1.0, -0.7], rng.standard_normal((channels, n)), axis=-1)  # voice-like spectral tilt
    syllables = np.clip(np.sin(2 * np.pi * 4.0 * t + rng.uniform(0, 6)), 0, None) ** 2
    pauses = (np.sin(2 * np.pi * 0.3 * t) > -0.5).astype(np.float64)
    x = level * noise * (0.05 + syllables) * pauses
    x[:, -round(0.05 * sample_rate) :] *= np.linspace(1, 0, round(0.05 * sample_rate))  # fade out
    return np.ascontiguousarray(x if channels > 1 else x[0], dtype=np.float32)


def assert_series_close(got, ref, *, atol: float = 1e-6, floor_lufs: float = -150.0) -> None:
    """Loudness series equal within ``atol`` where the reference is above ``floor_lufs``.

    Below it (filter residue in digital silence, hundreds of dB under the -70 LUFS gate) the meter
    may report a different residue or ``-inf``: both must stay below the floor.
    """
    got, ref = np.asarray(got), np.asarray(ref)
    assert got.shape == ref.shape
    audible = ref > floor_lufs
    np.testing.assert_allclose(got[audible], ref[audible], atol=atol)
    assert np.all(got[~audible] <= floor_lufs)


def lufs_of_clip(clip: Clip) -> float:
    return integrated_loudness(clip.require_audio(), sample_rate=clip.sample_rate)


# -- coefficients -------------------------------------------------------------


def test_kweighting_reproduces_bs1770_published_48k_coefficients():
    # BS.1770-4 Table 1 and Table 2 (48 kHz).
    shelf_b = [1.53512485958697, -2.69169618940638, 1.19839281085285]
    shelf_a = [1.0, -1.69065929318241, 0.73248077421585]
    hp_b = [1.0, -2.0, 1.0]
    hp_a = [1.0, -1.99004745483398, 0.99007225036621]
    sos = kweighting_sos(sample_rate=48000)
    np.testing.assert_allclose(sos[0], shelf_b + shelf_a, atol=1e-7)
    np.testing.assert_allclose(sos[1], hp_b + hp_a, atol=1e-7)


def test_kweighting_response_is_the_same_curve_at_high_rates():
    freqs = np.array([30.0, 100.0, 997.0, 2000.0, 8000.0])
    responses = {}
    for rate in (44100, 48000, 96000):
        _, h = sosfreqz(kweighting_sos(sample_rate=rate), worN=freqs, fs=rate)
        responses[rate] = 20 * np.log10(np.abs(h))
    # BS.1770's -0.691 offset is the K-weighting gain at 997 Hz (48 kHz coefficients).
    assert responses[48000][2] == pytest.approx(0.691, abs=0.005)
    np.testing.assert_allclose(responses[96000], responses[48000], atol=0.05)
    np.testing.assert_allclose(responses[44100], responses[48000], atol=0.05)
    assert responses[48000][0] < -1.0 and responses[48000][-1] > 3.5  # high-pass, +4 dB shelf


# -- EBU Tech 3341 (loudness) and Tech 3342 (loudness range) ---------------------


@pytest.mark.parametrize("rate", [44100, 48000])
@pytest.mark.parametrize(
    ("case", "parts", "expected"),
    [
        (1, [(-23.0, 20.0)], -23.0),
        (2, [(-33.0, 20.0)], -33.0),
        (3, [(-36.0, 10.0), (-23.0, 60.0), (-36.0, 10.0)], -23.0),
        (4, [(-72.0, 10.0), (-36.0, 10.0), (-23.0, 60.0), (-36.0, 10.0), (-72.0, 10.0)], -23.0),
        (5, [(-26.0, 20.0), (-20.0, 20.1), (-26.0, 20.0)], -23.0),
    ],
)
def test_tech3341_integrated(rate, case, parts, expected):
    x = tone_sequence(rate, parts)
    assert integrated_loudness(x, sample_rate=rate) == pytest.approx(expected, abs=0.1), f"Tech 3341 case {case}"


@pytest.mark.parametrize(("level", "expected"), [(-23.0, -23.0), (-33.0, -33.0)])
def test_tech3341_cases_1_2_momentary_and_short_term(level, expected):
    x = tone_sequence(48000, [(level, 20.0)])
    m, s = momentary(x, sample_rate=48000), short_term(x, sample_rate=48000)
    assert m.size == 197 and s.size == 171  # 400 ms / 3 s windows every 100 ms over 20 s
    np.testing.assert_allclose(m[1:], expected, atol=0.1)  # first block includes the filter's onset
    np.testing.assert_allclose(s, expected, atol=0.1)


def test_tech3341_case6_five_channels():
    rate, n = 48000, 20 * 48000
    t = np.arange(n) / rate
    sine = np.sin(2 * np.pi * 1000 * t)
    levels = [-28.0, -28.0, -24.0, -30.0, -30.0]  # L, R, C, Ls, Rs
    x = np.stack([10 ** (lv / 20) * sine for lv in levels]).astype(np.float32)
    weighted = integrated_loudness(x, sample_rate=rate, channel_weights=(1, 1, 1, 1.41, 1.41))
    assert weighted == pytest.approx(-23.0, abs=0.1)
    # libebur128's default map for 5 channels is the same layout.
    assert integrated_loudness(x, sample_rate=rate) == pytest.approx(-23.0, abs=0.1)


def test_tech3341_case9_short_term_constant():
    # 1.34 s at -20 dBFS + 1.66 s at -30 dBFS, five times: every 3 s window holds one period.
    x = tone_sequence(48000, [(-20.0, 1.34), (-30.0, 1.66)] * 5)
    s = short_term(x, sample_rate=48000)
    assert s.size > 100
    np.testing.assert_allclose(s, -23.0, atol=0.1)


def test_tech3341_case12_momentary_constant():
    # 0.18 s at -20 dBFS + 0.22 s at -30 dBFS, 25 times: every 400 ms window holds one period.
    x = tone_sequence(48000, [(-20.0, 0.18), (-30.0, 0.22)] * 25)
    m = momentary(x, sample_rate=48000)
    assert m.size > 80
    np.testing.assert_allclose(m[1:], -23.0, atol=0.1)


@pytest.mark.parametrize(
    ("case", "parts", "expected"),
    [
        (1, [(-20.0, 20.0), (-30.0, 20.0)], 10.0),
        (2, [(-20.0, 20.0), (-15.0, 20.0)], 5.0),
        (3, [(-40.0, 20.0), (-20.0, 20.0)], 20.0),
        (4, [(-50.0, 20.0), (-35.0, 20.0), (-20.0, 20.0), (-35.0, 20.0), (-50.0, 20.0)], 15.0),
    ],
)
def test_tech3342_loudness_range(case, parts, expected):
    x = tone_sequence(48000, parts)
    assert loudness_range(x, sample_rate=48000) == pytest.approx(expected, abs=1.0), f"Tech 3342 case {case}"


@pytest.mark.parametrize(
    ("freq_ratio", "phase_deg", "peak_db"),
    [(4, 0.0, -6.0), (4, 45.0, -6.0), (6, 60.0, -6.0), (8, 67.5, -6.0), (4, 45.0, 3.0)],
)
def test_true_peak_of_sines_between_samples(freq_ratio, phase_deg, peak_db):
    # Tech 3341 cases 15-19 style: a sine at fs/4, fs/6, fs/8 whose crests fall between samples.
    rate = 48000
    n = rate
    t = np.arange(n)
    x = 10 ** (peak_db / 20) * np.sin(2 * np.pi * t / freq_ratio + np.deg2rad(phase_deg))
    x = (x * np.hanning(n) ** 0.05).astype(np.float32)  # soften the ends, keep the crest level
    measured = true_peak(np.stack([x, x]), sample_rate=rate)
    assert peak_db - 0.4 <= measured <= peak_db + 0.2  # Tech 3341 tolerance
    sample_peak = 20 * np.log10(np.abs(x).max())
    if phase_deg:
        assert measured > sample_peak + 0.4  # the meter sees what the samples miss


# -- agreement with libebur128 (pyebur128) ---------------------------------------


def _ebur128(x: np.ndarray, rate: int):
    e = pytest.importorskip("pyebur128")
    frames = x[None, :] if x.ndim == 1 else x
    mode = e.MeasurementMode.MODE_I | e.MeasurementMode.MODE_LRA | e.MeasurementMode.MODE_TRUE_PEAK
    state = e.R128State(frames.shape[0], rate, mode)
    state.add_frames(np.ascontiguousarray(frames.T).ravel(), frames.shape[1])
    peak = max(e.get_true_peak(state, c) for c in range(frames.shape[0]))
    return e.get_loudness_global(state), e.get_loudness_range(state), 20 * math.log10(peak)


@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("kind", ["noise", "speech"])
def test_agrees_with_libebur128(rate, channels, kind):
    if kind == "noise":
        rng = np.random.default_rng(rate + channels)
        n = round(4.5 * rate) + 7
        ramp = np.linspace(0.02, 0.5, n) * np.hanning(n) ** 0.1
        x = (rng.standard_normal((channels, n)) * ramp).astype(np.float32)
        x = x if channels > 1 else x[0]
    else:
        x = speech_like(rate, 6.3, channels=channels, seed=rate)
    ref_i, ref_lra, ref_tp = _ebur128(x, rate)
    meter = LoudnessMeter(sample_rate=rate, channels=channels).add(x)
    assert meter.integrated_lufs() == pytest.approx(ref_i, abs=1e-4)
    assert meter.loudness_range_lu() == pytest.approx(ref_lra, abs=1e-4)
    if rate < 96000:  # libebur128 oversamples only 2x from 96 kHz; this meter keeps 4x
        assert meter.true_peak_dbtp() == pytest.approx(ref_tp, abs=1e-3)
    else:
        assert meter.true_peak_dbtp() >= ref_tp - 1e-3


@pytest.mark.parametrize("rate", [22050, 48000])
def test_momentary_and_short_term_series_agree_with_libebur128(rate):
    e = pytest.importorskip("pyebur128")
    x = speech_like(rate, 5.0, seed=3)
    hop = (rate + 5) // 10
    state = e.R128State(1, rate, e.MeasurementMode.MODE_S)
    ref_m, ref_s = [], []
    for k in range(len(x) // hop):
        state.add_frames(np.ascontiguousarray(x[k * hop : (k + 1) * hop]), hop)
        if k >= 3:
            ref_m.append(e.get_loudness_momentary(state))
        if k >= 29:
            ref_s.append(e.get_loudness_shortterm(state))
    assert_series_close(momentary(x, sample_rate=rate), ref_m)
    assert_series_close(short_term(x, sample_rate=rate), ref_s)


# -- degenerate input: defined values, no exceptions ---------------------------------


@pytest.mark.parametrize("seconds", [0.0, 0.001, 0.3, 0.399])
def test_shorter_than_one_block_is_minus_inf(seconds):
    x = speech_like(44100, 1.0)[: round(seconds * 44100)]
    assert integrated_loudness(x, sample_rate=44100) == -math.inf
    assert loudness_range(x, sample_rate=44100) == 0.0
    assert momentary(x, sample_rate=44100).size == 0
    assert short_term(x, sample_rate=44100).size == 0


def test_silence_is_minus_inf():
    x = np.zeros((2, 48000 * 2), dtype=np.float32)
    assert integrated_loudness(x, sample_rate=48000) == -math.inf
    assert true_peak(x, sample_rate=48000) == -math.inf
    assert np.all(momentary(x, sample_rate=48000) == -math.inf)
    assert loudness_range(x, sample_rate=48000) == 0.0


def test_below_absolute_gate_is_minus_inf_but_not_above_it():
    x = tone_sequence(48000, [(-80.0, 2.0)])
    assert integrated_loudness(x, sample_rate=48000) == -math.inf
    assert integrated_loudness(x * np.float32(10 ** (20 / 20)), sample_rate=48000) == pytest.approx(-60.0, abs=0.1)


def test_empty_true_peak():
    assert true_peak(np.zeros(0, np.float32), sample_rate=16000) == -math.inf


# -- errors ------------------------------------------------------------------------


@pytest.mark.parametrize("rate", [0, -8000, 44100.5, 2000, "fast"])
def test_bad_sample_rate_names_the_value(rate):
    with pytest.raises(ConfigError, match=str(rate)):
        integrated_loudness(np.zeros(100, np.float32), sample_rate=rate)


def test_bad_shapes_and_values():
    with pytest.raises(ConfigError, match="shape"):
        integrated_loudness(np.zeros((1, 2, 100), np.float32), sample_rate=48000)
    bad = speech_like(16000, 1.0)
    bad[500] = np.nan
    with pytest.raises(ConfigError, match="NaN"):
        integrated_loudness(bad, sample_rate=16000)
    with pytest.raises(ConfigError, match="channels"):
        LoudnessMeter(sample_rate=16000, channels=2).add(np.zeros(100, np.float32))
    with pytest.raises(ConfigError, match="channel_weights"):
        LoudnessMeter(sample_rate=16000, channels=2, channel_weights=(1.0,))
    with pytest.raises(ConfigError, match=r"5\.0"):
        normalize(bad[:100], sample_rate=16000, target_lufs=5.0)
    with pytest.raises(ConfigError, match="true_peak_dbtp"):
        Loudness(true_peak_dbtp=3.0)
    with pytest.raises(ConfigError, match="true_peak=False"):
        LoudnessMeter(sample_rate=16000, true_peak=False).true_peak_dbtp()


# -- kernels vs NumPy/SciPy twins ------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(0, 30000),
    channels=st.integers(1, 3),
    rate=st.sampled_from([8000, 11025, 44100]),
    splits=st.lists(st.integers(0, 30000), max_size=4),
    wide=st.booleans(),
    gap=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_subblock_kernel_matches_twin_streamed(n, channels, rate, splits, wide, gap, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((channels, n)) * rng.uniform(1e-4, 1.0)
    if gap:  # digital silence: the kernel flushes its decaying filter memory to zero
        x[:, n // 4 :] = 0.0
    x = x.astype(np.float64 if wide else np.float32)
    weights = (1.0, 0.5, 1.41)[:channels]
    meter = LoudnessMeter(sample_rate=rate, channels=channels, channel_weights=weights)
    bounds = [0, *sorted(min(s, n) for s in splits), n]
    for a, b in itertools.pairwise(bounds):
        meter.add(x[:, a:b])
    ref = twins.subblock_sums(x.astype(np.float32), rate, np.array(weights))
    got = meter.subblock_energies()
    assert got.shape == ref.shape
    np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-12)
    assert meter.samples_seen == n


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(0, 30000),
    rate=st.sampled_from([8000, 16000, 22050, 44100, 48000]),
    hop_b=st.integers(1, 1500),
    gap=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_two_weighted_sums_kernel_matches_twin_and_the_one_cascade_kernel(n, rate, hop_b, gap, seed):
    from prep.dsp.estimators import snr_weighting_sos
    from prep.dsp.loudness import _k

    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(n) * rng.uniform(1e-4, 1.0)).astype(np.float32)
    if gap:  # digital silence: both cascades flush their decaying memory to zero, as the one-cascade kernel
        x[n // 4 : 3 * n // 4] = 0.0
    sos_a, sos_b, hop_a = kweighting_sos(sample_rate=rate), snr_weighting_sos(sample_rate=rate), (rate + 5) // 10
    out_a, out_b = np.full(n // hop_a + 1, np.nan), np.full(n // hop_b + 1, np.nan)
    _k.two_weighted_power_sums(x, sos_a, hop_a, out_a, sos_b, hop_b, out_b)
    for sos, hop, got in ((sos_a, hop_a, out_a), (sos_b, hop_b, out_b)):
        np.testing.assert_allclose(got, twins.weighted_block_sums(x, sos, hop), rtol=1e-9, atol=1e-12)
        one = np.zeros(n // hop + 1)
        _k.kweighted_power_sums(x[None], sos, np.zeros((1, 4)), np.ones(1), hop, np.zeros(2), one)
        np.testing.assert_array_equal(got[:-1], one[:-1])  # the same operations: the same bits


def test_loudness_and_frame_powers_equal_the_two_calls():
    from prep.dsp.estimators import loudness_and_frame_powers, weighted_frame_powers

    rng = np.random.default_rng(5)
    for rate, seconds in ((8000, 3.0), (16000, 2.3), (44100, 4.1), (48000, 0.3), (7000, 2.0)):
        x = (rng.standard_normal(int(rate * seconds)) * 0.05).astype(np.float32)
        x[rate // 2 : rate] = 0.0
        for audio in (x, x[None], np.stack([x, 0.5 * x])):
            lufs, powers = loudness_and_frame_powers(audio, sample_rate=rate)
            assert lufs == integrated_loudness(audio, sample_rate=rate)
            np.testing.assert_array_equal(powers, weighted_frame_powers(audio, sample_rate=rate))
    assert loudness_and_frame_powers(np.zeros(0, np.float32), sample_rate=16000)[0] == -math.inf
    bad = np.zeros(16100, np.float32)
    bad[-3] = np.nan  # in the partial last block and frame: the meter finds it there too
    for measure in (integrated_loudness, loudness_and_frame_powers):
        with pytest.raises(ConfigError, match="NaN"):
            measure(bad, sample_rate=16000)


@settings(max_examples=15, deadline=None)
@given(
    seconds=st.floats(0.3, 9.0),
    rate=st.sampled_from([8000, 22050, 48000]),
    channels=st.integers(1, 2),
    seed=st.integers(0, 2**32 - 1),
)
def test_gated_measures_match_definition_twins(seconds, rate, channels, seed):
    x = speech_like(rate, seconds, channels=channels, seed=seed % 1000)
    w = np.ones(channels)
    assert integrated_loudness(x, sample_rate=rate) == pytest.approx(twins.integrated(x, rate, w), abs=1e-6)
    assert loudness_range(x, sample_rate=rate) == pytest.approx(twins.loudness_range(x, rate, w), abs=1e-6)
    assert_series_close(momentary(x, sample_rate=rate), twins.lufs(twins.block_powers(x, rate, w, 0.4, 0.1)))


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(0, 3000),
    channels=st.integers(1, 3),
    splits=st.lists(st.integers(0, 3000), max_size=4),
    wide=st.booleans(),
    silent=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_true_peak_kernel_matches_upfirdn_twin(n, channels, splits, wide, silent, seed):
    rng = np.random.default_rng(seed)
    x = np.zeros((channels, n)) if silent else rng.uniform(-1, 1, (channels, n)) ** 3
    x = x.astype(np.float64 if wide else np.float32)
    meter = LoudnessMeter(sample_rate=44100, channels=channels)
    bounds = [0, *sorted(min(s, n) for s in splits), n]
    for a, b in itertools.pairwise(bounds):
        meter.add(x[:, a:b])
    ref = twins.true_peak_linear(x.astype(np.float32))
    got = meter.true_peak_dbtp()
    if ref == 0.0:
        assert got == -math.inf
    else:
        assert 10 ** (got / 20) == pytest.approx(ref, rel=1e-5)
        assert got == pytest.approx(true_peak(x, sample_rate=44100), abs=1e-9)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 400), channels=st.integers(1, 2), seed=st.integers(0, 2**32 - 1))
def test_peak_envelope_matches_twin(n, channels, seed):
    x = (np.random.default_rng(seed).uniform(-1, 1, (channels, n)) ** 3).astype(np.float32)
    np.testing.assert_allclose(peak_envelope(x), twins.peak_envelope(x), rtol=1e-5, atol=1e-7)


@settings(max_examples=30, deadline=None)
@given(
    gains=st.lists(st.floats(0.0, 1.0), min_size=0, max_size=300),
    recover=st.floats(0.5, 0.9999),
)
def test_gain_release_kernel_matches_twin(gains, recover):
    from prep.kernels.loudness import gain_release

    g = np.array(gains, dtype=np.float64)
    out = np.empty_like(g)
    gain_release(g, recover, out)
    np.testing.assert_allclose(out, twins.gain_release(g, recover), rtol=1e-12)
    assert np.all(out <= g + 1e-15)


def test_long_digital_silence_then_speech_matches_twin():
    # 20 s of zeros between two speech parts: the filter memory decays through the subnormal range.
    rate = 16000
    speech = speech_like(rate, 4.0, seed=8)
    x = np.concatenate([speech, np.zeros(20 * rate, np.float32), speech])
    w = np.ones(1)
    meter = LoudnessMeter(sample_rate=rate).add(x)
    np.testing.assert_allclose(meter.subblock_energies(), twins.subblock_sums(x, rate, w), rtol=1e-9, atol=1e-12)
    assert meter.integrated_lufs() == pytest.approx(twins.integrated(x, rate, w), abs=1e-9)
    assert np.all(meter.momentary_lufs()[60:230] == -math.inf)  # flushed to exact zero, not -300 LUFS


def test_streamed_two_channel_meter_equals_one_shot():
    x = speech_like(24000, 12.0, channels=2, seed=9)
    meter = LoudnessMeter(sample_rate=24000, channels=2)
    for start in range(0, x.shape[1], 4097):
        meter.add(x[:, start : start + 4097])
    assert meter.integrated_lufs() == pytest.approx(integrated_loudness(x, sample_rate=24000), abs=1e-9)
    assert meter.loudness_range_lu() == pytest.approx(loudness_range(x, sample_rate=24000), abs=1e-9)
    assert meter.true_peak_dbtp() == pytest.approx(true_peak(x, sample_rate=24000), abs=1e-9)
    assert meter.duration_s == pytest.approx(12.0)


# -- limiter and normalisation ---------------------------------------------------------


def test_limiter_gain_holds_the_bound_and_ramps():
    rate = 48000
    env = np.full(rate, 0.5)
    env[24000] = 2.0  # one peak 6 dB over the ceiling
    gain = limiter_gain(env, sample_rate=rate, ceiling=1.0, lookahead_ms=5.0, release_ms=100.0)
    assert np.all(env * gain <= 1.0 + 1e-12)
    assert gain[24000] == pytest.approx(0.5, abs=1e-9)
    lookahead = round(0.005 * rate)
    assert np.max(np.abs(np.diff(gain))) <= 4.0 / lookahead  # a ramp, not a step
    assert np.all(gain[: 24000 - lookahead - 1] == 1.0)  # untouched before the look-ahead
    assert gain[24000 + round(0.49 * rate)] > 0.99  # recovered half a second later


def _spiky(rate: int, seconds: float, *, channels: int = 1) -> np.ndarray:
    """Speech-like signal plus sparse sharp clicks: high crest factor that forces limiting."""
    x = speech_like(rate, seconds, channels=channels, seed=4)
    frames = x.reshape(channels, -1).copy()
    for k in range(1, int(seconds)):
        frames[:, k * rate : k * rate + 3] = 0.9 * np.array([1.0, -1.0, 1.0], np.float32)
    return frames if channels > 1 else frames[0]


@pytest.mark.parametrize(
    ("target", "ceiling", "channels"),
    [(-23.0, -1.0, 1), (-16.0, -1.0, 1), (-14.0, -2.0, 2), (-18.0, -6.0, 2)],
)
def test_normalize_meets_target_and_ceiling(target, ceiling, channels):
    rate = 44100
    x = _spiky(rate, 8.0, channels=channels)
    y, rep = normalize(x, sample_rate=rate, target_lufs=target, true_peak_dbtp=ceiling)
    assert y.dtype == np.float32 and y.shape == x.shape
    assert integrated_loudness(y, sample_rate=rate) == pytest.approx(target, abs=0.1)
    assert true_peak(y, sample_rate=rate) <= ceiling
    # independent check: 4x upfirdn twin of the output, and no sample beyond the ceiling
    assert 20 * math.log10(twins.true_peak_linear(y)) <= ceiling + 1e-4
    assert rep.reached_target
    assert rep.limiter_peak_reduction_db > 0  # the clicks needed the limiter
    assert rep.output_lufs == pytest.approx(integrated_loudness(y, sample_rate=rate), abs=1e-9)
    if channels == 2:  # one gain for all channels: the stereo image is kept
        ratio = y[:, x[0] != 0] / x[:, x[0] != 0]
        np.testing.assert_allclose(ratio[0], ratio[1], rtol=1e-5)


def test_normalize_without_limiting_is_a_pure_gain():
    rate = 16000
    x = speech_like(rate, 5.0, level=0.02)
    in_lufs = integrated_loudness(x, sample_rate=rate)
    y, rep = normalize(x, sample_rate=rate, target_lufs=-20.0, true_peak_dbtp=-1.0)
    assert rep.limiter_peak_reduction_db == 0.0 and rep.limiter_reduction_db == 0.0
    assert rep.gain_db == pytest.approx(-20.0 - in_lufs)
    np.testing.assert_allclose(y, x * 10 ** (rep.gain_db / 20), rtol=1e-6)
    assert integrated_loudness(y, sample_rate=rate) == pytest.approx(-20.0, abs=0.01)


def test_limiter_acts_locally_no_pumping():
    rate = 48000
    x = speech_like(rate, 6.0, seed=5)
    x[3 * rate] = 1.0  # one click
    y, rep = normalize(x, sample_rate=rate, target_lufs=-23.0, true_peak_dbtp=-1.0)  # speech alone needs no limiting
    assert rep.limiter_peak_reduction_db > 3.0
    applied = np.divide(y, x, out=np.zeros_like(y), where=np.abs(x) > 1e-4)
    static = 10 ** (rep.gain_db / 20)
    t = np.arange(x.size) - 3 * rate  # samples from the click
    live = np.abs(x) > 1e-4
    # Before the look-ahead window the gain is exactly the static gain ...
    np.testing.assert_allclose(applied[live & (t < -0.006 * rate)], static, rtol=1e-6)
    # ... a second after the click the release has brought it back to within 0.001 dB ...
    np.testing.assert_allclose(applied[live & (t > rate)], static, rtol=1.2e-4)
    # ... while the click itself is held down.
    assert applied[live & (np.abs(t) < 0.002 * rate)].min() < static * 0.7


def test_normalize_leaves_silence_and_short_audio_alone():
    for x in (np.zeros(48000, np.float32), speech_like(48000, 0.3)):
        y, rep = normalize(x, sample_rate=48000)
        np.testing.assert_array_equal(y, x)
        assert rep.input_lufs == -math.inf and rep.gain_db == 0.0 and not rep.reached_target


# -- pipeline stage --------------------------------------------------------------------


def _clip(audio: np.ndarray, rate: int) -> Clip:
    return Clip(id="c1", source="x.wav", source_sha256="0" * 64, speaker="s", sample_rate=rate, audio=audio)


def test_stage_normalizes_and_records_metrics():
    x = speech_like(22050, 5.0, level=0.03)
    clip = _clip(x, 22050)
    [out] = run_stages(clip, [Loudness()])
    assert out.verdict == "approved", out.reasons
    assert out.audio.shape == x.shape and out.audio.dtype == np.float32
    assert lufs_of_clip(out) == pytest.approx(-23.0, abs=0.1)
    m = out.metrics
    assert m["pre_gain_lufs"] == pytest.approx(integrated_loudness(x, sample_rate=22050))
    assert m["output_lufs"] == pytest.approx(-23.0, abs=0.1)
    assert m["output_true_peak_dbtp"] <= -1.0
    assert m["pre_gain_lra_lu"] >= 0 and m["limiter_reduction_db"] == 0.0
    assert m["gain_db"] == pytest.approx(-23.0 - m["pre_gain_lufs"])
    assert out.history[-1].stage == "loudness" and out.history[-1].config["target_lufs"] == -23.0
    np.testing.assert_array_equal(clip.audio, x)  # the input clip is untouched


def test_stage_flags_a_costly_limiter():
    clip = _clip(_spiky(44100, 6.0), 44100)
    out = Loudness(target_lufs=-9.0, true_peak_dbtp=-1.0).apply(clip)
    assert out.metrics["limiter_reduction_db"] > 1.0
    assert out.verdict == "warning"
    limited = [f for f in out.findings if f.code == "loudness.limited"]
    assert len(limited) == 1 and limited[0].value == out.metrics["limiter_reduction_db"] and limited[0].threshold == 1.0
    assert "limiter" in limited[0].message
    assert true_peak(out.audio, sample_rate=44100) <= -1.0


def test_stage_rejects_silence_and_warns_on_too_short():
    silent = Loudness().apply(_clip(np.zeros(16000, np.float32), 16000))
    assert silent.verdict == "rejected" and [f.code for f in silent.findings] == ["loudness.silent"]
    assert "silent" in silent.reasons[0]
    assert silent.metrics["pre_gain_lufs"] == -math.inf
    short = Loudness().apply(_clip(speech_like(16000, 0.25), 16000))
    assert short.verdict == "warning" and [f.code for f in short.findings] == ["loudness.too_short"]
    (too_short,) = short.findings
    assert too_short.value == pytest.approx(0.25) and too_short.threshold == 0.4
    assert short.metrics["output_lufs"] == -math.inf
    np.testing.assert_array_equal(short.audio, speech_like(16000, 0.25))


def test_stage_without_audio_is_an_error():
    clip = _clip(np.zeros(10, np.float32), 16000)
    with pytest.raises(PrepError):
        Loudness().apply(dataclasses.replace(clip, audio=None))


def test_stage_takes_headroom_before_limiting():
    """Speech whose peaks sit 24 dB over its loudness would need 2 dB of limiting at -23 LUFS / -1 dBTP:
    the stage sets it 2 LU lower by gain alone instead, so the waveform is kept exactly (a limiter's gain
    modulation cost denoised clips up to 3.5 dB SI-SDR end to end)."""
    rate = 44100
    x = speech_like(rate, 6.0, seed=11)
    x *= np.float32(10 ** ((-23.0 - integrated_loudness(x, sample_rate=rate)) / 20))
    peak_at = int(np.argmax(np.abs(x)))
    x[peak_at] = np.float32(np.sign(x[peak_at]) * 10 ** ((-23.0 + 24.0) / 20))  # true peak ~ +1 dBTP
    out = Loudness().apply(_clip(x, rate))
    m = out.metrics
    assert m["limiter_peak_reduction_db"] == 0.0 and m["limiter_reduction_db"] == 0.0
    np.testing.assert_allclose(out.audio, x * np.float32(10 ** (m["gain_db"] / 20)), rtol=1e-6, atol=1e-9)
    assert -26.0 <= m["output_lufs"] < -23.0 and m["output_true_peak_dbtp"] <= -1.0
    assert out.verdict == "approved", out.reasons
    # beyond the headroom the limiter still holds the ceiling, aiming at the lowest accepted loudness
    deep = Loudness(max_under_target_lu=0.5).apply(_clip(x, rate))
    assert deep.metrics["limiter_peak_reduction_db"] > 0
    assert deep.metrics["output_lufs"] == pytest.approx(-23.5, abs=0.1)
    assert deep.metrics["output_true_peak_dbtp"] <= -1.0
