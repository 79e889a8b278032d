"""The ``loudness`` stage: gain to a target loudness with a look-ahead true-peak limiter.

:func:`normalize` applies the gain that brings the integrated loudness (measured with
:mod:`prep.dsp.loudness`) to ``target_lufs`` and then, only where needed, a look-ahead
true-peak limiter so the true peak stays at or below ``true_peak_dbtp``.  Loudness the limiter
takes away is made up by raising the gain until the target is met, so the output meets both.
:class:`Loudness` is the pipeline stage.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..audio import as_audio, check_sample_rate
from ..clip import Clip
from ..dsp.loudness import (
    _SUB_PER_BLOCK,
    _TP_DELAY,
    ABSOLUTE_GATE_LUFS,
    BLOCK_S,
    LoudnessMeter,
    _as_frames,
    _check_rate,
    _db,
    _k,
    _tp_phases,
    true_peak,
)
from ..errors import ConfigError
from ..findings import finding

__all__ = ["Loudness", "NormalizeReport", "limiter_gain", "normalize", "peak_envelope"]


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
    _k.interpolated_peak_frames(padded, 0, n + pad, _tp_phases(), np.zeros((x.shape[0], pad), np.float32), frames)
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
    from scipy import ndimage  # only when a peak needs limiting: scipy.ndimage costs start-up time

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
    *,
    sample_rate: int,
    target_lufs: float = -23.0,
    true_peak_dbtp: float = -1.0,
    lookahead_ms: float = 5.0,
    release_ms: float = 100.0,
    max_under_target_lu: float = 0.0,
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
    max_under_target_lu : float
        Headroom rule, in [0, 20] LU: when the gain to the target would push the true peak over
        the ceiling, aim up to this much below the target instead (a pure gain, no limiter: a
        limiter's gain modulation is distortion), and limit only what remains; the target then
        counts as reached anywhere in ``[target_lufs - max_under_target_lu, target_lufs]``.

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
    meter = LoudnessMeter(sample_rate=rate, channels=frames.shape[0]).add(frames)
    y, report = _normalize_measured(
        frames,
        meter,
        target_lufs=target_lufs,
        true_peak_dbtp=true_peak_dbtp,
        lookahead_ms=lookahead_ms,
        release_ms=release_ms,
        max_under_target_lu=max_under_target_lu,
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
    max_under_target_lu: float = 0.0,
) -> tuple[np.ndarray, NormalizeReport]:
    """:func:`normalize` of (channels, samples) ``frames`` already fed to ``meter``."""
    target = _check_range("target_lufs", target_lufs, ABSOLUTE_GATE_LUFS, 0.0)
    ceiling_db = _check_range("true_peak_dbtp", true_peak_dbtp, -30.0, 0.0)
    _check_range("lookahead_ms", lookahead_ms, 0.1, 50.0)
    _check_range("release_ms", release_ms, 1.0, 5000.0)
    _check_range("max_under_target_lu", max_under_target_lu, 0.0, 20.0)
    rate, n_ch = meter.sample_rate, meter.channels
    in_lufs, in_peak = meter.integrated_lufs(), meter.true_peak_dbtp()
    if not math.isfinite(in_lufs):
        return frames, NormalizeReport(in_lufs, in_peak, 0.0, 0.0, 0.0, in_lufs, in_peak, False)

    def lufs_of(y: np.ndarray) -> float:
        return (
            LoudnessMeter(sample_rate=rate, channels=n_ch, channel_weights=meter.channel_weights, true_peak=False)
            .add(y)
            .integrated_lufs()
        )

    gain_db = target - in_lufs
    over_db = in_peak + gain_db - (ceiling_db - _PEAK_MARGIN_DB)
    if over_db > 0 and max_under_target_lu > 0:  # headroom first: lower the target, limit only the rest
        under = min(over_db, max_under_target_lu)
        target -= under
        gain_db -= under
    if in_peak + gain_db <= ceiling_db - _PEAK_MARGIN_DB + 1e-9:
        y = frames * np.float32(10.0 ** (gain_db / 20.0))
        out_lufs, out_peak = lufs_of(y), true_peak(y, sample_rate=rate)
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
        out_peak = true_peak(y, sample_rate=rate)
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

    Metrics: ``pre_gain_lufs``, ``pre_gain_true_peak_dbtp``, ``pre_gain_lra_lu``
    (this stage's input, before its gain: not the source), ``gain_db``,
    ``limiter_reduction_db`` (loudness the limiter cost, LU),
    ``limiter_peak_reduction_db``, ``output_lufs``, ``output_true_peak_dbtp``.
    A clip shorter than one 400 ms block gets a ``warning``, a silent clip
    (nothing above the -70 LUFS gate) is ``rejected``; both keep their audio
    and get ``-inf`` loudness metrics.  A limiter costing more than
    ``max_limiter_lu`` is a ``warning``.  Headroom comes before limiting: a clip whose true peak
    would pass the ceiling at the target is first set up to ``max_under_target_lu`` below it by
    gain alone (see :func:`normalize`), so most speech keeps its waveform (the limiter's gain
    modulation cost denoised clips up to 3.5 dB SI-SDR).
    """

    name: ClassVar[str] = "loudness"
    changes: ClassVar[frozenset[str]] = frozenset({"audio"})  # speech stays where it was (see run_stages)
    target_lufs: float = -23.0
    true_peak_dbtp: float = -1.0
    lookahead_ms: float = 5.0
    release_ms: float = 100.0
    max_limiter_lu: float = 1.0
    max_under_target_lu: float = 3.0

    def __post_init__(self) -> None:
        _check_range("target_lufs", self.target_lufs, ABSOLUTE_GATE_LUFS, 0.0)
        _check_range("true_peak_dbtp", self.true_peak_dbtp, -30.0, 0.0)
        _check_range("lookahead_ms", self.lookahead_ms, 0.1, 50.0)
        _check_range("release_ms", self.release_ms, 1.0, 5000.0)
        _check_range("max_limiter_lu", self.max_limiter_lu, 0.0, 100.0)
        _check_range("max_under_target_lu", self.max_under_target_lu, 0.0, 20.0)

    def apply(self, clip: Clip) -> Clip:
        audio = clip.require_audio()
        frames = _as_frames(audio)
        meter = LoudnessMeter(sample_rate=clip.sample_rate, channels=frames.shape[0]).add(frames)
        out, rep = _normalize_measured(
            frames,
            meter,
            target_lufs=self.target_lufs,
            true_peak_dbtp=self.true_peak_dbtp,
            lookahead_ms=self.lookahead_ms,
            release_ms=self.release_ms,
            max_under_target_lu=self.max_under_target_lu,
        )
        metrics = {
            "pre_gain_lufs": rep.input_lufs,
            "pre_gain_true_peak_dbtp": rep.input_true_peak_dbtp,
            "pre_gain_lra_lu": meter.loudness_range_lu(),
            "gain_db": rep.gain_db,
            "limiter_reduction_db": rep.limiter_reduction_db,
            "limiter_peak_reduction_db": rep.limiter_peak_reduction_db,
            "output_lufs": rep.output_lufs,
            "output_true_peak_dbtp": rep.output_true_peak_dbtp,
        }
        if not math.isfinite(rep.input_lufs):
            result = clip.with_metrics(**metrics)
            if meter.samples_seen < _SUB_PER_BLOCK * meter.hop_samples:
                return result.with_findings(
                    finding("loudness.too_short", metric="duration_s", value=clip.duration_s, threshold=BLOCK_S)
                )
            silent = finding("loudness.silent", metric="pre_gain_lufs", threshold=ABSOLUTE_GATE_LUFS)
            return result.with_findings(silent)
        result = dataclasses.replace(clip, audio=out.reshape(audio.shape)).with_metrics(**metrics)
        if rep.limiter_reduction_db > self.max_limiter_lu:
            result = result.with_findings(
                finding(
                    "loudness.limited",
                    metric="limiter_reduction_db",
                    value=rep.limiter_reduction_db,
                    threshold=self.max_limiter_lu,
                    ceiling_dbtp=self.true_peak_dbtp,
                    target_lufs=self.target_lufs,
                )
            )
        if not rep.reached_target:
            over_peak = rep.output_true_peak_dbtp > self.true_peak_dbtp
            if over_peak:
                result = result.with_findings(
                    finding(
                        "loudness.over_peak",
                        metric="output_true_peak_dbtp",
                        value=rep.output_true_peak_dbtp,
                        threshold=self.true_peak_dbtp,
                    )
                )
            if not over_peak or rep.output_lufs != self.target_lufs:
                result = result.with_findings(
                    finding(
                        "loudness.off_target", metric="output_lufs", value=rep.output_lufs, threshold=self.target_lufs
                    )
                )
        return result
