"""Does a given transcript match the speech?  CER between the user's text and what Whisper heard.

:data:`CER_THRESHOLD` was calibrated by ``benchmarks/asr.py`` on the read speech of the shared corpus
(see ``benchmarks/RESULTS.md``, section ``asr``): 20 recordings, each paired with its own reference
text and with every other recording's text (378 swapped pairs).  Own-text CER: at most 0.18 (tiny.en)
/ 0.13 (base), 95th percentile 0.10; swapped CER: at least 0.63, 5th percentile 0.71.  0.35 sits in
the gap with room on both sides (tiny.en reaches 0.21 on the noisiest espeak-ng fixture): 100 % of the
swapped pairs flagged, 0 % false alarms, with both models, one clip per call or packed.  It detects a
wrong or swapped transcript, not a single wrong word (one word in ten is a CER of ~0.1).

A transcript is a *mismatch* when the CER (normalised text, spaces kept) exceeds it, when the ASR
text is unusable (:func:`prep.asr.check_asr` problems given), or when the detected language differs
from the expected one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..text import cer, normalize_text, wer
from .transcribe import AsrResult

__all__ = ["CER_THRESHOLD", "Verification", "verify_transcript"]

#: CER above which a given transcript is reported as not matching the audio (calibrated, see module doc).
CER_THRESHOLD = 0.35


@dataclass(frozen=True)
class Verification:
    """Outcome of :func:`verify_transcript`.

    Attributes
    ----------
    cer : float
        Character error rate of the ASR text against the given transcript (normalised, spaces kept);
        ``nan`` when the ASR text was unusable.
    wer : float
        Word error rate, same texts.
    language_match : bool
        The detected language equals the expected one (True when none was expected).
    asr_usable : bool
        No :func:`prep.asr.check_asr` problem was passed in.
    matches : bool
        ``asr_usable and language_match and cer <= threshold``.
    threshold : float
    given : str
        The given transcript, normalised.
    heard : str
        The ASR text, normalised.
    problems : tuple of str
        The ASR problems passed in, plus ``"transcript_mismatch"`` / ``"language_mismatch"``.
    """

    cer: float
    wer: float
    language_match: bool
    asr_usable: bool
    matches: bool
    threshold: float
    given: str
    heard: str
    problems: tuple[str, ...]


def verify_transcript(
    given: str,
    asr_result: AsrResult,
    *,
    threshold: float = CER_THRESHOLD,
    language: str | None = None,
    asr_problems: Sequence[str] = (),
) -> Verification:
    """Compare a given transcript with what the model heard.

    Parameters
    ----------
    given : str
        The user's transcript of the clip.
    asr_result : AsrResult
    threshold : float
        Largest CER still accepted as a match (default :data:`CER_THRESHOLD`).
    language : str, optional
        Expected language code of the recording; ``None`` skips the language check.
    asr_problems : sequence of str
        The result of :func:`prep.asr.check_asr`; when non-empty the ASR text is not used and the
        transcript cannot be confirmed (``matches`` is False, ``cer`` is nan).

    Returns
    -------
    Verification
    """
    given_n, heard_n = normalize_text(given), normalize_text(asr_result.text)
    language_match = language is None or asr_result.language == language
    usable = not asr_problems
    if usable:
        c, w = cer(given_n, heard_n, normalize=False), wer(given_n, heard_n, normalize=False)
    else:
        c = w = float("nan")
    problems = list(asr_problems)
    if usable and c > threshold:
        problems.append("transcript_mismatch")
    if not language_match:
        problems.append("language_mismatch")
    return Verification(
        cer=c, wer=w, language_match=language_match, asr_usable=usable,
        matches=usable and language_match and c <= threshold, threshold=threshold,
        given=given_n, heard=heard_n, problems=tuple(problems),
    )
