"""Sample-rate conversion with soxr."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import soxr

from ..audio import as_audio, check_sample_rate
from ..clip import Clip
from ..errors import ConfigError

__all__ = ["resample", "Resample"]

_QUALITIES = ("QQ", "LQ", "MQ", "HQ", "VHQ")


def resample(audio: np.ndarray, *, sample_rate: int, target_sample_rate: int, quality: str = "HQ") -> np.ndarray:
    """Resample with soxr.

    Parameters
    ----------
    audio : np.ndarray, shape (samples,) or (channels, samples)
    sample_rate : int
        Rate of ``audio`` in Hz.
    target_sample_rate : int
        Output rate in Hz.
    quality : {"QQ", "LQ", "MQ", "HQ", "VHQ"}
        soxr quality recipe.

    Returns
    -------
    np.ndarray, float32, shape (samples',) or (channels, samples')
    """
    rate_in = check_sample_rate(sample_rate)
    rate_out = check_sample_rate(target_sample_rate)
    if quality not in _QUALITIES:
        raise ConfigError(f"quality must be one of {_QUALITIES}, got {quality!r}")
    x = as_audio(audio)
    if rate_in == rate_out or x.shape[-1] == 0:
        return x
    # soxr wants (frames, channels); convert at this edge only.
    y = soxr.resample(x.T, rate_in, rate_out, quality=quality)
    return np.ascontiguousarray(y.T, dtype=np.float32)


@dataclass(frozen=True)
class Resample:
    """Pipeline stage: resample to ``target_sample_rate`` (never up unless ``allow_upsample``)."""

    name: ClassVar[str] = "resample"
    changes: ClassVar[frozenset[str]] = frozenset({"audio", "sample_rate"})  # speech stays where it was
    target_sample_rate: int = 44100
    allow_upsample: bool = False
    quality: str = "HQ"

    def apply(self, clip: Clip) -> Clip:
        audio = clip.require_audio()
        rate = self.target_sample_rate
        if rate > clip.sample_rate and not self.allow_upsample:
            return clip.with_metrics(resampled_from_hz=None)
        audio = resample(audio, sample_rate=clip.sample_rate, target_sample_rate=rate, quality=self.quality)
        return dataclasses.replace(clip, audio=audio, sample_rate=rate).with_metrics(resampled_from_hz=clip.sample_rate)
