"""Finding and cleaning transcripts for input audio.

Sources, in order of precedence for a given audio file:

1. a sidecar ``<stem>.txt`` or ``<stem>.lab`` beside it;
2. a ``metadata.csv`` or ``metadata.jsonl`` in its folder or any parent folder
   of the inputs, with a ``path``/``file_name``/``file`` column (relative to
   that metadata file) and a ``text``/``transcription``/``transcript`` column.

Text is normalised to Unicode NFC with whitespace collapsed.
"""

from __future__ import annotations

import csv
import json
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConfigError

__all__ = ["clean_text", "read_metadata", "TranscriptIndex"]

_PATH_KEYS = ("path", "file_name", "filename", "file", "audio", "audio_filepath", "wav")
_TEXT_KEYS = ("text", "transcription", "transcript", "normalized_text", "sentence")
METADATA_NAMES = ("metadata.csv", "metadata.jsonl")


def clean_text(text: str) -> str:
    """NFC-normalise and collapse whitespace (incl. newlines, NBSP, BOM)."""
    text = unicodedata.normalize("NFC", text.replace("\ufeff", ""))
    return " ".join(text.split())


def _pick(row: Mapping[str, object], keys: tuple[str, ...]) -> str | None:
    lowered = {str(k).strip().lower(): v for k, v in row.items() if k is not None}
    for key in keys:
        value = lowered.get(key)
        if value is not None and str(value).strip():
            return str(value)
    return None


def read_metadata(path: str | Path) -> dict[Path, str]:
    """Read a ``metadata.csv`` / ``.jsonl`` into ``{resolved audio path: text}``.

    Raises
    ------
    ConfigError
        If the file lacks a path or a text column, naming the file.
    """
    meta = Path(path)
    rows: list[Mapping[str, object]] = []
    try:
        if meta.suffix.lower() == ".jsonl":
            with open(meta, encoding="utf-8-sig") as fh:
                for lineno, line in enumerate(fh, 1):
                    if line.strip():
                        try:
                            rows.append(json.loads(line))
                        except json.JSONDecodeError as err:
                            raise ConfigError(f"{meta}:{lineno}: invalid JSON line: {err.msg}") from err
        else:
            with open(meta, encoding="utf-8-sig", newline="") as fh:
                rows.extend(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise ConfigError(f"{meta}: cannot read transcripts: {err}") from err
    out: dict[Path, str] = {}
    for row in rows:
        rel = _pick(row, _PATH_KEYS)
        text = _pick(row, _TEXT_KEYS)
        if rel is None or text is None:
            raise ConfigError(
                f"{meta}: each row needs a path column {_PATH_KEYS} and a text column {_TEXT_KEYS}; got {sorted(row)}"
            )
        out[(meta.parent / rel).resolve()] = clean_text(text)
    return out


@dataclass
class TranscriptIndex:
    """Transcripts by resolved audio path, gathered from metadata files."""

    by_path: dict[Path, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @classmethod
    def from_audio_paths(cls, paths: Iterable[str | Path]) -> TranscriptIndex:
        """Index every metadata file in the folders of ``paths`` and their parents."""
        folders: set[Path] = set()
        for p in paths:
            folder = Path(p).resolve().parent
            folders.update([folder, *list(folder.parents)[:3]])
        index = cls()
        for folder in sorted(folders, key=lambda f: len(f.parts)):
            for name in METADATA_NAMES:
                meta = folder / name
                if meta.is_file():
                    try:
                        index.by_path.update(read_metadata(meta))  # deeper folders override
                    except ConfigError as err:
                        index.problems.append(str(err))
        return index

    def lookup(self, audio_path: str | Path) -> str | None:
        """Transcript for ``audio_path``: sidecar first, then metadata."""
        p = Path(audio_path)
        for ext in (".txt", ".lab"):
            side = p.with_suffix(ext)
            if side.is_file():
                try:
                    text = clean_text(side.read_text(encoding="utf-8-sig"))
                except (OSError, UnicodeDecodeError):
                    continue
                if text:
                    return text
        try:
            return self.by_path.get(p.resolve())
        except OSError:
            return None
