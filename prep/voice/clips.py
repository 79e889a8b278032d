"""One voice per speaker: the checks across a speaker's clips, from their stored embeddings.

Each clip written with the ``[voice]`` extra carries ``voice_embedding``
(:class:`prep.stages.voice.VoiceEmbed`).  After all files, :func:`flag_other_voices` compares
every speaker's clips with the speaker's robust centre (:func:`~prep.voice.consistency.check_voice`)
and flags those that sound like someone else; :func:`speaker_voices` tells whether a speaker's
clips form several voices (:func:`~prep.voice.cluster.cluster_voices`) for the report.  Both
work on clips without audio (read back from a journal or a report).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..clip import Clip
from ..errors import ConfigError
from ..findings import finding
from ..metrics import finite, source_metrics
from .cluster import CLUSTER_DISTANCE, cluster_voices
from .consistency import REJECT_SIMILARITY, WARN_SIMILARITY, check_voice

__all__ = [
    "CHANNEL_BANDWIDTH_RATIO",
    "MIN_CLIPS",
    "MIN_VOICE_SHARE",
    "OTHER_VOICE_CODES",
    "clip_embedding",
    "flag_other_voices",
    "is_other_voice",
    "off_channel",
    "speaker_voices",
]

#: Fewest clips with an embedding a speaker needs for the voice checks.
MIN_CLIPS = 3
#: A voice among a speaker's clips counts when it has 2 clips, or this share of their speech on its
#: own.  Not lower: one clip of another voice among four to six alike (~15-25 % of the speech) is a
#: planted clip (``voice.other``), not a second voice.
MIN_VOICE_SHARE = 0.3
#: Finding codes of a clip that sounds like another voice (never selected).
OTHER_VOICE_CODES = frozenset({"voice.other", "voice.other_reject"})
#: A clip whose bandwidth is below the speaker's median bandwidth divided by this is on another
#: channel (a phone call among studio takes): the embedding follows the channel too (a
#: recording resampled to 8 kHz scored 0.57 against its wideband copies), so such a clip is not judged.
CHANNEL_BANDWIDTH_RATIO = 2.0


def clip_embedding(clip: Clip) -> np.ndarray | None:
    """The clip's ``voice_embedding`` as a float64 vector, or None when it has none (or a bad one)."""
    value = clip.metrics.get("voice_embedding")
    if not isinstance(value, (list, tuple)) or not value:
        return None
    try:
        vec = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    if vec.ndim != 1 or not np.isfinite(vec).all() or not np.linalg.norm(vec) > 0:
        return None
    return vec


def _speech_s(clip: Clip) -> float:
    value = finite(clip.metrics.get("speech_s"))
    if value is None:
        value = finite(clip.metrics.get("duration_s")) or clip.duration_s
    return max(float(value or 0.0), 1e-3)


def _bandwidth_hz(clip: Clip) -> float | None:
    value = source_metrics(clip.metrics)["bandwidth_hz"]
    return value if value is not None and value > 0 else None


def off_channel(clips: Sequence[Clip], *, ratio: float = CHANNEL_BANDWIDTH_RATIO) -> set[int]:
    """Indices of the clips whose bandwidth is below the group's median bandwidth over ``ratio``."""
    widths = {i: w for i, c in enumerate(clips) if (w := _bandwidth_hz(c)) is not None}
    if len(widths) < 2:
        return set()
    median = float(np.median(list(widths.values())))
    return {i for i, w in widths.items() if w * ratio < median}


def is_other_voice(clip: Clip) -> bool:
    """Whether the clip was flagged as sounding like another voice (:data:`OTHER_VOICE_CODES`)."""
    return any(f.code in OTHER_VOICE_CODES for f in clip.findings)


def _by_speaker(clips: Sequence[Clip]) -> dict[str, list[int]]:
    groups: dict[str, list[int]] = {}
    for i, clip in enumerate(clips):
        groups.setdefault(clip.speaker, []).append(i)
    return groups


