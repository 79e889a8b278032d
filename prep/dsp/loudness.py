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

import functools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..audio import as_audio, check_sample_rate
from ..errors import ConfigError


class _Kernels:
    """:mod:`prep.kernels.loudness`, imported on first use: a process that only cuts long files (the parent of
    a run with workers) never loads numba."""

    def __getattr__(self, name: str) -> Any:
        from ..kernels import loudness

        return getattr(loudness, name)


_k = _Kernels()

__all__ = [
    "ABSOLUTE_GATE_LUFS",
    "BLOCK_S",
    "LRA_RELATIVE_GATE_LU",
    "MIN_SAMPLE_RATE",
    "OVERSAMPLING",
    "RELATIVE_GATE_LU",
    "SHORT_TERM_S",
    "LoudnessMeter",
    "default_channel_weights",
    "gated_loudness",
    "integrated_loudness",
    "kweighting_sos",
    "loudness_range",
    "momentary",
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


def kweighting_sos(*, sample_rate: int) -> np.ndarray:
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


@functools.cache
def _tp_phases() -> np.ndarray:
    """Phases 1-3 of :func:`true_peak_filter` as (3, 12) float32: ``phases[p - 1, t] = h[4 t + p]``."""
    h = true_peak_filter()
    padded = np.zeros(OVERSAMPLING * (_k.TP_TAPS + 1), dtype=np.float64)
    padded[: h.size] = h
    phases = padded.reshape(_k.TP_TAPS + 1, OVERSAMPLING).T[1:, : _k.TP_TAPS]
    return np.ascontiguousarray(phases, dtype=np.float32)



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

    Attributes
    ----------
    samples_seen : int
        Samples per channel measured so far.
    hop_samples : int
        Samples per channel in one 100 ms sub-block.

    Examples
    --------
    >>> meter = LoudnessMeter(sample_rate=48000, channels=2)
    >>> for chunk in chunks:  # doctest: +SKIP
    ...     meter.add(chunk)
    >>> meter.integrated_lufs()  # doctest: +SKIP
    """

    def __init__(
        self,
        *,
        sample_rate: int,
        channels: int = 1,
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
        self.hop_samples = (self.sample_rate + 5) // 10  # samples per 100 ms, rounded as libebur128 does
        self._sos = kweighting_sos(sample_rate=self.sample_rate)
        self._state = np.zeros((self.channels, 4), dtype=np.float64)
        self._carry = np.zeros(2, dtype=np.float64)
        self._sums = np.zeros(64, dtype=np.float64)
        self._n_sums = 0
        self._track_peak = bool(true_peak)
        self._hist = np.zeros((self.channels, _k.TP_TAPS - 1), dtype=np.float32)
        self._env = np.zeros(0, dtype=np.float32)
        self._peak = 0.0
        self.samples_seen = 0

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
        need = self._n_sums + (int(self._carry[1]) + n) // self.hop_samples + 1
        if need > self._sums.size:
            grown = np.zeros(max(need, 2 * self._sums.size), dtype=np.float64)
            grown[: self._n_sums] = self._sums[: self._n_sums]
            self._sums = grown
        done = _k.kweighted_power_sums(
            x, self._sos, self._state, self.channel_weights, self.hop_samples, self._carry, self._sums[self._n_sums :]
        )
        new = self._sums[self._n_sums : self._n_sums + done]
        if not (np.isfinite(self._carry[0]) and np.all(np.isfinite(new))):
            raise ConfigError("audio contains NaN or infinite samples")
        self._n_sums += done
        if self._track_peak:
            self._add_peak(x)
        self.samples_seen += n
        return self

    def _add_peak(self, x: np.ndarray) -> None:
        if self._env.size < min(x.shape[1], _TP_CHUNK):
            self._env = np.zeros(min(x.shape[1], _TP_CHUNK), dtype=np.float32)
        self._peak = max(self._peak, _scan_peak(x, self._hist, self._env))

    # -- reading ------------------------------------------------------------
    @property
    def duration_s(self) -> float:
        """Seconds of audio measured so far."""
        return self.samples_seen / float(self.sample_rate)

    def subblock_energies(self) -> np.ndarray:
        """Channel-weighted K-weighted energy of each completed 100 ms sub-block.

        Returns
        -------
        np.ndarray, float64, shape (n_subblocks,)
            Sum over the sub-block's frames of the weighted squared K-weighted
            samples (divide by :attr:`hop_samples` for mean power).
        """
        return self._sums[: self._n_sums].copy()

    def block_energies(self) -> np.ndarray:
        """Mean power of each 400 ms gating block (every 100 ms), shape (n_blocks,)."""
        return _window_sums(self._sums[: self._n_sums], _SUB_PER_BLOCK, 1) / (_SUB_PER_BLOCK * self.hop_samples)

    def integrated_lufs(self) -> float:
        """Gated integrated loudness in LUFS; ``-inf`` when no block passes the gates."""
        return gated_loudness(self._sums[: self._n_sums], hop_samples=self.hop_samples)

    def loudness_range_lu(self) -> float:
        """Loudness range (EBU Tech 3342) in LU; ``0.0`` when no short-term block passes the gates."""
        sums = _window_sums(self._sums[: self._n_sums], _SUB_PER_SHORT, _SUB_PER_LRA_HOP)
        short = sums / (_SUB_PER_SHORT * self.hop_samples)
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
        return _lufs(_window_sums(self._sums[: self._n_sums], _SUB_PER_SHORT, 1) / (_SUB_PER_SHORT * self.hop_samples))

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
        _k.interpolated_peak_frames(x, start, stop, _tp_phases(), hist, env)
        peak = max(peak, float(env.max()), float(np.abs(x[:, start:stop]).max()))
    return peak


def _tail_peak(hist: np.ndarray) -> float:
    """Largest interpolated magnitude after the last frame, the stream continuing in silence."""
    tail = np.zeros_like(hist)
    env = np.zeros(tail.shape[1], dtype=np.float32)
    _k.interpolated_peak_frames(tail, 0, tail.shape[1], _tp_phases(), hist.copy(), env)
    return float(env.max())


def gated_loudness(subblock_sums: np.ndarray, *, hop_samples: int) -> float:
    """Gated integrated loudness (BS.1770-4) in LUFS from the sums of the 100 ms sub-blocks.

    What :meth:`LoudnessMeter.integrated_lufs` computes from its sums, for a caller that has
    them from elsewhere (:func:`prep.dsp.estimators.loudness_and_frame_powers`).

    Parameters
    ----------
    subblock_sums : np.ndarray, float64, shape (n_subblocks,)
        Channel-weighted K-weighted energy of each complete sub-block
        (:meth:`LoudnessMeter.subblock_energies`).
    hop_samples : int
        Samples per sub-block (:attr:`LoudnessMeter.hop_samples`).

    Returns
    -------
    float
        LUFS; ``-inf`` when no block passes the gates.
    """
    blocks = _window_sums(subblock_sums, _SUB_PER_BLOCK, 1) / (_SUB_PER_BLOCK * hop_samples)
    blocks = blocks[blocks >= _ABS_GATE_ENERGY]
    if blocks.size == 0:
        return -math.inf
    relative = blocks.mean() * 10.0 ** (RELATIVE_GATE_LU / 10.0)
    gated = blocks[blocks >= relative]
    if gated.size == 0:
        return -math.inf
    return float(_lufs(gated.mean()))


# -- one-shot measurements ----------------------------------------------------


def _meter(audio: np.ndarray, sample_rate: int, weights: Sequence[float] | None, peak: bool) -> LoudnessMeter:
    x = _as_frames(audio)
    return LoudnessMeter(sample_rate=sample_rate, channels=x.shape[0], channel_weights=weights, true_peak=peak).add(x)


def integrated_loudness(
    audio: np.ndarray, *, sample_rate: int, channel_weights: Sequence[float] | None = None
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


def loudness_range(audio: np.ndarray, *, sample_rate: int, channel_weights: Sequence[float] | None = None) -> float:
    """Loudness range (EBU Tech 3342) in LU; ``0.0`` for silence or audio shorter than 3 s.

    Parameters are those of :func:`integrated_loudness`.
    """
    return _meter(audio, sample_rate, channel_weights, False).loudness_range_lu()


def momentary(audio: np.ndarray, *, sample_rate: int, channel_weights: Sequence[float] | None = None) -> np.ndarray:
    """Momentary loudness series (400 ms windows every 100 ms), shape (n_blocks,), LUFS.

    See :meth:`LoudnessMeter.momentary_lufs`.
    """
    return _meter(audio, sample_rate, channel_weights, False).momentary_lufs()


def short_term(audio: np.ndarray, *, sample_rate: int, channel_weights: Sequence[float] | None = None) -> np.ndarray:
    """Short-term loudness series (3 s windows every 100 ms), shape (n_windows,), LUFS.

    See :meth:`LoudnessMeter.short_term_lufs`.
    """
    return _meter(audio, sample_rate, channel_weights, False).short_term_lufs()


def true_peak(audio: np.ndarray, *, sample_rate: int) -> float:
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
