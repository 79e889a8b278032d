"""The voices of one long file, decided over all its pieces.

A long file is processed in pieces of 60-120 s (:mod:`prep.run.longform`), each diarised on its
own (:class:`prep.stages.diarise.Diarise` keeps and tags every voice of a piece:
``diarise_voice_index``).  Which voice is the *main* one is a property of the whole file: the
interviewer may talk most in one piece and the guest in all the others.  :func:`file_voices`
takes all clips of one file, groups them by (piece, voice of the piece), embeds each group
(the speech-weighted mean of its clips' ``voice_embedding``), matches the groups into the
file's voices and keeps (``keep_voice="main"``) or renames (``"all"``) them.

Matching is greedy in decreasing amount of speech: a group joins the most similar file voice
that has no group of the same piece yet (two voices of one piece are never merged), when its
cosine similarity to that voice's centre is at least ``min_similarity``; otherwise it starts a
new file voice.  File voices are then ordered by speech (index 0 = the main voice).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from ..clip import Clip
from ..errors import ConfigError
from ..findings import finding
from .clips import clip_embedding
from .cluster import CLUSTER_DISTANCE

__all__ = ["MATCH_SIMILARITY", "file_voices"]

#: Cosine similarity of a piece's voice to a file voice's centre needed to join it (the clip-level
#: clustering cut: a piece's voice holds many seconds of speech, like a clip).
MATCH_SIMILARITY = 1.0 - CLUSTER_DISTANCE


def _speech(clip: Clip) -> float:
    value = clip.metrics.get("speech_s")
    return float(value) if isinstance(value, (int, float)) and np.isfinite(value) and value > 0 else clip.duration_s


def _unit(v: np.ndarray) -> np.ndarray:
    return v / (np.linalg.norm(v) + 1e-12)


def file_voices(clips: Sequence[Clip], *, keep_voice: str = "main",
                min_similarity: float = MATCH_SIMILARITY) -> tuple[list[Clip], list[Clip]]:
    """Match the voices of a long file's pieces and keep the file's main voice (or rename the others).

    Pure: works on the clip records (no audio needed).

    Parameters
    ----------
    clips : sequence of Clip
        All clips of one file (pieces tagged with ``piece_index``; diarised clips with
        ``diarise_voice_index``).
    keep_voice : {"main", "all"}
        ``main``: the clips of other file voices are dropped and the kept ones get a
        ``diarise.other_voices`` finding with the seconds dropped; ``all``: file voice ``k >= 1``
        becomes speaker ``<speaker>-<k+1>``.
    min_similarity : float
        Cosine similarity a piece's voice needs to join a file voice.

    Returns
    -------
    kept : list of Clip
        In the given order, with ``diarise_voice_index`` (file-level) and ``diarise_voice_count``
        set when the file has several voices.
    dropped : list of Clip
        The clips of other voices (``main`` only), unchanged.
    """
    from ..stages.diarise import KEEP_VOICES, voice_speaker

    if keep_voice not in KEEP_VOICES:
        raise ConfigError(f"keep_voice must be one of {', '.join(KEEP_VOICES)}, got {keep_voice!r}")
    groups: dict[tuple[int, int], list[int]] = {}
    for i, clip in enumerate(clips):
        piece = clip.metrics.get("piece_index")
        voice = clip.metrics.get("diarise_voice_index")
        if isinstance(piece, int) and isinstance(voice, int):
            groups.setdefault((piece, voice), []).append(i)
    vectors: dict[tuple[int, int], tuple[np.ndarray, float]] = {}
    for key, members in groups.items():
        got = [(v, _speech(clips[i])) for i in members if (v := clip_embedding(clips[i])) is not None]
        if got and len({v.size for v, _ in got}) == 1:
            weights = np.array([w for _, w in got])
            vectors[key] = (_unit(np.average(np.stack([v for v, _ in got]), axis=0, weights=weights)),
                            float(sum(_speech(clips[i]) for i in members)))
    # greedy matching, most speech first; never two voices of one piece in one file voice
    centres: list[np.ndarray] = []
    sums: list[np.ndarray] = []
    pieces_of: list[set[int]] = []
    amount: list[float] = []
    voice_of: dict[tuple[int, int], int] = {}
    for key in sorted(vectors, key=lambda k: (-vectors[k][1], k)):
        vec, speech = vectors[key]
        best, best_sim = -1, min_similarity
        for j, centre in enumerate(centres):
            sim = float(vec @ centre)
            if key[0] not in pieces_of[j] and sim >= best_sim:
                best, best_sim = j, sim
        if best < 0:
            centres.append(vec)
            sums.append(vec * speech)
            pieces_of.append(set())
            amount.append(0.0)
            best = len(centres) - 1
        else:
            sums[best] = sums[best] + vec * speech
            centres[best] = _unit(sums[best])
        pieces_of[best].add(key[0])
        amount[best] += speech
        voice_of[key] = best
    if len(centres) <= 1:
        return list(clips), []
    rank = {j: r for r, j in enumerate(sorted(range(len(centres)), key=lambda j: (-amount[j], j)))}
    file_voice = {key: rank[j] for key, j in voice_of.items()}
    other_s = sum(a for j, a in enumerate(amount) if rank[j] > 0)
    kept: list[Clip] = []
    dropped: list[Clip] = []
    for i, clip in enumerate(clips):
        key = (clip.metrics.get("piece_index"), clip.metrics.get("diarise_voice_index"))
        voice = file_voice.get(key)  # type: ignore[arg-type]
        if voice is None:  # no embedding in its group (rejected clips): left as it is
            kept.append(clip)
            continue
        clip = clip.with_metrics(diarise_voice_index=voice, diarise_voice_count=len(centres))
        if keep_voice == "all":
            kept.append(dataclasses.replace(clip, speaker=voice_speaker(clip.speaker, voice)))
        elif voice == 0:
            kept.append(clip.with_metrics(diarise_other_s=round(other_s, 3)).with_findings(
                finding("diarise.other_voices", metric="diarise_other_s", value=other_s, voices=len(centres))))
        else:
            dropped.append(clips[i])
    return kept, dropped
