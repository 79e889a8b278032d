"""Small short-time spectral helpers (NumPy + :mod:`scipy.fft`).

They replace the few :mod:`scipy.signal` calls the package made
(``stft``, ``welch``, ``spectrogram``) with the same framing: frames of
``nper`` samples every ``hop`` starting at sample 0, no boundary padding,
a partial last frame dropped, periodic windows (``scipy.signal.get_window``
defaults).  Importing :mod:`scipy.signal` costs ~0.7 s (it pulls in
:mod:`scipy.stats` and more), a large share of a short ``voiceprep check``.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from . import fft as sp_fft

__all__ = ["frames", "hann", "one_sided_density", "stft", "tukey", "welch"]

_BLOCK = 1 << 21  # samples per FFT batch (frames * nper), bounds the temporary arrays


def hann(n: int) -> np.ndarray:
    """Periodic Hann window (``scipy.signal.get_window("hann", n)``), float64."""
    if n <= 1:
        return np.ones(max(n, 0))
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)


def tukey(n: int, alpha: float = 0.25) -> np.ndarray:
    """Periodic Tukey window (``scipy.signal.get_window(("tukey", alpha), n)``), float64."""
    if n <= 1:
        return np.ones(max(n, 0))
    if alpha <= 0:
        return np.ones(n)
    m = n + 1  # periodic: the symmetric window one longer, last sample dropped
    if alpha >= 1.0:
        return hann(n)
    k = np.arange(m, dtype=np.float64)
    width = math.floor(alpha * (m - 1) / 2.0)
    w = np.ones(m)
    k1 = k[: width + 1]
    w[: width + 1] = 0.5 * (1 + np.cos(np.pi * (-1 + 2.0 * k1 / alpha / (m - 1))))
    k3 = k[m - width - 1 :]
    w[m - width - 1 :] = 0.5 * (1 + np.cos(np.pi * (-2.0 / alpha + 1 + 2.0 * k3 / alpha / (m - 1))))
    return w[:-1]


def frames(x: np.ndarray, nper: int, hop: int) -> np.ndarray:
    """Read-only view of the full frames of 1-D ``x``, shape ((x.size - nper) // hop + 1, nper)."""
    if x.size < nper:
        return np.zeros((0, nper), x.dtype)
    return sliding_window_view(x, nper)[::hop]


def _batches(count: int, nper: int) -> range:
    return range(0, count, max(1, _BLOCK // max(nper, 1)))


def stft(x: np.ndarray, nper: int, hop: int, window: np.ndarray | None = None) -> np.ndarray:
    """One-sided STFT of 1-D ``x``, shape (frames, nper // 2 + 1), scaled by ``1 / sum(window)``.

    ``scipy.signal.stft(x, nperseg=nper, noverlap=nper - hop, boundary=None,
    padded=False)`` transposed (its default ``scaling="spectrum"``).
    Computed in ``x``'s precision (float32 in, complex64 out).
    """
    win = hann(nper) if window is None else np.asarray(window, np.float64)
    view = frames(x, nper, hop)
    dtype = np.float32 if x.dtype == np.float32 else np.float64
    w = (win / win.sum()).astype(dtype)
    out = np.empty((view.shape[0], nper // 2 + 1), np.complex64 if dtype == np.float32 else np.complex128)
    for i in _batches(view.shape[0], nper):
        out[i : i + _BLOCK // nper] = sp_fft.rfft(view[i : i + _BLOCK // nper] * w, axis=-1)
    return out


def one_sided_density(
    power: np.ndarray, nper: int, *, sample_rate: float, window: np.ndarray, in_place: bool = False
) -> np.ndarray:
    """``|rfft|**2`` (last axis: bins) to a one-sided PSD as scipy's ``scaling="density"`` does.

    ``in_place`` scales ``power`` itself (a float array) and returns it: the same values, no copy.
    """
    scale = sample_rate * float(np.sum(window**2))
    if in_place:
        power /= scale
        psd = power
    else:
        psd = power / scale
    last = -1 if nper % 2 == 0 else None  # the Nyquist bin of an even transform is not doubled
    psd[..., 1:last] *= 2.0
    return psd


def welch(x: np.ndarray, *, sample_rate: float, nper: int) -> np.ndarray:
    """Welch PSD of 1-D ``x``: periodic Hann, 50 % overlap, no detrending, density scaling.

    Equals ``scipy.signal.welch(x, sample_rate, nperseg=nper, noverlap=nper // 2,
    detrend=False)[1]`` (float64 out).  Needs ``x.size >= nper``.
    """
    win = hann(nper)
    w = win.astype(np.float32 if x.dtype == np.float32 else np.float64)  # x's precision, as scipy
    view = frames(x, nper, nper - nper // 2)
    total = np.zeros(nper // 2 + 1)
    for i in _batches(view.shape[0], nper):
        spec = sp_fft.rfft(view[i : i + _BLOCK // nper] * w, axis=-1)
        total += np.sum(spec.real**2 + spec.imag**2, axis=0, dtype=np.float64)
    return one_sided_density(total / max(view.shape[0], 1), nper, sample_rate=sample_rate, window=win)


def spectrogram(
    x: np.ndarray, *, sample_rate: float, nper: int, hop: int, select: np.ndarray | None = None
) -> np.ndarray:
    """PSD spectrogram, shape (bins, frames), or (bins, len(select)) with ``select``.

    Equals ``scipy.signal.spectrogram(x, sample_rate, nperseg=nper, noverlap=nper - hop)``
    with its defaults: periodic Tukey(0.25) window, mean removed per frame,
    density scaling, one-sided.  In ``x``'s precision, as scipy.  Needs ``x.size >= nper``.
    ``select`` (frame indices) computes only those columns, e.g. the ones a
    picture shows.
    """
    win = tukey(nper, 0.25)
    dtype = np.float32 if x.dtype == np.float32 else np.float64
    w = win.astype(dtype)
    view = frames(x, nper, hop)
    if select is not None:
        view = view[np.asarray(select, np.intp)]
    out = np.empty((view.shape[0], nper // 2 + 1), dtype)
    step = _BLOCK // nper
    for i in _batches(view.shape[0], nper):
        block = view[i : i + step] - view[i : i + step].mean(axis=1, keepdims=True, dtype=dtype)
        block *= w  # in place: the same products, one temporary less
        spec = sp_fft.rfft(block, axis=-1, overwrite_x=True)
        power = out[i : i + step]
        np.square(spec.real, out=power)
        power += np.square(spec.imag)
    return one_sided_density(out, nper, sample_rate=sample_rate, window=win, in_place=True).T
