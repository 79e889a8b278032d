"""The ``measure_input`` stage: the source's quality before processing changes it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

from ..audio import mix_to_mono
from ..clip import Clip
from ..dsp.estimators import VAD_FRAME_S, loudness_and_frame_powers, measure_quality, vad_mask
from ..errors import ConfigError
from ..metrics import source_name

__all__ = ["Measure"]
#: Quality metrics :class:`Measure` records on the source, as their ``source_*`` pair (see
#: :func:`prep.metrics.source_name`).
INPUT_METRICS = ("snr_db", "clipping_ratio", "clipped_runs", "dc_offset", "bandwidth_hz", "reverb_s", "tonal_ratio")
#: DNSMOS scores :class:`Measure` records on the source (``Measure.mos``, with the ``[mos]`` extra).
INPUT_DNSMOS = ("dnsmos_ovrl", "dnsmos_sig", "dnsmos_bak")


@dataclass(frozen=True)
class Measure:
    """Pipeline stage: record the source's quality over the clip's span as ``source_*`` metrics (audio unchanged).

    ``source_snr_db``, ``source_clipping_ratio``, ``source_clipped_runs``,
    ``source_dc_offset``, ``source_bandwidth_hz``, ``source_reverb_s``,
    ``source_tonal_ratio``, ``source_lufs`` (BS.1770-4 integrated loudness)
    and, with the ``[mos]`` extra, ``source_dnsmos_ovrl``/``_sig``/``_bak``
    are measured on the clip's own stretch of the source: ``clip.source_audio``
    (the downmixed source at the source rate,
    before resampling, denoising and loudness, carried from
    :class:`~prep.stages.downmix.Downmix` or the long-file piece) from
    ``span_s[0]`` to ``span_s[1]``, cut pauses included.  Put it after
    :class:`~prep.stages.slice.Slice`, so each slice of a long recording is
    judged on its own audio, not on the whole recording's.

    The VAD runs on each clip's stretch of the source (one pass over the
    source in all): its decisions depend on the level of what it sees, so
    regions found over a whole recording call its noisy half speech when the
    other half is clean.  A clip without ``source_audio`` is measured on its
    audio as it is (then put the stage right after the downmix), with its
    :attr:`~prep.clip.Clip.speech` if known.  When the measured audio has
    the clip's own timeline (nothing trimmed or cut yet), the regions found
    are kept on the clip for later stages (e.g. :class:`~prep.stages.denoise.Denoise`).

    Attributes
    ----------
    context_s : float
        Source audio measured on either side of the clip's span, at most this many seconds (clamped to
        the source the clip carries).  What trimming cut off before and after the speech is where the
        background (noise floor, hum, music) shows without a voice over it: without it a trimmed clip
        full of speech hides a hum that fills every pause of the recording.
    mos : bool
        Run DNSMOS P.835 on the same stretch of the source when the ``[mos]`` extra is installed
        (about 0.06 s of one core per 9 s window, int8 model, no P.808; without the extra nothing is
        recorded and nothing is said here: a run says it once, see
        :func:`prep.dsp.estimators.mos_missing_notice`).
    """

    name: ClassVar[str] = "measure_input"
    changes: ClassVar[frozenset[str]] = frozenset()  # metrics and speech regions only (see run_stages)
    context_s: float = 1.0
    mos: bool = True

    def __post_init__(self) -> None:
        if not 0.0 <= self.context_s <= 60.0:
            raise ConfigError(f"context_s must be in [0, 60] seconds, got {self.context_s!r}")

    def apply(self, clip: Clip) -> Clip:
        from ..dsp.vad import mask_to_regions

        audio = clip.require_audio()
        if clip.source_audio is not None:
            start_s, end_s = clip.span_s
            source = clip.source_audio.span(start_s - self.context_s, end_s + self.context_s)
            rate, speech = clip.source_audio.sample_rate, None
        else:
            source, rate, speech = audio, clip.sample_rate, clip.speech
        duration = source.shape[-1] / float(rate)
        if speech is None:
            mask = vad_mask(mix_to_mono(source), sample_rate=rate)
            speech = tuple(mask_to_regions(mask, frame_s=VAD_FRAME_S, duration_s=duration))
        # the loudness and the SNR's frame powers filter the same signal: one pass for both
        lufs, frame_power = loudness_and_frame_powers(source, sample_rate=rate)
        # only the P.835 scores of the source are kept: its P.808 model is not run
        found = measure_quality(source, sample_rate=rate, mos=self.mos, speech=speech,
                                skip=frozenset({"dnsmos_p808"}), snr_frame_power=frame_power)
        values = {source_name(k) or k: found[k] for k in INPUT_METRICS}
        values.update({source_name(k) or k: found[k] for k in INPUT_DNSMOS if k in found})
        values["source_lufs"] = lufs
        measured = clip.with_metrics(**values)
        # Same timeline as the clip's audio (nothing cut, same length within a sample): the regions hold for it.
        own_timeline = not clip.pauses_cut_s and abs(duration - clip.duration_s) <= 1.0 / min(rate, clip.sample_rate)
        if clip.speech is None and own_timeline:
            measured = dataclasses.replace(measured, speech=speech)
        return measured
