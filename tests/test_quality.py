"""Quality metrics on constructed signals with known truth, the score, verdict rules and selection."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import soxr
from findings_helpers import findings_for
from scipy import signal

from prep.clip import Clip, InputInfo
from prep.deliver.select import Selection, consistency, select_clips, speaker_summary
from prep.dsp.estimators import (
    MAX_SNR_DB,
    bandwidth_hz,
    clipping,
    dc_offset,
    dnsmos,
    measure_quality,
    reverb_decay_s,
    snr_estimate,
    tonal_ratio,
)
from prep.dsp.loudness import kweighting_sos
from prep.errors import ConfigError
from prep.findings import verdict_of
from prep.stages.measure import Measure
from prep.stages.score import Score, judge, quality_score

RATE = 16000


# -- constructed signals ---------------------------------------------------------------
def _formant_filter(rate: int, rng: np.random.Generator) -> np.ndarray:
    a = np.array([1.0])
    for f, bw in ((rng.uniform(300, 800), 80), (rng.uniform(900, 2200), 120), (rng.uniform(2400, 3200), 200)):
        r = math.exp(-math.pi * bw / rate)
        a = np.convolve(a, [1.0, -2 * r * math.cos(2 * math.pi * f / rate), r * r])
    return a


def _phrase(n: int, rate: int, rng: np.random.Generator) -> np.ndarray:
    """Syllables: gliding harmonic source through formants, some with a fricative onset."""
    y = np.zeros(n)
    pos = 0
    while pos < n:
        syl = min(int(rng.uniform(0.12, 0.3) * rate), n - pos)
        if syl < int(0.03 * rate):
            break
        t = np.arange(syl) / rate
        f0 = rng.uniform(100, 220) * (1 + rng.uniform(-0.15, 0.15) * t / max(t[-1], 1e-3))
        phase = 2 * np.pi * np.cumsum(f0) / rate
        n_harm = int(min(5000, rate / 2 - 100) / f0.max())
        source = sum(np.sin(k * phase) / k for k in range(1, n_harm + 1))
        voiced = signal.lfilter([1.0], _formant_filter(rate, rng), source)
        voiced /= np.std(voiced) + 1e-12
        if rng.random() < 0.4:
            nf = int(0.06 * rate)
            sos = signal.butter(2, min(2500 / (rate / 2), 0.9), "high", output="sos")
            fric = signal.sosfilt(sos, rng.standard_normal(syl))
            voiced = voiced + 0.5 * fric / (np.std(fric[:nf]) + 1e-12) * (np.arange(syl) < nf)
        env = np.ones(syl)
        ramp = int(0.015 * rate)
        env[:ramp] = np.linspace(0, 1, ramp)
        env[-ramp:] = np.linspace(1, 0, ramp)
        y[pos : pos + syl] = voiced * env * 10 ** (rng.uniform(-6, 0) / 20)
        pos += syl + int(rng.uniform(0.0, 0.05) * rate)
    return 0.1 * y


def speechlike(duration_s: float = 10.0, *, rate: int = RATE, seed: int = 0) -> tuple[np.ndarray, list]:
    """Speech-like phrases (1.5-3 s) separated by 0.4-0.8 s pauses; returns audio and phrase regions."""
    rng = np.random.default_rng(seed)
    out = np.zeros(int(duration_s * rate))
    regions = []
    t = 0.5
    while t < duration_s - 1.0:
        length = min(rng.uniform(1.5, 3.0), duration_s - 0.5 - t)
        i0, i1 = int(t * rate), int((t + length) * rate)
        out[i0:i1] = _phrase(i1 - i0, rate, rng)
        regions.append((i0 / rate, i1 / rate))
        t += length + rng.uniform(0.4, 0.8)
    return out.astype(np.float32), regions


def pink_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(spec.size, dtype=np.float64)
    f[0] = 1.0
    x = np.fft.irfft(spec / np.sqrt(f), n)
    return x / np.std(x)


def mix_at_snr(
    clean: np.ndarray, regions: list, noise: np.ndarray, snr_db: float, rate: int = RATE, *, weighted: bool = False
) -> np.ndarray:
    """Scale ``noise`` so that speech power over ``regions`` / noise power = ``snr_db``.

    ``weighted``: both powers through the SNR's weighting (BS.1770's high shelf and a 100 Hz Butterworth
    high-pass), the SNR that :func:`snr_estimate` reports.
    """
    mask = np.zeros(clean.size, bool)
    for s, e in regions:
        mask[int(s * rate) : int(e * rate)] = True
    sos = np.vstack([kweighting_sos(sample_rate=rate)[:1], signal.butter(2, 100.0, "highpass", fs=rate, output="sos")])
    c = signal.sosfilt(sos, clean.astype(np.float64)) if weighted else clean.astype(np.float64)
    z = signal.sosfilt(sos, noise.astype(np.float64)) if weighted else noise.astype(np.float64)
    speech_power = np.mean(c[mask] ** 2)
    noise = noise / np.sqrt(np.mean(z**2)) * math.sqrt(speech_power / 10 ** (snr_db / 10))
    return (clean + noise).astype(np.float32)


def exponential_rir(t60_s: float, rate: int, rng: np.random.Generator, drr_db: float = 0.0) -> np.ndarray:
    """Gaussian noise under a 60 dB / t60_s envelope, with a direct path drr_db above the tail's energy."""
    n = int(1.2 * t60_s * rate)
    t = np.arange(n) / rate
    h = rng.standard_normal(n) * 10 ** (-3 * t / t60_s)
    h[0] = 0.0
    h[0] = math.sqrt(np.sum(h**2) * 10 ** (drr_db / 10))
    return h


