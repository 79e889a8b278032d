"""Speech recognition of one clip with faster-whisper, returned as plain frozen records.

Encoder window.  Whisper was trained on 30 s windows and faster-whisper pads every clip to one
(3000 mel frames), so the encoder costs the same ~0.4-0.5 s of one CPU core (tiny.en int8) for a 3 s
utterance as for 30 s of speech.  CTranslate2 accepts shorter encoder inputs (OpenNMT/CTranslate2
PR 1446, 2023; used with 4.8.5), so a clip is encoded over ``max(min_window_s, clip +
WINDOW_MARGIN_S)`` seconds, at most 30: its own frames plus at least 2 s of the usual padding, and
never less than ``min_window_s`` (by default 15 s for English-only models such as the bundled
tiny.en, 30 s, the full window, for multilingual ones such as the bundled base).  The margin and
the floor keep what the decoder relies on (trailing silence to end the text, enough positions not
to loop; a much shorter context is known to hurt, CTranslate2 issue 2100).
Measured on the corpus' read speech (``benchmarks/asr.py``, 20 recordings of 1.5-16 s, CPU time;
``benchmarks/RESULTS.md`` "ASR"): with the 15 s floor tiny.en ran at 14.2x realtime per core against
6.6x with the full window, mean CER 0.019 against 0.033; a 10 s floor was slower (10.4x)
and less accurate (0.035).  The hallucination guards still refuse every noise/music input
with tiny.en; with base and a 15 s window one dog-bark clip passed them ("BAH! BAH!") and its CER was
0.048 in two of three runs (0.038 with the full window), hence the full window for multilingual
models.  ``min_window_s=30`` restores the full window.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..audio import as_audio, check_sample_rate, mix_to_mono
from ..errors import ConfigError
from .models import AsrModel, encoder_window

__all__ = [
    "ASR_SAMPLE_RATE", "MIN_WINDOW_S", "WINDOW_MARGIN_S", "AsrResult", "AsrSegment", "AsrWord", "encoder_frames",
    "transcribe", "transcribe_many",
]

#: Whisper's input rate; audio is resampled to it (mono, soxr HQ) inside :func:`transcribe`.
ASR_SAMPLE_RATE = 16000
#: Shortest encoder window in seconds of English-only models (module docstring); multilingual ones use 30.
MIN_WINDOW_S = 15.0
#: Seconds of padding kept after the audio inside a shortened encoder window.
WINDOW_MARGIN_S = 2.0
_FULL_WINDOW_S = 30.0


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
    min_window_s: float | None = None,
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
    min_window_s : float, optional
        Shortest encoder window, in (0, 30]: the clip is encoded over
        ``max(min_window_s, duration + WINDOW_MARGIN_S)`` seconds, at most 30 (module docstring).
        30 encodes Whisper's full window whatever the clip's length.  Default: :data:`MIN_WINDOW_S`
        for an English-only model, 30 for a multilingual one.

    Returns
    -------
    AsrResult

    Notes
    -----
    Decoding is per clip: no VAD filter (the pipeline already cut speech), no conditioning on previous
    text (it propagates hallucinations), Whisper's temperature fallback on failed decodes kept.
    A clip longer than 30 s is decoded window after window as usual (each a full 30 s window).
    """
    rate = check_sample_rate(sample_rate)
    min_window_s = _check_args(model, language, beam_size, min_window_s)
    x = _to_16k_mono(audio, rate)
    return _transcribe_16k(x, model=model, language=language, word_timestamps=word_timestamps, beam_size=beam_size,
                           min_window_s=min_window_s)


def _check_args(model: AsrModel, language: str | None, beam_size: int, min_window_s: float | None) -> float:
    """Check the arguments; return ``min_window_s`` resolved for ``model``."""
    if language is not None and not model.multilingual and language != "en":
        raise ConfigError(f"model {model.name} is English-only; language must be 'en' or None, got {language!r}")
    if beam_size < 1:
        raise ConfigError(f"beam_size must be >= 1, got {beam_size}")
    if min_window_s is None:
        return _FULL_WINDOW_S if model.multilingual else MIN_WINDOW_S
    if not 0 < min_window_s <= _FULL_WINDOW_S:
        raise ConfigError(f"min_window_s must be in (0, 30], got {min_window_s}")
    return float(min_window_s)


