"""NumPy/Python reference twin of the FLAC encoder kernels (tests only).

Written from RFC 9639 and the kernel's documented choices, as directly as
possible: residuals as whole-array NumPy expressions, the autocorrelation by
``np.dot``, Levinson-Durbin and the Rice choices in Python numbers, the
bitstream as a string of ``"0"``/``"1"`` characters, the CRCs bit by bit and
STREAMINFO from its field widths.  Slow (seconds for a few seconds of audio):
for short signals.
"""

from __future__ import annotations

import math

import numpy as np

from prep.report.audio import (
    FLAC_BLOCKSIZE,
    FLAC_LPC_PRECISION,
    FLAC_MAX_LPC_ORDER,
    FLAC_MAX_PARTITION_ORDER,
    _tukey_weights,
)

RATE_CODES = {88200: 1, 176400: 2, 192000: 3, 8000: 4, 16000: 5, 22050: 6, 24000: 7, 32000: 8, 44100: 9,
              48000: 10, 96000: 11}


def quantise16(x: np.ndarray) -> np.ndarray:
    """libsndfile's float-to-FLAC conversion: round half to even of the clipped sample times 32768."""
    y = np.clip(np.asarray(x, np.float32), np.float32(-1), np.float32(1)) * np.float32(32768)
    return np.minimum(np.rint(y), 32767).astype(np.int16)


