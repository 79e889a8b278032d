"""The :class:`Clip` record and its JSON form.

A clip is immutable: every stage returns a new one made with
:func:`dataclasses.replace`.  Serialisation (:meth:`Clip.to_dict`,
:meth:`Clip.from_dict`) drops the audio; the run folder's journal
(:mod:`prep.run.run_folder`) stores one such object per line.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import PrepError
from .findings import SEVERITIES, VERDICTS, Finding, findings_from_record, verdict_of, worst_verdict

__all__ = [
    "VERDICTS",
    "Clip",
    "SourceAudio",
    "StageRecord",
    "InputInfo",
    "TranscriptInfo",
    "Word",
    "file_sha256",
    "worst_verdict",
]

_TIME_EPS = 1e-6  # seconds: instants closer than this are the same (float rounding of sample positions)

def file_sha256(path: str | Path, *, chunk_bytes: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk_bytes):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class InputInfo:
    """What :func:`prep.run.decode.probe` learnt about a source file."""

    format: str
    codec: str
    sample_rate: int
    channels: int
    duration_s: float
    subtype: str = ""


#: One spoken word: ``(text, start_s, end_s)``, times in seconds from the start of the clip's audio.
Word = tuple[str, float, float]

#: Where a clip's transcript came from.
TRANSCRIPT_ORIGINS = ("user", "asr", "none")


@dataclass(frozen=True)
class TranscriptInfo:
    """Where a clip's transcript came from and what speech recognition heard.

    Attributes
    ----------
    origin : {"user", "asr", "none"}
        ``user``: a sidecar or metadata file; ``asr``: speech recognition filled it in; ``none``: the clip
        has no transcript (recognition ran but its text was not usable).
    model : str or None
        The ASR model that ran (bundled name, faster-whisper name or folder), None when none ran.
    language : str or None
        Language code the model detected (or was forced to).
    language_probability : float or None
        Probability of ``language`` (1.0 when forced or for an English-only model).
    confidence : float or None
        Geometric-mean token probability of the ASR text, in [0, 1].
    heard : str or None
        The ASR text (also when it was not used: the report shows it beside a user transcript).
    user_text : str or None
        The user's transcript when the ASR text replaced it (``--transcribe always``).
    """

    origin: str
    model: str | None = None
    language: str | None = None
    language_probability: float | None = None
    confidence: float | None = None
    heard: str | None = None
    user_text: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TranscriptInfo:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass(frozen=True)
class StageRecord:
    """One entry of a clip's history: which stage ran, with which config."""

    stage: str
    config: Mapping[str, Any]


@dataclass(frozen=True, eq=False)
class SourceAudio:
    """The downmixed source a clip was cut from, at the source rate (carried, never serialised).

    Attributes
    ----------
    audio : np.ndarray
        float32, ``(samples,)`` mono (or ``(channels, samples)`` when no downmix ran).
    sample_rate : int
        Rate of ``audio`` in Hz (the source's).
    start_s : float
        Source time of ``audio[..., 0]`` in seconds (a long file's piece starts later than 0).
    """

    audio: np.ndarray = field(repr=False)
    sample_rate: int
    start_s: float = 0.0

    def span(self, start_s: float, end_s: float) -> np.ndarray:
        """The source audio from ``start_s`` to ``end_s`` (source time, clamped to what is held).

        Returns
        -------
        np.ndarray, float32, shape (samples,) or (channels, samples)
            A view, not a copy.
        """
        n = self.audio.shape[-1]
        i0 = min(n, max(0, round((start_s - self.start_s) * self.sample_rate)))
        i1 = min(n, max(i0, round((end_s - self.start_s) * self.sample_rate)))
        return self.audio[..., i0:i1]


