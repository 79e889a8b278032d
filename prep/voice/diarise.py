"""Who speaks when in one recording, and the main voice's turns.

:func:`diarise`: speech windows (2 s, hop 1 s, :func:`~prep.voice.embed.window_embeddings`)
-> embeddings -> agglomerative clustering (:func:`~prep.voice.cluster.cluster_voices`) ->
each window re-assigned to its nearest voice centre -> turns.  What cannot be attributed
safely is dropped and reported, never guessed:

* a window whose embedding is not clearly nearer one voice than another (margin below
  ``margin``) or far from every voice (similarity below ``min_similarity``): overlapping
  speech, laughter, a change of speaker inside the window -> ``"ambiguous window"``;
* speech covered by kept windows of two voices -> ``"near a change"``;
* speech covered by no kept window (a region too short for a window) -> ``"no window"``;
* a turn shorter than ``min_turn_s`` -> ``"short turn"``.

:func:`keep_main_voice` returns the turns of the voice with the most speech.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError
from .cluster import cluster_voices
from .embed import Embedder, WindowEmbeddings, window_embeddings

__all__ = ["ONE_CHANGE_SAME_VOICE", "WINDOW_DISTANCE", "Diarisation", "Dropped", "Turn", "diarise", "keep_main_voice"]

_GRID_S = 0.01
#: Average-linkage cosine distance for 2 s windows.  Looser than
#: :data:`~prep.voice.cluster.CLUSTER_DISTANCE` for 3.5 s clips: two 2 s windows of one corpus
#: speaker have a median cosine of ~0.70, of two speakers ~0.2-0.45 (``benchmarks/speakers.py``).
WINDOW_DISTANCE = 0.5
#: Two voices with a single change between them are one voice when the embeddings of their whole speech
#: are at least this similar.  A change of background (noise, room, microphone) halfway through one
#: speaker's recording splits 2 s windows but not whole stretches: one LibriSpeech speaker with the
#: second half at 5-15 dB SNR of real noise gave 0.36-0.71 (12 of 14 splits >= 0.5), two speakers
#: with one turn each 0.0-0.52 (1 of 15 >= 0.5) (``benchmarks/diarise_background.py``: splits 14 -> 3 of 24,
#: two-speaker recordings taken as one 0 -> 1 of 15).
ONE_CHANGE_SAME_VOICE = 0.5


@dataclass(frozen=True)
class Turn:
    """A stretch of speech of one voice, in seconds."""

    start: float
    end: float
    voice: str

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class Dropped:
    """Speech left out of every turn, and why."""

    start: float
    end: float
    reason: str


@dataclass(frozen=True)
class Diarisation:
    """Voices and turns of one recording.

    Attributes
    ----------
    turns : tuple of Turn
        In time order.
    dropped : tuple of Dropped
        Speech not attributed, in time order.
    voices : tuple of str
        Voice names, most speech first (``<name>-1`` is the main voice).
    speech_s : tuple of float
        Seconds of kept turns per voice, in ``voices`` order.
    windows : WindowEmbeddings
        The windows the decision was made on.
    window_voice : np.ndarray, int, shape (windows,)
        Voice index of each window; -1 for dropped (ambiguous) windows.
    """

    turns: tuple[Turn, ...]
    dropped: tuple[Dropped, ...]
    voices: tuple[str, ...]
    speech_s: tuple[float, ...]
    windows: WindowEmbeddings
    window_voice: np.ndarray

    @property
    def main_voice(self) -> str | None:
        """The voice with the most speech (None when there is no turn)."""
        return self.voices[0] if self.voices else None

    def dropped_s(self) -> dict[str, float]:
        """Seconds of dropped speech per reason."""
        out: dict[str, float] = {}
        for d in self.dropped:
            out[d.reason] = out.get(d.reason, 0.0) + d.end - d.start
        return out


def _runs(codes: np.ndarray) -> list[tuple[int, int, int]]:
    """(start, end, code) of runs of equal values in an int array."""
    if codes.size == 0:
        return []
    change = np.flatnonzero(np.diff(codes)) + 1
    starts = np.concatenate([[0], change])
    ends = np.concatenate([change, [codes.size]])
    return [(int(a), int(b), int(codes[a])) for a, b in zip(starts, ends, strict=True)]


def diarise(audio: np.ndarray, *, sample_rate: int, name: str = "voice", window_s: float = 2.0, hop_s: float = 1.0,
            distance: float = WINDOW_DISTANCE, margin: float = 0.1, min_similarity: float = 0.6,
            min_turn_s: float = 1.0, min_voice_windows: int = 3, embedder: Embedder | None = None,
            regions: list[tuple[float, float]] | None = None) -> Diarisation:
    """Find the voices of one recording and their turns.

    Parameters
    ----------
    audio : np.ndarray, shape (samples,) or (channels, samples)
    sample_rate : int
    name : str
        Voice label prefix (``<name>-1``...).
    window_s, hop_s : float
        Analysis windows (see :func:`~prep.voice.embed.window_embeddings`).
    distance : float
        Clustering cut (average-linkage cosine distance).
    margin : float
        A window must be this much more similar to its voice than to any other.
    min_similarity : float
        A window less similar than this to every voice is dropped.
    min_turn_s : float
        Shorter turns are dropped.
    min_voice_windows : int
        A cluster of fewer windows is no voice: its windows are re-assigned to the nearest
        voice when similar enough (else dropped as ambiguous).
    embedder : Embedder, optional
    regions : list of (start_s, end_s), optional
        Speech regions, found with the VAD when not given.

    Returns
    -------
    Diarisation
    """
    if min_turn_s < 0 or margin < 0:
        raise ConfigError("min_turn_s and margin must be >= 0")
    win = window_embeddings(audio, sample_rate=sample_rate, window_s=window_s, hop_s=hop_s, embedder=embedder,
                            regions=regions)
    n = win.vectors.shape[0]
    if not n:
        return _turns(win, np.full(0, -1, dtype=int), name=name, min_turn_s=min_turn_s)
    first = cluster_voices(win.vectors, speech_s=win.speech_s, name=name, distance=distance)
    big = [k for k in range(first.count) if (first.index == k).sum() >= min(min_voice_windows, n)] or [0]
    groups = [first.index == k for k in big]
    result = _turns(win, _assign(win.vectors, groups, margin=margin, min_similarity=min_similarity),
                    name=name, min_turn_s=min_turn_s)
    changes = sum(a.voice != b.voice for a, b in zip(result.turns, result.turns[1:], strict=False))
    if len(result.voices) == 2 and changes == 1:
        # One change of "voice" in the whole recording is what a change of background (noise, room,
        # microphone) also looks like to 2 s windows.  Judge it on each side's whole speech instead.
        sim = _voices_similarity(audio, sample_rate=sample_rate, diarisation=result, embedder=embedder)
        if sim is not None and sim >= ONE_CHANGE_SAME_VOICE:
            return _turns(win, _assign(win.vectors, [np.ones(n, bool)], margin=margin, min_similarity=min_similarity),
                          name=name, min_turn_s=min_turn_s)
    return result


def _assign(vectors: np.ndarray, groups: list[np.ndarray], *, margin: float, min_similarity: float) -> np.ndarray:
    """Each window's voice (index into ``groups``, -1 when ambiguous) by its nearest group centre."""
    n = vectors.shape[0]
    centres = np.stack([vectors[g].mean(axis=0) for g in groups])
    centres /= np.linalg.norm(centres, axis=1, keepdims=True) + 1e-12
    sim = vectors @ centres.T  # (n, voices)
    best = sim.argmax(axis=1)
    top = sim[np.arange(n), best]
    second = np.sort(sim, axis=1)[:, -2] if len(groups) > 1 else np.full(n, -1.0)
    keep = (top >= min_similarity) & (top - second >= margin)
    return np.where(keep, best, -1)


