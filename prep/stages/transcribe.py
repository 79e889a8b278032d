"""The ``transcribe`` stage: what is said in each clip, from speech recognition (the ``[asr]`` extra).

It sits after ``trim`` (and ``diarise``) and before ``slice``, so the words it hears are cut with the
audio: :class:`~prep.stages.slice.Slice` cuts only between words and gives each slice the words of its
own span.

Modes (``--transcribe``; default ``auto``, or the ``VOICEPREP_TRANSCRIBE`` environment variable):

``auto``
    A clip without a transcript gets the ASR text, when the hallucination guards
    (:func:`prep.asr.check_asr`) accept it; otherwise it gets an ``asr.*`` finding (a warning) and no
    text.  A clip with a user transcript keeps it and has it *verified*: the CER between the user's
    text and the ASR text after normalisation (:func:`prep.asr.verify_transcript`) above
    ``cer_threshold`` is a ``transcript.mismatch`` warning, a detected language other than
    ``language`` is a ``transcript.language`` warning; an ASR text the guards refuse only costs the
    verification (its ``asr.*`` finding is ``info``).  Without the extra the stage does nothing and the
    run says once how to enable it (:func:`transcribe_missing_notice`).
``always``
    As ``auto``, but the ASR text also *replaces* a user transcript when the guards accept it (the
    user's text stays in ``transcript_info.user_text`` and is verified all the same), so every
    transcript comes from one model.  Needs the extra: without it the stage refuses to be configured.
``never``
    No speech recognition; user transcripts pass unchanged (and ``slice`` drops them when it cuts).

Every transcribed clip records :class:`~prep.clip.TranscriptInfo` (origin ``user``/``asr``/``none``,
model, language, confidence, the ASR text) and the ``asr_*`` metrics.  A user transcript that matches
gets word times by aligning its words with the ASR words (:func:`align_words`), so slicing keeps it too.
The model is loaded once per process (:func:`prep.asr.load_asr_model` caches it), in each pool or Dask
worker on its first clip (:func:`prep.asr.load_stats` counts the loads; a Dask run equals the serial
one).  Rejected clips are not transcribed (they are never delivered).
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib.util
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import ClassVar

from ..audio import mix_to_mono
from ..clip import Clip, TranscriptInfo, Word
from ..errors import ConfigError
from ..findings import Finding, finding
from ..text import normalize_text

__all__ = [
    "MODES",
    "TRANSCRIBE_NOTICE",
    "Transcribe",
    "align_words",
    "asr_engine",
    "default_mode",
    "guard_findings",
    "transcribe_missing_notice",
]

#: The values of ``--transcribe``.
MODES = ("auto", "always", "never")
#: Environment variable giving the default mode (``auto`` when unset).
MODE_ENV = "VOICEPREP_TRANSCRIBE"
#: The bundled English model used when ``--asr-model`` is not given.
DEFAULT_MODEL = "tiny.en"
#: What the ``[asr]`` extra would add to a run, said once per run when it is missing.
TRANSCRIBE_NOTICE = (
    "transcription off: pip install 'voiceprep[asr]' enables transcription (speech recognition fills in "
    "missing transcripts, checks given ones against the audio, and lets slicing cut between words and keep "
    "each slice's text)"
)


def default_mode() -> str:
    """The default ``mode``: ``$VOICEPREP_TRANSCRIBE`` when set, else ``"auto"``."""
    return os.environ.get(MODE_ENV, "").strip() or "auto"


def asr_engine() -> str:
    """``"faster-whisper==<version>"`` when the ``[asr]`` extra is importable, else ``""``.

    Only looks at what is installed (no model is loaded).
    """
    if importlib.util.find_spec("faster_whisper") is None or importlib.util.find_spec("ctranslate2") is None:
        return ""
    try:
        return f"faster-whisper=={metadata.version('faster-whisper')}"
    except metadata.PackageNotFoundError:  # importable from a source tree
        return "faster-whisper"


def transcribe_missing_notice(stages: Iterable[object]) -> str | None:
    """:data:`TRANSCRIBE_NOTICE` when a ``transcribe`` stage would run without the extra, else None."""
    for s in stages:
        if getattr(s, "name", None) == "transcribe" and getattr(s, "mode", "never") != "never" \
                and not getattr(s, "engine", ""):
            return TRANSCRIBE_NOTICE
    return None


# -- guard problems as findings ---------------------------------------------------------------------
def guard_findings(problems: Sequence[str], result, *, speech_s: float, severity: str | None = None) -> list[Finding]:
    """The findings of :func:`prep.asr.check_asr` problem codes, with the values that crossed the guards.

    Parameters
    ----------
    problems : sequence of str
        From :func:`prep.asr.check_asr`.
    result : prep.asr.AsrResult
    speech_s : float
        Seconds of speech the VAD found in the clip.
    severity : str, optional
        Overrides the codes' default (``warning``); ``info`` for a clip whose user transcript stays.
    """
    from ..asr import guards

    segs = [s for s in result.segments if s.text]
    span = sum(max(s.end - s.start, 1e-3) for s in segs) or 1.0
    n_tok = sum(s.n_tokens for s in segs) or 1
    norm = normalize_text(result.text)
    out: list[Finding] = []
    for code in problems:
        if code == "asr_empty":
            out.append(finding("asr.empty", severity=severity))
        elif code == "asr_no_speech":
            alone = max((s.no_speech_prob for s in segs), default=0.0)
            if alone > guards.NO_SPEECH_PROB_ALONE:
                value, limit = alone, guards.NO_SPEECH_PROB_ALONE
            else:
                value, limit = sum(s.no_speech_prob * max(s.end - s.start, 1e-3) for s in segs) / span, \
                    guards.NO_SPEECH_PROB
            out.append(finding("asr.no_speech", metric="asr_no_speech_prob", value=value, threshold=limit,
                               severity=severity))
        elif code == "asr_low_confidence":
            value = sum(s.avg_logprob * s.n_tokens for s in segs) / n_tok
            out.append(finding("asr.low_confidence", metric="asr_avg_logprob", value=value,
                               threshold=guards.MIN_AVG_LOGPROB, severity=severity))
        elif code == "asr_compression":
            value = max((s.compression_ratio for s in segs), default=0.0)
            out.append(finding("asr.compression", value=value, threshold=guards.MAX_COMPRESSION_RATIO,
                               severity=severity))
        elif code == "asr_repetition":
            gram, reps = guards.repeated_ngram(norm.split()) or ("", 0)
            out.append(finding("asr.repetition", ngram=gram, repeats=reps, severity=severity))
        elif code == "asr_rate":
            rate = len(norm) / speech_s if speech_s > 0 else 0.0
            lo, hi = guards.CHARS_PER_S
            out.append(finding("asr.rate", metric="asr_chars_per_s", value=rate, threshold=lo if rate < lo else hi,
                               severity=severity))
        elif code == "asr_no_speech_detected":
            out.append(finding("asr.no_speech_detected", severity=severity))
        elif code == "asr_non_speech_tag":
            out.append(finding("asr.non_speech", text=result.text.strip()[:60], severity=severity))
        else:  # asr_words_outside
            out.append(finding("asr.bad_timestamps", severity=severity))
    return out


# -- word times for a user transcript ---------------------------------------------------------------
def _norm_tokens(text: str) -> list[str]:
    return normalize_text(text).split()


def align_words(text: str, asr_words: Sequence[Word]) -> tuple[Word, ...]:
    """Give each word of ``text`` a time by aligning it with recognised words.

    The words of ``text`` (split on whitespace, spelling kept) and the ASR words are normalised
    (:func:`prep.text.normalize_text`: "1813" becomes "eighteen thirteen") and aligned with
    :class:`difflib.SequenceMatcher`; a user word takes the span of the ASR words its normalised
    tokens match or replace.  A word with no counterpart (an ASR deletion) gets a zero-length time at
    the end of the word before it (at the start of the next for the first), so it stays with its
    neighbour when the clip is cut.

    Parameters
    ----------
    text : str
        The user's transcript.
    asr_words : sequence of (text, start_s, end_s)
        Recognised words in time order.

    Returns
    -------
    tuple of (text, start_s, end_s)
        One per word of ``text``, times non-decreasing; empty when either side has no words.
    """
    user = text.split()
    if not user or not asr_words:
        return ()
    u_flat: list[int] = []
    u_tok: list[str] = []
    for i, w in enumerate(user):
        for t in _norm_tokens(w):
            u_tok.append(t)
            u_flat.append(i)
    a_flat: list[int] = []
    a_tok: list[str] = []
    for j, (w, _, _) in enumerate(asr_words):
        for t in _norm_tokens(w):
            a_tok.append(t)
            a_flat.append(j)
    spans: dict[int, tuple[float, float]] = {}

    def claim(ui: int, aj: int) -> None:
        _, s, e = asr_words[aj]
        old = spans.get(ui)
        spans[ui] = (s, e) if old is None else (min(old[0], s), max(old[1], e))

    matcher = difflib.SequenceMatcher(None, u_tok, a_tok, autojunk=False)
    for op, i0, i1, j0, j1 in matcher.get_opcodes():
        if op == "equal":
            for k in range(i1 - i0):
                claim(u_flat[i0 + k], a_flat[j0 + k])
        elif op == "replace":
            n_u, n_a = i1 - i0, j1 - j0
            for k in range(n_u):  # spread the user tokens over the replaced ASR tokens in order
                lo = j0 + (k * n_a) // n_u
                hi = max(lo + 1, j0 + ((k + 1) * n_a) // n_u)
                for m in range(lo, min(hi, j1)):
                    claim(u_flat[i0 + k], a_flat[m])
    out: list[Word] = []
    first_start = next((spans[i][0] for i in range(len(user)) if i in spans), 0.0)
    prev_end = first_start
    for i, w in enumerate(user):
        if i in spans:
            s, e = spans[i]
            s = max(s, prev_end)  # never before the word before it
            e = max(e, s)
        else:
            s = e = prev_end
        out.append((w, float(s), float(e)))
        prev_end = e
    return tuple(out)


# -- the stage --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Transcribe:
    """Speech recognition of each clip: fill in missing transcripts, verify given ones (``[asr]`` extra).

    Attributes
    ----------
    mode : {"auto", "always", "never"}
        See the module docstring.
    asr_model : str
        ``"tiny.en"`` (bundled English, default) or ``"base"`` (bundled multilingual), another
        faster-whisper model name (downloaded and cached), or a local CTranslate2 model folder.
    language : str or None
        ISO code of the recordings' language: forces it for recognition of clips without a
        transcript, and is the expected language when verifying given ones; ``None`` detects it.
    device : {"auto", "cpu", "cuda"}
        ``auto`` uses a CUDA GPU when CTranslate2 reports one; ``cuda`` without one is refused.
    engine : str
        The installed recogniser (:func:`asr_engine`), ``""`` when the extra is missing.
    cer_threshold : float
        CER above which a given transcript is ``transcript.mismatch``
        (:data:`prep.asr.CER_THRESHOLD`, calibrated in ``benchmarks/asr.py``).
    beam_size : int
        Whisper beam width.
    """

    name: ClassVar[str] = "transcribe"
    changes: ClassVar[frozenset[str]] = frozenset({"transcript"})
    mode: str = field(default_factory=default_mode)
    asr_model: str = DEFAULT_MODEL
    language: str | None = None
    device: str = "auto"
    engine: str = field(default_factory=asr_engine)
    cer_threshold: float = 0.35
    beam_size: int = 5

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"transcribe mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ConfigError(f"device must be 'auto', 'cpu' or 'cuda', got {self.device!r}")
        if not str(self.asr_model).strip():
            raise ConfigError("asr_model must name a model or a folder")
        if self.language is not None and not (isinstance(self.language, str) and 2 <= len(self.language) <= 8
                                              and self.language.replace("-", "").isalpha()):
            raise ConfigError(f"language must be an ISO code such as 'en' or 'de', got {self.language!r}")
        if not 0.0 < self.cer_threshold:
            raise ConfigError(f"cer_threshold must be > 0, got {self.cer_threshold!r}")
        if self.beam_size < 1:
            raise ConfigError(f"beam_size must be >= 1, got {self.beam_size!r}")
        if self.mode == "never":
            return
        if self.mode == "always" and not self.engine:
            raise ConfigError("--transcribe always needs speech recognition: pip install 'voiceprep[asr]'")
        if self.engine and self.device == "cuda":
            from ..asr.models import select_device

            select_device("cuda")  # ConfigError when CTranslate2 sees no CUDA device

    @property
    def active(self) -> bool:
        """Whether the stage transcribes (a mode other than ``never`` and the extra installed)."""
        return self.mode != "never" and bool(self.engine)

    def check_model(self) -> None:
        """Check, before any file, that the model can be found (a one-line error otherwise).

        Bundled models are located and SHA-256-checked; a folder path must exist.  Other names are
        faster-whisper's to download.

        Raises
        ------
        prep.models.ModelError
            A bundled model is not installed or a file fails its SHA-256 check.
        ConfigError
            A path that does not exist, or an English-only bundled model with another ``language``.
        """
        if not self.active:
            return
        from ..asr.models import BUNDLED, bundled_model_dir

        name = str(self.asr_model)
        if name in BUNDLED:
            bundled_model_dir(name)
            if name == "tiny.en" and self.language not in (None, "en"):
                raise ConfigError(f"--asr-model tiny.en is English-only; --language {self.language} needs a "
                                  "multilingual model such as --asr-model base")
        elif os.sep in name or name.startswith(".") or (os.altsep and os.altsep in name):
            if not Path(name).is_dir():
                raise ConfigError(f"--asr-model {name}: no such model folder (a CTranslate2 Whisper model)")

    def apply(self, clip: Clip) -> Clip:
        """Transcribe or verify one clip (see the module docstring)."""
        if not self.active or clip.verdict in ("rejected", "error"):
            return clip
        from ..asr import check_asr, load_asr_model, transcribe, verify_transcript
        from ..dsp.vad import speech_regions

        audio = clip.require_audio()
        rate = clip.sample_rate
        duration = audio.shape[-1] / float(rate)
        regions = clip.speech if clip.speech is not None else tuple(speech_regions(mix_to_mono(audio),
                                                                                   sample_rate=rate))
        speech_s = float(sum(e - s for s, e in regions))
        model = load_asr_model(self.asr_model, device=self.device)
        given = clip.transcript if clip.transcript and (clip.transcript_info is None
                                                        or clip.transcript_info.origin == "user") else None
        language = self.language if given is None else None  # verifying: detect, then compare
        if not model.multilingual:
            language = None
        result = transcribe(audio, sample_rate=rate, model=model, language=language, beam_size=self.beam_size)
        problems = check_asr(result, duration_s=duration, speech_s=speech_s)
        segs = [s for s in result.segments if s.text]
        n_tok = sum(s.n_tokens for s in segs)
        span = sum(max(s.end - s.start, 1e-3) for s in segs)
        metrics = {
            "asr_confidence": result.confidence,
            "asr_avg_logprob": sum(s.avg_logprob * s.n_tokens for s in segs) / n_tok if n_tok else None,
            "asr_no_speech_prob": (sum(s.no_speech_prob * max(s.end - s.start, 1e-3) for s in segs) / span
                                   if span else None),
            "asr_language_prob": result.language_probability,
            "asr_chars_per_s": len(normalize_text(result.text)) / speech_s if speech_s > 0 else None,
        }
        words = tuple((w.text, w.start, w.end) for w in result.words if w.text)
        info = TranscriptInfo(origin="asr", model=model.name, language=result.language,
                              language_probability=result.language_probability, confidence=result.confidence,
                              heard=result.text)
        if given is None:
            if problems:
                found = guard_findings(problems, result, speech_s=speech_s)
                return dataclasses.replace(clip, transcript=None, words=None,
                                           transcript_info=dataclasses.replace(info, origin="none")) \
                    .with_metrics(**metrics).with_findings(*found)
            return dataclasses.replace(clip, transcript=result.text, words=words, transcript_info=info) \
                .with_metrics(**metrics)
        check = verify_transcript(given, result, threshold=self.cer_threshold, language=self.language,
                                  asr_problems=problems)
        metrics.update(asr_cer=check.cer, asr_wer=check.wer)
        found = guard_findings(problems, result, speech_s=speech_s, severity="info")
        if "transcript_mismatch" in check.problems:
            found.append(finding("transcript.mismatch", metric="asr_cer", value=check.cer,
                                 threshold=self.cer_threshold))
        if not check.language_match:
            found.append(finding("transcript.language", heard=result.language, expected=self.language,
                                 probability=result.language_probability))
        if self.mode == "always" and not problems:
            out = dataclasses.replace(clip, transcript=result.text, words=words,
                                      transcript_info=dataclasses.replace(info, user_text=given))
        else:
            aligned = align_words(given, words) if check.matches else None
            out = dataclasses.replace(clip, words=aligned or None,
                                      transcript_info=dataclasses.replace(info, origin="user"))
        return out.with_metrics(**metrics).with_findings(*found)
