"""prep.dsp.dnsmos: DNSMOS on onnxruntime agrees with speechmos, and a changed model file is refused."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr
from speechlike import colored_noise, mix

pytest.importorskip("onnxruntime", reason="DNSMOS needs the [mos] extra (onnxruntime)")
pytest.importorskip("speechmos", reason="DNSMOS needs the [mos] extra (speechmos models)")

from prep.dsp.dnsmos import (
    DNSMOS_MODEL,
    WINDOW_SAMPLES,
    _first_conv_as_matmul,
    _variable_length_p835,
    calibration_windows,
    dnsmos_scores,
    mel_features,
    quantized_p835,
    rescores_short,
    short_input_samples,
    window_starts,
)
from prep.dsp.estimators import dnsmos
from prep.errors import ConfigError
from prep.models import BundledModel, ModelError

RATE = 16000
DEMO = Path(__file__).resolve().parents[1] / "fixtures" / "demo"
AGREE_OVRL = 0.3


def _demo(name: str) -> np.ndarray:
    data, rate = sf.read(str(DEMO / name), dtype="float32", always_2d=True)
    return soxr.resample(data.mean(axis=1), rate, RATE).astype(np.float32)


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    """espeak-ng speech (alice a01, 30 dB pink noise), ~13 s at 16 kHz."""
    return _demo("alice/a01.wav")


def _reference(x: np.ndarray) -> dict[str, float]:
    from speechmos import dnsmos as ref

    out = ref.run(np.clip(x, -1, 1).astype(np.float32), RATE)
    return {k: float(v) for k, v in out.items()}


def _check_agreement(x: np.ndarray) -> None:
    ours = dnsmos_scores(x, sample_rate=RATE)
    ref = _reference(x)
    assert ours is not None
    assert abs(ours.ovrl - ref["ovrl_mos"]) <= AGREE_OVRL, (ours, ref)
    assert abs(ours.sig - ref["sig_mos"]) <= 0.4, (ours, ref)
    assert abs(ours.bak - ref["bak_mos"]) <= 0.4, (ours, ref)
    assert abs(ours.p808 - ref["p808_mos"]) <= 0.3, (ours, ref)


# -- features --------------------------------------------------------------------------------
def test_mel_features_match_librosa():
    librosa = pytest.importorskip("librosa", reason="librosa is the peer of the numpy mel spectrogram")
    rng = np.random.default_rng(0)
    y = (rng.standard_normal(WINDOW_SAMPLES - 160) * 0.05).astype(np.float32)
    y[40000:60000] *= 10  # a loud part: the dB range and top_db clamp matter
    mel = librosa.feature.melspectrogram(y=y, sr=RATE, n_fft=321, hop_length=160, n_mels=120)
    ref = ((librosa.power_to_db(mel, ref=np.max) + 40) / 40).T
    ours = mel_features(y)
    assert ours.shape == ref.shape == (900, 120)
    np.testing.assert_allclose(ours, ref, atol=1e-4)


def test_windows_do_not_overlap():
    assert window_starts(WINDOW_SAMPLES) == [0]
    assert window_starts(WINDOW_SAMPLES + RATE // 2) == [0]  # < 1 s left: ignored, as the reference does
    n = 40 * RATE
    starts = window_starts(n)
    assert starts[:4] == [0, WINDOW_SAMPLES, 2 * WINDOW_SAMPLES, 3 * WINDOW_SAMPLES]
    assert starts[-1] == 30 * RATE  # the reference's last window (1 s hop: 0, 1, ..., 30 s); the last 0.99 s unscored
    assert len(starts) == 5  # the reference's 1 s hop needs 31 windows
    assert window_starts(int(10.9 * RATE)) == [0]  # the reference scores 10.9 s as its first 9.01 s only
    assert window_starts(11 * RATE) == [0, RATE]  # its windows at 0 and 1 s
    assert window_starts(19 * RATE) == [0, WINDOW_SAMPLES]  # 0-18.02 s covers its windows at 0..9 s
    with pytest.raises(ValueError):
        window_starts(WINDOW_SAMPLES - 1)


# -- agreement with speechmos ------------------------------------------------------------------
def test_agrees_with_speechmos_on_espeak_speech(speech):
    _check_agreement(speech)


@pytest.mark.parametrize(("kind", "snr_db"), [("white", 5.0), ("pink", 15.0)])
def test_agrees_with_speechmos_on_noisy_speech(speech, kind, snr_db):
    noise = colored_noise(speech.size, seed=3, exponent=0.0 if kind == "white" else 1.0)
    noisy = mix(speech, noise, snr_db)
    noisy *= np.float32(0.9 / max(1.0, float(np.max(np.abs(noisy)))))
    _check_agreement(noisy)
    clean = dnsmos_scores(speech, sample_rate=RATE)
    assert dnsmos_scores(noisy, sample_rate=RATE).bak < clean.bak  # noise lowers the background score


def test_agrees_with_speechmos_on_short_clip(speech):
    short = speech[RATE : 4 * RATE]  # 3 s: repeated to 9.01 s as the reference does
    _check_agreement(short)
    assert dnsmos_scores(short, sample_rate=RATE).windows == 1


@pytest.mark.parametrize(("start_s", "length_s", "snr_db"), [(0.5, 1.5, None), (2.0, 4.5, 10.0), (1.0, 7.0, None),
                                                        (0.0, 8.5, 5.0), (1.0, 7.3, 5.0)])
def test_agrees_with_speechmos_on_short_audio(speech, start_s, length_s, snr_db):
    """Short clips (most TTS clips) take the shorter P.835 input and still agree with the reference."""
    clip = speech[int(start_s * RATE) : int((start_s + length_s) * RATE)]
    if snr_db is not None:
        clip = mix(clip, colored_noise(clip.size, seed=7, exponent=1.0), snr_db)
        clip *= np.float32(0.9 / max(1.0, float(np.max(np.abs(clip)))))
    _check_agreement(clip)


# -- the short-clip path -------------------------------------------------------------------------
def test_short_input_length_follows_the_frame_grid():
    # 160 * (F + 1) samples make F frames of 320 samples at a 160-sample hop
    assert short_input_samples(48000, 0.0) == 48000  # 3 s: 299 frames cover every sample
    assert short_input_samples(48001, 0.0) == 48160  # one sample more: one frame more
    assert short_input_samples(48000, 6.0) == 96000  # looped to the minimum
    assert short_input_samples(8000, 20.0) == WINDOW_SAMPLES  # never more than a window
    assert short_input_samples(WINDOW_SAMPLES - 1, 0.0) == WINDOW_SAMPLES
    with pytest.raises(ConfigError, match=r"-1\.0"):
        short_input_samples(48000, -1.0)


def test_short_clip_is_scored_on_its_own_length_looped_to_the_minimum(speech):
    clip = speech[RATE : 4 * RATE]  # 3 s
    fields = ("ovrl", "sig", "bak", "p808")

    def scores(x: np.ndarray, min_s: float) -> tuple[float, ...]:
        out = dnsmos_scores(x, sample_rate=RATE, short_min_s=min_s, short_rescore_below=0.0)
        assert out is not None and out.windows == 1
        return tuple(getattr(out, f) for f in fields)

    # looped to 6 s: the same as scoring two copies of the clip
    assert scores(clip, 6.0) == scores(np.tile(clip, 2), 6.0)
    # 9.01 s: the reference's loop (the clip doubled until long enough), scored as one whole window
    assert scores(clip, 9.01) == scores(np.tile(clip, 4)[:WINDOW_SAMPLES], 9.01)
    # a 7 s clip is longer than the 6 s minimum: its own length, not looped
    seven = speech[: 7 * RATE]
    assert scores(seven, 6.0) == scores(seven, 0.0)
    own, loop = scores(clip, 0.0), scores(clip, 9.01)
    assert own[:3] != loop[:3]  # another input really was scored
    assert all(abs(a - b) < 0.5 for a, b in zip(own, loop, strict=True))


def test_short_min_s_is_checked(speech):
    with pytest.raises(ConfigError, match="nan"):
        dnsmos_scores(speech[: 2 * RATE], sample_rate=RATE, short_min_s=float("nan"))
    with pytest.raises(ConfigError, match=r"-0\.5"):
        dnsmos_scores(speech[: 2 * RATE], sample_rate=RATE, short_rescore_below=-0.5)


def _noisy(clip: np.ndarray, snr_db: float, exponent: float) -> np.ndarray:
    out = mix(clip, colored_noise(clip.size, seed=7, exponent=exponent), snr_db)
    return out * np.float32(0.9 / max(1.0, float(np.max(np.abs(out)))))


def test_rescore_rule_reads_ovrl_and_bak():
    assert rescores_short(1.9, 3.5) and rescores_short(3.0, 1.9)  # either below the default 2.0
    assert not rescores_short(2.0, 2.0)
    assert not rescores_short(1.0, 1.0, 0.0)  # 0 turns the second stage off
    assert rescores_short(3.0, 3.5, 3.2)


@pytest.mark.parametrize(("length_s", "snr_db", "exponent"), [(5.3, 5.0, 1.0), (5.3, 5.0, 0.0)])
def test_noisy_short_clip_is_rescored_on_the_loop_and_moves_towards_speechmos(speech, length_s, snr_db, exponent):
    """A noisy short clip (first OVRL/BAK below 2) takes the 9.01 s loop's P.835 scores, which the
    reference's are closer to than the shorter input's (on these clips the first stage is 0.13-0.17 low)."""
    clip = _noisy(speech[: int(length_s * RATE)], snr_db, exponent)
    first = dnsmos_scores(clip, sample_rate=RATE, short_rescore_below=0.0)
    rule = dnsmos_scores(clip, sample_rate=RATE)
    loop = dnsmos_scores(clip, sample_rate=RATE, short_min_s=9.01, short_rescore_below=0.0)
    assert first is not None and rule is not None and loop is not None
    assert not first.rescored and not loop.rescored
    assert min(first.ovrl, first.bak) < 2.0 and rule.rescored and rule.windows == 1
    assert (rule.ovrl, rule.sig, rule.bak, rule.p808) == (loop.ovrl, loop.sig, loop.bak, loop.p808)
    assert rule.p808 == first.p808  # P.808 reads the loop either way
    ref = _reference(clip)["ovrl_mos"]
    assert abs(rule.ovrl - ref) <= AGREE_OVRL
    assert abs(rule.ovrl - ref) < abs(first.ovrl - ref) - 0.05


def test_clean_short_clip_is_not_rescored(speech):
    clip = speech[RATE : 6 * RATE]  # 5 s, 30 dB pink noise in the fixture: OVRL and BAK well above 2
    out = dnsmos_scores(clip, sample_rate=RATE)
    assert out is not None and min(out.ovrl, out.bak) >= 2.0 and not out.rescored
    forced = dnsmos_scores(clip, sample_rate=RATE, short_rescore_below=5.0)  # every clip is below 5
    assert forced is not None and forced.rescored and forced.ovrl != out.ovrl


def test_agrees_with_speechmos_on_40_s_clip():
    parts = [_demo(f"alice/{name}") for name in ("a01.wav", "a02.flac", "a06.ogg")]
    long = np.concatenate(parts)[: 40 * RATE]
    assert long.size == 40 * RATE
    _check_agreement(long)
    assert dnsmos_scores(long, sample_rate=RATE).windows == 5


def test_any_rate_and_channels(speech):
    at16 = dnsmos_scores(speech, sample_rate=RATE)
    at48 = dnsmos_scores(np.stack([speech, speech]).repeat(3, axis=1), sample_rate=3 * RATE)  # crude 48 kHz copy
    assert at48 is not None and abs(at48.ovrl - at16.ovrl) < 0.3
    assert dnsmos_scores(speech[: RATE // 4], sample_rate=RATE) is None  # too short to judge


def test_estimators_dnsmos_keeps_its_keys(speech):
    scores = dnsmos(speech, sample_rate=RATE)
    assert set(scores) == {"dnsmos_ovrl", "dnsmos_sig", "dnsmos_bak", "dnsmos_p808"}
    assert all(1.0 <= v <= 5.0 for v in scores.values())
    without = dnsmos(speech, sample_rate=RATE, p808=False)  # the source span's P.808 is not needed
    assert set(without) == {"dnsmos_ovrl", "dnsmos_sig", "dnsmos_bak"}
    assert all(without[k] == scores[k] for k in without)  # P.835 scores do not depend on it
    assert np.isnan(dnsmos_scores(speech, sample_rate=RATE, p808=False).p808)


# -- model files -------------------------------------------------------------------------------
def test_pinned_hashes_match_installed_files():
    dist = metadata.distribution("speechmos")
    for rel, sha in DNSMOS_MODEL.files.items():
        assert hashlib.sha256(Path(str(dist.locate_file(rel))).read_bytes()).hexdigest() == sha


def test_corrupted_model_copy_is_refused(tmp_path, speech):
    dist = metadata.distribution("speechmos")
    root = Path(str(dist.locate_file(""))).resolve()
    copies = {}
    for i, (rel, sha) in enumerate(DNSMOS_MODEL.files.items()):
        dst = tmp_path / Path(rel).name
        shutil.copyfile(Path(str(dist.locate_file(rel))), dst)
        if i == 0:  # flip one byte of the P.835 model
            data = bytearray(dst.read_bytes())
            data[len(data) // 2] ^= 0xFF
            dst.write_bytes(bytes(data))
        copies[os.path.relpath(dst, root)] = sha
    corrupted = BundledModel(name="DNSMOS test copy", distribution="speechmos", version=DNSMOS_MODEL.version,
                             files=copies, extra="mos")
    with pytest.raises(ModelError, match=r"DNSMOS test copy: .*SHA-256 .*corrupted or replaced"):
        dnsmos_scores(speech, sample_rate=RATE, model=corrupted)


def test_other_version_is_refused(speech):
    other = BundledModel(name="DNSMOS", distribution="speechmos", version="9.9.9", files=DNSMOS_MODEL.files,
                         extra="mos")
    with pytest.raises(ModelError, match=r"9\.9\.9"):
        dnsmos_scores(speech, sample_rate=RATE, model=other)


# -- the int8 P.835 model ----------------------------------------------------------------------
def _float_p835() -> tuple[Path, str]:
    dist = metadata.distribution("speechmos")
    rel, sha = next(iter(DNSMOS_MODEL.files.items()))
    return Path(str(dist.locate_file(rel))).resolve(), sha


def _run(model: bytes | str, window: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 3
    session = ort.InferenceSession(model, sess_options=opts, providers=["CPUExecutionProvider"])
    return session.run(None, {"input_1": window[np.newaxis]})[0][0]


def test_first_conv_rewrite_computes_the_same_model(speech):
    onnx = pytest.importorskip("onnx")
    src, _ = _float_p835()
    rewritten = _first_conv_as_matmul(onnx.load(str(src)))
    assert not any(node.name == "conv2d" for node in rewritten.graph.node)
    window = speech[:WINDOW_SAMPLES]
    np.testing.assert_allclose(_run(rewritten.SerializeToString(), window), _run(str(src), window), atol=1e-4)


def test_variable_length_model_is_the_original_on_a_window_and_takes_shorter_input(speech):
    onnx = pytest.importorskip("onnx")
    src, _ = _float_p835()
    variable = _variable_length_p835(onnx.load(str(src))).SerializeToString()
    window = speech[:WINDOW_SAMPLES]
    np.testing.assert_allclose(_run(variable, window), _run(str(src), window), atol=1e-6)
    whole = _run(variable, window)
    for length in (16000, 48160, 100000):  # 1 s, 3 s and 6.25 s of speech (multiples of the 160-sample hop)
        raw = _run(variable, speech[RATE : RATE + length])
        assert raw.shape == (3,) and np.all((raw > 1.0) & (raw < 5.0)), raw  # raw MOS-like outputs
        assert not np.array_equal(raw, whole)


@pytest.mark.parametrize(("kind", "snr_db"), [("clean", None), ("white", 0.0), ("pink", 10.0)])
def test_int8_model_agrees_with_float_model(speech, kind, snr_db):
    x = speech
    if snr_db is not None:
        x = mix(speech, colored_noise(speech.size, seed=5, exponent=0.0 if kind == "white" else 1.0), snr_db)
        x *= np.float32(0.9 / max(1.0, float(np.max(np.abs(x)))))
    q = dnsmos_scores(x, sample_rate=RATE)
    f = dnsmos_scores(x, sample_rate=RATE, quantized=False)
    assert abs(q.ovrl - f.ovrl) <= 0.15, (q, f)
    assert abs(q.sig - f.sig) <= 0.2, (q, f)
    assert abs(q.bak - f.bak) <= 0.2, (q, f)
    assert q.p808 == pytest.approx(f.p808, abs=1e-5)  # the P.808 model stays float


def test_calibration_audio_is_deterministic():
    a, b = calibration_windows(), calibration_windows()
    assert len(a) == 10 and all(w.shape == (WINDOW_SAMPLES,) and w.dtype == np.float32 for w in a)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert max(float(np.max(np.abs(w))) for w in a) == pytest.approx(0.9)


def test_int8_model_is_made_once_then_hash_checked(tmp_path, monkeypatch):
    pytest.importorskip("onnx")
    monkeypatch.setenv("VOICEPREP_CACHE", str(tmp_path))
    src, sha = _float_p835()
    first = quantized_p835(src, sha)
    (model_file,) = (tmp_path / "models" / "dnsmos-int8").glob("*.onnx")
    meta = json.loads(model_file.with_suffix(".json").read_text())
    assert meta["source_sha256"] == sha and meta["sha256"] == hashlib.sha256(first).hexdigest()
    assert not list(model_file.parent.glob(".*.tmp"))
    mtime = model_file.stat().st_mtime_ns
    assert quantized_p835(src, sha) == first and model_file.stat().st_mtime_ns == mtime  # read, not remade
    model_file.write_bytes(first[:-10] + b"0123456789")  # corrupted in the cache
    again = quantized_p835(src, sha)
    assert hashlib.sha256(again).hexdigest() == json.loads(model_file.with_suffix(".json").read_text())["sha256"]
    assert model_file.read_bytes() == again
    window = calibration_windows()[3]
    np.testing.assert_allclose(_run(again, window), _run(first, window), atol=1e-6)  # remade: the same model


def test_unwritable_cache_still_gives_the_int8_model(tmp_path, monkeypatch, caplog):
    pytest.importorskip("onnx")
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv("VOICEPREP_CACHE", str(blocker))
    src, sha = _float_p835()
    data = quantized_p835(src, sha)
    assert "cannot cache the int8 DNSMOS model" in caplog.text
    window = calibration_windows()[0]
    assert np.abs(_run(data, window) - _run(str(src), window)).max() < 0.2  # a working int8 model
