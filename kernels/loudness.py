"""Numba kernels of the BS.1770-4 loudness meter and the true-peak limiter.

The wrappers, validation and documentation of units live in
:mod:`prep.loudness`; these functions trust their arguments.  All of them
work in place on caller-allocated arrays so the meter can run over a long
recording chunk by chunk with bounded memory.

``fastmath={"contract"}`` only lets LLVM fuse ``a * b + c`` into one FMA
(shorter recursive dependency chains in the IIR filters); it does not allow
reassociation, so results stay deterministic on a given machine.
"""

from __future__ import annotations

import numpy as np
from numba import njit, uintp

from . import _target  # noqa: F401 - numba's CPU target without all of scipy.linalg (see there)

__all__ = [
    "TP_PHASES",
    "TP_TAPS",
    "gain_release",
    "interpolated_peak_frames",
    "kweighted_power_sums",
    "two_weighted_power_sums",
]

#: Interpolated phases per input frame of the 4x true-peak filter (phase 0 is the sample itself).
TP_PHASES = 3
#: Taps per phase of the 4x, 49-tap true-peak interpolation filter.
TP_TAPS = 12

# Filter memory below _TINY is flushed to zero every _FLUSH_EVERY frames: from 1e-20 even the
# fastest-decaying pole (|p| = 0.43 at 8 kHz) stays far above the subnormal range (2.2e-308)
# for 256 frames, and 1e-20 is over 300 dB below any signal that can pass the -70 LUFS gate.
_TINY = 1e-20
_FLUSH_EVERY = 256


@njit(cache=True, nogil=True, fastmath={"contract"})
def kweighted_power_sums(x, sos, state, weights, hop, carry, out):  # pragma: no cover - compiled
    """K-weight, square, channel-weight and sum ``x`` into consecutive sub-blocks of ``hop`` frames.

    x : float32 (channels, n).  sos : float64 (2, 6) biquads ``b0 b1 b2 1 a1 a2``
    (direct form II).  state : float64 (channels, 4) filter memory, updated.
    weights : float64 (channels,); a zero weight skips the channel.
    hop : frames per sub-block.  carry : float64 (2,) = (weighted power of the
    open sub-block, frames in it), updated.  out : float64, room for
    ``(carry[1] + n) // hop`` completed sub-block sums.  Returns that count.
    """
    n_ch = x.shape[0]
    n = x.shape[1]
    open_frames = np.int64(carry[1])
    n_done = (open_frames + n) // hop
    for k in range(n_done):
        out[k] = 0.0
    b10 = sos[0, 0]
    b11 = sos[0, 1]
    b12 = sos[0, 2]
    a11 = sos[0, 4]
    a12 = sos[0, 5]
    b20 = sos[1, 0]
    b21 = sos[1, 1]
    b22 = sos[1, 2]
    a21 = sos[1, 4]
    a22 = sos[1, 5]
    tail = 0.0
    for c in range(n_ch):
        w = weights[c]
        if w == 0.0:
            continue
        u1 = state[c, 0]
        u2 = state[c, 1]
        v1 = state[c, 2]
        v2 = state[c, 3]
        i = 0
        k = 0
        need = hop - open_frames
        while i < n:
            stop = min(n, i + need)
            acc = 0.0
            for j0 in range(i, stop, _FLUSH_EVERY):
                for j in range(j0, min(stop, j0 + _FLUSH_EVERY)):
                    u0 = (np.float64(x[c, j]) - a12 * u2) - a11 * u1
                    y1 = b10 * u0 + b11 * u1 + b12 * u2
                    u2 = u1
                    u1 = u0
                    v0 = (y1 - a22 * v2) - a21 * v1
                    y2 = b20 * v0 + b21 * v1 + b22 * v2
                    v2 = v1
                    v1 = v0
                    acc += y2 * y2
                # After digital silence the filter memory decays into subnormal numbers, which
                # are ~100x slower; flush it to zero first (libebur128 sets the CPU's FTZ flag).
                if abs(u1) < _TINY:
                    u1 = 0.0
                if abs(u2) < _TINY:
                    u2 = 0.0
                if abs(v1) < _TINY:
                    v1 = 0.0
                if abs(v2) < _TINY:
                    v2 = 0.0
            if stop - i == need:
                out[k] += w * acc
                k += 1
            else:
                tail += w * acc
            i = stop
            need = hop
        state[c, 0] = u1
        state[c, 1] = u2
        state[c, 2] = v1
        state[c, 3] = v2
    if n_done > 0:
        out[0] += carry[0]
        carry[0] = tail
    else:
        carry[0] += tail
    carry[1] = np.float64((open_frames + n) % hop)
    return n_done


