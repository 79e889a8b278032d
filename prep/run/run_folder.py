"""The run folder ``OUT`` of ``voiceprep run``: its paths, its lock, its journal and its reader.

This module is the only one that spells the names inside ``OUT``; every
other module asks a :class:`RunFolder` for them.

Layout (relative to ``OUT``):

``clips/<speaker>/<id>.wav``
    The written clips (:meth:`RunFolder.clip_path`; ``Clip.output`` holds
    the relative form, :meth:`RunFolder.clip_output`).
``manifest.jsonl``
    The journal (below).
``report.json``, ``report.html``
    The report of the last finished run (:mod:`prep.report.summary`,
    :mod:`prep.report.html`).
``plots/<speaker>/<id>.jpg``
    Each clip's before/after figure, drawn by the worker that had the audio.
``plots/<speaker>/<id>.source.flac``
    Each clip's source span (16-bit FLAC, or ``.source.ogg``, Ogg Opus, with
    ``--preview-format opus`` and in runs made before), the report's "before"
    player (:mod:`prep.report.audio`), written by the same worker.
``submit.json``, ``submit.dry-run.json``
    Fish Audio submissions (:mod:`prep.deliver.submit`).
``.voiceprep.lock``
    Held by the one run writing here (:class:`RunLock`).
``.<name>.*.tmp``
    Temp files of atomic writes (:mod:`prep.io`); one a killed run left
    behind is deleted by the next run (:meth:`RunFolder.remove_stale_temps`),
    and so is a clip WAV the journal does not list
    (:meth:`RunFolder.remove_unjournaled_clips`; an interrupted run removes
    its own at once).

The journal
    ``manifest.jsonl`` is append-only: one JSON object per line, a clip's
    :meth:`~prep.clip.Clip.to_dict` plus ``"pipeline"``, the resume key of
    the run that made it (records rewritten by the checks across a
    speaker's clips carry none).  :meth:`RunFolder.append` writes a whole
    line and fsyncs it; the lock keeps to one writer.  A clip given another
    speaker (``--speakers auto``) gets a new record naming its new place before
    its files move (:meth:`RunFolder.move_clip`); the latest record of a clip
    is the one that counts, and :meth:`RunFolder.finish_moves` completes a
    move an interrupt left half done.
    :meth:`RunFolder.read_journal` reads it with one policy:

    - a last line without its trailing newline is the torn tail of an
      interrupted append: it is ignored (and cut off by the next append);
    - any other line that is not a JSON clip record is skipped with a
      logged warning naming ``file:line``.  The journal is the resume log:
      a skipped record only means that its file is processed again.

The reader of a finished run
    ``report.json`` is written when a run finishes, so it is the one record
    of a finished run: :meth:`RunFolder.read_report` (its dict) and
    :meth:`RunFolder.read_clips` (its clips) are what ``voiceprep report``,
    ``export`` and ``submit`` read.  The journal is not used for that: it
    also holds records of interrupted runs, of older pipelines and of inputs
    no longer given.  An interrupted run writes a report of the files that
    finished, marked ``"partial": true``; re-run to the end, it writes the
    whole one.  A missing ``report.json`` is a usage error
    (:class:`~prep.errors.ConfigError`: nothing has finished in ``OUT``); an
    unreadable or corrupt one is a :class:`~prep.errors.DataError` naming the file.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, DataError, OutputError, PrepError
from ..metrics import upgrade_metrics

if TYPE_CHECKING:
    from ..clip import Clip

__all__ = [
    "CLIPS_DIR",
    "DRY_RUN_FILE",
    "LOCK_FILE",
    "MANIFEST",
    "PLOTS_DIR",
    "PREVIEW_FORMATS",
    "REFERENCES_DIR",
    "REFERENCES_JSON",
    "REPORT_HTML",
    "REPORT_JSON",
    "REPORT_VERSION",
    "SUBMIT_FILE",
    "JournalRecord",
    "RunFolder",
    "RunLock",
    "load_report",
    "upgrade_report",
]

log = logging.getLogger(__name__)

CLIPS_DIR = "clips"
MANIFEST = "manifest.jsonl"
REPORT_JSON = "report.json"
REPORT_HTML = "report.html"
PLOTS_DIR = "plots"
REFERENCES_DIR = "references"
REFERENCES_JSON = "references.json"
SUBMIT_FILE = "submit.json"
DRY_RUN_FILE = "submit.dry-run.json"
LOCK_FILE = ".voiceprep.lock"
#: Version of the ``report.json`` schema this voiceprep writes and reads (older ones are upgraded on reading;
#: 3: findings, and the metric names of the :mod:`prep.metrics` registry).
REPORT_VERSION = 3


@dataclass(frozen=True)
class JournalRecord:
    """One record of the journal.

    Attributes
    ----------
    clip : Clip
        The clip as journaled (no audio).
    pipeline : str or None
        Resume key of the run that made it; ``None`` on records rewritten
        after the run's checks across clips.
    line : int
        1-based line number in ``manifest.jsonl``.
    """

    clip: Clip
    pipeline: str | None
    line: int


#: The source preview's file suffix by format (``--preview-format``), the default first.
_PREVIEW_SUFFIXES = {"flac": ".source.flac", "opus": ".source.ogg"}
#: The source-preview formats (:mod:`prep.report.audio` writes them), the default first.
PREVIEW_FORMATS = tuple(_PREVIEW_SUFFIXES)


@dataclass(frozen=True)
class RunFolder:
    """The paths of one output folder, and the operations on its shared files.

    Parameters
    ----------
    root : str or Path
        The output folder (``-o OUT``); it need not exist yet.
    """

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    # -- paths --------------------------------------------------------------------------------------------
    @property
    def clips_dir(self) -> Path:
        """Folder of the written clips."""
        return self.root / CLIPS_DIR

    @property
    def manifest(self) -> Path:
        """The journal."""
        return self.root / MANIFEST

    @property
    def report_json(self) -> Path:
        """The report of the last finished run."""
        return self.root / REPORT_JSON

    @property
    def report_html(self) -> Path:
        """The HTML page of the report."""
        return self.root / REPORT_HTML

    @property
    def plots_dir(self) -> Path:
        """Folder of the clips' before/after figures."""
        return self.root / PLOTS_DIR

    @property
    def submit_json(self) -> Path:
        """The record of Fish Audio submissions."""
        return self.root / SUBMIT_FILE

    @property
    def submit_dry_run(self) -> Path:
        """The request a dry-run submission would send."""
        return self.root / DRY_RUN_FILE

    @property
    def lock_file(self) -> Path:
        """The lock file of the run writing here."""
        return self.root / LOCK_FILE

    @staticmethod
    def clip_output(speaker: str, clip_id: str) -> str:
        """A clip's path relative to the folder, as ``Clip.output`` stores it (POSIX form)."""
        return f"{CLIPS_DIR}/{speaker}/{clip_id}.wav"

    def clip_path(self, speaker: str, clip_id: str) -> Path:
        """Where a clip's WAV is written."""
        return self.root / self.clip_output(speaker, clip_id)

    def output_path(self, output: str) -> Path:
        """The file a clip's ``output`` (a path relative to the folder) names."""
        return self.root / output

    def plot_path(self, speaker: str, clip_id: str) -> Path:
        """Where a clip's before/after figure is kept."""
        return self.plots_dir / speaker / f"{clip_id}.jpg"

    @property
    def references_dir(self) -> Path:
        """Folder of the Fish Audio reference samples, one subfolder per speaker."""
        return self.root / REFERENCES_DIR

    def reference_dir(self, speaker: str) -> Path:
        """One speaker's reference samples and their listing (``references/<speaker>/``)."""
        return self.references_dir / speaker

    @staticmethod
    def reference_output(speaker: str, index: int) -> str:
        """A reference sample's path relative to the folder (POSIX form): ``references/<speaker>/ref-NN.wav``."""
        return f"{REFERENCES_DIR}/{speaker}/ref-{index:02d}.wav"

    def references_json(self, speaker: str) -> Path:
        """The listing of one speaker's reference samples (what each contains)."""
        return self.reference_dir(speaker) / REFERENCES_JSON
    def preview_path(self, speaker: str, clip_id: str, preview_format: str = "flac") -> Path:
        """Where a clip's source-span preview (the report's "before" player) in ``preview_format`` is kept.

        ``"flac"``: ``plots/<speaker>/<id>.source.flac``; ``"opus"`` (and every
        preview of runs made before FLAC): ``.source.ogg``.
        """
        return self.plots_dir / speaker / f"{clip_id}{_PREVIEW_SUFFIXES[preview_format]}"

    def preview_paths(self, speaker: str, clip_id: str) -> list[Path]:
        """Every place a clip's source preview may be (one per format, FLAC first); at most one is current."""
        return [self.preview_path(speaker, clip_id, fmt) for fmt in _PREVIEW_SUFFIXES]

    def clip_files(self, clip: Clip) -> list[Path]:
        """Every file a clip may have written: its WAV (when it has an output), figure and source previews."""
        paths = [self.plot_path(clip.speaker, clip.id), *self.preview_paths(clip.speaker, clip.id)]
        if clip.output:
            paths.insert(0, self.output_path(clip.output))
        return paths

    def sync_clip_files(self, clip: Clip) -> None:
        """Push a clip's files (:meth:`clip_files`) to disk before its record is journaled.

        The workers write them without waiting for the disk (``sync=False``,
        :mod:`prep.io`); the journaling process syncs them here, so a clip the
        journal lists has its files on disk.  Missing files are skipped.

        Raises
        ------
        OutputError
            If a file cannot be synced.
        """
        from ..io import sync_files

        sync_files(self.clip_files(clip))

    def relative(self, path: Path) -> str:
        """``path`` (inside the folder) relative to the folder, in POSIX form (a link from ``report.html``)."""
        return path.relative_to(self.root).as_posix()

    def is_run_folder(self) -> bool:
        """Whether the folder is a voiceprep output folder: it holds the journal or the run lock.

        Discovery never reads such a folder's files as inputs.
        """
        return self.manifest.is_file() or self.lock_file.exists()

    # -- housekeeping -------------------------------------------------------------------------------------
    def lock(self) -> RunLock:
        """The run lock of this folder (a context manager)."""
        return RunLock(self.root)

    def remove_stale_temps(self) -> None:
        """Delete temp files a killed run left behind (only ever named ``.<name>.*.tmp``).

        Call it holding the lock: a running writer's temp files look the same.
        """
        for tmp in [*self.root.glob(".*.tmp"), *self.clips_dir.glob("*/.*.tmp"), *self.plots_dir.glob("*/.*.tmp")]:
            tmp.unlink(missing_ok=True)

    def remove_unjournaled_clips(self) -> list[Path]:
        """Delete clip WAVs that the journal does not list, and return their paths.

        A run journals each file's clips right after writing them; a run
        stopped in between (interrupted, killed) leaves WAVs no record
        describes.  Call it holding the lock: a running writer's clips look
        the same until they are journaled.
        """
        listed = {r.clip.output for r in self.read_journal() if r.clip.output}
        removed = []
        for wav in sorted(self.clips_dir.glob("*/*.wav")):
            if wav.relative_to(self.root).as_posix() not in listed:
                wav.unlink(missing_ok=True)
                removed.append(wav)
        if removed:
            log.info("%s: %d clip file(s) the journal does not list removed", self.clips_dir, len(removed))
        return removed

    # -- moving a clip to another speaker -----------------------------------------------------------------
    def move_clip_files(self, old: Clip, new: Clip) -> Clip:
        """Move ``old``'s WAV, figure and source preview to where ``new`` (the same clip, another speaker) keeps them.

        Each file is moved with one atomic rename (:func:`os.replace`); a file already in place
        (a move finished earlier) is left as it is.  The journal is not touched (see
        :meth:`move_clip`).

        Returns
        -------
        Clip
            ``new`` with ``output`` naming its new place.

        Raises
        ------
        OutputError
            If a file cannot be moved.
        """
        moved = dataclasses.replace(new, output=self.clip_output(new.speaker, new.id) if old.output else None)
        pairs = [(self.plot_path(old.speaker, old.id), self.plot_path(new.speaker, new.id))]
        pairs += zip(self.preview_paths(old.speaker, old.id), self.preview_paths(new.speaker, new.id), strict=True)
        if old.output and moved.output:
            pairs.insert(0, (self.output_path(old.output), self.output_path(moved.output)))
        for src, dst in pairs:
            if src == dst or not src.exists():
                continue
            try:
                dst.parent.mkdir(parents=True, exist_ok=True)
                os.replace(src, dst)
            except OSError as err:
                raise OutputError(f"{src}: cannot move to {dst}: {err.strerror or err}") from err
            try:
                src.parent.rmdir()  # the old speaker's folder, once empty
            except OSError:
                pass
        return moved

    def move_clip(self, clip: Clip, speaker: str, *, pipeline: str | None) -> Clip:
        """Give a written clip another speaker: journal it, then move its files.

        The record naming the new place is appended first (tagged with ``pipeline``, so a resumed
        run reuses it), then the files are renamed.  A run stopped in between leaves a latest
        record whose file is still at the place an earlier record of the same clip names;
        :meth:`finish_moves`, at the start of the next run, completes the move.

        Returns
        -------
        Clip
            The clip under ``speaker``, with its new ``output``.
        """
        new = dataclasses.replace(clip, speaker=speaker,
                                  output=self.clip_output(speaker, clip.id) if clip.output else None)
        self.append(new, pipeline=pipeline)
        return self.move_clip_files(clip, new)

    def finish_moves(self) -> int:
        """Complete the moves an interrupted :meth:`move_clip` left half done; returns how many.

        For each clip whose latest journal record names a file that does not exist, the newest
        earlier record of the same clip whose file does exist is moved into place.  Call it
        holding the lock, before :meth:`remove_unjournaled_clips`.
        """
        history: dict[tuple[str, str], list[Clip]] = {}
        for record in self.read_journal():
            history.setdefault((record.clip.source, record.clip.id), []).append(record.clip)
        done = 0
        for versions in history.values():
            latest = versions[-1]
            if not latest.output or self.output_path(latest.output).exists():
                continue
            for earlier in reversed(versions[:-1]):
                if earlier.output and earlier.output != latest.output and self.output_path(earlier.output).exists():
                    self.move_clip_files(earlier, latest)
                    done += 1
                    break
        if done:
            log.info("%s: %d interrupted clip move(s) completed", self.clips_dir, done)
        return done

    # -- the journal --------------------------------------------------------------------------------------
    def append(self, clip: Clip, *, pipeline: str | None = None) -> None:
        """Append one clip record to the journal and push it to disk.

        A torn last line (an append that was interrupted) is cut off first,
        so it cannot run into the new record.

        Parameters
        ----------
        clip : Clip
        pipeline : str, optional
            The resume key of the run that made the clip.

        Raises
        ------
        OutputError
            If the journal cannot be written.
        """
        data = clip.to_dict()
        if pipeline is not None:
            data["pipeline"] = pipeline
        line = (json.dumps(data, ensure_ascii=False) + "\n").encode("utf-8")
        path = self.manifest
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "a+b") as fh:
                _cut_torn_tail(fh, path)
                fh.write(line)
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as err:
            raise OutputError(f"{path}: cannot append to the journal: {err.strerror or err}") from err

    def read_journal(self) -> list[JournalRecord]:
        """Every record of the journal, in order (empty when there is none).

        A torn last line is ignored; any other bad line is skipped with a
        warning naming ``file:line`` (see the module docstring).

        Raises
        ------
        OutputError
            If the journal exists but cannot be read.
        """
        from ..clip import Clip

        path = self.manifest
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return []
        except OSError as err:
            raise OutputError(f"{path}: cannot read the journal: {err.strerror or err}") from err
        lines = raw.split(b"\n")
        if lines[-1]:
            log.info("%s:%d: torn last line (an interrupted append) ignored", path, len(lines))
        records = []
        for number, line in enumerate(lines[:-1], 1):
            if not line.strip():
                continue
            try:
                data = json.loads(line.decode("utf-8"))
                if not isinstance(data, dict):
                    raise TypeError(f"expected a JSON object, got {type(data).__name__}")
                clip = Clip.from_dict(data)
            except (UnicodeDecodeError, ValueError, TypeError, PrepError) as err:
                log.warning("%s:%d: corrupt journal line skipped (its file is redone): %s", path, number, err)
                continue
            pipeline = data.get("pipeline")
            records.append(JournalRecord(clip=clip, pipeline=pipeline if isinstance(pipeline, str) else None,
                                         line=number))
        return records

    def latest_records(self) -> dict[tuple[str, str], JournalRecord]:
        """The latest journal record per ``(source, clip id)``."""
        return {(r.clip.source, r.clip.id): r for r in self.read_journal()}

    # -- the reader of a finished run ---------------------------------------------------------------------
    def read_report(self) -> dict[str, Any]:
        """The report of the last finished run (``report.json``).

        Raises
        ------
        ConfigError
            If there is none (no run has finished here).
        DataError
            If it cannot be read or is not a voiceprep report.
        """
        return load_report(self.report_json)

    def partial_note(self, report: dict[str, Any]) -> str | None:
        """One line for a report marked partial (an interrupted run), naming it and how to finish; else None."""
        if not report.get("partial"):
            return None
        return (f"{self.report_json} is partial: the run into {self.root} was interrupted and it lists only the "
                "files that finished; run the same `voiceprep run` command again to finish it")

    def read_clips(self, report: dict[str, Any] | None = None) -> list[Clip]:
        """The clips of the last finished run, in the report's order (without audio).

        ``report``, when given, is the report already read (:meth:`read_report`).

        Raises
        ------
        ConfigError
            If no run has finished here.
        DataError
            If the report cannot be read, or a clip entry is malformed.
        """
        from ..clip import Clip

        clips = []
        for number, entry in enumerate((report if report is not None else self.read_report())["clips"], 1):
            try:
                clips.append(Clip.from_dict(entry))
            except (PrepError, ValueError) as err:
                raise DataError(f"{self.report_json}: clip entry {number}: {err}") from err
        return clips


