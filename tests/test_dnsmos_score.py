"""DNSMOS in the score: source and output DNSMOS, penalty, findings, and one notice when the extra is missing."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr

from prep.clip import Clip
from prep.dsp import estimators
from prep.dsp.estimators import MOS_MISSING_NOTICE, measure_quality, mos_missing_notice
from prep.errors import ConfigError
from prep.findings import verdict_of
from prep.metrics import METRICS
from prep.run.runner import Job, run_jobs
from prep.stages.downmix import Downmix
from prep.stages.measure import Measure
from prep.stages.score import PENALTIES, Score, judge, quality_score

RATE = 16000
DEMO = Path(__file__).resolve().parents[1] / "fixtures" / "demo"
CLEAN = {"duration_s": 12.0, "speech_ratio": 0.85, "snr_db": 35.0, "clipping_ratio": 0.0, "bandwidth_hz": 16000.0,
         "reverb_s": 0.15, "tonal_ratio": 0.05, "dc_offset": 0.0}


def _has_mos() -> bool:
    return estimators.mos_available()


needs_mos = pytest.mark.skipif(not _has_mos(), reason="DNSMOS needs the [mos] extra (onnxruntime, speechmos)")


# -- the score and the verdict (no model needed) --------------------------------------------------
def test_dnsmos_ovrl_costs_up_to_20_points_between_3_3_and_2():
    assert PENALTIES["dnsmos_ovrl"] == (3.3, 2.0, 20.0)
    assert quality_score({**CLEAN, "dnsmos_ovrl": 3.4}) == (100.0, {})
    score, penalties = quality_score({**CLEAN, "dnsmos_ovrl": 2.65})
    assert penalties == {"dnsmos_ovrl": 10.0} and score == 90.0
    assert quality_score({**CLEAN, "dnsmos_ovrl": 1.2})[1] == {"dnsmos_ovrl": 20.0}
    # the source value is what counts; without any DNSMOS the model-free score stands
    assert quality_score({**CLEAN, "dnsmos_ovrl": 3.4, "source_dnsmos_ovrl": 2.65})[0] == 90.0
    assert quality_score(CLEAN)[0] == 100.0


@pytest.mark.parametrize(
    ("change", "verdict", "codes"),
    [
        ({"dnsmos_ovrl": 3.2, "dnsmos_bak": 4.0}, "approved", []),
        ({"dnsmos_ovrl": 2.3}, "warning", ["dnsmos.low"]),
        ({"dnsmos_ovrl": 1.8}, "rejected", ["dnsmos.too_low"]),
        ({"dnsmos_bak": 2.6}, "warning", ["dnsmos.noisy"]),
        ({"dnsmos_ovrl": 1.5, "dnsmos_bak": 1.4}, "rejected", ["dnsmos.too_low", "dnsmos.noisy"]),
        # the source is judged: a clean output of a noisy recording is still held against it
        ({"dnsmos_ovrl": 3.2, "source_dnsmos_ovrl": 1.9}, "rejected", ["dnsmos.too_low"]),
        ({"dnsmos_bak": 4.0, "source_dnsmos_bak": 2.5}, "warning", ["dnsmos.noisy"]),
    ],
)
def test_dnsmos_findings(change, verdict, codes):
    found = judge({**CLEAN, **change}, Score())
    assert verdict_of(found) == verdict
    assert [f.code for f in found] == codes
    for f in found:
        assert f.metric in ("dnsmos_ovrl", "dnsmos_bak") and f.message


def test_dnsmos_thresholds_are_validated_and_can_be_turned_off():
    with pytest.raises(ConfigError, match="min_dnsmos_ovrl"):
        Score(min_dnsmos_ovrl=3.0, warn_dnsmos_ovrl=2.5)
    with pytest.raises(ConfigError, match="warn_dnsmos_bak"):
        Score(warn_dnsmos_bak=6.0)
    with pytest.raises(ConfigError, match="min_dnsmos_ovrl"):
        Score(min_dnsmos_ovrl=-1.0)
    off = Score(min_dnsmos_ovrl=0.0, warn_dnsmos_ovrl=0.0, warn_dnsmos_bak=0.0)
    assert judge({**CLEAN, "dnsmos_ovrl": 1.1, "dnsmos_bak": 1.1}, off) == ()


def test_source_dnsmos_is_declared_as_the_pair_of_the_output():
    for part in ("ovrl", "sig", "bak"):
        m = METRICS[f"source_dnsmos_{part}"]
        assert (m.unit, m.scope, m.written_by, m.output_pair) == ("MOS", "source", ("measure_input",), f"dnsmos_{part}")


# -- the notice when the extra is missing ---------------------------------------------------------
def _speechlike(seconds: float, seed: int) -> np.ndarray:
    """Noise bursts shaped like phrases: enough for the VAD; DNSMOS is never run on it here."""
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    env = (np.sin(2 * np.pi * 0.5 * np.arange(n) / RATE) > 0).astype(np.float32)
    tone = np.sin(2 * np.pi * 180 * np.arange(n) / RATE) * (1 + 0.5 * np.sin(2 * np.pi * 4 * np.arange(n) / RATE))
    return (0.2 * env * tone + 0.002 * rng.standard_normal(n)).astype(np.float32)


def test_mos_missing_notice_only_when_a_stage_wants_dnsmos(monkeypatch):
    monkeypatch.setattr(estimators, "mos_available", lambda: False)
    assert mos_missing_notice([Measure(), Score()]) == MOS_MISSING_NOTICE
    assert "pip install 'voiceprep[mos]'" in MOS_MISSING_NOTICE
    assert mos_missing_notice([Measure(mos=False), Score(mos=False)]) is None
    monkeypatch.setattr(estimators, "mos_available", lambda: True)
    assert mos_missing_notice([Measure(), Score()]) is None


def test_a_run_without_dnsmos_says_so_once(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(estimators, "mos_available", lambda: False)
    jobs = []
    for i in range(2):
        path = tmp_path / f"in{i}.wav"
        sf.write(path, _speechlike(4.0, i), RATE)
        jobs.append(Job(str(path), "spk"))
    with caplog.at_level(logging.INFO):
        clips = run_jobs(jobs, (Downmix(), Measure(), Score()), out_dir=tmp_path / "out")
    notices = [r for r in caplog.records if "voiceprep[mos]" in r.getMessage()]
    assert len(notices) == 1 and notices[0].levelno == logging.WARNING
    assert len({c.source for c in clips}) == 2
    for clip in clips:  # scored without DNSMOS
        assert "score" in clip.metrics
        assert not any(name.startswith(("dnsmos", "source_dnsmos")) for name in clip.metrics)


def test_check_without_dnsmos_says_so_once(tmp_path, monkeypatch, caplog, capsys):
    from prep.cli import main

    monkeypatch.setattr(estimators, "mos_available", lambda: False)
    paths = []
    for i in range(2):
        paths.append(tmp_path / f"in{i}.wav")
        sf.write(paths[-1], _speechlike(3.0, i), RATE)
    with caplog.at_level(logging.INFO):
        main(["check", *map(str, paths)])
    assert len(capsys.readouterr().out.strip().splitlines()) == 2
    assert sum("voiceprep[mos]" in r.getMessage() for r in caplog.records) == 1


def test_dnsmos_missing_is_silent_per_clip(monkeypatch, caplog):
    """What a worker does per clip: nothing recorded, nothing said (the run's parent says it once)."""
    monkeypatch.setattr(estimators, "mos_available", lambda: False)
    with caplog.at_level(logging.DEBUG):
        found = measure_quality(_speechlike(2.0, 0), sample_rate=RATE, mos=True)
    assert "dnsmos_ovrl" not in found
    assert caplog.records == []


# -- with the extra: a clean clip and the same clip in heavy noise ------------------------------
@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    """8 s of espeak speech (alice a01: 30 dB pink noise) at 16 kHz: one DNSMOS window."""
    data, rate = sf.read(str(DEMO / "alice" / "a01.wav"), dtype="float32", always_2d=True)
    return soxr.resample(data.mean(axis=1), rate, RATE).astype(np.float32)[: 8 * RATE]


def _scored(audio: np.ndarray) -> Clip:
    clip = Clip(id="c", source="x.wav", source_sha256="0" * 64, speaker="s", sample_rate=RATE, audio=audio)
    return Score().apply(Measure(context_s=0.0).apply(clip))


@needs_mos
def test_heavy_noise_lowers_dnsmos_and_the_score(speech):
    rng = np.random.default_rng(0)
    noise = rng.standard_normal(speech.size).astype(np.float32)
    noise *= np.sqrt(np.mean(speech**2) / np.mean(noise**2) / 10 ** (5 / 10))  # 5 dB SNR over the whole clip
    clean, noisy = _scored(speech), _scored(speech + noise)
    for clip in (clean, noisy):  # source (measure_input) and output (score) DNSMOS are both recorded
        for part in ("ovrl", "sig", "bak"):
            assert 1.0 <= clip.metrics[f"source_dnsmos_{part}"] <= 5.0
            assert 1.0 <= clip.metrics[f"dnsmos_{part}"] <= 5.0
    assert noisy.metrics["source_dnsmos_ovrl"] < clean.metrics["source_dnsmos_ovrl"] - 0.5
    assert noisy.metrics["source_dnsmos_bak"] < clean.metrics["source_dnsmos_bak"] - 1.0
    clean_codes = {f.code for f in clean.findings}
    noisy_codes = {f.code for f in noisy.findings}
    assert not {c for c in clean_codes if c.startswith("dnsmos.")}
    assert {"dnsmos.too_low", "dnsmos.noisy"} <= noisy_codes
    assert noisy.metrics["score_penalties"]["dnsmos_ovrl"] > clean.metrics["score_penalties"].get("dnsmos_ovrl", 0.0)
    assert noisy.metrics["score"] < clean.metrics["score"]
