"""Decoding audio files into the prep array convention.

soundfile (libsndfile) reads WAV, FLAC, MP3 and Ogg Vorbis; PyAV (FFmpeg)
reads AAC in MP4/M4A containers, Opus, and anything libsndfile refuses.
Both paths return ``float32`` ``(channels, samples)``.
"""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from ..clip import InputInfo
from ..errors import DecodeError

__all__ = ["AUDIO_EXTENSIONS", "load", "load_span", "probe", "stream"]

#: File name endings treated as audio when scanning folders.
AUDIO_EXTENSIONS = frozenset(
    {".wav", ".wave", ".flac", ".mp3", ".ogg", ".oga", ".opus", ".m4a", ".mp4", ".aac", ".aif", ".aiff", ".webm"}
)
# Containers libsndfile cannot read (or reads badly): go straight to FFmpeg.
_AV_FIRST = frozenset({".m4a", ".mp4", ".aac", ".opus", ".webm"})

_SF_CODECS = {
    "MPEG_LAYER_III": "mp3",
    "VORBIS": "vorbis",
    "OPUS": "opus",
    "FLOAT": "pcm_f32",
    "DOUBLE": "pcm_f64",
    "ALAC_16": "alac",
}


def _check_file(path: Path) -> None:
    if path.is_dir():
        raise DecodeError(f"{path}: is a directory, not an audio file")
    try:
        size = path.stat().st_size
    except FileNotFoundError as err:
        raise DecodeError(f"{path}: no such file") from err
    except OSError as err:
        raise DecodeError(f"{path}: cannot read: {err.strerror or err}") from err
    if size == 0:
        raise DecodeError(f"{path}: empty file (0 bytes)")
    if not os.access(path, os.R_OK):
        raise DecodeError(f"{path}: permission denied")


_MAX_PADDING = 2048  # samples of encoder padding trimmed at the end


def _one_line(err: BaseException, path: Path) -> str:
    text = " ".join(str(err).replace(f"'{path}'", "").replace(str(path), "").split()).strip(" :")
    if "File does not exist or is not a regular file" in text or "Format not recognised" in text:
        text = "format not recognised by libsndfile"
    text = text.replace("Error opening :", "").replace("[Errno 1094995529]", "").strip(" :")
    return text or type(err).__name__


def _sf_codec(subtype: str) -> str:
    if subtype.startswith("PCM_"):
        return "pcm_s" + subtype[4:] if subtype[4:].isdigit() and subtype != "PCM_U8" else "pcm_u8"
    return _SF_CODECS.get(subtype, subtype.lower())


def _probe_sf(path: Path) -> InputInfo:
    info = sf.info(str(path))
    return InputInfo(
        format=info.format.lower(),
        codec=_sf_codec(info.subtype),
        sample_rate=int(info.samplerate),
        channels=int(info.channels),
        duration_s=float(info.frames) / info.samplerate if info.samplerate else 0.0,
        subtype=info.subtype,
    )


def _probe_av(path: Path) -> InputInfo:
    import av

    with av.open(str(path), metadata_errors="ignore") as container:
        streams = [s for s in container.streams if s.type == "audio"]
        if not streams:
            raise DecodeError(f"{path}: no audio stream")
        stream = streams[0]
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / 1_000_000.0
        else:
            duration = float("nan")
        ctx = stream.codec_context
        return InputInfo(
            format=container.format.name.split(",")[0],
            codec=ctx.name,
            sample_rate=int(ctx.sample_rate),
            channels=int(ctx.channels),
            duration_s=duration,
            subtype=ctx.format.name if ctx.format is not None else "",
        )


def probe(path: str | Path) -> InputInfo:
    """Read format facts without decoding the whole file.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    InputInfo
        Container format, codec, sample rate, channels, duration.

    Raises
    ------
    DecodeError
        If the file is missing, empty, or not audio either library can read.
    """
    p = Path(path)
    _check_file(p)
    errors: list[str] = []
    readers = (_probe_av, _probe_sf) if p.suffix.lower() in _AV_FIRST else (_probe_sf, _probe_av)
    for reader in readers:
        try:
            return reader(p)
        except DecodeError:
            raise
        except Exception as err:
            errors.append(_one_line(err, p))
    raise DecodeError(f"{p}: not a readable audio file ({'; '.join(dict.fromkeys(errors))})")


# libsndfile reads these containers' 16-bit PCM by its plain PCM code (pcm.c), whose float samples are
# ``int16 * (1.0f / 0x8000)``: exact in float32, so scaling the int16 samples here gives the same
# values, without libsndfile's slower conversion loop (4 of 5 parts of the CPU of reading such a WAV).
_PCM16_CONTAINERS = frozenset({"WAV", "WAVEX", "RF64", "W64", "AIFF"})
_PCM16_SCALE = np.float32(1.0 / 0x8000)


