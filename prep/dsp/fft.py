"""Real FFTs by SciPy's pocketfft, without importing :mod:`scipy.fft`.

``import scipy.fft`` costs about 0.15 s of CPU at start-up (it pulls in
``scipy.special`` and SciPy's array-API layer), a sixth of a ``voiceprep
check``.  The pipeline needs three functions of it: :func:`rfft`,
:func:`irfft` and :func:`next_fast_len`.  They are here, calling SciPy's own
compiled pocketfft module (loaded alone by :func:`prep._scipy_ext.load_extension`)
with the arguments :mod:`scipy.fft` passes it for NumPy input, so the results
are bit for bit those of ``scipy.fft.rfft`` / ``irfft`` (float32 in, complex64
out; tested against them).  Where that module cannot be loaded alone, the
ordinary ``scipy.fft`` import provides it.

NumPy's own :mod:`numpy.fft` is not a substitute: its float32 transforms of
many short frames were measured 3.6x slower, and not bit-identical.
"""

from __future__ import annotations

import functools

import numpy as np

from .._scipy_ext import load_extension

__all__ = ["irfft", "next_fast_len", "rfft"]

_pocketfft = load_extension("scipy.fft._pocketfft.pypocketfft", register=False)
if _pocketfft is None:  # pragma: no cover - another SciPy layout: the ordinary import
    from scipy.fft._pocketfft import pypocketfft as _pocketfft

_WORKERS = 1  # scipy.fft's default (no set_workers in this code base)


def _as_float(x) -> np.ndarray:
    """As scipy.fft's ``_asfarray``: float16 to float32, integers to float64, native byte order, aligned."""
    x = np.asarray(x)
    if x.dtype == np.float16:
        return np.asarray(x, np.float32)
    if x.dtype.kind not in "fc":
        return np.asarray(x, np.float64)
    dtype = x.dtype.newbyteorder("=")
    return np.array(x, dtype=dtype, copy=True if not x.flags["ALIGNED"] else None)


def _fit(x: np.ndarray, n: int, axis: int) -> np.ndarray:
    """``x`` cut or zero-padded to ``n`` points along ``axis`` (scipy.fft's ``_fix_shape_1d``)."""
    if n < 1:
        raise ValueError(f"invalid number of data points ({n}) specified")
    index = [slice(None)] * x.ndim
    if x.shape[axis] >= n:
        index[axis] = slice(0, n)
        return x[tuple(index)]
    index[axis] = slice(0, x.shape[axis])
    shape = list(x.shape)
    shape[axis] = n
    out = np.zeros(shape, x.dtype)
    out[tuple(index)] = x[tuple(index)]
    return out


def rfft(
    x, n: int | None = None, axis: int = -1, overwrite_x: bool = False, *, out: np.ndarray | None = None
) -> np.ndarray:
    """``scipy.fft.rfft(x, n, axis)`` (backward norm): the one-sided spectrum along ``axis``.

    Parameters
    ----------
    x : array_like, real
        Input; float32 gives complex64.
    n : int, optional
        Points of the transform (``x`` is cut or zero-padded along ``axis``); default its length.
    axis : int
        Axis of the transform.
    overwrite_x : bool
        Accepted for ``scipy.fft`` compatibility; unused there too.
    out : np.ndarray, optional
        Where to write the result (not a ``scipy.fft`` parameter): C-contiguous, of the result's
        shape and dtype (complex64 for float32 ``x``).  The values are those of a new array.

    Returns
    -------
    np.ndarray, complex, shape of ``x`` with ``n // 2 + 1`` along ``axis``
        ``out`` when given.
    """
    del overwrite_x
    tmp = _as_float(x)
    if tmp.dtype.kind == "c":
        raise TypeError("x must be a real sequence")
    if n is not None:
        tmp = _fit(tmp, n, axis)
    elif tmp.shape[axis] < 1:
        raise ValueError(f"invalid number of data points ({tmp.shape[axis]}) specified")
    return _pocketfft.r2c(tmp, (axis,), True, 0, out, _WORKERS)


def irfft(
    x, n: int | None = None, axis: int = -1, overwrite_x: bool = False, *, out: np.ndarray | None = None
) -> np.ndarray:
    """``scipy.fft.irfft(x, n, axis)`` (backward norm): the real signal of a one-sided spectrum.

    Parameters
    ----------
    x : array_like, complex
        One-sided spectrum; complex64 gives float32.
    n : int, optional
        Length of the output along ``axis``; default ``2 * (m - 1)`` for ``m`` input points.
    axis : int
        Axis of the transform.
    overwrite_x : bool
        Accepted for ``scipy.fft`` compatibility; unused there too.
    out : np.ndarray, optional
        Where to write the result (not a ``scipy.fft`` parameter): C-contiguous, of the result's
        shape and dtype (float32 for complex64 ``x``).  The values are those of a new array.

    Returns
    -------
    np.ndarray, real, shape of ``x`` with ``n`` along ``axis``
        ``out`` when given.
    """
    del overwrite_x
    tmp = _as_float(x)
    if tmp.dtype.kind != "c":
        tmp = tmp + 0.0j
    if n is None:
        n = (tmp.shape[axis] - 1) * 2
        if n < 1:
            raise ValueError(f"Invalid number of data points ({n}) specified")
    else:
        tmp = _fit(tmp, n // 2 + 1, axis)
    return _pocketfft.c2r(tmp, (axis,), n, False, 2, out, _WORKERS)


@functools.lru_cache
def next_fast_len(target: int, real: bool = False) -> int:
    """``scipy.fft.next_fast_len``: the smallest size >= ``target`` that pocketfft transforms fast."""
    return _pocketfft.good_size(target, real)