def load_report(path: str | Path) -> dict[str, Any]:
    """Read a ``report.json`` file (see :meth:`RunFolder.read_report`)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as err:
        where = path.parent if path.name == REPORT_JSON else path
        raise ConfigError(
            f"{path}: no such report; run `voiceprep run ... -o {where}` first "
            "(a run writes it when it finishes or is interrupted)"
        ) from err
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: cannot read the report: {getattr(err, 'strerror', None) or err}") from err
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: corrupt report (line {err.lineno}: {err.msg})") from err
    if not isinstance(data, dict) or not isinstance(data.get("clips"), list):
        raise DataError(f"{path}: not a voiceprep report (no 'clips' list)")
    version = data.get("report_version")
    if isinstance(version, int) and version > REPORT_VERSION:
        raise ConfigError(
            f"{path}: report_version {version} is newer than this voiceprep reads ({REPORT_VERSION}); "
            "upgrade voiceprep or run `voiceprep run` again with this one"
        )
    return upgrade_report(data)


def upgrade_report(report: dict[str, Any]) -> dict[str, Any]:
    """``report`` in the current schema (:data:`REPORT_VERSION`); a current report is returned as is.

    Version 2 clip metrics are renamed (:func:`prep.metrics.upgrade_metrics`);
    the speakers' ``consistency.input_lufs`` is dropped (it was the loudness
    stage's pre-gain level, not the source's) and ``source_lufs`` is
    ``None``, as version 2 did not measure the source level.  Version 2
    reasons become ``legacy.reason`` findings where they are read
    (:func:`prep.findings.findings_from_record`).  The result records
    ``upgraded_from``.
    """
    version = report.get("report_version")
    if version == REPORT_VERSION:
        return report
    clips = [
        {**entry, "metrics": upgrade_metrics(entry.get("metrics") or {})} if isinstance(entry, dict) else entry
        for entry in report.get("clips") or []
    ]
    speakers = {}
    for name, entry in (report.get("speakers") or {}).items():
        if isinstance(entry, dict) and isinstance(entry.get("consistency"), dict):
            cons = {k: v for k, v in entry["consistency"].items() if k != "input_lufs"}
            entry = {**entry, "consistency": {"source_lufs": None, **cons}}
        speakers[name] = entry
    return {**report, "report_version": REPORT_VERSION, "upgraded_from": version, "clips": clips, "speakers": speakers}


def _cut_torn_tail(fh: Any, path: Path) -> None:
    """Truncate an ``a+b`` journal handle after its last newline (drops a torn last line)."""
    size = fh.seek(0, os.SEEK_END)
    if size == 0:
        return
    fh.seek(size - 1)
    if fh.read(1) == b"\n":
        return
    fh.seek(0)
    data = fh.read()
    keep = data.rfind(b"\n") + 1
    log.info("%s: torn last line (%d bytes, an interrupted append) dropped", path, size - keep)
    fh.truncate(keep)


class RunLock:
    """An exclusive lock file in the output folder (refuses a second run).

    A lock left by a process that no longer exists is taken over.
    """

    def __init__(self, out_dir: str | Path) -> None:
        self.path = Path(out_dir) / LOCK_FILE
        self._held = False

    def __enter__(self) -> RunLock:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise OutputError(f"{self.path.parent}: cannot create the output folder: {err.strerror or err}") from err
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                try:
                    pid = int(self.path.read_text().strip() or 0)
                except (OSError, ValueError):
                    pid = 0
                if pid and _alive(pid):
                    raise OutputError(
                        f"{self.path.parent}: another voiceprep run (pid {pid}) is writing here; "
                        "wait for it or choose another -o folder"
                    ) from None
                self.path.unlink(missing_ok=True)  # stale lock
                continue
            except OSError as err:
                raise OutputError(f"{self.path.parent}: output folder is not writable: {err.strerror or err}") from err
            with os.fdopen(fd, "w") as fh:
                fh.write(str(os.getpid()))
            self._held = True
            return self
        raise OutputError(f"{self.path}: cannot take the run lock")

    def __exit__(self, *exc: object) -> None:
        if self._held:
            self.path.unlink(missing_ok=True)
            self._held = False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