def crc8(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def crc16(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x8005) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc


def bits(value: int, width: int) -> str:
    """``value`` as ``width`` bits, two's complement."""
    return format(value & ((1 << width) - 1), f"0{width}b") if width else ""


def to_bytes(s: str) -> bytes:
    s += "0" * (-len(s) % 8)
    return int(s, 2).to_bytes(len(s) // 8, "big") if s else b""


def zigzag(r: np.ndarray) -> np.ndarray:
    r = r.astype(np.int64)
    return np.where(r >= 0, 2 * r, -2 * r - 1)


def fixed_residual(x: np.ndarray, order: int) -> np.ndarray:
    """Residual of the FIXED predictor: the ``order``-th difference, from sample ``order``."""
    return np.diff(x.astype(np.int64), n=order)


def best_fixed_order(x: np.ndarray) -> tuple[int, int]:
    """The order 0-4 (below the length) whose residual's absolute sum is least, counted from sample 4."""
    n = x.size
    top = min(4, n - 1)
    if top <= 0:
        return 0, abs(int(x[0]))
    first = top if top == 4 else n - 1
    sums = [int(np.abs(fixed_residual(x, k)[first - k:]).sum()) for k in range(top + 1)]
    best = min(range(top + 1), key=lambda k: (sums[k], k))
    return best, sums[best]


def rice_choice(u: np.ndarray, order: int, max_porder: int) -> tuple[int, list[int], int]:
    """Partition order, parameters and estimated bits (parameters and codes) for residuals ``u[order:]``."""
    n = u.size
    top = 0
    while top < max_porder and n % (2 << top) == 0 and (n >> (top + 1)) > order:
        top += 1
    best = None
    for level in range(top, -1, -1):
        size = n >> level
        ks, total = [], 0
        for j in range(1 << level):
            part = u[max(j * size, order if j == 0 else 0):(j + 1) * size]
            count, s = part.size, int(part.sum())
            k = 0
            while k < 30 and (count << (k + 1)) <= s:
                k += 1
            cost = count * (k + 1) + (s >> k)
            if k > 0 and count * k + (s >> (k - 1)) <= cost:
                k, cost = k - 1, count * k + (s >> (k - 1))
            ks.append(k)
            total += cost
        total += len(ks) * (4 if max(ks) <= 14 else 5)
        if best is None or total < best[2]:
            best = (level, ks, total)
    return best


def rice_estimate(count: int, s: int) -> int:
    if count <= 0:
        return 0
    k = 0
    while k < 30 and (count << (k + 1)) <= s:
        k += 1
    cost = count * (k + 1) + (s >> k)
    if k > 0:
        cost = min(cost, count * k + (s >> (k - 1)))
    return cost + 10


def lpc(x: np.ndarray, window: np.ndarray, max_order: int, precision: int) -> tuple[int, int, list[int]]:
    """Order, shift and quantised coefficients (libFLAC's Levinson-Durbin, order estimate, quantiser)."""
    n = x.size
    wx = (x.astype(np.int64) * window) >> 15
    autoc = [float(np.dot(wx[lag:], wx[:n - lag])) for lag in range(max_order + 1)]
    if autoc[0] <= 0.0:
        return 0, 0, []
    a = [0.0] * max_order
    coefs, errs = [], []
    err = autoc[0]
    for i in range(max_order):
        r = -autoc[i + 1]
        for j in range(i):
            r -= a[j] * autoc[i - j]
        r /= err
        a[i] = r
        for j in range(i >> 1):
            a[j], a[i - 1 - j] = a[j] + r * a[i - 1 - j], a[i - 1 - j] + r * a[j]
        if i & 1:
            a[i >> 1] += a[i >> 1] * r
        err *= 1.0 - r * r
        coefs.append([-v for v in a[:i + 1]])
        errs.append(err)
        if err <= 0.0:
            break

    def expected(i: int) -> float:
        e = errs[i]
        bps = max(0.5 * math.log(0.5 / n * e) / math.log(2.0), 0.0) if e > 0 else (1e32 if e < 0 else 0.0)
        return bps * (n - i - 1) + (i + 1) * (precision + 16)

    best = min(range(len(errs)), key=lambda i: (expected(i), i))
    c = coefs[best]
    cmax = max(abs(v) for v in c)
    if cmax <= 0.0:
        return 0, 0, []
    p = precision - 1
    shift = min(p - (math.frexp(cmax)[1] - 1) - 1, 15)
    if shift < 0:
        return 0, 0, []
    q, error = [], 0.0
    for v in c:
        error += v * float(1 << shift)
        k = min(max(math.floor(error + 0.5), -(1 << p)), (1 << p) - 1)
        error -= k
        q.append(k)
    return len(c), shift, q


def lpc_residual(x: np.ndarray, shift: int, q: list[int]) -> np.ndarray:
    x = x.astype(np.int64)
    order = len(q)
    pred = sum(q[j] * x[order - 1 - j:x.size - 1 - j] for j in range(order))
    return x[order:] - (pred >> shift)


def residual_bits(u: np.ndarray, order: int, level: int, ks: list[int]) -> str:
    method = 1 if max(ks) > 14 else 0
    out = [bits(method, 2), bits(level, 4)]
    size = u.size >> level
    for j, k in enumerate(ks):
        out.append(bits(k, 4 + method))
        for v in u[max(j * size, order if j == 0 else 0):(j + 1) * size]:
            v = int(v)
            out.append("0" * (v >> k) + "1" + bits(v & ((1 << k) - 1), k))
    return "".join(out)


def subframe(x: np.ndarray, window: np.ndarray, *, max_order: int = FLAC_MAX_LPC_ORDER,
             precision: int = FLAC_LPC_PRECISION, max_porder: int = FLAC_MAX_PARTITION_ORDER) -> str:
    """One channel of one block, the kernel's choice among CONSTANT, FIXED, LPC and VERBATIM."""
    n = x.size
    if np.all(x == x[0]):
        return "00000000" + bits(int(x[0]), 16)
    warm = lambda k: "".join(bits(int(v), 16) for v in x[:k])  # noqa: E731
    fo, sabs = best_fixed_order(x)
    lpc_bits, lpc_code = 1 << 62, ""
    if max_order > 0 and n > max_order:
        order, shift, q = lpc(x, window, max_order, precision)
        if order:
            u = np.concatenate([np.zeros(order, np.int64), zigzag(lpc_residual(x, shift, q))])
            if u.max() < 2**31:
                level, ks, est = rice_choice(u, order, max_porder)
                lpc_bits = est + 6 + 16 * order + 9 + precision * order
                lpc_code = (bits((0x20 | (order - 1)) << 1, 8) + warm(order) + bits(precision - 1, 4)
                            + bits(shift, 5) + "".join(bits(c, precision) for c in q)
                            + residual_bits(u, order, level, ks))
    fix_bits, fix_code = 1 << 62, ""
    if rice_estimate(n - fo, 2 * sabs) + 16 * fo < lpc_bits + (lpc_bits >> 3):
        u = np.concatenate([np.zeros(fo, np.int64), zigzag(fixed_residual(x, fo))])
        level, ks, est = rice_choice(u, fo, max_porder)
        fix_bits = est + 6 + 16 * fo
        fix_code = bits((0x08 | fo) << 1, 8) + warm(fo) + residual_bits(u, fo, level, ks)
    if min(fix_bits, lpc_bits) >= 16 * n:
        return "00000010" + warm(n)
    return lpc_code if lpc_bits < fix_bits else fix_code


def utf8_number(v: int) -> bytes:
    if v < 0x80:
        return bytes([v])
    nb = 2
    while v >= 1 << (5 * nb + 1):
        nb += 1
    out = [((0xFF00 >> nb) & 0xFF) | (v >> (6 * (nb - 1)))]
    out += [0x80 | ((v >> (6 * (nb - 1 - k))) & 0x3F) for k in range(1, nb)]
    return bytes(out)


def encode(pcm: np.ndarray, rate: int, **kwargs) -> bytes:
    """A FLAC file of int16 ``pcm`` (channels, n): the same bytes as ``prep.report.audio.flac_encode``."""
    pcm = np.atleast_2d(pcm).astype(np.int64)
    channels, n = pcm.shape
    block = FLAC_BLOCKSIZE
    if rate in RATE_CODES:
        rate_code, ext = RATE_CODES[rate], b""
    elif rate % 1000 == 0 and rate // 1000 < 256:
        rate_code, ext = 12, bytes([rate // 1000])
    elif rate < 65536:
        rate_code, ext = 13, rate.to_bytes(2, "big")
    elif rate % 10 == 0 and rate // 10 < 65536:
        rate_code, ext = 14, (rate // 10).to_bytes(2, "big")
    else:
        rate_code, ext = 0, b""
    frames = []
    for number, start in enumerate(range(0, n, block)):
        x = pcm[:, start:start + block]
        bn = x.shape[1]
        codes = {192: 1, 576: 2, 1152: 3, 2304: 4, 4608: 5} | {256 << k: 8 + k for k in range(8)}
        code = codes.get(bn, 6 if bn <= 256 else 7)
        head = bytes([0xFF, 0xF8, code << 4 | rate_code, (channels - 1) << 4 | 4 << 1]) + utf8_number(number)
        head += (bn - 1).to_bytes(1 if code == 6 else 2, "big") if code in (6, 7) else b""
        head += ext
        head += bytes([crc8(head)])
        body = to_bytes("".join(subframe(x[c], _tukey_weights(bn), **kwargs) for c in range(channels)))
        frame = head + body
        frames.append(frame + crc16(frame).to_bytes(2, "big"))
    sizes = [len(f) for f in frames]
    info = (bits(block, 16) + bits(block, 16) + bits(min(sizes), 24) + bits(max(sizes), 24) + bits(rate, 20)
            + bits(channels - 1, 3) + bits(15, 5) + bits(n, 36) + "0" * 128)
    return b"fLaC" + bytes([0x80, 0, 0, 34]) + to_bytes(info) + b"".join(frames)
