"""NumPy/SciPy twins of the denoiser kernels (``prep.kernels.denoise``), in float64.

Used only by the tests (and free for benchmarks): each twin implements the
documented definition directly -- explicit loops over frames, SciPy
convolutions for the smoothing, ``np.fft`` for the STFT -- so it shares no
code with the kernels it checks.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import convolve1d
from scipy.signal import get_window


def _triangle(half: int) -> np.ndarray:
    return np.array([half + 1 - abs(k) for k in range(-half, half + 1)], dtype=np.float64)


def _smooth(values: np.ndarray, half: int, axis: int) -> np.ndarray:
    """Triangular smoothing along ``axis``, renormalised where the kernel leaves the array."""
    if half == 0:
        return values
    w = _triangle(half)
    num = convolve1d(values, w, axis=axis, mode="constant", cval=0.0)
    den = convolve1d(np.ones(values.shape[axis]), w, mode="constant", cval=0.0)
    shape = [1, 1]
    shape[axis] = -1
    return num / den.reshape(shape)


def gate_frames_twin(spec, noise, alpha, threshold, half_time, half_freq, floor, strength):
    """Twin of ``gate_frames``: returns (gated spec, final gains, power_in, power_out)."""
    spec = np.asarray(spec, dtype=np.complex128)
    noise = np.asarray(noise, dtype=np.float64)
    power = spec.real**2 + spec.imag**2
    inv = np.where(noise > 1e-30, 1.0 / np.maximum(noise, 1e-300), 1e30)
    gamma = np.minimum(power * inv, 1e20)  # (1, F) broadcasts over frames
    raw = np.zeros_like(power)
    state = np.zeros(power.shape[1])
    for t in range(power.shape[0]):
        xi = alpha * state + (1 - alpha) * np.maximum(gamma[t] - 1.0, 0.0)
        g = xi / (xi + threshold)
        raw[t] = g
        s = g * g * gamma[t]
        state = np.where(s > 1e-30, s, 0.0)
    gains = _smooth(_smooth(raw, half_time, axis=0), half_freq, axis=1)
    gains = 1.0 - strength * (1.0 - np.maximum(gains, floor))
    out = spec * gains
    return out, gains, power.sum(axis=1), (out.real**2 + out.imag**2).sum(axis=1)


def track_noise_twin(spec, is_noise, init, alpha):
    """Twin of ``track_noise``: mean of forward and backward recursive averages over noise frames."""
    power = np.abs(np.asarray(spec, dtype=np.complex128)) ** 2
    n_frames = power.shape[0]
    fwd = np.empty_like(power)
    bwd = np.empty_like(power)
    cur = np.asarray(init, dtype=np.float64).copy()
    for t in range(n_frames):
        if is_noise[t]:
            cur = alpha * cur + (1 - alpha) * power[t]
        fwd[t] = cur
    cur = np.asarray(init, dtype=np.float64).copy()
    for t in range(n_frames - 1, -1, -1):
        if is_noise[t]:
            cur = alpha * cur + (1 - alpha) * power[t]
        bwd[t] = cur
    return 0.5 * (fwd + bwd)


def overlap_add_twin(frames, window, hop):
    """Twin of ``overlap_add`` into a fresh buffer of ``(T - 1) * hop + n`` samples."""
    frames = np.asarray(frames, dtype=np.float64)
    n_frames, n = frames.shape
    out = np.zeros((n_frames - 1) * hop + n)
    for t in range(n_frames):
        out[t * hop : t * hop + n] += frames[t] * window
    return out


def sqrt_hann(n: int) -> np.ndarray:
    """Square-root periodic Hann window (SciPy's ``hann`` with ``fftbins=True``)."""
    return np.sqrt(get_window("hann", n, fftbins=True))


def stft_twin(x, n, hop):
    """Frames centred at ``t * hop`` (zero outside ``x``), sqrt-Hann windowed, ``np.fft.rfft``; complex128."""
    x = np.asarray(x, dtype=np.float64)
    n_frames = (x.size - 1 + n // 2) // hop + 1
    padded = np.concatenate([np.zeros(n // 2), x, np.zeros(n + n_frames * hop)])
    frames = np.stack([padded[t * hop : t * hop + n] for t in range(n_frames)])
    return np.fft.rfft(frames * sqrt_hann(n), axis=1)


def noise_psd_twin(x, n, hop, noise_frames):
    """Mean power spectrum of the STFT frames flagged in ``noise_frames``."""
    spec = stft_twin(x, n, hop)
    return np.mean(np.abs(spec[np.asarray(noise_frames, bool)]) ** 2, axis=0)


def spectral_gate_twin(x, *, n, hop, psd, noise_frames, mode, alpha, threshold, half_time, half_freq, floor,
                       strength, track_alpha):
    """Whole-signal twin of ``prep.stages.denoise.spectral_gate``: STFT, gate, weighted overlap-add; float64."""
    x = np.asarray(x, dtype=np.float64)
    spec = stft_twin(x, n, hop)
    if mode == "nonstationary":
        noise = track_noise_twin(spec, noise_frames, psd, track_alpha)
    else:
        noise = np.asarray(psd, dtype=np.float64)[None, :]
    gated = gate_frames_twin(spec, noise, alpha, threshold, half_time, half_freq, floor, strength)[0]
    w = sqrt_hann(n)
    frames = np.fft.irfft(gated, n, axis=1)
    num = overlap_add_twin(frames, w, hop)
    den = overlap_add_twin(np.tile(w, (frames.shape[0], 1)), w, hop)
    return (num / np.maximum(den, 1e-12))[n // 2 : n // 2 + x.size]