def _jsonable(value: Any) -> Any:
    """Convert numpy scalars/arrays, tuples, paths and non-finite floats for JSON."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return [_jsonable(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, Path):
        return str(value)
    return value


def _unjson_metrics(metrics: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, val in metrics.items():
        if val == "inf":
            val = math.inf
        elif val == "-inf":
            val = -math.inf
        out[key] = val
    return out


@dataclass(frozen=True, eq=False)
class Clip:
    """An immutable clip of audio and everything known about it.

    Attributes
    ----------
    id : str
        Unique within a run, stable across runs for the same source content.
    source : str
        Path of the source file as given.
    source_sha256 : str
        Content hash of the source file (resume key).
    speaker : str
        Speaker label.
    sample_rate : int
        Rate of ``audio`` in Hz.
    audio : np.ndarray or None
        float32, ``(samples,)`` mono or ``(channels, samples)``; ``None`` once
        written out or when read back from a manifest.
    transcript : str or None
        What is said, if known.
    span_s : tuple of float
        ``(start_s, end_s)`` of the kept audio within the source, in source
        time (seconds from the start of the original file), also for pieces
        of long files and their slices.
    input : InputInfo or None
        Format facts of the source.
    metrics : Mapping
        Measurements by name (units in the names).
    history : tuple of StageRecord
        Stages applied, in order, with their configs.
    findings : tuple of Finding
        What the stages found, in the order found; the :attr:`verdict` and
        the :attr:`reasons` are derived from them.
    output : str or None
        Path of the written clip, relative to the output folder.
    speech : tuple of (float, float) or None
        Speech regions of ``audio`` in seconds from its start, as an earlier
        stage detected them, so later stages need not run the VAD again.
        Not serialised.  :func:`~prep.run.pipeline.run_stages` drops them when a
        stage that declares ``"timing"`` in its ``changes`` changes the audio
        (without setting new regions).
    n_samples : int
        Length of the clip's audio in samples at ``sample_rate``: set from
        ``audio`` whenever the clip holds audio, kept when the audio is
        dropped (written out), serialised.  :attr:`duration_s` derives from it.
        ``0`` when never known (an error record).
    pauses_cut_s : tuple of (float, float)
        Ranges of the source (source time, inside ``span_s``, sorted) that
        pause compression removed, so ``span_s[1] - span_s[0]`` minus their
        total length is :attr:`duration_s` (to within a sample).
    source_audio : SourceAudio or None
        The downmixed source this clip was cut from (set by
        :class:`~prep.stages.downmix.Downmix` and for long-file pieces), so
        :class:`~prep.stages.measure.Measure` can judge each slice on its own
        span of the source.  Not serialised; dropped when the clip is written.
    transcript_info : TranscriptInfo or None
        Origin of the transcript (user/asr), the ASR model, language and
        confidence; None when no transcript stage ran.  Serialised.
    words : tuple of Word or None
        The transcript's words with times in seconds from the start of the
        clip's audio (set by :class:`~prep.stages.transcribe.Transcribe`), so
        :class:`~prep.stages.slice.Slice` cuts between words and splits the
        text.  Not serialised; dropped like :attr:`speech` when a stage that
        declares ``"timing"`` changes the audio without setting new ones.
    """

    id: str
    source: str
    source_sha256: str
    speaker: str
    sample_rate: int
    audio: np.ndarray | None = field(default=None, repr=False)
    transcript: str | None = None
    span_s: tuple[float, float] = (0.0, 0.0)
    input: InputInfo | None = None
    metrics: Mapping[str, Any] = field(default_factory=dict)
    history: tuple[StageRecord, ...] = ()
    findings: tuple[Finding, ...] = ()
    output: str | None = None
    speech: tuple[tuple[float, float], ...] | None = field(default=None, repr=False)
    n_samples: int = 0
    pauses_cut_s: tuple[tuple[float, float], ...] = ()
    source_audio: SourceAudio | None = field(default=None, repr=False)
    transcript_info: TranscriptInfo | None = None
    words: tuple[Word, ...] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.audio is not None:  # the length always follows the audio while there is audio
            object.__setattr__(self, "n_samples", int(self.audio.shape[-1]))

    # -- functional updates -------------------------------------------------
    def with_metrics(self, **metrics: Any) -> Clip:
        """Return a copy with ``metrics`` merged in."""
        return dataclasses.replace(self, metrics={**self.metrics, **metrics})

    def with_findings(self, *findings: Finding) -> Clip:
        """Return a copy with ``findings`` appended (one equal to a finding already there is dropped)."""
        for item in findings:
            if not isinstance(item, Finding):
                raise PrepError(f"not a Finding: {item!r}")
        merged = tuple(dict.fromkeys((*self.findings, *findings)))
        return dataclasses.replace(self, findings=merged)

    @property
    def verdict(self) -> str:
        """One of :data:`VERDICTS`, by :func:`prep.findings.verdict_of` from :attr:`findings`."""
        return verdict_of(self.findings)

    @property
    def reasons(self) -> tuple[str, ...]:
        """The findings' messages, worst first (in the order found within a severity)."""
        ranked = sorted(self.findings, key=lambda f: -SEVERITIES.index(f.severity))
        return tuple(f.message for f in ranked)

    def with_history(self, stage: str, config: Mapping[str, Any]) -> Clip:
        """Return a copy with one more :class:`StageRecord`."""
        record = StageRecord(stage=stage, config=dict(config))
        return dataclasses.replace(self, history=(*self.history, record))

    def require_audio(self) -> np.ndarray:
        """The clip's audio, or :class:`PrepError` when it has none (manifest records)."""
        if self.audio is None:
            raise PrepError(f"clip {self.id} carries no audio (read from a manifest?)")
        return self.audio

    @property
    def duration_s(self) -> float:
        """Duration of the clip's audio: ``n_samples / sample_rate`` (``0.0`` when unknown)."""
        if self.sample_rate <= 0:
            return 0.0
        return self.n_samples / float(self.sample_rate)

    def source_time(self, t: float, *, after_cut: bool = False) -> float:
        """Source time of the instant ``t`` seconds into the clip's audio.

        Adds ``span_s[0]`` and the length of every cut pause before ``t``.
        The instant where two sides of a cut pause were joined maps to the
        start of the cut, or with ``after_cut`` to its end (use it for the
        start of a range, the default for its end).
        """
        src = float(self.span_s[0]) + t
        for start, end in self.pauses_cut_s:
            if src > start + _TIME_EPS or (after_cut and src >= start - _TIME_EPS):
                src += end - start
            else:
                break
        return src

    # -- serialisation ------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of everything but the audio."""
        data: dict[str, Any] = {
            "id": self.id,
            "source": self.source,
            "source_sha256": self.source_sha256,
            "speaker": self.speaker,
            "sample_rate": self.sample_rate,
            "transcript": self.transcript,
            "transcript_info": self.transcript_info.to_dict() if self.transcript_info else None,
            "span_s": list(self.span_s),
            "pauses_cut_s": [list(c) for c in self.pauses_cut_s],
            "n_samples": self.n_samples,
            "duration_s": self.duration_s,
            "input": dataclasses.asdict(self.input) if self.input else None,
            "output": self.output,
            "verdict": self.verdict,
            "reasons": list(self.reasons),
            "findings": [f.to_dict() for f in self.findings],
            "metrics": dict(self.metrics),
            "history": [{"stage": r.stage, "config": dict(r.config)} for r in self.history],
        }
        return _jsonable(data)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Clip:
        """Inverse of :meth:`to_dict` (the audio is ``None``).

        A record written before ``n_samples`` existed takes its length from
        the ``duration_s`` metric (the scored audio), never from the span.
        A record written before findings existed (``verdict`` and ``reasons``
        only) reads back with the same verdict and reasons
        (see :func:`prep.findings.findings_from_record`).
        """
        try:
            rate = int(data["sample_rate"])
            n_samples = data.get("n_samples")
            if n_samples is None:
                measured = (data.get("metrics") or {}).get("duration_s")
                n_samples = round(measured * rate) if isinstance(measured, (int, float)) else 0
            return cls(
                id=data["id"],
                source=data["source"],
                source_sha256=data["source_sha256"],
                speaker=data["speaker"],
                sample_rate=rate,
                transcript=data.get("transcript"),
                transcript_info=TranscriptInfo.from_dict(data["transcript_info"]) if data.get("transcript_info")
                else None,
                span_s=tuple(data.get("span_s") or (0.0, 0.0)),  # type: ignore[arg-type]
                input=InputInfo(**data["input"]) if data.get("input") else None,
                metrics=_unjson_metrics(data.get("metrics") or {}),
                history=tuple(StageRecord(h["stage"], h["config"]) for h in data.get("history") or ()),
                findings=findings_from_record(data),
                output=data.get("output"),
                n_samples=int(n_samples),
                pauses_cut_s=tuple((float(a), float(b)) for a, b in data.get("pauses_cut_s") or ()),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise PrepError(f"malformed clip record (missing or bad field {err}): {str(data)[:120]}") from err
