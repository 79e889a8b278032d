"""Running a profile over many files.

The serial path, :func:`process_job`, decodes one file, runs the stages and
writes the resulting clips.  :func:`run_jobs` maps it over jobs with any
:class:`concurrent.futures.Executor` (in-process by default, a thread pool, a
process pool, or a Dask ``Client``) and appends each result to the run folder's
journal (:mod:`prep.run.run_folder`) as it arrives, in the calling thread.  Each
worker runs exactly the serial path, so parallel results equal serial ones.
:func:`plan_workers` picks serial, threads or processes for the work at hand.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ThreadPoolExecutor, as_completed, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from ..clip import Clip, InputInfo, SourceAudio, file_sha256
from ..errors import ConfigError, OutputError, PrepError
from ..findings import finding
from ..io import write_bytes_atomic, write_wav_atomic
from ..stages.downmix import Downmix
from ..timing import timed
from .decode import AUDIO_EXTENSIONS, load, probe
from .longform import RESTART, LongForm, OnePass, finish_clips, piece_clips
from .pipeline import Stage, pipeline_fingerprint, run_stages, stage_config
from .run_folder import JournalRecord, RunFolder
from .transcripts import TranscriptIndex, flag_transcript_rates

__all__ = [
    "Job",
    "POOLS",
    "SerialExecutor",
    "WorkerPlan",
    "discover",
    "extra_notices",
    "clip_id",
    "assemble_file",
    "load_clip",
    "plan_workers",
    "iter_durations",
    "probe_durations",
    "process_job",
    "process_piece",
    "run_jobs",
    "thread_limit",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    """One input file to process."""

    path: str
    speaker: str
    transcript: str | None = None
    sha256: str | None = None  # content hash, when the caller has already computed it


class SerialExecutor(Executor):
    """An :class:`~concurrent.futures.Executor` that runs each call at submit time."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:  # type: ignore[override]
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as err:
            if isinstance(err, KeyboardInterrupt):
                raise
            future.set_exception(err)
        return future


def _slug(text: str) -> str:
    text = unicodedata.normalize("NFKC", text)
    text = re.sub(r"[^\w.-]+", "_", text, flags=re.UNICODE).strip("._")
    return text or "clip"


def clip_id(path: str | Path, sha256: str) -> str:
    """Stable id from the file's stem and content hash, e.g. ``a01-3f2a9c1e``."""
    return f"{_slug(Path(path).stem)}-{sha256[:8] if sha256 else 'nohash'}"


def discover(inputs: Iterable[str | Path], *, speaker: str | None = None) -> list[Job]:
    """Expand files and folders (recursively) into jobs.

    Files named explicitly are taken whatever their ending (a bad one then
    gets an ``error`` verdict); inside folders only audio endings count, and
    a voiceprep output folder (:meth:`RunFolder.is_run_folder`) is skipped
    with one logged warning naming it, so a run's own clips are never input.  A
    folder holding no audio is kept as one entry, which then gets an
    ``error`` verdict saying so.
    The speaker is ``speaker`` if given, else a metadata file's speaker
    column, else the file's parent folder name.  Transcripts come from
    sidecar files or metadata files (see :mod:`prep.run.transcripts`).

    Parameters
    ----------
    inputs : iterable of str or Path
    speaker : str, optional

    Returns
    -------
    list of Job
        In a stable order: inputs in the order given, folder contents sorted.
    """
    paths: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = _audio_files(p)
            paths.extend(sorted(found) or [p])  # an empty folder becomes an error entry, not silence
        else:
            paths.append(p)
    seen: set[Path] = set()
    unique = []
    for p in paths:
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(p)
    roots = [Path(item) for item in inputs if Path(item).is_dir()]
    transcripts = TranscriptIndex.from_audio_paths(unique, roots=roots)
    for problem in transcripts.problems:
        log.warning("transcripts: %s", problem)
    jobs = []
    for p in unique:
        spk = speaker or transcripts.speaker(p) or _slug(p.resolve().parent.name)
        jobs.append(Job(path=str(p), speaker=_slug(spk), transcript=transcripts.lookup(p)))
    return jobs


def _audio_files(root: Path) -> list[Path]:
    """The audio files under ``root`` (recursively), leaving out voiceprep output folders."""
    found = []
    for top, dirs, files in os.walk(root):
        here = Path(top)
        if RunFolder(here).is_run_folder():
            log.warning("%s: skipped: a voiceprep output folder (its clips are not read as inputs)", here)
            dirs[:] = []
            continue
        found.extend(here / name for name in files if Path(name).suffix.lower() in AUDIO_EXTENSIONS)
    return [q for q in found if q.is_file()]


def _error_clip(job: Job, sha: str, message: str, code: str = "decode.error") -> Clip:
    return Clip(
        id=clip_id(job.path, sha),
        source=job.path,
        source_sha256=sha,
        speaker=job.speaker,
        sample_rate=0,
        transcript=job.transcript,
        findings=(finding(code, detail=message),),
    )


def _source_sha(job: Job) -> tuple[str, Clip | None]:
    if job.sha256:
        return job.sha256, None
    try:
        with timed("hash"):
            return file_sha256(job.path), None
    except IsADirectoryError:
        return "", _error_clip(job, "", f"{job.path}: is a directory with no audio files in it", "input.error")
    except FileNotFoundError:
        return "", _error_clip(job, "", f"{job.path}: no such file", "input.error")
    except OSError as err:
        return "", _error_clip(job, "", f"{job.path}: cannot read: {err.strerror or err}", "input.error")


def _base_clip(job: Job, sha: str, info: InputInfo, audio: np.ndarray | None) -> Clip:
    return Clip(
        id=clip_id(job.path, sha),
        source=job.path,
        source_sha256=sha,
        speaker=job.speaker,
        sample_rate=info.sample_rate,
        audio=audio,
        transcript=job.transcript,
        span_s=(0.0, info.duration_s),
        input=info,
    )


