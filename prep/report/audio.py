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
"Lossless previews (stop 22)").  The FLAC encoder is this package's own
(:func:`flac_encode`, :mod:`prep.kernels.flac`): libFLAC's level-4 bytes (via
libsndfile, which the previews used before) for about a third of its CPU, as
it skips the float conversion and the MD5 of the samples, and the same 16-bit
samples (:func:`flac_pcm16`).  Every current browser plays FLAC in
``<audio>``.  ``--preview-format opus`` still writes
Ogg Opus previews (:func:`opus_ogg`: 32 kb/s per channel, near-transparent
for speech; libopus ships in PyAV's wheels, a core dependency).
"""

from __future__ import annotations

import base64
import io
import math
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..audio import check_sample_rate
from ..errors import ConfigError, DataError
from ..run.run_folder import PREVIEW_FORMATS

__all__ = [
    "FLAC_BLOCKSIZE",
    "FLAC_LPC_PRECISION",
    "FLAC_MAX_LPC_ORDER",
    "FLAC_MAX_PARTITION_ORDER",
    "FLAC_MIME",
    "OPUS_BITRATE_BPS",
    "OPUS_MIME",
    "PREVIEW_FORMATS",
    "audio_data_uri",
    "check_preview_format",
    "flac_encode",
    "flac_pcm16",
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
#: FLAC block length (samples per channel per frame), libFLAC's from level 3 up.
FLAC_BLOCKSIZE = 4096
#: Highest LPC order searched (libFLAC's levels 4-7 search up to 8; 0 would code FIXED predictors only).
FLAC_MAX_LPC_ORDER = 8
#: Bits of each quantised LPC coefficient (libFLAC's for 4096-sample blocks); with 16-bit samples
#: and order 8 every prediction fits 32-bit arithmetic (12 + 16 + 3 <= 32).
FLAC_LPC_PRECISION = 12
#: Highest Rice partition order (up to 16 partitions of 256 samples; libFLAC's levels 3-4).
FLAC_MAX_PARTITION_ORDER = 4
#: STREAMINFO's highest sample rate (20 bits).
_FLAC_MAX_RATE = 2**20 - 1
_FLAC_RATE_CODES = {88200: 1, 176400: 2, 192000: 3, 8000: 4, 16000: 5, 22050: 6, 24000: 7, 32000: 8,
                    44100: 9, 48000: 10, 96000: 11}
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


def flac_pcm16(audio: np.ndarray) -> np.ndarray:
    """Float audio as the 16-bit samples libsndfile writes to a FLAC file (and :func:`flac_preview` does).

    ``round(clip(x, -1, 1) * 32768)`` (ties to even), full scale kept at 32767: libsndfile's
    float-to-FLAC conversion, not the one it uses for WAV (:func:`prep.io._pcm16`, which scales by
    2**31 and truncates; they differ by one step on about half of the values between steps).

    Parameters
    ----------
    audio : np.ndarray, float32, shape (samples,) or (channels, samples)

    Returns
    -------
    np.ndarray, int16, the same shape

    Raises
    ------
    DataError
        If a sample is NaN.
    """
    x = np.asarray(audio, dtype=np.float32)
    return _quantised(x.reshape(1, -1) if x.ndim == 1 else x).astype(np.int16).reshape(x.shape)


def _quantised(x: np.ndarray) -> np.ndarray:
    """:func:`flac_pcm16`'s samples of float32 (channels, samples) ``x``, as int32 (what the encoder takes)."""
    from ..kernels.flac import quantise16

    out = np.empty(x.shape, np.int32)
    if not quantise16(np.ascontiguousarray(x), out):
        raise DataError("cannot encode NaN samples")
    return out


@lru_cache(maxsize=4)
def _tukey_weights(n: int) -> np.ndarray:
    """Tukey(0.5) window of ``n`` points as int64 weights of 2**15 (the LPC analysis window)."""
    if n < 3:
        return np.full(n, 1 << 15, np.int64)
    t = np.arange(n) / (n - 1)
    w = np.ones(n)
    edge = np.minimum(t, 1.0 - t) < 0.25
    w[edge] = 0.5 * (1.0 - np.cos(2.0 * np.pi * np.minimum(t, 1.0 - t)[edge] / 0.5))
    out = np.rint(w * 2.0**15).astype(np.int64)
    out.flags.writeable = False
    return out


def _flac_header_rate(rate: int) -> tuple[int, int, int]:
    """The frame header's sample-rate code, extension and extension bytes for ``rate``."""
    if rate in _FLAC_RATE_CODES:
        return _FLAC_RATE_CODES[rate], 0, 0
    if rate % 1000 == 0 and rate // 1000 < 256:
        return 12, rate // 1000, 1
    if rate < 65536:
        return 13, rate, 2
    if rate % 10 == 0 and rate // 10 < 65536:
        return 14, rate // 10, 2
    return 0, 0, 0  # "from STREAMINFO"


def _flac_stream(pcm: np.ndarray, rate: int, *, max_lpc_order: int = FLAC_MAX_LPC_ORDER) -> bytes:
    """The FLAC file of checked int32 (channels, samples) 16-bit samples at ``rate`` (checked positive; beyond
    STREAMINFO's 20 bits, a DataError)."""
    from ..kernels.flac import encode_frames

    if rate > _FLAC_MAX_RATE:
        raise DataError(f"cannot encode FLAC at {rate} Hz: above {_FLAC_MAX_RATE} Hz")
    channels, n = pcm.shape
    frames = -(-n // FLAC_BLOCKSIZE)
    last = n - (frames - 1) * FLAC_BLOCKSIZE
    code, ext, ext_bytes = _flac_header_rate(rate)
    out = np.empty(channels * 2 * n + 64 * (frames + 1), np.uint8)
    choices = np.empty((frames, channels, 2), np.int64)
    size, smallest, largest = encode_frames(
        pcm, FLAC_BLOCKSIZE, code, ext, ext_bytes, _tukey_weights(FLAC_BLOCKSIZE), _tukey_weights(last),
        max_lpc_order, FLAC_LPC_PRECISION, FLAC_MAX_PARTITION_ORDER, out, choices)
    # STREAMINFO, the only metadata block; the MD5 of the samples is all zeros ("not computed", which
    # RFC 9639 allows: decoders then skip the check)
    info = (FLAC_BLOCKSIZE << 16 | FLAC_BLOCKSIZE).to_bytes(4, "big") + smallest.to_bytes(3, "big") \
        + largest.to_bytes(3, "big") + (rate << 44 | (channels - 1) << 41 | 15 << 36 | n).to_bytes(8, "big")
    return b"fLaC" + bytes((0x80, 0, 0, 34)) + info + bytes(16) + out[:size].tobytes()


def flac_encode(pcm: np.ndarray, *, sample_rate: int) -> bytes:
    """Encode 16-bit samples as a FLAC file (in memory) with this package's encoder (:mod:`prep.kernels.flac`).

    Lossless: every decoder gives back ``pcm``.  Blocks of :data:`FLAC_BLOCKSIZE`
    samples, each channel's the smallest of a constant, FIXED (orders 0-4), LPC
    (Tukey(0.5) window, Levinson-Durbin, order up to :data:`FLAC_MAX_LPC_ORDER`,
    :data:`FLAC_LPC_PRECISION`-bit coefficients) or verbatim subframe, residuals
    Rice-coded in up to ``2**FLAC_MAX_PARTITION_ORDER`` partitions: about the
    bytes of libFLAC's level 4 for a third of its CPU (``benchmarks/preview_codec.py``).
    Two channels are coded independently (no mid-side).  The file has one metadata
    block, STREAMINFO, whose MD5 signature of the samples is all zeros ("not
    computed", which RFC 9639 allows); frames carry their CRC-8 and CRC-16.

    Parameters
    ----------
    pcm : np.ndarray, int16, shape (samples,) or (channels, samples)
        One or two channels.
    sample_rate : int
        Hz, 1 to 1048575 (STREAMINFO's 20 bits).

    Returns
    -------
    bytes
        The FLAC file.

    Raises
    ------
    ConfigError
        If ``sample_rate`` is not a positive integer.
    DataError
        If ``pcm`` is not 16-bit integers of one or two channels, is empty, or
        the rate is beyond FLAC's.
    """
    rate = check_sample_rate(sample_rate)
    x = np.asarray(pcm)
    if x.dtype != np.int16:
        raise DataError(f"FLAC encodes int16 samples, got {x.dtype}")
    x = x.reshape(1, -1) if x.ndim == 1 else x
    if x.ndim != 2 or not 1 <= x.shape[0] <= 2:
        raise DataError(f"FLAC encodes one or two channels (channels, samples), got shape {np.shape(pcm)}")
    if x.shape[1] == 0:
        raise DataError("no audio to encode")
    return _flac_stream(np.ascontiguousarray(x, dtype=np.int32), rate)


def flac_preview(audio: np.ndarray, *, sample_rate: int) -> bytes:
    """Encode audio as 16-bit FLAC at its own rate (in memory): the lossless source preview.

    Parameters
    ----------
    audio : np.ndarray, float32, shape (samples,) or (channels, samples)
        One or two channels are kept; more are averaged to mono.  Clipped to
        [-1, 1] and quantised to 16 bits as libsndfile does (:func:`flac_pcm16`,
        no dither).
    sample_rate : int
        Rate of ``audio`` in Hz, kept as it is.

    Returns
    -------
    bytes
        The FLAC file (:func:`flac_encode`).

    Raises
    ------
    ConfigError
        If ``sample_rate`` is not a positive integer.
    DataError
        If the audio is empty or has NaN samples, or the rate is beyond FLAC's.
    """
    rate, x = _encodable(audio, sample_rate=sample_rate)
    return _flac_stream(_quantised(x), rate)


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
