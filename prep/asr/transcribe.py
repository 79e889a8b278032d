"""Speech recognition of one clip with faster-whisper, returned as plain frozen records."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..audio import as_audio, check_sample_rate, mix_to_mono
from ..errors import ConfigError
from .models import AsrModel

__all__ = ["ASR_SAMPLE_RATE", "AsrResult", "AsrSegment", "AsrWord", "transcribe"]

#: Whisper's input rate; audio is resampled to it (mono, soxr HQ) inside :func:`transcribe`.
ASR_SAMPLE_RATE = 16000


@dataclass(frozen=True)
class AsrWord:
    """One recognised word; times in seconds from the start of the audio given to :func:`transcribe`."""

    text: str
    start: float
    end: float
    probability: float


@dataclass(frozen=True)
class AsrSegment:
    """One Whisper segment with the decoder's own quality measures.

    Attributes
    ----------
    text : str
    start, end : float
        Seconds from the start of the audio.
    avg_logprob : float
        Mean log-probability of the segment's tokens (Whisper treats < -1 as a failed decode).
    no_speech_prob : float
        Probability of the no-speech token at the start of the window.
    compression_ratio : float
        zlib compression ratio of the text; > 2.4 means repetitive text (a decoding loop).
    temperature : float
        Sampling temperature of the accepted decode (> 0 means the greedy/beam decode was rejected).
    n_tokens : int
    words : tuple of AsrWord
    """

    text: str
    start: float
    end: float
    avg_logprob: float
    no_speech_prob: float
    compression_ratio: float
    temperature: float
    n_tokens: int
    words: tuple[AsrWord, ...]


@dataclass(frozen=True)
class AsrResult:
    """What the model heard in one clip.

    Attributes
    ----------
    text : str
        The segments' texts joined, stripped.  Never use it without :func:`prep.asr.check_asr`.
    language : str
        Detected (or forced) language code; ``"en"`` for English-only models.
    language_probability : float
        Probability of ``language`` (1.0 when it was forced or the model is English-only).
    segments : tuple of AsrSegment
    duration_s : float
        Duration of the audio that was transcribed.
    model : str
        Name of the model.
    confidence : float
        ``exp`` of the token-weighted mean ``avg_logprob`` over segments (0 when nothing was heard):
        the geometric-mean token probability, in [0, 1].
    """

    text: str
    language: str
    language_probability: float
    segments: tuple[AsrSegment, ...]
    duration_s: float
    model: str
    confidence: float

    @property
    def words(self) -> tuple[AsrWord, ...]:
        """Every word of every segment, in order."""
        return tuple(w for s in self.segments for w in s.words)


def _to_16k_mono(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    x = mix_to_mono(as_audio(audio))
    if sample_rate != ASR_SAMPLE_RATE:
        import soxr

        x = soxr.resample(x, sample_rate, ASR_SAMPLE_RATE, quality="HQ")
    x = np.ascontiguousarray(x, dtype=np.float32)
    if not np.all(np.isfinite(x)):
        x = np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
    return x


def transcribe(
    audio: np.ndarray,
    *,
    sample_rate: int,
    model: AsrModel,
    language: str | None = None,
    word_timestamps: bool = True,
    beam_size: int = 5,
) -> AsrResult:
    """Transcribe one clip.

    Parameters
    ----------
    audio : np.ndarray, shape (samples,) or (channels, samples)
        Any rate; mixed to mono and resampled to 16 kHz here.
    sample_rate : int
    model : AsrModel
        From :func:`prep.asr.load_asr_model`.
    language : str, optional
        ISO code to force (``"en"``); ``None`` lets a multilingual model detect it.  English-only models
        accept only ``None`` or ``"en"``.
    word_timestamps : bool
        Compute per-word start/end/probability (cross-attention alignment; ~10 % more time).
    beam_size : int
        Beam width (5, faster-whisper's default; 1 is greedy and faster).

    Returns
    -------
    AsrResult

    Notes
    -----
    Decoding is per clip: no VAD filter (the pipeline already cut speech), no conditioning on previous
    text (it propagates hallucinations), Whisper's temperature fallback on failed decodes kept.
    """
    rate = check_sample_rate(sample_rate)
    if language is not None and not model.multilingual and language != "en":
        raise ConfigError(f"model {model.name} is English-only; language must be 'en' or None, got {language!r}")
    if beam_size < 1:
        raise ConfigError(f"beam_size must be >= 1, got {beam_size}")
    x = _to_16k_mono(audio, rate)
    duration = x.size / ASR_SAMPLE_RATE
    if x.size < ASR_SAMPLE_RATE // 10:  # < 0.1 s: nothing Whisper can hear
        return AsrResult("", language or "en", 0.0, (), duration, model.name, 0.0)
    segments_iter, info = model.whisper.transcribe(
        x,
        language=language if model.multilingual else "en",
        word_timestamps=word_timestamps,
        beam_size=beam_size,
        vad_filter=False,
        condition_on_previous_text=False,
    )
    segments = []
    for s in segments_iter:
        words = tuple(
            AsrWord(w.word.strip(), min(max(float(w.start), 0.0), duration), min(max(float(w.end), 0.0), duration),
                    float(w.probability))
            for w in (s.words or ())
        )
        segments.append(AsrSegment(
            text=s.text.strip(), start=max(float(s.start), 0.0), end=min(float(s.end), duration),
            avg_logprob=float(s.avg_logprob), no_speech_prob=float(s.no_speech_prob),
            compression_ratio=float(s.compression_ratio), temperature=float(s.temperature or 0.0),
            n_tokens=len(s.tokens), words=words,
        ))
    n_tok = sum(s.n_tokens for s in segments)
    confidence = math.exp(sum(s.avg_logprob * s.n_tokens for s in segments) / n_tok) if n_tok else 0.0
    forced = language is not None or not model.multilingual
    return AsrResult(
        text=" ".join(s.text for s in segments if s.text).strip(),
        language=info.language,
        language_probability=1.0 if forced else float(info.language_probability),
        segments=tuple(segments),
        duration_s=duration,
        model=model.name,
        confidence=min(max(confidence, 0.0), 1.0),
    )