def _sanitize(clip: Clip) -> Clip:
    """Zero non-finite samples and flag samples beyond full scale, with findings.

    Records ``source_peak_dbfs`` (the sample peak in dBFS, ``-inf`` when silent)
    and, when any were replaced, ``nonfinite_samples``.
    """
    audio = clip.require_audio()
    bad = ~np.isfinite(audio)
    if bad.any():
        count = int(bad.sum())
        audio = np.where(bad, np.float32(0.0), audio)
        clip = dataclasses.replace(clip, audio=audio).with_metrics(nonfinite_samples=count)
        clip = clip.with_findings(finding("samples.nonfinite", metric="nonfinite_samples", value=count))
    peak = max(float(np.max(audio)), -float(np.min(audio))) if audio.size else 0.0  # no |audio| copy
    peak_dbfs = 20.0 * math.log10(peak) if peak > 0 else -math.inf
    clip = clip.with_metrics(source_peak_dbfs=peak_dbfs)
    if peak > 1.0:
        over = finding("samples.over_full_scale", metric="source_peak_dbfs", value=peak_dbfs, threshold=0.0)
        clip = clip.with_findings(over)
    return clip


def extra_notices(stages: Sequence[Stage]) -> list[str]:
    """What each optional extra the stages would use but is not installed would add (one line each).

    A run says these once, before its files are processed; the stages themselves do without the
    extra silently, in every worker.
    """
    from ..dsp.estimators import mos_missing_notice
    from ..stages.denoise import enhance_missing_notice
    from ..stages.transcribe import transcribe_missing_notice
    from ..stages.voice import voice_missing_notice

    notices = (mos_missing_notice(stages), voice_missing_notice(stages), enhance_missing_notice(stages),
               transcribe_missing_notice(stages))
    return [n for n in notices if n]


def load_clip(job: Job, *, info: InputInfo | None = None) -> Clip:
    """Decode a job's file into a fresh clip (before any stage).

    Non-finite samples are zeroed and reported; decoding problems become an
    ``error`` clip whose reason names the file and the cause.  ``info`` is
    the file's :func:`~prep.run.decode.probe` result when the caller has it.
    """
    sha, failed = _source_sha(job)
    if failed is not None:
        return failed
    try:
        with timed("decode"):
            info = info or probe(job.path)
            audio, rate = load(job.path)
    except PrepError as err:
        return _error_clip(job, sha, str(err))
    info = dataclasses.replace(info, sample_rate=rate, channels=int(audio.shape[0]), duration_s=audio.shape[1] / rate)
    return _sanitize(_base_clip(job, sha, info, audio))


def _source_mono(audio: np.ndarray) -> np.ndarray:
    return audio if audio.ndim == 1 else audio.mean(axis=0, dtype=np.float32)


def _write_plot(item: Clip, source: np.ndarray, rate: int, offset_s: float, out_dir: str | Path) -> None:
    """Draw the clip's before/after figure for the report while both signals are in memory.

    ``source`` is the source audio, ``(samples,)`` or ``(channels, samples)``,
    at ``rate`` starting at ``offset_s`` seconds into the file.  The
    downmixed source the clip carries (:attr:`~prep.clip.Clip.source_audio`)
    is drawn instead when present: the "before" panel shows what the "before"
    player plays (:func:`_write_preview`), the phase-aware downmix, not the
    channels' mean (which cancels a polarity-inverted channel).  Otherwise
    the span's channel mean is drawn.  A failure only costs the report a
    redraw.
    """
    if item.audio is None or item.output is None:
        return
    with timed("figures"):
        _draw_plot(item, source, rate, offset_s, out_dir)


def _draw_plot(item: Clip, source: np.ndarray, rate: int, offset_s: float, out_dir: str | Path) -> None:
    from ..metrics import source_metrics
    from ..report.html import clip_figure_jpeg, display_top_hz

    assert item.audio is not None
    if item.source_audio is not None:
        held = item.source_audio
        source, rate, offset_s = held.audio, held.sample_rate, held.start_s
    i0 = max(0, round((item.span_s[0] - offset_s) * rate))
    i1 = max(i0, min(source.shape[-1], round((item.span_s[1] - offset_s) * rate)))
    top_hz = display_top_hz(source_metrics(item.metrics)["bandwidth_hz"], sample_rate=max(rate, item.sample_rate))
    try:
        data = clip_figure_jpeg(
            _source_mono(source[..., i0:i1]),
            _source_mono(item.audio),
            before_sample_rate=rate,
            after_sample_rate=item.sample_rate,
            top_hz=top_hz,
        )
        write_bytes_atomic(RunFolder(out_dir).plot_path(item.speaker, item.id), data, sync=False)
    except (OSError, ValueError, PrepError) as err:
        log.warning("%s: no figure for the report: %s", item.id, err)


def _write_preview(
    item: Clip, source: np.ndarray, rate: int, offset_s: float, out_dir: str | Path, preview_format: str = "flac"
) -> None:
    """Write the clip's source span for the report's "before" player (any input format).

    ``source`` is the source audio, ``(samples,)`` or ``(channels, samples)``,
    at ``rate`` starting at ``offset_s`` seconds into the file.  The
    downmixed source the clip carries (:attr:`~prep.clip.Clip.source_audio`,
    what the pipeline worked from and a long file's preview always was) is
    used instead when present: one channel to encode, not two.  It is
    written as 16-bit FLAC at its own rate, or with ``preview_format="opus"``
    as Ogg Opus at the lowest Opus rate that holds the source's measured
    bandwidth (``source_bandwidth_hz``, see :func:`prep.report.audio.opus_rate`);
    a preview of the other format (a run made before) is removed.  A failure
    only costs the report that player.
    """
    from ..metrics import finite
    from ..report.audio import preview_bytes

    if item.audio is None or item.output is None:
        return
    if item.source_audio is not None:
        held = item.source_audio
        source, rate, offset_s = held.audio, held.sample_rate, held.start_s
    i0 = max(0, round((item.span_s[0] - offset_s) * rate))
    i1 = max(i0, min(source.shape[-1], round((item.span_s[1] - offset_s) * rate)))
    if i1 <= i0:
        return
    folder = RunFolder(out_dir)
    try:
        with timed("previews"):
            data = preview_bytes(source[..., i0:i1], sample_rate=rate, preview_format=preview_format,
                                 bandwidth_hz=finite(item.metrics.get("source_bandwidth_hz")))
            path = folder.preview_path(item.speaker, item.id, preview_format)
            write_bytes_atomic(path, data, sync=False)
        for other in folder.preview_paths(item.speaker, item.id):
            if other != path:
                other.unlink(missing_ok=True)
    except (OSError, ValueError, PrepError) as err:
        log.warning("%s: no source preview for the report: %s", item.id, err)


