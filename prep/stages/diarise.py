"""The ``diarise`` stage: who speaks when in a recording, and only one voice per clip.

Runs after :class:`~prep.stages.trim.Trim` and before slicing, on every recording (and every
piece of a long file) longer than ``min_recording_s``.  :func:`prep.voice.diarise.diarise`
finds the voices from 2 s windows of speech (speaker embeddings of the VAD's speech,
agglomerative clustering, each window re-assigned to its nearest voice).

* **One voice** found: the clip passes through unchanged (only ``diarise_voice_count`` and
  ``diarise_voice_index`` are added), whatever windows were ambiguous -- a single voice is never
  split.
* **Several voices**: the clip is cut at every change of voice into one clip per turn (id
  ``<id>-t<k>``, ``span_s`` in source time), so the slicer works inside one voice and no clip
  spans a change of voice.  Speech where voices overlap, near a change or in turns shorter than
  ``min_turn_s`` is dropped and reported on the kept clips (``diarise.unseparated``), never passed
  on as one voice.  With ``keep_voice="main"`` only the voice with the most speech is kept (the
  others' turns are dropped: ``diarise.other_voices``); with ``"all"`` every voice is kept, the
  main one under the clip's speaker and the others as ``<speaker>-2``, ``<speaker>-3``... in
  decreasing amount of speech.
* **Pieces of a long file** (``long_file`` metric): every voice is kept and tagged
  (``diarise_voice_index``) whatever ``keep_voice`` says, because the main voice is a property
  of the whole file: the runner matches the pieces' voices across the file and keeps or renames
  them there (:func:`prep.voice.pieces.file_voices`).

Without the ``[voice]`` extra (``model == ""``) the stage leaves every clip as it is.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from ..clip import Clip
from ..errors import ConfigError
from ..findings import finding
from .voice import voice_model

if TYPE_CHECKING:
    from ..voice.diarise import Diarisation

__all__ = ["KEEP_VOICES", "Diarise", "turn_bounds", "voice_speaker"]

#: Values of ``keep_voice``.
KEEP_VOICES = ("main", "all")


def voice_speaker(speaker: str, index: int) -> str:
    """Speaker label of a recording's voice ``index`` (0 = main): ``speaker``, then ``speaker-2``, ``-3``..."""
    return speaker if index <= 0 else f"{speaker}-{index + 1}"


def turn_bounds(turns: list[tuple[float, float]], *, duration_s: float, pad_s: float) -> list[tuple[float, float]]:
    """Each turn widened by up to ``pad_s`` on each side, never past the middle of the gap to a neighbour.

    Parameters
    ----------
    turns : list of (start_s, end_s)
        Sorted, disjoint (all turns of the recording, kept or not).
    duration_s : float
        Length of the recording.
    pad_s : float

    Returns
    -------
    list of (start_s, end_s)
    """
    if pad_s < 0:
        raise ConfigError(f"pad_s must be >= 0, got {pad_s!r}")
    out = []
    for k, (a, b) in enumerate(turns):
        lo = 0.0 if k == 0 else (turns[k - 1][1] + a) / 2
        hi = duration_s if k == len(turns) - 1 else (b + turns[k + 1][0]) / 2
        out.append((max(lo, a - pad_s, 0.0), min(hi, b + pad_s, duration_s)))
    return out


