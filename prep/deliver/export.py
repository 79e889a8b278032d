"""Exporting approved clips and transcripts as TTS training datasets.

Formats (``DEST`` is the export folder):

``fish-speech``
    ``DEST/<speaker>/<name>.wav`` with ``DEST/<speaker>/<name>.lab`` (the
    transcript, UTF-8, one line), the layout fish-speech fine-tuning reads.
``ljspeech``
    ``DEST/wavs/<name>.wav`` and ``DEST/metadata.csv``: no header, one
    ``name|text|normalized text`` line per clip (``|`` in a text becomes a
    space; the normalized column repeats the text: no number expansion).
``nemo``
    ``DEST/audio/<speaker>/<name>.wav`` and ``DEST/manifest.json``: one JSON
    object per line with ``audio_filepath`` (relative to ``DEST``, or absolute
    on request), ``duration`` (seconds, read from the written file), ``text``,
    ``speaker``, ``id``, ``verdict`` and the clip's scalar metrics.
``audiofolder``
    Hugging Face ``audiofolder``: ``DEST/data/<name>.wav`` and
    ``DEST/metadata.csv`` with columns ``file_name``, ``transcription``,
    ``speaker``, ``duration``.

A run folder whose report is partial (an interrupted run) is exported with
a note naming the report and how to finish the run (the export can simply
be repeated into the same ``DEST`` afterwards); its marker records
``"partial": true``.

Only ``approved`` clips are exported (``include_warning`` adds ``warning``
ones); clips without a transcript are skipped unless ``require_text`` is off.
The clip WAVs are copied byte for byte; every file is written atomically
and the index files (metadata/manifest) last.  ``DEST`` must be empty or an
earlier voiceprep export (``DEST/.voiceprep-export.json`` lists its files;
files of the earlier export that the new one does not contain are removed).
"""

from __future__ import annotations

import csv
import io
import json
import math
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import soundfile as sf

from ..clip import Clip
from ..errors import ConfigError, OutputError, PrepError
from ..io import atomic_path, write_text_atomic
from ..run.run_folder import RunFolder

__all__ = ["FORMATS", "MARKER", "ExportResult", "describe_skipped", "export_clips"]