def _write_clip(item: Clip, out_dir: str | Path | None) -> Clip:
    """Write a finished clip under ``out_dir`` (atomically) and drop its audio."""
    if out_dir is None or item.audio is None or item.verdict == "error":
        return item if out_dir is None else dataclasses.replace(item, audio=None, source_audio=None)
    folder = RunFolder(out_dir)
    audio = item.audio
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    if peak > 1.0:  # integer PCM would clip: scale into range and say so
        audio = audio / np.float32(peak)
        item = item.with_findings(finding("output.scaled", value=peak, threshold=1.0))
    try:
        with timed("write"):
            write_wav_atomic(folder.clip_path(item.speaker, item.id), audio, sample_rate=item.sample_rate, sync=False)
    except OutputError as err:
        return dataclasses.replace(item.with_findings(finding("output.error", detail=str(err))), audio=None)
    return dataclasses.replace(item, output=folder.clip_output(item.speaker, item.id))


@dataclass
class _LongFile:
    """A long file being cut (see :mod:`prep.run.longform`): its base clip, and its pieces as they are cut."""

    base: Clip
    pieces: Iterator[Clip | str]  # each ready for process_piece; RESTART voids the pieces before it
    onepass: OnePass | None = None  # None when the file could not be opened

    def finish(self, clips: list[Clip]) -> list[Clip]:
        """The file's clips once all its pieces are done: the metrics only the whole file knows set, or
        one ``longform.silent`` clip when it gave none."""
        if self.onepass is None or self.onepass.fscan is None:
            return clips
        clips, base = finish_clips(clips, self.base, self.onepass)
        return _unless_silent(base, clips)


def _long_pieces(job: Job, sha: str, info: InputInfo, stages: Sequence[Stage], config: LongForm) -> _LongFile:
    """A long file's base clip and its pieces, each ready for :func:`process_piece` (see :mod:`prep.run.longform`).

    The file is streamed once as the pieces are taken (:class:`~prep.run.longform.OnePass`), so the
    first piece can be processed while the rest is decoded and memory is bounded by the pieces in
    hand.  The pieces may be followed by :data:`~prep.run.longform.RESTART` (the ones before it are
    void).  A decoding problem voids the pieces and ends them with one ``error`` clip.
    """
    downmix = next((s for s in stages if s.name == "downmix"), Downmix())
    onepass = OnePass(
        job.path,
        dead_channel_db=downmix.dead_channel_db,  # type: ignore[attr-defined]
        inverted_corr=downmix.inverted_corr,  # type: ignore[attr-defined]
        config=config,
    )
    base = _base_clip(job, sha, info, None)
    long = _LongFile(base, iter(()), onepass)

    def each() -> Iterator[Clip | str]:
        given = False
        try:
            for piece in piece_clips(base, onepass):
                given = given or not isinstance(piece, str)
                if not isinstance(piece, str):
                    piece = _sanitize(piece).with_history(downmix.name, stage_config(downmix))
                yield piece
                del piece  # hold no piece while the next is cut
        except PrepError as err:
            long.onepass = None  # the file as a whole failed: one error clip, as for a short file
            if given:
                yield RESTART
            yield _error_clip(job, sha, str(err))

    long.pieces = _timed_iter("decode", each())
    return long


def _timed_iter(name: str, items: Iterator[Clip | str]) -> Iterator[Clip | str]:
    """``items``, the time spent producing each added to ``name`` (:mod:`prep.timing`)."""
    while True:
        with timed(name):
            item = next(items, None)
        if item is None:
            return
        yield item
        del item  # not held while the next is made


def process_piece(
    piece: Clip,
    stages: Sequence[Stage],
    out_dir: str | Path | None,
    audio_file: str | None = None,
    *,
    preview_format: str = "flac",
) -> list[Clip]:
    """Run the stages (all but the downmix) over one piece of a long file; write its clips.

    Pieces of one file run in any process, in any order: a worker gets the
    piece's audio with the task, or, with ``audio_file``, reads it from that
    file (raw float32 mono, written by :func:`run_jobs`, deleted once read).
    An ``error`` piece (the file could not be decoded) is passed through.
    ``preview_format``: see :func:`process_job`.

    Returns
    -------
    list of Clip
        Without audio (written when ``out_dir`` is given).
    """
    try:
        return _process_piece(piece, stages, out_dir, audio_file, preview_format)
    finally:
        _release_freed_memory(above_bytes=TRIM_ABOVE_BYTES)  # the piece's buffers, if many: see there


def _process_piece(
    piece: Clip, stages: Sequence[Stage], out_dir: str | Path | None, audio_file: str | None, preview_format: str
) -> list[Clip]:
    if audio_file is not None:
        try:
            audio = np.fromfile(audio_file, dtype=np.float32)
        finally:
            Path(audio_file).unlink(missing_ok=True)
        held = piece.source_audio
        rate, start_s = (held.sample_rate, held.start_s) if held is not None else (piece.sample_rate, piece.span_s[0])
        piece = dataclasses.replace(piece, audio=audio, source_audio=SourceAudio(audio, rate, start_s))
    if piece.verdict == "error":
        return [piece]
    rest = [s for s in stages if s.name != "downmix"]
    out = []
    for item in run_stages(piece, rest):
        if out_dir is not None:
            item = _write_clip(item, out_dir)
            _write_plot(item, piece.require_audio(), piece.sample_rate, piece.span_s[0], out_dir)
            _write_preview(item, piece.require_audio(), piece.sample_rate, piece.span_s[0], out_dir, preview_format)
        out.append(dataclasses.replace(item, audio=None, source_audio=None))
    return out


