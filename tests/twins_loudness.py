"""NumPy/SciPy reference twins of the loudness kernels (tests and benchmarks only).

Each twin computes from the definitions, as directly as possible and
without the kernels' tricks (no sub-block sums, no streaming, no polyphase
filter): whole-signal ``sosfilt``, every gating block summed from the
filtered samples, ``upfirdn`` for the oversampled signal, a Python loop for
the limiter release.
"""

from __future__ import annotations

import numpy as np
from scipy import signal

from prep.dsp.loudness import kweighting_sos

ABS_GATE_LUFS = -70.0


def _frames(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x[None, :] if x.ndim == 1 else x


def kweighted(x: np.ndarray, sample_rate: int) -> np.ndarray:
    """K-weighted signal, float64, shape (channels, samples)."""
    x = _frames(x)
    if x.shape[1] == 0:  # sosfilt cannot take an empty axis
        return x.copy()
    return signal.sosfilt(kweighting_sos(sample_rate=sample_rate), x, axis=-1)


def hop(sample_rate: int) -> int:
    """Frames per 100 ms as libebur128 rounds them."""
    return (sample_rate + 5) // 10


def subblock_sums(x: np.ndarray, sample_rate: int, weights: np.ndarray) -> np.ndarray:
    """Twin of ``kweighted_power_sums``: weighted K-weighted energy of each complete 100 ms sub-block."""
    y = kweighted(x, sample_rate)
    h = hop(sample_rate)
    m = y.shape[1] // h
    power = np.einsum("c,cn->n", np.asarray(weights, dtype=np.float64), y * y)
    return power[: m * h].reshape(m, h).sum(axis=1)


def weighted_block_sums(x: np.ndarray, sos: np.ndarray, hop: int) -> np.ndarray:
    """Twin of one half of ``two_weighted_power_sums``: mono ``x`` through ``sos`` (from rest), squared,
    summed over consecutive blocks of ``hop`` samples, the partial last block's sum last (0 without one)."""
    x = np.asarray(x, dtype=np.float64)
    y = signal.sosfilt(sos, x) if x.size else x
    m = y.size // hop
    return np.append((y[: m * hop] ** 2).reshape(m, hop).sum(axis=1), (y[m * hop :] ** 2).sum())


def block_powers(x: np.ndarray, sample_rate: int, weights: np.ndarray, block_s: float, step_s: float) -> np.ndarray:
    """Mean weighted power of each block of ``block_s`` seconds every ``step_s``, each summed from scratch."""
    y = kweighted(x, sample_rate)
    h = hop(sample_rate)
    size, step = round(block_s * 10) * h, round(step_s * 10) * h
    power = np.einsum("c,cn->n", np.asarray(weights, dtype=np.float64), y * y)
    starts = range(0, power.size - size + 1, step)
    return np.array([power[s : s + size].sum() / size for s in starts])


def lufs(power: np.ndarray | float) -> np.ndarray | float:
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(power) - 0.691


def integrated(x: np.ndarray, sample_rate: int, weights: np.ndarray) -> float:
    """BS.1770-4 gated loudness from the definition (400 ms blocks, 75 % overlap, -70 LUFS / -10 LU gates)."""
    z = block_powers(x, sample_rate, weights, 0.4, 0.1)
    z = z[lufs(z) >= ABS_GATE_LUFS]
    if z.size == 0:
        return -np.inf
    z = z[lufs(z) >= lufs(z.mean()) - 10.0]
    return float(lufs(z.mean()))


def loudness_range(x: np.ndarray, sample_rate: int, weights: np.ndarray) -> float:
    """EBU Tech 3342 loudness range: 3 s blocks every 1 s, -70 LUFS / -20 LU gates, 10th-95th percentile."""
    s = block_powers(x, sample_rate, weights, 3.0, 1.0)
    s = s[lufs(s) >= ABS_GATE_LUFS]
    if s.size == 0:
        return 0.0
    s = np.sort(s[lufs(s) >= lufs(s.mean()) - 20.0])
    if s.size == 0:
        return 0.0
    rank = lambda p: int(np.floor((s.size - 1) * p + 0.5))  # noqa: E731 - nearest rank, libebur128 rounding
    return float(lufs(s[rank(0.95)]) - lufs(s[rank(0.10)]))


def interpolation_filter(taps: int = 49, factor: int = 4) -> np.ndarray:
    """Hann-windowed sinc low-pass at the input Nyquist frequency, for ``factor``x interpolation."""
    m = np.arange(taps) - (taps - 1) / 2.0
    return np.sinc(m / factor) * np.hanning(taps)


def oversampled(x: np.ndarray, factor: int = 4) -> np.ndarray:
    """Full-length ``factor``x interpolation (zero-stuff + filter), shape (channels, factor * samples + taps - 1)."""
    return signal.upfirdn(interpolation_filter(factor=factor), _frames(x), up=factor, axis=-1)


def true_peak_linear(x: np.ndarray) -> float:
    """Largest magnitude of the samples and of the 4x-oversampled signal (including its tail)."""
    x = _frames(x)
    if x.size == 0:
        return 0.0
    return float(max(np.abs(x).max(), np.abs(oversampled(x)).max()))


def peak_envelope(x: np.ndarray) -> np.ndarray:
    """Per sample k: the largest of |x[k]| and the interpolated values strictly between k - 1 and k + 1."""
    x = _frames(x)
    n = x.shape[1]
    up = np.abs(oversampled(x)).max(axis=0)  # up[4 k + 24] is sample k (filter delay 24)
    env = np.abs(x).max(axis=0)
    for k in range(n):
        lo, hi = 4 * (k - 1) + 24 + 1, 4 * (k + 1) + 24  # exclusive of the neighbouring samples
        env[k] = max(env[k], up[max(lo, 0) : hi].max())
    return env


def gain_release(gain: np.ndarray, recover: float) -> np.ndarray:
    """Twin of ``gain_release``: running min with exponential recovery toward 1."""
    out = np.empty(len(gain))
    r = 1.0
    for i, g in enumerate(gain):
        r = min(g, 1.0 - (1.0 - r) * recover)
        out[i] = r
    return out