@pytest.fixture(scope="module")
def speech() -> tuple[np.ndarray, list]:
    return speechlike(10.0, seed=1)


# -- SNR -----------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["white", "pink"])
@pytest.mark.parametrize("snr_db", [0, 10, 20, 30])
def test_snr_estimate_within_3_db(speech, kind, snr_db):
    clean, regions = speech
    rng = np.random.default_rng(snr_db + (100 if kind == "pink" else 0))
    noise = rng.standard_normal(clean.size) if kind == "white" else pink_noise(clean.size, rng)
    noisy = mix_at_snr(clean, regions, noise, snr_db, weighted=True)
    est = snr_estimate(noisy, sample_rate=RATE)
    assert est.noise_from in ("pauses", "dips")  # a floor, not the quietest-frames fallback
    assert abs(est.snr_db - snr_db) <= 3.0, est


def test_snr_orders_mixtures(speech):
    clean, regions = speech
    rng = np.random.default_rng(7)
    noise = rng.standard_normal(clean.size)
    values = [snr_estimate(mix_at_snr(clean, regions, noise, s), sample_rate=RATE).snr_db for s in (5, 15, 25)]
    assert values == sorted(values)


def test_snr_digital_silence_and_no_speech(speech):
    clean, _ = speech
    assert snr_estimate(clean, sample_rate=RATE).snr_db == MAX_SNR_DB  # pauses are exact zeros
    noise = np.random.default_rng(0).standard_normal(RATE * 3).astype(np.float32) * 0.01
    assert math.isnan(snr_estimate(np.zeros(RATE * 3, np.float32), sample_rate=RATE).snr_db)
    noise_only = snr_estimate(noise, sample_rate=RATE)  # stationary noise: no speech, or no speech above the noise
    assert noise_only.speech_frames == 0 or noise_only.snr_db < 10


# -- clipping and DC ---------------------------------------------------------------------------
@pytest.mark.parametrize(("fraction", "rel"), [(0.002, 0.5), (0.01, 0.2), (0.05, 0.2)])
def test_clipping_ratio_matches_construction(speech, fraction, rel):
    clean, _ = speech
    x = clean / np.max(np.abs(clean))
    level = float(np.quantile(np.abs(x), 1 - fraction))
    clipped = np.clip(x, -level, level)
    truth = float(np.mean(np.abs(x) >= level))
    rep = clipping(clipped * np.float32(0.5))  # clipped, then turned down: the rail is not full scale
    assert rep.ratio == pytest.approx(truth, rel=rel)  # single-sample overshoots look like natural peaks
    assert rep.runs > 0
    assert rep.level == pytest.approx(0.5 * level, rel=1e-5)


