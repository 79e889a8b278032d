"""Deterministic speech-like test signals with known speech positions (used by test_vad and test_denoise).

A *phrase* is a run of syllables -- a harmonic complex on a gliding f0,
shaped by three formant resonators and a smooth envelope, some with a
fricative burst of band-passed noise -- separated by short gaps (< 0.1 s,
like the gaps between words).  Phrases are separated by known pauses, so
the speech regions are known exactly.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import butter, lfilter, sosfilt


def _syllable(rate: int, rng: np.random.Generator, f0_hz: float) -> np.ndarray:
    dur = int(rng.uniform(0.12, 0.28) * rate)
    t = np.arange(dur) / rate
    f0 = f0_hz * (1.0 + 0.12 * np.sin(2 * np.pi * rng.uniform(1.5, 4.0) * t + rng.uniform(0, 6.28)))
    phase = 2 * np.pi * np.cumsum(f0) / rate
    top = min(rate / 2 - 500.0, 5000.0)
    src = np.zeros(dur)
    for k in range(1, int(top / f0_hz)):
        src += np.sin(k * phase) / k
    sig = np.zeros(dur)
    formants = ((rng.uniform(300, 900), 90.0), (rng.uniform(900, 2400), 120.0), (rng.uniform(2400, 3400), 160.0))
    for formant, bw in formants:
        r = np.exp(-np.pi * bw / rate)
        c = 2 * r * np.cos(2 * np.pi * formant / rate)
        sig += lfilter([1 - r], [1, -c, r * r], src)
    env = np.sin(np.pi * np.arange(dur) / dur) ** 0.6
    out = sig * env
    if rng.uniform() < 0.35:  # a fricative onset
        n = int(0.06 * rate)
        lo, hi = 2500.0, min(7000.0, rate / 2 - 200.0)
        sos = butter(4, [lo, hi], btype="band", fs=rate, output="sos")
        burst = sosfilt(sos, rng.standard_normal(n)) * np.hanning(n) * 0.3 * np.max(np.abs(out))
        out = np.concatenate([burst, out])
    return out


def utterance(
    rate: int,
    *,
    phrases_s: tuple[float, ...] = (1.6, 2.2, 1.4),
    pauses_s: tuple[float, ...] = (0.8, 1.2),
    lead_s: float = 1.0,
    tail_s: float = 1.0,
    seed: int = 0,
    f0_hz: float = 140.0,
    peak: float = 0.5,
) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """Phrases of about ``phrases_s`` seconds separated by ``pauses_s`` of digital silence.

    Returns
    -------
    audio : np.ndarray, float32, shape (samples,)
    regions : list of (start_s, end_s)
        Exact extent of each phrase (first to last non-zero sample).
    """
    if len(pauses_s) != len(phrases_s) - 1:
        raise ValueError("need one pause between each pair of phrases")
    rng = np.random.default_rng(seed)
    parts = [np.zeros(int(lead_s * rate))]
    regions = []
    pos = parts[0].size
    for i, target in enumerate(phrases_s):
        phrase = []
        length = 0
        while length < target * rate:
            syl = _syllable(rate, rng, f0_hz * rng.uniform(0.9, 1.1))
            gap = np.zeros(int(rng.uniform(0.03, 0.09) * rate))
            phrase += [syl, gap]
            length += syl.size + gap.size
        body = np.concatenate(phrase[:-1])  # no trailing gap
        nz = np.flatnonzero(np.abs(body) > 0)
        body = body[nz[0] : nz[-1] + 1]
        regions.append((pos / rate, (pos + body.size) / rate))
        parts.append(body)
        pos += body.size
        if i < len(pauses_s):
            pause = np.zeros(int(pauses_s[i] * rate))
            parts.append(pause)
            pos += pause.size
    parts.append(np.zeros(int(tail_s * rate)))
    audio = np.concatenate(parts)
    audio *= peak / np.max(np.abs(audio))
    return audio.astype(np.float32), regions


def colored_noise(n: int, *, seed: int, exponent: float = 0.0) -> np.ndarray:
    """Unit-variance noise with a ``1 / f**exponent`` power spectrum (0: white, 1: pink), float32."""
    rng = np.random.default_rng(seed)
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(spec.size, dtype=np.float64)
    f[0] = 1.0
    x = np.fft.irfft(spec / f ** (exponent / 2), n)
    return (x / np.std(x)).astype(np.float32)


def mix(clean: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``clean + noise`` scaled so the SNR over the whole of ``clean`` is ``snr_db``, float32."""
    ps = np.mean(clean.astype(np.float64) ** 2)
    pn = np.mean(noise.astype(np.float64) ** 2)
    return (clean + noise * np.sqrt(ps / (pn * 10 ** (snr_db / 10)))).astype(np.float32)


def si_sdr(estimate: np.ndarray, reference: np.ndarray) -> float:
    """Scale-invariant SDR in dB (zero-mean)."""
    est = estimate.astype(np.float64) - np.mean(estimate)
    ref = reference.astype(np.float64) - np.mean(reference)
    alpha = est @ ref / (ref @ ref)
    target = alpha * ref
    err = est - target
    return float(10 * np.log10((target @ target) / max(err @ err, 1e-30)))
