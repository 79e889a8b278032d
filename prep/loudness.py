"""Loudness per ITU-R BS.1770-4 / EBU R 128, true peak, and normalisation with a true-peak limiter.

Measuring
    :class:`LoudnessMeter` is a streaming meter: feed it chunks with
    :meth:`~LoudnessMeter.add` and read integrated loudness (gated, LUFS),
    loudness range (EBU Tech 3342, LU), the momentary (400 ms) and short-term
    (3 s) series, and the true peak (dBTP).  It keeps one float per 100 ms of
    audio plus the filter state, so a two-hour file costs under 1.2 MB.
    :func:`integrated_loudness`, :func:`loudness_range`, :func:`momentary`,
    :func:`short_term` and :func:`true_peak` are one-shot conveniences.

    The meter follows libebur128 (the reference used by ffmpeg, pyebur128 and
    most tools) detail for detail: the K-weighting filter coefficients are
    derived for any sample rate the way libebur128 derives them; gating
    blocks are 400 ms long every 100 ms (``(rate + 5) // 10`` frames), the
    absolute gate is -70 LUFS and the relative gate -10 LU; loudness-range
    short-term blocks are 3 s every 1 s, gated at -70 LUFS and -20 LU, and
    the range runs between the 10th and 95th percentiles; the default channel
    weights are libebur128's channel map.  True peak uses 4x oversampling
    with libebur128's 49-tap Hann-windowed sinc interpolator (BS.1770-4
    Annex 2 asks for at least 4x), at every sample rate, and it also counts
    the interpolated values just past the last sample (the signal is taken
    to be silent after its end, as a player renders it).

Applying
    :func:`normalize` applies the gain that brings the integrated loudness to
    ``target_lufs`` and then, only where needed, a look-ahead true-peak
    limiter so the true peak stays at or below ``true_peak_dbtp``.  Loudness
    the limiter takes away is made up by raising the gain until the target
    is met, so the output meets both.  :class:`Loudness` is the pipeline stage.

Silence and clips shorter than one 400 ms block have no integrated loudness:
the functions return ``-inf`` (``0.0`` LU for the range), never raise.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from scipy import ndimage

from .audio import as_audio, check_sample_rate
from .clip import Clip
from .errors import ConfigError
from .kernels import loudness as _k

__all__ = [
    "ABSOLUTE_GATE_LUFS",
    "BLOCK_S",
    "LRA_RELATIVE_GATE_LU",
    "MIN_SAMPLE_RATE",
    "OVERSAMPLING",
    "RELATIVE_GATE_LU",
    "SHORT_TERM_S",
    "Loudness",
    "LoudnessMeter",
    "NormalizeReport",
    "default_channel_weights",
    "integrated_loudness",
    "kweighting_sos",
    "limiter_gain",
    "loudness_range",
    "momentary",
    "normalize",
    "peak_envelope",
    "short_term",
    "true_peak",
    "true_peak_filter",
]

#: Blocks quieter than this are ignored (BS.1770-4 absolute gate).
ABSOLUTE_GATE_LUFS = -70.0
#: Blocks this far below the absolute-gated loudness are ignored (BS.1770-4 relative gate).
RELATIVE_GATE_LU = -10.0
#: Short-term blocks this far below their mean are ignored for the loudness range (EBU Tech 3342).
LRA_RELATIVE_GATE_LU = -20.0
#: Gating / momentary block length in seconds.
BLOCK_S = 0.4
#: Short-term block length in seconds.
SHORT_TERM_S = 3.0
#: True-peak oversampling factor.
OVERSAMPLING = 4
#: Lowest supported sample rate (the K-weighting shelf sits at 1.68 kHz).
MIN_SAMPLE_RATE = 4000

_LUFS_OFFSET = -0.691
_ABS_GATE_ENERGY = 10.0 ** ((ABSOLUTE_GATE_LUFS - _LUFS_OFFSET) / 10.0)
_SUB_PER_BLOCK = 4  # 100 ms sub-blocks per 400 ms block
_SUB_PER_SHORT = 30  # ... per 3 s short-term block
_SUB_PER_LRA_HOP = 10  # short-term blocks for the loudness range every 1 s
_TP_CHUNK = 1 << 16  # frames per true-peak pass (bounds the scratch buffer)
_TP_DELAY = 6  # frames: centre of the 49-tap interpolation filter, (49 - 1) / 2 / 4


# -- coefficients -----------------------------------------------------------


def kweighting_sos(sample_rate: int) -> np.ndarray:
    """K-weighting filter of BS.1770-4 for ``sample_rate``, as two biquads.

    The high-shelf and high-pass analogue prototypes are those libebur128
    fits to the 48 kHz coefficients published in BS.1770; each is mapped to
    ``sample_rate`` with the bilinear transform.  As in the published
    coefficients (on which the -0.691 dB offset of the loudness formula is
    calibrated) the high-pass numerator is ``1, -2, 1``, not normalised.

    Parameters
    ----------
    sample_rate : int
        Hz, at least :data:`MIN_SAMPLE_RATE`.

    Returns
    -------
    np.ndarray, float64, shape (2, 6)
        Second-order sections ``b0 b1 b2 a0 a1 a2`` (``a0 = 1``), shelf then
        high-pass, usable with :func:`scipy.signal.sosfilt`.
    """
    rate = _check_rate(sample_rate)
    f0, gain_db, q = 1681.974450955533, 3.999843853973347, 0.7071752369554196
    k = math.tan(math.pi * f0 / rate)
    vh = 10.0 ** (gain_db / 20.0)
    vb = vh**0.4996667741545416
    a0 = 1.0 + k / q + k * k
    shelf = [(vh + vb * k / q + k * k) / a0, 2.0 * (k * k - vh) / a0, (vh - vb * k / q + k * k) / a0]
    shelf += [1.0, 2.0 * (k * k - 1.0) / a0, (1.0 - k / q + k * k) / a0]
    f0, q = 38.13547087602444, 0.5003270373238773
    k = math.tan(math.pi * f0 / rate)
    a0 = 1.0 + k / q + k * k
    highpass = [1.0, -2.0, 1.0, 1.0, 2.0 * (k * k - 1.0) / a0, (1.0 - k / q + k * k) / a0]
    return np.array([shelf, highpass], dtype=np.float64)


def true_peak_filter(*, taps: int = 49, factor: int = OVERSAMPLING) -> np.ndarray:
    """Hann-windowed sinc interpolation filter of the true-peak meter (libebur128's design).

    Parameters
    ----------
    taps : int
        Filter length at the oversampled rate.
    factor : int
        Oversampling factor; the cut-off is the input Nyquist frequency.

    Returns
    -------
    np.ndarray, float64, shape (taps,)
        Impulse response; ``h[factor * t + p]`` is tap ``t`` of phase ``p``,
        and phase 0 is a pure delay of ``(taps - 1) // (2 * factor)`` frames.
    """
    m = np.arange(taps, dtype=np.float64) - (taps - 1) / 2.0
    h = np.sinc(m / factor) * (0.5 * (1.0 - np.cos(2.0 * np.pi * np.arange(taps) / (taps - 1))))
    h[np.abs(h) <= 1e-6] = 0.0
    return h


def _tp_phases() -> np.ndarray:
    """Phases 1-3 of :func:`true_peak_filter` as (3, 12) float32: ``phases[p - 1, t] = h[4 t + p]``."""
    h = true_peak_filter()
    padded = np.zeros(OVERSAMPLING * (_k.TP_TAPS + 1), dtype=np.float64)
    padded[: h.size] = h
    phases = padded.reshape(_k.TP_TAPS + 1, OVERSAMPLING).T[1:, : _k.TP_TAPS]
    return np.ascontiguousarray(phases, dtype=np.float32)


_PHASES = _tp_phases()


def default_channel_weights(channels: int) -> tuple[float, ...]:
    """BS.1770 channel weights for ``channels`` channels, following libebur128's default map.

    1-3 channels: L, R, C (weight 1).  4: L, R, Ls, Rs.  5: L, R, C, Ls, Rs.
    6 or more: L, R, C, LFE (weight 0), Ls, Rs, and further channels unused
    (weight 0).  Surround channels weigh 1.41 (+1.5 dB).
    """
    if channels < 1:
        raise ConfigError(f"channels must be >= 1, got {channels!r}")
    if channels <= 3:
        return (1.0,) * channels
    if channels == 4:
        return (1.0, 1.0, 1.41, 1.41)
    if channels == 5:
        return (1.0, 1.0, 1.0, 1.41, 1.41)
    return (1.0, 1.0, 1.0, 0.0, 1.41, 1.41) + (0.0,) * (channels - 6)


# -- helpers ----------------------------------------------------------------


def _check_rate(sample_rate: int) -> int:
    rate = check_sample_rate(sample_rate)
    if rate < MIN_SAMPLE_RATE:
        raise ConfigError(f"sample_rate must be >= {MIN_SAMPLE_RATE} Hz for loudness metering, got {sample_rate!r}")
    return rate


def _as_frames(audio: np.ndarray) -> np.ndarray:
    """(channels, samples) float32 C-contiguous view (or copy) of prep-convention audio."""
    x = as_audio(audio)
    return x.reshape(1, -1) if x.ndim == 1 else x


def _lufs(energy: np.ndarray | float) -> Any:
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(energy) + _LUFS_OFFSET


def _db(linear: float) -> float:
    return 20.0 * math.log10(linear) if linear > 0.0 else -math.inf


def _window_sums(values: np.ndarray, width: int, hop: int) -> np.ndarray:
    """Sums of ``width`` consecutive values every ``hop`` (summed directly, no cumsum cancellation)."""
    if values.size < width:
        return np.zeros(0, dtype=np.float64)
    return np.lib.stride_tricks.sliding_window_view(values, width)[::hop].sum(axis=1)


# -- meter ------------------------------------------------------------------


class LoudnessMeter:
    """Streaming BS.1770-4 loudness and true-peak meter.

    Parameters
    ----------
    sample_rate : int
        Hz, at least :data:`MIN_SAMPLE_RATE`.
    channels : int
        Channels of every chunk passed to :meth:`add`.
    channel_weights : sequence of float, optional
        Weight of each channel in the sum (0 ignores it); defaults to
        :func:`default_channel_weights`.
    true_peak : bool
        Whether to track the true peak (about a third of the cost).

    Examples
    --------
    >>> meter = LoudnessMeter(48000, channels=2)
    >>> for chunk in chunks:  # doctest: +SKIP
    ...     meter.add(chunk)
    >>> meter.integrated_lufs()  # doctest: +SKIP
    """

    def __init__(
        self,
        sample_rate: int,
        channels: int = 1,
        *,
        channel_weights: Sequence[float] | None = None,
        true_peak: bool = True,
    ) -> None:
        self.sample_rate = _check_rate(sample_rate)
        if isinstance(channels, bool) or not isinstance(channels, (int, np.integer)) or channels < 1:
            raise ConfigError(f"channels must be a positive integer, got {channels!r}")
        self.channels = int(channels)
        weights = default_channel_weights(self.channels) if channel_weights is None else tuple(channel_weights)
        w = np.asarray(weights, dtype=np.float64)
        if w.shape != (self.channels,) or not np.all(np.isfinite(w)) or np.any(w < 0):
            raise ConfigError(
                f"channel_weights must be {self.channels} finite non-negative numbers, got {channel_weights!r}"
            )
        self.channel_weights = w
        self.hop = (self.sample_rate + 5) // 10  # frames per 100 ms, rounded as libebur128 does
        self._sos = kweighting_sos(self.sample_rate)
        self._state = np.zeros((self.channels, 4), dtype=np.float64)
        self._carry = np.zeros(2, dtype=np.float64)
        self._sums = np.zeros(64, dtype=np.float64)
        self._n_sums = 0
        self._track_peak = bool(true_peak)
        self._hist = np.zeros((self.channels, _k.TP_TAPS - 1), dtype=np.float32)
        self._env = np.zeros(0, dtype=np.float32)
        self._peak = 0.0
        self.frames = 0

    # -- feeding ------------------------------------------------------------
    def add(self, audio: np.ndarray) -> LoudnessMeter:
        """Measure the next chunk.

        Parameters
        ----------
        audio : np.ndarray, shape (samples,) or (channels, samples)
            Any real dtype (converted to float32); full scale is 1.0.

        Returns
        -------
        LoudnessMeter
            ``self``, for chaining.

        Raises
        ------
        ConfigError
            If the channel count differs from the meter's, or the chunk holds
            NaN or infinite samples.
        """
        x = _as_frames(audio)
        if x.shape[0] != self.channels:
            raise ConfigError(f"chunk has {x.shape[0]} channels, the meter was made for {self.channels}")
        n = x.shape[1]
        if n == 0:
            return self
        need = self._n_sums + (int(self._carry[1]) + n) // self.hop + 1
        if need > self._sums.size:
            grown = np.zeros(max(need, 2 * self._sums.size), dtype=np.float64)
            grown[: self._n_sums] = self._sums[: self._n_sums]
            self._sums = grown
        done = _k.kweighted_power_sums(
            x, self._sos, self._state, self.channel_weights, self.hop, self._carry, self._sums[self._n_sums :]
        )
        new = self._sums[self._n_sums : self._n_sums + done]
        if not (np.isfinite(self._carry[0]) and np.all(np.isfinite(new))):
            raise ConfigError("audio contains NaN or infinite samples")
        self._n_sums += done
        if self._track_peak:
            self._add_peak(x)
        self.frames += n
        return self

    def _add_peak(self, x: np.ndarray) -> None:
        if self._env.size < min(x.shape[1], _TP_CHUNK):
            self._env = np.zeros(min(x.shape[1], _TP_CHUNK), dtype=np.float32)
        self._peak = max(self._peak, _scan_peak(x, self._hist, self._env))

    # -- reading ------------------------------------------------------------
    @property
    def duration_s(self) -> float:
        """Seconds of audio measured so far."""
        return self.frames / float(self.sample_rate)

    def subblock_energies(self) -> np.ndarray:
        """Channel-weighted K-weighted energy of each completed 100 ms sub-block.

        Returns
        -------
        np.ndarray, float64, shape (n_subblocks,)
            Sum over the sub-block's frames of the weighted squared K-weighted
            samples (divide by :attr:`hop` for mean power).
        """
        return self._sums[: self._n_sums].copy()

    def block_energies(self) -> np.ndarray:
        """Mean power of each 400 ms gating block (every 100 ms), shape (n_blocks,)."""
        return _window_sums(self._sums[: self._n_sums], _SUB_PER_BLOCK, 1) / (_SUB_PER_BLOCK * self.hop)

    def integrated_lufs(self) -> float:
        """Gated integrated loudness in LUFS; ``-inf`` when no block passes the gates."""
        blocks = self.block_energies()
        blocks = blocks[blocks >= _ABS_GATE_ENERGY]
        if blocks.size == 0:
            return -math.inf
        relative = blocks.mean() * 10.0 ** (RELATIVE_GATE_LU / 10.0)
        gated = blocks[blocks >= relative]
        if gated.size == 0:
            return -math.inf
        return float(_lufs(gated.mean()))

    def loudness_range_lu(self) -> float:
        """Loudness range (EBU Tech 3342) in LU; ``0.0`` when no short-term block passes the gates."""
        short = _window_sums(self._sums[: self._n_sums], _SUB_PER_SHORT, _SUB_PER_LRA_HOP) / (_SUB_PER_SHORT * self.hop)
        short = np.sort(short[short >= _ABS_GATE_ENERGY])
        if short.size == 0:
            return 0.0
        gated = short[short >= short.mean() * 10.0 ** (LRA_RELATIVE_GATE_LU / 10.0)]
        if gated.size == 0:
            return 0.0
        last = gated.size - 1
        high = gated[int(last * 0.95 + 0.5)]
        low = gated[int(last * 0.10 + 0.5)]
        return float(_lufs(high) - _lufs(low))

    def momentary_lufs(self) -> np.ndarray:
        """Momentary loudness (400 ms window) every 100 ms, the first ending at 0.4 s.

        Returns
        -------
        np.ndarray, float64, shape (n_blocks,)
            LUFS, ungated (``-inf`` for digital silence).
        """
        return _lufs(self.block_energies())

    def short_term_lufs(self) -> np.ndarray:
        """Short-term loudness (3 s window) every 100 ms, the first ending at 3.0 s.

        Returns
        -------
        np.ndarray, float64, shape (n_windows,)
            LUFS, ungated; empty when less than 3 s has been measured.
        """
        return _lufs(_window_sums(self._sums[: self._n_sums], _SUB_PER_SHORT, 1) / (_SUB_PER_SHORT * self.hop))

    def true_peak_dbtp(self) -> float:
        """Largest true peak over all channels so far, in dBTP; ``-inf`` for silence.

        Includes the interpolated values just after the last sample (the
        stream is taken to end in silence); the meter can keep measuring.

        Raises
        ------
        ConfigError
            If the meter was made with ``true_peak=False``.
        """
        if not self._track_peak:
            raise ConfigError("this meter was made with true_peak=False")
        return _db(max(self._peak, _tail_peak(self._hist)))


def _scan_peak(x: np.ndarray, hist: np.ndarray, scratch: np.ndarray) -> float:
    """Largest sample or 4x-interpolated magnitude of (channels, n) ``x``; ``hist`` is updated.

    ``scratch`` is a float32 buffer of at least ``min(n, _TP_CHUNK)`` frames.
    """
    peak = 0.0
    n = x.shape[1]
    for start in range(0, n, _TP_CHUNK):
        stop = min(n, start + _TP_CHUNK)
        env = scratch[: stop - start]
        env.fill(0.0)
        _k.interpolated_peak_frames(x, start, stop, _PHASES, hist, env)
        peak = max(peak, float(env.max()), float(np.abs(x[:, start:stop]).max()))
    return peak


def _tail_peak(hist: np.ndarray) -> float:
    """Largest interpolated magnitude after the last frame, the stream continuing in silence."""
    tail = np.zeros_like(hist)
    env = np.zeros(tail.shape[1], dtype=np.float32)
    _k.interpolated_peak_frames(tail, 0, tail.shape[1], _PHASES, hist.copy(), env)
    return float(env.max())


# -- one-shot measurements ----------------------------------------------------


def _meter(audio: np.ndarray, sample_rate: int, weights: Sequence[float] | None, peak: bool) -> LoudnessMeter:
    x = _as_frames(audio)
    return LoudnessMeter(sample_rate, x.shape[0], channel_weights=weights, true_peak=peak).add(x)


def integrated_loudness(
    audio: np.ndarray, sample_rate: int, *, channel_weights: Sequence[float] | None = None
) -> float:
    """Gated integrated loudness (BS.1770-4) in LUFS.

    Parameters
    ----------
    audio : np.ndarray, shape (samples,) or (channels, samples)
        Full scale is 1.0.
    sample_rate : int
        Hz.
    channel_weights : sequence of float, optional
        See :class:`LoudnessMeter`.

    Returns
    -------
    float
        LUFS; ``-inf`` for silence or audio shorter than one 400 ms block.
    """
    return _meter(audio, sample_rate, channel_weights, False).integrated_lufs()


def loudness_range(audio: np.ndarray, sample_rate: int, *, channel_weights: Sequence[float] | None = None) -> float:
    """Loudness range (EBU Tech 3342) in LU; ``0.0`` for silence or audio shorter than 3 s.

    Parameters are those of :func:`integrated_loudness`.
    """
    return _meter(audio, sample_rate, channel_weights, False).loudness_range_lu()


def momentary(audio: np.ndarray, sample_rate: int, *, channel_weights: Sequence[float] | None = None) -> np.ndarray:
    """Momentary loudness series (400 ms windows every 100 ms), shape (n_blocks,), LUFS.

    See :meth:`LoudnessMeter.momentary_lufs`.
    """
    return _meter(audio, sample_rate, channel_weights, False).momentary_lufs()


def short_term(audio: np.ndarray, sample_rate: int, *, channel_weights: Sequence[float] | None = None) -> np.ndarray:
    """Short-term loudness series (3 s windows every 100 ms), shape (n_windows,), LUFS.

    See :meth:`LoudnessMeter.short_term_lufs`.
    """
    return _meter(audio, sample_rate, channel_weights, False).short_term_lufs()


def true_peak(audio: np.ndarray, sample_rate: int) -> float:
    """True peak (BS.1770-4 Annex 2, 4x oversampling) over all channels, in dBTP.

    Parameters
    ----------
    audio : np.ndarray, shape (samples,) or (channels, samples)
        Full scale is 1.0.
    sample_rate : int
        Hz (validated; the interpolator works in units of the sample period).

    Returns
    -------
    float
        dBTP; ``-inf`` for silence or empty audio.
    """
    _check_rate(sample_rate)
    x = _as_frames(audio)
    hist = np.zeros((x.shape[0], _k.TP_TAPS - 1), dtype=np.float32)
    peak = _scan_peak(x, hist, np.empty(min(x.shape[1], _TP_CHUNK), dtype=np.float32))
    return _db(max(peak, _tail_peak(hist)))


def peak_envelope(audio: np.ndarray) -> np.ndarray:
    """Per-sample true-peak envelope: the largest magnitude, over channels, around each sample.

    Parameters
    ----------
    audio : np.ndarray, shape (samples,) or (channels, samples)

    Returns
    -------
    np.ndarray, float64, shape (samples,)
        ``env[k]`` is the largest of the samples ``k`` and the 4x-interpolated
        values between samples ``k - 1`` and ``k + 1``, over all channels.
    """
    x = _as_frames(audio)
    n = x.shape[1]
    if n == 0:
        return np.zeros(0, dtype=np.float64)
    pad = _k.TP_TAPS - 1
    padded = np.zeros((x.shape[0], n + pad), dtype=np.float32)
    padded[:, :n] = x
    frames = np.zeros(n + pad, dtype=np.float32)
    _k.interpolated_peak_frames(padded, 0, n + pad, _PHASES, np.zeros((x.shape[0], pad), np.float32), frames)
    # frames[i] holds the interpolated values between samples i - 6 and i - 5.
    env = np.abs(x).max(axis=0).astype(np.float64)
    np.maximum(env, frames[_TP_DELAY - 1 : _TP_DELAY - 1 + n], out=env)
    np.maximum(env, frames[_TP_DELAY : _TP_DELAY + n], out=env)
    return env


# -- limiter and normalisation ------------------------------------------------


def limiter_gain(
    envelope: np.ndarray, *, sample_rate: int, ceiling: float, lookahead_ms: float = 5.0, release_ms: float = 100.0
) -> np.ndarray:
    """Smooth look-ahead limiter gain that keeps ``envelope * gain`` at or below ``ceiling``.

    The required gain ``min(1, ceiling / envelope)`` is held by a sliding
    minimum over ``±lookahead/2``, released exponentially toward 1 with time
    constant ``release_ms``, then smoothed by a triangular moving average
    over ``±lookahead/2`` (two box filters).  Each output is an average of
    values no larger than the gain required at that sample, so the bound
    holds at every sample, while the gain ramps down over ``lookahead_ms``
    before a peak (no hard clipping, no step) and recovers slowly after it
    (no pumping).

    Parameters
    ----------
    envelope : np.ndarray, shape (samples,)
        Non-negative peak envelope (see :func:`peak_envelope`), linear.
    sample_rate : int
        Hz.
    ceiling : float
        Linear ceiling, > 0.
    lookahead_ms, release_ms : float
        Attack ramp length and release time constant.

    Returns
    -------
    np.ndarray, float64, shape (samples,)
        Gain in (0, 1].
    """
    rate = check_sample_rate(sample_rate)
    if not ceiling > 0:
        raise ConfigError(f"ceiling must be > 0, got {ceiling!r}")
    _check_range("lookahead_ms", lookahead_ms, 0.1, 50.0)
    _check_range("release_ms", release_ms, 1.0, 5000.0)
    env = np.asarray(envelope, dtype=np.float64)
    with np.errstate(divide="ignore"):
        required = np.minimum(1.0, ceiling / env)
    if env.size == 0 or required.min() >= 1.0:
        return np.ones(env.size, dtype=np.float64)
    # Hold over +-2q, then a triangular average over +-2q: the gain starts to fall 4q
    # (the look-ahead) before a peak and reaches the required value at the peak.
    q = max(1, round(lookahead_ms * 1e-3 * rate / 4.0))
    held = ndimage.minimum_filter1d(required, size=4 * q + 1, mode="nearest")
    released = np.empty_like(held)
    _k.gain_release(held, math.exp(-1.0 / (release_ms * 1e-3 * rate)), released)
    return np.minimum(_moving_average(_moving_average(released, q), q), 1.0)


def _moving_average(x: np.ndarray, half: int) -> np.ndarray:
    """Centred moving average over ``2 half + 1`` samples, edges repeated (a cumulative-sum box filter).

    3x faster than :func:`scipy.ndimage.uniform_filter1d` here; the cumulative sum's rounding
    (~1e-16 x length) is far below the limiter's 0.002 dB margin.
    """
    padded = np.concatenate([np.full(half + 1, x[0]), x, np.full(half, x[-1])])
    csum = np.cumsum(padded)
    return (csum[2 * half + 1 :] - csum[: -2 * half - 1]) / (2 * half + 1)


def _check_range(name: str, value: float, low: float, high: float) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{name} must be a number, got {value!r}") from err
    if not low <= v <= high:
        raise ConfigError(f"{name} must be in [{low}, {high}], got {value!r}")
    return v


@dataclass(frozen=True)
class NormalizeReport:
    """What :func:`normalize` measured and did.

    Attributes
    ----------
    input_lufs, input_true_peak_dbtp : float
        Integrated loudness and true peak of the input (``-inf`` if silent).
    gain_db : float
        Static gain applied, including the make-up for the limiter's loss.
    limiter_reduction_db : float
        Loudness the limiter took away (``input_lufs + gain_db - output_lufs``), in LU.
    limiter_peak_reduction_db : float
        Deepest instantaneous gain reduction of the limiter, in dB (0 when it did nothing).
    output_lufs, output_true_peak_dbtp : float
        Measured on the returned audio.
    reached_target : bool
        Whether ``output_lufs`` is within 0.1 LU of the target and the true peak within the ceiling.
    """

    input_lufs: float
    input_true_peak_dbtp: float
    gain_db: float
    limiter_reduction_db: float
    limiter_peak_reduction_db: float
    output_lufs: float
    output_true_peak_dbtp: float
    reached_target: bool


_LOUDNESS_TOL_LU = 0.01  # aim much tighter than the 0.1 LU the report promises
_MAX_ITER = 16
_MAX_MAKEUP_DB = 24.0  # never push the limiter harder than this to reach the target
_PEAK_MARGIN_DB = 0.002  # aim this far under the ceiling (float32 rounding, gain modulation)


def normalize(
    audio: np.ndarray,
    sample_rate: int,
    *,
    target_lufs: float = -23.0,
    true_peak_dbtp: float = -1.0,
    lookahead_ms: float = 5.0,
    release_ms: float = 100.0,
) -> tuple[np.ndarray, NormalizeReport]:
    """Normalise to ``target_lufs`` with a true-peak ceiling of ``true_peak_dbtp``.

    The gain to the target is applied first; if the result's true peak would
    exceed the ceiling, a look-ahead limiter (:func:`limiter_gain`, one gain
    for all channels) holds the peaks down, and the gain is raised until the
    limited signal meets the target (bracketed secant search, to 0.01 LU).
    Unlike normalising the peak first and the loudness second, this never
    leaves the output above the ceiling, and unlike a clipper it does not
    square off waveforms.  The make-up is capped at 24 dB; beyond that (or if
    no gain meets both) ``report.reached_target`` is False.

    Parameters
    ----------
    audio : np.ndarray, shape (samples,) or (channels, samples)
    sample_rate : int
        Hz.
    target_lufs : float
        Integrated loudness to reach, in [-70, 0] LUFS.
    true_peak_dbtp : float
        True-peak ceiling, in [-30, 0] dBTP.
    lookahead_ms, release_ms : float
        Limiter attack ramp (0.1-50 ms) and release time constant (1-5000 ms).

    Returns
    -------
    audio : np.ndarray, float32, same shape as the input
        The input unchanged when it has no measurable loudness (silent, or
        shorter than 400 ms).
    report : NormalizeReport
    """
    rate = _check_rate(sample_rate)
    x = as_audio(audio)
    frames = x.reshape(1, -1) if x.ndim == 1 else x
    meter = LoudnessMeter(rate, frames.shape[0]).add(frames)
    y, report = _normalize_measured(
        frames,
        meter,
        target_lufs=target_lufs,
        true_peak_dbtp=true_peak_dbtp,
        lookahead_ms=lookahead_ms,
        release_ms=release_ms,
    )
    return y.reshape(x.shape), report


def _normalize_measured(
    frames: np.ndarray,
    meter: LoudnessMeter,
    *,
    target_lufs: float,
    true_peak_dbtp: float,
    lookahead_ms: float,
    release_ms: float,
) -> tuple[np.ndarray, NormalizeReport]:
    """:func:`normalize` of (channels, samples) ``frames`` already fed to ``meter``."""
    target = _check_range("target_lufs", target_lufs, ABSOLUTE_GATE_LUFS, 0.0)
    ceiling_db = _check_range("true_peak_dbtp", true_peak_dbtp, -30.0, 0.0)
    _check_range("lookahead_ms", lookahead_ms, 0.1, 50.0)
    _check_range("release_ms", release_ms, 1.0, 5000.0)
    rate, n_ch = meter.sample_rate, meter.channels
    in_lufs, in_peak = meter.integrated_lufs(), meter.true_peak_dbtp()
    if not math.isfinite(in_lufs):
        return frames, NormalizeReport(in_lufs, in_peak, 0.0, 0.0, 0.0, in_lufs, in_peak, False)

    def lufs_of(y: np.ndarray) -> float:
        return (
            LoudnessMeter(rate, n_ch, channel_weights=meter.channel_weights, true_peak=False).add(y).integrated_lufs()
        )

    gain_db = target - in_lufs
    if in_peak + gain_db <= ceiling_db - _PEAK_MARGIN_DB:
        y = frames * np.float32(10.0 ** (gain_db / 20.0))
        out_lufs, out_peak = lufs_of(y), true_peak(y, rate)
        return y, NormalizeReport(
            in_lufs, in_peak, gain_db, 0.0, 0.0, out_lufs, out_peak, _met(out_lufs, out_peak, target, ceiling_db)
        )

    env = peak_envelope(frames)

    def limited(g_db: float, ceiling: float) -> tuple[np.ndarray, float, float]:
        lin = 10.0 ** (g_db / 20.0)
        gain = limiter_gain(
            env * lin, sample_rate=rate, ceiling=ceiling, lookahead_ms=lookahead_ms, release_ms=release_ms
        )
        y = frames * (gain * lin).astype(np.float32)
        return y, float(gain.min()), lufs_of(y)

    ceiling = 10.0 ** ((ceiling_db - _PEAK_MARGIN_DB) / 20.0)
    g = gain_db
    for _attempt in range(4):
        # Bracketed secant search for the gain whose limited output meets the target.
        lo_gain, hi_gain = gain_db, gain_db + _MAX_MAKEUP_DB
        y, gmin, out_lufs = limited(g, ceiling)
        prev: tuple[float, float] | None = None
        for _ in range(_MAX_ITER):
            err = target - out_lufs
            if abs(err) <= _LOUDNESS_TOL_LU:
                break
            if err > 0:
                lo_gain = max(lo_gain, g)
            else:
                hi_gain = min(hi_gain, g)
            step = err
            if prev is not None and abs(out_lufs - prev[1]) > 1e-9:
                step = err * (g - prev[0]) / (out_lufs - prev[1])
            g_next = g + step
            if not lo_gain < g_next < hi_gain:
                g_next = 0.5 * (lo_gain + hi_gain)
            if abs(g_next - g) < 1e-6:
                break
            prev = (g, out_lufs)
            g = g_next
            y, gmin, out_lufs = limited(g, ceiling)
        out_peak = true_peak(y, rate)
        if out_peak <= ceiling_db:
            break
        # Inter-sample overshoot of the gain-modulated signal: lower the internal ceiling and redo.
        ceiling *= 10.0 ** (-(out_peak - ceiling_db + _PEAK_MARGIN_DB) / 20.0)
    report = NormalizeReport(
        input_lufs=in_lufs,
        input_true_peak_dbtp=in_peak,
        gain_db=g,
        limiter_reduction_db=max(0.0, in_lufs + g - out_lufs),
        limiter_peak_reduction_db=max(0.0, -_db(gmin)),
        output_lufs=out_lufs,
        output_true_peak_dbtp=out_peak,
        reached_target=_met(out_lufs, out_peak, target, ceiling_db),
    )
    return y, report


def _met(lufs: float, peak: float, target: float, ceiling_db: float) -> bool:
    return abs(lufs - target) <= 0.1 and peak <= ceiling_db


# -- pipeline stage -------------------------------------------------------------


@dataclass(frozen=True)
class Loudness:
    """Pipeline stage: measure, then normalise to ``target_lufs`` under a ``true_peak_dbtp`` ceiling.

    Metrics: ``input_lufs``, ``input_true_peak_dbtp``, ``input_lra_lu``,
    ``gain_db``, ``limiter_reduction_db`` (loudness the limiter cost, LU),
    ``limiter_peak_reduction_db``, ``output_lufs``, ``output_true_peak_dbtp``.
    A clip shorter than one 400 ms block gets a ``warning``, a silent clip
    (nothing above the -70 LUFS gate) is ``rejected``; both keep their audio
    and get ``-inf`` loudness metrics.  A limiter costing more than
    ``max_limiter_lu`` is a ``warning``.
    """

    name: ClassVar[str] = "loudness"
    keeps_timing: ClassVar[bool] = True  # speech stays where it was (see run_stages)
    target_lufs: float = -23.0
    true_peak_dbtp: float = -1.0
    lookahead_ms: float = 5.0
    release_ms: float = 100.0
    max_limiter_lu: float = 1.0

    def __post_init__(self) -> None:
        _check_range("target_lufs", self.target_lufs, ABSOLUTE_GATE_LUFS, 0.0)
        _check_range("true_peak_dbtp", self.true_peak_dbtp, -30.0, 0.0)
        _check_range("lookahead_ms", self.lookahead_ms, 0.1, 50.0)
        _check_range("release_ms", self.release_ms, 1.0, 5000.0)
        _check_range("max_limiter_lu", self.max_limiter_lu, 0.0, 100.0)

    def apply(self, clip: Clip) -> Clip:
        audio = clip.require_audio()
        frames = _as_frames(audio)
        meter = LoudnessMeter(clip.sample_rate, frames.shape[0]).add(frames)
        out, rep = _normalize_measured(
            frames,
            meter,
            target_lufs=self.target_lufs,
            true_peak_dbtp=self.true_peak_dbtp,
            lookahead_ms=self.lookahead_ms,
            release_ms=self.release_ms,
        )
        metrics = {
            "input_lufs": rep.input_lufs,
            "input_true_peak_dbtp": rep.input_true_peak_dbtp,
            "input_lra_lu": meter.loudness_range_lu(),
            "gain_db": rep.gain_db,
            "limiter_reduction_db": rep.limiter_reduction_db,
            "limiter_peak_reduction_db": rep.limiter_peak_reduction_db,
            "output_lufs": rep.output_lufs,
            "output_true_peak_dbtp": rep.output_true_peak_dbtp,
        }
        if not math.isfinite(rep.input_lufs):
            result = clip.with_metrics(**metrics)
            if meter.frames < _SUB_PER_BLOCK * meter.hop:
                return result.with_verdict(
                    "warning",
                    f"loudness: too short to measure ({clip.duration_s:.3f} s < {BLOCK_S} s); level unchanged",
                )
            return result.with_verdict(
                "rejected", f"loudness: silent (no 400 ms block above {ABSOLUTE_GATE_LUFS:.0f} LUFS)"
            )
        result = dataclasses.replace(clip, audio=out.reshape(audio.shape)).with_metrics(**metrics)
        if rep.limiter_reduction_db > self.max_limiter_lu:
            result = result.with_verdict(
                "warning",
                f"loudness: true-peak limiter cost {rep.limiter_reduction_db:.1f} LU "
                f"(> {self.max_limiter_lu:g}) to hold {self.true_peak_dbtp:g} dBTP at {self.target_lufs:g} LUFS",
            )
        if not rep.reached_target:
            result = result.with_verdict(
                "warning",
                f"loudness: reached {rep.output_lufs:.2f} LUFS / {rep.output_true_peak_dbtp:.2f} dBTP, "
                f"target {self.target_lufs:g} LUFS / {self.true_peak_dbtp:g} dBTP",
            )
        return result