def test_clipping_quantized_full_scale(speech):
    clean, _ = speech
    x = np.clip(clean / np.max(np.abs(clean)) * 3.0, -1.0, 1.0)
    pcm = np.round(x * 32767) / 32767  # 16-bit at full scale
    truth = float(np.mean(np.abs(clean / np.max(np.abs(clean)) * 3.0) >= 1.0))
    assert clipping(pcm.astype(np.float32)).ratio == pytest.approx(truth, rel=0.2)


def test_clipping_absent_on_clean_signals(speech):
    clean, _ = speech
    assert clipping(clean).ratio < 1e-4
    t = np.arange(RATE) / RATE
    assert clipping(np.sin(2 * np.pi * 440 * t).astype(np.float32)).runs == 0
    assert clipping(np.zeros(1000, np.float32)).ratio == 0.0
    assert clipping(np.full(1000, 1e-5, np.float32)).ratio == 0.0  # below min_level


def test_clipping_multichannel_counts_all_channels(speech):
    clean, _ = speech
    x = clean / np.max(np.abs(clean))
    level = float(np.quantile(np.abs(x), 0.98))
    stereo = np.stack([np.clip(x, -level, level), x])
    single = clipping(np.clip(x, -level, level)).ratio
    assert clipping(stereo).ratio == pytest.approx(single / 2, rel=0.05)


def test_clipping_rejects_bad_parameters(speech):
    with pytest.raises(ConfigError, match="min_run"):
        clipping(speech[0], min_run=1)


def test_dc_offset(speech):
    clean, _ = speech
    assert abs(dc_offset(clean)) < 1e-3
    assert dc_offset(clean + np.float32(0.03)) == pytest.approx(0.03 + float(np.mean(clean)), abs=1e-6)
    assert dc_offset(np.stack([clean, clean - np.float32(0.05)])) == pytest.approx(-0.05, abs=2e-3)


# -- bandwidth ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def wideband() -> np.ndarray:
    rate = 44100
    clean, _ = speechlike(6.0, rate=rate, seed=2)
    floor = np.random.default_rng(3).standard_normal(clean.size) * 0.003  # a flat floor up to Nyquist
    return (clean + floor).astype(np.float32)


@pytest.mark.parametrize("cutoff_hz", [4000.0, 8000.0, 12000.0])
def test_bandwidth_of_lowpassed_audio(wideband, cutoff_hz):
    sos = signal.butter(12, cutoff_hz, "low", fs=44100, output="sos")
    low = signal.sosfilt(sos, wideband).astype(np.float32)
    bw = bandwidth_hz(low, sample_rate=44100)
    assert 0.85 * cutoff_hz <= bw <= 1.25 * cutoff_hz


def test_bandwidth_full_band_and_upsampled_phone(wideband):
    assert bandwidth_hz(wideband, sample_rate=44100) > 18000
    phone = soxr.resample(soxr.resample(wideband, 44100, 8000), 8000, 44100).astype(np.float32)
    assert bandwidth_hz(phone, sample_rate=44100) < 4200
    assert bandwidth_hz(np.zeros(44100, np.float32), sample_rate=44100) == 0.0


# -- reverberation ---------------------------------------------------------------------------
def test_added_reverb_is_flagged(speech):
    clean, _ = speech
    rng = np.random.default_rng(11)
    dry = clean + rng.standard_normal(clean.size).astype(np.float32) * 1e-4
    threshold = Score().warn_reverb_s
    dry_s, n_dry = reverb_decay_s(dry, sample_rate=RATE)
    assert n_dry >= 2
    assert dry_s < threshold
    decays = []
    for t60 in (0.6, 1.2):
        wet = signal.fftconvolve(dry, exponential_rir(t60, RATE, rng, drr_db=-3.0))[: dry.size]
        wet = (wet / np.max(np.abs(wet)) * 0.5).astype(np.float32)
        decays.append(reverb_decay_s(wet, sample_rate=RATE)[0])
    assert decays[0] > threshold
    assert decays[1] > decays[0]
    found = judge({"reverb_s": decays[1]}, Score())
    assert [f.code for f in found] == ["reverb.high" if decays[1] <= Score().max_reverb_s else "reverb.very_high"]