def _load_sf(path: Path) -> tuple[np.ndarray, int]:
    with sf.SoundFile(str(path)) as fh:
        rate = int(fh.samplerate)
        if fh.subtype == "PCM_16" and fh.format in _PCM16_CONTAINERS:
            ints = fh.read(dtype="int16", always_2d=True)
            audio = np.empty((ints.shape[1], ints.shape[0]), np.float32)
            np.multiply(ints.T, _PCM16_SCALE, out=audio)
            return audio, rate
        if fh.seekable():  # as sf.read does: libsndfile's Opus decoding differs without this seek
            fh.seek(0)
        data = fh.read(fh.frames, dtype="float32", always_2d=True)
    return np.ascontiguousarray(data.T), rate


def _load_av(path: Path) -> tuple[np.ndarray, int]:
    with _open_av(path) as (container, stream, rate, expected):
        chunks = list(_decoded_av(container, stream, None))
    n = _without_padding(chunks[0].shape[1], expected) if chunks else 0
    if n == 0:
        raise DecodeError(f"{path}: audio stream holds no decodable frames")
    return np.ascontiguousarray(chunks[0][:, :n]), rate


def _without_padding(decoded: int, expected: int | None) -> int:
    """Samples of a decoded stream that are signal: encoders pad the last frame (AAC: 1024 samples), and
    the container's duration (``expected``) says where the signal ends, when it is up to
    :data:`_MAX_PADDING` before the decoded end."""
    if expected is not None and 0 < decoded - expected <= _MAX_PADDING:
        return expected
    return decoded


def load(path: str | Path) -> tuple[np.ndarray, int]:
    """Decode an audio file.

    Parameters
    ----------
    path : str or Path
        WAV (8/16/24/32-bit int or float), FLAC, MP3, Ogg Vorbis/Opus,
        M4A/AAC, or anything else FFmpeg reads.

    Returns
    -------
    audio : np.ndarray, float32, shape (channels, samples)
        Always 2-D here; the pipeline's downmix makes it 1-D.
    sample_rate : int
        In Hz.

    Raises
    ------
    DecodeError
        Naming the file and the cause, if it cannot be decoded or holds no
        samples.
    """
    p = Path(path)
    _check_file(p)
    errors: list[str] = []
    readers = (_load_av, _load_sf) if p.suffix.lower() in _AV_FIRST else (_load_sf, _load_av)
    for reader in readers:
        try:
            audio, rate = reader(p)
        except DecodeError:
            raise
        except MemoryError as err:
            raise DecodeError(f"{p}: too large to decode in memory") from err
        except Exception as err:
            errors.append(_one_line(err, p))
            continue
        if audio.shape[1] == 0:
            raise DecodeError(f"{p}: no audio samples (header only)")
        if rate <= 0:
            raise DecodeError(f"{p}: invalid sample rate {rate}")
        return audio, rate
    raise DecodeError(f"{p}: not a readable audio file ({'; '.join(dict.fromkeys(errors))})")


def _stream_sf(path: Path, block_frames: int) -> Iterator[np.ndarray]:
    with sf.SoundFile(str(path)) as fh:
        while True:
            data = fh.read(block_frames, dtype="float32", always_2d=True)
            if not len(data):
                return
            yield np.ascontiguousarray(data.T)


@contextlib.contextmanager
def _open_av(path: Path) -> Iterator[tuple[Any, Any, int, int | None]]:
    """The open container, its first audio stream, the sample rate and the expected length (from the container)."""
    import av

    with av.open(str(path), metadata_errors="ignore") as container:
        streams = [s for s in container.streams if s.type == "audio"]
        if not streams:
            raise DecodeError(f"{path}: no audio stream")
        stream = streams[0]
        rate = int(stream.codec_context.sample_rate)
        expected = None
        if stream.duration is not None and stream.time_base is not None:
            expected = round(float(stream.duration * stream.time_base) * rate)
        yield container, stream, rate, expected


