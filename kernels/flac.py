"""Numba kernels of a 16-bit FLAC encoder (RFC 9639): the frames of a stream, and the quantiser.

The wrapper, validation, STREAMINFO and documentation live in
:func:`prep.report.audio.flac_encode`; these functions trust their arguments.

Each channel of each block (``blocksize`` samples, the last one shorter) is
coded as the smallest of: a CONSTANT subframe (all samples equal); a FIXED
predictor of order 0-4 (the one whose residual has the smallest absolute sum,
as libFLAC chooses); an LPC predictor of order 1-``max_order`` (a Tukey(0.5)
window given as integer weights, the autocorrelation of the windowed samples
in integers, so exact in any order of summation, Levinson-Durbin, the order
libFLAC's estimate of the residual bits prefers, coefficients quantised to
``precision`` bits with error feedback); a VERBATIM subframe.  Residuals are
Rice-coded in up to ``2**max_porder`` partitions, each partition's parameter
from its sum of zigzagged residuals.  Stereo channels are coded independently.

Predictions never overflow 32-bit arithmetic (what decoders such as FFmpeg's
use for 16-bit streams): ``|coefficient| < 2**(precision - 1)`` with
``precision + 16 + ceil(log2(max_order)) <= 32``.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from . import _target  # noqa: F401 - numba's CPU target without all of scipy.linalg (see there)

__all__ = [
    "CRC8_TABLE",
    "CRC16_TABLES",
    "autocorrelation",
    "best_fixed_order",
    "encode_frames",
    "lpc_from_autocorrelation",
    "quantise16",
    "rice_partitions",
]


def _crc8_table() -> np.ndarray:
    table = np.zeros(256, np.int64)
    for b in range(256):
        c = b
        for _ in range(8):
            c = ((c << 1) ^ 0x07) & 0xFF if c & 0x80 else (c << 1) & 0xFF
        table[b] = c
    return table


def _crc16_tables() -> np.ndarray:
    """``t[k, b]``: CRC-16 (0x8005) from 0 of byte ``b`` followed by ``k`` zero bytes (slicing by 8)."""
    t = np.zeros((8, 256), np.int64)
    for b in range(256):
        c = b << 8
        for _ in range(8):
            c = ((c << 1) ^ 0x8005) & 0xFFFF if c & 0x8000 else (c << 1) & 0xFFFF
        t[0, b] = c
    for k in range(1, 8):
        for b in range(256):
            s = t[k - 1, b]
            t[k, b] = ((s << 8) & 0xFFFF) ^ t[0, s >> 8]
    return t


#: CRC-8 (polynomial 0x07) of each byte: the frame header's check.
CRC8_TABLE = _crc8_table()
#: CRC-16 (polynomial 0x8005) tables for slicing by 8: the frame footer's check.
CRC16_TABLES = _crc16_tables()


@njit(cache=True, nogil=True)
def quantise16(x, out):  # pragma: no cover - compiled
    """float32 ``x`` (channels, n) to 16-bit integers in int32 ``out``: libsndfile's FLAC conversion.

    ``round_half_even(clip(x, -1, 1) * 32768)``, 32768 kept at 32767.  Returns
    False if a sample is NaN (then ``out`` is not complete).
    """
    n_ch = x.shape[0]
    n = x.shape[1]
    bad = False
    for c in range(n_ch):
        for i in range(n):
            v = x[c, i]
            bad |= v != v
            v = min(max(v, np.float32(-1.0)), np.float32(1.0)) * np.float32(32768.0)
            out[c, i] = np.int32(min(np.rint(v), np.float32(32767.0)))
    return not bad


@njit(cache=True, nogil=True)
def _crc8(buf, start, stop):  # pragma: no cover - compiled
    crc = 0
    for i in range(start, stop):
        crc = CRC8_TABLE[crc ^ buf[i]]
    return crc


@njit(cache=True, nogil=True)
def _crc16(buf, start, stop):  # pragma: no cover - compiled
    t = CRC16_TABLES
    v = buf[start:stop]
    crc = 0
    for w in range(v.size // 8):
        i = 8 * w
        a = crc ^ ((np.int64(v[i]) << 8) | np.int64(v[i + 1]))
        crc = (t[7, a >> 8] ^ t[6, a & 0xFF] ^ t[5, v[i + 2]] ^ t[4, v[i + 3]] ^ t[3, v[i + 4]]
               ^ t[2, v[i + 5]] ^ t[1, v[i + 6]] ^ t[0, v[i + 7]])
    for i in range(v.size - v.size % 8, v.size):
        crc = ((crc << 8) & 0xFFFF) ^ t[0, (crc >> 8) ^ v[i]]
    return crc


@njit(cache=True, nogil=True)
def _put(out, pos, acc, nacc, value, nbits):  # pragma: no cover - compiled
    """Append the low ``nbits`` (<= 32) of ``value``; whole 32-bit words go to ``out``."""
    acc = (acc << nbits) | (value & ((np.int64(1) << nbits) - 1))
    nacc += nbits
    if nacc >= 32:
        nacc -= 32
        w = acc >> nacc
        out[pos] = (w >> 24) & 0xFF
        out[pos + 1] = (w >> 16) & 0xFF
        out[pos + 2] = (w >> 8) & 0xFF
        out[pos + 3] = w & 0xFF
        pos += 4
    return pos, acc, nacc


@njit(cache=True, nogil=True)
def _align(out, pos, acc, nacc):  # pragma: no cover - compiled
    """Pad with zero bits to a byte and write out what is pending; returns the new ``pos``."""
    pad = (8 - nacc % 8) % 8
    acc <<= pad
    nacc += pad
    while nacc > 0:
        nacc -= 8
        out[pos] = (acc >> nacc) & 0xFF
        pos += 1
    return pos


@njit(cache=True, nogil=True)
def _zigzag_fixed(x, n, order, u):  # pragma: no cover - compiled
    """Zigzagged residuals of the FIXED predictor ``order`` into ``u[order:n]``."""
    # every loop indexes views from 0 with its counter: numba's negative-index wraparound then
    # vanishes and the loops vectorise (x[i - 1] with i from 1 costs ~10x)
    m = n - order
    x0 = x[order:n]
    x1 = x[order - 1:n - 1] if order >= 1 else x0
    x2 = x[order - 2:n - 2] if order >= 2 else x0
    x3 = x[order - 3:n - 3] if order >= 3 else x0
    x4 = x[order - 4:n - 4] if order >= 4 else x0
    v = u[order:n]
    if order == 0:
        for k in range(m):
            r = np.int64(x0[k])
            v[k] = (r << 1) ^ (r >> 63)
    elif order == 1:
        for k in range(m):
            r = np.int64(x0[k]) - x1[k]
            v[k] = (r << 1) ^ (r >> 63)
    elif order == 2:
        for k in range(m):
            r = np.int64(x0[k]) - 2 * np.int64(x1[k]) + x2[k]
            v[k] = (r << 1) ^ (r >> 63)
    elif order == 3:
        for k in range(m):
            r = np.int64(x0[k]) - 3 * np.int64(x1[k]) + 3 * np.int64(x2[k]) - x3[k]
            v[k] = (r << 1) ^ (r >> 63)
    else:
        for k in range(m):
            r = (np.int64(x0[k]) - 4 * np.int64(x1[k]) + 6 * np.int64(x2[k]) - 4 * np.int64(x3[k]) + x4[k])
            v[k] = (r << 1) ^ (r >> 63)


@njit(cache=True, nogil=True)
def best_fixed_order(x, n):  # pragma: no cover - compiled
    """libFLAC's choice: the FIXED order 0-4 whose residual has the least absolute sum from sample 4.

    Blocks of 4 samples or fewer: orders below ``n``, residuals from sample ``n - 1``.
    Returns ``(order, that sum)``.
    """
    top = min(4, n - 1)
    if top <= 0:
        return 0, abs(np.int64(x[0]))
    s0 = np.int64(0)
    s1 = np.int64(0)
    s2 = np.int64(0)
    s3 = np.int64(0)
    s4 = np.int64(0)
    if top == 4:
        x0 = x[4:n]
        x1 = x[3:n - 1]
        x2 = x[2:n - 2]
        x3 = x[1:n - 3]
        x4 = x[0:n - 4]
        for k in range(n - 4):
            a = np.int64(x0[k])
            b = np.int64(x1[k])
            c = np.int64(x2[k])
            d = np.int64(x3[k])
            e = np.int64(x4[k])
            s0 += abs(a)
            s1 += abs(a - b)
            s2 += abs(a - 2 * b + c)
            s3 += abs(a - 3 * b + 3 * c - d)
            s4 += abs(a - 4 * b + 6 * c - 4 * d + e)
    else:  # one residual, of the last sample
        a = np.int64(x[top])
        b = np.int64(x[top - 1])
        c = np.int64(x[max(top - 2, 0)])
        d = np.int64(x[max(top - 3, 0)])
        s0 = abs(a)
        s1 = abs(a - b)
        s2 = abs(a - 2 * b + c)
        s3 = abs(a - 3 * b + 3 * c - d)
    sums = (s0, s1, s2, s3, s4)
    best = 0
    for k in range(1, top + 1):
        if sums[k] < sums[best]:
            best = k
    return best, sums[best]


@njit(cache=True, nogil=True)
def rice_partitions(u, n, order, max_porder, sums, params):  # pragma: no cover - compiled
    """Choose the Rice partition order and parameters of residuals ``u[order:n]`` (zigzagged).

    sums : int64 scratch of ``2 * 2**max_porder``.  params : int64 (``2**max_porder``,), set to the
    chosen partitions' parameters.  Returns ``(porder, bits)``, bits counting the partition
    parameters (5 bits each if any exceeds 14, else 4) and the codes, not the 6-bit method and order.
    """
    top = 0
    while top < max_porder and n % (2 << top) == 0 and (n >> (top + 1)) > order:
        top += 1
    parts = 1 << top
    size = n >> top
    for j in range(parts):
        v = u[order if j == 0 else j * size:(j + 1) * size]
        s = np.int64(0)
        for k in range(v.size):
            s += v[k]
        sums[j] = s
    best_bits = np.int64(1) << 62
    best_p = 0
    ks = np.empty(parts, np.int64)
    level = top
    while True:
        parts = 1 << level
        size = n >> level
        bits = np.int64(0)
        kmax = 0
        for j in range(parts):
            count = size - order if j == 0 else size
            s = sums[j]
            k = 0
            while k < 30 and (np.int64(count) << (k + 1)) <= s:
                k += 1
            cost = count * (k + 1) + (s >> k)
            if k > 0:
                cost1 = count * k + (s >> (k - 1))
                if cost1 <= cost:
                    k -= 1
                    cost = cost1
            ks[j] = k
            kmax = max(kmax, k)
            bits += cost
        bits += parts * (4 if kmax <= 14 else 5)
        if bits < best_bits:
            best_bits = bits
            best_p = level
            for j in range(parts):
                params[j] = ks[j]
        if level == 0:
            break
        for j in range(parts // 2):
            sums[j] = sums[2 * j] + sums[2 * j + 1]
        level -= 1
    return best_p, best_bits


@njit(cache=True, nogil=True)
def _rice_estimate(count, s):  # pragma: no cover - compiled
    """Bits of ``count`` Rice codes summing to ``s`` with the best single parameter (estimate)."""
    if count <= 0:
        return np.int64(0)
    k = 0
    while k < 30 and (np.int64(count) << (k + 1)) <= s:
        k += 1
    cost = count * (k + 1) + (s >> k)
    if k > 0:
        cost = min(cost, count * k + (s >> (k - 1)))
    return cost + 10


@njit(cache=True, nogil=True)
def _put_residual(out, pos, acc, nacc, u, n, order, porder, params):  # pragma: no cover - compiled
    parts = 1 << porder
    size = n >> porder
    method = 0
    for j in range(parts):
        if params[j] > 14:
            method = 1
    pos, acc, nacc = _put(out, pos, acc, nacc, (method << 4) | porder, 6)
    pbits = 4 + method
    for j in range(parts):
        k = params[j]
        pos, acc, nacc = _put(out, pos, acc, nacc, k, pbits)
        low = (np.int64(1) << k) - 1
        top = np.int64(1) << k
        part = u[order if j == 0 else j * size:(j + 1) * size]
        for i in range(part.size):
            v = part[i]
            q = v >> k
            nb = q + 1 + k
            if nb <= 32:
                acc = (acc << nb) | top | (v & low)
                nacc += nb
                if nacc >= 32:
                    nacc -= 32
                    w = acc >> nacc
                    pu = np.uint64(pos)  # unsigned: no negative-index wraparound
                    out[pu] = (w >> 24) & 0xFF
                    out[pu + np.uint64(1)] = (w >> 16) & 0xFF
                    out[pu + np.uint64(2)] = (w >> 8) & 0xFF
                    out[pu + np.uint64(3)] = w & 0xFF
                    pos += 4
            else:
                while q > 0:
                    step = min(q, 32)
                    pos, acc, nacc = _put(out, pos, acc, nacc, 0, step)
                    q -= step
                pos, acc, nacc = _put(out, pos, acc, nacc, top | (v & low), k + 1)
    return pos, acc, nacc


@njit(cache=True, nogil=True)
def autocorrelation(x, n, window, wx, out):  # pragma: no cover - compiled
    """Autocorrelation lags 0-8 of ``(x * window) >> 15`` (integers, so exact) into float64 ``out``."""
    for i in range(n):
        wx[i] = (np.int64(x[i]) * window[i]) >> 15  # i from 0: no wraparound
    for lag in range(9):
        out[lag] = 0.0
    head = min(n, 8)
    for i in range(head):
        for lag in range(i + 1):
            out[lag] += np.float64(wx[i] * wx[i - lag])
    s0 = np.int64(0)
    s1 = np.int64(0)
    s2 = np.int64(0)
    s3 = np.int64(0)
    s4 = np.int64(0)
    s5 = np.int64(0)
    s6 = np.int64(0)
    s7 = np.int64(0)
    s8 = np.int64(0)
    w0 = wx[8:n]
    w1 = wx[7:n - 1]
    w2 = wx[6:n - 2]
    w3 = wx[5:n - 3]
    w4 = wx[4:n - 4]
    w5 = wx[3:n - 5]
    w6 = wx[2:n - 6]
    w7 = wx[1:n - 7]
    w8 = wx[0:n - 8]
    for k in range(n - 8):
        a = w0[k]
        s0 += a * a
        s1 += a * w1[k]
        s2 += a * w2[k]
        s3 += a * w3[k]
        s4 += a * w4[k]
        s5 += a * w5[k]
        s6 += a * w6[k]
        s7 += a * w7[k]
        s8 += a * w8[k]
    out[0] += s0
    out[1] += s1
    out[2] += s2
    out[3] += s3
    out[4] += s4
    out[5] += s5
    out[6] += s6
    out[7] += s7
    out[8] += s8


@njit(cache=True, nogil=True)
def lpc_from_autocorrelation(autoc, max_order, precision, n, qlp):  # pragma: no cover - compiled
    """Levinson-Durbin, libFLAC's order estimate, and the coefficients quantised to ``precision`` bits.

    Returns ``(order, shift)``, ``qlp[:order]`` set (``qlp[j]`` weighs sample ``i - 1 - j``);
    order 0 if there is no usable predictor.
    """
    if autoc[0] <= 0.0:
        return 0, 0
    lpc = np.zeros(max_order, np.float64)
    coefs = np.zeros((max_order, max_order), np.float64)
    errs = np.zeros(max_order, np.float64)
    err = autoc[0]
    top = max_order
    for i in range(max_order):
        r = -autoc[i + 1]
        for j in range(i):
            r -= lpc[j] * autoc[i - j]
        r /= err
        lpc[i] = r
        half = i >> 1
        for j in range(half):
            tmp = lpc[j]
            lpc[j] += r * lpc[i - 1 - j]
            lpc[i - 1 - j] += r * tmp
        if i & 1:
            lpc[half] += lpc[half] * r
        err *= 1.0 - r * r
        for j in range(i + 1):
            coefs[i, j] = -lpc[j]
        errs[i] = err
        if err <= 0.0:
            top = i + 1
            break
    # libFLAC's FLAC__lpc_compute_best_order: expected residual bits plus the coefficients' bits
    best = 0
    best_bits = 1e300
    scale = 0.5 / n
    for i in range(top):
        order = i + 1
        e = errs[i]
        if e > 0.0:
            bps = 0.5 * math.log(scale * e) / math.log(2.0)
            bps = max(bps, 0.0)
        elif e < 0.0:
            bps = 1e32
        else:
            bps = 0.0
        bits = bps * (n - order) + order * (precision + 16)
        if bits < best_bits:
            best_bits = bits
            best = i
    order = best + 1
    # libFLAC's FLAC__lpc_quantize_coefficients
    p = precision - 1
    qmax = (1 << p) - 1
    qmin = -(1 << p)
    cmax = 0.0
    for j in range(order):
        cmax = max(cmax, abs(coefs[best, j]))
    if cmax <= 0.0:
        return 0, 0
    log2cmax = math.frexp(cmax)[1] - 1
    shift = p - log2cmax - 1
    if shift > 15:
        shift = 15
    elif shift < 0:
        return 0, 0
    error = 0.0
    scale_q = float(1 << shift)
    for j in range(order):
        error += coefs[best, j] * scale_q
        q = math.floor(error + 0.5)
        q = min(max(q, qmin), qmax)
        error -= q
        qlp[j] = np.int64(q)
    return order, shift


@njit(cache=True, nogil=True)
def _zigzag_lpc(x, n, order, shift, qlp, u):  # pragma: no cover - compiled
    """Zigzagged residuals of the LPC predictor (order <= 8) into ``u[order:n]``; False if one needs over 30 bits."""
    c = np.zeros(8, np.int64)
    c[:order] = qlp[:order]
    big = np.int64(0)
    for i in range(order, min(n, 8)):
        s = np.int64(0)
        for j in range(order):
            s += c[j] * x[i - 1 - j]
        r = np.int64(x[i]) - (s >> shift)
        u[i] = (r << 1) ^ (r >> 63)
        big |= u[i]
    if n <= 8:
        return big < (np.int64(1) << 31)
    c0, c1, c2, c3, c4, c5, c6, c7 = c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]
    x0 = x[8:n]
    x1 = x[7:n - 1]
    x2 = x[6:n - 2]
    x3 = x[5:n - 3]
    x4 = x[4:n - 4]
    x5 = x[3:n - 5]
    x6 = x[2:n - 6]
    x7 = x[1:n - 7]
    x8 = x[0:n - 8]
    uu = u[8:n]
    for k in range(n - 8):
        s = (c0 * x1[k] + c1 * x2[k] + c2 * x3[k] + c3 * x4[k] + c4 * x5[k] + c5 * x6[k] + c6 * x7[k]
             + c7 * x8[k])
        r = np.int64(x0[k]) - (s >> shift)
        v = (r << 1) ^ (r >> 63)
        uu[k] = v
        big |= v
    return big < (np.int64(1) << 31)


@njit(cache=True, nogil=True)
def _bs_code(n):  # pragma: no cover - compiled
    if n == 192:
        return 1
    for k in range(4):
        if n == 576 << k:
            return 2 + k
    for k in range(8):
        if n == 256 << k:
            return 8 + k
    return 6 if n <= 256 else 7


@njit(cache=True, nogil=True)
def encode_frames(pcm, blocksize, rate_code, rate_ext, rate_ext_bytes, window, window_last,  # pragma: no cover
                  max_order, precision, max_porder, out, choices):
    """Write the frames of 16-bit ``pcm`` (int32, (channels, n), 1 or 2 channels) into uint8 ``out``.

    rate_code : the header's 4-bit sample-rate code; rate_ext, rate_ext_bytes : its 8- or 16-bit
    extension (0 bytes if none).  window, window_last : int64 Tukey weights (of 2**15) of a whole block
    and of the last block.  max_order : LPC order up to which to search, at most 8 (0: FIXED only).
    precision : bits of each LPC coefficient; ``precision + 16 + ceil(log2(max_order)) <= 32``.
    max_porder : highest Rice partition order.  out : room
    for ``channels * 2 * n + 64 * (frames + 1)`` bytes.  choices : int64 (frames, channels, 2), set to
    each subframe's (kind, order), kind 0 CONSTANT, 1 VERBATIM, 2 FIXED, 3 LPC.
    Returns ``(bytes written, smallest frame, largest frame)``.
    """
    n_ch = pcm.shape[0]
    n = pcm.shape[1]
    u_fix = np.zeros(blocksize, np.int64)
    u_lpc = np.zeros(blocksize, np.int64)
    wx = np.zeros(blocksize, np.int64)
    parts = 1 << max_porder
    sums = np.zeros(2 * parts, np.int64)
    p_fix = np.zeros(parts, np.int64)
    p_lpc = np.zeros(parts, np.int64)
    autoc = np.zeros(9, np.float64)
    qlp = np.zeros(max(max_order, 1), np.int64)
    pos = 0
    smallest = np.int64(1) << 40
    largest = 0
    frame = 0
    start = 0
    while start < n:
        bn = min(blocksize, n - start)
        win = window if bn == blocksize else window_last
        f0 = pos
        code = _bs_code(bn)
        out[pos] = 0xFF
        out[pos + 1] = 0xF8
        out[pos + 2] = (code << 4) | rate_code
        out[pos + 3] = ((n_ch - 1) << 4) | (4 << 1)
        pos += 4
        # the frame number, coded as UTF-8 was (up to 31 bits)
        if frame < 0x80:
            out[pos] = frame
            pos += 1
        else:
            nb = 2
            while frame >= (np.int64(1) << (5 * nb + 1)):
                nb += 1
            out[pos] = ((0xFF00 >> nb) & 0xFF) | (frame >> (6 * (nb - 1)))
            for k in range(1, nb):
                out[pos + k] = 0x80 | ((frame >> (6 * (nb - 1 - k))) & 0x3F)
            pos += nb
        if code == 6:
            out[pos] = bn - 1
            pos += 1
        elif code == 7:
            out[pos] = (bn - 1) >> 8
            out[pos + 1] = (bn - 1) & 0xFF
            pos += 2
        if rate_ext_bytes == 1:
            out[pos] = rate_ext
            pos += 1
        elif rate_ext_bytes == 2:
            out[pos] = rate_ext >> 8
            out[pos + 1] = rate_ext & 0xFF
            pos += 2
        out[pos] = _crc8(out, f0, pos)
        pos += 1
        acc = np.int64(0)
        nacc = 0
        for c in range(n_ch):
            x = pcm[c, start:start + bn]
            constant = True
            for i in range(1, bn):
                if x[i] != x[0]:
                    constant = False
                    break
            if constant:
                choices[frame, c, 0] = 0
                choices[frame, c, 1] = 0
                pos, acc, nacc = _put(out, pos, acc, nacc, 0, 8)
                pos, acc, nacc = _put(out, pos, acc, nacc, np.int64(x[0]), 16)
                continue
            fo, sabs = best_fixed_order(x, bn)
            lo = 0
            shift = 0
            bits_lpc = np.int64(1) << 62
            pl = 0
            if max_order > 0 and bn > max_order:
                autocorrelation(x, bn, win, wx, autoc)
                lo, shift = lpc_from_autocorrelation(autoc, max_order, precision, bn, qlp)
                if lo > 0 and _zigzag_lpc(x, bn, lo, shift, qlp, u_lpc):
                    pl, bits_lpc = rice_partitions(u_lpc, bn, lo, max_porder, sums, p_lpc)
                    bits_lpc += 6 + 16 * lo + 9 + precision * lo
            # the FIXED residual is coded only when its estimate (one Rice parameter for the block,
            # from the absolute sum) comes near the LPC's bits: it rarely wins after LPC
            bits_fix = np.int64(1) << 62
            pf = 0
            if _rice_estimate(bn - fo, 2 * sabs) + 16 * fo < bits_lpc + (bits_lpc >> 3):
                _zigzag_fixed(x, bn, fo, u_fix)
                pf, bits_fix = rice_partitions(u_fix, bn, fo, max_porder, sums, p_fix)
                bits_fix += 6 + 16 * fo
            if min(bits_fix, bits_lpc) >= 16 * bn:
                choices[frame, c, 0] = 1
                choices[frame, c, 1] = 0
                pos, acc, nacc = _put(out, pos, acc, nacc, 2, 8)
                for i in range(bn):
                    pos, acc, nacc = _put(out, pos, acc, nacc, np.int64(x[i]), 16)
            elif bits_lpc < bits_fix:
                choices[frame, c, 0] = 3
                choices[frame, c, 1] = lo
                pos, acc, nacc = _put(out, pos, acc, nacc, (0x20 | (lo - 1)) << 1, 8)
                for i in range(lo):
                    pos, acc, nacc = _put(out, pos, acc, nacc, np.int64(x[i]), 16)
                pos, acc, nacc = _put(out, pos, acc, nacc, precision - 1, 4)
                pos, acc, nacc = _put(out, pos, acc, nacc, shift, 5)
                for j in range(lo):
                    pos, acc, nacc = _put(out, pos, acc, nacc, qlp[j], precision)
                pos, acc, nacc = _put_residual(out, pos, acc, nacc, u_lpc, bn, lo, pl, p_lpc)
            else:
                choices[frame, c, 0] = 2
                choices[frame, c, 1] = fo
                pos, acc, nacc = _put(out, pos, acc, nacc, (0x08 | fo) << 1, 8)
                for i in range(fo):
                    pos, acc, nacc = _put(out, pos, acc, nacc, np.int64(x[i]), 16)
                pos, acc, nacc = _put_residual(out, pos, acc, nacc, u_fix, bn, fo, pf, p_fix)
        pos = _align(out, pos, acc, nacc)
        crc = _crc16(out, f0, pos)
        out[pos] = crc >> 8
        out[pos + 1] = crc & 0xFF
        pos += 2
        smallest = min(smallest, pos - f0)
        largest = max(largest, pos - f0)
        frame += 1
        start += bn
    return pos, smallest, largest