# -- music / hum -------------------------------------------------------------------------------
def test_tonal_ratio_separates_music_and_hum_from_noise(speech):
    clean, regions = speech
    rng = np.random.default_rng(5)
    t = np.arange(clean.size) / RATE
    noisy = mix_at_snr(clean, regions, rng.standard_normal(clean.size), 25)
    assert tonal_ratio(noisy, sample_rate=RATE) < 0.3
    hum = sum(np.sin(2 * np.pi * 50 * k * t) / k for k in (1, 2, 3, 4))
    assert tonal_ratio(mix_at_snr(clean, regions, hum, 15), sample_rate=RATE) > 0.5
    chords = np.zeros(clean.size)
    note = int(0.6 * RATE)
    for i0 in range(0, clean.size, note):  # a new three-note chord every 0.6 s
        root = 220 * 2 ** (rng.integers(0, 12) / 12)
        tt = t[i0 : i0 + note]
        chords[i0 : i0 + note] = sum(np.sin(2 * np.pi * root * r * tt) for r in (1, 1.26, 1.5))
    assert tonal_ratio(mix_at_snr(clean, regions, chords, 15), sample_rate=RATE) > 0.5


@pytest.mark.parametrize("size", [1, 2, 3, 8, 19, 20, 40])
def test_prominent_equals_median_filter_rule(size):
    from scipy import ndimage

    from prep.dsp.filters import prominent

    rng = np.random.default_rng(size)
    for shape in ((30, 17), (254, 60), (7,), (1, 5)):
        a = rng.standard_normal(shape) * 6.0
        a[rng.random(shape) < 0.2] = 1.5  # ties
        a = np.round(a, 1)  # more ties, and differences landing on prom_db exactly
        footprint = (size,) + (1,) * (a.ndim - 1)
        for prom_db in (0.0, 3.0, 8.0):
            expected = a - ndimage.median_filter(a, size=footprint, mode="nearest") >= prom_db
            np.testing.assert_array_equal(prominent(a, size, prom_db), expected)


def test_tonal_filters_equal_ndimage():
    from scipy import ndimage

    from prep.dsp.filters import long_runs_any, max3

    rng = np.random.default_rng(9)
    for shape in ((40, 300), (1, 20), (3, 5), (12,), (1,)):
        a = np.round(rng.standard_normal(shape), 1)
        np.testing.assert_array_equal(max3(a), ndimage.maximum_filter1d(a, 3, axis=0))
        b = rng.random(shape) < 0.5
        np.testing.assert_array_equal(max3(b), ndimage.maximum_filter1d(b.astype(np.uint8), 3, axis=0).astype(bool))
    for density in (0.5, 0.9, 0.97):
        for shape in ((40, 300), (1, 30), (5, 7), (0, 9)):
            mask = rng.random(shape) < density
            for length in (2, 3, 4, 7, 16, 31):
                expected = ndimage.binary_opening(mask, structure=np.ones((1, length), bool)).any(axis=0)
                np.testing.assert_array_equal(long_runs_any(mask, length), expected, err_msg=f"{shape} {length}")