@njit(cache=True, nogil=True, fastmath={"contract"})
def two_weighted_power_sums(x, sos_a, hop_a, out_a, sos_b, hop_b, out_b):  # pragma: no cover - compiled
    """Two :func:`kweighted_power_sums` of one mono signal in one pass, each from a zero state.

    x : float32 (n,).  sos_a, sos_b : float64 (2, 6) biquads.  hop_a, hop_b : frames per sum.
    out_a, out_b : float64, room for ``n // hop_a + 1`` and ``n // hop_b + 1`` sums: the
    complete blocks' sums, then the partial last block's (0 when there is none).  ``out_a[k]``
    (for the complete blocks) equals ``out[k]`` of
    ``kweighted_power_sums(x[None], sos_a, zeros((1, 4)), ones(1), hop_a, zeros(2), out)``, bit
    for bit: the same operations in the same order, the filter memory flushed at the same
    frames (every ``_FLUSH_EVERY`` frames of a block and at its end).  The two filter cascades
    are independent chains, so one loop runs both in about the time of one (the recursions
    are latency-bound).
    """
    n = x.shape[0]
    b10 = sos_a[0, 0]
    b11 = sos_a[0, 1]
    b12 = sos_a[0, 2]
    a11 = sos_a[0, 4]
    a12 = sos_a[0, 5]
    b20 = sos_a[1, 0]
    b21 = sos_a[1, 1]
    b22 = sos_a[1, 2]
    a21 = sos_a[1, 4]
    a22 = sos_a[1, 5]
    c10 = sos_b[0, 0]
    c11 = sos_b[0, 1]
    c12 = sos_b[0, 2]
    d11 = sos_b[0, 4]
    d12 = sos_b[0, 5]
    c20 = sos_b[1, 0]
    c21 = sos_b[1, 1]
    c22 = sos_b[1, 2]
    d21 = sos_b[1, 4]
    d22 = sos_b[1, 5]
    u1 = 0.0
    u2 = 0.0
    v1 = 0.0
    v2 = 0.0
    p1 = 0.0
    p2 = 0.0
    q1 = 0.0
    q2 = 0.0
    acc_a = 0.0
    acc_b = 0.0
    pos_a = 0
    pos_b = 0
    k_a = 0
    k_b = 0
    j = 0
    while j < n:
        # run both cascades up to the next frame where either flushes its memory or ends a block
        to_a = min(_FLUSH_EVERY - pos_a % _FLUSH_EVERY, hop_a - pos_a)
        to_b = min(_FLUSH_EVERY - pos_b % _FLUSH_EVERY, hop_b - pos_b)
        step = min(to_a, to_b, n - j)
        for i in range(j, j + step):
            xj = np.float64(x[i])
            u0 = (xj - a12 * u2) - a11 * u1
            y1 = b10 * u0 + b11 * u1 + b12 * u2
            u2 = u1
            u1 = u0
            v0 = (y1 - a22 * v2) - a21 * v1
            y2 = b20 * v0 + b21 * v1 + b22 * v2
            v2 = v1
            v1 = v0
            acc_a += y2 * y2
            p0 = (xj - d12 * p2) - d11 * p1
            z1 = c10 * p0 + c11 * p1 + c12 * p2
            p2 = p1
            p1 = p0
            q0 = (z1 - d22 * q2) - d21 * q1
            z2 = c20 * q0 + c21 * q1 + c22 * q2
            q2 = q1
            q1 = q0
            acc_b += z2 * z2
        j += step
        pos_a += step
        pos_b += step
        if step == to_a:
            if abs(u1) < _TINY:
                u1 = 0.0
            if abs(u2) < _TINY:
                u2 = 0.0
            if abs(v1) < _TINY:
                v1 = 0.0
            if abs(v2) < _TINY:
                v2 = 0.0
            if pos_a == hop_a:
                out_a[k_a] = 0.0 + acc_a
                k_a += 1
                acc_a = 0.0
                pos_a = 0
        if step == to_b:
            if abs(p1) < _TINY:
                p1 = 0.0
            if abs(p2) < _TINY:
                p2 = 0.0
            if abs(q1) < _TINY:
                q1 = 0.0
            if abs(q2) < _TINY:
                q2 = 0.0
            if pos_b == hop_b:
                out_b[k_b] = 0.0 + acc_b
                k_b += 1
                acc_b = 0.0
                pos_b = 0
    out_a[k_a] = acc_a
    out_b[k_b] = acc_b


