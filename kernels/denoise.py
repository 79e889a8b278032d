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
def _raw_gains(row, inv, alpha, threshold, state, out):  # pragma: no cover - compiled
    """Decision-directed soft gate of one frame.

    row (F,) complex64; inv (F,) float32 inverse noise power; state (F,)
    float32 in/out; out (F,) float32 raw gains.
    """
    one = np.float32(1.0)
    zero = np.float32(0.0)
    a = np.float32(alpha)
    b = one - a
    thr = np.float32(threshold)
    tiny = np.float32(1e-30)
    big = np.float32(1e20)
    for f in range(row.size):
        z = row[f]
        p = z.real * z.real + z.imag * z.imag
        g_post = min(p * inv[f], big)  # capped at 200 dB: no overflow when a bin has no noise
        ml = max(g_post - one, zero)
        xi = a * state[f] + b * ml
        g = xi / (xi + thr)
        out[f] = g
        # Flush tiny values to zero: denormals would slow every later frame down.
        s = g * g * g_post
        state[f] = s if s > tiny else zero  # select, not a branch


@njit(cache=True, nogil=True, fastmath=_FAST, error_model="numpy")
def _row_powers(spec, t0, t1, out):  # pragma: no cover - compiled
    """``out[t] = sum_f |spec[t, f]|**2`` for ``t0 <= t < t1``, each summed in float32 in bin order.

    Eight (then four) rows at a time: independent sums in one loop run in about the time of
    one (a sum in order is bound by the latency of its additions).
    """
    n_bins = spec.shape[1]
    zero = np.float32(0.0)
    t = t0
    while t + 8 <= t1:
        r0, r1, r2, r3 = spec[t], spec[t + 1], spec[t + 2], spec[t + 3]
        r4, r5, r6, r7 = spec[t + 4], spec[t + 5], spec[t + 6], spec[t + 7]
        s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = zero
        for f in range(n_bins):
            z0, z1, z2, z3 = r0[f], r1[f], r2[f], r3[f]
            z4, z5, z6, z7 = r4[f], r5[f], r6[f], r7[f]
            s0 += z0.real * z0.real + z0.imag * z0.imag
            s1 += z1.real * z1.real + z1.imag * z1.imag
            s2 += z2.real * z2.real + z2.imag * z2.imag
            s3 += z3.real * z3.real + z3.imag * z3.imag
            s4 += z4.real * z4.real + z4.imag * z4.imag
            s5 += z5.real * z5.real + z5.imag * z5.imag
            s6 += z6.real * z6.real + z6.imag * z6.imag
            s7 += z7.real * z7.real + z7.imag * z7.imag
        out[t], out[t + 1], out[t + 2], out[t + 3] = s0, s1, s2, s3
        out[t + 4], out[t + 5], out[t + 6], out[t + 7] = s4, s5, s6, s7
        t += 8
    while t + 4 <= t1:
        r0, r1, r2, r3 = spec[t], spec[t + 1], spec[t + 2], spec[t + 3]
        s0 = s1 = s2 = s3 = zero
        for f in range(n_bins):
            z0, z1, z2, z3 = r0[f], r1[f], r2[f], r3[f]
            s0 += z0.real * z0.real + z0.imag * z0.imag
            s1 += z1.real * z1.real + z1.imag * z1.imag
            s2 += z2.real * z2.real + z2.imag * z2.imag
            s3 += z3.real * z3.real + z3.imag * z3.imag
        out[t], out[t + 1], out[t + 2], out[t + 3] = s0, s1, s2, s3
        t += 4
    while t < t1:
        r0 = spec[t]
        s0 = zero
        for f in range(n_bins):
            z0 = r0[f]
            s0 += z0.real * z0.real + z0.imag * z0.imag
        out[t] = s0
        t += 1


@njit(cache=True, nogil=True, fastmath=_FAST, error_model="numpy")
def _inverse(noise_row, inv):  # pragma: no cover - compiled
    one = np.float32(1.0)
    for f in range(inv.size):
        nz = noise_row[f]
        inv[f] = one / nz if nz > np.float32(1e-30) else np.float32(1e30)


_GROUP = 8  # frames whose input / output powers are summed together


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
    ``|spec|**2`` before / after, each in float32 in bin order.
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
            if done % _GROUP == 0:  # input powers of the next frames, before any of them is gated
                _row_powers(spec, done, min(n_frames, done + _GROUP), power_in)
            if per_frame:
                _inverse(noise[done], inv)
            _raw_gains(spec[done], inv, alpha, threshold, state, ring[done % n_ring])
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
            src = tmp[lo + shift : hi + shift]  # views indexed from 0: the loop vectorises
            dst = acc[lo:hi]
            for f in range(hi - lo):
                dst[f] += w * src[f]
        scale = one / wsum
        row = spec[t]
        for f in range(n_bins):
            g = acc[f] * scale * fnorm[f]
            g = max(g, fl)
            g = one - st * (one - g)
            acc[f] = g
            z = row[f]
            row[f] = complex(z.real * g, z.imag * g)
        if (t + 1) % _GROUP == 0 or t == n_frames - 1:  # output powers of the frames gated since
            _row_powers(spec, t - t % _GROUP, t + 1, power_out)
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
        row = frames[t]
        dst = out[t * hop : t * hop + n]  # row views indexed from 0: the loop vectorises
        for i in range(n):
            dst[i] += row[i] * window[i]
