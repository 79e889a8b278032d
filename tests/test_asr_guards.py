"""prep.asr.guards and prep.asr.verify on hand-made results (no model needed)."""

from __future__ import annotations

import math

import pytest

from prep.asr import CER_THRESHOLD, AsrResult, AsrSegment, AsrWord, check_asr, verify_transcript
from prep.asr.guards import repeated_ngram


def _result(text: str, *, duration=4.0, no_speech=0.05, logprob=-0.3, ratio=1.2, words=None, language="en"):
    if words is None:
        tokens = text.split()
        step = duration / max(len(tokens), 1)
        words = tuple(AsrWord(t, i * step, (i + 0.8) * step, 0.9) for i, t in enumerate(tokens))
    seg = AsrSegment(text, 0.0, duration, logprob, no_speech, ratio, 0.0, max(len(text.split()), 1), words)
    return AsrResult(text, language, 1.0, (seg,), duration, "test", math.exp(logprob))


GOOD = "The birch canoe slid on the smooth planks near the dock."


def test_a_plain_result_passes():
    assert check_asr(_result(GOOD), duration_s=4.0, speech_s=3.5) == []


@pytest.mark.parametrize(
    ("result", "speech_s", "code"),
    [
        (_result(""), 3.0, "asr_empty"),
        (_result(" . . . "), 3.0, "asr_empty"),
        (_result("You", no_speech=0.94, logprob=-0.9), 3.0, "asr_no_speech"),
        (_result(GOOD, logprob=-1.4), 3.5, "asr_low_confidence"),
        (_result(GOOD, ratio=2.8), 3.5, "asr_compression"),
        (_result("I went to the shop I went to the shop I went to the shop"), 3.5, "asr_repetition"),
        (_result("no no no no"), 3.5, "asr_repetition"),
        (_result("Hi."), 3.5, "asr_rate"),  # 2 characters for 3.5 s of speech
        (_result(GOOD * 3), 3.5, "asr_rate"),  # ~50 characters/s
        (_result(GOOD), 0.1, "asr_no_speech_detected"),
        (_result("[Music]"), 3.5, "asr_non_speech_tag"),
        (_result("Music"), 3.5, "asr_non_speech_tag"),
        (_result("♪ la la la ♪"), 3.5, "asr_non_speech_tag"),
        (_result(GOOD, words=(AsrWord("the", 2.0, 2.5, 0.9), AsrWord("birch", 1.0, 1.5, 0.9))), 3.5,
         "asr_words_outside"),
        (_result(GOOD, words=(AsrWord("the", 3.0, 9.0, 0.9),)), 3.5, "asr_words_outside"),
    ],
)
def test_each_guard(result, speech_s, code):
    assert code in check_asr(result, duration_s=4.0, speech_s=speech_s)


def test_repeated_ngram():
    assert repeated_ngram("a b a b a b".split()) == ("a b", 3)
    assert repeated_ngram("the the the".split()) is None  # a single word needs 4
    assert repeated_ngram("one two three one two three".split()) is None  # twice is speech
    assert repeated_ngram("x y z x y z x y z".split()) == ("x y z", 3)


def test_verification_threshold_and_language():
    res = _result("The birch canoe slid on the smooth planks.")
    same = verify_transcript("the birch canoe slid on the smooth planks", res)
    assert same.matches and same.cer == 0.0 and same.language_match and same.problems == ()
    close = verify_transcript("The birch canoe slid on smooth planks.", res)
    assert close.matches and 0 < close.cer <= CER_THRESHOLD
    other = verify_transcript("Glue the sheet to the dark blue background.", res)
    assert not other.matches and other.problems == ("transcript_mismatch",) and other.cer > CER_THRESHOLD
    wrong_language = verify_transcript("The birch canoe slid on the smooth planks.", res, language="fr")
    assert not wrong_language.matches and wrong_language.problems == ("language_mismatch",)
    strict = verify_transcript("The birch canoe slid on smooth planks.", res, threshold=0.01)
    assert not strict.matches
