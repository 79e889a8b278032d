"""Model-free quality metrics, the 0–100 score and the verdict rules.

Every metric is a pure function of the signal; :func:`measure_quality`
computes them all with one VAD pass.  Two stages use them:

* :class:`Measure` (``"measure_input"``) runs after slicing and records the
  *source* quality of each clip's span as ``input_*`` metrics, read from the
  downmixed source before resampling, denoising and loudness normalisation
  changed the signal (resampling smears clipped plateaus, gating hides noise
  and reverb tails).
* :class:`Score` (``"score"``) runs last: it measures the processed audio,
  adds the output loudness when no earlier stage did, computes the 0–100
  score and adds its findings (:mod:`prep.findings`; Fish Audio's sample guidance:
  clean, mono, one speaker, ≥ 10 s per clip, no music, reverb or noise).

Metrics (units in the names; ``input_`` prefix for the :class:`Measure` copy)

==================  =========================================================
``duration_s``      length of the clip.
``speech_s``        speech detected by :mod:`prep.dsp.vad` (kept from
                    :class:`prep.stages.trim.Trim` when it ran).
``speech_ratio``    ``speech_s / duration_s``.
``snr_db``          active-speech SNR, speech-band weighted (K-weighting's
                    shelf, 100 Hz high-pass): mean power of the VAD speech
                    frames (minus the noise) over the noise floor, raised
                    under a fluctuating noise such as babble
                    (:func:`snr_estimate`); capped at 100 dB (digital silence).
``clipping_ratio``  fraction of samples on a clipped plateau: runs of at least
                    2 samples within 0.01 % of the positive or negative peak.
``clipped_runs``    number of such plateaus.
``dc_offset``       mean sample value (fraction of full scale).
``bandwidth_hz``    highest frequency whose long-term spectrum is within
                    50 dB of the speech band's level: ~3.5–4 kHz for phone
                    audio, ~8 kHz for 16 kHz sources, whatever the file's rate.
``reverb_s``        decay-time estimate (T60-like, seconds) from how fast the
                    500–2000 Hz energy falls after speech offsets (the
                    25th percentile over offsets).  Dry read speech gives
                    ~0.1–0.35 s, speech in reverberant rooms ≳ 0.45 s.
                    Rough: a flag, not a measurement of the room.
``tonal_ratio``     music/hum indicator in [0, 1]: the larger of (a) the
                    share of the quietest 30 % of frames carrying a steady
                    spectral peak for ≥ 0.25 s and (b) the share of the
                    background spectrum's power in tonal peaks.  Noisy
                    speech ≲ 0.3; background music or hum ≳ 0.5 (a steady
                    whine in the room counts too).
``dnsmos_*``        DNSMOS P.835 ``ovrl``/``sig``/``bak`` and P.808 MOS, only
                    with the optional ``[mos]`` extra (``speechmos``).
``score``           0–100, see :func:`quality_score`.
==================  =========================================================
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import soxr

from ..audio import as_audio, check_sample_rate, mix_to_mono
from ..errors import ConfigError
from . import spectral
from .filters import ANALYSIS_RATE, ENV_HOP_S, band_envelope, long_runs_any, max3, prominent

__all__ = [
    "ANALYSIS_RATE",
    "MAX_SNR_DB",
    "MOS_MISSING_NOTICE",
    "ClippingReport",
    "SNR_HIGHPASS_HZ",
    "SnrEstimate",
    "bandwidth_hz",
    "clipping",
    "dc_offset",
    "dnsmos",
    "frame_powers",
    "snr_weighting_sos",
    "weighted_frame_powers",
    "loudness_and_frame_powers",
    "ltas_db",
    "measure_quality",
    "mos_available",
    "mos_missing_notice",
    "reverb_decay_s",
    "snr_estimate",
    "tonal_ratio",
]

log = logging.getLogger(__name__)

#: SNR reported when the pauses are digital silence.
MAX_SNR_DB = 100.0
_CHUNK_S = 30.0  # long signals are analysed in blocks of this many seconds
VAD_FRAME_S = 0.02
_POWER_FLOOR = 1e-12  # -120 dBFS


# -- helpers -----------------------------------------------------------------
def _db(power: float) -> float:
    return 10.0 * math.log10(max(power, _POWER_FLOOR))


def _chunks(n: int, size: int) -> Iterator[slice]:
    for start in range(0, max(n, 1), max(size, 1)):
        yield slice(start, min(n, start + size))


def _to_analysis_rate(x: np.ndarray, sample_rate: int) -> np.ndarray:
    if sample_rate == ANALYSIS_RATE or x.size == 0:
        return x
    return soxr.resample(x, sample_rate, ANALYSIS_RATE, quality="MQ").astype(np.float32, copy=False)


def _runs(mask: np.ndarray) -> np.ndarray:
    """Start/stop indices of the runs of True in a 1-D bool array, shape (runs, 2)."""
    padded = np.concatenate([[False], np.asarray(mask, bool), [False]])
    return np.flatnonzero(padded[1:] != padded[:-1]).reshape(-1, 2)


def _dilate(mask: np.ndarray, k: int) -> np.ndarray:
    """``mask`` widened by ``k`` frames each side (a binary dilation; outside the signal is False)."""
    mask = np.asarray(mask, bool)
    if mask.size == 0:
        return mask
    padded = np.concatenate([np.zeros(k, bool), mask, np.zeros(k, bool)])
    return np.lib.stride_tricks.sliding_window_view(padded, 2 * k + 1).any(axis=1)


def _median5(x: np.ndarray) -> np.ndarray:
    """Running median over 5 values, edges repeated (``scipy.ndimage.median_filter(x, 5, mode="nearest")``)."""
    padded = np.pad(x, 2, mode="edge")
    return np.median(np.lib.stride_tricks.sliding_window_view(padded, 5), axis=-1).astype(x.dtype, copy=False)


def vad_mask(x: np.ndarray, *, sample_rate: int) -> np.ndarray:
    from .vad import speech_mask

    if x.size < int(VAD_FRAME_S * sample_rate):
        return np.zeros(0, bool)
    return speech_mask(x, sample_rate=sample_rate, frame_s=VAD_FRAME_S)


# -- SNR ---------------------------------------------------------------------
@dataclass(frozen=True)
class SnrEstimate:
    """What :func:`snr_estimate` found.

    Attributes
    ----------
    snr_db : float
        Active-speech SNR in dB (``nan`` without speech frames, at most
        :data:`MAX_SNR_DB`).
    speech_dbfs, noise_dbfs : float
        Mean power of speech (noise subtracted) and of noise, dB re full scale.
    speech_frames, noise_frames : int
        Frames used for each.
    noise_from : str
        ``"pauses"`` (the floor of the frames away from speech), ``"quietest"``
        (the quietest 5 % of frames, when the clip has almost no pause) or
        ``"dips"`` (the floor of all frames, the dips between words, when it
        lies below the other; see :func:`snr_estimate`).
    """

    snr_db: float
    speech_dbfs: float
    noise_dbfs: float
    speech_frames: int
    noise_frames: int
    noise_from: str


def frame_powers(audio: np.ndarray, *, sample_rate: int, frame_s: float = VAD_FRAME_S) -> np.ndarray:
    """Mean power of consecutive non-overlapping frames.

    Parameters
    ----------
    audio : np.ndarray, shape (samples,) or (channels, samples)
        Multichannel audio is averaged to mono first.
    sample_rate : int
    frame_s : float
        Frame length in seconds; a partial last frame is dropped.

    Returns
    -------
    np.ndarray, float64, shape (samples // round(frame_s * sample_rate),)
    """
    rate = check_sample_rate(sample_rate)
    if frame_s <= 0:
        raise ConfigError(f"frame_s must be > 0, got {frame_s!r}")
    x = mix_to_mono(audio)
    n = max(1, round(frame_s * rate))
    m = x.size // n
    frames = x[: m * n].reshape(m, n)
    return np.einsum("ij,ij->i", frames, frames, dtype=np.float64) / n


#: Corner of the SNR weighting's high-pass (:func:`snr_weighting_sos`): the speech band's lower edge.
SNR_HIGHPASS_HZ = 100.0


def snr_weighting_sos(*, sample_rate: int) -> np.ndarray:
    """The SNR's frequency weighting: K-weighting's high shelf and a 2nd-order Butterworth high-pass at 100 Hz.

    BS.1770's K-weighting (:func:`prep.dsp.loudness.kweighting_sos`) with its 38 Hz high-pass moved
    up to the speech band's edge (:data:`SNR_HIGHPASS_HZ`): hiss counts with the +4 dB the shelf gives
    it above ~2 kHz, rumble and DC not at all, 50 Hz hum 12 dB less than broadband noise and its
    harmonics from 100 Hz up nearly fully.  DNSMOS BAK of speech mixed with 16 noises (white, pink,
    brown, hiss, rumble, hums, six recorded noises) follows the SNR under this weighting more closely
    than the K-weighted or the unweighted SNR (Spearman 0.93 against 0.90 and 0.84; A-weighting 0.95,
    but its floor ranks real recordings worse; ``benchmarks/snr.py``).  Two biquads, so the loudness
    meter's kernel runs it.

    Parameters
    ----------
    sample_rate : int
        Hz, at least :data:`prep.dsp.loudness.MIN_SAMPLE_RATE`.

    Returns
    -------
    np.ndarray, float64, shape (2, 6)
        Second-order sections ``b0 b1 b2 1 a1 a2``: the shelf, then the high-pass.
    """
    from .loudness import kweighting_sos

    shelf = kweighting_sos(sample_rate=sample_rate)[0]
    k = math.tan(math.pi * SNR_HIGHPASS_HZ / sample_rate)
    q = 1.0 / math.sqrt(2.0)
    norm = 1.0 / (1.0 + k / q + k * k)
    highpass = [norm, -2.0 * norm, norm, 1.0, 2.0 * (k * k - 1.0) * norm, (1.0 - k / q + k * k) * norm]
    return np.array([shelf, highpass], dtype=np.float64)


def weighted_frame_powers(audio: np.ndarray, *, sample_rate: int, frame_s: float = VAD_FRAME_S) -> np.ndarray:
    """Mean power of consecutive non-overlapping frames after the SNR's weighting (:func:`snr_weighting_sos`).

    The frames are those of :func:`frame_powers` (a partial last frame is dropped).  Below
    :data:`prep.dsp.loudness.MIN_SAMPLE_RATE` the powers are unweighted.

    Parameters
    ----------
    audio : np.ndarray, shape (samples,) or (channels, samples)
        Multichannel audio is averaged to mono first.
    sample_rate : int
    frame_s : float
        Frame length in seconds.

    Returns
    -------
    np.ndarray, float64, shape (samples // round(frame_s * sample_rate),)
    """
    from .loudness import MIN_SAMPLE_RATE, _k  # the kernels on first use: a run's parent never loads numba

    rate = check_sample_rate(sample_rate)
    if rate < MIN_SAMPLE_RATE:
        return frame_powers(audio, sample_rate=rate, frame_s=frame_s)
    if frame_s <= 0:
        raise ConfigError(f"frame_s must be > 0, got {frame_s!r}")
    x = mix_to_mono(audio)
    n = max(1, round(frame_s * rate))
    m = x.size // n
    out = np.zeros(m + 1, dtype=np.float64)
    if m:  # the loudness meter's kernel: two biquads, squared and summed per frame
        frames = np.ascontiguousarray(x[: m * n], dtype=np.float32).reshape(1, -1)
        _k.kweighted_power_sums(frames, snr_weighting_sos(sample_rate=rate), np.zeros((1, 4)), np.ones(1), n,
                                np.zeros(2), out)
    return out[:m] / n


def loudness_and_frame_powers(audio: np.ndarray, *, sample_rate: int) -> tuple[float, np.ndarray]:
    """:func:`prep.dsp.loudness.integrated_loudness` and :func:`weighted_frame_powers` of one signal, one pass.

    Both filter a signal through two biquads and sum its squares (100 ms sub-blocks through the
    K-weighting, 20 ms frames through the SNR's weighting); one loop runs both cascades, with the
    same values as the two calls (:func:`prep.kernels.loudness.two_weighted_power_sums`).  Mono
    audio at :data:`prep.dsp.loudness.MIN_SAMPLE_RATE` or more; otherwise the two calls.

    Parameters
    ----------
    audio : np.ndarray, shape (samples,) or (channels, samples)
    sample_rate : int

    Returns
    -------
    lufs : float
        Integrated loudness in LUFS (``-inf`` for silence or less than 400 ms).
    frame_powers : np.ndarray, float64, shape (samples // round(0.02 * sample_rate),)
        The SNR's weighted frame powers.

    Raises
    ------
    ConfigError
        The audio holds NaN or infinite samples (as the loudness meter says).
    """
    from .loudness import MIN_SAMPLE_RATE, _k, gated_loudness, integrated_loudness, kweighting_sos

    rate = check_sample_rate(sample_rate)
    x = as_audio(audio)
    if rate < MIN_SAMPLE_RATE or (x.ndim == 2 and x.shape[0] != 1):
        return integrated_loudness(x, sample_rate=rate), weighted_frame_powers(x, sample_rate=rate)
    x = np.ascontiguousarray(x.reshape(-1), dtype=np.float32)
    hop = (rate + 5) // 10  # the meter's 100 ms sub-block, rounded as libebur128 does
    n = max(1, round(VAD_FRAME_S * rate))
    sums = np.zeros(x.size // hop + 1, dtype=np.float64)
    frames = np.zeros(x.size // n + 1, dtype=np.float64)
    _k.two_weighted_power_sums(x, kweighting_sos(sample_rate=rate), hop, sums, snr_weighting_sos(sample_rate=rate),
                               n, frames)
    if not (np.all(np.isfinite(sums)) and np.all(np.isfinite(frames))):
        raise ConfigError("audio contains NaN or infinite samples")
    return gated_loudness(sums[:-1], hop_samples=hop), frames[:-1] / n


def snr_estimate(
    audio: np.ndarray,
    *,
    sample_rate: int,
    speech: np.ndarray | None = None,
    guard_s: float = 0.06,
    min_noise_s: float = 0.2,
    frame_power: np.ndarray | None = None,
) -> SnrEstimate:
    """Estimate the active-speech SNR (speech-band weighted) from VAD speech and pause frames.

    Both powers are measured through :func:`snr_weighting_sos` (K-weighting's high shelf and a
    100 Hz high-pass, :func:`weighted_frame_powers`): rumble and DC do not count as noise, hum
    counts by its harmonics, hiss as it sounds (+4 dB above ~2 kHz, as for the speech).

    Frames within ``guard_s`` of speech count as speech; the rest are
    pauses.  The noise is the *floor* of the pauses, not their mean: the
    pause frames whose power is within :data:`NOISE_SPAN_DB` of the pauses'
    :data:`NOISE_PERCENTILE`-th percentile (in dB), averaged.  Stationary or
    moderately fluctuating noise (hiss, hum, fans, traffic, kitchens) lies
    within that span, so the estimate is its mean power; breaths, reverb
    tails, lip noise and quiet syllables the VAD missed stand well above a
    clean floor and are left out (with a plain mean, one breath in the
    pauses of a clean recording made it look like 6 dB SNR).  With less
    than ``min_noise_s`` of pause the quietest 5 % of frames stand in for
    the pauses.  Where the pauses are few and all hold a breath or a tail,
    the floor is lower still in the dips between words: the *dips floor*,
    the mean of the frames within :data:`DIPS_SPAN_DB` of the
    :data:`DIPS_PERCENTILE`-th percentile of all frames, is the noise when
    it is lower.  Not when the pauses hold two backgrounds
    (:func:`_noise_floor`) and the quieter one lasts
    :data:`QUIETER_STRETCH_S` or more unbroken: that is a quieter stretch
    of the clip (a slice straddling a clean and a noisy part), and the
    noise of most pauses counts.

    Under a fluctuating noise (babble, a cafe) that floor lies below the noise's mean power: the
    noise's level swings by several dB from frame to frame, and the VAD takes its loud moments for
    speech, so the pauses and dips hold its quiet ones.  The floor is raised by how widely the noise's
    levels spread (:func:`_rise_db`, at most :data:`FLUCTUATION_MAX_DB`): the spread of the pause
    levels (:func:`_pause_spread_db`), or, when pauses are few (:data:`FEW_PAUSES`: the VAD took most
    of the babble for speech), of the quietest frames (:func:`_dips_spread_db`), whichever raises more.
    Steady noise (hiss, hum, fans, dishes) spreads ~1 dB or less and is not raised; a spread wider than
    :data:`FLUCTUATION_FADE_DB`, or pauses whose floor lies :data:`PAUSES_ABOVE_DIPS_DB` above the dips,
    are breaths and reverb tails over a quiet floor, not one noise, and are not raised either.  The
    speech power is the mean power of the speech frames minus the noise power.

    Measured accuracy (``benchmarks/snr.py``, worst case over six speakers, against the truth under the
    same weighting): within 3 dB at 0-30 dB SNR on dry speech mixed with white, pink and recorded
    noises (dishes, exercise bike, tap, hum, restaurant and cafe babble) and with a held-out 6-talker
    babble, and on speech in measured rooms (classroom, halls) with white and pink noise.  The rise's
    constants were chosen on the restaurant and cafe noises (the restaurant and cafe mixtures are at the
    3 dB edge).  Intermittent noise (a thunderstorm, birdsong, vinyl crackle, babble of 2-3 talkers) is
    still read by its floor, far below its mean power.

    Parameters
    ----------
    audio : np.ndarray, shape (samples,) or (channels, samples)
    sample_rate : int
    speech : np.ndarray of bool, shape (frames,), optional
        VAD decisions on 20 ms frames (:func:`prep.dsp.vad.speech_mask` with
        ``frame_s=0.02``); computed when omitted.
    guard_s : float
        Margin around speech excluded from the noise estimate.
    min_noise_s : float
        Pause needed to measure the noise in the pauses.
    frame_power : np.ndarray, float64, shape (frames,), optional
        :func:`weighted_frame_powers` of ``audio`` when the caller has them
        (:func:`loudness_and_frame_powers`).

    Returns
    -------
    SnrEstimate
    """
    rate = check_sample_rate(sample_rate)
    x = mix_to_mono(audio)
    power = weighted_frame_powers(x, sample_rate=rate, frame_s=VAD_FRAME_S) if frame_power is None else frame_power
    if speech is None:
        speech = vad_mask(x, sample_rate=rate)
    mask = np.zeros(power.size, bool)
    k = min(power.size, np.asarray(speech).size)
    mask[:k] = np.asarray(speech, bool)[:k]
    nan = float("nan")
    if not mask.any():
        noise = float(np.mean(power)) if power.size else 0.0
        return SnrEstimate(nan, nan, _db(noise), 0, int(power.size), "pauses")
    guard = math.ceil(guard_s / VAD_FRAME_S)
    near = _dilate(mask, guard) if guard else mask
    quiet = ~near
    quieter_stretch = False
    # the floor under a fluctuating noise (babble) lies below its mean: how far, the spread of the levels tells
    rise_db = _rise_db(_dips_spread_db(power), FLUCTUATION_FROM_DB[1], FLUCTUATION_SLOPE[1])
    rise_db *= _fading(float(np.mean(quiet)), FEW_PAUSES)
    pause_rise_db = 0.0
    if quiet.sum() * VAD_FRAME_S >= min_noise_s:
        noise, noise_frames, low = _pause_floor(power[quiet])
        source = "pauses"
        pause_rise_db = _rise_db(_pause_spread_db(power[quiet]), FLUCTUATION_FROM_DB[0], FLUCTUATION_SLOPE[0])
        if low is not None:  # two backgrounds: is the quieter one a stretch of its own, not dips under tails?
            in_low = np.zeros(power.size, bool)
            in_low[np.flatnonzero(quiet)[low]] = True
            longest = int(np.max(np.diff(_runs(in_low), axis=1), initial=0))
            quieter_stretch = longest * VAD_FRAME_S >= QUIETER_STRETCH_S
    else:
        low_frames = np.sort(power)[: max(1, power.size // 20)]
        noise = float(np.mean(low_frames))
        noise_frames, source = int(low_frames.size), "quietest"
    if not quieter_stretch:
        dips, dips_frames = _dips_floor(power)
        if source == "pauses" and dips > _POWER_FLOOR:  # pauses far above the dips hold breaths or tails
            pause_rise_db *= _fading(10.0 * math.log10(max(noise, _POWER_FLOOR) / dips), PAUSES_ABOVE_DIPS_DB)
        if dips < noise:
            noise, noise_frames, source = dips, dips_frames, "dips"
    noise *= 10.0 ** (max(rise_db, pause_rise_db) / 10.0)
    speech_power = float(np.mean(power[near])) - noise
    if noise <= _POWER_FLOOR:
        snr = MAX_SNR_DB
    elif speech_power <= 0:
        snr = -MAX_SNR_DB
    else:
        snr = min(MAX_SNR_DB, 10.0 * math.log10(speech_power / noise))
    return SnrEstimate(snr, _db(speech_power), _db(noise), int(near.sum()), noise_frames, source)


#: Percentile (of the pause frames' power in dB) taken as the noise floor's anchor.
NOISE_PERCENTILE = 10.0
#: Pause frames up to this many dB above the anchor count as noise.
NOISE_SPAN_DB = 10.0
#: Least share of the pause frames the floor must cover before it is taken from the median instead.
NOISE_MIN_SHARE = 0.5
#: Percentile (of all frames' power in dB) anchoring the dips floor of :func:`snr_estimate`.
DIPS_PERCENTILE = 2.0
#: Frames up to this many dB above that anchor make the dips floor.
DIPS_SPAN_DB = 3.0
#: The quieter of two backgrounds in the pauses lasting this long unbroken is a stretch, not dips.
QUIETER_STRETCH_S = 0.2


#: Spread (dB) of the pause levels (:func:`_pause_spread_db`) and of the dips (:func:`_dips_spread_db`) up to
#: which the noise counts as steady, its floor as its mean power.
FLUCTUATION_FROM_DB = (1.05, 0.8)
#: dB the floor rises per dB of the pause and of the dips spread above those (a fluctuating noise: babble).
FLUCTUATION_SLOPE = (3.0, 5.0)
#: Most the floor rises, dB.
FLUCTUATION_MAX_DB = 4.0
#: Spreads (dB) over which the rise fades out again: wider is not one fluctuating noise but a floor with
#: breaths or reverb tails above it (clean recordings), whose floor is the noise.
FLUCTUATION_FADE_DB = (3.5, 4.5)
#: Shares of pause frames over which the dips spread stops counting: with fewer pauses the VAD took most
#: of a babble for speech and the pauses hold only its quietest moments, their spread too narrow.
FEW_PAUSES = (0.13, 0.19)


#: dB by which the pauses' floor may lie above the dips floor before the pauses' spread stops counting: further
#: above, the pauses hold breaths or reverb tails rather than the noise (babble's pauses lie up to ~4 dB above).
PAUSES_ABOVE_DIPS_DB = (5.0, 7.0)


def _levels_db(power: np.ndarray) -> np.ndarray:
    """Frame powers in dB (digital silence at the floor's level, not -inf): what the noise-floor rules rank."""
    return 10.0 * np.log10(np.maximum(power, _POWER_FLOOR))


def _fading(x: float, span: tuple[float, float]) -> float:
    """1 up to ``span[0]``, 0 from ``span[1]``, linear between."""
    lo, hi = span
    return min(1.0, max(0.0, (hi - x) / (hi - lo)))


def _rise_db(spread_db: float, from_db: float, slope: float) -> float:
    """dB the floor of a noise whose levels spread ``spread_db`` lies below its mean (see :func:`snr_estimate`)."""
    if not math.isfinite(spread_db):
        return 0.0
    rise = min(FLUCTUATION_MAX_DB, max(0.0, slope * (spread_db - from_db)))
    return rise * _fading(spread_db, FLUCTUATION_FADE_DB)


def _pause_spread_db(pauses: np.ndarray) -> float:
    """How widely the pause frames' levels fluctuate, dB: the 50th minus the 10th percentile of their levels,
    but at most 2.5 times the 25th minus the 5th (the lower quarter: reverb tails and breaths, which
    widen the upper half, leave it alone, while babble widens both)."""
    level = _levels_db(pauses)
    p5, p10, p25, p50 = np.percentile(level, (5.0, 10.0, 25.0, 50.0))
    return float(min(p50 - p10, 2.5 * (p25 - p5)))


def _dips_spread_db(power: np.ndarray) -> float:
    """How widely the quietest frames' levels fluctuate, dB: the 10th minus the DIPS_PERCENTILE-th percentile."""
    level = _levels_db(power)
    low, p10 = np.percentile(level, (DIPS_PERCENTILE, 10.0))
    return float(p10 - low)


def _pause_floor(pauses: np.ndarray) -> tuple[float, int, np.ndarray | None]:
    """:func:`_noise_floor`, and the pause frames of the quieter background when the pauses hold two (else None)."""
    level = _levels_db(pauses)
    anchor = float(np.percentile(level, NOISE_PERCENTILE))
    within = level <= anchor + NOISE_SPAN_DB
    low = None
    if within.mean() < NOISE_MIN_SHARE:
        low = within
        within = level <= float(np.median(level)) + NOISE_SPAN_DB
    keep = pauses[within]
    return float(np.mean(keep)), int(keep.size), low


def _noise_floor(pauses: np.ndarray) -> tuple[float, int]:
    """Mean power of the pause frames within NOISE_SPAN_DB of their NOISE_PERCENTILE-th percentile.

    When fewer than :data:`NOISE_MIN_SHARE` of the pause frames lie within that span, the low ones
    are not the floor of this stretch but a quieter part of it (a clip that is clean for a few
    seconds and noisy for the rest): the anchor is then the pauses' median, so the noise that fills
    most of the pauses counts.
    """
    noise, frames, _ = _pause_floor(pauses)
    return noise, frames


def _dips_floor(power: np.ndarray) -> tuple[float, int]:
    """Mean power of the frames within DIPS_SPAN_DB of the DIPS_PERCENTILE-th percentile of ``power``; their count."""
    level = _levels_db(power)
    keep = power[level <= float(np.percentile(level, DIPS_PERCENTILE)) + DIPS_SPAN_DB]
    return float(np.mean(keep)), int(keep.size)


# -- clipping and DC -----------------------------------------------------------
@dataclass(frozen=True)
class ClippingReport:
    """What :func:`clipping` found.

    Attributes
    ----------
    ratio : float
        Fraction of samples (over all channels) on a clipped plateau.
    runs : int
        Number of plateaus.
    level : float
        Absolute peak sample value (the plateau level when clipped).
    """

    ratio: float
    runs: int
    level: float


def _plateaus(x: np.ndarray, rail: float, tol: float, min_run: int, upper: bool) -> tuple[int, int]:
    """Samples and runs of ``x`` sitting at ``rail`` (within ``tol``) for >= ``min_run`` samples."""
    at = x >= rail - tol if upper else x <= rail + tol
    runs = _runs(at)
    lengths = runs[:, 1] - runs[:, 0]
    long = lengths >= min_run
    return int(lengths[long].sum()), int(long.sum())


def clipping(audio: np.ndarray, *, rel_tol: float = 1e-4, min_run: int = 2, min_level: float = 0.01) -> ClippingReport:
    """Find clipped plateaus: runs of samples stuck at the signal's extremes.

    Clipping (in the converter or a later gain stage) flattens the waveform
    at a rail.  A run of ``min_run`` or more samples within ``rel_tol`` of the
    positive (or negative) peak is a plateau; a natural peak reaches its
    maximum in one sample.  Overshoots clipped to a single sample cannot be
    told from natural peaks, so light clipping is underestimated (about
    0.14 % found for 0.2 % clipped in the tests; 0.9 % for 1 %).  The rail need not be full scale, so a
    clipped recording later turned down is still found.  Measure before
    resampling or lossy coding, which ring and smear the plateaus.

    Parameters
    ----------
    audio : np.ndarray, shape (samples,) or (channels, samples)
    rel_tol : float
        Tolerance relative to the peak (1e-4: -0.001 dB).
    min_run : int
        Shortest plateau, in samples.
    min_level : float
        Rails below this level (-40 dBFS) are not examined: near-silent or
        constant signals would otherwise look "clipped".

    Returns
    -------
    ClippingReport
    """
    if not 0 <= rel_tol < 0.1:
        raise ConfigError(f"rel_tol must be in [0, 0.1), got {rel_tol!r}")
    if min_run < 2:
        raise ConfigError(f"min_run must be >= 2, got {min_run!r}")
    x = as_audio(audio)
    channels = x.reshape(1, -1) if x.ndim == 1 else x
    if channels.size == 0:
        return ClippingReport(0.0, 0, 0.0)
    clipped = runs = 0
    level = 0.0
    for ch in channels:
        top, bottom = float(ch.max()), float(ch.min())
        level = max(level, top, -bottom)
        for rail, upper in ((top, True), (bottom, False)):
            if (rail >= min_level) if upper else (rail <= -min_level):
                n, r = _plateaus(ch, rail, abs(rail) * rel_tol, min_run, upper)
                clipped += n
                runs += r
    return ClippingReport(clipped / channels.size, runs, level)


def dc_offset(audio: np.ndarray) -> float:
    """Mean sample value (fraction of full scale); the largest in magnitude over channels."""
    x = as_audio(audio)
    if x.size == 0:
        return 0.0
    means = np.mean(x.reshape(-1, x.shape[-1]), axis=1, dtype=np.float64)
    return float(means[np.argmax(np.abs(means))])


# -- bandwidth -----------------------------------------------------------------
def ltas_db(audio: np.ndarray, *, sample_rate: int, segment_s: float = 0.04) -> tuple[np.ndarray, np.ndarray]:
    """Long-term average spectrum (Welch, Hann, 50 % overlap), averaged over 30 s blocks.

    Parameters
    ----------
    audio : np.ndarray, shape (samples,) or (channels, samples)
    sample_rate : int
    segment_s : float
        Welch segment length (rounded up to a power of two samples).

    Returns
    -------
    freqs_hz : np.ndarray, shape (bins,)
    level_db : np.ndarray, shape (bins,)
        Power spectral density in dB (re full scale squared per Hz).
    """
    rate = check_sample_rate(sample_rate)
    x = mix_to_mono(audio)
    nper = 1 << max(4, math.ceil(math.log2(segment_s * rate)))
    if x.size < nper:
        x = np.pad(x, (0, nper - x.size))
    freqs = np.fft.rfftfreq(nper, 1.0 / rate)
    total = np.zeros(freqs.size)
    weight = 0
    for part in _chunks(x.size, int(_CHUNK_S * rate)):
        seg = x[part]
        if seg.size < nper:  # a short last block (the first one is always long enough)
            continue
        total += spectral.welch(seg, sample_rate=rate, nper=nper) * seg.size
        weight += seg.size
    return freqs, 10.0 * np.log10(total / weight + 1e-30)


def bandwidth_hz(
    audio: np.ndarray,
    *,
    sample_rate: int,
    drop_db: float = 50.0,
    ref_band_hz: tuple[float, float] = (100.0, 4000.0),
) -> float:
    """Effective audio bandwidth: where the long-term spectrum falls ``drop_db`` below the speech band.

    The reference is the highest level of the median-smoothed LTAS within
    ``ref_band_hz`` (narrow hum peaks are smoothed away); the bandwidth is
    the highest frequency still within ``drop_db`` of it.  A recording made
    at 8 kHz and converted up shows ~3.5–4 kHz whatever its file rate; a
    16 kHz source ~7–8 kHz; full-band microphones reach the file's Nyquist.

    Parameters
    ----------
    audio : np.ndarray, shape (samples,) or (channels, samples)
    sample_rate : int
    drop_db : float
        How far below the reference level counts as "no signal".
    ref_band_hz : (float, float)
        Band holding the speech reference level.

    Returns
    -------
    float
        Hz, at most ``sample_rate / 2``; ``0.0`` for silence.
    """
    if drop_db <= 0:
        raise ConfigError(f"drop_db must be > 0, got {drop_db!r}")
    x = mix_to_mono(audio)
    if not np.any(x):
        return 0.0
    freqs, level = ltas_db(x, sample_rate=sample_rate)
    smooth = _median5(level)
    band = (freqs >= ref_band_hz[0]) & (freqs <= ref_band_hz[1])
    if not band.any():
        band = freqs > 0
    ref = float(np.max(smooth[band]))
    above = np.flatnonzero(smooth >= ref - drop_db)
    return float(freqs[above[-1]]) if above.size else 0.0


def _regions_from_mask(mask: np.ndarray, frame_s: float) -> list[tuple[float, float]]:
    return [(float(a * frame_s), float(b * frame_s)) for a, b in _runs(mask)]


def reverb_decay_s(
    audio: np.ndarray,
    *,
    sample_rate: int,
    regions: list[tuple[float, float]] | None = None,
    band_hz: tuple[float, float] = (500.0, 2000.0),
    max_drop_db: float = 25.0,
    min_drop_db: float = 10.0,
    percentile: float = 25.0,
) -> tuple[float, int]:
    """Estimate a reverberation decay time from the energy decay after speech offsets.

    At the end of each speech region the band envelope (noise power
    subtracted) is followed from the last frame within 3 dB of the region's
    end level until it has dropped ``max_drop_db`` (or as far as the noise
    floor allows, at least ``min_drop_db``); the fall rate gives a T60-like
    time ``60 dB / rate``.  Dry speech stops within tens of milliseconds; in
    a room the tail decays at the room's rate, so the faster offsets
    (``percentile``) are bounded by the room.  A decay cut short by the
    next speech region counts with the drop it reached.

    Parameters
    ----------
    audio : np.ndarray, shape (samples,) or (channels, samples)
    sample_rate : int
    regions : list of (start_s, end_s), optional
        Speech regions; from the VAD when omitted.
    band_hz : (float, float)
        Analysis band.
    max_drop_db, min_drop_db : float
        Decay range measured, and the least accepted.
    percentile : float
        Percentile of the per-offset times reported.

    Returns
    -------
    decay_s : float
        Seconds; ``nan`` when no offset could be measured.
    offsets : int
        Number of offsets measured.
    """
    rate = check_sample_rate(sample_rate)
    if not 0 < min_drop_db <= max_drop_db:
        raise ConfigError(f"need 0 < min_drop_db <= max_drop_db, got {min_drop_db!r}, {max_drop_db!r}")
    x = mix_to_mono(audio)
    if regions is None:
        regions = _regions_from_mask(vad_mask(x, sample_rate=rate), VAD_FRAME_S)
    if not regions:
        return float("nan"), 0
    y = _to_analysis_rate(x, rate)
    power = band_envelope(y, band_hz)
    if power.size < 10 or not regions:
        return float("nan"), 0
    noise = float(np.mean(np.sort(power)[: max(1, power.size // 10)]))
    noise = max(noise, _POWER_FLOOR)
    env = 10.0 * np.log10(np.maximum(power - noise, noise * 1e-2))
    floor_db = 10.0 * math.log10(noise)
    times = []
    end_of_signal = power.size * ENV_HOP_S
    for i, (start, end) in enumerate(regions):
        following = regions[i + 1][0] if i + 1 < len(regions) else end_of_signal
        k0 = int(max(start, end - 0.5) / ENV_HOP_S)
        k1 = min(int(end / ENV_HOP_S), power.size)
        k2 = min(int(following / ENV_HOP_S), power.size)
        if k1 - k0 < 4:
            continue
        ref = float(np.percentile(env[k0:k1], 90))
        target = min(max_drop_db, ref - floor_db - 3.0)
        if target < min_drop_db:
            continue
        last_loud = k0 + int(np.flatnonzero(env[k0:k1] >= ref - 3.0)[-1])
        tail = np.minimum.accumulate(env[last_loud:k2])
        if tail.size < 4:
            continue
        hit = np.flatnonzero(tail <= ref - target)
        if hit.size:
            elapsed, drop = hit[0] * ENV_HOP_S, target
        else:  # cut short by the next region: the drop reached so far
            elapsed, drop = tail.size * ENV_HOP_S, max(ref - float(tail[-1]), 1.0)
        times.append(60.0 * max(elapsed, ENV_HOP_S) / drop)
    if not times:
        return float("nan"), 0
    return float(np.percentile(times, percentile)), len(times)


def _tonal_block(y: np.ndarray, *, quiet_frac: float, prom_db: float, min_tone_s: float) -> tuple[float, int]:
    """Tonal indicator of one block at ANALYSIS_RATE and its frame count."""
    nper, hop = 1024, 256  # 64 ms windows every 16 ms
    if y.size < nper + 4 * hop:
        return 0.0, 0
    z = spectral.stft(y, nper, hop).T  # (bins, frames), as scipy.signal.stft
    freqs = np.fft.rfftfreq(nper, 1.0 / ANALYSIS_RATE)
    power = z.real**2 + z.imag**2  # float32; sums below in float64
    band = (freqs >= 40.0) & (freqs <= 4000.0)
    width = round(300.0 / (freqs[1] - freqs[0])) | 1
    frame_energy = power.sum(axis=0, dtype=np.float64)
    n_quiet = max(4, int(quiet_frac * frame_energy.size))
    quiet = np.argsort(frame_energy)[:n_quiet]
    # (a) steady peaks: a spectral peak on the same bin (+-1) for >= min_tone_s
    spec = 10.0 * np.log10(power[band] + np.float32(1e-20))  # dB in float32: plenty, and 2x faster
    strong = prominent(spec, width, np.float32(prom_db))
    peaks = max3(strong & (spec >= max3(spec)))
    length = max(2, round(min_tone_s * ANALYSIS_RATE / hop))
    steady = long_runs_any(peaks, length)
    tracks = float(steady[quiet].mean())
    # (b) tonal share of the background spectrum (average of the quiet frames)
    background = power[:, quiet].mean(axis=1, dtype=np.float64)
    bg_db = 10.0 * np.log10(background + 1e-20)
    bg_peaks = prominent(bg_db, width, prom_db) & (bg_db >= max3(bg_db)) & band
    bg_peaks = max3(bg_peaks) & band
    share = float(background[bg_peaks].sum() / max(background[band].sum(), 1e-30))
    return max(tracks, share), int(frame_energy.size)


def tonal_ratio(
    audio: np.ndarray,
    *,
    sample_rate: int,
    quiet_frac: float = 0.3,
    prom_db: float = 8.0,
    min_tone_s: float = 0.25,
) -> float:
    """Indicator of music or hum behind the voice, in [0, 1].

    Looks at the background, the quietest ``quiet_frac`` of 64 ms frames
    (speech gaps), where music and mains hum go on while the voice pauses:

    (a) the share of those frames that carry a spectral peak at least
        ``prom_db`` above its ±150 Hz neighbourhood, held on the same
        frequency for at least ``min_tone_s`` (a note or a hum line; speech
        harmonics glide);
    (b) the share of the averaged background spectrum's power in such peaks.

    The larger of the two is returned (blocks of 30 s are averaged).  Clean
    or noisy speech gives ≲ 0.3; audible background music or hum ≳ 0.5.

    Parameters
    ----------
    audio : np.ndarray, shape (samples,) or (channels, samples)
    sample_rate : int
    quiet_frac : float
        Fraction of frames taken as background.
    prom_db : float
        Peak prominence.
    min_tone_s : float
        Shortest steady tone.

    Returns
    -------
    float
    """
    rate = check_sample_rate(sample_rate)
    if not 0 < quiet_frac <= 1:
        raise ConfigError(f"quiet_frac must be in (0, 1], got {quiet_frac!r}")
    y = _to_analysis_rate(mix_to_mono(audio), rate)
    total = weight = 0.0
    for part in _chunks(y.size, int(_CHUNK_S * ANALYSIS_RATE)):
        value, frames = _tonal_block(y[part], quiet_frac=quiet_frac, prom_db=prom_db, min_tone_s=min_tone_s)
        total += value * frames
        weight += frames
    return total / weight if weight else 0.0


# -- optional DNSMOS -------------------------------------------------------------
#: What a run without the ``[mos]`` extra says, once (:func:`mos_missing_notice`).
MOS_MISSING_NOTICE = (
    "DNSMOS is off: onnxruntime/speechmos are not installed. pip install 'voiceprep[mos]' adds DNSMOS "
    "OVRL/SIG/BAK of each clip's source and output, up to 20 score points for a low OVRL and the "
    "dnsmos.* findings; scores and verdicts now use the model-free metrics only"
)


def mos_available() -> bool:
    """Whether the ``[mos]`` extra (``onnxruntime``, ``onnx`` and ``speechmos``) is installed.

    Looks the packages up without importing them (a run's parent process asks, the workers score).
    """
    import importlib.util

    return all(importlib.util.find_spec(name) is not None for name in ("onnxruntime", "onnx", "speechmos"))


def mos_missing_notice(stages: Iterable[object]) -> str | None:
    """The one notice a run gives when its stages would run DNSMOS but the extra is missing.

    Parameters
    ----------
    stages : iterable of stage
        The run's stages; a stage wants DNSMOS when its ``mos`` attribute is true
        (:class:`~prep.stages.measure.Measure`, :class:`~prep.stages.score.Score`).

    Returns
    -------
    str or None
        :data:`MOS_MISSING_NOTICE`, or None when no stage wants DNSMOS or it is available.
    """
    wanted = any(getattr(stage, "mos", False) for stage in stages)
    return MOS_MISSING_NOTICE if wanted and not mos_available() else None


def dnsmos(audio: np.ndarray, *, sample_rate: int, p808: bool = True) -> dict[str, float] | None:
    """DNSMOS scores with the optional ``[mos]`` extra (``pip install voiceprep[mos]``).

    Runs :func:`prep.dsp.dnsmos.dnsmos_scores` (the ``speechmos`` models on onnxruntime,
    non-overlapping 9.01 s windows).

    Parameters
    ----------
    audio : np.ndarray, shape (samples,) or (channels, samples)
    sample_rate : int
    p808 : bool
        Also run the P.808 model (``False``: no ``dnsmos_p808``, ~10 % faster).

    Returns
    -------
    dict or None
        ``dnsmos_ovrl``, ``dnsmos_sig``, ``dnsmos_bak`` (P.835) and
        ``dnsmos_p808`` on the 1–5 MOS scale; ``None`` when ``speechmos``
        (or onnxruntime) is not installed or the clip is empty.  Says
        nothing when the extra is missing: a run says it once
        (:func:`mos_missing_notice`), not once per clip.

    Raises
    ------
    prep.models.ModelError
        ``speechmos`` is another version or a model file's SHA-256 differs.
    """
    if not mos_available():
        return None
    try:
        import onnxruntime  # noqa: F401
        import speechmos  # noqa: F401  (carries the model files)
    except ImportError:
        return None
    from ..timing import timed
    from .dnsmos import dnsmos_scores

    with timed("dnsmos"):
        scores = dnsmos_scores(audio, sample_rate=check_sample_rate(sample_rate), p808=p808)
    return None if scores is None else scores.as_metrics()


# -- all metrics ---------------------------------------------------------------
def measure_quality(
    audio: np.ndarray,
    *,
    sample_rate: int,
    skip: frozenset[str] | set[str] = frozenset(),
    mos: bool = False,
    speech: Sequence[tuple[float, float]] | None = None,
    snr_frame_power: np.ndarray | None = None,
) -> dict[str, Any]:
    """Measure every quality metric of a clip (one VAD pass).

    Parameters
    ----------
    audio : np.ndarray, shape (samples,) or (channels, samples)
    sample_rate : int
    skip : set of str
        Metric names not to compute (already known).
    mos : bool
        Also run DNSMOS when ``speechmos`` is installed.
    speech : sequence of (start_s, end_s), optional
        Speech regions of ``audio`` already known (a clip's
        :attr:`~prep.clip.Clip.speech`); the VAD runs when omitted.
    snr_frame_power : np.ndarray, optional
        :func:`weighted_frame_powers` of ``audio`` when the caller has them
        (:func:`loudness_and_frame_powers`).

    Returns
    -------
    dict
        ``duration_s``, ``speech_s``, ``speech_ratio``, ``snr_db``,
        ``clipping_ratio``, ``clipped_runs``, ``dc_offset``, ``bandwidth_hz``,
        ``reverb_s``, ``tonal_ratio`` (and ``dnsmos_*``), minus ``skip``.
        ``nan`` where a value is undefined (no speech).
    """
    rate = check_sample_rate(sample_rate)
    x = as_audio(audio)
    mono = mix_to_mono(x)
    duration = mono.size / float(rate)
    out: dict[str, Any] = {"duration_s": duration}
    if speech is None:
        mask = vad_mask(mono, sample_rate=rate)
    else:
        from .vad import regions_to_mask

        mask = regions_to_mask(speech, frame_s=VAD_FRAME_S, duration_s=duration)
    speech_s = float(mask.sum()) * VAD_FRAME_S
    out["speech_s"] = min(speech_s, duration)
    out["speech_ratio"] = min(1.0, speech_s / duration) if duration > 0 else 0.0
    if "snr_db" not in skip:
        out["snr_db"] = snr_estimate(mono, sample_rate=rate, speech=mask, frame_power=snr_frame_power).snr_db
    if "clipping_ratio" not in skip:
        clip_rep = clipping(x)
        out["clipping_ratio"] = clip_rep.ratio
        out["clipped_runs"] = clip_rep.runs
    if "dc_offset" not in skip:
        out["dc_offset"] = dc_offset(x)
    if "bandwidth_hz" not in skip:
        out["bandwidth_hz"] = bandwidth_hz(mono, sample_rate=rate)
    if "reverb_s" not in skip or "tonal_ratio" not in skip:
        analysis = _to_analysis_rate(mono, rate)  # resampled once for both
        if "reverb_s" not in skip:
            regions = _regions_from_mask(mask, VAD_FRAME_S)
            out["reverb_s"] = reverb_decay_s(analysis, sample_rate=ANALYSIS_RATE, regions=regions)[0]
        if "tonal_ratio" not in skip:
            out["tonal_ratio"] = tonal_ratio(analysis, sample_rate=ANALYSIS_RATE)
    if mos and "dnsmos_ovrl" not in skip:
        try:
            scores = dnsmos(mono, sample_rate=rate, p808="dnsmos_p808" not in skip)
        except Exception as err:  # an optional extra must never fail a clip
            log.warning("DNSMOS failed: %s", err)
            scores = None
        if scores:
            out.update(scores)
    return {k: v for k, v in out.items() if k not in skip}