def _keep_file_voices(clips: list[Clip], stages: Sequence[Stage], out_dir: str | Path | None) -> list[Clip]:
    """A long file's clips after :func:`prep.voice.pieces.file_voices` (its voices matched across pieces).

    The clips of dropped voices lose their written WAV and figure; renamed ones (``keep_voice="all"``)
    are moved to their new speaker's folder.  Nothing happens without a ``diarise`` stage using the
    ``[voice]`` extra.
    """
    diarise = next((s for s in stages if s.name == "diarise" and getattr(s, "model", "")), None)
    if diarise is None:
        return clips
    from ..voice.pieces import file_voices

    kept, dropped = file_voices(clips, keep_voice=diarise.keep_voice)  # type: ignore[attr-defined]
    if out_dir is None:
        return kept
    _remove_outputs(dropped, out_dir)  # the dropped voices' clip, figure and preview
    folder = RunFolder(out_dir)
    before = {c.id: c for c in clips}
    out = []
    for clip in kept:
        old = before[clip.id]
        if clip.speaker != old.speaker and old.output:
            clip = folder.move_clip_files(old, clip)
        out.append(clip)
    return out


def assemble_file(
    job: Job, clips: Sequence[Clip], stages: Sequence[Stage] = (), out_dir: str | Path | None = None
) -> list[Clip]:
    """All clips of one input file, put together once before the file is journaled.

    This is the one place where a file's clips meet, whichever way they were
    made (one process for a short file, pieces in several processes for a
    long one): :func:`run_jobs` calls it once per finished file, ``voiceprep
    check`` once per file.  A long file's voices are matched across its
    pieces here (:func:`_keep_file_voices`: the main voice is a property of
    the whole file); then the clips are ordered.

    Returns
    -------
    list of Clip
        Ordered by id.
    """
    out = list(clips)
    if any(c.metrics.get("long_file") for c in out):
        out = _keep_file_voices(out, stages, out_dir)  # all of the file's clips: its main voice is decided here
    return sorted(out, key=lambda c: c.id)


def _unless_silent(base: Clip, clips: list[Clip]) -> list[Clip]:
    """A long file's clips, or one ``longform.silent`` clip when it gave none."""
    if clips:
        return clips
    duration = base.input.duration_s if base.input is not None else 0.0
    rejected = base.with_metrics(long_file=True, speech_s=0.0, speech_ratio=0.0)
    return [rejected.with_findings(finding("longform.silent", metric="duration_s", value=duration))]


def _process_long(
    job: Job,
    sha: str,
    info: InputInfo,
    stages: Sequence[Stage],
    out_dir: str | Path | None,
    config: LongForm,
    preview_format: str,
) -> list[Clip]:
    """The bounded-memory path for long files, in this process (see :mod:`prep.run.longform`)."""
    long = _long_pieces(job, sha, info, stages, config)
    out: list[Clip] = []
    for piece in long.pieces:
        if isinstance(piece, str):  # RESTART: the pieces so far are void
            _remove_outputs(out, out_dir)
            out = []
        else:
            out.extend(process_piece(piece, stages, out_dir, preview_format=preview_format))
        del piece  # not held while the next is cut
    return long.finish(out)


def _handoff(piece: Clip, out_dir: Path, executor: Executor) -> tuple[Clip, str | None]:
    """A piece as its worker's task gets it: for a pool, its audio in a temp file in the run folder
    (:func:`process_piece` reads and deletes it), so the parent holds no piece in flight and pickles no
    audio; in-process (serial or threads), the piece itself (and no file).

    Named like the run folder's other temp files: a killed run's are removed by the next run.
    """
    held = piece.source_audio
    if _in_process(executor) or piece.audio is None or held is None or held.audio is not piece.audio:
        return piece, None
    path = out_dir / f".piece-{piece.id}.{os.getpid()}.tmp"
    np.ascontiguousarray(piece.audio, dtype=np.float32).tofile(path)
    empty = dataclasses.replace(held, audio=np.zeros(0, np.float32))
    return dataclasses.replace(piece, audio=None, source_audio=empty), str(path)


def _in_process(executor: Executor) -> bool:
    """Whether ``executor`` runs its tasks in this process (serially or in threads): they share its memory."""
    return isinstance(executor, (SerialExecutor, ThreadPoolExecutor))


def _release_freed_memory(*, above_bytes: int | None = None) -> None:
    """Give the heap's free pages back to the system (glibc ``malloc_trim``; nothing elsewhere).

    Between a long file's pieces: the freed buffers of a 60-120 s piece otherwise stay in this
    process's heap and count in its memory while other processes work.  With ``above_bytes``, only
    when the heap holds more free bytes than that (glibc ``mallinfo2``; always without it): a piece
    leaves some tens of MB free, which the next piece reuses, and trimming them after every piece
    made each piece fault them in again (about 1 s of CPU in an hour's 2-worker run, ``benchmarks/long.py``).
    """
    if not _libc():
        return
    if above_bytes is not None:
        free = _heap_free_bytes()
        if free is not None and free <= above_bytes:
            return
    _LIBC.malloc_trim(0)


def _libc() -> Any:
    """glibc (with ``malloc_trim``), or False elsewhere."""
    global _LIBC
    if _LIBC is None:
        import ctypes

        try:
            _LIBC = ctypes.CDLL("libc.so.6")
            _LIBC.malloc_trim  # noqa: B018 - glibc only
        except (OSError, AttributeError):
            _LIBC = False
    return _LIBC


