"""Speech recognition (issue 13 core): Whisper models, transcription, hallucination guards, verification.

Layout: :mod:`prep.asr.models` (bundled ``tiny.en`` / ``base``, device choice, per-process loading),
:mod:`prep.asr.transcribe` (:func:`transcribe` -> :class:`AsrResult`), :mod:`prep.asr.guards`
(:func:`check_asr`), :mod:`prep.asr.verify` (:func:`verify_transcript`).  Text normalisation and
CER/WER live in :mod:`prep.text` (pure Python, no extra needed).

Importing this package does not import faster-whisper; :func:`load_asr_model` does, and raises a
one-line :class:`~prep.models.ModelError` naming ``pip install 'voiceprep[asr]'`` when it is missing.
"""

from __future__ import annotations

from .guards import check_asr
from .models import AsrModel, bundled_model_dir, clear_model_cache, load_asr_model, load_stats, select_device
from .transcribe import (
    ASR_SAMPLE_RATE,
    MIN_WINDOW_S,
    WINDOW_MARGIN_S,
    AsrResult,
    AsrSegment,
    AsrWord,
    encoder_frames,
    transcribe,
    transcribe_many,
)
from .verify import CER_THRESHOLD, Verification, verify_transcript

__all__ = [
    "ASR_SAMPLE_RATE",
    "CER_THRESHOLD",
    "MIN_WINDOW_S",
    "WINDOW_MARGIN_S",
    "AsrModel",
    "AsrResult",
    "AsrSegment",
    "AsrWord",
    "Verification",
    "bundled_model_dir",
    "check_asr",
    "clear_model_cache",
    "encoder_frames",
    "load_asr_model",
    "load_stats",
    "select_device",
    "transcribe",
    "transcribe_many",
    "verify_transcript",
]
