"""The ``measure_input`` stage: the source's quality before processing changes it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

from ..audio import mix_to_mono
from ..clip import Clip
from ..dsp.estimators import VAD_FRAME_S, measure_quality, vad_mask

__all__ = ["Measure"]
#: Metrics :class:`Measure` records (with the ``input_`` prefix).
INPUT_METRICS = ("snr_db", "clipping_ratio", "clipped_runs", "dc_offset", "bandwidth_hz", "reverb_s", "tonal_ratio")


@dataclass(frozen=True)
class Measure:
    """Pipeline stage: record the source's quality as ``input_*`` metrics; the audio is unchanged.

    Put it right after :class:`~prep.stages.downmix.Downmix`, before resampling,
    trimming, denoising and loudness: ``input_snr_db``,
    ``input_clipping_ratio``, ``input_clipped_runs``, ``input_dc_offset``,
    ``input_bandwidth_hz``, ``input_reverb_s``, ``input_tonal_ratio``.
    The speech regions it finds are kept on the clip
    (:attr:`~prep.clip.Clip.speech`) for :class:`~prep.stages.denoise.Denoise`.
    """

    name: ClassVar[str] = "measure_input"
    changes: ClassVar[frozenset[str]] = frozenset()  # metrics and speech regions only (see run_stages)

    def apply(self, clip: Clip) -> Clip:
        from ..dsp.vad import mask_to_regions

        audio = clip.require_audio()
        rate = clip.sample_rate
        speech = clip.speech
        if speech is None:  # found once here; Denoise uses the same regions
            mono = mix_to_mono(audio)
            mask = vad_mask(mono, sample_rate=rate)
            speech = tuple(mask_to_regions(mask, frame_s=VAD_FRAME_S, duration_s=mono.size / float(rate)))
        found = measure_quality(audio, sample_rate=rate, skip={"dnsmos_ovrl"}, speech=speech)
        measured = clip.with_metrics(**{f"input_{k}": found[k] for k in INPUT_METRICS})
        return dataclasses.replace(measured, speech=speech)