def _voices_similarity(audio: np.ndarray, *, sample_rate: int, diarisation: Diarisation,
                       embedder: Embedder | None) -> float | None:
    """Cosine similarity of the first two voices' embeddings, each from all its turns' audio joined."""
    from .embed import embed_clip

    mono = audio if audio.ndim == 1 else audio.mean(axis=0)
    vectors = []
    for voice in diarisation.voices[:2]:
        parts = [mono[round(t.start * sample_rate) : round(t.end * sample_rate)]
                 for t in diarisation.turns if t.voice == voice]
        found = embed_clip(np.concatenate(parts).astype(np.float32), sample_rate=sample_rate, embedder=embedder)
        if not found.valid:
            return None
        vectors.append(np.asarray(found.vector, dtype=np.float64))
    a, b = vectors
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))


def _turns(win: WindowEmbeddings, window_voice: np.ndarray, *, name: str, min_turn_s: float) -> Diarisation:
    """Turns, dropped speech and voices from each window's voice (-1: ambiguous)."""
    n = window_voice.size
    # frame grid over the recording: votes of kept windows
    duration = max([b for _, b in win.regions], default=0.0)
    m = int(np.ceil(duration / _GRID_S)) + 1
    is_speech = np.zeros(m, bool)
    for a, b in win.regions:
        is_speech[round(a / _GRID_S) : round(b / _GRID_S)] = True
    n_voices = int(window_voice.max()) + 1 if n and (window_voice >= 0).any() else 0
    votes = np.zeros((max(n_voices, 1), m), dtype=np.int32)
    covered_ambiguous = np.zeros(m, bool)
    for i in range(n):
        a, b = round(win.starts[i] / _GRID_S), round(win.ends[i] / _GRID_S)
        if window_voice[i] >= 0:
            votes[window_voice[i], a:b] += 1
        else:
            covered_ambiguous[a:b] = True
    n_voted = (votes > 0).sum(axis=0)
    # codes: >=0 voice, -1 not speech, -2 near a change, -3 no window, -4 ambiguous window
    codes = np.where(n_voted == 1, votes.argmax(axis=0), np.where(n_voted > 1, -2, -3))
    codes = np.where((codes == -3) & covered_ambiguous, -4, codes)
    codes = np.where(is_speech, codes, -1)
    reasons = {-2: "near a change", -3: "no window", -4: "ambiguous window", -5: "short turn"}
    # turns: runs of one voice bridged over short pauses (< 0.5 s of non-speech)
    runs = _runs(codes)
    merged: list[list[int]] = []
    for a, b, c in runs:
        if c == -1 and merged and b - a < int(0.5 / _GRID_S):
            merged.append([a, b, -6])  # a short pause inside a turn, decided below
            continue
        merged.append([a, b, c])
    turns_idx: list[tuple[int, int, int]] = []
    dropped: list[Dropped] = []
    i = 0
    while i < len(merged):
        a, b, c = merged[i]
        if c >= 0:
            end = b
            j = i + 1
            while j + 1 < len(merged) and merged[j][2] == -6 and merged[j + 1][2] == c:
                end = merged[j + 1][1]
                j += 2
            turns_idx.append((a, end, c))
            i = j
            continue
        if c <= -2 and c != -6:
            dropped.append(Dropped(a * _GRID_S, b * _GRID_S, reasons[c]))
        i += 1
    kept: list[tuple[int, int, int]] = []
    for a, b, c in turns_idx:
        speech_in = float(is_speech[a:b].sum()) * _GRID_S
        if speech_in < min_turn_s:
            dropped.append(Dropped(a * _GRID_S, b * _GRID_S, reasons[-5]))
        else:
            kept.append((a, b, c))
    # voices ordered by kept speech
    amount = np.zeros(max(n_voices, 1))
    for a, b, c in kept:
        amount[c] += float(is_speech[a:b].sum()) * _GRID_S
    order = [int(k) for k in np.argsort(-amount, kind="stable") if amount[k] > 0]
    rename = {k: f"{name}-{r + 1}" for r, k in enumerate(order)}
    turns = tuple(Turn(a * _GRID_S, b * _GRID_S, rename[c]) for a, b, c in kept)
    remap = {k: r for r, k in enumerate(order)}
    window_voice = np.array([remap.get(int(v), -1) for v in window_voice], dtype=int)
    return Diarisation(
        turns=turns,
        dropped=tuple(sorted(dropped, key=lambda d: d.start)),
        voices=tuple(rename[k] for k in order),
        speech_s=tuple(float(amount[k]) for k in order),
        windows=win,
        window_voice=window_voice,
    )


def keep_main_voice(diarisation: Diarisation) -> tuple[Turn, ...]:
    """The turns of the voice with the most speech (empty when there is none).

    Parameters
    ----------
    diarisation : Diarisation
        From :func:`diarise`.

    Returns
    -------
    tuple of Turn
    """
    main = diarisation.main_voice
    return tuple(t for t in diarisation.turns if t.voice == main)