def encoder_frames(n_samples: int, *, min_window_s: float = MIN_WINDOW_S) -> int:
    """Mel frames the encoder sees for ``n_samples`` of 16 kHz audio (3000 = Whisper's full 30 s window).

    ``max(min_window_s, n_samples / 16000 + WINDOW_MARGIN_S)`` seconds at 100 frames per second,
    rounded up to an even count (the encoder halves it), at most 3000.
    """
    seconds = max(min_window_s, n_samples / ASR_SAMPLE_RATE + WINDOW_MARGIN_S)
    return min(3000, 2 * math.ceil(seconds * 50))


def _decode(x: np.ndarray, model: AsrModel, language: str | None, word_timestamps: bool, beam_size: int,
            min_window_s: float):
    frames = encoder_frames(x.size, min_window_s=min_window_s)
    with encoder_window(frames if frames < 3000 else None):
        segments_iter, info = model.whisper.transcribe(
            x,
            language=language if model.multilingual else "en",
            word_timestamps=word_timestamps,
            beam_size=beam_size,
            vad_filter=False,
            condition_on_previous_text=False,
        )
        return list(segments_iter), info


def _empty(duration: float, model: AsrModel, language: str | None) -> AsrResult:
    return AsrResult("", language or "en", 0.0, (), duration, model.name, 0.0)


def _language(info, model: AsrModel, language: str | None) -> tuple[str, float]:
    forced = language is not None or not model.multilingual
    return info.language, 1.0 if forced else float(info.language_probability)


def _transcribe_16k(
    x: np.ndarray, *, model: AsrModel, language: str | None, word_timestamps: bool, beam_size: int,
    min_window_s: float,
) -> AsrResult:
    duration = x.size / ASR_SAMPLE_RATE
    if x.size < ASR_SAMPLE_RATE // 10:  # < 0.1 s: nothing Whisper can hear
        return _empty(duration, model, language)
    raw, info = _decode(x, model, language, word_timestamps, beam_size, min_window_s)
    segments = []
    for s in raw:
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
    lang, lang_p = _language(info, model, language)
    return AsrResult(
        text=" ".join(s.text for s in segments if s.text).strip(),
        language=lang,
        language_probability=lang_p,
        segments=tuple(segments),
        duration_s=duration,
        model=model.name,
        confidence=min(max(confidence, 0.0), 1.0),
    )


#: A packed clip with fewer characters per second of clip is transcribed again on its own.
_MIN_PACKED_CHARS_PER_S = 3.0


def _compression_ratio(text: str) -> float:
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


def _packs(durations: list[float], window_s: float, gap_s: float) -> list[list[int]]:
    """Consecutive clip indices grouped so each group plus gaps fits ``window_s``."""
    packs: list[list[int]] = []
    used = 0.0
    for i, d in enumerate(durations):
        if packs and used + gap_s + d <= window_s:
            packs[-1].append(i)
            used += gap_s + d
        else:
            packs.append([i])
            used = d
    return packs