@njit(cache=True, nogil=True, fastmath={"contract"})
def interpolated_peak_frames(x, start, stop, phases, hist, env):  # pragma: no cover - compiled
    """Largest magnitude of the 4x-interpolated values, per input frame, over all channels.

    x : float32 (channels, n); frames ``start:stop`` are processed.
    phases : float32 (TP_PHASES, TP_TAPS) polyphase interpolation filters;
    phase ``p`` of frame ``i`` is ``sum_t phases[p, t] * x[i - t]``.
    hist : float32 (channels, TP_TAPS - 1), the frames before ``start``
    (zeros at the beginning of a stream), updated to the last ones processed.
    env : float32 (stop - start,), raised in place to the per-frame maximum;
    the caller zero-fills it.  The sample itself (phase 0) is not included.
    """
    n_ch = x.shape[0]
    n = stop - start
    h = TP_TAPS - 1
    n_head = min(n, h)
    buf = np.empty(h + n_head, dtype=np.float32)
    for c in range(n_ch):
        # Head: frames whose filter reaches into the history.
        for t in range(h):
            buf[t] = hist[c, t]
        for t in range(n_head):
            buf[h + t] = x[c, start + t]
        for i in range(n_head):
            m = env[i]
            for p in range(TP_PHASES):
                acc = np.float32(0.0)
                for t in range(TP_TAPS):
                    acc += phases[p, t] * buf[h + i - t]
                m = max(m, abs(acc))
            env[i] = m
        # Bulk: the filter lies entirely inside x.  Unsigned indices let LLVM
        # drop the negative-index wraparound and vectorise over frames.
        xc = x[c]
        for i in range(n_head, n):
            acc0 = np.float32(0.0)
            acc1 = np.float32(0.0)
            acc2 = np.float32(0.0)
            for t in range(TP_TAPS):
                v = xc[uintp(start + i - t)]
                acc0 += phases[0, t] * v
                acc1 += phases[1, t] * v
                acc2 += phases[2, t] * v
            a0 = abs(acc0)
            a1 = abs(acc1)
            a2 = abs(acc2)
            m = a0 if a0 > a1 else a1
            m = m if m > a2 else a2
            e = env[uintp(i)]
            env[uintp(i)] = e if e > m else m
        # History for the next call: the last h frames of (hist ++ x[start:stop]).
        if n >= h:
            for t in range(h):
                hist[c, t] = x[c, stop - h + t]
        else:
            for t in range(h - n):
                hist[c, t] = hist[c, t + n]
            for t in range(n):
                hist[c, h - n + t] = x[c, start + t]


@njit(cache=True, nogil=True)
def gain_release(gain, recover, out):  # pragma: no cover - compiled
    """Peak-hold gain with exponential release toward 1.

    ``out[i] = min(gain[i], 1 - (1 - out[i - 1]) * recover)`` with
    ``out[-1] = 1``.  gain, out : float64 (n,).  recover : per-sample factor
    in (0, 1), ``exp(-1 / (release_s * sample_rate))``.
    """
    r = 1.0
    for i in range(gain.shape[0]):
        r = 1.0 - (1.0 - r) * recover
        g = gain[i]
        if g < r:
            r = g
        out[i] = r
