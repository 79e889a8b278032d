"""Audio for the report: the source previews (lossless FLAC) and the embedded players (Opus in Ogg).

A clip's *source preview* (``OUT/plots/<speaker>/<id>.source.flac``,
:meth:`prep.run.run_folder.RunFolder.preview_path`) is the downmixed source
over the clip's span, written by the worker that has the audio in memory, so
the page can play "before" next to "after" whatever the source's format and
wherever it lies.  ``--embed-audio`` puts the previews and the clips into
``report.html`` as Ogg Opus data URIs (encoded when the page is written, so
the page stays small).  Runs made before keep their ``.source.ogg`` (Opus)
previews, and the page plays those.

A media-fragment link to the source itself (``input.m4a#t=12.3,24.1``) would
cost nothing at run time, but plays only what the browser decodes (not every
m4a, wma or aiff), breaks when OUT or the inputs move, needs a path from OUT
to anywhere on disk, and cannot be embedded.

The preview is FLAC, 16-bit, at the downmixed source's rate
(:func:`flac_preview`): a lossless "before" to judge what denoising removed,
and cheaper to write than Opus, whose libopus encode was a fifth of a
model-free run's CPU.  Over the 10-minute set of ``benchmarks/cpu.py`` (CPU
time, serial path) the previews went from 0.64 to 0.30 s of a ~2.9 s loop;
their bytes from 5 % to 41 % of the clip WAVs' (``benchmarks/RESULTS.md``,
"Lossless previews (stop 22)").  Every current browser plays FLAC in
``<audio>``.  ``--preview-format opus`` still writes
Ogg Opus previews (:func:`opus_ogg`: 32 kb/s per channel, near-transparent
for speech; libopus ships in PyAV's wheels, a core dependency).
"""

from __future__ import annotations

import base64
import io
import math
from pathlib import Path

import numpy as np

from ..audio import check_sample_rate
from ..errors import ConfigError, DataError
from ..run.run_folder import PREVIEW_FORMATS

__all__ = [
    "FLAC_COMPRESSION",
    "FLAC_MIME",
    "OPUS_BITRATE_BPS",
    "OPUS_MIME",
    "PREVIEW_FORMATS",
    "audio_data_uri",
    "check_preview_format",
    "flac_preview",
    "opus_ogg",
    "opus_rate",
    "preview_bytes",
    "wav_opus_ogg",
]

#: Bit rate per channel (speech is near-transparent at 32 kb/s in Opus).
OPUS_BITRATE_BPS = 32_000
#: libopus effort, 0-10.  0 with 60 ms frames encodes a 30 s mono clip ~800x realtime (CPU), 2.1x
#: faster than 5 with 20 ms frames (then ~40 % of a model-free run's CPU), with fewer bytes and a
#: log-spectral distance to the source within 0.3 dB of 5's: previews are for listening, not analysis.
OPUS_COMPLEXITY = 0
#: Opus packet length (ms), the longest Opus allows: CELT still codes 20 ms frames inside (the same
#: audio and bytes within 0.5 %), but PyAV's per-packet work is halved against 60 ms: ~8 % less CPU
#: per preview (30 s mono at 48 kHz: 37.8 -> 34.9 ms, ``benchmarks/RESULTS.md``, stop 22).
OPUS_FRAME_MS = 120
#: The MIME type of :func:`opus_ogg`'s output.
OPUS_MIME = "audio/ogg"
_OPUS_RATES = (8000, 12000, 16000, 24000, 48000)
#: libsndfile's FLAC compression level, 0-1 (libFLAC's levels 0-8).  0.5 gives ~20 % fewer bytes than 0
#: for about the same CPU; 1 saves another ~4 % of bytes for ~1.7x the CPU (the 10-minute set and the
#: corpus speech, ``benchmarks/preview_codec.py``).
FLAC_COMPRESSION = 0.5
#: The MIME type of :func:`flac_preview`'s output.
FLAC_MIME = "audio/flac"


def opus_rate(*, sample_rate: int, bandwidth_hz: float | None = None) -> int:
    """The Opus rate (Hz) :func:`opus_ogg` encodes at: the lowest whose band holds the signal's.

    The lowest Opus rate (8, 12, 16, 24 or 48 kHz) at or above ``sample_rate``
    or, with ``bandwidth_hz`` (the signal's measured bandwidth, e.g.
    :func:`prep.dsp.estimators.bandwidth_hz`), the lowest whose Nyquist is at
    or above it, if lower: nothing of the band the signal has is lost.
    """
    rate = next((r for r in _OPUS_RATES if r >= sample_rate), 48000)
    if bandwidth_hz is not None and math.isfinite(bandwidth_hz) and bandwidth_hz > 0:
        rate = min(rate, next((r for r in _OPUS_RATES if r / 2 >= bandwidth_hz), 48000))
    return rate


def _encodable(audio: np.ndarray, *, sample_rate: int) -> tuple[int, np.ndarray]:
    """The checked rate and ``audio`` as float32 (channels, samples) of one or two channels (more: averaged).

    Raises
    ------
    ConfigError
        If ``sample_rate`` is not a positive integer.
    DataError
        If the audio is empty.
    """
    rate = check_sample_rate(sample_rate)
    x = np.asarray(audio, dtype=np.float32)
    x = x.reshape(1, -1) if x.ndim == 1 else x
    if x.shape[0] > 2:
        x = x.mean(axis=0, dtype=np.float32, keepdims=True)
    if x.shape[1] == 0:
        raise DataError("no audio to encode")
    return rate, x


