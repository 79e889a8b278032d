"""The ``trim`` stage: cut leading/trailing non-speech and shorten long pauses.

:func:`trim` and :func:`compress_pauses` are the pure functions, :class:`Trim` the stage.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..audio import check_sample_rate
from ..clip import Clip
from ..dsp.vad import Region, check_regions, known_or_found_regions
from ..errors import ConfigError
from ..findings import finding

__all__ = ["Trim", "TrimReport", "compress_pauses", "trim"]
_FADE_S = 0.01  # crossfade where compress_pauses joins audio


def _merge(ranges: Sequence[Region]) -> tuple[Region, ...]:
    """Sorted union of ``ranges`` (overlapping or touching ones joined)."""
    out: list[Region] = []
    for start, end in sorted(ranges):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return tuple(out)


# -- applying ----------------------------------------------------------------
@dataclass(frozen=True)
class TrimReport:
    """What :func:`trim` did.

    Attributes
    ----------
    start_s, end_s : float
        The kept range of the input (before pause compression), seconds.
    speech_s : float
        Total speech (unpadded regions) in seconds.
    pauses_compressed : int
        Internal pauses shortened by :func:`compress_pauses`.
    pause_removed_s : float
        Seconds removed from those pauses.
    regions : tuple of (float, float)
        The speech regions in the trimmed audio (seconds from its start).
    pauses_cut_s : tuple of (float, float)
        The ranges of the input (seconds from its start) that pause
        compression removed, each as long as what it took out (the crossfade
        included), so ``end_s - start_s`` minus their total is the output's length.
    """

    start_s: float
    end_s: float
    speech_s: float
    pauses_compressed: int = 0
    pause_removed_s: float = 0.0
    regions: tuple[Region, ...] = ()
    pauses_cut_s: tuple[Region, ...] = ()


def _pause_cuts(spans: Sequence[Region], rate: int, max_pause_s: float, keep_pause_s: float) -> list[tuple[int, int]]:
    """Sample ranges ``[cut_from, cut_to)`` :func:`compress_pauses` removes."""
    cuts = []
    for (_, prev_end), (next_start, _) in itertools.pairwise(spans):
        if next_start - prev_end > max_pause_s:
            cuts.append((round((prev_end + keep_pause_s / 2) * rate), round((next_start - keep_pause_s / 2) * rate)))
    return cuts


def _shift_regions(spans: Sequence[Region], cuts: Sequence[tuple[int, int]], n_fade: int, rate: int) -> list[Region]:
    """Where ``spans`` (all outside the cuts) are after the cuts and ``n_fade``-sample crossfades."""
    out = []
    for s, e in spans:
        removed = sum(c1 - c0 + n_fade for c0, c1 in cuts if c1 <= s * rate)
        out.append((s - removed / rate, e - removed / rate))
    return out


def compress_pauses(
    audio: np.ndarray,
    *,
    sample_rate: int,
    regions: Sequence[Region],
    max_pause_s: float,
    keep_pause_s: float = 0.5,
    fade_s: float = _FADE_S,
) -> tuple[np.ndarray, int, float]:
    """Shorten pauses between speech regions that are longer than ``max_pause_s``.

    The middle of each long pause is cut so ``keep_pause_s`` of it remains
    (half after the previous region, half before the next); the two sides
    are joined with a raised-cosine crossfade of ``fade_s``.  Speech is never
    cut: only audio between regions is removed.

    Parameters
    ----------
    audio : np.ndarray, shape (samples,) or (channels, samples)
    sample_rate : int
    regions : sequence of (start_s, end_s)
        Speech regions of ``audio`` (from :func:`speech_regions`).
    max_pause_s : float
        Pauses longer than this are shortened.
    keep_pause_s : float
        Length a long pause is shortened to; ``<= max_pause_s``.
    fade_s : float
        Crossfade at each join.

    Returns
    -------
    audio : np.ndarray, float32, same channels
    pauses_compressed : int
    removed_s : float
    """
    rate = check_sample_rate(sample_rate)
    x = np.ascontiguousarray(audio, dtype=np.float32)
    y, cuts = _compress_pauses(x, rate, regions, max_pause_s, keep_pause_s, fade_s)
    return y, len(cuts), (x.shape[-1] - y.shape[-1]) / rate


def _compress_pauses(
    x: np.ndarray, rate: int, regions: Sequence[Region], max_pause_s: float, keep_pause_s: float, fade_s: float
) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """:func:`compress_pauses` on float32 ``x``; returns the audio and the sample ranges it cut."""
    if not 0 < keep_pause_s <= max_pause_s:
        raise ConfigError(f"need 0 < keep_pause_s <= max_pause_s, got {keep_pause_s!r} and {max_pause_s!r}")
    if not 0 <= fade_s * 2 < keep_pause_s:
        raise ConfigError(f"fade_s must be in [0, keep_pause_s / 2), got {fade_s!r}")
    spans = check_regions(regions, x.shape[-1] / rate)
    n_fade = round(fade_s * rate)
    cuts = _pause_cuts(spans, rate, max_pause_s, keep_pause_s)
    if not cuts:
        return x, cuts
    pieces = []
    pos = 0
    for cut_from, cut_to in cuts:
        pieces.append((pos, cut_from))
        pos = cut_to
    pieces.append((pos, x.shape[-1]))
    ramp = (0.5 - 0.5 * np.cos(np.pi * (np.arange(n_fade) + 0.5) / max(n_fade, 1))).astype(np.float32)
    out = [x[..., pieces[0][0] : pieces[0][1]].copy()]
    for start, stop in pieces[1:]:
        nxt = x[..., start:stop].copy()
        if n_fade:
            prev = out[-1]
            prev[..., -n_fade:] = prev[..., -n_fade:] * ramp[::-1] + nxt[..., :n_fade] * ramp
            nxt = nxt[..., n_fade:]
        out.append(nxt)
    return np.ascontiguousarray(np.concatenate(out, axis=-1)), cuts


def trim(
    audio: np.ndarray,
    *,
    sample_rate: int,
    regions: Sequence[Region],
    pad_s: float = 0.2,
    max_pause_s: float | None = None,
    keep_pause_s: float = 0.5,
) -> tuple[np.ndarray, TrimReport]:
    """Cut leading and trailing non-speech, keeping ``pad_s`` around the speech.

    Parameters
    ----------
    audio : np.ndarray, shape (samples,) or (channels, samples)
    sample_rate : int
    regions : sequence of (start_s, end_s)
        Unpadded speech regions of ``audio`` (from :func:`speech_regions`);
        must not be empty.
    pad_s : float
        Audio kept before the first and after the last region.
    max_pause_s : float or None
        If set, also shorten internal pauses longer than this to
        ``keep_pause_s`` (see :func:`compress_pauses`).
    keep_pause_s : float

    Returns
    -------
    audio : np.ndarray, float32, shape (channels?, samples')
    report : TrimReport

    Raises
    ------
    ConfigError
        For an empty or malformed ``regions`` or negative ``pad_s``.
    """
    rate = check_sample_rate(sample_rate)
    if pad_s < 0:
        raise ConfigError(f"pad_s must be >= 0, got {pad_s!r}")
    x = np.ascontiguousarray(audio, dtype=np.float32)
    duration = x.shape[-1] / rate
    spans = check_regions(regions, duration)
    if not spans:
        raise ConfigError("regions is empty: nothing to trim to (reject the clip instead)")
    start_s = max(0.0, spans[0][0] - pad_s)
    end_s = min(duration, spans[-1][1] + pad_s)
    i0, i1 = int(np.floor(start_s * rate)), int(np.ceil(end_s * rate))
    y = np.ascontiguousarray(x[..., i0:i1])
    speech_s = float(sum(e - s for s, e in spans))
    local = [(s - i0 / rate, e - i0 / rate) for s, e in spans]
    cuts: list[tuple[int, int]] = []
    removed = 0.0
    if max_pause_s is not None:
        before = y.shape[-1]
        y, cuts = _compress_pauses(y, rate, local, max_pause_s, keep_pause_s, _FADE_S)
        removed = (before - y.shape[-1]) / rate
    kept = _shift_regions(local, cuts, round(_FADE_S * rate), rate) if cuts else local
    out_s = y.shape[-1] / rate
    kept = [(max(0.0, s), min(out_s, e)) for s, e in kept if min(out_s, e) > max(0.0, s)]
    n_fade = round(_FADE_S * rate)
    removed_ranges = tuple(((i0 + c0) / rate, (i0 + c1 + n_fade) / rate) for c0, c1 in cuts)
    return y, TrimReport(i0 / rate, i1 / rate, speech_s, len(cuts), removed, tuple(kept), removed_ranges)


@dataclass(frozen=True)
class Trim:
    """Pipeline stage: trim leading/trailing non-speech, optionally shorten long pauses.

    Records ``trimmed_start_s``, ``trimmed_end_s``, ``speech_s``,
    ``speech_ratio`` (of the kept audio), ``pauses_compressed`` and
    ``pause_removed_s``; updates ``span_s`` (in source time), lists the
    removed pauses in :attr:`~prep.clip.Clip.pauses_cut_s` (source time) and
    sets the clip's :attr:`~prep.clip.Clip.speech` to the regions it found,
    moved to the kept audio (the score uses them).  A clip with no speech is rejected.
    With the default VAD settings it uses the speech regions the clip already
    carries (found by :class:`~prep.stages.denoise.Denoise` on the same
    timeline) instead of running the VAD again.
    Pauses are never compressed in a clip with a transcript unless
    ``compress_with_transcript`` is set (a VAD miss would cut a word the
    transcript still contains).
    """

    name: ClassVar[str] = "trim"
    changes: ClassVar[frozenset[str]] = frozenset({"audio", "timing", "span"})  # sets new speech regions
    pad_s: float = 0.2
    max_pause_s: float | None = 1.0
    keep_pause_s: float = 0.5
    compress_with_transcript: bool = False
    aggressiveness: int = 3
    min_silence_s: float = 0.25

    def apply(self, clip: Clip) -> Clip:
        audio = clip.require_audio()
        rate = clip.sample_rate
        duration = audio.shape[-1] / float(rate)
        regions = known_or_found_regions(  # the regions an earlier stage (Denoise) found, when still valid
            audio, sample_rate=rate, known=clip.speech, aggressiveness=self.aggressiveness,
            min_silence_s=self.min_silence_s,
        )
        if not regions:
            return clip.with_metrics(speech_s=0.0, speech_ratio=0.0).with_findings(finding("speech.none"))
        compress = self.max_pause_s is not None and (clip.transcript is None or self.compress_with_transcript)
        out, rep = trim(
            audio,
            sample_rate=rate,
            regions=regions,
            pad_s=self.pad_s,
            max_pause_s=self.max_pause_s if compress else None,
            keep_pause_s=self.keep_pause_s,
        )
        span = (clip.source_time(rep.start_s, after_cut=True), clip.source_time(rep.end_s))
        cuts = [c for c in clip.pauses_cut_s if span[0] <= c[0] and c[1] <= span[1]]
        cuts += [(clip.source_time(a), clip.source_time(b, after_cut=True)) for a, b in rep.pauses_cut_s]
        kept_s = out.shape[-1] / float(rate)
        return dataclasses.replace(
            clip, audio=out, span_s=span, speech=rep.regions, pauses_cut_s=_merge(cuts)
        ).with_metrics(
            trimmed_start_s=rep.start_s,
            trimmed_end_s=duration - rep.end_s,
            speech_s=rep.speech_s,
            speech_ratio=min(1.0, rep.speech_s / kept_s) if kept_s > 0 else 0.0,
            pauses_compressed=rep.pauses_compressed,
            pause_removed_s=rep.pause_removed_s,
        )
