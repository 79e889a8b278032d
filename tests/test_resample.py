from __future__ import annotations

import numpy as np
import pytest

from prep.clip import Clip
from prep.errors import ConfigError
from prep.stages.resample import Resample, resample


def _tone(freq: float, rate: int, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _peak_hz(x: np.ndarray, rate: int) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / rate)[np.argmax(spec)])


@pytest.mark.parametrize(("rate_in", "rate_out"), [(48000, 44100), (44100, 16000), (22050, 24000), (8000, 16000)])
def test_resample_keeps_frequency_and_length(rate_in, rate_out):
    x = _tone(1000.0, rate_in)
    y = resample(x, sample_rate=rate_in, target_sample_rate=rate_out)
    assert y.dtype == np.float32
    assert abs(len(y) - rate_out) <= 1
    assert _peak_hz(y, rate_out) == pytest.approx(1000.0, abs=2.0)
    assert np.sqrt(np.mean(y[1000:-1000] ** 2)) == pytest.approx(0.5 / np.sqrt(2), rel=0.01)


def test_resample_stereo_shape():
    x = np.stack([_tone(500, 48000), _tone(700, 48000)])
    y = resample(x, sample_rate=48000, target_sample_rate=16000)
    assert y.shape == (2, 16000) and y.flags.c_contiguous


def test_resample_rejects_bad_rates():
    with pytest.raises(ConfigError, match="sample_rate"):
        resample(np.zeros(10, np.float32), sample_rate=0, target_sample_rate=16000)
    with pytest.raises(ConfigError, match="quality"):
        resample(np.zeros(10, np.float32), sample_rate=8000, target_sample_rate=16000, quality="best")


def test_stage_never_upsamples_by_default():
    clip = Clip(id="x", source="x", source_sha256="0", speaker="s", sample_rate=16000, audio=_tone(440, 16000))
    out = Resample(target_sample_rate=44100).apply(clip)
    assert out.sample_rate == 16000 and out.audio is clip.audio
    up = Resample(target_sample_rate=44100, allow_upsample=True).apply(clip)
    assert up.sample_rate == 44100 and abs(up.audio.shape[-1] - 44100) <= 1
    down = Resample(target_sample_rate=8000).apply(clip)
    assert down.sample_rate == 8000 and down.metrics["resampled_from_hz"] == 16000