def transcribe_many(
    clips: Sequence[np.ndarray],
    *,
    sample_rate: int,
    model: AsrModel,
    language: str | None = None,
    beam_size: int = 5,
    window_s: float = 28.0,
    gap_s: float = 2.0,
    min_window_s: float | None = None,
) -> list[AsrResult]:
    """Transcribe many short clips, several per Whisper window (much faster than one call per clip).

    :func:`transcribe` encodes at least ``min_window_s`` (15 s for English-only models, 30 s for
    multilingual ones) per clip, so a 3 s clip still pays for a 15 s or 30 s window.  Consecutive clips
    are packed into windows of at most ``window_s``
    with ``gap_s`` of silence between them, each window is transcribed once with word timestamps, and
    each word goes to the clip its midpoint falls in (times made relative to that clip).  A clip longer
    than ``window_s`` or alone in its window is transcribed on its own with :func:`transcribe`, and so
    is a packed clip that came back doubtful: no words, fewer than ``_MIN_PACKED_CHARS_PER_S`` characters
    per second of clip, or a mean log word probability below -1 (Whisper sometimes skips a quiet clip
    of a window, or hands it a neighbour's word).

    Word timestamps near a gap can be off by a few hundred ms, so a clip's first or last word can land
    in its neighbour (measured: 1 word in 21 packed clips with 1 s gaps, hence the 2 s default).  Use
    :func:`transcribe` when every word matters (word-boundary slicing); packing is for verifying and
    filling transcripts in bulk.

    Parameters
    ----------
    clips : sequence of np.ndarray, each (samples,) or (channels, samples)
        Clips of the same recording (same speaker and language: the window's language is shared).
    sample_rate : int
        Rate of every clip.
    model, language, beam_size
        As in :func:`transcribe`.
    window_s : float
        Longest packed window (<= 30).
    gap_s : float
        Silence between packed clips.
    min_window_s : float, optional
        As in :func:`transcribe`: every window (packed or not) is encoded over
        ``max(min_window_s, its audio + WINDOW_MARGIN_S)`` seconds, at most 30.

    Returns
    -------
    list of AsrResult
        One per clip, in order.  For a packed clip there is one segment made of its words:
        ``avg_logprob`` is the mean log word probability, ``compression_ratio`` is computed on its text,
        ``no_speech_prob`` and ``temperature`` are the largest of the window segments overlapping it,
        ``n_tokens`` counts words; word timestamps are always computed.
    """
    rate = check_sample_rate(sample_rate)
    min_window_s = _check_args(model, language, beam_size, min_window_s)
    if not 0 < window_s <= 30.0 or gap_s < 0:
        raise ConfigError(f"window_s must be in (0, 30] and gap_s >= 0, got {window_s}, {gap_s}")
    xs = [_to_16k_mono(c, rate) for c in clips]
    durations = [x.size / ASR_SAMPLE_RATE for x in xs]
    out: list[AsrResult | None] = [None] * len(xs)
    gap = np.zeros(round(gap_s * ASR_SAMPLE_RATE), np.float32)
    for pack in _packs(durations, window_s, gap_s):
        if len(pack) == 1:
            i = pack[0]
            out[i] = _transcribe_16k(xs[i], model=model, language=language, word_timestamps=True, beam_size=beam_size,
                                     min_window_s=min_window_s)
            continue
        pieces, offsets, pos = [], [], 0
        for k, i in enumerate(pack):
            if k:
                pieces.append(gap)
                pos += gap.size
            offsets.append(pos / ASR_SAMPLE_RATE)
            pieces.append(xs[i])
            pos += xs[i].size
        raw, info = _decode(np.concatenate(pieces), model, language, True, beam_size, min_window_s)
        lang, lang_p = _language(info, model, language)
        words = [w for s in raw for w in (s.words or ())]
        for k, i in enumerate(pack):
            start, dur = offsets[k], durations[i]
            lo, hi = start - gap_s / 2, start + dur + gap_s / 2
            mine = [w for w in words if lo <= (w.start + w.end) / 2 < hi]
            n_chars = sum(len(w.word.strip()) for w in mine)
            mean_logprob = (sum(math.log(max(w.probability, 1e-6)) for w in mine) / len(mine)) if mine else -99.0
            if n_chars < _MIN_PACKED_CHARS_PER_S * dur or mean_logprob < -1.0:
                out[i] = _transcribe_16k(xs[i], model=model, language=language, word_timestamps=True,
                                         beam_size=beam_size, min_window_s=min_window_s)
                continue
            clip_words = tuple(
                AsrWord(w.word.strip(), min(max(float(w.start) - start, 0.0), dur),
                        min(max(float(w.end) - start, 0.0), dur), float(w.probability))
                for w in mine
            )
            over = [s for s in raw if s.start < start + dur and s.end > start] or raw
            text = " ".join(w.text for w in clip_words if w.text).strip()
            logprob = sum(math.log(max(w.probability, 1e-6)) for w in clip_words) / len(clip_words)
            seg = AsrSegment(
                text=text, start=clip_words[0].start, end=clip_words[-1].end, avg_logprob=logprob,
                no_speech_prob=max(float(s.no_speech_prob) for s in over),
                compression_ratio=_compression_ratio(text),
                temperature=max(float(s.temperature or 0.0) for s in over),
                n_tokens=len(clip_words), words=clip_words,
            )
            out[i] = AsrResult(text=text, language=lang, language_probability=lang_p, segments=(seg,),
                               duration_s=dur, model=model.name, confidence=min(max(math.exp(logprob), 0.0), 1.0))
    return [r for r in out if r is not None]
