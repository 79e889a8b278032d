"""Per-speaker selection and summaries.

:func:`select_clips` picks one speaker's best clips for a Fish Audio voice
(``POST /model``: up to 20 samples, a minute or two in total, each at
least 10 s where possible); :func:`speaker_summary` adds up a speaker's
clips, checks they were recorded alike and records the selection.  Both
work on clips without audio (read back from a manifest or report).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..clip import VERDICTS, Clip
from ..errors import ConfigError
from ..metrics import finite, pick, source_metrics

__all__ = [
    "outside_main_voice",
    "blocking_note",
    "MAX_CLIPS",
    "MAX_TOTAL_S",
    "MIN_CLIP_S",
    "MIN_TOTAL_S",
    "Selection",
    "clip_seconds",
    "consistency",
    "select_clips",
    "speaker_summary",
    "summarize_speakers",
]

#: Fish Audio ``POST /model`` guidance: samples per voice, total seconds, seconds per sample.
MAX_CLIPS = 20
MIN_TOTAL_S = 60.0
MAX_TOTAL_S = 180.0
MIN_CLIP_S = 10.0

#: Spread across a speaker's usable clips that earns a consistency note.
LOUDNESS_SPREAD_LU = 10.0
BANDWIDTH_SPREAD_RATIO = 1.5
SNR_SPREAD_DB = 15.0


def clip_seconds(clip: Clip) -> float:
    """A clip's length: the ``duration_s`` metric (the written audio), else its audio or span.

    Returns
    -------
    float
        Seconds; ``0.0`` when unknown.
    """
    value = finite(clip.metrics.get("duration_s"))
    if value is None:
        value = finite(clip.duration_s)
    return max(0.0, value or 0.0)


#: Finding codes of a clip that sounds like another voice (:data:`prep.voice.clips.OTHER_VOICE_CODES`).
_OTHER_VOICE = frozenset({"voice.other", "voice.other_reject"})


def _other_voice(clip: Clip) -> bool:
    return any(f.code in _OTHER_VOICE for f in clip.findings)


def _score(clip: Clip) -> float:
    value = finite(clip.metrics.get("score"))
    return -math.inf if value is None else value


@dataclass(frozen=True)
class Selection:
    """The clips chosen for one voice, best first.

    Attributes
    ----------
    clips : tuple of Clip
        Best first.
    total_s : float
        Their total length.
    min_total_s, max_total_s : float
        The budget asked for.
    notes : tuple of str
        Why the selection falls short of the guidance, if it does.
    """

    clips: tuple[Clip, ...]
    total_s: float
    min_total_s: float = MIN_TOTAL_S
    max_total_s: float = MAX_TOTAL_S
    notes: tuple[str, ...] = ()

    @property
    def ids(self) -> list[str]:
        """Ids of the selected clips, best first."""
        return [c.id for c in self.clips]

    @property
    def enough(self) -> bool:
        """Whether the selection reaches ``min_total_s``."""
        return self.total_s >= self.min_total_s - 1e-9

    def __iter__(self) -> Iterator[Clip]:
        return iter(self.clips)

    def __len__(self) -> int:
        return len(self.clips)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (ids, not clips)."""
        return {
            "clips": self.ids,
            "count": len(self.clips),
            "total_s": round(self.total_s, 3),
            "min_total_s": self.min_total_s,
            "max_total_s": self.max_total_s,
            "enough": self.enough,
            "notes": list(self.notes),
        }


