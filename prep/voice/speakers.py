"""``--speakers auto``: split each folder's clips into its voices, named ``<folder>-1``, ``<folder>-2``...

After a run, the clips of each input speaker (a folder, a ``--speaker`` name or a metadata
speaker: the *folder speaker* of their file) are clustered by their ``voice_embedding``
(:func:`prep.voice.clips.speaker_voices`: average linkage, :data:`~prep.voice.cluster.CLUSTER_DISTANCE`,
no fixed count).  When they form several voices (each of 2 or more clips, or one clip with 30 % of
the speech), every voice becomes a speaker ``<folder>-1``, ``<folder>-2``... in decreasing amount
of speech.  A folder of one voice keeps its name.  A clip of a voice too small to count (one
stray clip) goes to the voice nearest to it, where the per-speaker check then flags it
(``voice.other``); a clip without an embedding (rejected before the voice stage, no speech, or
on another channel) goes with the voice most of its file's clips went to, and keeps the folder's
name when its file has none.

:func:`auto_speakers` is pure: it depends only on the clip records and the folder speaker of
each, so running it again on its own result changes nothing (the runner relies on that to make
a resumed run converge).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..clip import Clip
from .clips import MIN_VOICE_SHARE, clip_embedding, speaker_voices
from .cluster import CLUSTER_DISTANCE

__all__ = ["SpeakersAuto", "auto_speakers"]


@dataclass(frozen=True)
class SpeakersAuto:
    """Settings of ``--speakers auto`` (part of a run's resume key when it is on)."""

    distance: float = CLUSTER_DISTANCE
    min_share: float = MIN_VOICE_SHARE


def _unit(v: np.ndarray) -> np.ndarray:
    return v / (np.linalg.norm(v) + 1e-12)


def auto_speakers(clips: Sequence[Clip], folder_of: Mapping[str, str], *,
                  config: SpeakersAuto | None = None) -> list[str]:
    """The speaker each clip should have under ``--speakers auto``.

    Parameters
    ----------
    clips : sequence of Clip
        All clips of a run (any speakers; records without audio are fine).
    folder_of : mapping
        ``source`` path -> the folder speaker of that file (the job's speaker); a clip whose
        source is missing uses its own speaker.
    config : SpeakersAuto, optional

    Returns
    -------
    list of str
        One speaker per clip, in order.
    """
    config = config or SpeakersAuto()
    folder = [folder_of.get(c.source, c.speaker) for c in clips]
    target = list(folder)
    groups: dict[str, list[int]] = {}
    for i, name in enumerate(folder):
        groups.setdefault(name, []).append(i)
    for name, members in groups.items():
        found = speaker_voices([clips[i] for i in members], name=name, min_share=config.min_share,
                               distance=config.distance)
        if not found or not found["several"]:
            for i in members:
                target[i] = name
            continue
        counting = [v for v in found["voices"] if v["counts"]]
        names = {v["name"]: f"{name}-{k + 1}" for k, v in enumerate(counting)}
        by_id = {clips[i].id: i for i in members}
        centres = []
        for v in counting:
            vecs = [clip_embedding(clips[by_id[cid]]) for cid in v["clips"]]
            centres.append(_unit(np.mean(np.stack([x for x in vecs if x is not None]), axis=0)))
        assigned: dict[int, str] = {}
        for v in found["voices"]:
            for cid in v["clips"]:
                i = by_id[cid]
                if v["name"] in names:
                    assigned[i] = names[v["name"]]
                else:  # a stray clip: the nearest voice (the voice check then flags it)
                    vec = _unit(clip_embedding(clips[i]))  # type: ignore[arg-type]
                    assigned[i] = names[counting[int(np.argmax([vec @ c for c in centres]))]["name"]]
        per_source: dict[str, Counter] = {}
        for i, spk in assigned.items():
            per_source.setdefault(clips[i].source, Counter())[spk] += 1
        for i in members:
            if i in assigned:
                target[i] = assigned[i]
            elif clips[i].source in per_source:
                target[i] = sorted(per_source[clips[i].source].items(), key=lambda kv: (-kv[1], kv[0]))[0][0]
            else:
                target[i] = name
    return target
