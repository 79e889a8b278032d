"""Voice activity detection: speech frames and regions of a signal.

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

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType

import numpy as np
import soxr
import webrtcvad

try:  # webrtcvad's C module: Vad.is_speech only checks the length and calls its process()
    from _webrtcvad import process as _c_process
except ImportError:  # another build of webrtcvad: the public method
    _c_process = None

from ..audio import as_mono, check_sample_rate, mix_to_mono
from ..errors import ConfigError, PrepError
from ..timing import timed
from . import fft as sp_fft

_compiled = True  # use prep.kernels.vad where webrtcvad's C function was found (False: the Python loop)

__all__ = [
    "VAD_RATE",
    "VadFrames",
    "known_or_found_regions",
    "mask_to_regions",
    "regions_to_mask",
    "speech_mask",
    "speech_regions",
    "uses_default_vad",
    "vad_frames",
]

#: Rate (Hz) at which webrtcvad runs; other rates are resampled to it.
VAD_RATE = 16000
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

#: The VAD settings of :func:`speech_mask` / :func:`speech_regions` by default.  A stage that finds speech
#: with them (:class:`~prep.stages.denoise.Denoise`) leaves the regions on the clip
#: (:attr:`~prep.clip.Clip.speech`); a later stage asking the VAD for the same settings
#: (:class:`~prep.stages.trim.Trim`, :class:`~prep.stages.slice.Slice`) uses them instead of running it again.
DEFAULT_AGGRESSIVENESS = 3
DEFAULT_MIN_SILENCE_S = 0.25


def uses_default_vad(*, aggressiveness: int, min_silence_s: float) -> bool:
    """Whether these VAD settings are the defaults, with which a clip's known speech regions were found."""
    return aggressiveness == DEFAULT_AGGRESSIVENESS and min_silence_s == DEFAULT_MIN_SILENCE_S


def known_or_found_regions(
    audio: np.ndarray,
    *,
    sample_rate: int,
    known: Sequence[Region] | None,
    aggressiveness: int,
    min_silence_s: float,
) -> list[Region]:
    """Speech regions of ``audio``: ``known`` ones when given and found with these (default) settings, else the VAD's.

    Parameters
    ----------
    audio : np.ndarray, shape (samples,) or (channels, samples)
    sample_rate : int
    known : sequence of (start_s, end_s), optional
        Regions an earlier stage found on this same timeline (a clip's
        :attr:`~prep.clip.Clip.speech`), with the default VAD settings.
    aggressiveness, min_silence_s
        The caller's VAD settings (see :func:`speech_regions`).

    Returns
    -------
    list of (start_s, end_s)
    """
    if known is not None and uses_default_vad(aggressiveness=aggressiveness, min_silence_s=min_silence_s):
        return list(known)
    return speech_regions(
        mix_to_mono(audio), sample_rate=sample_rate, aggressiveness=aggressiveness, min_silence_s=min_silence_s
    )


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