def select_clips(
    clips: Iterable[Clip],
    *,
    max_clips: int = MAX_CLIPS,
    min_total_s: float = MIN_TOTAL_S,
    max_total_s: float = MAX_TOTAL_S,
    min_clip_s: float = MIN_CLIP_S,
) -> Selection:
    """Choose one speaker's clips for a voice, by verdict, length and score.

    Candidates are ranked in tiers, each by ``score`` (highest first, then
    longest, then id; the score holds the DNSMOS OVRL penalty when the
    ``[mos]`` extra ran): approved clips of at least ``min_clip_s``, shorter
    approved clips, warning clips of at least ``min_clip_s``, shorter
    warning clips.  Rejected and errored clips are never chosen, nor clips that
    may be another voice (``voice.other``), nor, when the clips clearly form
    several voices, those outside the main one (:func:`outside_main_voice`).  The first
    tier is taken while the total stays within ``max_total_s`` and the count
    within ``max_clips``; later tiers only while the total is still below
    ``min_total_s``.  A clip that would overflow ``max_total_s`` is skipped
    for a smaller one.

    Parameters
    ----------
    clips : iterable of Clip
        One speaker's clips (audio not needed).
    max_clips : int
        At most this many (Fish Audio: 20).
    min_total_s, max_total_s : float
        Wanted total length (Fish Audio: a minute or two; 60–180 s).
    min_clip_s : float
        Preferred least length per clip (Fish Audio: 10 s).

    Returns
    -------
    Selection

    Raises
    ------
    ConfigError
        For a bad budget, or clips of more than one speaker.
    """
    if max_clips < 1:
        raise ConfigError(f"max_clips must be >= 1, got {max_clips!r}")
    if not 0 <= min_total_s <= max_total_s:
        raise ConfigError(f"need 0 <= min_total_s <= max_total_s, got {min_total_s!r}, {max_total_s!r}")
    if min_clip_s < 0:
        raise ConfigError(f"min_clip_s must be >= 0, got {min_clip_s!r}")
    pool = list(clips)
    speakers = sorted({c.speaker for c in pool})
    if len(speakers) > 1:
        raise ConfigError(f"select_clips takes one speaker's clips, got speakers {speakers}")

    def tier(clip: Clip) -> int:
        long_enough = clip_seconds(clip) >= min_clip_s
        return (0 if long_enough else 1) + (0 if clip.verdict == "approved" else 2)

    other_voice = [c.id for c in pool if c.verdict == "warning" and _other_voice(c)]
    outside, outside_note = outside_main_voice(pool)
    candidates = [
        c for c in pool
        if c.verdict in ("approved", "warning") and clip_seconds(c) > 0 and not _other_voice(c) and c.id not in outside
    ]
    candidates.sort(key=lambda c: (tier(c), -_score(c), -clip_seconds(c), c.id))
    chosen: list[Clip] = []
    total = 0.0
    too_long: list[str] = []
    for clip in candidates:
        if len(chosen) >= max_clips:
            break
        seconds = clip_seconds(clip)
        if tier(clip) > 0 and total >= min_total_s:
            continue
        if total + seconds > max_total_s + 1e-9:
            if seconds > max_total_s:
                too_long.append(clip.id)
            continue
        chosen.append(clip)
        total += seconds
    notes: list[str] = []
    if total < min_total_s:
        usable = sum(clip_seconds(c) for c in candidates)
        notes.append(
            f"only {total:.0f} s selected ({usable:.0f} s usable in all); Fish Audio recommends "
            f"{min_total_s:.0f}–{max_total_s:.0f} s: record more clean speech"
        )
    n_warn = sum(c.verdict == "warning" for c in chosen)
    if n_warn:
        notes.append(f"{n_warn} selected clip(s) have warnings")
    n_short = sum(clip_seconds(c) < min_clip_s for c in chosen)
    if n_short:
        notes.append(f"{n_short} selected clip(s) are shorter than {min_clip_s:g} s")
    if too_long:
        notes.append(f"{len(too_long)} clip(s) longer than the {max_total_s:.0f} s budget were left out")
    if other_voice:
        notes.append(f"{len(other_voice)} clip(s) that may be a different voice were left out: "
                     f"{', '.join(other_voice)}")
    if outside_note:
        notes.append(outside_note)
    return Selection(tuple(chosen), total, min_total_s, max_total_s, tuple(notes))


def _spread(values: Sequence[float]) -> dict[str, float] | None:
    if not values:
        return None
    arr = np.asarray(values, dtype=np.float64)
    return {
        "min": round(float(arr.min()), 2),
        "max": round(float(arr.max()), 2),
        "std": round(float(arr.std()), 2),
    }


def consistency(clips: Sequence[Clip]) -> dict[str, Any]:
    """How alike a speaker's clips were recorded.

    A voice clones best from one microphone, room and level.  Looks at the
    source loudness (``source_lufs``, from :class:`~prep.stages.measure.Measure`:
    level or distance changes), bandwidth (``source_bandwidth_hz``: a
    different microphone, phone or codec), SNR and the source formats.

    Parameters
    ----------
    clips : sequence of Clip

    Returns
    -------
    dict
        ``source_lufs``, ``bandwidth_hz``, ``snr_db``: ``{min, max, std}`` or
        ``None``; ``sample_rates`` and ``codecs`` of the sources; ``notes``:
        human-readable findings.
    """
    lufs = [v for c in clips if (v := pick(c.metrics, "source_lufs")) is not None]
    bandwidth = [v for c in clips if (v := source_metrics(c.metrics)["bandwidth_hz"]) is not None and v > 0]
    snr = [v for c in clips if (v := source_metrics(c.metrics)["snr_db"]) is not None]
    rates = sorted({c.input.sample_rate for c in clips if c.input is not None})
    codecs = sorted({c.input.codec for c in clips if c.input is not None})
    notes = []
    if lufs and max(lufs) - min(lufs) > LOUDNESS_SPREAD_LU:
        notes.append(
            f"source level varies by {max(lufs) - min(lufs):.0f} LU ({min(lufs):.0f} to {max(lufs):.0f} LUFS): "
            "different gain or microphone distance"
        )
    if bandwidth and max(bandwidth) / min(bandwidth) > BANDWIDTH_SPREAD_RATIO:
        notes.append(
            f"bandwidth varies from {min(bandwidth) / 1000:.1f} to {max(bandwidth) / 1000:.1f} kHz: "
            "different microphones, phones or codecs"
        )
    if snr and max(snr) - min(snr) > SNR_SPREAD_DB:
        notes.append(f"SNR varies from {min(snr):.0f} to {max(snr):.0f} dB: different rooms or background noise")
    return {
        "source_lufs": _spread(lufs),
        "bandwidth_hz": _spread(bandwidth),
        "snr_db": _spread(snr),
        "sample_rates": rates,
        "codecs": codecs,
        "notes": notes,
    }


