"""Finding, cleaning and checking transcripts for input audio.

Sources, in order of precedence for a given audio file:

1. a sidecar ``<stem>.txt`` or ``<stem>.lab`` beside it;
2. a ``metadata.csv`` or ``metadata.jsonl`` in its folder, in a parent folder
   of the inputs, or anywhere under an input folder (``roots``), with a
   ``path``/``file_name``/``file`` column (relative to that metadata file) and
   a ``text``/``transcription``/``transcript`` column, and optionally a
   ``speaker`` column.  An LJSpeech-style ``metadata.csv`` (no header,
   ``id|text[|normalized text]``, audio in ``wavs/<id>.wav``) is read too.

Text is normalised to Unicode NFC, invisible characters (BOM, zero-width
space, control characters) are removed and whitespace is collapsed.

:func:`flag_transcript_rates` checks that each transcript plausibly matches
its audio: characters per second of speech far from the speaker's typical
rate (robust z-score) or outside absolute bounds earn a ``warning``.

A metadata file that cannot be read or parsed is bad data, not bad usage:
:func:`read_metadata_rows` raises :class:`~prep.errors.DataError` naming the
file (and line), and :meth:`TranscriptIndex.from_audio_paths` records it in
``problems`` and goes on without it.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..clip import Clip
from ..errors import ConfigError, DataError
from ..findings import finding

__all__ = [
    "METADATA_NAMES",
    "MetadataRow",
    "TranscriptIndex",
    "clean_text",
    "flag_transcript_rates",
    "read_metadata",
    "read_metadata_rows",
    "text_chars",
    "transcript_rate",
]

log = logging.getLogger(__name__)

_PATH_KEYS = ("path", "file_name", "filename", "file", "audio", "audio_filepath", "wav")
_TEXT_KEYS = ("text", "transcription", "transcript", "normalized_text", "sentence")
_SPEAKER_KEYS = ("speaker", "speaker_id", "speaker_name", "client_id")
METADATA_NAMES = ("metadata.csv", "metadata.jsonl")

#: Invisible characters removed by :func:`clean_text` (ZWJ/ZWNJ are kept: they
#: change how some scripts are written).
_INVISIBLE = dict.fromkeys(map(ord, "\ufeff\u200b\u2060\u00ad\u180e"), None)
#: HTK/MFA-style timed label lines ("start end label"), which are not plain text.
_TIMED_LABEL = re.compile(r"^\s*\d+(?:\.\d+)?\s+\d+(?:\.\d+)?\s+\S")


def clean_text(text: str) -> str:
    """NFC-normalise, drop invisible/control characters and collapse whitespace.

    Parameters
    ----------
    text : str

    Returns
    -------
    str
        The cleaned text; ``""`` when nothing visible is left.
    """
    text = unicodedata.normalize("NFC", text.translate(_INVISIBLE))
    # control characters (Cc) other than whitespace become spaces, then collapse
    text = "".join(" " if unicodedata.category(ch) == "Cc" else ch for ch in text)
    return " ".join(text.split())


def text_chars(text: str) -> int:
    """Number of spoken characters in ``text``: letters and digits.

    Spaces, punctuation and combining marks do not count, so the measure is
    comparable across punctuation styles; in scripts without spaces (CJK)
    every character counts.
    """
    return sum(1 for ch in unicodedata.normalize("NFC", text) if unicodedata.category(ch)[0] in "LN")


@dataclass(frozen=True)
class MetadataRow:
    """One row of a metadata file.

    Attributes
    ----------
    path : Path
        Resolved audio path.  For rows naming a file without an extension
        (LJSpeech ids) it has no suffix and matches any audio ending.
    text : str
        Cleaned transcript (may be ``""``).
    speaker : str or None
        Speaker label, when the file has a speaker column.
    """

    path: Path
    text: str
    speaker: str | None = None


def _pick(row: Mapping[str, object], keys: tuple[str, ...]) -> str | None:
    lowered = {str(k).strip().lower(): v for k, v in row.items() if k is not None}
    for key in keys:
        value = lowered.get(key)
        if value is not None and str(value).strip():
            return str(value)
    return None


def _has_key(fieldnames: Iterable[str], keys: tuple[str, ...]) -> bool:
    names = {str(k).strip().lower() for k in fieldnames if k is not None}
    return any(k in names for k in keys)


def _read_csv_rows(meta: Path, raw: str) -> tuple[list[Mapping[str, object]], bool]:
    """Rows of a CSV metadata file; second item True when it is LJSpeech-style."""
    first = raw.splitlines()[0] if raw.strip() else ""
    header = next(csv.reader([first]), []) if first else []
    if "|" in first and not _has_key(header, _PATH_KEYS):
        # LJSpeech: id|text|normalized_text, no header, no quoting
        rows: list[Mapping[str, object]] = []
        for lineno, line in enumerate(raw.splitlines(), 1):
            if not line.strip():
                continue
            parts = line.split("|")
            if len(parts) < 2:
                raise DataError(f"{meta}:{lineno}: LJSpeech line needs 'id|text', got {line[:80]!r}")
            rows.append({"path": parts[0], "text": parts[1]})
        return rows, True
    reader = csv.DictReader(io.StringIO(raw, newline=""))
    rows = list(reader)
    names = reader.fieldnames or []
    if not _has_key(names, _PATH_KEYS) or not _has_key(names, _TEXT_KEYS):
        raise DataError(
            f"{meta}: needs a header with a path column {_PATH_KEYS} and a text column {_TEXT_KEYS}; got {names}"
        )
    return rows, False


def read_metadata_rows(path: str | Path, problems: list[str] | None = None) -> list[MetadataRow]:
    """Read a ``metadata.csv`` / ``.jsonl`` into rows.

    Parameters
    ----------
    path : str or Path
    problems : list of str, optional
        Rows that are skipped (no path, duplicate path with different text)
        are described here.

    Returns
    -------
    list of MetadataRow

    Raises
    ------
    DataError
        If the file cannot be read or lacks a path or a text column, naming the file.
    """
    meta = Path(path)
    problems = problems if problems is not None else []
    ljspeech = False
    rows: list[Mapping[str, object]] = []
    try:
        raw = meta.read_text(encoding="utf-8-sig")
        if meta.suffix.lower() == ".jsonl":
            for lineno, line in enumerate(raw.splitlines(), 1):
                if line.strip():
                    try:
                        row = json.loads(line)
                    except json.JSONDecodeError as err:
                        raise DataError(f"{meta}:{lineno}: invalid JSON line: {err.msg}") from err
                    if not isinstance(row, dict):
                        raise DataError(f"{meta}:{lineno}: expected a JSON object, got {type(row).__name__}")
                    rows.append(row)
        else:
            rows, ljspeech = _read_csv_rows(meta, raw)
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise DataError(f"{meta}: cannot read transcripts: {err}") from err
    out: list[MetadataRow] = []
    seen: dict[Path, str] = {}
    for number, row in enumerate(rows, 1):
        rel = _pick(row, _PATH_KEYS)
        if rel is None:
            if meta.suffix.lower() == ".jsonl" and not _has_key(row, _PATH_KEYS):
                raise DataError(f"{meta}: row {number} has no path column {_PATH_KEYS}; got {sorted(row)}")
            problems.append(f"{meta}: row {number} has an empty path; skipped")
            continue
        if meta.suffix.lower() == ".jsonl" and not _has_key(row, _TEXT_KEYS):
            raise DataError(f"{meta}: row {number} has no text column {_TEXT_KEYS}; got {sorted(row)}")
        text = clean_text(_pick(row, _TEXT_KEYS) or "")
        speaker = _pick(row, _SPEAKER_KEYS)
        speaker = clean_text(speaker) if speaker else None
        targets = [meta.parent / rel]
        if ljspeech:
            targets.append(meta.parent / "wavs" / rel)
        for target in targets:
            key = target.resolve()
            if key in seen and seen[key] != text:
                problems.append(f"{meta}: {rel} is listed twice with different texts; the last one is used")
            seen[key] = text
            out.append(MetadataRow(path=key, text=text, speaker=speaker))
    return out


def read_metadata(path: str | Path) -> dict[Path, str]:
    """Read a ``metadata.csv`` / ``.jsonl`` into ``{resolved audio path: text}``.

    Rows with empty text are left out.

    Raises
    ------
    DataError
        If the file lacks a path or a text column, naming the file.
    """
    return {row.path: row.text for row in read_metadata_rows(path) if row.text}


@dataclass
class TranscriptIndex:
    """Transcripts (and speaker labels) by resolved audio path.

    Attributes
    ----------
    by_path : dict
        ``{resolved audio path: text}`` from metadata files; paths of
        LJSpeech ids have no suffix.
    speakers : dict
        ``{resolved audio path: speaker}`` from metadata speaker columns.
    problems : list of str
        Unreadable metadata/sidecar files and skipped rows, for the report.
    """

    by_path: dict[Path, str] = field(default_factory=dict)
    speakers: dict[Path, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @classmethod
    def from_audio_paths(
        cls, paths: Iterable[str | Path], *, roots: Iterable[str | Path] = (), max_parents: int = 3
    ) -> TranscriptIndex:
        """Index the metadata files that can describe ``paths``.

        Parameters
        ----------
        paths : iterable of str or Path
            Audio files; their folders and up to ``max_parents`` parent folders
            are searched for :data:`METADATA_NAMES`.
        roots : iterable of str or Path
            Input folders searched recursively for metadata files ("anywhere in
            the input").
        max_parents : int

        Notes
        -----
        Deeper metadata files override shallower ones for the same audio path.
        """
        found: set[Path] = set()
        for p in paths:
            folder = Path(p).resolve().parent
            for candidate in (folder, *list(folder.parents)[:max_parents]):
                for name in METADATA_NAMES:
                    meta = candidate / name
                    if meta.is_file():
                        found.add(meta)
        for root in roots:
            root_path = Path(root)
            if root_path.is_dir():
                for name in METADATA_NAMES:
                    found.update(m.resolve() for m in root_path.rglob(name) if m.is_file())
        index = cls()
        for meta in sorted(found, key=lambda m: (len(m.parts), str(m))):
            try:
                rows = read_metadata_rows(meta, index.problems)
            except DataError as err:
                index.problems.append(str(err))
                continue
            for row in rows:
                if row.text:
                    index.by_path[row.path] = row.text
                if row.speaker:
                    index.speakers[row.path] = row.speaker
        return index

    def _sidecar(self, p: Path) -> str | None:
        texts = []
        for ext in (".txt", ".lab"):
            side = p.with_suffix(ext)
            if not side.is_file():
                continue
            try:
                raw = side.read_text(encoding="utf-8-sig")
            except (OSError, UnicodeDecodeError) as err:
                self.problems.append(f"{side}: cannot read transcript: {err}")
                continue
            lines = [ln for ln in raw.splitlines() if ln.strip()]
            if ext == ".lab" and lines and all(_TIMED_LABEL.match(ln) for ln in lines):
                self.problems.append(f"{side}: timed label file (start end label), not a plain transcript; ignored")
                continue
            text = clean_text(raw)
            if text:
                texts.append((side, text))
        if len(texts) > 1 and texts[0][1] != texts[1][1]:
            self.problems.append(f"{texts[0][0]} and {texts[1][0]} differ; using {texts[0][0].name}")
        return texts[0][1] if texts else None

    def _key(self, mapping: Mapping[Path, str], p: Path) -> str | None:
        try:
            resolved = p.resolve()
        except OSError:
            return None
        hit = mapping.get(resolved)
        return hit if hit is not None else mapping.get(resolved.with_suffix(""))

    def lookup(self, audio_path: str | Path) -> str | None:
        """Transcript for ``audio_path``: sidecar first, then metadata; ``None`` if unknown."""
        p = Path(audio_path)
        return self._sidecar(p) or self._key(self.by_path, p)

    def speaker(self, audio_path: str | Path) -> str | None:
        """Speaker label for ``audio_path`` from a metadata speaker column, if any."""
        return self._key(self.speakers, Path(audio_path))


# -- transcript/audio agreement ----------------------------------------------------------------------


def _speech_seconds(clip: Clip) -> float | None:
    speech = clip.metrics.get("speech_s")
    if isinstance(speech, (int, float)) and math.isfinite(speech) and speech > 0:
        return float(speech)
    duration = clip.duration_s
    return float(duration) if math.isfinite(duration) and duration > 0 else None


def transcript_rate(clip: Clip) -> float | None:
    """Spoken characters per second of speech for ``clip``.

    Speech seconds are the ``speech_s`` metric when present (VAD), else the
    clip duration.  ``None`` without a transcript or a positive duration.
    """
    if not clip.transcript:
        return None
    seconds = _speech_seconds(clip)
    if seconds is None:
        return None
    return text_chars(clip.transcript) / seconds


def flag_transcript_rates(
    clips: Sequence[Clip],
    *,
    min_cps: float = 2.0,
    max_cps: float = 30.0,
    z_max: float = 3.5,
    min_clips: int = 5,
    mad_floor: float = 0.05,
) -> list[Clip]:
    """Flag transcripts whose length does not fit their audio.

    For each clip with a transcript (and a verdict of ``approved`` or
    ``warning``) the rate ``r`` = spoken characters (:func:`text_chars`) per
    second of speech is measured.  A clip is flagged with a ``warning`` when

    * ``r`` is outside ``[min_cps, max_cps]``, or
    * its speaker has at least ``min_clips`` measured clips and the robust
      z-score of ``log r`` against them, ``0.6745 (log r - median) / MAD``,
      exceeds ``z_max`` in magnitude (the MAD is floored at ``mad_floor`` so
      near-identical rates do not make every small difference an outlier).

    Parameters
    ----------
    clips : sequence of Clip
        Any number of speakers; each speaker is judged against itself.
    min_cps, max_cps : float
        Absolute bounds in characters per second of speech.
    z_max : float
        Robust z-score limit (3.5 is the Iglewicz-Hoaglin outlier rule).
    min_clips : int
        Fewest measured clips of a speaker for the relative test.
    mad_floor : float
        Lower bound of the MAD of ``log r``.

    Returns
    -------
    list of Clip
        Same order and length as ``clips``.  Measured clips gain the metrics
        ``transcript_chars``, ``chars_per_s`` and (with enough clips)
        ``chars_per_s_z``; flagged ones a ``warning`` whose reason gives the
        numbers.

    Raises
    ------
    ConfigError
        If a bound is not positive or ``min_cps >= max_cps``.
    """
    if not (0 < min_cps < max_cps) or not math.isfinite(max_cps):
        raise ConfigError(f"need 0 < min_cps < max_cps, got min_cps={min_cps!r}, max_cps={max_cps!r}")
    if not z_max > 0 or not mad_floor > 0:
        raise ConfigError(f"z_max and mad_floor must be > 0, got z_max={z_max!r}, mad_floor={mad_floor!r}")
    rates: dict[int, float] = {}
    by_speaker: dict[str, list[int]] = {}
    for i, clip in enumerate(clips):
        if clip.verdict not in ("approved", "warning"):
            continue
        rate = transcript_rate(clip)
        if rate is None:
            continue
        rates[i] = rate
        if rate > 0:
            by_speaker.setdefault(clip.speaker, []).append(i)
    stats: dict[str, tuple[float, float]] = {}
    for speaker, members in by_speaker.items():
        if len(members) >= min_clips:
            logs = np.log(np.array([rates[i] for i in members], dtype=np.float64))
            median = float(np.median(logs))
            mad = max(float(np.median(np.abs(logs - median))), mad_floor)
            stats[speaker] = (median, mad)
    out = list(clips)
    for i, rate in rates.items():
        clip = clips[i]
        metrics: dict[str, float] = {"transcript_chars": text_chars(clip.transcript or ""), "chars_per_s": rate}
        found = []
        if rate < min_cps or rate > max_cps:
            bound = min_cps if rate < min_cps else max_cps
            found.append(finding("transcript.rate", metric="chars_per_s", value=rate, threshold=bound))
        if clip.speaker in stats and rate > 0:
            median, mad = stats[clip.speaker]
            z = 0.6745 * (math.log(rate) - median) / mad
            metrics["chars_per_s_z"] = z
            if abs(z) > z_max and not found:
                found.append(
                    finding(
                        "transcript.rate_outlier",
                        metric="chars_per_s_z",
                        value=z,
                        threshold=math.copysign(z_max, z),
                        rate=rate,
                        median=math.exp(median),
                    )
                )
        updated = clip.with_metrics(**metrics)
        if found:
            updated = updated.with_findings(*found)
        out[i] = updated
    return out
