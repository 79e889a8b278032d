"""The :class:`Clip` record and its JSONL manifest form.

A clip is immutable: every stage returns a new one made with
:func:`dataclasses.replace`.  Serialisation drops the audio; the manifest is
one JSON object per line.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import PrepError
from .findings import SEVERITIES, VERDICTS, Finding, findings_from_record, verdict_of, worst_verdict

__all__ = [
    "VERDICTS",
    "Clip",
    "StageRecord",
    "InputInfo",
    "file_sha256",
    "read_manifest",
    "manifest_line",
    "worst_verdict",
]

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


@dataclass(frozen=True)
class StageRecord:
    """One entry of a clip's history: which stage ran, with which config."""

    stage: str
    config: Mapping[str, Any]


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
        ``(start_s, end_s)`` of the kept audio within the source.
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
        stage changes the audio without declaring ``keeps_timing`` (and
        without setting new regions).
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
        """Duration of ``audio`` (or of the span when the audio is gone)."""
        if self.audio is not None:
            return self.audio.shape[-1] / float(self.sample_rate)
        return self.span_s[1] - self.span_s[0]

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
            "span_s": list(self.span_s),
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

        A record written before findings existed (``verdict`` and ``reasons``
        only) reads back with the same verdict and reasons
        (see :func:`prep.findings.findings_from_record`).
        """
        try:
            return cls(
                id=data["id"],
                source=data["source"],
                source_sha256=data["source_sha256"],
                speaker=data["speaker"],
                sample_rate=int(data["sample_rate"]),
                transcript=data.get("transcript"),
                span_s=tuple(data.get("span_s") or (0.0, 0.0)),  # type: ignore[arg-type]
                input=InputInfo(**data["input"]) if data.get("input") else None,
                metrics=_unjson_metrics(data.get("metrics") or {}),
                history=tuple(StageRecord(h["stage"], h["config"]) for h in data.get("history") or ()),
                findings=findings_from_record(data),
                output=data.get("output"),
            )
        except (KeyError, TypeError) as err:
            raise PrepError(f"malformed clip record (missing or bad field {err}): {str(data)[:120]}") from err


def manifest_line(clip: Clip) -> str:
    """One JSONL line (with trailing newline) for ``clip``."""
    return json.dumps(clip.to_dict(), ensure_ascii=False, sort_keys=False) + "\n"


def read_manifest(path: str | Path) -> Iterator[Clip]:
    """Yield the clips of a JSONL manifest, skipping a torn last line.

    A run killed mid-write can leave an incomplete final line; it is ignored
    so the run can resume.
    """
    with open(path, encoding="utf-8") as fh:
        lines: Iterable[str] = fh.readlines()
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as err:
            if not line.endswith("\n"):
                return  # torn tail of an interrupted append
            raise PrepError(f"{path}:{lineno}: invalid manifest line: {err}") from err
        yield Clip.from_dict(data)