def blocking_note(clips: Sequence[Clip], pipeline: Sequence[Mapping[str, Any]] = ()) -> str | None:
    """One line for a speaker with nothing approved: which findings held the clips back, and the
    settings that relax them.

    Parameters
    ----------
    clips : sequence of Clip
        One speaker's clips.
    pipeline : sequence of dict
        ``{"stage", "config"}`` of the stages run (a report's ``pipeline``): a
        code's setting is a field named in backquotes in its
        :data:`prep.findings.CODES` meaning that a stage's config has.

    Returns
    -------
    str or None
        ``None`` when some clip was approved (or there are no clips).
    """
    from ..findings import CODES

    if not clips or any(c.verdict == "approved" for c in clips):
        return None
    counts: dict[str, int] = {}
    for clip in clips:
        for code in {f.code for f in clip.findings if f.severity != "info"}:
            counts[code] = counts.get(code, 0) + 1
    if not counts:
        return None
    order = sorted(counts, key=lambda c: (-counts[c], c))
    shown = order[:6]
    more = f", {len(order) - len(shown)} more code(s)" if len(order) > len(shown) else ""
    settings: list[str] = []
    for code in shown:
        named = re.findall(r"`([a-z_0-9]+)`", CODES[code].meaning) if code in CODES else []
        for stage in pipeline:
            config = stage.get("config") or {}
            for key in named:
                if key in config:
                    text = f"[{stage.get('stage')}] {key} (now {_setting(config[key])})"
                    if text not in settings:
                        settings.append(text)
    line = ("nothing approved: held back by " + ", ".join(f"{c} ({counts[c]} clip(s))" for c in shown) + more)
    if settings:
        line += "; a profile file (--profile my.toml) relaxes them with " + ", ".join(settings)
    return line


def _setting(value: Any) -> str:
    return "none" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def _dataset_notes(clips: Sequence[Clip], verdicts: Mapping[str, int]) -> list[str]:
    """Speaker notes for a TTS dataset: what ``voiceprep export`` would leave out, and mixed sample rates."""
    notes = []
    approved = [c for c in clips if c.verdict == "approved"]
    no_text = sum(1 for c in approved if not c.transcript)
    if no_text:
        notes.append(f"{no_text} of {len(approved)} approved clip(s) have no transcript: export skips them "
                     "unless --allow-missing-text (add .txt/.lab sidecars or a metadata.csv)")
    if verdicts.get("warning"):
        notes.append(f"{verdicts['warning']} warning clip(s) are exported only with --include-warning")
    rates = sorted({c.sample_rate for c in clips if c.verdict in ("approved", "warning") and c.sample_rate})
    if len(rates) > 1:
        notes.append(f"clips come at {len(rates)} sample rates ({', '.join(f'{r} Hz' for r in rates)}): "
                     "sources below the profile's rate are not upsampled; a dataset usually wants one rate")
    return notes


