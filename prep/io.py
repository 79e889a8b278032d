"""Writing outputs atomically: a temp file in the same folder, then a rename.

An interrupted run therefore never leaves a partial file under a final name,
and a resumed run sees only complete outputs.
"""

from __future__ import annotations

import contextlib
import os
import struct
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

import numpy as np
import soundfile as sf

from .audio import as_audio
from .errors import OutputError

__all__ = ["atomic_path", "write_text_atomic", "write_bytes_atomic", "write_wav_atomic", "append_line", "sync_files"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _temp_beside(dst: Path) -> tuple[int, Path]:
    """A new temp file beside ``dst`` (its folder made if needed): open descriptor and path, usual mode."""
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".tmp", dir=dst.parent)
    except OSError as err:
        raise OutputError(f"{dst}: cannot write: {err.strerror or err}") from err
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; outputs get the usual mode
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise
    return fd, Path(tmp_name)


@contextlib.contextmanager
def atomic_path(path: str | Path, *, sync: bool = True) -> Iterator[Path]:
    """Yield a temp path beside ``path``; on success rename it onto ``path``.

    On any exception the temp file is removed and ``path`` is untouched.
    With ``sync`` the temp file is pushed to disk (fsync) before the rename;
    without, the caller syncs it later (:func:`sync_files`), e.g. before the
    record that lists it is journaled.

    Raises
    ------
    OutputError
        If the folder cannot be created or written.
    """
    dst = Path(path)
    fd, tmp = _temp_beside(dst)
    os.close(fd)
    try:
        yield tmp
        if sync:
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, dst)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


@contextlib.contextmanager
def _atomic_file(path: str | Path, *, sync: bool = True) -> Iterator[IO[bytes]]:
    """:func:`atomic_path` for a writer that takes an open file: the same temp, fsync and rename, one open.

    Yields the temp file opened for writing (binary); on success it is
    flushed, synced to disk (unless not ``sync``), closed and renamed onto
    ``path``; on any exception it is removed and ``path`` is untouched.
    """
    dst = Path(path)
    fd, tmp = _temp_beside(dst)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            if sync:
                os.fsync(fh.fileno())
        os.replace(tmp, dst)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def write_bytes_atomic(path: str | Path, data: bytes, *, sync: bool = True) -> None:
    """Write ``data`` to ``path`` atomically (a temp file beside it, fsync, rename).

    ``sync=False`` leaves the fsync to the caller (:func:`sync_files`).
    """
    with _atomic_file(path, sync=sync) as fh:
        fh.write(data)


def sync_files(paths: Iterable[str | Path]) -> None:
    """Push files written with ``sync=False`` to disk (fsync each; missing ones are skipped).

    The run folder's journal lists a clip only after its files are synced
    this way (:meth:`prep.run.run_folder.RunFolder.sync_clip_files`), so a
    worker writes without waiting for the disk and the process that journals
    (the parent of a process pool) waits instead.

    Raises
    ------
    OutputError
        If a file exists but cannot be synced.
    """
    for path in paths:
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            continue
        except OSError as err:
            raise OutputError(f"{path}: cannot sync: {err.strerror or err}") from err
        try:
            os.fsync(fd)
        except OSError as err:
            raise OutputError(f"{path}: cannot sync: {err.strerror or err}") from err
        finally:
            os.close(fd)


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    write_bytes_atomic(path, text.encode("utf-8"))


def _pcm16(x: np.ndarray) -> np.ndarray:
    """float32 samples as 16-bit PCM the way libsndfile converts them, in a fifth of the time.

    libsndfile scales to 32-bit (``x * 2**31`` rounded to nearest, ties to even, clipped) and keeps
    the top 16 bits (an arithmetic shift: rounds down).  Every step is exact in float32 (powers of
    two, integers below 2**24 after the shift), so the samples are the same as
    ``sf.write(..., subtype="PCM_16")`` given float32 (checked on every 16-bit value and points
    between them, ``tests/test_io.py``).
    """
    y = x * np.float32(2.0**31)
    np.rint(y, out=y)
    y *= np.float32(2.0**-16)
    np.floor(y, out=y)
    np.clip(y, -32768.0, 32767.0, out=y)
    return y.astype(np.int16)


#: Data bytes a plain RIFF WAV holds (its sizes are 32-bit); beyond, libsndfile decides.
_WAV_MAX_DATA = 2**32 - 1024


def _pcm16_wav_header(data_bytes: int, *, channels: int, sample_rate: int) -> bytes:
    """The 44-byte header libsndfile writes for a 16-bit PCM WAV of one or two channels.

    RIFF, a 16-byte ``fmt `` chunk (format 1, PCM) and the ``data`` chunk's
    header: the same bytes as ``sf.write(..., subtype="PCM_16", format="WAV")``
    (``tests/test_io.py``), without opening the file through libsndfile
    (~1 ms per 30 s clip at 44.1 kHz).
    """
    block = 2 * channels
    return struct.pack("<4sI4s4sIHHIIHH4sI", b"RIFF", 36 + data_bytes, b"WAVE", b"fmt ", 16, 1, channels,
                       sample_rate, sample_rate * block, block, 16, b"data", data_bytes)


def write_wav_atomic(
    path: str | Path, audio: np.ndarray, *, sample_rate: int, subtype: str = "PCM_16", sync: bool = True
) -> None:
    """Write audio as WAV atomically.

    Parameters
    ----------
    path : str or Path
    audio : np.ndarray, shape (samples,) or (channels, samples)
        float32 in [-1, 1]; values beyond are clipped by the integer encoding.
    sample_rate : int
    subtype : str
        soundfile subtype, e.g. ``"PCM_16"``, ``"PCM_24"``, ``"FLOAT"``.
    sync : bool
        Push the file to disk before the rename; ``False`` leaves it to the
        caller (:func:`sync_files`).
    """
    x = as_audio(audio)
    frames = x.T if x.ndim == 2 else x  # soundfile wants (frames, channels)
    if subtype == "PCM_16" and frames.dtype == np.float32:
        frames = _pcm16(frames)
        channels, rate = 1 if frames.ndim == 1 else frames.shape[1], int(sample_rate)
        if channels <= 2 and 0 < rate < 2**31 and frames.size * 2 < _WAV_MAX_DATA:  # else libsndfile's checks
            try:
                with _atomic_file(path, sync=sync) as fh:
                    fh.write(_pcm16_wav_header(frames.size * 2, channels=channels, sample_rate=rate))
                    fh.write(np.ascontiguousarray(frames, dtype="<i2").data)
            except OSError as err:  # as libsndfile's write errors: the clip's output.error, not a crash
                raise OutputError(f"{path}: cannot write WAV: {err.strerror or err}") from err
            return
    with atomic_path(path, sync=sync) as tmp:
        try:
            sf.write(str(tmp), frames, int(sample_rate), subtype=subtype, format="WAV")
        except (sf.LibsndfileError, RuntimeError, ValueError) as err:
            raise OutputError(f"{path}: cannot write WAV: {err}") from err


def append_line(fh: IO[str], line: str) -> None:
    """Append one journal line and push it to disk."""
    fh.write(line)
    fh.flush()
    os.fsync(fh.fileno())