def opus_ogg(
    audio: np.ndarray,
    *,
    sample_rate: int,
    bitrate_bps: int = OPUS_BITRATE_BPS,
    bandwidth_hz: float | None = None,
) -> bytes:
    """Encode audio as Opus in an Ogg file (in memory).

    Parameters
    ----------
    audio : np.ndarray, float32, shape (samples,) or (channels, samples)
        One or two channels are kept; more are averaged to mono.
    sample_rate : int
        Rate of ``audio`` in Hz; encoded at the lowest Opus rate at or above
        it (8, 12, 16, 24 or 48 kHz), so nothing of the band is lost.
    bitrate_bps : int
        Bit rate per channel.
    bandwidth_hz : float, optional
        The audio's measured bandwidth: encoded at the lowest Opus rate
        whose Nyquist holds it when that is lower (:func:`opus_rate`; a
        source band-limited to 8 kHz is encoded at 16 kHz, ~25 % less CPU
        than at 48 kHz, ``benchmarks/preview_codec.py``).

    Returns
    -------
    bytes
        The Ogg Opus file.

    Raises
    ------
    ConfigError
        If ``sample_rate`` is not a positive integer.
    DataError
        If the audio is empty or cannot be encoded.
    """
    import av

    rate, x = _encodable(audio, sample_rate=sample_rate)
    x = np.ascontiguousarray(np.clip(x, -1.0, 1.0))
    layout = "mono" if x.shape[0] == 1 else "stereo"
    target = opus_rate(sample_rate=rate, bandwidth_hz=bandwidth_hz)
    buf = io.BytesIO()
    try:
        with av.open(buf, "w", format="ogg") as container:
            options = {"compression_level": str(OPUS_COMPLEXITY), "b": str(bitrate_bps * x.shape[0]),
                       "frame_duration": str(OPUS_FRAME_MS)}
            stream = container.add_stream("libopus", rate=target, layout=layout, options=options)
            frame = av.AudioFrame.from_ndarray(x, format="fltp", layout=layout)
            # PyAV resamples to the stream's rate (swresample) and cuts Opus frames; resampling first
            # with soxr (LQ) was measured no cheaper, and LQ's narrower passband costs band at 16 kHz
            frame.sample_rate = rate
            for packet in stream.encode(frame):
                container.mux(packet)
            for packet in stream.encode(None):
                container.mux(packet)
    except (av.FFmpegError, ValueError) as err:
        raise DataError(f"cannot encode Opus: {err}") from err
    return buf.getvalue()


def flac_preview(audio: np.ndarray, *, sample_rate: int) -> bytes:
    """Encode audio as 16-bit FLAC at its own rate (in memory): the lossless source preview.

    Parameters
    ----------
    audio : np.ndarray, float32, shape (samples,) or (channels, samples)
        One or two channels are kept; more are averaged to mono.  Clipped to
        [-1, 1] and quantised to 16 bits (no dither).
    sample_rate : int
        Rate of ``audio`` in Hz, kept as it is.

    Returns
    -------
    bytes
        The FLAC file (compression :data:`FLAC_COMPRESSION`).

    Raises
    ------
    ConfigError
        If ``sample_rate`` is not a positive integer.
    DataError
        If the audio is empty or cannot be encoded.
    """
    import soundfile as sf

    rate, x = _encodable(audio, sample_rate=sample_rate)
    buf = io.BytesIO()
    try:
        # clipped first: libsndfile's float to 16-bit conversion wraps what lies beyond full scale
        sf.write(buf, np.clip(x, -1.0, 1.0).T, rate, format="FLAC", subtype="PCM_16",
                 compression_level=FLAC_COMPRESSION)
    except (sf.LibsndfileError, RuntimeError, ValueError) as err:
        raise DataError(f"cannot encode FLAC at {rate} Hz: {err}") from err
    return buf.getvalue()


def preview_bytes(
    audio: np.ndarray, *, sample_rate: int, preview_format: str = "flac", bandwidth_hz: float | None = None
) -> bytes:
    """A source preview in ``preview_format`` (:data:`PREVIEW_FORMATS`): :func:`flac_preview` or :func:`opus_ogg`.

    ``bandwidth_hz`` (the source's measured bandwidth) only matters to Opus.

    Raises
    ------
    ConfigError
        If ``preview_format`` or ``sample_rate`` is not valid.
    DataError
        If the audio is empty or cannot be encoded.
    """
    if check_preview_format(preview_format) == "flac":
        return flac_preview(audio, sample_rate=sample_rate)
    return opus_ogg(audio, sample_rate=sample_rate, bandwidth_hz=bandwidth_hz)


def check_preview_format(preview_format: str) -> str:
    """``preview_format`` if it is one of :data:`PREVIEW_FORMATS`.

    Raises
    ------
    ConfigError
        If it is not, naming it.
    """
    if preview_format not in PREVIEW_FORMATS:
        raise ConfigError(f"preview_format must be one of {', '.join(PREVIEW_FORMATS)}, got {preview_format!r}")
    return preview_format


def wav_opus_ogg(
    path: str | Path, *, bitrate_bps: int = OPUS_BITRATE_BPS, bandwidth_hz: float | None = None
) -> bytes:
    """A written clip or FLAC preview (any file libsndfile reads) as Ogg Opus (see :func:`opus_ogg`).

    Raises
    ------
    DataError
        If the file cannot be read or encoded.
    """
    import soundfile as sf

    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (OSError, RuntimeError, sf.LibsndfileError) as err:
        raise DataError(f"{path}: cannot read: {err}") from err
    return opus_ogg(data.T, sample_rate=int(rate), bitrate_bps=bitrate_bps, bandwidth_hz=bandwidth_hz)


def audio_data_uri(data: bytes, mime: str = OPUS_MIME) -> str:
    """``data:`` URI of an encoded audio file."""
    return f"data:{mime};base64," + base64.b64encode(data).decode("ascii")