def speaker_summary(
    clips: Sequence[Clip], *, purpose: str = "fish", pipeline: Sequence[Mapping[str, Any]] = (), **budget: Any
) -> dict[str, Any]:
    """Totals, consistency and selection for one speaker's clips.

    Parameters
    ----------
    clips : sequence of Clip
        One speaker's clips.
    purpose : str
        What the clips are for (:data:`prep.run.profiles.PURPOSES`): ``fish``
        notes advise on the Fish Audio selection, ``dataset`` notes on what
        an export would contain.
    pipeline : sequence of dict
        The stages run, for :func:`blocking_note`.
    **budget
        Passed to :func:`select_clips` (``max_clips``, ``min_total_s``, ...).

    Returns
    -------
    dict
        ``clips`` (count), ``verdicts`` (count per verdict), ``duration_s``,
        ``speech_s``, ``approved_s``, ``approved_speech_s``, ``usable_s``
        (approved + warning), ``mean_score``, ``consistency`` (see
        :func:`consistency`), ``selection`` (see :meth:`Selection.to_dict`),
        ``ready`` (``fish``: the selection reaches the minimum total; ``dataset``:
        some clip is exportable), ``exportable`` (approved clips with a
        transcript: what ``voiceprep export`` takes by default), ``voices`` (one voice or
        several: :func:`prep.voice.clips.speaker_voices`; None without speaker embeddings)
        and ``notes``.
    """
    verdicts = {v: 0 for v in VERDICTS}
    duration = speech = approved = approved_speech = usable = 0.0
    scores = []
    for clip in clips:
        verdicts[clip.verdict] = verdicts.get(clip.verdict, 0) + 1
        seconds = clip_seconds(clip)
        spoken = pick(clip.metrics, "speech_s")
        spoken = seconds if spoken is None else min(spoken, seconds)
        duration += seconds
        speech += spoken
        if clip.verdict == "approved":
            approved += seconds
            approved_speech += spoken
        if clip.verdict in ("approved", "warning"):
            usable += seconds
        if (score := finite(clip.metrics.get("score"))) is not None:
            scores.append(score)
    usable_clips = [c for c in clips if c.verdict in ("approved", "warning")]
    selection = select_clips(clips, **budget)
    exportable = sum(1 for c in clips if c.verdict == "approved" and c.transcript)
    blocked = blocking_note(clips, pipeline)
    notes = [blocked] if blocked else []
    notes += list(selection.notes) if purpose == "fish" else _dataset_notes(clips, verdicts)
    voices = _voices(clips)
    if voices is not None:
        notes.extend(voices["notes"])
    if verdicts.get("rejected"):
        notes.append(f"{verdicts['rejected']} clip(s) rejected")
    if verdicts.get("error"):
        notes.append(f"{verdicts['error']} file(s) could not be processed")
    return {
        "clips": len(clips),
        "verdicts": {k: v for k, v in verdicts.items() if v},
        "duration_s": round(duration, 3),
        "speech_s": round(speech, 3),
        "approved_s": round(approved, 3),
        "approved_speech_s": round(approved_speech, 3),
        "usable_s": round(usable, 3),
        "mean_score": round(float(np.mean(scores)), 1) if scores else None,
        "consistency": consistency(usable_clips),
        "selection": selection.to_dict(),
        "ready": selection.enough if purpose == "fish" else exportable > 0,
        "exportable": exportable,
        "voices": voices,
        "notes": notes,
    }


def outside_main_voice(clips: Sequence[Clip]) -> tuple[frozenset[str], str | None]:
    """Ids of one speaker's clips that belong to another voice than its main one, and a note naming them.

    Only when the clips clearly form several voices (:func:`prep.voice.clips.speaker_voices`
    counts two or more): the main voice is the one with the most speech, and the clips of the
    other counting voices are outside it.  A sample for one voice never mixes voices.  Empty
    (and no note) with one voice, too few embedded clips, or without speaker embeddings.
    """
    voices = _voices(clips)
    if not voices or not voices["several"]:
        return frozenset(), None
    counting = [v for v in voices["voices"] if v["counts"]]
    main, others = counting[0], counting[1:]
    outside = frozenset(cid for v in others for cid in v["clips"])
    note = (f"the clips form {len(counting)} voices: only the main one ({main['name']}, {main['speech_s']:.0f} s) "
            f"is used; {len(outside)} clip(s) of the others were left out (--speakers auto makes each its own "
            f"speaker): {', '.join(sorted(outside))}")
    return outside, note


def _voices(clips: Sequence[Clip]) -> dict[str, Any] | None:
    """:func:`prep.voice.clips.speaker_voices` when any clip carries a speaker embedding, else None."""
    if not any("voice_embedding" in c.metrics for c in clips):
        return None
    from ..voice.clips import speaker_voices  # clustering needs SciPy: only with embeddings

    return speaker_voices(clips, name=clips[0].speaker)


def summarize_speakers(
    clips: Iterable[Clip], *, purpose: str = "fish", pipeline: Sequence[Mapping[str, Any]] = (), **budget: Any
) -> dict[str, dict[str, Any]]:
    """:func:`speaker_summary` for every speaker, by speaker name (sorted)."""
    groups: dict[str, list[Clip]] = {}
    for clip in clips:
        groups.setdefault(clip.speaker, []).append(clip)
    return {name: speaker_summary(group, purpose=purpose, pipeline=pipeline, **budget)
            for name, group in sorted(groups.items())}