def flag_other_voices(clips: Sequence[Clip], *, warn: float = WARN_SIMILARITY, reject: float = REJECT_SIMILARITY,
                      min_clips: int = MIN_CLIPS) -> list[Clip]:
    """Flag the clips that do not sound like their speaker's voice.

    For each speaker, the approved and warning clips that carry a ``voice_embedding`` are
    scored by cosine similarity to the speaker's robust centre (weighted by seconds of
    speech).  Each gains ``voice_similarity``; below ``warn`` a ``voice.other`` warning, below
    ``reject`` a ``voice.other_reject``.  A speaker with fewer than ``min_clips`` such clips is
    not checked.  Clips on another channel (:func:`off_channel`: a phone-band clip among
    wideband ones) are neither part of the centre nor judged.

    Parameters
    ----------
    clips : sequence of Clip
        Any number of speakers; each speaker is judged against itself.
    warn, reject : float
        Cosine similarity thresholds (``reject <= warn``).
    min_clips : int
        Fewest clips with an embedding for the check.

    Returns
    -------
    list of Clip
        Same order and length as ``clips``; unchanged clips are the same objects.
    """
    if min_clips < 2:
        raise ConfigError(f"min_clips must be >= 2, got {min_clips!r}")
    if not 0 <= reject <= warn <= 1:
        raise ConfigError(f"need 0 <= reject <= warn <= 1, got reject={reject!r}, warn={warn!r}")
    out = list(clips)
    for members in _by_speaker(clips).values():
        usable = [i for i in members if clips[i].verdict in ("approved", "warning")]
        vectors = {i: v for i in usable if (v := clip_embedding(clips[i])) is not None}
        other_channel = off_channel([clips[i] for i in vectors])
        vectors = {i: v for k, (i, v) in enumerate(vectors.items()) if k not in other_channel}
        if len(vectors) < min_clips or len({v.size for v in vectors.values()}) != 1:
            continue
        idx = list(vectors)
        check = check_voice(np.stack([vectors[i] for i in idx]), weights=np.array([_speech_s(clips[i]) for i in idx]),
                            warn=warn, reject=reject)
        for i, sim, flag in zip(idx, check.similarity, check.flags, strict=True):
            if not math.isfinite(sim):
                continue
            clip = clips[i].with_metrics(voice_similarity=round(float(sim), 4))
            if flag == "reject":
                clip = clip.with_findings(finding("voice.other_reject", metric="voice_similarity", value=sim,
                                                  threshold=reject))
            elif flag == "warn":
                clip = clip.with_findings(finding("voice.other", metric="voice_similarity", value=sim,
                                                  threshold=warn))
            out[i] = clip
    return out


def speaker_voices(clips: Sequence[Clip], *, name: str = "voice", min_clips: int = MIN_CLIPS,
                   min_share: float = MIN_VOICE_SHARE, distance: float = CLUSTER_DISTANCE) -> dict[str, Any] | None:
    """Whether one speaker's clips hold one voice or several, for the report.

    The clips with a ``voice_embedding`` (any verdict) are clustered
    (:func:`~prep.voice.cluster.cluster_voices`, voices named ``<name>-1``, ``<name>-2``... by
    amount of speech).  A voice *counts* when it has at least 2 clips or ``min_share`` of their
    speech; two or more counting voices make a ``several`` note.  Clips on another channel
    (:func:`off_channel`) are left out and named in a note.

    Parameters
    ----------
    clips : sequence of Clip
        One speaker's clips.
    name : str
        The speaker's name (prefix of the voice names).
    min_clips : int
        Fewest clips with an embedding for any voice check.
    min_share : float
        Share (0-1) of the speech a one-clip voice needs to count.
    distance : float
        Clustering distance.

    Returns
    -------
    dict or None
        None when no clip has an embedding (the ``[voice]`` extra is missing).  Else
        ``embedded`` (clips with an embedding), ``checked`` (whether there were ``min_clips``),
        ``count`` (voices that count), ``voices`` (each ``{"name", "clips", "speech_s"}``, ids in
        clip order, every voice found), ``several`` and ``notes``.
    """
    embedded = [(c, v) for c in clips if (v := clip_embedding(c)) is not None]
    if not embedded:
        return None
    other_channel = off_channel([c for c, _ in embedded])
    items = [item for k, item in enumerate(embedded) if k not in other_channel]
    skipped = [embedded[k][0].id for k in sorted(other_channel)]
    channel_notes = [f"voice not judged for {len(skipped)} clip(s) of a much narrower bandwidth than the "
                     f"others (phone or codec): {', '.join(skipped)}"] if skipped else []
    n = len(items)
    if n < min_clips:
        return {"embedded": n, "checked": False, "count": None, "voices": [], "several": False,
                "notes": [f"voice not checked: {n} clip(s) with speech embedded, {min_clips} needed",
                          *channel_notes]}
    if len({v.size for _, v in items}) != 1:
        return {"embedded": n, "checked": False, "count": None, "voices": [], "several": False,
                "notes": ["voice not checked: the clips' embeddings come from different models"]}
    speech = np.array([_speech_s(c) for c, _ in items])
    found = cluster_voices(np.stack([v for _, v in items]), speech_s=speech, name=name, distance=distance)
    total = float(speech.sum())
    voices = []
    for k, voice in enumerate(found.names):
        ids = [c.id for (c, _), j in zip(items, found.index, strict=True) if j == k]
        share = found.speech_s[k] / total if total > 0 else 0.0
        voices.append({"name": voice, "clips": ids, "speech_s": round(found.speech_s[k], 3),
                       "counts": len(ids) >= 2 or share >= min_share})
    counting = [v for v in voices if v["counts"]]
    notes = []
    if len(counting) >= 2:
        parts = "; ".join(f"{v['name']}: {len(v['clips'])} clip(s), {v['speech_s']:.0f} s ({', '.join(v['clips'])})"
                          for v in counting)
        notes.append(f"{len(counting)} different voices among these clips: {parts}")
    return {"embedded": n, "checked": True, "count": len(counting), "voices": voices,
            "several": len(counting) >= 2, "notes": [*notes, *channel_notes]}