FORMATS = ("fish-speech", "ljspeech", "nemo", "audiofolder")
MARKER = ".voiceprep-export.json"
#: NeMo manifest keys that clip metrics must not overwrite.
_NEMO_RESERVED = {"audio_filepath", "duration", "text", "speaker", "id", "verdict", "offset", "lang", "pred_text"}


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_clips` wrote.

    Attributes
    ----------
    format : str
    dest : Path
    exported : tuple of str
        Clip ids written, in order.
    files : tuple of str
        Every file written, relative to ``dest``.
    skipped : tuple of (str, str)
        ``(clip id, reason)`` for clips left out.
    notes : tuple of str
    """

    format: str
    dest: Path
    exported: tuple[str, ...]
    files: tuple[str, ...]
    skipped: tuple[tuple[str, str], ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)


def describe_skipped(skipped: Sequence[tuple[str, str]], *, include_warning: bool, require_text: bool) -> str:
    """The skipped clips counted per cause, with the option that includes each.

    Parameters
    ----------
    skipped : sequence of (str, str)
        ``ExportResult.skipped``: ``(clip id, reason)``.
    include_warning, require_text : bool
        The options of the export, to suggest only what would change it.

    Returns
    -------
    str
        E.g. ``"not approved: 20 warning / 3 rejected; no transcript: 2; file missing: 1;
        --include-warning exports warning clips"``.
    """
    verdicts: dict[str, int] = {}
    no_text = missing = 0
    for _, why in skipped:
        if why.startswith("verdict "):
            verdict = why.removeprefix("verdict ")
            verdicts[verdict] = verdicts.get(verdict, 0) + 1
        elif why == "no transcript":
            no_text += 1
        else:
            missing += 1
    parts = []
    if verdicts:
        order = ("warning", "rejected", "error")
        names = sorted(verdicts, key=lambda v: (order.index(v) if v in order else len(order), v))
        parts.append("not approved: " + " / ".join(f"{verdicts[v]} {v}" for v in names))
    if no_text:
        parts.append(f"no transcript: {no_text}")
    if missing:
        parts.append(f"file missing: {missing}")
    if verdicts.get("warning") and not include_warning:
        parts.append("--include-warning exports warning clips")
    if no_text and require_text:
        parts.append("--allow-missing-text exports clips without a transcript")
    return "; ".join(parts)


def _names(clips: Sequence[Clip]) -> dict[int, str]:
    """A file stem per clip: its id, prefixed with the speaker when ids repeat."""
    counts: dict[str, int] = {}
    for clip in clips:
        counts[clip.id] = counts.get(clip.id, 0) + 1
    names: dict[int, str] = {}
    used: set[str] = set()
    for i, clip in enumerate(clips):
        name = clip.id if counts[clip.id] == 1 else f"{clip.speaker}_{clip.id}"
        base, n = name, 1
        while name in used:
            n += 1
            name = f"{base}_{n}"
        used.add(name)
        names[i] = name
    return names


def _copy_atomic(src: Path, dst: Path) -> None:
    with atomic_path(dst) as tmp:
        try:
            shutil.copyfile(src, tmp)
        except OSError as err:
            raise OutputError(f"{dst}: cannot copy {src}: {err.strerror or err}") from err


def _prepare_dest(dest: Path) -> list[str]:
    """Check ``dest`` is empty or an earlier export; return the earlier export's files."""
    if dest.exists() and not dest.is_dir():
        raise ConfigError(f"-d {dest}: exists and is not a folder")
    if not dest.exists() or not any(dest.iterdir()):
        return []
    marker = dest / MARKER
    if not marker.is_file():
        raise ConfigError(f"-d {dest}: folder is not empty and is not a voiceprep export; choose an empty folder")
    try:
        previous = json.loads(marker.read_text(encoding="utf-8"))
        files = [str(f) for f in previous.get("files", [])]
    except (OSError, ValueError, AttributeError) as err:
        raise ConfigError(f"{marker}: unreadable export record ({err}); remove the folder or choose another") from err
    return files


def _remove_stale(dest: Path, previous: Sequence[str], current: set[str]) -> None:
    root = dest.resolve()
    for rel in previous:
        if rel in current:
            continue
        path = (dest / rel).resolve()
        if root not in path.parents:  # never outside the export folder
            continue
        try:
            path.unlink(missing_ok=True)
        except OSError as err:
            raise OutputError(f"{path}: cannot remove a file of the earlier export: {err.strerror or err}") from err
        parent = path.parent
        while parent != root and parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()
            parent = parent.parent


def _scalar_metrics(metrics: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in dict(metrics).items():
        if key in _NEMO_RESERVED:
            continue
        if value is None or isinstance(value, (bool, int, str)):
            out[key] = value
        elif isinstance(value, float):
            out[key] = value if math.isfinite(value) else None
    return out


def export_clips(
    out_dir: str | Path,
    fmt: str,
    dest: str | Path,
    *,
    include_warning: bool = False,
    speaker: str | None = None,
    require_text: bool = True,
    absolute_paths: bool = False,
) -> ExportResult:
    """Export the clips of a run folder as a dataset.

    Parameters
    ----------
    out_dir : str or Path
        Output folder of ``voiceprep run``.
    fmt : str
        One of :data:`FORMATS`.
    dest : str or Path
        Export folder: empty, absent, or an earlier voiceprep export.
    include_warning : bool
        Also export clips whose verdict is ``warning``.
    speaker : str, optional
        Only this speaker.
    require_text : bool
        Skip clips without a transcript (else they get an empty text).
    absolute_paths : bool
        NeMo only: write absolute ``audio_filepath`` values.

    Returns
    -------
    ExportResult

    Raises
    ------
    ConfigError
        Unknown format or speaker, an unusable ``dest``, or no finished run
        in ``out_dir``.
    DataError
        The run's report cannot be read (see
        :meth:`prep.run.run_folder.RunFolder.read_clips`, the clips exported).
    PrepError
        No clip qualifies.
    OutputError
        A file cannot be written.
    """
    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format {fmt!r}; choose one of {list(FORMATS)}")
    out = Path(out_dir)
    dest = Path(dest)
    if dest.resolve() == out.resolve():
        raise ConfigError(f"-d {dest}: the export folder must not be the run folder")
    folder = RunFolder(out)
    report = folder.read_report()
    clips = folder.read_clips(report)
    partial = folder.partial_note(report)
    if speaker is not None:
        speakers = sorted({c.speaker for c in clips})
        clips = [c for c in clips if c.speaker == speaker]
        if not clips:
            raise ConfigError(f"speaker {speaker!r} has no clips in {out}; speakers there: {speakers}")
    allowed = ("approved", "warning") if include_warning else ("approved",)
    chosen: list[Clip] = []
    skipped: list[tuple[str, str]] = []
    for clip in sorted(clips, key=lambda c: (c.speaker, c.id)):
        if clip.verdict not in allowed:
            skipped.append((clip.id, f"verdict {clip.verdict}"))
        elif not clip.output or not (out / clip.output).is_file():
            skipped.append((clip.id, f"clip file missing: {clip.output}"))
        elif require_text and not clip.transcript:
            skipped.append((clip.id, "no transcript"))
        else:
            chosen.append(clip)
    if not chosen:
        raise PrepError(f"no clip of {out} qualifies for export: {len(skipped)} skipped ("
                        f"{describe_skipped(skipped, include_warning=include_warning, require_text=require_text)})"
                        + (f"; {partial}" if partial else ""))
    previous = _prepare_dest(dest)
    names = _names(chosen)
    notes: list[str] = [f"{partial}, then export again"] if partial else []
    files: list[str] = []

    def put_audio(clip: Clip, rel: str) -> Path:
        _copy_atomic(out / str(clip.output), dest / rel)
        files.append(rel)
        return dest / rel

    if fmt == "fish-speech":
        for i, clip in enumerate(chosen):
            stem = f"{clip.speaker}/{names[i]}"
            put_audio(clip, f"{stem}.wav")
            write_text_atomic(dest / f"{stem}.lab", clip.transcript or "")
            files.append(f"{stem}.lab")
    elif fmt == "ljspeech":
        lines = []
        for i, clip in enumerate(chosen):
            put_audio(clip, f"wavs/{names[i]}.wav")
            text = clip.transcript or ""
            if "|" in text:
                notes.append(f"{clip.id}: '|' replaced by a space (LJSpeech delimiter)")
                text = " ".join(text.replace("|", " ").split())
            lines.append(f"{names[i]}|{text}|{text}\n")
        write_text_atomic(dest / "metadata.csv", "".join(lines))
        files.append("metadata.csv")
    elif fmt == "nemo":
        lines = []
        for i, clip in enumerate(chosen):
            rel = f"audio/{clip.speaker}/{names[i]}.wav"
            path = put_audio(clip, rel)
            info = sf.info(str(path))
            entry: dict[str, Any] = {
                "audio_filepath": str(path.resolve()) if absolute_paths else rel,
                "duration": info.frames / float(info.samplerate),
                "text": clip.transcript or "",
                "speaker": clip.speaker,
                "id": clip.id,
                "verdict": clip.verdict,
                **_scalar_metrics(clip.metrics),
            }
            lines.append(json.dumps(entry, ensure_ascii=False, allow_nan=False) + "\n")
        write_text_atomic(dest / "manifest.json", "".join(lines))
        files.append("manifest.json")
    else:  # audiofolder
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["file_name", "transcription", "speaker", "duration"])
        for i, clip in enumerate(chosen):
            rel = f"data/{names[i]}.wav"
            path = put_audio(clip, rel)
            info = sf.info(str(path))
            writer.writerow([rel, clip.transcript or "", clip.speaker, f"{info.frames / float(info.samplerate):.6f}"])
        write_text_atomic(dest / "metadata.csv", buf.getvalue())
        files.append("metadata.csv")

    _remove_stale(dest, previous, set(files))
    marker = {"format": fmt, "source": str(out.resolve()), "partial": bool(partial), "clips": [c.id for c in chosen],
              "files": files}
    write_text_atomic(dest / MARKER, json.dumps(marker, indent=1, ensure_ascii=False) + "\n")
    return ExportResult(
        format=fmt,
        dest=dest,
        exported=tuple(c.id for c in chosen),
        files=tuple(files),
        skipped=tuple(skipped),
        notes=tuple(notes),
    )
