"""Encode benchmark inputs with PyAV (no ffmpeg binary needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["encode"]

#: container format and codec per file ending
_CODECS = {
    ".mp3": ("mp3", "libmp3lame"),
    ".m4a": ("ipod", "aac"),
    ".opus": ("ogg", "libopus"),
    ".flac": ("flac", "flac"),
}


def encode(path: Path, audio: np.ndarray, sample_rate: int, *, bit_rate: int | None = None) -> None:
    """Write float32 ``audio`` of shape (channels, samples) to ``path``, the codec chosen by its ending.

    ``.ogg`` is Vorbis written by libsndfile (FFmpeg's own Vorbis encoder is experimental).
    """
    if path.suffix == ".ogg":
        import soundfile as sf

        sf.write(path, audio.T, sample_rate, format="OGG", subtype="VORBIS")
        return

    audio = np.asarray(audio, dtype=np.float32)
    encode_stream(path, [audio], sample_rate, audio.shape[0], bit_rate=bit_rate)


def encode_stream(path: Path, chunks, sample_rate: int, channels: int, *, bit_rate: int | None = None) -> None:
    """Write float32 chunks of shape (channels, samples) to one compressed file (``.m4a``, ``.mp3``, ``.opus``,
    ``.flac``) in bounded memory."""
    import av

    fmt, codec = _CODECS[path.suffix]
    layout = "stereo" if channels == 2 else "mono"
    with av.open(str(path), "w", format=fmt) as container:
        rate = 48000 if codec == "libopus" else sample_rate
        stream = container.add_stream(codec, rate=rate, layout=layout)
        if bit_rate:
            stream.bit_rate = bit_rate
        resampler = av.AudioResampler(format=stream.codec_context.format, layout=stream.codec_context.layout,
                                      rate=rate)
        for chunk in chunks:
            data = np.ascontiguousarray(np.clip(chunk, -1.0, 1.0), dtype=np.float32)
            for i in range(0, data.shape[1], 1 << 16):
                part = av.AudioFrame.from_ndarray(data[:, i:i + (1 << 16)].copy(), format="fltp", layout=layout)
                part.sample_rate = sample_rate
                for out in resampler.resample(part):
                    for packet in stream.encode(out):
                        container.mux(packet)
        for out in resampler.resample(None):
            for packet in stream.encode(out):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
