"""Array conventions shared by every stage.

Inside :mod:`prep` audio is ``float32``, C-contiguous, shaped
``(channels, samples)``; a 1-D array means mono.  Conversion from other
layouts (soundfile's ``(frames, channels)``, PyAV planes) happens only at the
edges, in :mod:`prep.run.decode` and :mod:`prep.io`.

The validators raise :class:`~prep.errors.ConfigError`: they check arrays
and rates a caller passes in.  A file's data never reaches the user as one:
decoding yields 2-D float32 (or a :class:`~prep.errors.DecodeError`), the
runner replaces NaN/Inf samples before any stage, and
:func:`prep.run.pipeline.run_stages` turns any error a stage raises into that
file's ``error`` verdict (exit status 1).
"""

from __future__ import annotations

import numpy as np

from .errors import ConfigError

__all__ = ["as_audio", "as_mono", "mix_to_mono", "n_samples", "n_channels", "duration_s", "check_sample_rate"]


def as_audio(audio: np.ndarray, *, name: str = "audio") -> np.ndarray:
    """Return ``audio`` as a C-contiguous float32 array of 1 or 2 dimensions.

    Parameters
    ----------
    audio : np.ndarray, shape (samples,) or (channels, samples)
        Any real dtype.
    name : str
        Name used in the error message.

    Returns
    -------
    np.ndarray, float32, same shape
        A view when ``audio`` already conforms, a copy otherwise.

    Raises
    ------
    ConfigError
        If ``audio`` is not 1-D or 2-D, or is complex.
    """
    arr = np.asarray(audio)
    if arr.ndim not in (1, 2):
        raise ConfigError(f"{name} must be 1-D (samples,) or 2-D (channels, samples), got shape {arr.shape}")
    if np.iscomplexobj(arr):
        raise ConfigError(f"{name} must be real, got dtype {arr.dtype}")
    return np.ascontiguousarray(arr, dtype=np.float32)


def as_mono(audio: np.ndarray) -> np.ndarray:
    """Return a 1-D view of mono audio given as ``(samples,)`` or ``(1, samples)``.

    Raises
    ------
    ConfigError
        If the audio has more than one channel.
    """
    arr = as_audio(audio)
    if arr.ndim == 2:
        if arr.shape[0] != 1:
            raise ConfigError(f"expected mono audio, got {arr.shape[0]} channels; downmix first")
        arr = arr[0]
    return arr


def mix_to_mono(audio: np.ndarray) -> np.ndarray:
    """1-D float32 analysis signal: the audio itself when mono, else the channel mean.

    Parameters
    ----------
    audio : np.ndarray, shape (samples,) or (channels, samples)

    Returns
    -------
    np.ndarray, float32, shape (samples,)
        Contiguous; a view of ``audio`` when it is already mono float32.
    """
    x = as_audio(audio)
    if x.ndim == 2:
        x = x[0] if x.shape[0] == 1 else x.mean(axis=0, dtype=np.float32)
    return np.ascontiguousarray(x)


def n_channels(audio: np.ndarray) -> int:
    """Number of channels of an array in the prep convention."""
    return 1 if audio.ndim == 1 else int(audio.shape[0])


def n_samples(audio: np.ndarray) -> int:
    """Number of samples per channel of an array in the prep convention."""
    return int(audio.shape[-1])


def duration_s(audio: np.ndarray, *, sample_rate: int) -> float:
    """Duration in seconds."""
    return n_samples(audio) / float(sample_rate)


def check_sample_rate(sample_rate: float) -> int:
    """Validate a sample rate and return it as ``int``.

    Raises
    ------
    ConfigError
        If ``sample_rate`` is not a positive integer number of Hz.
    """
    try:
        rate = int(sample_rate)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"sample_rate must be an integer number of Hz, got {sample_rate!r}") from err
    if rate != sample_rate or rate <= 0:
        raise ConfigError(f"sample_rate must be a positive integer number of Hz, got {sample_rate!r}")
    return rate
