"""The ``measure_input`` stage: the source's quality before processing changes it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

from ..audio import mix_to_mono
from ..clip import Clip
from ..dsp.estimators import VAD_FRAME_S, measure_quality, vad_mask
from ..metrics import source_name

__all__ = ["Measure"]
#: Quality metrics :class:`Measure` records on the source, as their ``source_*`` pair (see
#: :func:`prep.metrics.source_name`).
INPUT_METRICS = ("snr_db", "clipping_ratio", "clipped_runs", "dc_offset", "bandwidth_hz", "reverb_s", "tonal_ratio")


@dataclass(frozen=True)
class Measure:
    """Pipeline stage: record the source's quality as ``source_*`` metrics; the audio is unchanged.

    Put it right after :class:`~prep.stages.downmix.Downmix`, before resampling,
    trimming, denoising and loudness: ``source_snr_db``,
    ``source_clipping_ratio``, ``source_clipped_runs``, ``source_dc_offset``,
    ``source_bandwidth_hz``, ``source_reverb_s``, ``source_tonal_ratio`` and
    ``source_lufs`` (BS.1770-4 integrated loudness of the downmixed source).
    The speech regions it finds are kept on the clip
    (:attr:`~prep.clip.Clip.speech`) for :class:`~prep.stages.denoise.Denoise`.
    """

    name: ClassVar[str] = "measure_input"
    keeps_timing: ClassVar[bool] = True  # speech stays where it was (see run_stages)

    def apply(self, clip: Clip) -> Clip:
        from ..dsp.loudness import integrated_loudness
        from ..dsp.vad import mask_to_regions

        audio = clip.require_audio()
        rate = clip.sample_rate
        speech = clip.speech
        if speech is None:  # found once here; Denoise uses the same regions
            mono = mix_to_mono(audio)
            mask = vad_mask(mono, rate)
            speech = tuple(mask_to_regions(mask, frame_s=VAD_FRAME_S, duration_s=mono.size / float(rate)))
        found = measure_quality(audio, rate, skip={"dnsmos_ovrl"}, speech=speech)
        source = {source_name(k) or k: found[k] for k in INPUT_METRICS}
        source["source_lufs"] = integrated_loudness(audio, rate)
        measured = clip.with_metrics(**source)
        return dataclasses.replace(measured, speech=speech)
