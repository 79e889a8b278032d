"""The ``slice`` stage: cut a long recording into clips at its longest pauses.

:func:`slice_bounds` chooses the cuts, :class:`Slice` is the stage.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..clip import Clip
from ..dsp.vad import Region, check_regions, known_or_found_regions
from ..errors import ConfigError
from ..findings import finding

__all__ = ["Slice", "slice_bounds"]


def slice_bounds(
    regions: Sequence[Region],
    *,
    duration_s: float,
    min_s: float = 3.0,
    max_s: float = 30.0,
    pad_s: float = 0.2,
) -> list[Region]:
    """Choose slices of a long recording, cutting only in pauses.

    While a piece (first to last speech region, plus ``pad_s``) is longer
    than ``max_s``, it is cut at its longest pause that leaves both sides at
    least ``min_s`` long (the most balanced one among equals); if no pause
    does, at its longest pause.  A piece without any pause stays whole even
    if longer than ``max_s``: speech is never cut.

    Parameters
    ----------
    regions : sequence of (start_s, end_s)
        Unpadded speech regions (from :func:`speech_regions`).
    duration_s : float
        Duration of the recording.
    min_s, max_s : float
        Wanted slice length range in seconds.
    pad_s : float
        Non-speech kept before and after each slice's speech (never more than
        half the neighbouring pause).

    Returns
    -------
    list of (start_s, end_s)
        Disjoint, sorted slices; empty when ``regions`` is.
    """
    if not 0 < min_s < max_s:
        raise ConfigError(f"need 0 < min_s < max_s, got min_s={min_s!r}, max_s={max_s!r}")
    if pad_s < 0:
        raise ConfigError(f"pad_s must be >= 0, got {pad_s!r}")
    spans = check_regions(regions, duration_s)
    if not spans:
        return []
    starts = np.array([s for s, _ in spans])
    ends = np.array([e for _, e in spans])

    def length(i: int, j: int) -> float:
        return float(ends[j] - starts[i] + 2 * pad_s)

    groups: list[tuple[int, int]] = []
    stack = [(0, len(spans) - 1)]
    while stack:
        i, j = stack.pop()
        if length(i, j) <= max_s or i == j:
            groups.append((i, j))
            continue
        ks = np.arange(i, j)
        gaps = starts[ks + 1] - ends[ks]
        left = ends[ks] - starts[i] + 2 * pad_s
        right = ends[j] - starts[ks + 1] + 2 * pad_s
        ok = (left >= min_s) & (right >= min_s)
        if ok.any():
            ks, gaps, left, right = ks[ok], gaps[ok], left[ok], right[ok]
        balance = np.minimum(left, right)
        best = int(ks[np.lexsort((-balance, -gaps))[0]])
        stack.append((best + 1, j))
        stack.append((i, best))
    groups.sort()
    out: list[Region] = []
    for i, j in groups:
        lo = 0.0 if i == 0 else (ends[i - 1] + starts[i]) / 2
        hi = duration_s if j == len(spans) - 1 else (ends[j] + starts[j + 1]) / 2
        out.append((float(max(lo, starts[i] - pad_s)), float(min(hi, ends[j] + pad_s))))
    return out


def _merge_regions(regions: Sequence[Region], duration_s: float) -> list[Region]:
    """Sorted union of possibly overlapping regions, clipped to ``[0, duration_s]`` (empty ones dropped)."""
    out: list[list[float]] = []
    for a, b in sorted((max(0.0, float(a)), min(duration_s, float(b))) for a, b in regions):
        if b <= a:
            continue
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


@dataclass(frozen=True)
class Slice:
    """Pipeline stage: cut a long recording into ``min_s``–``max_s`` clips at its longest pauses.

    Each slice is a new clip with id ``f"{clip.id}-{k:03d}"`` and its own
    ``span_s`` in the source (source time, through any pauses an earlier
    :class:`~prep.stages.trim.Trim` cut, which it lists in ``pauses_cut_s``),
    trimmed to its speech plus ``pad_s``; its speech regions
    (:attr:`~prep.clip.Clip.speech`) come along.

    With word times (:attr:`~prep.clip.Clip.words`, from
    :class:`~prep.stages.transcribe.Transcribe`) the cuts fall only in pauses
    between words: every word's span counts as speech next to the VAD's
    regions, so the longest pauses chosen are both silent and between words.
    Each slice keeps the words of its own span (times relative to the slice)
    and their text as its transcript.  Without word times a transcript
    cannot be split, so slicing drops it (with a reason).  A clip no longer
    than ``max_s`` passes through unchanged.  With the default VAD settings it
    cuts at the speech regions the clip already carries (from
    :class:`~prep.stages.trim.Trim`) instead of running the VAD again.  No
    speech at all gives the clip back rejected.
    """

    name: ClassVar[str] = "slice"
    changes: ClassVar[frozenset[str]] = frozenset({"audio", "timing", "span", "id", "transcript"})
    min_s: float = 3.0
    max_s: float = 30.0
    pad_s: float = 0.2
    aggressiveness: int = 3
    min_silence_s: float = 0.25

    def apply(self, clip: Clip) -> list[Clip]:
        audio = clip.require_audio()
        rate = clip.sample_rate
        duration = audio.shape[-1] / float(rate)
        if duration <= self.max_s:
            return [clip]  # short enough: no cut, same id, transcript kept (length is the scorer's business)
        regions = known_or_found_regions(  # the regions an earlier stage (Trim) found, when still valid
            audio, sample_rate=rate, known=clip.speech, aggressiveness=self.aggressiveness,
            min_silence_s=self.min_silence_s,
        )
        cut_regions = regions if clip.words is None else _merge_regions(
            [*regions, *((max(0.0, a), min(duration, max(a, b))) for _, a, b in clip.words)], duration
        )
        bounds = slice_bounds(cut_regions, duration_s=duration, min_s=self.min_s, max_s=self.max_s,
                              pad_s=self.pad_s)
        if not bounds:
            return [clip.with_metrics(speech_s=0.0, speech_ratio=0.0).with_findings(finding("speech.none"))]
        out = []
        for k, (start_s, end_s) in enumerate(bounds):
            i0, i1 = int(np.floor(start_s * rate)), int(np.ceil(end_s * rate))
            start_s, end_s = i0 / rate, i1 / rate
            inside = [
                (max(s, start_s) - start_s, min(e, end_s) - start_s) for s, e in regions if s < end_s and e > start_s
            ]
            speech = sum(e - s for s, e in inside)
            span = (clip.source_time(start_s, after_cut=True), clip.source_time(end_s))
            piece = dataclasses.replace(
                clip,
                id=f"{clip.id}-{k:03d}",
                audio=np.ascontiguousarray(audio[..., i0:i1]),
                span_s=span,
                pauses_cut_s=tuple(c for c in clip.pauses_cut_s if span[0] <= c[0] and c[1] <= span[1]),
                speech=tuple(inside),
            ).with_metrics(
                slice_index=k,
                slice_count=len(bounds),
                speech_s=speech,
                speech_ratio=speech / (end_s - start_s) if end_s > start_s else 0.0,
            )
            if clip.words is not None:
                mine = tuple((w, max(0.0, a - start_s), min(end_s - start_s, max(0.0, b - start_s)))
                             for w, a, b in clip.words if start_s <= (a + b) / 2 < end_s)
                text = " ".join(w for w, _, _ in mine) or None
                piece = dataclasses.replace(piece, words=mine, transcript=text)
            elif len(bounds) > 1 and clip.transcript is not None:
                piece = dataclasses.replace(piece, transcript=None).with_findings(finding("transcript.dropped"))
            length = end_s - start_s
            if length > self.max_s:
                piece = piece.with_findings(
                    finding("slice.no_pause", metric="duration_s", value=length, threshold=self.max_s)
                )
            out.append(piece)
        return out
