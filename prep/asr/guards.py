"""Hallucination guards: when a Whisper text must not be used.

Whisper writes fluent text for noise, music and silence ("Thank you.", "You", looping phrases).  Before
any caller uses :attr:`AsrResult.text` (to verify a transcript, to fill a missing one, to cut on word
boundaries) it must call :func:`check_asr`; a non-empty list means the text is unusable.

Problem codes (strings, stable; the pipeline maps them to findings):

``asr_empty``
    Nothing was recognised.
``asr_no_speech``
    The decoder's no-speech probability is high (> ``NO_SPEECH_PROB``, duration-weighted over segments)
    and its token log-probability low (< ``NO_SPEECH_LOGPROB``) -- Whisper's own skip rule applied to
    the whole clip -- or any single segment has no-speech probability > ``NO_SPEECH_PROB_ALONE``.
``asr_low_confidence``
    Token-weighted mean ``avg_logprob`` < ``MIN_AVG_LOGPROB``.
``asr_compression``
    A segment's zlib compression ratio > ``MAX_COMPRESSION_RATIO`` (2.4, Whisper's threshold).
``asr_repetition``
    A looping n-gram: the same 1-8 word sequence repeated back to back (``REPEAT_MIN`` times for one
    word, 3 for longer ones).
``asr_rate``
    Characters (normalised, spaces included) per second of *speech* outside ``CHARS_PER_S`` -- far too
    little text for the speech heard, or more than anyone can say.
``asr_no_speech_detected``
    Text was produced although the caller's VAD found (almost) no speech (``speech_s`` < 0.3 s).
``asr_words_outside``
    Word times not ordered or outside the audio.
``asr_non_speech_tag``
    Whisper's own non-speech captions: a bracketed or parenthesised tag (``[Music]``, ``(applause)``),
    music notes (``♪``), or a text that is only one of :data:`NON_SPEECH_TAGS` (``Music``).
"""

from __future__ import annotations

import itertools
import re

from ..text import normalize_text
from .transcribe import AsrResult

__all__ = [
    "CHARS_PER_S",
    "MAX_COMPRESSION_RATIO",
    "MIN_AVG_LOGPROB",
    "NO_SPEECH_LOGPROB",
    "NO_SPEECH_PROB",
    "NO_SPEECH_PROB_ALONE",
    "NON_SPEECH_TAGS",
    "REPEAT_MIN",
    "check_asr",
    "repeated_ngram",
]

NO_SPEECH_PROB = 0.6
NO_SPEECH_LOGPROB = -0.7
NO_SPEECH_PROB_ALONE = 0.85
MIN_AVG_LOGPROB = -1.0
MAX_COMPRESSION_RATIO = 2.4
REPEAT_MIN = 4
CHARS_PER_S = (3.0, 30.0)
_MIN_SPEECH_S = 0.3
NON_SPEECH_TAGS = frozenset({"music", "applause", "laughter", "laughs", "silence", "noise", "inaudible",
                             "blank audio", "no speech", "background noise", "instrumental"})
_RE_TAG = re.compile(r"[\[(（【][^\])）】]{1,40}[\])）】]|[♪♫♬]")


def repeated_ngram(words: list[str], *, max_n: int = 8) -> tuple[str, int] | None:
    """The first n-gram repeated back to back too often, as ``(ngram, repeats)``, or ``None``.

    A single word counts when it occurs ``REPEAT_MIN`` (4) times in a row ("no no no no"); a sequence of
    2 to ``max_n`` words when it occurs 3 times in a row.
    """
    for n in range(1, max_n + 1):
        need = REPEAT_MIN if n == 1 else 3
        for i in range(0, len(words) - n * need + 1):
            gram = words[i : i + n]
            reps = 1
            while words[i + reps * n : i + (reps + 1) * n] == gram:
                reps += 1
            if reps >= need:
                return " ".join(gram), reps
    return None


def check_asr(result: AsrResult, *, duration_s: float, speech_s: float) -> list[str]:
    """Reasons not to trust ``result.text``; an empty list means it may be used.

    Parameters
    ----------
    result : AsrResult
    duration_s : float
        Duration of the clip that was transcribed, in seconds.
    speech_s : float
        Seconds of speech the pipeline's VAD found in it (use ``duration_s`` if unknown).

    Returns
    -------
    list of str
        Problem codes (see the module docstring), in a fixed order.
    """
    problems: list[str] = []
    norm = normalize_text(result.text)
    if not norm:
        return ["asr_empty"]
    segs = [s for s in result.segments if s.text]
    span = sum(max(s.end - s.start, 1e-3) for s in segs) or 1.0
    n_tok = sum(s.n_tokens for s in segs) or 1
    no_speech = sum(s.no_speech_prob * max(s.end - s.start, 1e-3) for s in segs) / span
    logprob = sum(s.avg_logprob * s.n_tokens for s in segs) / n_tok
    if (no_speech > NO_SPEECH_PROB and logprob < NO_SPEECH_LOGPROB) or any(
        s.no_speech_prob > NO_SPEECH_PROB_ALONE for s in segs
    ):
        problems.append("asr_no_speech")
    if logprob < MIN_AVG_LOGPROB:
        problems.append("asr_low_confidence")
    if any(s.compression_ratio > MAX_COMPRESSION_RATIO for s in segs):
        problems.append("asr_compression")
    if repeated_ngram(norm.split()) is not None:
        problems.append("asr_repetition")
    if speech_s < _MIN_SPEECH_S:
        problems.append("asr_no_speech_detected")
    else:
        rate = len(norm) / speech_s
        if not CHARS_PER_S[0] <= rate <= CHARS_PER_S[1]:
            problems.append("asr_rate")
    if _RE_TAG.search(result.text) or norm in NON_SPEECH_TAGS:
        problems.append("asr_non_speech_tag")
    words = result.words
    end = max(duration_s, result.duration_s) + 0.05
    if any(not (0.0 <= w.start <= w.end <= end) for w in words) or any(
        b.start < a.start - 1e-6 for a, b in itertools.pairwise(words)
    ):
        problems.append("asr_words_outside")
    return problems