def _decoded_av(container: Any, stream: Any, batch_frames: int | None) -> Iterator[np.ndarray]:
    """The stream decoded to float32 ``(channels, n)`` arrays of at least ``batch_frames`` samples (None: one array).

    The last array may be shorter.  Each frame's planes are appended to one byte buffer per channel
    (no array per frame: FFmpeg's frames hold 256-4608 samples, and an array and a stack per frame
    added 25-50 % to the codec's own time on the pipeline benchmark's AAC and Opus files).
    """
    import av

    ctx = stream.codec_context
    resampler = av.AudioResampler(format="fltp", layout=ctx.layout, rate=ctx.sample_rate)
    limit = None if batch_frames is None else 4 * batch_frames
    bufs: list[bytearray] = []

    def arrays() -> np.ndarray:
        rows = [np.frombuffer(buf, np.float32) for buf in bufs]
        return rows[0][None] if len(rows) == 1 else np.stack(rows)

    for frame in itertools.chain(container.decode(stream), (None,)):
        for out in resampler.resample(frame):
            planes = out.planes
            if not bufs:
                bufs = [bytearray() for _ in planes]
            size = 4 * out.samples  # a plane's buffer may hold padding past its samples
            for buf, plane in zip(bufs, planes, strict=True):
                buf += memoryview(plane)[:size]
            if limit is not None and len(bufs[0]) >= limit:
                yield arrays()
                bufs = [bytearray() for _ in planes]
    if bufs and len(bufs[0]):
        yield arrays()


def _stream_av(path: Path, block_frames: int) -> Iterator[np.ndarray]:
    with _open_av(path) as (container, stream, _, expected):
        pending: list[np.ndarray] = []
        count = 0
        total = 0
        for chunk in _decoded_av(container, stream, block_frames):
            pending.append(chunk)
            count += chunk.shape[1]
            while count >= block_frames + _MAX_PADDING:  # hold back what may be end padding
                block = np.concatenate(pending, axis=1)
                yield np.ascontiguousarray(block[:, :block_frames])
                total += block_frames
                rest = block[:, block_frames:].copy()  # not a view: it would hold the whole block
                pending, count = ([rest] if rest.shape[1] else []), rest.shape[1]
        if count:  # the last block may be up to _MAX_PADDING longer than block_frames
            last = np.concatenate(pending, axis=1)
            last = last[:, : max(0, _without_padding(total + count, expected) - total)]
            if last.shape[1]:
                yield np.ascontiguousarray(last)


def stream(path: str | Path, *, block_frames: int = 1 << 20) -> tuple[int, Iterator[np.ndarray]]:
    """Decode a file block by block, in bounded memory.

    Parameters
    ----------
    path : str or Path
    block_frames : int
        Samples per channel in each block (the last one may be shorter).

    Returns
    -------
    sample_rate : int
    blocks : iterator of np.ndarray, float32, shape (channels, n)
        Consecutive blocks of the whole file.  Errors while decoding the
        middle of a file raise :class:`DecodeError` from the iterator.

    Raises
    ------
    DecodeError
        If neither library can open the file.
    """
    p = Path(path)
    info = probe(p)
    use_av = p.suffix.lower() in _AV_FIRST
    if not use_av:
        try:
            sf.info(str(p))
        except Exception:
            use_av = True
    reader = _stream_av if use_av else _stream_sf

    def guarded() -> Iterator[np.ndarray]:
        try:
            yield from reader(p, block_frames)
        except DecodeError:
            raise
        except Exception as err:
            raise DecodeError(f"{p}: decoding failed mid-file: {_one_line(err, p)}") from err

    return info.sample_rate, guarded()


def load_span(path: str | Path, start_s: float, end_s: float) -> tuple[np.ndarray, int]:
    """Decode only ``[start_s, end_s)`` of a file, in memory bounded by the span.

    libsndfile formats seek; others are streamed from the start and the
    blocks before the span are dropped.

    Returns
    -------
    audio : np.ndarray, float32, shape (channels, samples)
    sample_rate : int
    """
    p = Path(path)
    rate, blocks = stream(p, block_frames=1 << 16)
    i0, i1 = max(0, int(start_s * rate)), max(0, int(np.ceil(end_s * rate)))
    try:
        with sf.SoundFile(str(p)) as fh:
            if fh.seekable() and fh.samplerate == rate:
                fh.seek(min(i0, fh.frames))
                data = fh.read(max(0, i1 - i0), dtype="float32", always_2d=True)
                return np.ascontiguousarray(data.T), rate
    except Exception:  # not a libsndfile file: stream it below
        pass
    parts, pos = [], 0
    for block in blocks:
        n = block.shape[1]
        if pos + n > i0 and pos < i1:
            parts.append(block[:, max(0, i0 - pos) : min(n, i1 - pos)])
        pos += n
        if pos >= i1:
            break
    if not parts:
        return np.zeros((1, 0), np.float32), rate
    return np.ascontiguousarray(np.concatenate(parts, axis=1)), rate
