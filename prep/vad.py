"""Voice activity detection, trimming and slicing at pauses.

Speech is found on frames of ``frame_s`` seconds at 16 kHz, whatever the
clip's rate, by two detectors that fail differently:

* `webrtcvad <https://github.com/wiseman/py-webrtcvad>`_ (a GMM on band
  energies, fed level-normalised audio) recognises speech-like spectra, but
  also flags loud noise and can miss the first syllable after a pause;
* a spectral energy detector: per 100 Hz-7 kHz bin, the frame's power over
  the noise power (estimated on the quietest 20 % of frames), averaged as
  Sohn's log-likelihood ratio.  It measures how far above the noise floor a
  frame is, in a way that coloured noise or hum does not fool.

A frame is *active* when both agree, or when the energy detector alone is
far above its threshold.  Hysteresis turns active frames into regions: gaps
shorter than ``min_silence_s`` are bridged (word gaps do not split a
phrase), a region must reach a high score somewhere (a burst at the floor
never starts speech), regions shorter than ``min_speech_s`` are dropped, and
a region grows by up to 0.3 s into neighbouring frames above the low
threshold (onsets and decays).

:func:`speech_regions`, :func:`speech_mask` and :func:`vad_frames` measure;
:func:`trim`, :func:`compress_pauses` and :func:`slice_bounds` apply;
:class:`Trim` and :class:`Slice` are the pipeline stages.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import scipy.fft as sp_fft
import soxr
import webrtcvad

from .audio import as_mono, check_sample_rate
from .clip import Clip
from .errors import ConfigError

__all__ = [
    "VAD_RATE",
    "Slice",
    "Trim",
    "TrimReport",
    "VadFrames",
    "compress_pauses",
    "mask_to_regions",
    "regions_to_mask",
    "slice_bounds",
    "speech_mask",
    "speech_regions",
    "trim",
    "vad_frames",
]

#: Rate (Hz) at which webrtcvad runs; other rates are resampled to it.
VAD_RATE = 16000
_FADE_S = 0.01  # crossfade where compress_pauses joins audio
_FRAME_CHOICES_S = (0.01, 0.02, 0.03)
_BLOCK_S = 30.0  # resample/classify in blocks of this many seconds (bounded memory)
_TARGET_LEVEL_DB = -20.0  # speech level webrtcvad sees after level normalisation
_MAX_GAIN_DB = 50.0
_SILENCE_DB = -100.0  # frame power floor (dB re full scale) for digital silence
_MAX_EXTEND_S = 0.3  # a region grows at most this much into frames above the low threshold
_QUIET_PERCENT = 20.0  # the noise spectrum is the mean of this percentage of quietest frames
_NOISE_BLOCK_S = 30.0  # recordings longer than 3 blocks get a noise spectrum per block
_MAX_RANGE_DB = 70.0  # noise spectrum floor below the speech level (digital silence)
_LOW_SCORE = 0.4  # snr_score above which a frame may be speech (noise gives about 0.15)
_HIGH_SCORE = 1.5  # snr_score a region must reach somewhere
_STRONG_SCORE = 8.0  # snr_score above which a frame is speech even if webrtcvad says no

Region = tuple[float, float]


# -- measuring ---------------------------------------------------------------
@dataclass(frozen=True)
class VadFrames:
    """Frame-level VAD measurements of one signal.

    Attributes
    ----------
    frame_s : float
        Frame length and hop in seconds; frame ``k`` covers
        ``[k * frame_s, (k + 1) * frame_s)``.
    energy_db : np.ndarray, float32, shape (frames,)
        Mean power of each frame in dB re full scale (at 16 kHz).
    snr_score : np.ndarray, float32, shape (frames,)
        Spectral energy detector: mean over 100 Hz–7 kHz bins of Sohn's
        log-likelihood ratio ``gamma - 1 - ln(gamma)`` (for ``gamma > 1``),
        where ``gamma`` is the bin's power over the noise power estimated
        from the quietest frames.  About 0.15 on noise, large on speech.
    webrtc : np.ndarray, bool, shape (frames,)
        webrtcvad's raw decision (after level normalisation).
    noise_floor_db, speech_level_db : float
        10th and 95th percentiles of ``energy_db``.
    """

    frame_s: float
    energy_db: np.ndarray
    snr_score: np.ndarray
    webrtc: np.ndarray
    noise_floor_db: float
    speech_level_db: float

    @property
    def active(self) -> np.ndarray:
        """Candidate speech frames, ``(frames,)`` bool.

        Where webrtcvad and the spectral energy detector agree, plus frames
        so far above the noise that webrtcvad's miss (it can skip the first
        syllable after a pause) must be overruled.
        """
        return (self.webrtc & (self.snr_score > _LOW_SCORE)) | (self.snr_score > _STRONG_SCORE)


def _check_frame_s(frame_s: float) -> int:
    if not any(abs(frame_s - c) < 1e-9 for c in _FRAME_CHOICES_S):
        raise ConfigError(f"frame_s must be one of {_FRAME_CHOICES_S} (webrtcvad frame sizes), got {frame_s!r}")
    return round(frame_s * VAD_RATE)


def _check_aggressiveness(aggressiveness: int) -> None:
    if aggressiveness not in (0, 1, 2, 3):
        raise ConfigError(f"aggressiveness must be 0, 1, 2 or 3, got {aggressiveness!r}")


def _frames_16k(x: np.ndarray, sample_rate: int, frame_len: int) -> list[np.ndarray]:
    """``x`` at 16 kHz cut into ``(frames, frame_len)`` blocks of about ``_BLOCK_S``.

    Resampling streams through soxr so memory stays bounded; the last frame
    is zero-padded.
    """
    step = int(_BLOCK_S * sample_rate)
    stream = None if sample_rate == VAD_RATE else soxr.ResampleStream(sample_rate, VAD_RATE, 1, "float32", "LQ")
    out = []
    carry = np.zeros(0, np.float32)
    for i in range(0, x.size, step):
        block = x[i : i + step]
        if stream is not None:
            block = stream.resample_chunk(block, last=i + step >= x.size)
        buf = np.concatenate([carry, block]) if carry.size else block
        whole = buf.size // frame_len * frame_len
        out.append(buf[:whole].reshape(-1, frame_len))
        carry = buf[whole:]
    if carry.size:
        last = np.zeros((1, frame_len), np.float32)
        last[0, : carry.size] = carry
        out.append(last)
    return out


def _band_power(frames: np.ndarray, n_fft: int, lo: int, hi: int) -> np.ndarray:
    window = np.hanning(frames.shape[1]).astype(np.float32)
    spec = sp_fft.rfft(frames * window, n=n_fft, axis=1)[:, lo:hi]
    return spec.real**2 + spec.imag**2


def vad_frames(audio: np.ndarray, sample_rate: int, *, frame_s: float = 0.03, aggressiveness: int = 3) -> VadFrames:
    """Run both detectors frame by frame.

    Parameters
    ----------
    audio : np.ndarray, shape (samples,) or (1, samples)
        Mono audio, any real dtype (converted to float32).
    sample_rate : int
        Rate of ``audio`` in Hz; resampled to 16 kHz internally.
    frame_s : {0.01, 0.02, 0.03}
        Frame length in seconds (webrtcvad's sizes).
    aggressiveness : {0, 1, 2, 3}
        webrtcvad mode; 3 flags least noise as speech.

    Returns
    -------
    VadFrames
        ``ceil(samples / (frame_s * sample_rate))`` frames; the last one is
        zero-padded.

    Raises
    ------
    ConfigError
        For multichannel audio, a bad rate, frame size or mode.
    """
    x = as_mono(audio)
    rate = check_sample_rate(sample_rate)
    frame_len = _check_frame_s(frame_s)
    _check_aggressiveness(aggressiveness)
    n_frames = int(np.ceil(x.size / (frame_s * rate) - 1e-9))
    blocks = _frames_16k(x, rate, frame_len)
    n_fft = frame_len  # 160, 320 or 480: fast FFT sizes
    lo, hi = int(np.ceil(100 * n_fft / VAD_RATE)), int(7000 * n_fft / VAD_RATE) + 1

    def fit(values: np.ndarray, fill: float) -> np.ndarray:
        # Resampling can add or drop a frame at the end: match the input's count.
        if values.shape[0] < n_frames:
            pad = np.full((n_frames - values.shape[0], *values.shape[1:]), fill, values.dtype)
            values = np.concatenate([values, pad])
        return values[:n_frames]

    if n_frames == 0 or not blocks:
        empty = np.zeros(0, np.float32)
        return VadFrames(frame_s, empty, empty, np.zeros(0, bool), _SILENCE_DB, _SILENCE_DB)
    # Pass 1: frame energies and band powers (float32, blocks of _BLOCK_S).
    power = fit(np.concatenate([np.einsum("ij,ij->i", f, f, dtype=np.float64) / frame_len for f in blocks]), 0.0)
    bands = fit(np.concatenate([_band_power(f, n_fft, lo, hi) for f in blocks]), 0.0)
    silence = 10 ** (_SILENCE_DB / 10)
    energy_db = (10.0 * np.log10(np.maximum(power, silence))).astype(np.float32)
    floor_db = float(np.percentile(energy_db, 10))
    level_db = float(np.percentile(energy_db, 95))
    # Noise spectrum: mean band power of the quietest frames, floored far below the speech level;
    # in a long recording, of the quietest frames within one block either side (the noise may change).
    floor = float(bands[energy_db >= level_db].mean(dtype=np.float64)) * 10 ** (-_MAX_RANGE_DB / 10) + 1e-20
    block = round(_NOISE_BLOCK_S / frame_s)
    score = np.empty(n_frames, np.float32)
    for b0 in range(0, n_frames, block if n_frames > 3 * block else n_frames):
        b1 = min(n_frames, b0 + block) if n_frames > 3 * block else n_frames
        w0, w1 = (max(0, b0 - block), min(n_frames, b1 + block)) if n_frames > 3 * block else (0, n_frames)
        local = energy_db[w0:w1]
        quiet = local <= np.percentile(local, _QUIET_PERCENT)
        noise = np.maximum(bands[w0:w1][quiet].mean(axis=0, dtype=np.float64), floor)
        gamma = np.maximum(bands[b0:b1] * (1.0 / noise).astype(np.float32), np.float32(1.0))  # <= 1 scores 0
        score[b0:b1] = (gamma - np.log(gamma)).mean(axis=1) - np.float32(1.0)
    # Pass 2: webrtcvad on level-normalised int16 frames.
    gain = 10 ** (min(_TARGET_LEVEL_DB - level_db, _MAX_GAIN_DB) / 20) * 32768.0
    vad = webrtcvad.Vad(aggressiveness)
    flags = np.zeros(n_frames, bool)
    k = 0
    step = 2 * frame_len  # bytes per int16 frame
    for frames in blocks:
        scaled = frames * np.float32(gain)
        np.clip(scaled, -32768, 32767, out=scaled)
        pcm = scaled.astype(np.int16).tobytes()
        for i in range(min(frames.shape[0], n_frames - k)):
            flags[k] = vad.is_speech(pcm[i * step : (i + 1) * step], VAD_RATE)
            k += 1
    return VadFrames(frame_s, energy_db, score, flags, floor_db, level_db)


def _runs(mask: np.ndarray) -> np.ndarray:
    """Start/stop frame indices of the runs of True, shape (runs, 2)."""
    padded = np.concatenate([[False], mask, [False]])
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    return edges.reshape(-1, 2)


def _decide(frames: VadFrames, *, min_speech_s: float, min_silence_s: float) -> np.ndarray:
    """Frame decisions after hysteresis, bridging and minimum durations, (frames,) bool."""
    if min_speech_s < 0 or min_silence_s < 0:
        raise ConfigError(f"min_speech_s and min_silence_s must be >= 0, got {min_speech_s!r}, {min_silence_s!r}")
    active = frames.active
    runs = _runs(active)
    if runs.size == 0:
        return active
    # Bridge short gaps.
    max_gap = round(min_silence_s / frames.frame_s)
    merged = [list(runs[0])]
    for start, stop in runs[1:]:
        if start - merged[-1][1] < max_gap:
            merged[-1][1] = stop
        else:
            merged.append([start, stop])
    out = np.zeros_like(active)
    min_len = round(min_speech_s / frames.frame_s)
    above = (frames.snr_score > _LOW_SCORE) | frames.webrtc  # either detector keeps a region going
    max_ext = round(_MAX_EXTEND_S / frames.frame_s)
    n = active.size
    for start, stop in merged:
        if stop - start < max(min_len, 1):
            continue
        if not np.any(frames.snr_score[start:stop] > _HIGH_SCORE):
            continue
        # Hysteresis: onsets and decays above the floor belong to the region.
        lo = start
        while lo > 0 and start - lo < max_ext and above[lo - 1]:
            lo -= 1
        hi = stop
        while hi < n and hi - stop < max_ext and above[hi]:
            hi += 1
        out[lo:hi] = True
    return out


def speech_mask(
    audio: np.ndarray,
    sample_rate: int,
    *,
    frame_s: float = 0.03,
    aggressiveness: int = 3,
    min_speech_s: float = 0.1,
    min_silence_s: float = 0.25,
) -> np.ndarray:
    """Per-frame speech decisions.

    Parameters
    ----------
    audio : np.ndarray, shape (samples,) or (1, samples)
        Mono audio.
    sample_rate : int
        Rate of ``audio`` in Hz.
    frame_s : {0.01, 0.02, 0.03}
        Frame length; frame ``k`` covers ``[k * frame_s, (k + 1) * frame_s)``.
    aggressiveness : {0, 1, 2, 3}
        webrtcvad mode.
    min_speech_s : float
        Speech regions shorter than this are dropped.
    min_silence_s : float
        Pauses shorter than this are bridged (counted as speech).

    Returns
    -------
    np.ndarray, bool, shape (ceil(samples / (frame_s * sample_rate)),)
        True for speech frames (no padding).
    """
    frames = vad_frames(audio, sample_rate, frame_s=frame_s, aggressiveness=aggressiveness)
    return _decide(frames, min_speech_s=min_speech_s, min_silence_s=min_silence_s)


def mask_to_regions(mask: np.ndarray, *, frame_s: float, duration_s: float, pad_s: float = 0.0) -> list[Region]:
    """Convert frame decisions to ``(start_s, end_s)`` regions.

    Parameters
    ----------
    mask : np.ndarray, bool, shape (frames,)
    frame_s : float
        Frame length in seconds.
    duration_s : float
        Signal duration; regions are clipped to ``[0, duration_s]``.
    pad_s : float
        Widen every region by this much on both sides; regions that then
        touch are merged.

    Returns
    -------
    list of (float, float)
        Sorted, disjoint regions in seconds.
    """
    if pad_s < 0:
        raise ConfigError(f"pad_s must be >= 0, got {pad_s!r}")
    out: list[Region] = []
    for start, stop in _runs(np.asarray(mask, bool)):
        s = max(0.0, float(start) * frame_s - pad_s)
        e = min(float(duration_s), float(stop) * frame_s + pad_s)
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        elif e > s:
            out.append((s, e))
    return out


def regions_to_mask(regions: Sequence[Region], *, frame_s: float, duration_s: float) -> np.ndarray:
    """Frame decisions from ``(start_s, end_s)`` regions: the inverse of :func:`mask_to_regions`.

    Frame ``k`` covers ``[k * frame_s, (k + 1) * frame_s)`` clipped to
    ``duration_s``; it is speech when the middle of that span lies in a
    region.  ``mask_to_regions`` followed by ``regions_to_mask`` (same
    ``frame_s``, no padding) gives the mask back exactly.

    Parameters
    ----------
    regions : sequence of (float, float)
        Sorted, disjoint regions in seconds.
    frame_s : float
        Frame length in seconds, > 0.
    duration_s : float
        Signal duration.

    Returns
    -------
    np.ndarray, bool, shape (ceil(duration_s / frame_s),)
    """
    if not frame_s > 0:
        raise ConfigError(f"frame_s must be > 0, got {frame_s!r}")
    n = max(0, int(np.ceil(duration_s / frame_s - 1e-9)))
    k = np.arange(n, dtype=np.float64)
    mid = (k * frame_s + np.minimum((k + 1) * frame_s, duration_s)) / 2
    if not len(regions) or n == 0:
        return np.zeros(n, bool)
    starts = np.array([float(r[0]) for r in regions])
    ends = np.array([float(r[1]) for r in regions])
    idx = np.searchsorted(starts, mid, side="right") - 1
    return (idx >= 0) & (mid < ends[np.maximum(idx, 0)])


def speech_regions(
    audio: np.ndarray,
    sample_rate: int,
    *,
    frame_s: float = 0.03,
    aggressiveness: int = 3,
    min_speech_s: float = 0.1,
    min_silence_s: float = 0.25,
    pad_s: float = 0.0,
) -> list[Region]:
    """Speech regions of a mono signal, in seconds.

    Parameters
    ----------
    audio : np.ndarray, shape (samples,) or (1, samples)
        Mono audio, any real dtype.
    sample_rate : int
        Rate of ``audio`` in Hz (any; the detectors run at 16 kHz).
    frame_s, aggressiveness, min_speech_s, min_silence_s
        See :func:`speech_mask`.
    pad_s : float
        Widen each region by this much on both sides (merging overlaps).

    Returns
    -------
    list of (start_s, end_s)
        Sorted, disjoint, within ``[0, duration]``; empty when there is no
        speech.

    Examples
    --------
    >>> import numpy as np
    >>> speech_regions(np.zeros(16000, np.float32), 16000)
    []
    """
    x = as_mono(audio)
    mask = speech_mask(
        x,
        sample_rate,
        frame_s=frame_s,
        aggressiveness=aggressiveness,
        min_speech_s=min_speech_s,
        min_silence_s=min_silence_s,
    )
    return mask_to_regions(mask, frame_s=frame_s, duration_s=x.size / float(sample_rate), pad_s=pad_s)


# -- applying ----------------------------------------------------------------
@dataclass(frozen=True)
class TrimReport:
    """What :func:`trim` did.

    Attributes
    ----------
    start_s, end_s : float
        The kept range of the input (before pause compression), seconds.
    speech_s : float
        Total speech (unpadded regions) in seconds.
    pauses_compressed : int
        Internal pauses shortened by :func:`compress_pauses`.
    pause_removed_s : float
        Seconds removed from those pauses.
    regions : tuple of (float, float)
        The speech regions in the trimmed audio (seconds from its start).
    """

    start_s: float
    end_s: float
    speech_s: float
    pauses_compressed: int = 0
    pause_removed_s: float = 0.0
    regions: tuple[Region, ...] = ()


def _check_regions(regions: Sequence[Region], duration_s: float) -> list[Region]:
    out: list[Region] = []
    for region in regions:
        try:
            s, e = (float(v) for v in region)
        except (TypeError, ValueError) as err:
            raise ConfigError(f"regions must be (start_s, end_s) pairs, got {region!r}") from err
        if not (0.0 <= s < e) or (out and s < out[-1][1]):
            raise ConfigError(f"regions must be sorted, disjoint and non-empty, got {region!r} after {out[-1:]}")
        out.append((s, min(e, duration_s)))
    return out


def _pause_cuts(spans: Sequence[Region], rate: int, max_pause_s: float, keep_pause_s: float) -> list[tuple[int, int]]:
    """Sample ranges ``[cut_from, cut_to)`` :func:`compress_pauses` removes."""
    cuts = []
    for (_, prev_end), (next_start, _) in itertools.pairwise(spans):
        if next_start - prev_end > max_pause_s:
            cuts.append((round((prev_end + keep_pause_s / 2) * rate), round((next_start - keep_pause_s / 2) * rate)))
    return cuts


def _shift_regions(spans: Sequence[Region], cuts: Sequence[tuple[int, int]], n_fade: int, rate: int) -> list[Region]:
    """Where ``spans`` (all outside the cuts) are after the cuts and ``n_fade``-sample crossfades."""
    out = []
    for s, e in spans:
        removed = sum(c1 - c0 + n_fade for c0, c1 in cuts if c1 <= s * rate)
        out.append((s - removed / rate, e - removed / rate))
    return out


def compress_pauses(
    audio: np.ndarray,
    *,
    sample_rate: int,
    regions: Sequence[Region],
    max_pause_s: float,
    keep_pause_s: float = 0.5,
    fade_s: float = _FADE_S,
) -> tuple[np.ndarray, int, float]:
    """Shorten pauses between speech regions that are longer than ``max_pause_s``.

    The middle of each long pause is cut so ``keep_pause_s`` of it remains
    (half after the previous region, half before the next); the two sides
    are joined with a raised-cosine crossfade of ``fade_s``.  Speech is never
    cut: only audio between regions is removed.

    Parameters
    ----------
    audio : np.ndarray, shape (samples,) or (channels, samples)
    sample_rate : int
    regions : sequence of (start_s, end_s)
        Speech regions of ``audio`` (from :func:`speech_regions`).
    max_pause_s : float
        Pauses longer than this are shortened.
    keep_pause_s : float
        Length a long pause is shortened to; ``<= max_pause_s``.
    fade_s : float
        Crossfade at each join.

    Returns
    -------
    audio : np.ndarray, float32, same channels
    pauses_compressed : int
    removed_s : float
    """
    rate = check_sample_rate(sample_rate)
    x = np.ascontiguousarray(audio, dtype=np.float32)
    y, cuts = _compress_pauses(x, rate, regions, max_pause_s, keep_pause_s, fade_s)
    return y, len(cuts), (x.shape[-1] - y.shape[-1]) / rate


def _compress_pauses(
    x: np.ndarray, rate: int, regions: Sequence[Region], max_pause_s: float, keep_pause_s: float, fade_s: float
) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """:func:`compress_pauses` on float32 ``x``; returns the audio and the sample ranges it cut."""
    if not 0 < keep_pause_s <= max_pause_s:
        raise ConfigError(f"need 0 < keep_pause_s <= max_pause_s, got {keep_pause_s!r} and {max_pause_s!r}")
    if not 0 <= fade_s * 2 < keep_pause_s:
        raise ConfigError(f"fade_s must be in [0, keep_pause_s / 2), got {fade_s!r}")
    spans = _check_regions(regions, x.shape[-1] / rate)
    n_fade = round(fade_s * rate)
    cuts = _pause_cuts(spans, rate, max_pause_s, keep_pause_s)
    if not cuts:
        return x, cuts
    pieces = []
    pos = 0
    for cut_from, cut_to in cuts:
        pieces.append((pos, cut_from))
        pos = cut_to
    pieces.append((pos, x.shape[-1]))
    ramp = (0.5 - 0.5 * np.cos(np.pi * (np.arange(n_fade) + 0.5) / max(n_fade, 1))).astype(np.float32)
    out = [x[..., pieces[0][0] : pieces[0][1]].copy()]
    for start, stop in pieces[1:]:
        nxt = x[..., start:stop].copy()
        if n_fade:
            prev = out[-1]
            prev[..., -n_fade:] = prev[..., -n_fade:] * ramp[::-1] + nxt[..., :n_fade] * ramp
            nxt = nxt[..., n_fade:]
        out.append(nxt)
    return np.ascontiguousarray(np.concatenate(out, axis=-1)), cuts


def trim(
    audio: np.ndarray,
    *,
    sample_rate: int,
    regions: Sequence[Region],
    pad_s: float = 0.2,
    max_pause_s: float | None = None,
    keep_pause_s: float = 0.5,
) -> tuple[np.ndarray, TrimReport]:
    """Cut leading and trailing non-speech, keeping ``pad_s`` around the speech.

    Parameters
    ----------
    audio : np.ndarray, shape (samples,) or (channels, samples)
    sample_rate : int
    regions : sequence of (start_s, end_s)
        Unpadded speech regions of ``audio`` (from :func:`speech_regions`);
        must not be empty.
    pad_s : float
        Audio kept before the first and after the last region.
    max_pause_s : float or None
        If set, also shorten internal pauses longer than this to
        ``keep_pause_s`` (see :func:`compress_pauses`).
    keep_pause_s : float

    Returns
    -------
    audio : np.ndarray, float32, shape (channels?, samples')
    report : TrimReport

    Raises
    ------
    ConfigError
        For an empty or malformed ``regions`` or negative ``pad_s``.
    """
    rate = check_sample_rate(sample_rate)
    if pad_s < 0:
        raise ConfigError(f"pad_s must be >= 0, got {pad_s!r}")
    x = np.ascontiguousarray(audio, dtype=np.float32)
    duration = x.shape[-1] / rate
    spans = _check_regions(regions, duration)
    if not spans:
        raise ConfigError("regions is empty: nothing to trim to (reject the clip instead)")
    start_s = max(0.0, spans[0][0] - pad_s)
    end_s = min(duration, spans[-1][1] + pad_s)
    i0, i1 = int(np.floor(start_s * rate)), int(np.ceil(end_s * rate))
    y = np.ascontiguousarray(x[..., i0:i1])
    speech_s = float(sum(e - s for s, e in spans))
    local = [(s - i0 / rate, e - i0 / rate) for s, e in spans]
    cuts: list[tuple[int, int]] = []
    removed = 0.0
    if max_pause_s is not None:
        before = y.shape[-1]
        y, cuts = _compress_pauses(y, rate, local, max_pause_s, keep_pause_s, _FADE_S)
        removed = (before - y.shape[-1]) / rate
    kept = _shift_regions(local, cuts, round(_FADE_S * rate), rate) if cuts else local
    out_s = y.shape[-1] / rate
    kept = [(max(0.0, s), min(out_s, e)) for s, e in kept if min(out_s, e) > max(0.0, s)]
    return y, TrimReport(i0 / rate, i1 / rate, speech_s, len(cuts), removed, tuple(kept))


def slice_bounds(
    regions: Sequence[Region],
    *,
    duration_s: float,
    min_s: float = 3.0,
    max_s: float = 30.0,
    pad_s: float = 0.2,
) -> list[Region]:
    """Choose slices of a long recording, cutting only in pauses.

    While a piece (first to last speech region, plus ``pad_s``) is longer
    than ``max_s``, it is cut at its longest pause that leaves both sides at
    least ``min_s`` long (the most balanced one among equals); if no pause
    does, at its longest pause.  A piece without any pause stays whole even
    if longer than ``max_s``: speech is never cut.

    Parameters
    ----------
    regions : sequence of (start_s, end_s)
        Unpadded speech regions (from :func:`speech_regions`).
    duration_s : float
        Duration of the recording.
    min_s, max_s : float
        Wanted slice length range in seconds.
    pad_s : float
        Non-speech kept before and after each slice's speech (never more than
        half the neighbouring pause).

    Returns
    -------
    list of (start_s, end_s)
        Disjoint, sorted slices; empty when ``regions`` is.
    """
    if not 0 < min_s < max_s:
        raise ConfigError(f"need 0 < min_s < max_s, got min_s={min_s!r}, max_s={max_s!r}")
    if pad_s < 0:
        raise ConfigError(f"pad_s must be >= 0, got {pad_s!r}")
    spans = _check_regions(regions, duration_s)
    if not spans:
        return []
    starts = np.array([s for s, _ in spans])
    ends = np.array([e for _, e in spans])

    def length(i: int, j: int) -> float:
        return float(ends[j] - starts[i] + 2 * pad_s)

    groups: list[tuple[int, int]] = []
    stack = [(0, len(spans) - 1)]
    while stack:
        i, j = stack.pop()
        if length(i, j) <= max_s or i == j:
            groups.append((i, j))
            continue
        ks = np.arange(i, j)
        gaps = starts[ks + 1] - ends[ks]
        left = ends[ks] - starts[i] + 2 * pad_s
        right = ends[j] - starts[ks + 1] + 2 * pad_s
        ok = (left >= min_s) & (right >= min_s)
        if ok.any():
            ks, gaps, left, right = ks[ok], gaps[ok], left[ok], right[ok]
        balance = np.minimum(left, right)
        best = int(ks[np.lexsort((-balance, -gaps))[0]])
        stack.append((best + 1, j))
        stack.append((i, best))
    groups.sort()
    out: list[Region] = []
    for i, j in groups:
        lo = 0.0 if i == 0 else (ends[i - 1] + starts[i]) / 2
        hi = duration_s if j == len(spans) - 1 else (ends[j] + starts[j + 1]) / 2
        out.append((float(max(lo, starts[i] - pad_s)), float(min(hi, ends[j] + pad_s))))
    return out


# -- stages ------------------------------------------------------------------
def _span_offset(clip: Clip) -> float:
    return float(clip.span_s[0]) if clip.span_s else 0.0


def _mono_view(audio: np.ndarray) -> np.ndarray:
    """Mono signal for detection: the channel mean of multichannel audio."""
    if audio.ndim == 2 and audio.shape[0] > 1:
        return np.ascontiguousarray(audio.mean(axis=0, dtype=np.float32))
    return audio.reshape(-1)


@dataclass(frozen=True)
class Trim:
    """Pipeline stage: trim leading/trailing non-speech, optionally shorten long pauses.

    Records ``trimmed_start_s``, ``trimmed_end_s``, ``speech_s``,
    ``speech_ratio`` (of the kept audio), ``pauses_compressed`` and
    ``pause_removed_s``; updates ``span_s`` and sets the clip's
    :attr:`~prep.clip.Clip.speech` to the regions it found, moved to the kept
    audio (the score uses them).  A clip with no speech is rejected.
    Pauses are never compressed in a clip with a transcript unless
    ``compress_with_transcript`` is set (a VAD miss would cut a word the
    transcript still contains).
    """

    name: ClassVar[str] = "trim"
    pad_s: float = 0.2
    max_pause_s: float | None = 1.0
    keep_pause_s: float = 0.5
    compress_with_transcript: bool = False
    aggressiveness: int = 3
    min_silence_s: float = 0.25

    def apply(self, clip: Clip) -> Clip:
        audio = clip.require_audio()
        rate = clip.sample_rate
        duration = audio.shape[-1] / float(rate)
        regions = speech_regions(
            _mono_view(audio), rate, aggressiveness=self.aggressiveness, min_silence_s=self.min_silence_s
        )
        if not regions:
            return clip.with_metrics(speech_s=0.0, speech_ratio=0.0).with_verdict("rejected", "no speech detected")
        compress = self.max_pause_s is not None and (clip.transcript is None or self.compress_with_transcript)
        out, rep = trim(
            audio,
            sample_rate=rate,
            regions=regions,
            pad_s=self.pad_s,
            max_pause_s=self.max_pause_s if compress else None,
            keep_pause_s=self.keep_pause_s,
        )
        offset = _span_offset(clip)
        kept_s = out.shape[-1] / float(rate)
        return dataclasses.replace(
            clip, audio=out, span_s=(offset + rep.start_s, offset + rep.end_s), speech=rep.regions
        ).with_metrics(
            trimmed_start_s=rep.start_s,
            trimmed_end_s=duration - rep.end_s,
            speech_s=rep.speech_s,
            speech_ratio=min(1.0, rep.speech_s / kept_s) if kept_s > 0 else 0.0,
            pauses_compressed=rep.pauses_compressed,
            pause_removed_s=rep.pause_removed_s,
        )


@dataclass(frozen=True)
class Slice:
    """Pipeline stage: cut a long recording into ``min_s``–``max_s`` clips at its longest pauses.

    Each slice is a new clip with id ``f"{clip.id}-{k:03d}"`` and its own
    ``span_s`` in the source, trimmed to its speech plus ``pad_s``.  A
    transcript cannot be split without alignment, so slicing drops it (with
    a reason); its speech regions (:attr:`~prep.clip.Clip.speech`) come
    along.  A clip no longer than ``max_s`` passes through unchanged.
    No speech at all gives the clip back rejected.
    """

    name: ClassVar[str] = "slice"
    min_s: float = 3.0
    max_s: float = 30.0
    pad_s: float = 0.2
    aggressiveness: int = 3
    min_silence_s: float = 0.25

    def apply(self, clip: Clip) -> list[Clip]:
        audio = clip.require_audio()
        rate = clip.sample_rate
        duration = audio.shape[-1] / float(rate)
        if duration <= self.max_s:
            return [clip]  # short enough: no cut, same id, transcript kept (length is the scorer's business)
        regions = speech_regions(
            _mono_view(audio), rate, aggressiveness=self.aggressiveness, min_silence_s=self.min_silence_s
        )
        bounds = slice_bounds(regions, duration_s=duration, min_s=self.min_s, max_s=self.max_s, pad_s=self.pad_s)
        if not bounds:
            return [clip.with_metrics(speech_s=0.0, speech_ratio=0.0).with_verdict("rejected", "no speech detected")]
        offset = _span_offset(clip)
        out = []
        for k, (start_s, end_s) in enumerate(bounds):
            i0, i1 = int(np.floor(start_s * rate)), int(np.ceil(end_s * rate))
            start_s, end_s = i0 / rate, i1 / rate
            inside = [
                (max(s, start_s) - start_s, min(e, end_s) - start_s) for s, e in regions if s < end_s and e > start_s
            ]
            speech = sum(e - s for s, e in inside)
            piece = dataclasses.replace(
                clip,
                id=f"{clip.id}-{k:03d}",
                audio=np.ascontiguousarray(audio[..., i0:i1]),
                span_s=(offset + start_s, offset + end_s),
                speech=tuple(inside),
            ).with_metrics(
                slice_index=k,
                slice_count=len(bounds),
                speech_s=speech,
                speech_ratio=speech / (end_s - start_s) if end_s > start_s else 0.0,
            )
            if len(bounds) > 1 and clip.transcript is not None:
                piece = dataclasses.replace(piece, transcript=None).with_verdict(
                    "warning", "transcript dropped: sliced without alignment"
                )
            length = end_s - start_s
            if length > self.max_s:
                reason = f"slice is {length:.1f} s > max_s={self.max_s}: no pause to cut at"
                piece = piece.with_verdict("warning", reason)
            out.append(piece)
        return out