@dataclass(frozen=True)
class Diarise:
    """Pipeline stage: cut a recording of several voices at its changes of voice (``[voice]`` extra).

    Attributes
    ----------
    keep_voice : {"main", "all"}
        ``main``: keep the turns of the voice with the most speech; ``all``: keep every voice,
        the others as speakers ``<speaker>-2``...
    min_recording_s : float
        Shorter clips are not diarised (too short for several turns).
    window_s, hop_s : float
        Analysis windows of speech.
    distance : float
        Clustering cut of the windows (average-linkage cosine distance).
    margin, min_similarity : float
        A window must be this much nearer its voice than any other, and at least this similar to
        it, or it is dropped as ambiguous.
    min_turn_s : float
        Shorter turns are dropped (too short to tell whose they are).
    pad_s : float
        Audio kept around each turn (never past the middle of a gap to a neighbour).
    model : str
        The embedder in use (:func:`prep.stages.voice.voice_model`); ``""`` without the extra.
    """

    name: ClassVar[str] = "diarise"
    changes: ClassVar[frozenset[str]] = frozenset({"audio", "timing", "span", "id", "transcript"})
    keep_voice: str = "main"
    min_recording_s: float = 20.0
    window_s: float = 2.0
    hop_s: float = 1.0
    distance: float = 0.5
    margin: float = 0.1
    min_similarity: float = 0.6
    min_turn_s: float = 1.0
    pad_s: float = 0.15
    model: str = field(default_factory=voice_model)

    def __post_init__(self) -> None:
        if self.keep_voice not in KEEP_VOICES:
            raise ConfigError(f"keep_voice must be one of {', '.join(KEEP_VOICES)}, got {self.keep_voice!r}")
        if self.min_recording_s < 0 or self.min_turn_s < 0 or self.pad_s < 0:
            raise ConfigError("min_recording_s, min_turn_s and pad_s must be >= 0")

    def apply(self, clip: Clip) -> Clip | list[Clip]:
        if not self.model or clip.verdict in ("rejected", "error"):
            return clip
        if clip.duration_s < self.min_recording_s and not clip.metrics.get("long_file"):
            return clip
        from ..voice.diarise import diarise

        audio = clip.require_audio()
        speech = None if clip.speech is None else [(float(a), float(b)) for a, b in clip.speech]
        d = diarise(audio, sample_rate=clip.sample_rate, name="v", window_s=self.window_s, hop_s=self.hop_s,
                    distance=self.distance, margin=self.margin, min_similarity=self.min_similarity,
                    min_turn_s=self.min_turn_s, regions=speech)
        if len(d.voices) <= 1:
            return clip.with_metrics(diarise_voice_count=len(d.voices), diarise_voice_index=0)
        return self._cut(clip, d)

    def _cut(self, clip: Clip, d: Diarisation) -> list[Clip]:
        audio = clip.require_audio()
        rate = clip.sample_rate
        duration = audio.shape[-1] / rate
        index = {v: k for k, v in enumerate(d.voices)}
        bounds = turn_bounds([(t.start, t.end) for t in d.turns], duration_s=duration, pad_s=self.pad_s)
        long_piece = bool(clip.metrics.get("long_file"))
        keep_all = self.keep_voice == "all" or long_piece
        dropped_s = float(sum(x.end - x.start for x in d.dropped))
        other_s = 0.0 if keep_all else float(sum(d.speech_s[1:]))
        regions = list(clip.speech) if clip.speech is not None else list(d.windows.regions)
        notes = []
        if dropped_s > 0:
            notes.append(finding("diarise.unseparated", metric="diarise_dropped_s", value=dropped_s))
        if other_s > 0:
            notes.append(finding("diarise.other_voices", metric="diarise_other_s", value=other_s,
                                 voices=len(d.voices)))
        out = []
        for k, (turn, (a, b)) in enumerate(zip(d.turns, bounds, strict=True)):
            voice = index[turn.voice]
            if voice > 0 and not keep_all:
                continue
            i0, i1 = int(np.floor(a * rate)), int(np.ceil(b * rate))
            a, b = i0 / rate, i1 / rate
            inside = tuple((max(s, a) - a, min(e, b) - a) for s, e in regions if s < b and e > a)
            speech_s = float(sum(e - s for s, e in inside))
            span = (clip.source_time(a, after_cut=True), clip.source_time(b))
            piece = dataclasses.replace(
                clip,
                id=f"{clip.id}-t{k:02d}",
                speaker=clip.speaker if long_piece else voice_speaker(clip.speaker, voice),
                audio=np.ascontiguousarray(audio[..., i0:i1]),
                span_s=span,
                pauses_cut_s=tuple(c for c in clip.pauses_cut_s if span[0] <= c[0] and c[1] <= span[1]),
                speech=inside,
                transcript=None,
            ).with_metrics(
                diarise_voice_count=len(d.voices),
                diarise_voice_index=voice,
                diarise_turn_index=k,
                diarise_dropped_s=round(dropped_s, 3),
                diarise_other_s=round(other_s, 3),
                speech_s=speech_s,
                speech_ratio=speech_s / (b - a) if b > a else 0.0,
            )
            if clip.transcript is not None:
                piece = piece.with_findings(finding("transcript.dropped"))
            out.append(piece.with_findings(*notes) if notes else piece)
        return out