def test_band_envelope_equals_butterworth_sosfilt():
    from prep.dsp.filters import band_envelope, butter_bandpass_zpk

    rng = np.random.default_rng(4)
    for band in ((500.0, 2000.0), (100.0, 300.0), (3000.0, 7000.0)):
        z, p, k = signal.butter(4, band, "bandpass", fs=RATE, output="zpk")
        z2, p2, k2 = butter_bandpass_zpk(band, sample_rate=RATE, order=4)
        np.testing.assert_allclose(np.sort_complex(p2), np.sort_complex(p), rtol=1e-12)
        np.testing.assert_allclose(np.sort_complex(z2), np.sort_complex(z), atol=1e-12)
        assert k2 == pytest.approx(k, rel=1e-12)
        sos = signal.butter(4, band, "bandpass", fs=RATE, output="sos")
        for n in (159, 160, 1000, 30 * RATE + 77, 61 * RATE):
            x = rng.standard_normal(n).astype(np.float32)
            x[n // 3 : n // 2] *= 1e-3  # a quiet stretch: 60 dB down
            y = signal.sosfilt(sos, x.astype(np.float64))
            hops = np.mean(y[: n // 80 * 80].reshape(-1, 80) ** 2, axis=1)
            expected = 0.5 * (hops[:-1] + hops[1:]) if n >= 160 else np.zeros(0)  # 10 ms windows every 5 ms
            peak = max(float(expected.max(initial=0)), 1)
            ours = band_envelope(x.astype(np.float64), band)  # float64 transforms
            assert ours.dtype == np.float64 and ours.shape == expected.shape
            np.testing.assert_allclose(ours, expected, rtol=1e-9, atol=1e-12 * peak)
            ours = band_envelope(x, band)  # float32 audio: float32 transforms, within 1e-6 of the peak power
            assert ours.dtype == np.float64 and ours.shape == expected.shape
            np.testing.assert_allclose(ours, expected, rtol=1e-4, atol=1e-6 * peak)
            quiet = slice(n // 3 // 80 + 2, n // 2 // 80 - 2)  # and in the quiet stretch, close to its own level
            np.testing.assert_allclose(ours[quiet], expected[quiet], rtol=1e-3, atol=1e-9 * peak)


# -- all metrics, score, verdict ---------------------------------------------------------------
def test_measure_quality_keys_and_skip(speech):
    clean, regions = speech
    noisy = mix_at_snr(clean, regions, np.random.default_rng(0).standard_normal(clean.size), 20)
    found = measure_quality(noisy, sample_rate=RATE)
    for key in ("duration_s", "speech_s", "speech_ratio", "snr_db", "clipping_ratio", "clipped_runs", "dc_offset",
                "bandwidth_hz", "reverb_s", "tonal_ratio"):
        assert key in found
    assert found["duration_s"] == pytest.approx(10.0)
    truth_speech = sum(e - s for s, e in regions)
    assert abs(found["speech_s"] - truth_speech) < 1.5
    assert "snr_db" not in measure_quality(noisy, sample_rate=RATE, skip={"snr_db"})


def test_measure_quality_survives_tiny_and_silent_clips():
    for audio in (np.zeros(0, np.float32), np.zeros(100, np.float32), np.zeros(RATE, np.float32)):
        found = measure_quality(audio, sample_rate=RATE)
        assert found["speech_s"] == 0.0
        assert found["clipping_ratio"] == 0.0


def test_score_is_100_for_clean_metrics_and_drops_with_problems():
    good = {"snr_db": 40.0, "clipping_ratio": 0.0, "bandwidth_hz": 20000.0, "reverb_s": 0.1, "tonal_ratio": 0.0,
            "speech_ratio": 0.9, "duration_s": 12.0, "dc_offset": 0.0}
    assert quality_score(good) == (100.0, {})
    assert quality_score({})[0] == 100.0  # nothing measured, nothing held against the clip
    noisy = quality_score({**good, "snr_db": 15.0})
    noisier = quality_score({**good, "snr_db": 8.0})
    assert 0 <= noisier[0] < noisy[0] < 100
    assert set(noisy[1]) == {"snr_db"}
    assert quality_score({**good, "source_snr_db": 8.0})[0] == noisier[0]  # the source SNR wins
    worst = {"snr_db": -5.0, "clipping_ratio": 0.5, "bandwidth_hz": 1000.0, "reverb_s": 3.0, "tonal_ratio": 1.0,
             "speech_ratio": 0.0, "duration_s": 0.5, "dc_offset": 0.3}
    assert quality_score(worst)[0] == 0.0


CLEAN = {"duration_s": 12.0, "speech_ratio": 0.85, "snr_db": 35.0, "clipping_ratio": 0.0, "bandwidth_hz": 16000.0,
         "reverb_s": 0.15, "tonal_ratio": 0.05, "dc_offset": 0.0}


@pytest.mark.parametrize(
    ("change", "verdict", "code", "metric", "threshold"),
    [
        ({}, "approved", None, None, None),
        ({"duration_s": 7.0}, "warning", "duration.short", "duration_s", 10.0),
        ({"duration_s": 1.0}, "rejected", "duration.too_short", "duration_s", 2.0),
        ({"speech_ratio": 0.5}, "warning", "speech.long_pauses", "speech_ratio", 0.6),
        ({"speech_ratio": 0.1}, "rejected", "speech.mostly_silence", "speech_ratio", 0.3),
        ({"snr_db": 15.0}, "warning", "snr.low", "snr_db", 20.0),
        ({"snr_db": 5.0}, "rejected", "snr.too_low", "snr_db", 10.0),
        ({"clipping_ratio": 0.003}, "warning", "clipping.light", "clipping_ratio", 0.001),
        ({"clipping_ratio": 0.05}, "rejected", "clipping.heavy", "clipping_ratio", 0.01),
        ({"bandwidth_hz": 3800.0}, "warning", "bandwidth.narrow", "bandwidth_hz", 7000.0),
        ({"bandwidth_hz": 1500.0}, "rejected", "bandwidth.muffled", "bandwidth_hz", 2000.0),
        ({"reverb_s": 0.7}, "warning", "reverb.high", "reverb_s", 0.45),
        ({"reverb_s": 2.0}, "rejected", "reverb.very_high", "reverb_s", 1.5),
        ({"tonal_ratio": 0.8}, "warning", "tonal.background", "tonal_ratio", 0.5),
        ({"dc_offset": -0.05}, "warning", "dc.offset", "dc_offset", 0.02),
        ({"dnsmos_ovrl": 2.3}, "warning", "dnsmos.low", "dnsmos_ovrl", 2.5),
        ({"dnsmos_ovrl": 1.8}, "rejected", "dnsmos.too_low", "dnsmos_ovrl", 2.0),
        ({"dnsmos_bak": 2.6}, "warning", "dnsmos.noisy", "dnsmos_bak", 3.0),
    ],
)
def test_verdict_rules(change, verdict, code, metric, threshold):
    found = judge({**CLEAN, **change}, Score())
    assert verdict_of(found) == verdict
    if code is None:
        assert found == ()
    else:
        ((_name, value),) = change.items()
        assert [(f.code, f.metric, f.value, f.threshold) for f in found] == [(code, metric, value, threshold)]
        assert found[0].severity == ("reject" if verdict == "rejected" else "warning")
        assert found[0].message


def test_verdict_prefers_source_metrics_and_puts_rejections_first():
    metrics = {**CLEAN, "snr_db": 40.0, "source_snr_db": 6.0, "duration_s": 7.0}
    found = judge(metrics, Score())
    assert verdict_of(found) == "rejected"
    assert [f.code for f in found] == ["snr.too_low", "duration.short"]
    assert found[0].value == 6.0 and "6 dB" in found[0].message  # the source value, not the output's 40
    # a clipped source stays clipped even though the processed output is clean
    assert [f.code for f in judge({**CLEAN, "source_clipping_ratio": 0.05}, Score())] == ["clipping.heavy"]


def test_judge_findings_sit_just_beyond_their_thresholds():
    """A value a hair past a threshold gets the finding, one on it does not."""
    assert judge({**CLEAN, "snr_db": 20.0}, Score()) == ()
    (low,) = judge({**CLEAN, "snr_db": 19.96}, Score())
    assert low.code == "snr.low" and "19.96 dB (< 20 dB)" in low.message
    assert judge({**CLEAN, "duration_s": 2.0}, Score())[0].code == "duration.short"
    assert judge({**CLEAN, "duration_s": 1.96}, Score())[0].code == "duration.too_short"


def test_thresholds_are_configurable_and_validated():
    assert judge({**CLEAN, "duration_s": 7.0}, Score(warn_duration_s=5.0)) == ()
    (long,) = judge({**CLEAN, "duration_s": 40.0}, Score(max_duration_s=30.0))
    assert (long.code, long.severity, long.threshold) == ("duration.long", "warning", 30.0)
    with pytest.raises(ConfigError, match="min_snr_db"):
        Score(min_snr_db=30.0, warn_snr_db=20.0)
    with pytest.raises(ConfigError, match="warn_reverb_s"):
        Score(warn_reverb_s=2.0, max_reverb_s=1.0)


# -- stages ------------------------------------------------------------------------------------------
def _clip(audio: np.ndarray, **metrics) -> Clip:
    return Clip(id="c1", source="x.wav", source_sha256="0" * 64, speaker="s", sample_rate=RATE, audio=audio,
                metrics=metrics)


def test_measure_stage_records_source_metrics_and_keeps_audio(speech):
    clean, regions = speech
    noisy = mix_at_snr(clean, regions, np.random.default_rng(1).standard_normal(clean.size), 15, weighted=True)
    out = Measure(mos=False).apply(_clip(noisy))
    assert out.audio is not None and np.array_equal(out.audio, noisy)
    assert abs(out.metrics["source_snr_db"] - 15.0) <= 3.0
    assert {"source_clipping_ratio", "source_bandwidth_hz", "source_reverb_s", "source_tonal_ratio"} <= set(out.metrics)
    # the speech it found travels with the clip, exactly the VAD's 20 ms decisions
    from prep.dsp.vad import regions_to_mask, speech_mask

    mask = regions_to_mask(out.speech, frame_s=0.02, duration_s=noisy.size / RATE)
    np.testing.assert_array_equal(mask, speech_mask(noisy, sample_rate=RATE, frame_s=0.02))
    # and measuring with those regions gives what measuring from scratch gives
    again = measure_quality(noisy, sample_rate=RATE, speech=out.speech)
    assert again["snr_db"] == pytest.approx(out.metrics["source_snr_db"])


def test_score_stage_scores_and_judges(speech):
    clean, regions = speech
    noisy = mix_at_snr(clean, regions, np.random.default_rng(2).standard_normal(clean.size), 5)
    out = Score(mos=False).apply(_clip(noisy))
    assert out.verdict == "rejected"
    assert "snr.too_low" in {f.code for f in out.findings}
    assert 0 <= out.metrics["score"] < 80
    assert math.isfinite(out.metrics["output_lufs"]) and math.isfinite(out.metrics["output_true_peak_dbtp"])
    kept = Score(mos=False).apply(_clip(clean, speech_s=1.0, speech_ratio=0.1))
    assert kept.metrics["speech_s"] == 1.0  # recorded by an earlier stage (Trim): not re-measured
    assert kept.verdict == "rejected" and "speech.mostly_silence" in {f.code for f in kept.findings}


def test_score_measures_recording_properties_only_without_source_values(speech):
    clean, _ = speech
    alone = Score(mos=False).apply(_clip(clean))
    assert {"bandwidth_hz", "reverb_s", "tonal_ratio", "snr_db"} <= set(alone.metrics)
    source = {"source_bandwidth_hz": 3000.0, "source_reverb_s": 0.2, "source_tonal_ratio": 0.1}
    after = Score(mos=False).apply(_clip(clean, **source))
    assert not {"bandwidth_hz", "reverb_s", "tonal_ratio"} & set(after.metrics)
    assert "snr_db" in after.metrics  # the output SNR shows what denoising did
    assert "bandwidth.narrow" in {f.code for f in after.findings}  # judged on the source value


def test_dnsmos_is_optional(speech):
    pytest.importorskip("speechmos", reason="checks the [mos] extra only when installed")
    scores = dnsmos(speech[0], sample_rate=RATE)
    assert scores is not None and 1.0 <= scores["dnsmos_ovrl"] <= 5.0


def test_dnsmos_absent_returns_none(speech, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_speechmos(name, *args, **kwargs):
        if name.startswith("speechmos"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_speechmos)
    assert dnsmos(speech[0], sample_rate=RATE) is None


# -- selection ---------------------------------------------------------------------------------
def _rec(cid: str, seconds: float, score: float, verdict: str = "approved", speaker: str = "s", **metrics) -> Clip:
    return Clip(id=cid, source=f"{cid}.wav", source_sha256="0" * 64, speaker=speaker, sample_rate=RATE,
                findings=findings_for(verdict), metrics={"duration_s": seconds, "score": score, **metrics})


def test_select_prefers_approved_long_clips_by_score_within_budget():
    clips = [_rec(f"a{i}", 12.0, 90 - i) for i in range(20)] + [_rec("w", 30.0, 99, "warning")]
    sel = select_clips(clips)
    assert isinstance(sel, Selection)
    assert sel.ids == [f"a{i}" for i in range(15)]  # 15 x 12 s = 180 s: the budget is full
    assert sel.total_s == pytest.approx(180.0)
    assert sel.enough and sel.notes == ()
    assert list(sel) == list(sel.clips) and len(sel) == 15


def test_select_fills_up_with_short_then_warning_clips_only_when_needed():
    clips = [
        _rec("long1", 25.0, 80), _rec("long2", 20.0, 70), _rec("short", 6.0, 95),
        _rec("warn", 15.0, 99, "warning"), _rec("bad", 40.0, 100, "rejected"), _rec("err", 40.0, 100, "error"),
    ]
    sel = select_clips(clips)
    assert sel.ids == ["long1", "long2", "short", "warn"]
    assert sel.total_s == pytest.approx(66.0)
    assert sel.enough
    enough = select_clips(clips, min_total_s=40.0)
    assert enough.ids == ["long1", "long2"]  # short and warning clips are not needed
    assert any("warnings" in n for n in sel.notes) and any("shorter than" in n for n in sel.notes)


def test_select_respects_max_clips_and_skips_overflowing_clips():
    clips = [_rec("huge", 400.0, 100)] + [_rec(f"c{i}", 10.0, 50 + i) for i in range(30)]
    sel = select_clips(clips, max_clips=5)
    assert len(sel) == 5 and "huge" not in sel.ids
    assert sel.ids == ["c29", "c28", "c27", "c26", "c25"]
    assert any("longer than" in n for n in sel.notes)


def test_select_validates_and_reports_shortfall():
    with pytest.raises(ConfigError, match="one speaker"):
        select_clips([_rec("a", 12, 90, speaker="x"), _rec("b", 12, 90, speaker="y")])
    with pytest.raises(ConfigError, match="max_clips"):
        select_clips([], max_clips=0)
    empty = select_clips([_rec("r", 12, 90, "rejected")])
    assert empty.ids == [] and not empty.enough
    assert "record more" in empty.notes[0]


def test_speaker_summary_and_consistency():
    info = InputInfo(format="wav", codec="pcm_s16", sample_rate=44100, channels=1, duration_s=12.0)
    clips = [
        dataclasses.replace(_rec("a", 12.0, 90, source_lufs=-20.0, source_bandwidth_hz=16000.0, speech_s=10.0),
                            input=info),
        dataclasses.replace(_rec("b", 12.0, 80, source_lufs=-35.0, source_bandwidth_hz=3800.0, speech_s=9.0),
                            input=info),
        _rec("c", 5.0, 20, "rejected"),
    ]
    notes = consistency(clips[:2])["notes"]
    assert any("level varies" in n for n in notes) and any("bandwidth varies" in n for n in notes)
    summary = speaker_summary(clips)
    assert summary["clips"] == 3
    assert summary["verdicts"] == {"approved": 2, "rejected": 1}
    assert summary["approved_s"] == pytest.approx(24.0)
    assert summary["approved_speech_s"] == pytest.approx(19.0)
    assert summary["selection"]["clips"] == ["a", "b"]
    assert summary["ready"] is False
    assert summary["consistency"]["sample_rates"] == [44100]


def test_source_metrics_prefer_the_source_and_take_the_worse_clipping():
    from prep.metrics import source_metrics

    metrics = {
        "source_snr_db": 12.0, "snr_db": 40.0,          # source wins
        "bandwidth_hz": 7900.0,                        # only the output measured: it stands
        "source_reverb_s": float("nan"), "reverb_s": 0.2,  # a non-finite source falls back
        "source_clipping_ratio": 1e-4, "clipping_ratio": 3e-3,
        "speech_ratio": True,                          # a bool is not a number
        "dc_offset": np.float32(0.01),                 # numpy scalars are
    }
    src = source_metrics(metrics)
    assert src["snr_db"] == 12.0
    assert src["bandwidth_hz"] == 7900.0
    assert src["reverb_s"] == 0.2
    assert src["clipping_ratio"] == 3e-3
    assert src["speech_ratio"] is None
    assert src["dc_offset"] == pytest.approx(0.01)
    assert src["tonal_ratio"] is None and src["duration_s"] is None
