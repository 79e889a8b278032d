"""Spectral-gating kernels: gating with mask smoothing, noise tracking, overlap-add.

Wrapped, validated and documented by :mod:`prep.denoise`; these functions
trust their inputs (C-contiguous float32 / complex64 arrays of consistent
shapes) and validate nothing.  NumPy twins live in ``tests/twins_denoise.py``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from . import _target  # noqa: F401 - numba's CPU target without all of scipy.linalg (see there)

__all__ = ["gate_frames", "overlap_add", "track_noise"]

# Fast-math without the no-NaN/no-Inf assumptions (inputs are not checked for them here);
# error_model="numpy" drops the ZeroDivisionError branch that stops loops from vectorising.
_FAST = {"nsz", "contract"}  # deterministic: no "reassoc"/"afn"/"arcp" (JIT-fresh and cache-loaded code must agree)


@njit(cache=True, nogil=True, fastmath=_FAST, error_model="numpy")
def _raw_gains(row, inv, alpha, threshold, state, gamma, out):  # pragma: no cover - compiled
    """Decision-directed soft gate of one frame; returns the frame's power.

    row (F,) complex64; inv (F,) float32 inverse noise power; state (F,)
    float32 in/out; gamma (F,) float32 scratch; out (F,) float32 raw gains.
    """
    n_bins = row.size
    one = np.float32(1.0)
    zero = np.float32(0.0)
    a = np.float32(alpha)
    b = one - a
    thr = np.float32(threshold)
    tiny = np.float32(1e-30)
    big = np.float32(1e20)
    power = zero
    for f in range(n_bins):
        z = row[f]
        p = z.real * z.real + z.imag * z.imag
        power += p
        gamma[f] = min(p * inv[f], big)  # capped at 200 dB: no overflow when a bin has no noise
    for f in range(n_bins):
        g_post = gamma[f]
        ml = max(g_post - one, zero)
        xi = a * state[f] + b * ml
        g = xi / (xi + thr)
        out[f] = g
        # Flush tiny values to zero: denormals would slow every later frame down.
        s = g * g * g_post
        state[f] = s if s > tiny else zero  # select, not a branch
    return power


@njit(cache=True, nogil=True, fastmath=_FAST, error_model="numpy")
def _inverse(noise_row, inv):  # pragma: no cover - compiled
    one = np.float32(1.0)
    for f in range(inv.size):
        nz = noise_row[f]
        inv[f] = one / nz if nz > np.float32(1e-30) else np.float32(1e30)


@njit(cache=True, nogil=True, fastmath=_FAST, error_model="numpy")
def gate_frames(
    spec, noise, alpha, threshold, half_time, half_freq, floor, strength, state, gains, power_in, power_out
):  # pragma: no cover - compiled
    """Gate an STFT in place.

    For each frame, in order: the raw gain ``xi / (xi + threshold)`` with the
    decision-directed a-priori SNR ``xi = alpha * state + (1 - alpha) *
    max(gamma - 1, 0)``, ``gamma = min(|spec|**2 / noise, 1e20)`` (a noise power
    <= 1e-30 counts as 1e-30), ``state = gain**2 * gamma`` of the previous frame
    (flushed to 0 below 1e-30); then a triangular smoothing over
    ``2 * half_time + 1`` frames and ``2 * half_freq + 1`` bins (weights
    ``half + 1 - |k|``, renormalised at the edges), the floor, and
    ``1 - strength * (1 - gain)``.  The result multiplies ``spec``.

    spec (T, F) complex64, modified; noise (1 or T, F) float32 noise power
    (one row: stationary); state (F,) float32 in/out (zeros to start);
    gains (T, F) float32 out, the final gains, or (0, F) to skip writing
    them; power_in / power_out (T,) float32 out: per-frame sums of
    ``|spec|**2`` before / after.
    """
    n_frames, n_bins = spec.shape
    one = np.float32(1.0)
    zero = np.float32(0.0)
    fl = np.float32(floor)
    st = np.float32(strength)
    keep = gains.shape[0] == n_frames
    per_frame = noise.shape[0] > 1
    n_ring = 2 * half_time + 1
    ring = np.empty((n_ring, n_bins), np.float32)  # raw gains of frames t - half_time .. t + half_time
    inv = np.empty(n_bins, np.float32)
    scratch = np.empty(n_bins, np.float32)
    tmp = np.empty(n_bins, np.float32)
    acc = np.empty(n_bins, np.float32)
    # Triangular weights and the per-bin normalisation of the frequency smoothing.
    n_fw = 2 * half_freq + 1
    fw = np.empty(n_fw, np.float32)
    for k in range(n_fw):
        fw[k] = half_freq + 1 - abs(k - half_freq)
    fnorm = np.zeros(n_bins, np.float32)
    for k in range(n_fw):
        lo = max(0, half_freq - k)
        hi = min(n_bins, n_bins + half_freq - k)
        for f in range(lo, hi):
            fnorm[f] += fw[k]
    for f in range(n_bins):
        fnorm[f] = one / fnorm[f]
    if not per_frame:
        _inverse(noise[0], inv)
    done = 0
    for t in range(n_frames):
        last = min(n_frames - 1, t + half_time)
        while done <= last:
            if per_frame:
                _inverse(noise[done], inv)
            power_in[done] = _raw_gains(spec[done], inv, alpha, threshold, state, scratch, ring[done % n_ring])
            done += 1
        # Time smoothing of the raw gains.
        for f in range(n_bins):
            tmp[f] = zero
        wsum = zero
        for k in range(-half_time, half_time + 1):
            u = t + k
            if u < 0 or u >= n_frames:
                continue
            w = np.float32(half_time + 1 - abs(k))
            wsum += w
            r = ring[u % n_ring]
            for f in range(n_bins):
                tmp[f] += w * r[f]
        # Frequency smoothing (bins outside the spectrum are skipped, fnorm renormalises).
        for f in range(n_bins):
            acc[f] = zero
        for k in range(n_fw):
            w = fw[k]
            shift = k - half_freq
            lo = max(0, -shift)
            hi = min(n_bins, n_bins - shift)
            for f in range(lo, hi):
                acc[f] += w * tmp[f + shift]
        scale = one / wsum
        row = spec[t]
        pout = zero
        for f in range(n_bins):
            g = acc[f] * scale * fnorm[f]
            g = max(g, fl)
            g = one - st * (one - g)
            acc[f] = g
            z = row[f]
            re = z.real * g
            im = z.imag * g
            row[f] = complex(re, im)
            pout += re * re + im * im
        power_out[t] = pout
        if keep:
            for f in range(n_bins):
                gains[t, f] = acc[f]


@njit(cache=True, nogil=True, fastmath=_FAST, error_model="numpy")
def track_noise(spec, is_noise, init, alpha, out):  # pragma: no cover - compiled
    """Noise power per frame: forward and backward recursive means over noise frames, averaged.

    spec (T, F) complex64; is_noise (T,) bool; init (F,) float32 starting
    value of both recursions; out (T, F) float32.
    """
    n_frames, n_bins = spec.shape
    a = np.float32(alpha)
    b = np.float32(1.0) - a
    half = np.float32(0.5)
    cur = np.empty(n_bins, np.float32)
    for direction in range(2):
        for f in range(n_bins):
            cur[f] = init[f]
        for i in range(n_frames):
            t = i if direction == 0 else n_frames - 1 - i
            if is_noise[t]:
                for f in range(n_bins):
                    z = spec[t, f]
                    cur[f] = a * cur[f] + b * (z.real * z.real + z.imag * z.imag)
            if direction == 0:
                for f in range(n_bins):
                    out[t, f] = half * cur[f]
            else:
                for f in range(n_bins):
                    out[t, f] += half * cur[f]


@njit(cache=True, nogil=True, fastmath=_FAST, error_model="numpy")
def overlap_add(frames, window, hop, out):  # pragma: no cover - compiled
    """``out[t * hop + i] += frames[t, i] * window[i]``.

    frames (T, n) float32; window (n,) float32; out ((T - 1) * hop + n,)
    float32, accumulated in place.
    """
    n_frames, n = frames.shape
    for t in range(n_frames):
        base = t * hop
        for i in range(n):
            out[base + i] += frames[t, i] * window[i]