def _resample_16k(x: np.ndarray, rate: int) -> np.ndarray:
    """Mono float32 ``x`` at :data:`VAD_RATE` (soxr ``LQ``, streamed in blocks of ``_BLOCK_S``)."""
    if rate == VAD_RATE:
        return x
    step = int(_BLOCK_S * rate)
    stream = soxr.ResampleStream(rate, VAD_RATE, 1, "float32", "LQ")
    parts = [stream.resample_chunk(x[i : i + step], last=i + step >= x.size) for i in range(0, x.size, step)]
    if not parts:
        return np.zeros(0, np.float32)
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def _frames_16k(y: np.ndarray, frame_len: int) -> np.ndarray:
    """``y`` (at 16 kHz) cut into ``(frames, frame_len)``, the last frame zero-padded."""
    whole = y.size // frame_len * frame_len
    if whole == y.size:
        return y.reshape(-1, frame_len)
    out = np.zeros((y.size // frame_len + 1, frame_len), np.float32)
    out.reshape(-1)[: y.size] = y
    return out


def _webrtc_kernels() -> ModuleType | None:
    """:mod:`prep.kernels.vad`, imported on first use (a process that never runs the VAD never loads numba
    for it), or None where webrtcvad's C function was not found or ``_compiled`` is off."""
    if not _compiled:
        return None
    from ..kernels import vad as kernels

    return kernels if kernels.AVAILABLE else None


_CAPSULE = b"WebRtcVadPtr"  # py-webrtcvad's name for the capsule holding a Vad's VadInst*


@functools.cache
def _capsule_api() -> tuple:
    """``PyCapsule_IsValid`` and ``PyCapsule_GetPointer`` through ctypes (own prototypes: ctypes.pythonapi's
    shared function objects are left as they are)."""
    import ctypes

    api = ctypes.pythonapi
    is_valid = ctypes.PYFUNCTYPE(ctypes.c_int, ctypes.py_object, ctypes.c_char_p)(("PyCapsule_IsValid", api))
    get_pointer = ctypes.PYFUNCTYPE(ctypes.c_void_p, ctypes.py_object, ctypes.c_char_p)(("PyCapsule_GetPointer", api))
    return is_valid, get_pointer


def _vad_handle(vad: webrtcvad.Vad) -> int | None:
    """The ``VadInst*`` of ``vad`` (its ``_vad`` capsule) as an int, or None for another build of webrtcvad.

    ``vad`` keeps owning it (it is freed with ``vad``): keep ``vad`` alive while the handle is used.
    """
    capsule = getattr(vad, "_vad", None)
    is_valid, get_pointer = _capsule_api()
    if capsule is None or not is_valid(capsule, _CAPSULE):
        return None
    return get_pointer(capsule, _CAPSULE) or None


@functools.cache
def _hann(length: int) -> np.ndarray:
    """``np.hanning(length)`` in float32, read-only (made once per frame length)."""
    window = np.hanning(length).astype(np.float32)
    window.flags.writeable = False
    return window


def _band_power(frames: np.ndarray, n_fft: int, lo: int, hi: int, out: np.ndarray) -> None:
    """Power of bins ``lo:hi`` of the Hann-windowed rows of ``frames`` (float32) into ``out``, shape
    (rows <= frames, hi - lo): the first rows' (the FFT still runs on all of ``frames``)."""
    spec = sp_fft.rfft(frames * _hann(frames.shape[1]), n=n_fft, axis=1)[: out.shape[0], lo:hi]
    np.square(spec.real, out=out)  # re**2 + im**2, as NumPy computes it, without the temporaries
    out += np.square(spec.imag)


def vad_frames(audio: np.ndarray, *, sample_rate: int, frame_s: float = 0.03, aggressiveness: int = 3) -> VadFrames:
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

    Notes
    -----
    webrtcvad's frame loop runs compiled (:mod:`prep.kernels.vad`: its C
    function on each level-normalised row) where its extension module
    exports ``WebRtcVad_Process``; elsewhere in Python, with the same
    decisions.
    """
    x = as_mono(audio)
    rate = check_sample_rate(sample_rate)
    frame_len = _check_frame_s(frame_s)
    _check_aggressiveness(aggressiveness)
    n_frames = int(np.ceil(x.size / (frame_s * rate) - 1e-9))
    y = _resample_16k(x, rate)
    all_frames = _frames_16k(y, frame_len)
    per_block = max(1, round(_BLOCK_S / frame_s))  # FFT temporaries bounded by one block of frames
    blocks = [all_frames[i : i + per_block] for i in range(0, all_frames.shape[0], per_block)]
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
    power = fit(np.einsum("ij,ij->i", all_frames, all_frames, dtype=np.float64) / frame_len, 0.0)
    bands = np.zeros((n_frames, hi - lo), np.float32)  # frames past the resampled signal's end stay 0
    k = 0
    for frames in blocks:
        m = min(frames.shape[0], n_frames - k)
        _band_power(frames, n_fft, lo, hi, bands[k : k + m])
        k += m
        if k >= n_frames:
            break
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
        gamma = bands[b0:b1] * (1.0 / noise).astype(np.float32)
        np.maximum(gamma, np.float32(1.0), out=gamma)  # <= 1 scores 0
        gamma -= np.log(gamma)
        score[b0:b1] = gamma.mean(axis=1) - np.float32(1.0)
    # Pass 2: webrtcvad on level-normalised int16 frames.
    gain = np.float32(10 ** (min(_TARGET_LEVEL_DB - level_db, _MAX_GAIN_DB) / 20) * 32768.0)
    vad = webrtcvad.Vad(aggressiveness)
    flags = np.zeros(n_frames, bool)
    rows = min(n_frames, all_frames.shape[0])
    kernels = _webrtc_kernels()
    handle = _vad_handle(vad) if kernels is not None else None
    if handle is not None:  # the compiled loop: webrtcvad's C function on each row
        if kernels.webrtc_flags(np.ascontiguousarray(all_frames), rows, gain, handle, VAD_RATE, flags):
            raise PrepError(f"webrtcvad failed on {frame_len}-sample frames at {VAD_RATE} Hz")
        return VadFrames(frame_s, energy_db, score, flags, floor_db, level_db)
    # The same in Python: webrtcvad's C module on each int16 row (a buffer), or its public method
    handle = getattr(vad, "_vad", None)
    if _c_process is not None and handle is not None:
        def process(row: np.ndarray) -> bool:
            return _c_process(handle, VAD_RATE, row, frame_len)
    else:
        def process(row: np.ndarray) -> bool:
            return vad.is_speech(row.tobytes(), VAD_RATE)
    k = 0
    for frames in blocks:
        scaled = frames[: n_frames - k] * gain
        np.clip(scaled, -32768, 32767, out=scaled)
        pcm = scaled.astype(np.int16)
        flags[k : k + pcm.shape[0]] = [process(row) for row in pcm]
        k += pcm.shape[0]
        if k >= n_frames:
            break
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
    *,
    sample_rate: int,
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
    with timed("vad"):
        frames = vad_frames(audio, sample_rate=sample_rate, frame_s=frame_s, aggressiveness=aggressiveness)
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
    *,
    sample_rate: int,
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
    >>> speech_regions(np.zeros(16000, np.float32), sample_rate=16000)
    []
    """
    x = as_mono(audio)
    mask = speech_mask(
        x,
        sample_rate=sample_rate,
        frame_s=frame_s,
        aggressiveness=aggressiveness,
        min_speech_s=min_speech_s,
        min_silence_s=min_silence_s,
    )
    return mask_to_regions(mask, frame_s=frame_s, duration_s=x.size / float(sample_rate), pad_s=pad_s)


def check_regions(regions: Sequence[Region], duration_s: float) -> list[Region]:
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
