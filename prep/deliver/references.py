"""Fish Audio reference samples: 10–30 s each, built from one speaker's best clips.

Fish Audio asks for reference samples of 10–30 s (1–20 of them, a minute or two in
total), clean, one voice, with text that matches exactly.  A speaker recorded as
2–4 s utterances (ARCTIC, LJSpeech, voice notes) has no such sample; this module
builds them:

* a clip of ``min_s``–``max_s`` seconds is a reference as it is (its WAV is copied
  byte for byte), so a speaker with one long clean recording gets its slices;
* shorter clips are joined with the consecutive utterances of the same source
  (ordered by ``span_s``), with a natural pause between them: the real gap between
  the two utterances' speech in the source, clamped to ``min_pause_s``–``max_pause_s``.
  Short clips a source cannot fill to ``min_s`` on its own (one utterance per file,
  as TTS corpora are stored) are joined with those of the next files of the same
  folder and format, in natural file order (``join_files``; the pause is then
  ``default_pause_s``).  Each part is matched to the parts' median BS.1770
  loudness, the pauses are cross-faded with raised-cosine ramps in the non-speech
  around the join (no click), and the transcripts are joined in the same order; a
  reference with any part lacking a transcript has no text and says so;
* references are chosen best first by quality (``score``, DNSMOS OVRL and voice
  similarity when measured) with a penalty for repeating a source (variety), up to
  ``max_total_s`` and ``max_count``.

Only clips of the one speaker are ever used, never one with a ``voice.other*``
finding; ``warning`` clips only with ``include_warning`` (the ``duration.short``
warning does not count: joining is its remedy).

:func:`plan_references` chooses (pure, on clip records); :func:`join_utterances`
and :func:`render_reference` make the audio; :func:`build_references` writes the
set to ``OUT/references/<speaker>/`` (``ref-NN.wav`` and ``references.json``,
replacing an older set as a whole); :func:`ensure_references` rebuilds only when
the set is missing or stale (another run's report, other settings).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import itertools
import json
import logging
import math
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..clip import Clip
from ..errors import ConfigError, DataError, OutputError
from ..findings import verdict_of
from ..metrics import finite, pick
from ..run.run_folder import REFERENCES_JSON, RunFolder
from .select import clip_seconds, outside_main_voice

__all__ = [
    "LISTING_VERSION",
    "PlannedReference",
    "ReferenceConfig",
    "ReferencePlan",
    "build_references",
    "clip_quality",
    "describe",
    "eligible_clips",
    "ensure_references",
    "join_utterances",
    "match_loudness",
    "pitch_stats",
    "plan_references",
    "read_references",
    "reference_verdict",
    "references_stale",
    "render_reference",
    "speech_edges",
]

log = logging.getLogger(__name__)

#: Version of ``references.json``.
LISTING_VERSION = 1
_OTHER_VOICE_PREFIX = "voice.other"
#: Findings a reference makes moot (the clip is joined into 10 s or more).
_JOINING_FIXES = frozenset({"duration.short"})


@dataclass(frozen=True)
class ReferenceConfig:
    """How reference samples are built and chosen (Fish Audio ``POST /model`` guidance by default).

    Attributes
    ----------
    min_s, max_s : float
        Length of each reference.
    join_target_s : float
        Joining stops once a reference reaches this length (it may end between
        ``min_s`` and ``max_s`` when a source runs out).
    min_total_s, max_total_s : float
        Wanted total length; references are added up to ``max_total_s``.
    max_count : int
        At most this many references (Fish Audio: 20).
    min_pause_s, max_pause_s : float
        Range of the pause between joined utterances (speech end to speech start).
    default_pause_s : float
        Pause between utterances of different files (no real gap is known).
    fade_s : float
        Length of the raised-cosine cross-fade inside each pause.
    include_warning : bool
        Also use clips whose verdict is ``warning``.
    join_files : bool
        Join short utterances of consecutive files (same folder and format) when a
        source alone cannot reach ``min_s``.
    dnsmos_weight : float
        Quality points per DNSMOS OVRL point above 3.
    similarity_weight : float
        Quality points per unit of ``voice_similarity`` above 0.9.
    source_penalty : float
        Quality points taken from a candidate for each chosen reference that
        shares one of its sources (variety).
    intonation_weight : float
        Quality points per semitone of pitch spread (at most 6), used when more
        candidates exist than can be chosen (:func:`build_references` then
        measures the pitch of the best candidates' clips).
    mos : bool
        Measure DNSMOS of each reference when the ``[mos]`` extra is installed.
    """

    min_s: float = 10.0
    max_s: float = 30.0
    join_target_s: float = 20.0
    min_total_s: float = 60.0
    max_total_s: float = 180.0
    max_count: int = 20
    min_pause_s: float = 0.3
    max_pause_s: float = 0.6
    default_pause_s: float = 0.45
    fade_s: float = 0.02
    include_warning: bool = False
    join_files: bool = True
    dnsmos_weight: float = 10.0
    similarity_weight: float = 50.0
    source_penalty: float = 5.0
    intonation_weight: float = 2.0
    mos: bool = True

    def __post_init__(self) -> None:
        if not 0 < self.min_s <= self.join_target_s <= self.max_s:
            raise ConfigError(f"need 0 < min_s <= join_target_s <= max_s, got {self.min_s!r}, "
                              f"{self.join_target_s!r}, {self.max_s!r}")
        if not 0 <= self.min_total_s <= self.max_total_s:
            raise ConfigError(f"need 0 <= min_total_s <= max_total_s, got {self.min_total_s!r}, {self.max_total_s!r}")
        if not 1 <= self.max_count <= 20:
            raise ConfigError(f"max_count must be in 1..20, got {self.max_count!r}")
        if not 0 < self.min_pause_s <= self.default_pause_s <= self.max_pause_s:
            raise ConfigError(f"need 0 < min_pause_s <= default_pause_s <= max_pause_s, got {self.min_pause_s!r}, "
                              f"{self.default_pause_s!r}, {self.max_pause_s!r}")
        if not 0 < self.fade_s <= self.min_pause_s:
            raise ConfigError(f"fade_s must be in (0, min_pause_s], got {self.fade_s!r}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready settings (part of the staleness key)."""
        return dataclasses.asdict(self)


# -- choosing ----------------------------------------------------------------------------------------


def _other_voice(clip: Clip) -> bool:
    return any(f.code.startswith(_OTHER_VOICE_PREFIX) for f in clip.findings)


def reference_verdict(clip: Clip) -> str:
    """A clip's verdict as a part of a reference: its verdict without the ``duration.short`` warning.

    That warning says a clip is shorter than Fish Audio's 10 s; joining it with
    its neighbours is what a reference does about it.
    """
    return verdict_of(f for f in clip.findings if f.code not in _JOINING_FIXES)


def eligible_clips(clips: Iterable[Clip], *, config: ReferenceConfig) -> tuple[list[Clip], list[str]]:
    """The clips a reference may use, and notes on those left out.

    A clip is eligible when its :func:`reference_verdict` is ``approved`` (or
    ``warning`` with ``include_warning``), it has a written file and a length,
    no ``voice.other*`` finding says it may be another voice, and, when the
    speaker's clips clearly form several voices, it belongs to the main one
    (:func:`prep.deliver.select.outside_main_voice`).

    Raises
    ------
    ConfigError
        For clips of more than one speaker.
    """
    pool = list(clips)
    speakers = sorted({c.speaker for c in pool})
    if len(speakers) > 1:
        raise ConfigError(f"references take one speaker's clips, got speakers {speakers}")
    allowed = ("approved", "warning") if config.include_warning else ("approved",)
    other = [c.id for c in pool if _other_voice(c) and verdict_of(
        f for f in c.findings if f.code not in _JOINING_FIXES and not f.code.startswith(_OTHER_VOICE_PREFIX)
    ) in allowed]
    outside, outside_note = outside_main_voice(pool)
    keep = [c for c in pool if reference_verdict(c) in allowed and c.output and clip_seconds(c) > 0
            and not _other_voice(c) and c.id not in outside]
    notes = []
    if other:
        notes.append(f"{len(other)} clip(s) that may be another voice were left out: {', '.join(other)}")
    if outside_note:
        notes.append(outside_note)
    warned = sum(reference_verdict(c) == "warning" for c in pool)
    if warned and not config.include_warning:
        notes.append(f"{warned} clip(s) with warnings were not used (include_warning uses them)")
    return keep, notes


def clip_quality(clip: Clip, *, config: ReferenceConfig) -> float:
    """A clip's ranking value: ``score`` plus DNSMOS OVRL and voice-similarity terms when measured.

    ``score + dnsmos_weight * (OVRL - 3) + similarity_weight * (voice_similarity - 0.9)``;
    a missing score counts as 50, a missing term as 0.
    """
    score = finite(clip.metrics.get("score"))
    quality = 50.0 if score is None else score
    ovrl = pick(clip.metrics, "dnsmos_ovrl", "source_dnsmos_ovrl")
    if ovrl is not None:
        quality += config.dnsmos_weight * (ovrl - 3.0)
    similarity = finite(clip.metrics.get("voice_similarity"))
    if similarity is not None:
        quality += config.similarity_weight * (similarity - 0.9)
    return quality


@dataclass(frozen=True)
class PlannedReference:
    """One reference to build: its clips in spoken order.

    Attributes
    ----------
    parts : tuple of Clip
        In the order they are joined (source order).
    source_gaps_s : tuple of (float or None)
        One per join: the gap between the kept audio of two consecutive parts in
        their common source (``None`` between different sources).
    quality : float
        Length-weighted mean :func:`clip_quality` of the parts.
    """

    parts: tuple[Clip, ...]
    source_gaps_s: tuple[float | None, ...]
    quality: float

    @property
    def estimate_s(self) -> float:
        """Sum of the parts' lengths (the joined length differs by the pauses' change)."""
        return float(sum(clip_seconds(c) for c in self.parts))

    @property
    def joined(self) -> bool:
        """Whether it joins several clips."""
        return len(self.parts) > 1

    @property
    def sources(self) -> tuple[str, ...]:
        """Its sources, in order of first use."""
        return tuple(dict.fromkeys(c.source for c in self.parts))


@dataclass(frozen=True)
class ReferencePlan:
    """The references chosen for one speaker, best first, and why it falls short if it does."""

    speaker: str
    references: tuple[PlannedReference, ...]
    notes: tuple[str, ...] = ()
    #: Candidates that were not chosen (over the total or the count), best first.
    left_out: tuple[PlannedReference, ...] = ()

    @property
    def estimate_s(self) -> float:
        """Estimated total length."""
        return float(sum(r.estimate_s for r in self.references))


def _natural_key(text: str) -> list[Any]:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", text)]


def _source_order(clip: Clip) -> tuple[Any, ...]:
    return (_natural_key(clip.source), float(clip.span_s[0]), clip.id)


def _folder_format(clip: Clip) -> tuple[Any, ...]:
    """Recordings alike enough to join across files: same folder, source rate and channels, output rate."""
    fmt = (clip.input.sample_rate, clip.input.channels) if clip.input is not None else (None, None)
    return (os.path.dirname(clip.source), *fmt, clip.sample_rate)


def _chains(seq: Sequence[Clip], config: ReferenceConfig) -> list[list[Clip]]:
    """Cut an ordered run of short clips into consecutive groups of about ``join_target_s``, within the limits.

    The run is split evenly into as many groups as its length divided by
    ``join_target_s`` suggests (each at least ``min_s``, at most ``max_s``);
    when the clips' lengths make an even split miss the limits, groups are
    filled greedily instead (a last group under ``min_s`` is then left over).
    """
    margin = 0.25  # pauses may shorten a join slightly: aim a little above min_s
    lengths = [clip_seconds(c) for c in seq]
    total = float(sum(lengths))
    same_rate = len({c.sample_rate for c in seq}) <= 1
    if same_rate and total >= config.min_s + margin:
        k = max(1, round(total / config.join_target_s), math.ceil(total / config.max_s))
        k = min(k, max(1, int(total // (config.min_s + margin))))
        target = total / k
        mids = np.cumsum(lengths) - np.asarray(lengths) / 2
        index = np.minimum((mids // target).astype(int), k - 1)
        even = [[c for c, i in zip(seq, index, strict=True) if i == g] for g in range(k)]
        sums = [sum(clip_seconds(c) for c in group) for group in even]
        if all(group for group in even) and all(config.min_s + margin <= v <= config.max_s for v in sums):
            return even
    chains: list[list[Clip]] = []
    current: list[Clip] = []
    length = 0.0
    for clip in seq:
        seconds = clip_seconds(clip)
        if current and (length + seconds > config.max_s or clip.sample_rate != current[-1].sample_rate):
            chains.append(current)
            current, length = [], 0.0
        current.append(clip)
        length += seconds
        if length >= config.join_target_s:
            chains.append(current)
            current, length = [], 0.0
    if current:
        chains.append(current)
    if len(chains) > 1:
        last, before = chains[-1], chains[-2]
        total = sum(clip_seconds(c) for c in (*before, *last))
        if sum(clip_seconds(c) for c in last) < config.min_s + margin and total <= config.max_s:
            chains[-2:] = [before + last]
    return chains


def _planned(parts: Sequence[Clip], config: ReferenceConfig) -> PlannedReference:
    gaps: list[float | None] = []
    for prev, nxt in itertools.pairwise(parts):
        gaps.append(float(nxt.span_s[0]) - float(prev.span_s[1]) if prev.source == nxt.source else None)
    weights = [clip_seconds(c) for c in parts]
    quality = float(np.average([clip_quality(c, config=config) for c in parts], weights=weights))
    return PlannedReference(tuple(parts), tuple(gaps), quality)


def plan_references(
    clips: Iterable[Clip],
    *,
    config: ReferenceConfig = ReferenceConfig(),
    intonation_st: Mapping[str, float] | None = None,
) -> ReferencePlan:
    """Choose one speaker's references from clip records (no audio needed).

    Parameters
    ----------
    clips : iterable of Clip
        One speaker's clips.
    config : ReferenceConfig
    intonation_st : Mapping, optional
        Pitch spread (semitones, :func:`pitch_stats`) by clip id: a candidate whose
        parts all have one gains ``intonation_weight`` points per semitone (at most
        6): lively speech over monotone reading.

    Returns
    -------
    ReferencePlan
        Best first; empty (with notes) when nothing is usable.

    Raises
    ------
    ConfigError
        For clips of more than one speaker.
    """
    pool = list(clips)
    speaker = pool[0].speaker if pool else ""
    usable, notes = eligible_clips(pool, config=config)
    margin = 0.25
    units: list[PlannedReference] = []
    too_long = [c for c in usable if clip_seconds(c) > config.max_s]
    short: list[Clip] = []
    for clip in usable:
        seconds = clip_seconds(clip)
        if config.min_s <= seconds <= config.max_s:
            units.append(_planned([clip], config))
        elif seconds < config.min_s:
            short.append(clip)
    by_source: dict[str, list[Clip]] = {}
    for clip in sorted(short, key=_source_order):
        by_source.setdefault(clip.source, []).append(clip)
    leftovers: list[Clip] = []
    n_joined_files = 0
    for seq in by_source.values():
        for chain in _chains(seq, config):
            if sum(clip_seconds(c) for c in chain) >= config.min_s + margin:
                units.append(_planned(chain, config))
            else:
                leftovers.extend(chain)
    if leftovers and config.join_files:
        groups: dict[tuple[Any, ...], list[Clip]] = {}
        for clip in sorted(leftovers, key=_source_order):
            groups.setdefault(_folder_format(clip), []).append(clip)
        leftovers = []
        for seq in groups.values():
            for chain in _chains(seq, config):
                if sum(clip_seconds(c) for c in chain) >= config.min_s + margin:
                    units.append(_planned(chain, config))
                    n_joined_files += len({c.source for c in chain}) > 1
                else:
                    leftovers.extend(chain)
    if intonation_st:
        units = [_with_intonation(u, intonation_st, config) for u in units]
    chosen: list[PlannedReference] = []
    skipped: list[PlannedReference] = []
    total = 0.0
    remaining = list(units)
    while remaining and len(chosen) < config.max_count:
        used = [set(r.sources) for r in chosen]

        def value(unit: PlannedReference, used: list[set[str]] = used) -> tuple[float, float, str]:
            shared = sum(bool(set(unit.sources) & u) for u in used)
            return (unit.quality - config.source_penalty * shared, unit.estimate_s, unit.parts[0].id)

        best = max(remaining, key=value)
        remaining.remove(best)
        if total + best.estimate_s > config.max_total_s + 1e-9:
            skipped.append(best)
            continue
        chosen.append(best)
        total += best.estimate_s
    skipped += sorted(remaining, key=lambda u: -u.quality)
    if too_long:
        notes.append(f"{len(too_long)} clip(s) longer than {config.max_s:g} s were not used: "
                     f"{', '.join(c.id for c in too_long)}")
    if leftovers:
        notes.append(f"{len(leftovers)} short clip(s) ({sum(clip_seconds(c) for c in leftovers):.1f} s) could not "
                     f"be joined into {config.min_s:g} s with consecutive utterances of their source")
    if n_joined_files:
        notes.append(f"{n_joined_files} reference(s) join utterances of consecutive files "
                     f"(pause {config.default_pause_s:g} s)")
    if total < config.min_total_s:
        notes.append(f"only {total:.0f} s of references; Fish Audio recommends "
                     f"{config.min_total_s:.0f}–{config.max_total_s:.0f} s: record more clean speech")
    return ReferencePlan(speaker, tuple(chosen), tuple(notes), tuple(skipped))


def _with_intonation(unit: PlannedReference, intonation_st: Mapping[str, float], config: ReferenceConfig
                     ) -> PlannedReference:
    """``unit`` with ``intonation_weight`` points per semitone of pitch spread (at most 6) added."""
    spreads = [intonation_st.get(c.id) for c in unit.parts]
    if any(v is None or not math.isfinite(v) for v in spreads):
        return unit
    weights = [clip_seconds(c) for c in unit.parts]
    spread = float(np.average([min(float(v), 6.0) for v in spreads], weights=weights))  # type: ignore[arg-type]
    return dataclasses.replace(unit, quality=unit.quality + config.intonation_weight * spread)


# -- the audio ---------------------------------------------------------------------------------------


def speech_edges(audio: np.ndarray, *, sample_rate: int) -> tuple[float, float]:
    """Start of the first and end of the last speech region of a clip, in seconds.

    The VAD (:func:`prep.dsp.vad.speech_regions`, 30 ms frames grown into the
    decays) finds the speech; each edge is then refined on 5 ms frames to where
    the level first (last) rises 6 dB above the clip's own non-speech level
    (speech about as loud as the room tone), searching up to 0.2 s inside and
    0.1 s outside the VAD edge.

    Parameters
    ----------
    audio : np.ndarray, shape (samples,)
    sample_rate : int

    Returns
    -------
    (float, float)
        ``(0, duration)`` when no speech is found.
    """
    from ..dsp.vad import speech_regions

    x = np.asarray(audio, dtype=np.float32).reshape(-1)
    duration = x.size / float(sample_rate)
    regions = speech_regions(x, sample_rate=sample_rate) if x.size else []
    if not regions:
        return 0.0, duration
    start, end = float(regions[0][0]), float(min(duration, regions[-1][1]))
    hop = max(1, round(0.005 * sample_rate))
    n = x.size // hop
    if n < 8:
        return start, end
    energy = np.mean(x[: n * hop].astype(np.float64).reshape(n, hop) ** 2, axis=1)
    centres = (np.arange(n) + 0.5) * hop / sample_rate
    outside = energy[(centres < start) | (centres > end)]
    noise = float(np.median(outside)) if outside.size >= 8 else float(np.percentile(energy, 10))
    loud = energy > max(noise * 10 ** (6 / 10), float(energy.max()) * 1e-9)
    near_start = np.flatnonzero(loud & (centres >= start - 0.1) & (centres <= start + 0.2))
    near_end = np.flatnonzero(loud & (centres >= end - 0.2) & (centres <= end + 0.1))
    if near_start.size:
        start = near_start[0] * hop / sample_rate
    if near_end.size:
        end = min(duration, (near_end[-1] + 1) * hop / sample_rate)
    return float(start), float(max(end, start))


def _ramp(n: int) -> np.ndarray:
    """Raised-cosine fade-in of ``n`` samples, from 0 (excluded) to 1 (excluded)."""
    t = (np.arange(n, dtype=np.float64) + 0.5) / max(n, 1)
    return (0.5 - 0.5 * np.cos(np.pi * t)).astype(np.float32)


def join_utterances(
    parts: Sequence[np.ndarray],
    *,
    sample_rate: int,
    edges_s: Sequence[tuple[float, float]],
    pauses_s: Sequence[float],
    fade_s: float = 0.02,
) -> np.ndarray:
    """Join mono utterances with the given pauses, cross-faded in the non-speech around each join.

    Between part ``i`` and ``i + 1`` the output holds exactly ``pauses_s[i]`` seconds
    from the end of part ``i``'s speech to the start of part ``i + 1``'s speech:
    up to half the pause (plus half a fade) of each side's own non-speech, each
    ramped to zero with a raised cosine of ``fade_s`` (a cross-fade where they
    meet, digital silence between them if the sides are short).  Nothing is cut
    from the speech, and no sample jumps at a join.

    Parameters
    ----------
    parts : sequence of np.ndarray, float32, shape (samples,)
        The utterances, in order.
    sample_rate : int
    edges_s : sequence of (float, float)
        Speech start and end of each part (:func:`speech_edges`).
    pauses_s : sequence of float
        One pause per join (``len(parts) - 1``).
    fade_s : float
        Cross-fade length.

    Returns
    -------
    np.ndarray, float32, shape (samples,)

    Raises
    ------
    ConfigError
        For mismatched lengths or a pause shorter than the fade.
    """
    if not parts:
        raise ConfigError("join_utterances needs at least one part")
    if len(edges_s) != len(parts) or len(pauses_s) != len(parts) - 1:
        raise ConfigError(f"need one edge pair per part and one pause per join, got {len(parts)} part(s), "
                          f"{len(edges_s)} edge pair(s), {len(pauses_s)} pause(s)")
    rate = int(sample_rate)
    xs = [np.asarray(p, dtype=np.float32).reshape(-1) for p in parts]
    edges = [(max(0, min(x.size, round(a * rate))), max(0, min(x.size, round(b * rate))))
             for x, (a, b) in zip(xs, edges_s, strict=True)]
    n_fade = max(1, round(fade_s * rate))
    out: list[np.ndarray] = []
    start = 0  # where the current part's kept audio starts
    for i, x in enumerate(xs):
        if i == len(xs) - 1:
            out.append(x[start:])
            break
        pause = round(pauses_s[i] * rate)
        if pause < n_fade:
            raise ConfigError(f"pause {pauses_s[i]!r} s is shorter than the fade ({fade_s!r} s)")
        nxt = xs[i + 1]
        end_a, start_b = max(edges[i][1], start), edges[i + 1][0]
        reach = (pause + n_fade) // 2
        keep_a = min(x.size - end_a, reach)
        keep_b = min(start_b, reach)
        body = x[start : end_a + keep_a].copy()
        fa = min(n_fade, body.size)
        body[body.size - fa :] *= _ramp(fa)[::-1]
        head = nxt[start_b - keep_b : start_b].copy()
        fb = min(n_fade, head.size)
        # the head's ramp starts at its first sample; with no head at all, the speech itself ramps in
        gap = np.zeros(pause, dtype=np.float32)
        gap[:keep_a] += body[body.size - keep_a :] if keep_a else 0.0
        if keep_b:
            head[:fb] *= _ramp(fb)
            gap[pause - keep_b :] += head
        out.append(body[: body.size - keep_a])
        out.append(gap)
        start = start_b
        if not keep_b:  # speech at the very start of the next part: a short fade-in on it
            ramp_n = min(n_fade, nxt.size)
            xs[i + 1] = nxt.copy()
            xs[i + 1][:ramp_n] *= _ramp(ramp_n)
    return np.concatenate(out).astype(np.float32, copy=False)


def match_loudness(parts: Sequence[np.ndarray], *, sample_rate: int) -> tuple[list[np.ndarray], list[float]]:
    """Bring each part to the parts' median BS.1770 integrated loudness.

    Parameters
    ----------
    parts : sequence of np.ndarray, float32, shape (samples,)
    sample_rate : int

    Returns
    -------
    parts : list of np.ndarray
        Gained copies.
    gains_db : list of float
        The gain of each part (0 for a part too short or silent to measure).
    """
    from ..dsp.loudness import integrated_loudness

    levels = [integrated_loudness(p, sample_rate=sample_rate) for p in parts]
    finite_levels = [v for v in levels if math.isfinite(v)]
    if not finite_levels:
        return [np.asarray(p, dtype=np.float32) for p in parts], [0.0] * len(parts)
    target = float(np.median(finite_levels))
    gains = [target - v if math.isfinite(v) else 0.0 for v in levels]
    out = [(np.asarray(p, dtype=np.float32) * np.float32(10 ** (g / 20))).astype(np.float32) for p, g in
           zip(parts, gains, strict=True)]
    return out, gains


def pitch_stats(audio: np.ndarray, *, sample_rate: int) -> tuple[float | None, float | None]:
    """Median f0 (Hz) and its spread (semitones, interquartile range / 1.35, octave errors folded) of voiced frames.

    A cheap normalised-autocorrelation estimate on 40 ms frames every 10 ms of the
    signal low-passed to 900 Hz at 16 kHz (60–400 Hz); frames whose peak correlation is under 0.6 or whose level
    is 35 dB below the loudest are unvoiced.

    Parameters
    ----------
    audio : np.ndarray, shape (samples,)
    sample_rate : int

    Returns
    -------
    (float or None, float or None)
        ``(None, None)`` with fewer than 10 voiced frames.
    """
    import soxr

    x = np.asarray(audio, dtype=np.float32).reshape(-1)
    if sample_rate != 16000:
        x = soxr.resample(x, sample_rate, 16000).astype(np.float32)
    frame, hop = 640, 160
    if x.size < frame:
        return None, None
    spec_all = np.fft.rfft(x.astype(np.float64))
    spec_all[np.fft.rfftfreq(x.size, 1 / 16000) > 900.0] = 0  # the first formant would pass for f0
    x = np.fft.irfft(spec_all, x.size)
    n = (x.size - frame) // hop + 1
    idx = np.arange(frame)[None, :] + hop * np.arange(n)[:, None]
    frames = x[idx].astype(np.float64)
    frames -= frames.mean(axis=1, keepdims=True)
    energy = np.sum(frames**2, axis=1)
    spec = np.fft.rfft(frames * np.hanning(frame), n=2 * frame, axis=1)
    ac = np.fft.irfft(np.abs(spec) ** 2, axis=1)[:, :frame]
    lo, hi = 16000 // 400, 16000 // 60
    ac_norm = ac[:, lo:hi] / np.maximum(ac[:, :1], 1e-12)
    lag = np.argmax(ac_norm, axis=1) + lo
    peak = ac_norm[np.arange(n), lag - lo]
    loud = energy > energy.max() * 10 ** (-35 / 10)
    voiced = (peak >= 0.6) & loud
    if voiced.sum() < 10:
        return None, None
    f0 = 16000.0 / lag[voiced]
    semitones = 12 * np.log2(f0)
    centre = np.median(semitones)
    semitones -= 12 * np.round((semitones - centre) / 12)  # octave errors folded back: they are no intonation
    q1, q3 = np.percentile(semitones, [25, 75])
    return float(np.median(f0)), float((q3 - q1) / 1.35)


def _read_wav(path: Path) -> tuple[np.ndarray, int]:
    import soundfile as sf

    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (OSError, RuntimeError, sf.LibsndfileError) as err:
        raise DataError(f"{path}: cannot read the clip: {err}") from err
    return np.ascontiguousarray(data.mean(axis=1, dtype=np.float32)), int(rate)


def _pause_s(gap_s: float | None, tail_s: float, head_s: float, config: ReferenceConfig) -> float:
    if gap_s is None:
        return config.default_pause_s
    return float(min(config.max_pause_s, max(config.min_pause_s, gap_s + tail_s + head_s)))


def render_reference(
    audio: Sequence[np.ndarray], *, sample_rate: int, planned: PlannedReference, config: ReferenceConfig
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """The joined audio of a planned reference, and what each part became.

    Parameters
    ----------
    audio : sequence of np.ndarray, float32, shape (samples,)
        The parts' clip audio, in ``planned.parts`` order.
    sample_rate : int
    planned : PlannedReference
    config : ReferenceConfig

    Returns
    -------
    audio : np.ndarray, float32, shape (samples,)
        Loudness-matched parts joined by :func:`join_utterances`, lowered as a
        whole if its true peak would exceed -1 dBTP.
    parts : list of dict
        Per part: ``clip``, ``source``, ``span_s``, ``transcript``, ``duration_s``,
        ``gain_db``, ``pause_before_s`` (``None`` for the first), ``start_s`` (where
        its speech starts in the reference).
    """
    from ..dsp.loudness import true_peak

    if len(audio) != len(planned.parts):
        raise ConfigError(f"got {len(audio)} audio part(s) for {len(planned.parts)} clip(s)")
    edges = [speech_edges(a, sample_rate=sample_rate) for a in audio]
    pauses = [
        _pause_s(gap, a.size / sample_rate - edges[i][1], edges[i + 1][0], config)
        for i, (gap, a) in enumerate(zip(planned.source_gaps_s, audio, strict=False))
    ]
    gained, gains = match_loudness(audio, sample_rate=sample_rate)
    joined = join_utterances(gained, sample_rate=sample_rate, edges_s=edges, pauses_s=pauses, fade_s=config.fade_s)
    peak = true_peak(joined, sample_rate=sample_rate)
    if math.isfinite(peak) and peak > -1.0:
        joined = (joined * np.float32(10 ** ((-1.0 - peak) / 20))).astype(np.float32)
    info = []
    position = edges[0][0]
    for i, clip in enumerate(planned.parts):
        if i:
            position += (edges[i - 1][1] - edges[i - 1][0]) + pauses[i - 1]
        info.append({
            "clip": clip.id,
            "source": clip.source,
            "span_s": [round(float(clip.span_s[0]), 3), round(float(clip.span_s[1]), 3)],
            "transcript": clip.transcript or None,
            "duration_s": round(clip_seconds(clip), 3),
            "gain_db": round(gains[i], 2),
            "pause_before_s": None if i == 0 else round(pauses[i - 1], 3),
            "start_s": round(position, 3),
        })
    return joined, info


# -- the set on disk ---------------------------------------------------------------------------------


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _report_sha256(folder: RunFolder) -> str:
    try:
        return _sha256(folder.report_json.read_bytes())
    except OSError:
        return ""


def _key(report_sha: str, config: ReferenceConfig) -> str:
    """The staleness key: the run's report and the settings that change what is built (not ``mos``)."""
    settings = {k: v for k, v in config.to_dict().items() if k != "mos"}
    blob = json.dumps({"report": report_sha, "config": settings}, sort_keys=True).encode()
    return _sha256(blob)[:16]


def _dnsmos(audio: np.ndarray, sample_rate: int) -> dict[str, float] | None:
    from ..models import ModelError

    try:
        from ..dsp.dnsmos import dnsmos_scores

        scores = dnsmos_scores(audio, sample_rate=sample_rate)
    except (ImportError, ModelError):
        return None
    if scores is None:
        return None
    return {"dnsmos_ovrl": round(scores.ovrl, 3), "dnsmos_sig": round(scores.sig, 3),
            "dnsmos_bak": round(scores.bak, 3)}


def _text(planned: PlannedReference) -> tuple[str | None, str | None]:
    missing = [c.id for c in planned.parts if not (c.transcript or "").strip()]
    if missing:
        return None, f"no text: {len(missing)} of {len(planned.parts)} part(s) lack a transcript ({', '.join(missing)})"
    return " ".join(" ".join(str(c.transcript).split()) for c in planned.parts), None


def read_references(out_dir: str | Path, speaker: str) -> dict[str, Any] | None:
    """A speaker's ``references.json``, or ``None`` when there is none or it cannot be read."""
    path = RunFolder(out_dir).references_json(speaker)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("references"), list):
        return None
    return data


def references_stale(out_dir: str | Path, speaker: str, *, config: ReferenceConfig) -> str | None:
    """Why a speaker's reference set must be rebuilt, or ``None`` when it is current.

    It is stale when missing, made from another ``report.json`` or other
    settings, or when a WAV it lists is missing or changed.
    """
    folder = RunFolder(out_dir)
    listing = read_references(folder.root, speaker)
    if listing is None:
        return "no reference set"
    if listing.get("key") != _key(_report_sha256(folder), config):
        return "made from another run or other settings"
    for ref in listing["references"]:
        try:
            data = folder.output_path(str(ref["output"])).read_bytes()
        except (OSError, KeyError, TypeError):
            return "a reference file is missing"
        if _sha256(data) != ref.get("sha256"):
            return "a reference file changed"
    return None


def _swap_in(staging: Path, final: Path) -> None:
    """Replace ``final`` (a folder) by ``staging``: two renames, the old set removed after."""
    old = None
    try:
        if final.exists():
            old = final.parent / f".{final.name}.{os.getpid()}.old.tmp"
            shutil.rmtree(old, ignore_errors=True)
            os.replace(final, old)
        os.replace(staging, final)
    except OSError as err:
        if old is not None and not final.exists():
            os.replace(old, final)  # put the old set back
        raise OutputError(f"{final}: cannot replace the reference set: {err.strerror or err}") from err
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def build_references(
    out_dir: str | Path,
    speaker: str,
    *,
    config: ReferenceConfig = ReferenceConfig(),
    clips: Sequence[Clip] | None = None,
) -> dict[str, Any]:
    """Build a speaker's reference set and write it to ``OUT/references/<speaker>/``.

    ``ref-NN.wav`` (best first) and ``references.json`` (what each contains) are
    written to a temporary folder and swapped in for the old set, so readers see
    the old set or the new one, never a mix.  A speaker with nothing usable gets
    an empty listing with notes.

    Parameters
    ----------
    out_dir : str or Path
        Output folder of ``voiceprep run``.
    speaker : str
    config : ReferenceConfig
    clips : sequence of Clip, optional
        The finished run's clips (read from ``report.json`` when not given).

    Returns
    -------
    dict
        The listing written (see the README, section "Reference samples").

    Raises
    ------
    ConfigError
        No finished run in the folder, or the speaker has no clip there.
    DataError
        A clip file cannot be read.
    OutputError
        The set cannot be written (or another voiceprep run is writing here).
    """
    folder = RunFolder(out_dir)
    report_sha = _report_sha256(folder)
    every = list(clips) if clips is not None else folder.read_clips()
    mine = [c for c in every if c.speaker == speaker]
    if not mine:
        raise ConfigError(f"speaker {speaker!r} has no clips in {folder.root}; speakers there: "
                          f"{sorted({c.speaker for c in every})}")
    plan = plan_references(mine, config=config)
    if plan.left_out:  # a real choice: let intonation weigh in, measured on the best candidates' clips
        pool = sorted([*plan.references, *plan.left_out], key=lambda u: -u.quality)[: 3 * config.max_count]
        spreads = {}
        for clip in {c.id: c for unit in pool for c in unit.parts}.values():
            audio, rate = _read_wav(folder.output_path(str(clip.output)))
            spread = pitch_stats(audio, sample_rate=rate)[1]
            if spread is not None:
                spreads[clip.id] = spread
        plan = plan_references(mine, config=config, intonation_st=spreads)
    notes = list(plan.notes)
    final = folder.reference_dir(speaker)
    with folder.lock():
        folder.references_dir.mkdir(parents=True, exist_ok=True)
        for stale in folder.references_dir.glob(".*.tmp"):
            shutil.rmtree(stale, ignore_errors=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{speaker}.", suffix=".tmp", dir=folder.references_dir))
        try:
            entries = _write_set(folder, speaker, plan, staging, config, notes)
            listing = {
                "version": LISTING_VERSION,
                "speaker": speaker,
                "key": _key(report_sha, config),
                "report_sha256": report_sha,
                "config": config.to_dict(),
                "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                "count": len(entries),
                "total_s": round(sum(e["duration_s"] for e in entries), 3),
                "texts": all(e["transcript"] for e in entries) if entries else False,
                "notes": notes,
                "references": entries,
            }
            (staging / REFERENCES_JSON).write_text(json.dumps(listing, indent=1, ensure_ascii=False) + "\n",
                                                   encoding="utf-8")
            os.chmod(staging, 0o777 & ~_umask())
            _swap_in(staging, final)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    return listing


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _write_set(folder: RunFolder, speaker: str, plan: ReferencePlan, staging: Path, config: ReferenceConfig,
               notes: list[str]) -> list[dict[str, Any]]:
    from ..dsp.loudness import integrated_loudness, true_peak
    from ..io import write_wav_atomic

    entries: list[dict[str, Any]] = []
    for planned in plan.references:
        index = len(entries) + 1
        rel = RunFolder.reference_output(speaker, index)
        path = staging / Path(rel).name
        parts = list(planned.parts)
        if len(parts) == 1:
            src = folder.output_path(str(parts[0].output))
            try:
                data = src.read_bytes()
            except OSError as err:
                raise DataError(f"{src}: cannot read the clip: {err.strerror or err}") from err
            path.write_bytes(data)
            audio, rate = _read_wav(path)
            info = [{
                "clip": parts[0].id, "source": parts[0].source,
                "span_s": [round(float(parts[0].span_s[0]), 3), round(float(parts[0].span_s[1]), 3)],
                "transcript": parts[0].transcript or None, "duration_s": round(clip_seconds(parts[0]), 3),
                "gain_db": 0.0, "pause_before_s": None, "start_s": 0.0,
            }]
        else:
            loaded = [_read_wav(folder.output_path(str(c.output))) for c in parts]
            rate = loaded[0][1]
            if any(r != rate for _, r in loaded):
                notes.append(f"reference {index}: parts at different sample rates were not joined")
                continue
            while True:
                audio, info = render_reference([a for a, _ in loaded[: len(parts)]], sample_rate=rate,
                                               planned=_planned(parts, config), config=config)
                if audio.size / rate <= config.max_s or len(parts) <= 2:
                    break
                parts = parts[:-1]  # the pauses made it longer than max_s: one utterance fewer
            seconds = audio.size / rate
            if not config.min_s - 1e-6 <= seconds <= config.max_s + 1e-6:
                notes.append(f"a join of {len(parts)} clip(s) came to {seconds:.1f} s, outside "
                             f"{config.min_s:g}–{config.max_s:g} s, and was left out")
                continue
            write_wav_atomic(path, audio, sample_rate=rate)
            audio, rate = _read_wav(path)  # what the file holds (16-bit)
        planned = _planned(parts, config)
        text, text_note = _text(planned)
        pitch_hz, spread_st = pitch_stats(audio, sample_rate=rate)
        # a clip used as it is keeps the measurements the run made of it
        known = parts[0].metrics if len(parts) == 1 else {}
        lufs = finite(known.get("output_lufs"))
        peak = finite(known.get("output_true_peak_dbtp"))
        mos = {k: round(v, 3) for k in ("dnsmos_ovrl", "dnsmos_sig", "dnsmos_bak")
               if (v := finite(known.get(k))) is not None} or None
        if mos is None and config.mos:
            mos = _dnsmos(audio, rate)
        entry: dict[str, Any] = {
            "id": f"ref-{index:02d}",
            "output": rel,
            "sha256": _sha256(path.read_bytes()),
            "bytes": path.stat().st_size,
            "duration_s": round(audio.size / rate, 3),
            "sample_rate": rate,
            "joined": len(parts) > 1,
            "clips": [c.id for c in parts],
            "sources": list(planned.sources),
            "transcript": text,
            "text_note": text_note,
            "quality": round(planned.quality, 2),
            "lufs": round(integrated_loudness(audio, sample_rate=rate) if lufs is None else lufs, 2),
            "true_peak_dbtp": round(true_peak(audio, sample_rate=rate) if peak is None else peak, 2),
            "pitch_median_hz": None if pitch_hz is None else round(pitch_hz, 1),
            "pitch_spread_st": None if spread_st is None else round(spread_st, 2),
            "parts": info,
        }
        if mos:
            entry.update(mos)
        entries.append(entry)
    return entries


def ensure_references(
    out_dir: str | Path, speaker: str, *, config: ReferenceConfig = ReferenceConfig()
) -> dict[str, Any]:
    """The speaker's current reference set, built first when missing or stale (:func:`references_stale`)."""
    why = references_stale(out_dir, speaker, config=config)
    if why is None:
        listing = read_references(out_dir, speaker)
        assert listing is not None
        return listing
    log.info("references of %s: %s; building them", speaker, why)
    return build_references(out_dir, speaker, config=config)


def describe(listing: Mapping[str, Any]) -> str:
    """One line on a listing: count, total length, joins, texts."""
    refs = listing.get("references") or []
    joined = sum(bool(r.get("joined")) for r in refs)
    clips = sum(len(r.get("clips") or ()) for r in refs)
    texts = "with texts" if listing.get("texts") else "without texts"
    return (f"{len(refs)} reference(s), {float(listing.get('total_s') or 0):.1f} s, {joined} joined, "
            f"from {clips} clip(s), {texts}")
