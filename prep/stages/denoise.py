"""Spectral-gating denoiser with a VAD-informed noise profile.

The noise spectrum is measured on frames the VAD calls non-speech (widened
by ``guard_s`` so breaths and word tails stay out), never on the whole clip:
averaging speech into the profile is what makes a blind gate eat the voice.
Of those frames only the *floor* counts (within :data:`NOISE_SPAN_DB` of their
low percentile), so a click or knock in the pauses does not pass for noise.
Each STFT bin then gets a soft gate

    ``gain = xi / (xi + threshold)``,  ``xi`` the decision-directed a-priori SNR

(a Wiener gain for ``threshold = 1``), smoothed over a few frames and bins,
floored at ``-max_reduction_db`` and blended with the input by
``strength``.  In ``"stationary"`` mode the profile is one spectrum; in
``"nonstationary"`` mode it follows the noise from pause to pause (recursive
means over non-speech frames, run forward and backward and averaged).

The STFT uses a square-root periodic Hann window for analysis and synthesis
(their product is a Hann window, so overlap-add reconstructs exactly) with
50 % overlap by default (``frames_per_window=4`` for 75 %: a little better, half as
fast), float32 throughout: FFTs by SciPy's pocketfft (:mod:`prep.dsp.fft`), gains / smoothing /
overlap-add in :mod:`prep.kernels.denoise`.  Long signals are processed in blocks of
``block_s`` seconds with enough overlapping context that the output does
not depend on the block size (in ``"stationary"`` mode), so memory stays
bounded.

*Do no harm*: :func:`denoise` estimates the SNR first; above
``soften_above_snr_db`` the strength is reduced linearly, reaching zero (no
processing at all) at ``skip_above_snr_db``; above :data:`KEEP_DC_ABOVE_SNR_DB`
the DC bin (DC offset and infrasonic rumble, no part of the voice) is left as it is.

:func:`estimate_noise` measures, :func:`spectral_gate` applies,
:func:`denoise` does both with the do-no-harm rule, :class:`Denoise` is the
stage.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from ..audio import as_audio, as_mono, check_sample_rate
from ..clip import Clip
from ..dsp import fft as sp_fft
from ..dsp.vad import mask_to_regions, speech_mask
from ..errors import ConfigError

__all__ = [
    "ENHANCE_NOTICE",
    "METHODS",
    "MODES",
    "Denoise",
    "DenoiseReport",
    "GateReport",
    "NoiseEstimate",
    "denoise",
    "enhance_missing_notice",
    "enhance_model",
    "estimate_noise",
    "spectral_gate",
    "stft_size",
]

MODES = ("stationary", "nonstationary")
_VAD_FRAME_S = 0.03
_MIN_NOISE_S = 0.3  # less non-speech than this: fall back to the quietest frames
_QUIET_FRACTION = 0.1
#: The noise profile is the *floor* of the pauses: the noise frames whose power is within NOISE_SPAN_DB
#: of their NOISE_FLOOR_PERCENTILE-th percentile (the rule of :func:`prep.dsp.estimators.snr_estimate`):
#: clicks, knocks or a breath in short pauses made a clean clip read 11 dB SNR.
NOISE_FLOOR_PERCENTILE = 10.0
NOISE_SPAN_DB = 10.0
#: Least share of the noise frames the floor must keep; else the span is taken from their median.
NOISE_MIN_SHARE = 0.5
#: Above this SNR estimate (and the softening threshold) the gate leaves the DC bin alone. At 20 dB input
#: SNR stationary noises read 21-22 dB, and gating their DC bin is worth up to 1.6 dB SI-SDR (pink noise);
#: a clean LibriSpeech clip whose rumble below 20 Hz is 22 % of its power reads 24 dB, and the softened gate
#: leaves it at 27.7 dB SI-SDR against its input with its DC bin left alone, 24.2 dB with it gated.
KEEP_DC_ABOVE_SNR_DB = 23.0
#: Band (Hz) over which :attr:`NoiseEstimate.nonstationarity_db` is averaged.
_FLUX_BAND_HZ = (100.0, 8000.0)
#: ``E[10 log10 P] - 10 log10 E[P]`` of exponentially distributed power (a stationary Gaussian noise bin):
#: Euler's constant in dB, subtracted so that stationary noise reads about 0 dB.
_GAUSS_LOG_GAP_DB = 10.0 * 0.5772156649015329 / math.log(10.0)
_NOISE_CHUNK_FRAMES = 4096
_FRAMES_PER_WINDOW = (2, 4)
_GATE_DEFAULTS: dict[str, float] = {
    "threshold_db": 0.0,
    "max_reduction_db": 30.0,
    "dd_time_s": 0.1,
    "smooth_time_s": 0.016,
    "smooth_freq_hz": 40.0,
    "time_constant_s": 1.0,
    "block_s": 60.0,
}


def stft_size(*, sample_rate: int, frame_s: float = 0.032, frames_per_window: int = 2) -> tuple[int, int]:
    """FFT size and hop for a rate: the smallest fast size >= ``frame_s`` seconds, a multiple of 4.

    Parameters
    ----------
    sample_rate : int
        In Hz.
    frame_s : float
        Wanted window length in seconds.
    frames_per_window : {2, 4}
        STFT frames that start within one window length, i.e. how many
        frames cover each sample: hop is ``n_fft // frames_per_window``
        (50 % or 75 % overlap).

    Returns
    -------
    n_fft : int
    hop : int

    Raises
    ------
    ConfigError
        If the window would be shorter than 16 samples, or ``frames_per_window`` is not 2 or 4.
    """
    rate = check_sample_rate(sample_rate)
    if frames_per_window not in _FRAMES_PER_WINDOW:
        raise ConfigError(f"frames_per_window must be one of {_FRAMES_PER_WINDOW}, got {frames_per_window!r}")
    want = math.ceil(frame_s * rate)
    if want < 16:
        raise ConfigError(f"frame_s={frame_s!r} at {rate} Hz gives a window of {want} samples; need >= 16")
    n = want + (-want) % 4
    while sp_fft.next_fast_len(n, real=True) != n:
        n += 4
    return n, n // frames_per_window


def _window(n: int) -> np.ndarray:
    """Square-root periodic Hann window, float32: analysis times synthesis is a Hann window."""
    return np.sqrt(0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)).astype(np.float32)


def _n_frames(n_samples: int, n: int, hop: int) -> int:
    """Frames centred at ``t * hop`` needed to cover ``[0, n_samples)`` fully."""
    return 0 if n_samples == 0 else (n_samples - 1 + n // 2) // hop + 1


def _frames(x: np.ndarray, t0: int, t1: int, n: int, hop: int) -> np.ndarray:
    """Frames ``t0 <= t < t1`` (centred at ``t * hop``, zero outside ``x``) as a ``(t1 - t0, n)`` view."""
    lo = t0 * hop - n // 2
    hi = (t1 - 1) * hop + n // 2
    if lo >= 0 and hi <= x.size:
        seg = x[lo:hi]
    else:
        seg = np.zeros(hi - lo, np.float32)
        a, b = max(lo, 0), min(hi, x.size)
        if b > a:
            seg[a - lo : b - lo] = x[a:b]
    return np.lib.stride_tricks.sliding_window_view(seg, n)[::hop]


def _frame_flags(mask: np.ndarray, n_frames: int, hop: int, sample_rate: int, frame_s: float) -> np.ndarray:
    """Look up a VAD frame mask at each STFT frame centre, ``(n_frames,)`` bool."""
    if mask.size == 0:
        return np.zeros(n_frames, bool)
    idx = (np.arange(n_frames) * (hop / (sample_rate * frame_s))).astype(np.int64)
    return mask[np.minimum(idx, mask.size - 1)]


def _dilate(mask: np.ndarray, k: int) -> np.ndarray:
    if k <= 0 or not mask.any():
        return mask.copy()
    padded = np.concatenate([np.zeros(k, bool), mask, np.zeros(k, bool)])
    csum = np.concatenate([[0], np.cumsum(padded)])
    window = csum[2 * k + 1 :] - csum[: -2 * k - 1]
    return window > 0


def _db(power: float) -> float:
    return 10.0 * math.log10(power) if power > 0 else -math.inf


def _snr_db(speech_power: float, noise_power: float) -> float:
    if not speech_power > 0:
        return -math.inf
    if not noise_power > 0:
        return math.inf
    return _db(max(speech_power - noise_power, speech_power * 1e-6) / noise_power)


# -- measuring ---------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class NoiseEstimate:
    """Noise profile and SNR of a mono signal (from :func:`estimate_noise`).

    Attributes
    ----------
    psd : np.ndarray, float32, shape (n_fft // 2 + 1,)
        Mean power of the noise frames' rFFT (square-root Hann window), per bin.
    n_fft, hop : int
        STFT geometry the profile belongs to.
    noise_frames, speech_frames : np.ndarray, bool, shape (stft_frames,)
        STFT frames used as noise, and frames inside speech regions.
    source : str
        ``"non-speech frames"``, ``"unguarded non-speech frames"`` (under
        0.3 s of non-speech away from speech: the pauses without the guard),
        ``"quietest frames"`` (too little non-speech: the quietest 10 % of
        frames) or ``"empty"``.
    noise_s : float
        Seconds of audio the profile was measured on.
    noise_floor_dbfs : float
        Mean power of the noise frames, dB re full scale (a full-scale sine
        is -3 dBFS).
    speech_dbfs : float
        Mean power of the speech frames, same scale (``-inf`` if none).
    snr_db : float
        Estimated speech-to-noise ratio over the speech frames
        (``-inf`` without speech, ``inf`` on digital silence).
    nonstationarity_db : float
        How much the noise frames' spectrum varies over time: per bin (100 Hz - 8 kHz), the mean
        power in dB minus the mean of the per-frame powers in dB, averaged over bins, less the
        2.5 dB that a stationary Gaussian noise gives. About 0 for white or pink hiss, hum, an
        exercise bike or running water (0.2-0.5 dB on the benchmark's recordings), 0.5-0.7 dB for
        brown noise (window leakage from its strong low end), 1-5 dB for babble, cafe noise and
        crackle, more on the quiet, codec-shaped floor of clean recordings (NaN without noise frames).
    """

    psd: np.ndarray
    n_fft: int
    hop: int
    noise_frames: np.ndarray
    speech_frames: np.ndarray
    source: str
    noise_s: float
    noise_floor_dbfs: float
    speech_dbfs: float
    snr_db: float
    nonstationarity_db: float = math.nan

    @property
    def has_speech(self) -> bool:
        """True if any STFT frame lies in speech."""
        return bool(self.speech_frames.any())


def estimate_noise(
    audio: np.ndarray,
    *,
    sample_rate: int,
    speech: np.ndarray | None = None,
    speech_frame_s: float = _VAD_FRAME_S,
    frame_s: float = 0.032,
    frames_per_window: int = 2,
    guard_s: float = 0.2,
) -> NoiseEstimate:
    """Measure the noise spectrum on non-speech frames, and the SNR.

    Parameters
    ----------
    audio : np.ndarray, shape (samples,) or (1, samples)
        Mono audio.
    sample_rate : int
        In Hz.
    speech : np.ndarray of bool, shape (vad_frames,), optional
        Speech decisions on frames of ``speech_frame_s`` (from
        :func:`prep.dsp.vad.speech_mask`); computed when omitted.
    speech_frame_s : float
        Frame length of ``speech``.
    frame_s : float
        STFT window length (see :func:`stft_size`).
    frames_per_window : {2, 4}
        STFT frames per window length (see :func:`stft_size`).
    guard_s : float
        Frames within this distance of speech are not used as noise.

    Returns
    -------
    NoiseEstimate
    """
    x = as_mono(audio)
    rate = check_sample_rate(sample_rate)
    if guard_s < 0:
        raise ConfigError(f"guard_s must be >= 0, got {guard_s!r}")
    if speech is None:
        speech = speech_mask(x, sample_rate=rate, frame_s=speech_frame_s) if x.size else np.zeros(0, bool)
    n, hop = stft_size(sample_rate=rate, frame_s=frame_s, frames_per_window=frames_per_window)
    return _measure(x, rate, np.asarray(speech, dtype=bool), speech_frame_s, n, hop, guard_s)


_STFT_CHUNK = 128  # frames windowed and transformed at a time (~0.7 MB at 44.1 kHz: stays in cache)


def _stft(x: np.ndarray, t0: int, t1: int, n: int, hop: int, window: np.ndarray) -> np.ndarray:
    """rFFT of the windowed frames ``t0 <= t < t1``: complex64, shape ``(t1 - t0, n // 2 + 1)``.

    Windowed and transformed :data:`_STFT_CHUNK` frames at a time into one output array: the same
    values as one transform of all the windowed frames (each row is its own transform), without a
    windowed copy of the whole signal going through memory (12 % less CPU).
    """
    frames = _frames(x, t0, t1, n, hop)
    spec = np.empty((t1 - t0, n // 2 + 1), np.complex64)
    scratch = np.empty((min(_STFT_CHUNK, t1 - t0), n), np.float32)
    for c0 in range(0, t1 - t0, _STFT_CHUNK):
        c1 = min(t1 - t0, c0 + _STFT_CHUNK)
        windowed = np.multiply(frames[c0:c1], window, out=scratch[: c1 - c0])
        sp_fft.rfft(windowed, axis=-1, out=spec[c0:c1])
    return spec


def _chunk_power(x: np.ndarray, hop: int, n_frames: int) -> np.ndarray:
    """Time-domain power of each hop-long chunk starting at a frame centre, ``(n_frames,)`` float64."""
    whole = x.size // hop * hop
    chunks = x[:whole].reshape(-1, hop)
    power = np.einsum("ij,ij->i", chunks, chunks, dtype=np.float64) / hop
    if whole < x.size:
        tail = x[whole:].astype(np.float64)
        power = np.append(power, np.mean(tail * tail))
    return np.concatenate([power, np.zeros(max(0, n_frames - power.size))])[:n_frames]


def _measure(
    x: np.ndarray,
    rate: int,
    speech: np.ndarray,
    speech_frame_s: float,
    n: int,
    hop: int,
    guard_s: float,
    spec: np.ndarray | None = None,
) -> NoiseEstimate:
    """:func:`estimate_noise` on validated input; ``spec``, if given, is the STFT of all of ``x``."""
    n_frames = _n_frames(x.size, n, hop)
    guard = _dilate(speech, math.ceil(guard_s / speech_frame_s))
    is_speech = _frame_flags(speech, n_frames, hop, rate, speech_frame_s)
    is_noise = ~_frame_flags(guard, n_frames, hop, rate, speech_frame_s)
    chunk_power = _chunk_power(x, hop, n_frames)
    source = "non-speech frames"
    if is_noise.sum() * hop < _MIN_NOISE_S * rate and (~is_speech).sum() * hop >= _MIN_NOISE_S * rate:
        # Too little noise away from speech (impulsive noise the VAD takes for speech leaves short
        # pauses): the pauses themselves, unguarded, still measure it better than the quietest frames.
        source = "unguarded non-speech frames"
        is_noise = ~is_speech
    if is_noise.sum() * hop < _MIN_NOISE_S * rate:
        source = "quietest frames"
        is_noise = chunk_power <= np.quantile(chunk_power, _QUIET_FRACTION) if n_frames else is_noise
    if n_frames == 0 or not is_noise.any():
        psd = np.zeros(n // 2 + 1, np.float32)
        return NoiseEstimate(psd, n, hop, is_noise, is_speech, "empty", 0.0, -math.inf, -math.inf, -math.inf)
    if source != "quietest frames":
        is_noise = _without_outliers(is_noise, chunk_power)
    band = slice(*(min(n // 2 + 1, max(1, round(f * n / rate))) for f in _FLUX_BAND_HZ))
    acc = np.zeros(n // 2 + 1, np.float64)
    acc_log = np.zeros(band.stop - band.start, np.float64)  # sum of log10 power in the band, frames with sound
    sounding = is_noise & (chunk_power > 0.0)
    window = None if spec is not None else _window(n)
    for t0 in range(0, n_frames, _NOISE_CHUNK_FRAMES):
        t1 = min(n_frames, t0 + _NOISE_CHUNK_FRAMES)
        sel = is_noise[t0:t1]
        if not sel.any():
            continue
        part = spec[t0:t1][sel] if spec is not None else sp_fft.rfft(_frames(x, t0, t1, n, hop)[sel] * window, axis=-1)
        power = part.real.astype(np.float64) ** 2 + part.imag.astype(np.float64) ** 2
        acc += np.sum(power, axis=0)
        acc_log += np.sum(np.log10(np.maximum(power[sounding[t0:t1][sel], band], 1e-30)), axis=0)
    psd = (acc / is_noise.sum()).astype(np.float32)
    nonstationarity = math.nan
    if sounding.any() and band.stop > band.start:
        mean_band = acc[band] / sounding.sum()  # frames without sound add (next to) no power
        ok = mean_band > 0
        if ok.any():
            gap = 10.0 * np.log10(mean_band[ok]) - 10.0 * acc_log[ok] / sounding.sum()
            nonstationarity = float(np.mean(gap)) - _GAUSS_LOG_GAP_DB
    noise_power = float(chunk_power[is_noise].mean())
    speech_power = float(chunk_power[is_speech].mean()) if is_speech.any() else 0.0
    return NoiseEstimate(
        psd=psd,
        n_fft=n,
        hop=hop,
        noise_frames=is_noise,
        speech_frames=is_speech,
        source=source,
        noise_s=float(is_noise.sum() * hop / rate),
        noise_floor_dbfs=_db(noise_power),
        speech_dbfs=_db(speech_power),
        snr_db=_snr_db(speech_power, noise_power),
        nonstationarity_db=nonstationarity,
    )


def _without_outliers(is_noise: np.ndarray, chunk_power: np.ndarray) -> np.ndarray:
    """``is_noise`` less the frames above the pauses' floor (see :data:`NOISE_FLOOR_PERCENTILE`).

    The noise profile is a mean, and one click or knock in short pauses dominates a mean (a clean
    LibriSpeech clip with 0.57 s of pauses and a click in them read 11 dB SNR; its floor is 24 dB
    below the speech). Stationary or moderately fluctuating noise (hiss, hum, fans, a tap, babble)
    lies within :data:`NOISE_SPAN_DB` of its low percentile, so it keeps (nearly) all its frames.
    When fewer than :data:`NOISE_MIN_SHARE` of the frames are that close to the floor, the low ones
    are a quieter stretch rather than the floor, and the span is counted from the median instead.
    """
    level = chunk_power[is_noise]
    span = 10.0 ** (NOISE_SPAN_DB / 10.0)
    keep = level <= np.percentile(level, NOISE_FLOOR_PERCENTILE) * span
    if keep.mean() < NOISE_MIN_SHARE:
        keep = level <= np.median(level) * span
    if keep.all():
        return is_noise
    out = is_noise.copy()
    out[np.flatnonzero(is_noise)[~keep]] = False
    return out


def _speech_mean(values: np.ndarray, step_s: float, speech: np.ndarray, speech_frame_s: float) -> float:
    """Mean of ``values`` (one per ``step_s`` frame from time 0) over the frames whose start lies in a speech
    frame of ``speech`` (frames of ``speech_frame_s``); NaN if none does."""
    if values.size == 0 or speech.size == 0:
        return math.nan
    idx = np.minimum((np.arange(values.size) * (step_s / speech_frame_s)).astype(np.int64), speech.size - 1)
    sel = speech[idx]
    return float(np.mean(values[sel], dtype=np.float64)) if sel.any() else math.nan


# -- applying ----------------------------------------------------------------
@dataclass(frozen=True)
class GateReport:
    """What :func:`spectral_gate` did, measured in the STFT domain.

    Attributes
    ----------
    snr_change_db : float
        Change of the speech-to-noise ratio (speech frames vs noise frames).
    noise_reduction_db : float
        Power removed from the noise frames.
    speech_loss_db : float
        Power removed from the speech frames (speech plus noise).
    """

    snr_change_db: float
    noise_reduction_db: float
    speech_loss_db: float


def _ola_norm(n_frames: int, n: int, hop: int, window_sq: np.ndarray) -> np.ndarray:
    """Sum of ``window_sq`` over the frames covering each sample of an overlap-add buffer."""
    k = n // hop
    w = window_sq.reshape(k, hop)
    rows = n_frames + k - 1
    norm = np.empty((rows, hop), np.float32)
    norm[:] = w.sum(axis=0)
    for q in (*range(min(k - 1, rows)), *range(max(k - 1, n_frames), rows)):
        norm[q] = w[max(0, q - n_frames + 1) : min(k, q + 1)].sum(axis=0)
    return norm.reshape(-1)


@dataclass(frozen=True)
class _GateConfig:
    mode: str
    strength: float
    threshold: float
    floor: float
    dd_alpha: float
    half_time: int
    half_freq: int
    track_alpha: float
    context: int
    block: int
    keep_dc: bool = False  # leave the DC bin (0 Hz +- one bin: DC offset, rumble) as it is


def _gate_config(
    rate: int,
    n: int,
    hop: int,
    *,
    mode: str,
    strength: float,
    threshold_db: float,
    max_reduction_db: float,
    dd_time_s: float,
    smooth_time_s: float,
    smooth_freq_hz: float,
    time_constant_s: float,
    block_s: float,
) -> _GateConfig:
    if mode not in MODES:
        raise ConfigError(f"mode must be one of {MODES}, got {mode!r}")
    if not 0.0 <= strength <= 1.0:
        raise ConfigError(f"strength must be in [0, 1], got {strength!r}")
    if max_reduction_db < 0 or smooth_time_s < 0 or smooth_freq_hz < 0 or dd_time_s < 0:
        raise ConfigError(
            "max_reduction_db, dd_time_s, smooth_time_s and smooth_freq_hz must be >= 0, got "
            f"{max_reduction_db!r}, {dd_time_s!r}, {smooth_time_s!r}, {smooth_freq_hz!r}"
        )
    if time_constant_s <= 0 or block_s <= 0:
        raise ConfigError(f"time_constant_s and block_s must be > 0, got {time_constant_s!r}, {block_s!r}")
    half_time = round(smooth_time_s * rate / hop)
    # Context frames on each side of a block: the window overlap, the smoothing, and time for the
    # decision-directed recursion (and, non-stationary, the noise tracker) to forget its start.
    settle_s = 1.0 if mode == "stationary" else max(1.0, 4 * time_constant_s)
    return _GateConfig(
        mode=mode,
        strength=float(strength),
        threshold=float(10.0 ** (threshold_db / 10.0)),
        floor=float(10.0 ** (-max_reduction_db / 20.0)),
        dd_alpha=float(math.exp(-hop / (rate * dd_time_s))) if dd_time_s > 0 else 0.0,
        half_time=half_time,
        half_freq=round(smooth_freq_hz * n / rate),
        track_alpha=float(math.exp(-hop / (rate * time_constant_s))),
        context=n // hop + half_time + math.ceil(settle_s * rate / hop),
        block=max(1, int(block_s * rate / hop)),
    )


def spectral_gate(
    audio: np.ndarray,
    *,
    sample_rate: int,
    noise: NoiseEstimate,
    mode: str = "stationary",
    strength: float = 1.0,
    threshold_db: float = 0.0,
    max_reduction_db: float = 30.0,
    dd_time_s: float = 0.1,
    smooth_time_s: float = 0.016,
    smooth_freq_hz: float = 40.0,
    time_constant_s: float = 1.0,
    block_s: float = 60.0,
) -> tuple[np.ndarray, GateReport]:
    """Apply the soft spectral gate with a measured noise profile.

    Parameters
    ----------
    audio : np.ndarray, shape (samples,) or (1, samples)
        Mono audio (the one ``noise`` was measured on).
    sample_rate : int
    noise : NoiseEstimate
        From :func:`estimate_noise` on ``audio``.
    mode : {"stationary", "nonstationary"}
        One noise spectrum, or one that follows the noise between pauses.
    strength : float
        0 returns the input unchanged, 1 applies the full gains.
    threshold_db : float
        A-priori SNR at which a bin's gain is one half (0 dB: Wiener gain).
    max_reduction_db : float
        Gain floor: no bin is attenuated by more than this.
    dd_time_s : float
        Time constant of the decision-directed a-priori SNR estimate (its
        recursion weight is ``exp(-hop_s / dd_time_s)``; 0: none).
    smooth_time_s, smooth_freq_hz : float
        Half-widths of the triangular gain smoothing (rounded to whole
        frames / bins; 0 disables).
    time_constant_s : float
        Noise tracking time constant (``"nonstationary"`` only).
    block_s : float
        Process in blocks of about this many seconds (bounded memory); the
        output does not depend on it in ``"stationary"`` mode (up to float32
        rounding).

    Returns
    -------
    audio : np.ndarray, float32, shape (samples,)
    report : GateReport

    Raises
    ------
    ConfigError
        For an unknown mode, an out-of-range parameter, or a profile made
        for other audio.
    """
    x = as_mono(audio)
    rate = check_sample_rate(sample_rate)
    n, hop = noise.n_fft, noise.hop
    config = _gate_config(
        rate,
        n,
        hop,
        mode=mode,
        strength=strength,
        threshold_db=threshold_db,
        max_reduction_db=max_reduction_db,
        dd_time_s=dd_time_s,
        smooth_time_s=smooth_time_s,
        smooth_freq_hz=smooth_freq_hz,
        time_constant_s=time_constant_s,
        block_s=block_s,
    )
    n_frames = _n_frames(x.size, n, hop)
    if noise.psd.shape != (n // 2 + 1,) or noise.noise_frames.shape != (n_frames,):
        raise ConfigError(
            f"noise profile is for n_fft={n} and {noise.noise_frames.size} frames; "
            f"this audio needs {n_frames} frames: measure it on the same audio"
        )
    return _gate(x, noise, config)


def _istft_add(spec: np.ndarray, n: int, hop: int, synthesis: np.ndarray, buf: np.ndarray) -> None:
    """Overlap-add the inverse rFFTs of ``spec``'s frames, times ``synthesis``, into ``buf``.

    :data:`_STFT_CHUNK` frames at a time through one scratch array: the same sums as transforming
    all frames first (each row is its own transform; frames are added in order), 10 % less CPU.
    """
    from ..kernels.denoise import overlap_add

    n_frames = spec.shape[0]
    scratch = np.empty((min(_STFT_CHUNK, n_frames), n), np.float32)
    for c0 in range(0, n_frames, _STFT_CHUNK):
        c1 = min(n_frames, c0 + _STFT_CHUNK)
        frames = sp_fft.irfft(spec[c0:c1], n=n, axis=-1, out=scratch[: c1 - c0])
        overlap_add(frames, synthesis, hop, buf[c0 * hop : (c1 - 1) * hop + n])


def _gate(x: np.ndarray, noise: NoiseEstimate, config: _GateConfig, spec: np.ndarray | None = None):
    """:func:`spectral_gate` on validated input; ``spec``, if given, is the STFT of all of ``x`` (consumed)."""
    # Imported here: a process that only cuts long files (the parent of a run with workers) never loads numba.
    from ..kernels.denoise import gate_frames, track_noise

    n, hop = noise.n_fft, noise.hop
    n_frames = _n_frames(x.size, n, hop)
    if config.strength == 0.0 or n_frames == 0:
        return x.copy(), GateReport(0.0, 0.0, 0.0)
    window = _window(n)
    window_sq = window * window
    k = n // hop
    interior = window_sq.reshape(k, hop).sum(axis=0)
    synthesis = (window / interior[0]).astype(np.float32)  # interior normalisation folded in
    flat = bool(np.allclose(interior, interior[0], rtol=1e-5))
    edges = _ola_norm(k, n, hop, window_sq) / interior[0]  # head and tail of any buffer of >= k frames
    bins = n // 2 + 1
    psd = np.array(noise.psd.reshape(1, -1), dtype=np.float32)
    if config.keep_dc:
        psd[0, 0] = 0.0  # no noise in the DC bin: its gain is 1
    no_gains = np.empty((0, bins), np.float32)
    power_in = np.zeros(n_frames, np.float32)
    power_out = np.zeros(n_frames, np.float32)
    block, context = config.block, config.context
    if n_frames <= block + context:
        block = n_frames  # one block: no point in re-processing context
    # One block: the output is a view of its overlap-add buffer (no copy of the signal).
    out = None if block == n_frames else np.empty(x.size, np.float32)
    if spec is not None and spec.shape[0] != n_frames:
        spec = None
    single = spec is not None and block == n_frames
    for b0 in range(0, n_frames, block):
        b1 = min(n_frames, b0 + block)
        t0, t1 = max(0, b0 - context), min(n_frames, b1 + context)
        part = spec if single else _stft(x, t0, t1, n, hop, window)
        if config.mode == "nonstationary":
            profile = np.empty((t1 - t0, bins), np.float32)
            track_noise(part, np.ascontiguousarray(noise.noise_frames[t0:t1]), psd[0], config.track_alpha, profile)
            if config.keep_dc:
                profile[:, 0] = 0.0
        else:
            profile = psd
        p_in = np.empty(t1 - t0, np.float32)
        p_out = np.empty(t1 - t0, np.float32)
        gate_frames(
            part,
            profile,
            config.dd_alpha,
            config.threshold,
            config.half_time,
            config.half_freq,
            config.floor,
            config.strength,
            np.zeros(bins, np.float32),
            no_gains,
            p_in,
            p_out,
        )
        power_in[b0:b1] = p_in[b0 - t0 : b1 - t0]
        power_out[b0:b1] = p_out[b0 - t0 : b1 - t0]
        buf = np.zeros((t1 - t0 - 1) * hop + n, np.float32)
        _istft_add(part, n, hop, synthesis, buf)
        # Exact normalisation where fewer than n / hop frames overlap (the buffer's ends).
        if flat and t1 - t0 >= k:
            edge = (k - 1) * hop
            buf[:edge] /= np.maximum(edges[:edge], np.float32(1e-6))
            buf[buf.size - edge :] /= np.maximum(edges[edges.size - edge :], np.float32(1e-6))
        else:
            buf /= np.maximum(_ola_norm(t1 - t0, n, hop, window_sq) / interior[0], np.float32(1e-6))
        # Keep the samples whose covering frames are all in this block: [b0 * hop, b1 * hop).
        origin = t0 * hop - n // 2
        s0 = 0 if b0 == 0 else b0 * hop
        s1 = x.size if b1 == n_frames else min(x.size, b1 * hop)
        if out is None:
            out = buf[s0 - origin : s1 - origin]
        else:
            out[s0:s1] = buf[s0 - origin : s1 - origin]
    return out, _gate_report(power_in, power_out, noise)


def _outputs(
    channels: np.ndarray, outs: list[np.ndarray], est: NoiseEstimate, *, stereo: bool
) -> tuple[GateReport, np.ndarray]:
    """The report of a method that replaced each channel (DeepFilterNet3, the blend), and its audio.

    ``channels`` (channels, samples) is the input, ``outs`` each channel's output; the report
    compares the first channel's frame powers before and after, as the gate's does.
    """
    n_frames = est.noise_frames.size
    report = _gate_report(
        _chunk_power(np.ascontiguousarray(channels[0], dtype=np.float32), est.hop, n_frames),
        _chunk_power(outs[0], est.hop, n_frames),
        est,
    )
    return report, np.ascontiguousarray(np.stack(outs) if stereo else outs[0])


def _gate_report(power_in: np.ndarray, power_out: np.ndarray, noise: NoiseEstimate) -> GateReport:
    def mean(p: np.ndarray, sel: np.ndarray) -> float:
        return float(p[sel].mean(dtype=np.float64)) if sel.any() else 0.0

    n_in, n_out = mean(power_in, noise.noise_frames), mean(power_out, noise.noise_frames)
    s_in, s_out = mean(power_in, noise.speech_frames), mean(power_out, noise.speech_frames)
    change = _snr_db(s_out, n_out) - _snr_db(s_in, n_in) if noise.speech_frames.any() else 0.0
    return GateReport(
        snr_change_db=float(change) if math.isfinite(change) else 0.0,
        noise_reduction_db=_db(n_in) - _db(n_out) if n_in > 0 and n_out > 0 else 0.0,
        speech_loss_db=_db(s_in) - _db(s_out) if s_in > 0 and s_out > 0 else 0.0,
    )


@dataclass(frozen=True)
class DenoiseReport:
    """What :func:`denoise` measured and did.

    Attributes
    ----------
    applied : bool
        False when the do-no-harm rule (or ``strength=0``, or no speech)
        skipped processing; the output is then the input.
    strength : float
        Strength actually used (after softening).
    reason : str
        Why it was skipped or softened; empty when applied as asked.
    noise : NoiseEstimate
        The measurement.
    snr_after_db : float
        Estimated SNR of the output (``snr_before + snr_change``).
    gate : GateReport or None
        None when skipped.
    """

    applied: bool
    strength: float
    reason: str
    noise: NoiseEstimate
    snr_after_db: float
    gate: GateReport | None

    @property
    def snr_before_db(self) -> float:
        """Estimated SNR of the input."""
        return self.noise.snr_db


def denoise(
    audio: np.ndarray,
    *,
    sample_rate: int,
    mode: str = "stationary",
    strength: float = 1.0,
    soften_above_snr_db: float = 20.0,
    skip_above_snr_db: float = 40.0,
    speech: np.ndarray | None = None,
    guard_s: float = 0.2,
    frame_s: float = 0.032,
    frames_per_window: int = 2,
    **gate_options: float,
) -> tuple[np.ndarray, DenoiseReport]:
    """Measure the noise, decide how hard to gate (do no harm), and gate.

    Parameters
    ----------
    audio : np.ndarray, shape (samples,) or (1, samples)
        Mono audio.
    sample_rate : int
    mode : {"stationary", "nonstationary"}
    strength : float
        Wanted strength in [0, 1].
    soften_above_snr_db, skip_above_snr_db : float
        Above the first, the strength falls linearly with the estimated SNR,
        reaching 0 (no processing) at the second.
    speech : np.ndarray of bool, optional
        VAD decisions on 30 ms frames (:func:`prep.dsp.vad.speech_mask`);
        computed when omitted.
    guard_s, frame_s, frames_per_window
        See :func:`estimate_noise`.
    **gate_options
        Passed to :func:`spectral_gate` (``threshold_db``,
        ``max_reduction_db``, ``dd_time_s``, ``smooth_time_s``,
        ``smooth_freq_hz``, ``time_constant_s``, ``block_s``).

    Returns
    -------
    audio : np.ndarray, float32, shape (samples,)
        The input itself when skipped.
    report : DenoiseReport
    """
    plan = _plan(
        audio,
        sample_rate=sample_rate,
        mode=mode,
        strength=strength,
        soften_above_snr_db=soften_above_snr_db,
        skip_above_snr_db=skip_above_snr_db,
        guard_s=guard_s,
        frame_s=frame_s,
        frames_per_window=frames_per_window,
        **gate_options,
    )
    x, rate = plan.x, plan.sample_rate
    if speech is None:
        speech = speech_mask(x, sample_rate=rate, frame_s=_VAD_FRAME_S) if x.size else np.zeros(0, bool)
    return plan.run(*plan.measure(np.asarray(speech, dtype=bool)))


@dataclass(frozen=True, eq=False)
class _Plan:
    """A validated :func:`denoise` call on one mono signal: :meth:`measure`, then :meth:`run` what it measured.

    :func:`denoise` is exactly ``plan.run(*plan.measure(speech))``; the stage's ``auto`` choice keeps the
    measurement it chose by and, for the gate, runs it, so the noise is measured once per clip.
    """

    x: np.ndarray
    sample_rate: int
    n: int
    hop: int
    guard_s: float
    config: _GateConfig
    strength: float
    soften_above_snr_db: float
    skip_above_snr_db: float

    def measure(self, speech: np.ndarray) -> tuple[NoiseEstimate, np.ndarray | None]:
        """The noise estimate and, when the signal is one gate block, its STFT (taken once, for both)."""
        x, n, hop, config = self.x, self.n, self.hop, self.config
        n_frames = _n_frames(x.size, n, hop)
        spec = _stft(x, 0, n_frames, n, hop, _window(n)) if 0 < n_frames <= config.block + config.context else None
        return _measure(x, self.sample_rate, speech, _VAD_FRAME_S, n, hop, self.guard_s, spec=spec), spec

    def run(self, est: NoiseEstimate, spec: np.ndarray | None) -> tuple[np.ndarray, DenoiseReport]:
        """The do-no-harm decision and the gate, from :meth:`measure`'s result (``spec`` is consumed)."""
        snr, strength = est.snr_db, self.strength
        soften, skip = self.soften_above_snr_db, self.skip_above_snr_db
        reason = ""
        used = strength
        if not est.has_speech:
            used, reason = 0.0, "no speech detected: nothing to protect, left as is"
        elif est.source == "empty":
            used, reason = 0.0, "no noise frames to measure"
        elif snr >= skip:
            used, reason = 0.0, f"estimated SNR {snr:.1f} dB >= {skip:g} dB: already clean, left as is"
        elif snr > soften:
            used = strength * (skip - snr) / (skip - soften)
            reason = f"estimated SNR {snr:.1f} dB > {soften:g} dB: strength softened to {used:.2f}"
        if used <= 0.0:
            return self.x, DenoiseReport(False, 0.0, reason or "strength is 0", est, snr, None)
        # Softened and clean (SNR above KEEP_DC_ABOVE_SNR_DB): only the voice's band is gated; the DC bin
        # (0 Hz +- 31 Hz: DC offset and infrasonic rumble, which no one hears) stays, so a clean clip's
        # rumble is no change.
        keep_dc = snr > max(soften, KEEP_DC_ABOVE_SNR_DB)
        config = dataclasses.replace(self.config, strength=float(used), keep_dc=keep_dc)
        y, gate = _gate(self.x, est, config, spec=spec)
        return y, DenoiseReport(True, float(used), reason, est, snr + gate.snr_change_db, gate)


def _plan(
    audio: np.ndarray,
    *,
    sample_rate: int,
    mode: str = "stationary",
    strength: float = 1.0,
    soften_above_snr_db: float = 20.0,
    skip_above_snr_db: float = 40.0,
    guard_s: float = 0.2,
    frame_s: float = 0.032,
    frames_per_window: int = 2,
    **gate_options: float,
) -> _Plan:
    """:func:`denoise`'s parameters checked (``ConfigError`` naming the bad one) and its STFT geometry."""
    if not soften_above_snr_db < skip_above_snr_db:
        raise ConfigError(
            f"need soften_above_snr_db < skip_above_snr_db, got {soften_above_snr_db!r}, {skip_above_snr_db!r}"
        )
    if not 0.0 <= strength <= 1.0:
        raise ConfigError(f"strength must be in [0, 1], got {strength!r}")
    x = as_mono(audio)
    rate = check_sample_rate(sample_rate)
    if guard_s < 0:
        raise ConfigError(f"guard_s must be >= 0, got {guard_s!r}")
    n, hop = stft_size(sample_rate=rate, frame_s=frame_s, frames_per_window=frames_per_window)
    options = {**_GATE_DEFAULTS, **gate_options}
    unknown = set(options) - set(_GATE_DEFAULTS)
    if unknown:
        raise ConfigError(f"unknown gate option(s) {sorted(unknown)}; known: {sorted(_GATE_DEFAULTS)}")
    config = _gate_config(rate, n, hop, mode=mode, strength=strength, **options)
    return _Plan(x, rate, n, hop, float(guard_s), config, float(strength), soften_above_snr_db, skip_above_snr_db)


#: Denoising methods of the stage: ``auto`` chooses per clip, the others force one.
METHODS = ("auto", "gate", "deepfilter", "off")

#: What a run whose ``auto`` denoise would use DeepFilterNet3 says once when ``[enhance]`` is missing.
ENHANCE_NOTICE = (
    "neural denoising off: pip install 'voiceprep[enhance]' adds DeepFilterNet3 for noisy clips "
    "(chosen per clip where the gate's SNR estimate is below 19 dB, or 22 dB for non-stationary noise: "
    "babble, cafe, dishes, crackle, "
    "+3 to +6 dB SI-SDR over the spectral gate at 0-10 dB SNR, and averaged with the gate from 20 to 33 dB "
    "where it hears noise in the speech); the spectral gate denoises every clip now"
)


def enhance_model() -> str:
    """``"<distribution>==<version>"`` of DeepFilterNet3 when the ``[enhance]`` extra is usable, else ``""``.

    Only looks at what is installed (nothing is loaded or hashed).
    """
    from ..dsp.deepfilter import DEEPFILTER_MODEL, deepfilter_available

    return f"{DEEPFILTER_MODEL.distribution}=={DEEPFILTER_MODEL.version}" if deepfilter_available() else ""


def enhance_missing_notice(stages: Iterable[object]) -> str | None:
    """:data:`ENHANCE_NOTICE` when a ``denoise`` stage in ``auto`` runs without the extra, else None."""
    wanted = any(
        getattr(s, "name", "") == "denoise" and getattr(s, "method", "") == "auto" and not getattr(s, "enhancer", "")
        for s in stages
    )
    return ENHANCE_NOTICE if wanted else None


@dataclass(frozen=True)
class Denoise:
    """Pipeline stage: spectral gate or DeepFilterNet3, chosen per clip (see :func:`denoise`).

    ``method``:

    * ``"auto"`` (default): DeepFilterNet3 (:func:`prep.dsp.deepfilter.deepfilter`, the ``[enhance]``
      extra) where the gate's own SNR estimate of the clip is below ``deepfilter_below_snr_db`` (19 dB),
      or below ``nonstationary_below_snr_db`` (22 dB) when the noise is non-stationary
      (:attr:`NoiseEstimate.nonstationarity_db` at least ``nonstationary_above_db``, 0.7 dB: babble,
      cafe, crackle) (:meth:`prefers_deepfilter`); from ``check_from_snr_db`` (20 dB) up to
      ``check_below_snr_db`` (33 dB) both run (:meth:`checks_deepfilter`) and the output is
      ``(1 - blend_weight) x gate + blend_weight x DeepFilterNet3`` (``blend_weight`` 0.5) where the model's
      local SNR over the VAD's speech frames is below ``blend_below_speech_lsnr_db`` (19 dB: it hears noise
      in the speech; :meth:`blends_at`), the gate's output otherwise; the gate (with its do-no-harm rule)
      elsewhere; without the extra, always the gate. At 20 dB SNR the gate beats DeepFilterNet3 on
      stationary noise (hum, a tap, an exercise bike) and loses on babble and crackle, and the gate's
      estimate of crackle reads as high as a clean recording's quiet floor: the two methods' errors differ,
      so their mean beats the better one on average there, while the model's speech local SNR keeps
      clean recordings (23-33 dB) from it. The constants were chosen on half of
      ``benchmarks/enhance.py``'s mixtures and checked on the other half (``benchmarks/RESULTS.md``);
    * ``"gate"``, ``"deepfilter"``: that method for every clip (DeepFilterNet3 always runs, no
      do-no-harm rule); ``"off"``: nothing.

    Records ``denoise_method`` (what the output is: ``gate``, ``deepfilter``, ``blend`` or ``off``),
    ``noise_floor_dbfs``, ``denoise_snr_in_db``, ``denoise_snr_out_db``
    (the gate's SNR estimates of the input and of the output, in the same frames, whichever method ran),
    ``denoise_applied``, ``denoise_strength`` (as used), ``noise_profile`` (where the profile came from),
    ``noise_nonstationarity_db``,
    ``noise_reduction_db``, ``deepfilter_lsnr_db`` (the model's own mean local SNR, when it ran) and,
    when skipped, softened, blended or checked, ``denoise_note`` (a blend or a check names the estimate and
    the model's speech local SNR that decided). CPU: the model runs on the clips it denoises and on those
    ``auto`` checks (about 9x realtime, against about 750x for the gate).
    The speech mask is always the stage's own VAD run (30 ms frames) on the channel mean, never
    regions an earlier stage found for another purpose, so the stage gives what :func:`denoise` gives.
    The regions it finds are left on the clip's :attr:`~prep.clip.Clip.speech` (denoising moves no
    speech), so :class:`~prep.stages.trim.Trim` does not run the VAD again.
    Multichannel audio is processed channel by channel (gate: each with its own profile); the
    metrics are those of the first channel.
    """

    name: ClassVar[str] = "denoise"
    changes: ClassVar[frozenset[str]] = frozenset({"audio"})  # speech stays where it was (see run_stages)
    method: str = "auto"
    mode: str = "stationary"
    strength: float = 1.0
    soften_above_snr_db: float = 20.0
    skip_above_snr_db: float = 40.0
    max_reduction_db: float = 30.0
    frames_per_window: int = 2  # STFT frames per window length: 2 (50 % overlap) or 4 (75 %)
    deepfilter_below_snr_db: float = 19.0
    nonstationary_below_snr_db: float = 22.0
    nonstationary_above_db: float = 0.7
    check_from_snr_db: float = 20.0
    check_below_snr_db: float = 33.0
    blend_below_speech_lsnr_db: float = 19.0
    blend_weight: float = 0.5
    enhancer: str = field(default_factory=enhance_model)  # the [enhance] model in use; "" without the extra

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ConfigError(f"denoise method must be one of {METHODS}, got {self.method!r}")
        rule = (self.deepfilter_below_snr_db, self.nonstationary_below_snr_db, self.nonstationary_above_db,
                self.check_from_snr_db, self.check_below_snr_db, self.blend_below_speech_lsnr_db)
        if not all(math.isfinite(v) for v in rule):
            raise ConfigError(
                "deepfilter_below_snr_db, nonstationary_below_snr_db, nonstationary_above_db, check_from_snr_db, "
                f"check_below_snr_db and blend_below_speech_lsnr_db must be finite, got {rule!r}"
            )
        if not 0.0 < self.blend_weight <= 1.0:
            raise ConfigError(f"blend_weight must be in (0, 1], got {self.blend_weight!r}")
        if self.method == "deepfilter" and not self.enhancer:
            from ..dsp.deepfilter import DEEPFILTER_MODEL
            from ..models import ModelError

            raise ModelError(
                f"denoise method 'deepfilter' needs model {DEEPFILTER_MODEL.name}: "
                f"{DEEPFILTER_MODEL.distribution} is not installed; {DEEPFILTER_MODEL.install_hint}"
            )

    def apply(self, clip: Clip) -> Clip:
        audio = as_audio(clip.require_audio())
        rate = clip.sample_rate
        if self.method == "off":
            return clip.with_metrics(denoise_method="off", denoise_applied=False, denoise_note="denoising is off")
        channels = audio.reshape(1, -1) if audio.ndim == 1 else audio
        mono = channels[0] if channels.shape[0] == 1 else channels.mean(axis=0, dtype=np.float32)
        speech = speech_mask(mono, sample_rate=rate, frame_s=_VAD_FRAME_S) if mono.size else np.zeros(0, bool)
        # Left on the clip: denoising moves no speech, so Trim and Slice use them instead of a VAD pass each.
        found = tuple(mask_to_regions(speech, frame_s=_VAD_FRAME_S, duration_s=mono.size / float(rate)))
        measured = None
        if self.method != "gate" and self.enhancer:
            # The gate's own measurement of the first channel decides; the gate then runs on it (measured once).
            plan = self._plan(channels[0], rate)
            est, spec = plan.measure(speech)
            wanted = self.method == "deepfilter" or self.prefers_deepfilter(est)
            if wanted:
                del spec
                return dataclasses.replace(self._deepfilter(clip, audio, channels, est), speech=found)
            measured = (plan, est, spec)
            if self.method == "auto" and self.checks_deepfilter(est):
                return dataclasses.replace(self._blend(clip, audio, channels, speech, measured), speech=found)
        return dataclasses.replace(self._gate(clip, audio, channels, speech, measured), speech=found)

    def prefers_deepfilter(self, est: NoiseEstimate) -> bool:
        """The ``auto`` rule: True if DeepFilterNet3 should denoise the clip ``est`` was measured on.

        DeepFilterNet3 where the gate's SNR estimate is below ``deepfilter_below_snr_db``, and, up to
        ``nonstationary_below_snr_db``, where the noise is non-stationary
        (:attr:`NoiseEstimate.nonstationarity_db` at least ``nonstationary_above_db``); the gate
        elsewhere, and where there is no speech or no noise to measure.
        """
        if not est.has_speech or est.source == "empty":
            return False
        return self.prefers_deepfilter_at(est.snr_db, est.nonstationarity_db)

    def prefers_deepfilter_at(self, snr_db: float, nonstationarity_db: float) -> bool:
        """:meth:`prefers_deepfilter` on the two numbers it decides by (a clip with speech and noise frames):
        the gate's SNR estimate and :attr:`NoiseEstimate.nonstationarity_db` (NaN: not non-stationary)."""
        if snr_db < self.deepfilter_below_snr_db:
            return True
        return bool(snr_db < self.nonstationary_below_snr_db and nonstationarity_db >= self.nonstationary_above_db)

    def checks_deepfilter(self, est: NoiseEstimate) -> bool:
        """True if ``auto`` runs DeepFilterNet3 *and* the gate on the clip ``est`` was measured on, to blend
        them if the model hears noise in the speech (:meth:`blends_at`): the gate's SNR estimate from
        ``check_from_snr_db`` up to ``check_below_snr_db``, where :meth:`prefers_deepfilter` keeps the gate.

        There the estimate cannot tell noise from a clean recording's floor: vinyl crackle at 20 dB SNR
        reads 22.8-32.1 dB (its clicks are left out of the noise floor), clean recordings with a quiet
        codec-shaped floor 23-32 dB; DeepFilterNet3 is better on the one (+3 dB SI-SDR over the gate on
        crackle), harmful on the other (down to 16.6 dB SI-SDR against the clean input).
        """
        if not est.has_speech or est.source == "empty":
            return False
        return self.checks_deepfilter_at(est.snr_db, est.nonstationarity_db)

    def checks_deepfilter_at(self, snr_db: float, nonstationarity_db: float) -> bool:
        """:meth:`checks_deepfilter` on the two numbers it decides by (a clip with speech and noise frames)."""
        if self.prefers_deepfilter_at(snr_db, nonstationarity_db):
            return False
        return bool(self.check_from_snr_db <= snr_db < self.check_below_snr_db)

    def blends_at(self, speech_lsnr_db: float) -> bool:
        """Whether a checked clip (:meth:`checks_deepfilter`) gets the blend: DeepFilterNet3's mean local SNR
        over the speech frames (VAD) below ``blend_below_speech_lsnr_db`` (NaN: no; the gate is kept).

        The model's local SNR in speech frames reads 22.8-32.6 dB on every clean corpus recording whose
        estimate falls in the checked zone, and 9-19 dB with 20 dB SNR noise of any kind; unlike its mean
        over all frames it does not fall with the share of pauses (which read about -10 dB however quiet).
        """
        return bool(speech_lsnr_db < self.blend_below_speech_lsnr_db)

    def _blend(
        self,
        clip: Clip,
        audio: np.ndarray,
        channels: np.ndarray,
        speech: np.ndarray,
        measured: tuple[_Plan, NoiseEstimate, np.ndarray | None],
    ) -> Clip:
        """DeepFilterNet3 and the gate on each channel; their weighted mean if :meth:`blends_at` the model's
        local SNR over the first channel's speech frames, else the gate's output (and metrics) with a note."""
        from ..dsp.deepfilter import FRAME_S, deepfilter

        rate = clip.sample_rate
        est = measured[1]
        dfn, reports = zip(*(deepfilter(ch, sample_rate=rate) for ch in channels), strict=True)
        speech_lsnr = _speech_mean(reports[0].frame_lsnr_db, FRAME_S, speech, _VAD_FRAME_S)
        gated = self._gate(clip, audio, channels, speech, measured)
        zone = (f"estimated SNR {est.snr_db:.1f} dB in [{self.check_from_snr_db:g}, {self.check_below_snr_db:g}) dB, "
                f"DeepFilterNet3's local SNR over speech {speech_lsnr:.1f} dB")
        prior = gated.metrics.get("denoise_note")  # the gate's softening (its half of a blend has it too)
        if not self.blends_at(speech_lsnr):
            note = f"{zone} >= {self.blend_below_speech_lsnr_db:g} dB: gate kept"
            return gated.with_metrics(denoise_note=f"{prior}; {note}" if prior else note,
                                      deepfilter_lsnr_db=reports[0].lsnr_db)
        w = np.float32(self.blend_weight)
        g = as_audio(gated.audio).reshape(channels.shape)
        outs = [(np.float32(1.0) - w) * g[k] + w * dfn[k] for k in range(channels.shape[0])]
        report, new_audio = _outputs(channels, outs, est, stereo=audio.ndim == 2)
        note = (f"{zone} < {self.blend_below_speech_lsnr_db:g} dB: blend, {1.0 - self.blend_weight:g} x gate + "
                f"{self.blend_weight:g} x DeepFilterNet3")
        return dataclasses.replace(gated, audio=new_audio).with_metrics(
            denoise_method="blend",
            denoise_snr_out_db=est.snr_db + report.snr_change_db,
            denoise_applied=True,
            noise_reduction_db=report.noise_reduction_db,
            deepfilter_lsnr_db=reports[0].lsnr_db,
            denoise_note=f"{prior}; {note}" if prior else note,
        )

    def _plan(self, channel: np.ndarray, rate: int) -> _Plan:
        """The :func:`denoise` call this stage makes on one channel, validated (see :class:`_Plan`)."""
        return _plan(
            channel,
            sample_rate=rate,
            mode=self.mode,
            strength=self.strength,
            soften_above_snr_db=self.soften_above_snr_db,
            skip_above_snr_db=self.skip_above_snr_db,
            frames_per_window=self.frames_per_window,
            max_reduction_db=self.max_reduction_db,
        )

    def _deepfilter(self, clip: Clip, audio: np.ndarray, channels: np.ndarray, est: NoiseEstimate) -> Clip:
        from ..dsp.deepfilter import deepfilter

        rate = clip.sample_rate
        outs, lsnr = [], math.nan
        for k, ch in enumerate(channels):
            y, rep = deepfilter(ch, sample_rate=rate)
            outs.append(y)
            if k == 0:
                lsnr = rep.lsnr_db
        report, new_audio = _outputs(channels, outs, est, stereo=audio.ndim == 2)
        return dataclasses.replace(clip, audio=new_audio).with_metrics(
            denoise_method="deepfilter",
            noise_floor_dbfs=est.noise_floor_dbfs,
            denoise_snr_in_db=est.snr_db,
            denoise_snr_out_db=est.snr_db + report.snr_change_db,
            denoise_applied=True,
            denoise_strength=1.0,
            noise_profile=est.source,
            noise_nonstationarity_db=est.nonstationarity_db,
            noise_reduction_db=report.noise_reduction_db,
            deepfilter_lsnr_db=lsnr,
        )

    def _gate(
        self,
        clip: Clip,
        audio: np.ndarray,
        channels: np.ndarray,
        speech: np.ndarray,
        measured: tuple[_Plan, NoiseEstimate, np.ndarray | None] | None = None,
    ) -> Clip:
        """:func:`denoise` on each channel; ``measured``: the first channel's plan and ``plan.measure(speech)``."""
        rate = clip.sample_rate
        outs, reports = [], []
        for k, ch in enumerate(channels):
            if k == 0 and measured is not None:
                plan, est, spec = measured
            else:
                plan = self._plan(ch, rate)
                est, spec = plan.measure(speech)
            y, rep = plan.run(est, spec)
            outs.append(y)
            reports.append(rep)
        first = reports[0]
        applied = any(r.applied for r in reports)
        if applied:
            new_audio = np.ascontiguousarray(np.stack(outs) if audio.ndim == 2 else outs[0])
            clip = dataclasses.replace(clip, audio=new_audio)
        metrics = {
            "denoise_method": "gate",
            "noise_floor_dbfs": first.noise.noise_floor_dbfs,
            "denoise_snr_in_db": first.snr_before_db,
            "denoise_snr_out_db": first.snr_after_db,
            "denoise_applied": applied,
            "denoise_strength": first.strength,
            "noise_profile": first.noise.source,
            "noise_nonstationarity_db": first.noise.nonstationarity_db,
            "noise_reduction_db": first.gate.noise_reduction_db if first.gate else 0.0,
        }
        if first.reason:
            metrics["denoise_note"] = first.reason
        return clip.with_metrics(**metrics)