def _heap_free_bytes() -> int | None:
    """Free bytes held in this process's malloc heaps (glibc >= 2.33 ``mallinfo2().fordblks``), or None."""
    global _MALLINFO
    if _MALLINFO is None:
        import ctypes

        class _Info(ctypes.Structure):
            _fields_ = [(name, ctypes.c_size_t) for name in (
                "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                "keepcost")]

        try:
            _MALLINFO = _libc().mallinfo2
            _MALLINFO.restype = _Info
        except AttributeError:  # not glibc (False), or glibc < 2.33
            _MALLINFO = False
    return int(_MALLINFO().fordblks) if _MALLINFO else None


_LIBC: Any = None
_MALLINFO: Any = None
#: Between pieces, free heap pages are returned only above this (see :func:`_release_freed_memory`).
TRIM_ABOVE_BYTES = 128 * 2**20


def _remove_outputs(clips: Sequence[Clip], out_dir: str | Path | None) -> None:
    """Delete the files written for ``clips`` (clip, figure, preview) of void pieces."""
    if out_dir is None:
        return
    folder = RunFolder(out_dir)
    for clip in clips:
        for path in folder.clip_files(clip):
            path.unlink(missing_ok=True)


def process_job(
    job: Job,
    stages: Sequence[Stage],
    *,
    out_dir: str | Path | None = None,
    longform: LongForm | None = None,
    preview_format: str = "flac",
) -> list[Clip]:
    """The serial path: decode one file, run the stages, write the clips.

    Parameters
    ----------
    job : Job
    stages : sequence of Stage
    out_dir : str or Path, optional
        When given, each non-error clip is written (atomically) to
        ``out_dir/clips/<speaker>/<id>.wav`` as 16-bit PCM and returned
        without audio, with ``output`` set; otherwise clips keep their audio
        (except pieces of long files, which are never held all at once).
        The files are not waited onto the disk here: :func:`run_jobs` syncs
        them (:meth:`~prep.run.run_folder.RunFolder.sync_clip_files`) before
        journaling the clips, so a worker does not block on the disk.
    longform : LongForm, optional
        Files longer than ``longform.long_file_s`` are streamed in pieces in
        bounded memory; default :class:`~prep.run.longform.LongForm()`.
    preview_format : {"flac", "opus"}
        The format of the report's source previews written with the clips
        (:data:`prep.run.run_folder.PREVIEW_FORMATS`): 16-bit FLAC at the
        source's rate, or Ogg Opus.

    Returns
    -------
    list of Clip
    """
    config = longform or LongForm()
    sha, failed = _source_sha(job)
    if failed is not None:
        return [failed]
    try:
        with timed("decode"):
            info = probe(job.path)
    except PrepError as err:
        return [_error_clip(job, sha, str(err))]
    if info.duration_s > config.long_file_s:
        return _process_long(job, sha, info, stages, out_dir, config, preview_format)
    clip = load_clip(dataclasses.replace(job, sha256=sha), info=info)
    clips = [clip] if clip.verdict == "error" else run_stages(clip, stages)
    if out_dir is None:
        return clips
    written = []
    for item in clips:
        item = _write_clip(item, out_dir)
        if clip.audio is not None:
            _write_plot(item, clip.audio, clip.sample_rate, 0.0, out_dir)
            _write_preview(item, clip.audio, clip.sample_rate, 0.0, out_dir, preview_format)
        written.append(dataclasses.replace(item, audio=None, source_audio=None))
    return written


def _done_sources(
    folder: RunFolder, fingerprint: str, records: Sequence[JournalRecord]
) -> dict[tuple[str, str], list[Clip]]:
    """Clips already finished by an earlier run with the same pipeline, by (source, sha)."""
    by_id: dict[tuple[str, str], dict[str, Clip]] = {}
    for record in records:
        if record.pipeline == fingerprint:  # the latest record of a clip wins (a clip moved to another speaker)
            clip = record.clip
            by_id.setdefault((clip.source, clip.source_sha256), {})[clip.id] = clip
    done = {key: list(clips.values()) for key, clips in by_id.items()}
    # a source counts as done only if every clip file it produced still exists
    return {
        key: clips
        for key, clips in done.items()
        if all(c.output is None or folder.output_path(c.output).exists() for c in clips)
    }


def run_jobs(
    jobs: Sequence[Job],
    stages: Sequence[Stage],
    *,
    out_dir: str | Path,
    executor: Executor | None = None,
    on_result: Callable[[Job, list[Clip]], None] | None = None,
    resume: bool = True,
    longform: LongForm | None = None,
    on_resume: Callable[[int, int], None] | None = None,
    speakers: str | None = None,
    preview_format: str = "flac",
) -> list[Clip]:
    """Process ``jobs`` into ``out_dir`` and return all clips (without audio).

    When a stage would run DNSMOS but the ``[mos]`` extra is missing, one
    warning says so (:func:`prep.dsp.estimators.mos_missing_notice`), not one
    per file or worker.  Each finished file's clips are appended to the run folder's journal
    (:meth:`prep.run.run_folder.RunFolder.append`) as they arrive, tagged with
    the pipeline fingerprint.  With ``resume``, a file whose content hash and
    pipeline match a journal entry (and whose clip files exist) is not redone.

    Parameters
    ----------
    jobs : sequence of Job
    stages : sequence of Stage
    out_dir : str or Path
    executor : Executor, optional
        Where :func:`process_job` runs; in-process when omitted.
    on_result : callable, optional
        Called as ``on_result(job, clips)`` for each finished job (progress).
    resume : bool
    longform : LongForm, optional
        Long-file settings (see :func:`process_job`).
    on_resume : callable, optional
        With ``resume``, called once before any work as ``on_resume(done,
        redone)``: the number of files skipped as already done, and the
        number of files the journal has only from another pipeline (another
        profile, config or version), which are therefore redone.
    speakers : {None, "auto"}
        ``"auto"``: after all files, each folder speaker's clips are split into
        its voices (:func:`prep.voice.speakers.auto_speakers`, ``<folder>-1``,
        ``<folder>-2``...); the clips that change speaker are journaled under
        the new one and then moved (:meth:`RunFolder.move_clip`), so a resumed
        or interrupted run converges.  Part of the resume key.
    preview_format : {"flac", "opus"}
        The report's source previews (see :func:`process_job`); not part of
        the resume key (the report plays either).

    Returns
    -------
    list of Clip
        Ordered by job, then clip id: independent of completion order.
    """
    from ..report.audio import check_preview_format
    from ..voice.speakers import SpeakersAuto, auto_speakers

    if speakers not in (None, "auto"):
        raise ConfigError(f"speakers must be None or 'auto', got {speakers!r}")
    check_preview_format(preview_format)
    out = Path(out_dir)
    folder = RunFolder(out)
    config = longform or LongForm()
    auto = SpeakersAuto() if speakers == "auto" else None
    fingerprint = pipeline_fingerprint(stages, config, *([auto] if auto else []))
    executor = executor or SerialExecutor()
    results: dict[int, list[Clip]] = {}
    with folder.lock():
        folder.remove_stale_temps()
        folder.finish_moves()  # a clip an interrupted run journaled under another speaker but did not move
        folder.remove_unjournaled_clips()  # a killed run's clips that were never journaled
        records = folder.read_journal() if resume else []
        done = _done_sources(folder, fingerprint, records)
        todo: list[tuple[int, Job]] = []
        done_paths = {path for path, _ in done}
        for index, job in enumerate(jobs):
            # Only a file the journal has finished needs its hash here (to see whether it changed);
            # the others are hashed once, by the worker that decodes them.
            if job.path in done_paths and not job.sha256:
                job = dataclasses.replace(job, sha256=_safe_sha(job.path) or None)
            key = (job.path, job.sha256 or "")
            if key in done:
                results[index] = done[key]
                if on_result:
                    on_result(job, done[key])
            else:
                todo.append((index, job))
        if resume and on_resume:
            same = {r.clip.source for r in records if r.pipeline == fingerprint}
            other = {r.clip.source for r in records if r.pipeline is not None and r.pipeline != fingerprint}
            on_resume(len(results), sum(1 for _, job in todo if job.path in other - same))
        if todo:  # said here, once per run: the workers go without the extras silently
            for notice in extra_notices(stages):
                log.warning(notice)

        def record(index: int, job: Job, clips: list[Clip]) -> None:
            clips = assemble_file(job, clips, stages, out)  # the one place a file's clips meet, before its journaling
            results[index] = clips
            for clip in clips:
                folder.sync_clip_files(clip)  # written unsynced by the worker: on disk before journaled
                folder.append(clip, pipeline=fingerprint)
            if on_result:
                on_result(job, clips)

        # Each file is one task, or, when long, one task per piece (cut here, streamed); a file is
        # journaled when all its tasks are done.  Keep a bounded number of tasks in flight (an
        # in-process executor finishes each at submit, so nothing waits): memory stays bounded.
        workers = getattr(executor, "_max_workers", None) or os.cpu_count() or 1
        in_flight = max(2, 2 * workers)
        # A piece's audio goes to its worker in a file (_handoff): one piece per worker and one more cut
        # ahead, so no worker waits for the parent to cut the next.
        pieces_in_flight = workers + 1
        pending: dict[Future, tuple[int, int]] = {}  # task -> (file index, part number)
        files: dict[int, _FileParts] = {}

        def collect(future: Future) -> None:
            index, part = pending.pop(future)
            entry = files[index]
            try:
                entry.parts[part] = future.result()
            except Exception as err:
                message = f"{entry.job.path}: worker failed: {err}"
                entry.parts[part] = [_error_clip(entry.job, entry.job.sha256 or "", message)]
            finish(index)

        def finish(index: int) -> None:
            entry = files[index]
            if entry.expected is not None and len(entry.parts) == entry.expected:
                clips = [c for part in sorted(entry.parts) for c in entry.parts[part]]
                record(index, entry.job, entry.long.finish(clips) if entry.long is not None else clips)
                del files[index]

        def void(index: int) -> None:
            """Wait for the tasks of a long file's void pieces and delete what they wrote."""
            for f in [f for f, (i, _) in pending.items() if i == index]:
                wait([f])
                collect(f)
            entry = files[index]
            _remove_outputs([c for part in entry.parts.values() for c in part], out)
            entry.parts.clear()

        def submit(index: int, part: int, fn: Callable[..., list[Clip]], *args: Any, **kwargs: Any) -> None:
            future = executor.submit(fn, *args, **kwargs)
            pending[future] = (index, part)
            limit = pieces_in_flight if fn is process_piece else in_flight
            while len(pending) >= limit:
                wait(pending, return_when=FIRST_COMPLETED)
                for f in [f for f in pending if f.done()]:
                    collect(f)
            for f in [f for f in pending if f.done()]:
                collect(f)

        infos = _probe_all([job.path for _, job in todo])
        # Longest files first, so the last worker does not finish long after the others.
        if not isinstance(executor, SerialExecutor):
            work = _expected_work([job.path for _, job in todo], infos)
            todo.sort(key=lambda item: -work[item[1].path])
        for index, job in todo:
            info = infos.get(job.path)
            if info is not None and info.duration_s > config.long_file_s:
                sha, failed = _source_sha(job)
                if failed is None:
                    job = dataclasses.replace(job, sha256=sha)
                    long = _long_pieces(job, sha, info, stages, config)
                    files[index] = _FileParts(job, long)
                    count = 0
                    for piece in long.pieces:
                        if isinstance(piece, str):  # RESTART: the pieces so far are void
                            void(index)
                            count = 0
                            continue
                        light, audio_file = _handoff(piece, out, executor)
                        del piece  # with a pool, its audio is in the file now: not held while the next is cut
                        if audio_file is not None:  # before submit may wait for a worker: the piece is freed
                            _release_freed_memory(above_bytes=TRIM_ABOVE_BYTES)
                        submit(index, count, process_piece, light, tuple(stages), str(out), audio_file,
                               preview_format=preview_format)
                        del light
                        count += 1
                    files[index].expected = count
                    finish(index)
                    continue
            files[index] = _FileParts(job, None, expected=1)
            submit(index, 0, process_job, job, tuple(stages), out_dir=str(out), longform=config,
                   preview_format=preview_format)
        for f in as_completed(list(pending)):
            collect(f)
        # Checks across a speaker's clips; changed records are journaled
        # (untagged, so a resumed run recomputes them from the tagged ones).
        from ..voice.clips import flag_other_voices  # not needed by `voiceprep check`: imported here

        merged = [c for index in sorted(results) for c in results[index]]
        if auto is not None:  # one voice per speaker: journal each renamed clip, then move its files
            targets = auto_speakers(merged, {job.path: job.speaker for job in jobs}, config=auto)
            renamed = {c.id: folder.move_clip(c, t, pipeline=fingerprint) for c, t in zip(merged, targets, strict=True)
                       if t != c.speaker}
            merged = [renamed.get(c.id, c) for c in merged]
            for index, clips in results.items():
                results[index] = [renamed.get(c.id, c) for c in clips]
        checked = flag_other_voices(flag_transcript_rates(merged))
        changed = {c.id: c for old, c in zip(merged, checked, strict=False) if c is not old}
        if changed:
            latest = {key: r.clip.to_dict() for key, r in folder.latest_records().items()}
            for clip in changed.values():
                if latest.get((clip.source, clip.id)) != clip.to_dict():
                    folder.append(clip)
        for index, clips in results.items():
            results[index] = [changed.get(c.id, c) for c in clips]
    ordered = []
    for index in sorted(results):
        ordered.extend(sorted(results[index], key=lambda c: c.id))
    return ordered


#: Up to this many files, the parent reads each one's duration (a header read, under 1 ms on a local disk) to order
#: the work; a bigger batch is ordered by size (its tail is a small share of the run).
PROBE_TO_ORDER_MAX_FILES = 1000


def _probes(paths: Sequence[str]) -> Iterator[InputInfo | None]:
    """Each file's :func:`~prep.run.decode.probe` (a header read, under 1 ms on a local disk), one at a time, for up to
    :data:`PROBE_TO_ORDER_MAX_FILES` files (None for all beyond, and for a file that cannot be probed)."""
    probed = len(paths) <= PROBE_TO_ORDER_MAX_FILES
    for path in paths:
        yield _cached_probe(path) if probed else None


def _probe_all(paths: Sequence[str]) -> dict[str, InputInfo]:
    """:func:`_probes` by path; files that cannot be probed (or are beyond the limit) are left out."""
    return {path: info for path, info in zip(paths, _probes(paths), strict=True) if info is not None}


_PROBED: dict[tuple[str, int, int], InputInfo | None] = {}


def _cached_probe(path: str) -> InputInfo | None:
    """:func:`~prep.run.decode.probe`, remembered per (path, size, mtime) in this process; None if it fails."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    key = (path, st.st_size, st.st_mtime_ns)
    if key not in _PROBED:
        try:
            _PROBED[key] = probe(path)
        except PrepError:
            _PROBED[key] = None
    return _PROBED[key]


#: Environment variable in which a run hands its process pool's fork server the run's stages (pickled,
#: base64), so that :mod:`prep.run.warm` warms the workers on them (see :func:`warm_stages_env`).
WARM_STAGES_ENV = "VOICEPREP_WARM_STAGES"


def warm_stages_env(stages: Sequence[Stage]) -> str:
    """The value of :data:`WARM_STAGES_ENV` for ``stages``."""
    import base64
    import pickle

    return base64.b64encode(pickle.dumps(tuple(stages))).decode("ascii")


#: Below this much audio in all, a run whose stages take turns between threads (:func:`thread_limit`)
#: still runs threads: starting and warming worker processes (about a second of CPU on each core,
#: while the parent starts too, and a model load in each) costs more than the second core saves
#: (benchmarks/pipeline.py, the 6-minute set, when the choice was serial or processes).
THREADS_WITH_ASR_BELOW_S = 480.0
#: Below this much audio in all, a run's default pool is threads in this process (no worker start-up,
#: no fork server, no second copy of the imports and models): the heavy parts of the stages (numba
#: kernels, FFTs, soxr, libsndfile and PyAV, onnxruntime, DeepFilterNet's runtime) release the GIL,
#: so two threads ran ``run_jobs`` on the 6-minute set 1.6-1.7x as fast as one (idle machine), against
#: a process pool's 2.02x on the 40-minute batch minus its start-up (about 1 s).  Estimated from those
#: figures (not yet measured at the crossing): processes win from roughly 10 s of serial work, about 20
#: minutes of audio on the lean profile; the model stages cost more per minute but release the GIL too.
THREADS_BELOW_S = 1200.0
#: A file that cannot be probed counts as this many seconds of work.
_UNKNOWN_DURATION_S = 60.0
#: The kinds of pool :func:`plan_workers` picks from.
POOLS = ("serial", "threads", "processes")


class WorkerPlan(NamedTuple):
    """How a run is parallelised: :func:`plan_workers`'s answer."""

    workers: int
    """Workers (threads or processes); 1 with ``pool == "serial"``."""
    pool: str
    """One of :data:`POOLS`: ``serial`` runs in this thread, ``threads`` a thread pool, ``processes`` a
    process pool."""
    reason: str
    """One line for ``-v``: the work, the choice and why."""


def thread_limit(stages: Sequence[Stage]) -> str | None:
    """The stage of ``stages`` that takes turns between threads (one line), or None when all run in parallel.

    Every stage is thread-safe (each worker thread runs the serial path on its own clip; the lazily
    loaded models load once, under a lock).  Speech recognition is the exception to the speed-up:
    faster-whisper's CTranslate2 model is loaded with one worker (``num_workers=1``), so calls from
    several threads take turns (faster-whisper's ``WhisperModel`` docstring); a process pool gives
    each worker its own model.
    """
    for stage in stages:
        if getattr(stage, "name", "") == "transcribe" and getattr(stage, "active", False):
            return "speech recognition takes one call at a time per process"
    return None


def plan_workers(
    durations_s: Sequence[float | None],
    *,
    jobs: int | None,
    cpus: int,
    longform: LongForm | None = None,
    stages: Sequence[Stage] = (),
    pool: str = "auto",
) -> WorkerPlan:
    """How a run is parallelised: serial, a thread pool or a process pool, how many workers, and why.

    Parameters
    ----------
    durations_s : sequence of float or None
        Each input file's duration (None: unknown).
    jobs : int or None
        ``--jobs``: the most workers the user allows (1: serial); None for the default, all cores.
    cpus : int
        Cores available.
    longform : LongForm, optional
        A long file's pieces run in parallel: it counts as several units of work.
    stages : sequence of Stage
        The run's stages (see :func:`thread_limit`).
    pool : {"auto", "threads", "processes"}
        ``--pool``.  ``auto``: with one unit of work or one worker, serial; else threads under
        :data:`THREADS_BELOW_S` seconds of audio and processes from there; when
        :func:`thread_limit` names a stage that takes turns between threads, threads under
        :data:`THREADS_WITH_ASR_BELOW_S` seconds and processes from there.

    Returns
    -------
    WorkerPlan
        ``workers`` >= 1 and never more than the units of work (files, and the pieces of long files).
    """
    if pool not in ("auto", "threads", "processes"):
        raise ConfigError(f"pool must be 'auto', 'threads' or 'processes', got {pool!r}")
    config = longform or LongForm()
    known = [d if d is not None and math.isfinite(d) else _UNKNOWN_DURATION_S for d in durations_s]
    units = sum(max(1, math.ceil(d / config.max_piece_s)) if d > config.long_file_s else 1 for d in known)
    total = sum(known)
    work = f"{len(known)} file(s), {total:.0f} s of audio, {units} unit(s) of work"
    workers = max(1, min(jobs if jobs is not None else cpus, units))
    allowed = f"--jobs {jobs}" if jobs is not None else f"{cpus} core(s)"
    if workers == 1:
        why = "--jobs 1" if jobs == 1 else "one unit of work" if units <= 1 else allowed
        return WorkerPlan(1, "serial", f"{work}: serial ({why})")
    if pool != "auto":
        return WorkerPlan(workers, pool, f"{work}: {workers} {pool} ({allowed}, --pool {pool})")
    limit = thread_limit(stages)
    if limit is None and total < THREADS_BELOW_S:
        why = (f"under {THREADS_BELOW_S:.0f} s of audio threads start at once and a process pool's start-up "
               "costs more than it saves")
        return WorkerPlan(workers, "threads", f"{work}: {workers} threads ({allowed}; {why})")
    if limit is None:
        why = f"from {THREADS_BELOW_S:.0f} s of audio a process pool's start-up pays and no GIL is shared"
        return WorkerPlan(workers, "processes", f"{work}: {workers} processes ({allowed}; {why})")
    if total < THREADS_WITH_ASR_BELOW_S:
        why = (f"{limit}, but the other stages run beside it; under {THREADS_WITH_ASR_BELOW_S:.0f} s of audio "
               "a process pool's start-up and model loads cost more")
        return WorkerPlan(workers, "threads", f"{work}: {workers} threads ({allowed}; {why})")
    return WorkerPlan(workers, "processes", f"{work}: {workers} processes ({allowed}; {limit}: each process has "
                                            "its own model)")


def iter_durations(jobs: Sequence[Job]) -> Iterator[float | None]:
    """Each job's duration from its header, read one file at a time (None when it cannot be read, or for over
    :data:`PROBE_TO_ORDER_MAX_FILES` files, which are not probed).  The headers are remembered, so the run's
    ordering (:func:`run_jobs`) does not read them again."""
    for info in _probes([job.path for job in jobs]):
        yield info.duration_s if info is not None else None


def probe_durations(jobs: Sequence[Job]) -> list[float | None]:
    """Each job's duration from its header: :func:`iter_durations` as a list."""
    return list(iter_durations(jobs))


@dataclass
class _FileParts:
    """The tasks of one file in flight: its clips by part number, and how many parts to expect."""

    job: Job
    long: _LongFile | None  # a long file being cut; None for a file processed whole
    parts: dict[int, list[Clip]] = dataclasses.field(default_factory=dict)
    expected: int | None = None  # known once all its tasks are submitted


def _expected_work(paths: Sequence[str], infos: dict[str, InputInfo] | None = None) -> dict[str, float]:
    """A relative cost per file for longest-first ordering: its duration, or its size.

    Compressed files are small for their length (a 35 s Opus file is smaller
    than a 15 s WAV), so sizes alone put long files last.  A file that
    cannot be probed ranks by size after the probed ones (its worker
    reports the error).
    """
    infos = _probe_all(paths) if infos is None else infos
    out: dict[str, float] = {}
    for path in paths:
        info = infos.get(path)
        duration = info.duration_s if info is not None else None
        # any duration outranks any size: a terabyte scales to one second
        out[path] = duration if duration is not None and math.isfinite(duration) else _size(path) * 1e-12
    return out


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def _safe_sha(path: str) -> str:
    try:
        return file_sha256(path)
    except OSError:
        return ""


def summarize(clips: Sequence[Clip]) -> dict[str, Any]:
    """Counts per verdict and speech seconds per speaker."""
    by_verdict: dict[str, int] = {}
    by_speaker: dict[str, dict[str, float]] = {}
    for clip in clips:
        by_verdict[clip.verdict] = by_verdict.get(clip.verdict, 0) + 1
        entry = by_speaker.setdefault(clip.speaker, {"clips": 0, "approved": 0, "approved_s": 0.0})
        entry["clips"] += 1
        if clip.verdict == "approved":
            entry["approved"] += 1
            dur = clip.duration_s
            entry["approved_s"] += dur if math.isfinite(dur) else 0.0
    return {"clips": len(clips), "verdicts": by_verdict, "speakers": by_speaker}


