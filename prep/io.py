"""Writing outputs atomically: a temp file in the same folder, then a rename.

An interrupted run therefore never leaves a partial file under a final name,
and a resumed run sees only complete outputs.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import numpy as np
import soundfile as sf

from .audio import as_audio
from .errors import OutputError

__all__ = ["atomic_path", "write_text_atomic", "write_bytes_atomic", "write_wav_atomic", "append_line"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temp path beside ``path``; on success rename it onto ``path``.

    On any exception the temp file is removed and ``path`` is untouched.

    Raises
    ------
    OutputError
        If the folder cannot be created or written.
    """
    dst = Path(path)
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".tmp", dir=dst.parent)
    except OSError as err:
        raise OutputError(f"{dst}: cannot write: {err.strerror or err}") from err
    os.close(fd)
    tmp = Path(tmp_name)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; outputs get the usual mode
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, dst)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


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


def write_wav_atomic(path: str | Path, audio: np.ndarray, *, sample_rate: int, subtype: str = "PCM_16") -> None:
    """Write audio as WAV atomically.

    Parameters
    ----------
    path : str or Path
    audio : np.ndarray, shape (samples,) or (channels, samples)
        float32 in [-1, 1]; values beyond are clipped by the integer encoding.
    sample_rate : int
    subtype : str
        soundfile subtype, e.g. ``"PCM_16"``, ``"PCM_24"``, ``"FLOAT"``.
    """
    x = as_audio(audio)
    frames = x.T if x.ndim == 2 else x  # soundfile wants (frames, channels)
    if subtype == "PCM_16" and frames.dtype == np.float32:
        frames = _pcm16(frames)
    with atomic_path(path) as tmp:
        try:
            sf.write(str(tmp), frames, int(sample_rate), subtype=subtype, format="WAV")
        except (sf.LibsndfileError, RuntimeError, ValueError) as err:
            raise OutputError(f"{path}: cannot write WAV: {err}") from err


def append_line(fh: IO[str], line: str) -> None:
    """Append one journal line and push it to disk."""
    fh.write(line)
    fh.flush()
    os.fsync(fh.fileno())
