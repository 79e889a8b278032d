"""DNSMOS P.835 and P.808 run directly on onnxruntime, on non-overlapping windows.

DNSMOS (Reddy et al., ICASSP 2022) predicts the mean opinion scores listeners would give a speech
clip: SIG (the speech itself), BAK (the background, 5 = no audible noise) and OVRL (overall), per
ITU-T P.835, plus the P.808 overall MOS.  Its models take 9.01 s of 16 kHz audio.  The models and
their polynomial calibrations are the ones ``speechmos`` 0.0.1.1 ships (Microsoft's DNS Challenge
``sig_bak_ovr.onnx`` and ``model_v8.onnx``); this module loads them through :mod:`prep.models`
(version pinned, SHA-256 of each file checked before loading) and computes what
``speechmos.dnsmos.run`` computes, with two differences:

* windows do not overlap.  The reference slides the 9.01 s window by 1 s (a 40 s clip costs 32
  model runs); here a clip is cut into consecutive 9.01 s windows and, when the reference's last
  window starts later, that one too (40 s: 5 runs; :func:`window_starts`).  The clip's score is the
  mean of its windows' scores, as in the reference.  Like the reference, the 0-2 s after its last
  window are not scored: a window ending at the clip's end instead (the former rule) put 5 of the
  120 noisy mixtures of ``benchmarks/dnsmos_score.py``, all of a 10.5 s recording, 0.34-0.51 OVRL
  from ``speechmos``, which scores their first 9.01 s only.
* a clip shorter than 9.01 s is scored by the P.835 model on its own length, looped to at least
  :data:`SHORT_MIN_S` (5 s), not on a whole 9.01 s window (the reference repeats it to 9.01 s and
  averages a few 1 s shifts).  The network is convolutional up to a global max over time and
  frequency, so its input can be any length once the graph's fixed framing is made symbolic
  (:func:`_variable_length_p835`); a 9.01 s input gives the original model's outputs exactly, and
  the cost falls with the length (~6.5 ms of CPU per second of audio for the int8 model).  Scores
  do move with the input's length (a shorter input sees fewer loop seams and frame phases; the max
  pooling then tends lower), and most on noisy clips: with corpus noise mixed in at 0-20 dB, a 6 s
  minimum left 2 of 172 mixtures more than 0.3 OVRL from ``speechmos`` (0.37), 5 s left 4 (0.48),
  and only a minimum of ~8 s (~72x realtime per core) kept all within 0.3.  Hence a second stage:
  a short clip whose first OVRL or BAK is below :data:`SHORT_RESCORE_BELOW` (2.0, the ``Score``'s
  rejection level of OVRL) is scored again on the reference's 9.01 s loop, and that score is kept
  (``DnsmosScores.rescored``).  The noisy clips, where the short input drifts, pay one more window;
  clean ones do not: on the corpus' 43 recordings under 9.01 s, 1 is rescored (a reverberant clap
  recording, speechmos OVRL 1.3) and |ΔOVRL| against ``speechmos`` is mean 0.060, max 0.21; on their 172
  noisy mixtures 77 are rescored and |ΔOVRL| is mean 0.057, max 0.26 (the rule chosen on half of
  the recordings and their mixtures was within 0.3 on the other half too;
  ``benchmarks/RESULTS.md``, section ``dnsmos_speed``).  Short recordings still run faster than
  with the former 6 s minimum (90x against 88x realtime per core in one run: the 5 s minimum saves
  more than the rescored clip costs).  The P.808 model still reads the 9.01 s loop (~8 ms).
* the P.808 input, a 120-band mel spectrogram in dB, is computed in numpy (the same Hann window,
  Slaney mel filters and ``power_to_db(ref=max, top_db=80)`` as the reference's librosa calls), so
  librosa is not needed at run time.

The P.835 model runs in int8 (default; ``quantized=False`` runs the float model).  A window costs
~39 GFLOP, 99 % of it in the 3x3 convolutions conv2d_1..3 on the 900 x 161 spectrogram; the float
model runs them at ~200 GFLOP/s, near one core's AVX-512 FMA peak, so ~0.19 s per window (~40x
realtime per core) is the float ceiling, short of 80x.  :func:`quantized_p835` makes an int8 copy
once per user (static QDQ: per-channel int8 weights, uint8 activations calibrated with MinMax on
generated speech-like audio, :func:`calibration_windows`; the STFT, the first convolution and the
dense head stay float; the first convolution is rewritten as a MatMul so that no layout reorder is
needed) and caches it, hash-checked, in ``cache_dir()/models/dnsmos-int8/``.  With int8 (VNNI)
GEMMs a window costs ~0.06 s for P.835 plus ~0.007 s for the P.808 mel features and model: a long
recording runs at ~105-110x realtime per CPU core (float: ~40x; one onnxruntime thread; the P.808 model
is skipped where its score is not used, a clip's source span).  The int8 model moves scores little
against the float one: on the corpus' recordings |ΔOVRL| mean 0.008, max 0.03; on degraded speech
(corpus noise at 0-20 dB) |ΔOVRL| mean 0.017, max 0.22, |ΔSIG| max 0.28, |ΔBAK| max 0.22; Spearman
>= 0.997 (``benchmarks/RESULTS.md``, section ``dnsmos_speed``).

Agreement with ``speechmos.dnsmos.run``: the same windows on clips of 9.01 s to just under 12 s
(identical up to float rounding with ``quantized=False``); elsewhere the window grid differs, so scores differ by the
spread of the clip's windows: |ΔOVRL| mean 0.046, max 0.21 on every third corpus recording with the
int8 model (float: 0.046, 0.22); on the noisy mixtures of ``benchmarks/dnsmos_score.py`` (6
recordings, 4 noises, 0-30 dB) max 0.23.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..audio import check_sample_rate, mix_to_mono
from ..errors import ConfigError, OutputError
from ..io import atomic_path, write_text_atomic
from ..models import BundledModel, ModelError, cache_dir, model_files, one_load_at_a_time
from . import fft

__all__ = [
    "DNSMOS_MODEL",
    "MODEL_RATE",
    "SHORT_MIN_S",
    "SHORT_RESCORE_BELOW",
    "WINDOW_SAMPLES",
    "DnsmosScores",
    "dnsmos_scores",
    "mel_features",
    "calibration_windows",
    "quantized_p835",
    "rescores_short",
    "short_input_samples",
    "window_starts",
]

log = logging.getLogger(__name__)

#: DNSMOS runs at 16 kHz.
MODEL_RATE = 16000
#: The models' input: 9.01 s at 16 kHz.
WINDOW_SAMPLES = 144160
#: A clip shorter than a window is scored by the P.835 model on its own length, looped to at least
#: this many seconds (see :func:`short_input_samples`; chosen with :data:`SHORT_RESCORE_BELOW` from
#: the corpus measurements in the module docstring).
SHORT_MIN_S = 5.0
#: A short clip whose first OVRL or BAK (on the :data:`SHORT_MIN_S` input) is below this is scored
#: again on the reference's 9.01 s loop, and that score kept (:func:`rescores_short`): noisy clips,
#: where the shorter input drifts from the reference.  0 turns the second stage off.
SHORT_RESCORE_BELOW = 2.0
_P835 = "speechmos/dnsmos_models/sig_bak_ovr.onnx"
_P808 = "speechmos/dnsmos_models/model_v8.onnx"

#: The DNSMOS models shipped by ``speechmos`` 0.0.1.1 (the ``[mos]`` extra).
DNSMOS_MODEL = BundledModel(
    name="DNSMOS P.835/P.808",
    distribution="speechmos",
    version="0.0.1.1",
    files={
        _P835: "269fbebdb513aa23cddfbb593542ecc540284a91849ac50516870e1ac78f6edd",
        _P808: "9246480c58567bc6affd4200938e77eef49468c8bc7ed3776d109c07456f6e91",
    },
    extra="mos",
)

# Polynomial calibrations of the raw P.835 outputs (speechmos / DNS Challenge dnsmos_local.py,
# non-personalized), highest power first.
_POLY_SIG = (-0.08397278, 1.22083953, 0.0052439)
_POLY_BAK = (-0.13166888, 1.60915514, -0.39604546)
_POLY_OVR = (-0.06766283, 1.11546468, 0.04602535)

# P.808 features: librosa.feature.melspectrogram(n_fft=321, hop_length=160, n_mels=120) in dB.
_N_FFT = 321
_HOP = 160
_N_MELS = 120


@dataclass(frozen=True)
class DnsmosScores:
    """DNSMOS scores of a clip, on the 1–5 MOS scale.

    Attributes
    ----------
    ovrl, sig, bak : float
        P.835 overall, speech signal and background quality (mean over windows).
    p808 : float
        P.808 overall MOS (mean over windows); NaN when not run.
    windows : int
        Number of windows whose scores are averaged: 9.01 s windows, or 1 for a clip shorter than
        9.01 s.
    rescored : bool
        A clip shorter than 9.01 s whose first P.835 scores (on its own length) were below
        :data:`SHORT_RESCORE_BELOW`, so the P.835 scores are those of the 9.01 s loop
        (:func:`rescores_short`); its P.835 model ran twice.
    """

    ovrl: float
    sig: float
    bak: float
    p808: float
    windows: int
    rescored: bool = False

    def as_metrics(self) -> dict[str, float]:
        """The ``dnsmos_ovrl``/``dnsmos_sig``/``dnsmos_bak``/``dnsmos_p808`` metric dict (no P.808 if not run)."""
        out = {"dnsmos_ovrl": self.ovrl, "dnsmos_sig": self.sig, "dnsmos_bak": self.bak, "dnsmos_p808": self.p808}
        return {k: v for k, v in out.items() if not np.isnan(v)}


# -- features -----------------------------------------------------------------------------
def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    """Slaney mel scale (librosa's default, ``htk=False``)."""
    f = np.asarray(f, dtype=np.float64)
    f_sp = 200.0 / 3
    mels = f / f_sp
    min_log_hz, logstep = 1000.0, np.log(6.4) / 27.0
    min_log_mel = min_log_hz / f_sp
    return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-10) / min_log_hz) / logstep, mels)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    f_sp = 200.0 / 3
    min_log_hz, logstep = 1000.0, np.log(6.4) / 27.0
    min_log_mel = min_log_hz / f_sp
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


@functools.lru_cache(maxsize=1)
def _mel_basis() -> np.ndarray:
    """Slaney-normalised triangular mel filters, shape (120, 161), as ``librosa.filters.mel``."""
    fft_freqs = np.fft.rfftfreq(_N_FFT, d=1.0 / MODEL_RATE)
    mel_f = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(MODEL_RATE / 2.0), _N_MELS + 2))
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_f[2:] - mel_f[:-2]))[:, None]
    return weights.astype(np.float32)


@functools.lru_cache(maxsize=1)
def _mel_basis_sparse() -> Any:
    """:func:`_mel_basis` as a CSR matrix (each FFT bin feeds at most two bands)."""
    import scipy.sparse

    return scipy.sparse.csr_array(_mel_basis())


@functools.lru_cache(maxsize=1)
def _window() -> np.ndarray:
    """Periodic Hann window of ``_N_FFT`` samples (``scipy.signal.get_window('hann', 321)``)."""
    n = np.arange(_N_FFT)
    return (0.5 - 0.5 * np.cos(2.0 * np.pi * n / _N_FFT)).astype(np.float32)


def mel_features(segment: np.ndarray) -> np.ndarray:
    """The P.808 model's input: a 120-band mel spectrogram in scaled dB.

    Reproduces ``librosa.feature.melspectrogram(y, sr=16000, n_fft=321, hop_length=160,
    n_mels=120)`` (centred frames, zero padding, periodic Hann window, power 2, Slaney mel) followed by
    ``(librosa.power_to_db(S, ref=np.max) + 40) / 40`` (``amin=1e-10``, ``top_db=80``).

    Parameters
    ----------
    segment : np.ndarray, float32, shape (samples,)
        16 kHz audio (the reference passes a window's first 144000 samples).

    Returns
    -------
    np.ndarray, float32, shape (frames, 120)
        ``frames = 1 + samples // 160``.
    """
    y = np.asarray(segment, dtype=np.float32)
    pad = _N_FFT // 2
    padded = np.pad(y, pad)
    frames = 1 + (padded.size - _N_FFT) // _HOP
    view = np.lib.stride_tricks.sliding_window_view(padded, _N_FFT)[:: _HOP][:frames]
    spec = fft.rfft(view * _window(), axis=1)  # complex64: float32 in, float32 out
    power = (spec.real**2 + spec.imag**2).astype(np.float32, copy=False)
    mel = (_mel_basis_sparse() @ power.T).T  # sparse: no BLAS threads spinning for a 35 MFLOP product
    db = 10.0 * np.log10(np.maximum(mel, np.float32(1e-10)))
    db -= 10.0 * np.log10(max(float(mel.max()), 1e-10))
    db = np.maximum(db, db.max() - 80.0)
    return ((db + 40.0) / 40.0).astype(np.float32)


# -- windows -------------------------------------------------------------------------------
def window_starts(n: int) -> list[int]:
    """Start samples of the non-overlapping 9.01 s windows that cover ``n`` samples as the reference does.

    Consecutive windows from 0, plus the reference's last window (it starts at whole seconds, a 1 s
    hop: ``int(n / 16000 - 9.01)`` s) when that starts after the last consecutive one.  The
    reference ignores what follows its last window (0-2 s), so this does too: a clip of 9.01 s to
    just under 11 s is one window, the reference's only one.  ``n`` must be at least
    :data:`WINDOW_SAMPLES` (shorter clips are one shorter input, :func:`short_input_samples`).
    """
    if n < WINDOW_SAMPLES:
        raise ValueError(f"need at least {WINDOW_SAMPLES} samples, got {n}")
    count = n // WINDOW_SAMPLES
    starts = [k * WINDOW_SAMPLES for k in range(count)]
    last_reference = int(n // MODEL_RATE - WINDOW_SAMPLES / MODEL_RATE) * MODEL_RATE
    if last_reference > starts[-1]:
        starts.append(last_reference)
    return starts


def _loop_to_window(y: np.ndarray) -> np.ndarray:
    """Repeat a short clip as the reference does (``np.append(audio, audio)`` until long enough)."""
    while y.size < WINDOW_SAMPLES:
        y = np.concatenate([y, y])
    return y


def short_input_samples(n: int, min_s: float | None = None) -> int:
    """Length of the P.835 input for a clip of ``n < WINDOW_SAMPLES`` samples.

    The clip's own length rounded up to the model's frame grid (``160 * (F + 1)`` samples give F
    frames), and at least ``min_s`` seconds (:data:`SHORT_MIN_S` by default): shorter clips are
    looped to that length, as the reference loops them to 9.01 s.  Never more than a window.

    Raises
    ------
    ConfigError
        ``min_s`` is negative or not finite.
    """
    min_s = SHORT_MIN_S if min_s is None else min_s
    if not 0.0 <= min_s < float("inf"):
        raise ConfigError(f"short_min_s must be a number of seconds >= 0, got {min_s!r}")
    frames = max(-(-(n - _HOP) // _HOP), -(-(round(min_s * MODEL_RATE) - _HOP) // _HOP), 1)
    return min(_HOP * (frames + 1), WINDOW_SAMPLES)


def rescores_short(ovrl: float, bak: float, below: float | None = None) -> bool:
    """Whether a short clip scored ``ovrl``/``bak`` on its own length is scored again on the 9.01 s loop.

    True when either is below ``below`` (:data:`SHORT_RESCORE_BELOW` by default; 0 never rescores):
    noisy clips, on which the shorter input's scores drift furthest from the reference's.

    Raises
    ------
    ConfigError
        ``below`` is negative or not finite.
    """
    return min(ovrl, bak) < _rescore_below(below)


def _rescore_below(below: float | None) -> float:
    below = SHORT_RESCORE_BELOW if below is None else below
    if not 0.0 <= below < float("inf"):
        raise ConfigError(f"short_rescore_below must be a MOS >= 0, got {below!r}")
    return below


# -- int8 P.835 model -------------------------------------------------------------------------
#: Bump when the quantisation recipe below changes (a new cache file is made).  3: variable-length input.
_QUANT_RECIPE = 3
# Left in float: the STFT convolutions (their outputs go through a log), the first 3x3 convolution
# (its input is the log-power spectrogram, whose uint8 rounding moved raw outputs by up to 0.1;
# rewritten as a MatMul by _first_conv_as_matmul) and the dense head (quantising the MatMuls moved
# scores by > 1 MOS).  Quantised: conv2d_1 .. conv2d_6 with their ReLU and max-pooling, 99 % of the
# FLOPs.
_QUANT_EXCLUDE = ("stft-real", "stft-imag")
_QUANT_OPS = ("Conv", "Relu", "MaxPool")


def _speechlike(rng: np.random.Generator, n: int, f0_hz: float) -> np.ndarray:
    """Syllables (harmonics on a gliding f0 through three formant resonators) with word and phrase gaps."""
    from scipy.signal import lfilter

    out = np.zeros(n)
    pos = int(rng.uniform(0.1, 0.5) * MODEL_RATE)
    while pos < n:
        dur = int(rng.uniform(0.12, 0.3) * MODEL_RATE)
        t = np.arange(dur) / MODEL_RATE
        f0 = f0_hz * (1 + 0.12 * np.sin(2 * np.pi * rng.uniform(1.5, 4) * t + rng.uniform(0, 6.28)))
        phase = 2 * np.pi * np.cumsum(f0) / MODEL_RATE
        src = sum(np.sin(k * phase) / k for k in range(1, int(7000 / f0_hz)))
        syl = np.zeros(dur)
        for formant, bw in ((rng.uniform(300, 900), 90.0), (rng.uniform(900, 2400), 120.0),
                            (rng.uniform(2400, 3400), 160.0)):
            r = np.exp(-np.pi * bw / MODEL_RATE)
            syl += lfilter([1 - r], [1, -2 * r * np.cos(2 * np.pi * formant / MODEL_RATE), r * r], src)
        syl *= np.sin(np.pi * np.arange(dur) / dur) ** 0.6
        if rng.uniform() < 0.35:  # a fricative onset
            m = int(0.06 * MODEL_RATE)
            burst = np.diff(rng.standard_normal(m + 1)) * np.hanning(m) * 0.3 * np.abs(syl).max()
            syl = np.concatenate([burst, syl])
        end = min(n, pos + syl.size)
        out[pos:end] += syl[: end - pos]
        gap = rng.uniform(0.02, 0.1) if rng.uniform() < 0.8 else rng.uniform(0.3, 1.0)
        pos = end + int(gap * MODEL_RATE)
    return out


def calibration_windows(seed: int = 0) -> list[np.ndarray]:
    """The deterministic audio the int8 P.835 model is calibrated on: ten 9.01 s windows.

    Synthetic speech-like phrases, clean or with white, pink or brown noise at 0-40 dB SNR, peaks
    from 0.01 to 0.9 (no recordings are shipped, so calibration uses generated audio only).

    Returns
    -------
    list of np.ndarray, float32, shape (WINDOW_SAMPLES,)
    """
    rng = np.random.default_rng(seed)
    out = []
    for snr_db, exponent, peak in ((None, 0, 0.3), (30, 1, 0.5), (20, 0, 0.1), (10, 1, 0.3), (5, 0, 0.6),
                                   (0, 1, 0.2), (15, 2, 0.05), (None, 0, 0.9), (0, 0, 0.4), (40, 1, 0.01)):
        s = _speechlike(rng, WINDOW_SAMPLES, rng.uniform(90, 260))
        s /= np.abs(s).max()
        if snr_db is None:
            s += 1e-4 * rng.standard_normal(WINDOW_SAMPLES)
        else:
            spec = np.fft.rfft(rng.standard_normal(WINDOW_SAMPLES))
            f = np.arange(spec.size, dtype=np.float64)
            f[0] = 1.0
            noise = np.fft.irfft(spec / f ** (exponent / 2), WINDOW_SAMPLES)
            speech_power = np.mean(s[np.abs(s) > 0.01] ** 2)
            s += noise * np.sqrt(speech_power / np.mean(noise**2) / 10 ** (snr_db / 10))
        out.append((s / np.abs(s).max() * peak).astype(np.float32))
    return out


def _first_conv_as_matmul(model: Any) -> Any:
    """Rewrite the P.835 model's first 3x3 convolution (1 -> 128 channels) as im2col + MatMul, in place.

    The convolution reads the log-power spectrogram, which is channels-last already
    (``ExpandDims`` to (N, 900, 161, 1), then a Transpose to NCHW).  Done as nine shifted slices, a
    column of ones (the bias) and a (10, 128) MatMul, its output is channels-last too, so onnxruntime
    cancels the layout transposes around the int8 convolutions that follow; as a float NCHWc
    convolution it cost a reorder and a transpose of its 128-channel output, half of the int8
    model's time.  Same arithmetic (float32), same outputs up to float rounding.
    """
    from onnx import helper, numpy_helper

    graph = model.graph
    nodes = list(graph.node)
    to_nchw = next(n for n in nodes if n.name == "Transpose13")
    conv = next(n for n in nodes if n.name == "conv2d")
    init = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    kernel, bias = init[conv.input[1]], init[conv.input[2]]  # (128, 1, 3, 3), (128,)
    consts = {
        "c0_pads": np.array([0, 1, 1, 0, 0, 1, 1, 0], np.int64),
        "c0_ones_pads": np.array([0, 0, 0, 0, 0, 0, 0, 1], np.int64),
        "c0_one": np.array(1.0, np.float32),
        "c0_axes": np.array([1, 2], np.int64),
        "c0_weights": np.concatenate([kernel[:, 0].reshape(-1, 9).T, bias[np.newaxis]]).astype(np.float32),
    }
    new = [helper.make_node("Pad", [to_nchw.input[0], "c0_pads"], ["c0_padded"], name="c0_pad")]
    taps = []
    for kh in range(3):
        for kw in range(3):
            name = f"c0_tap{kh}{kw}"
            consts[name + "_start"] = np.array([kh, kw], np.int64)
            consts[name + "_end"] = np.array([kh - 2 if kh < 2 else 2**62, kw - 2 if kw < 2 else 2**62], np.int64)
            new.append(helper.make_node("Slice", ["c0_padded", name + "_start", name + "_end", "c0_axes"], [name],
                                        name=name))
            taps.append(name)
    new += [
        helper.make_node("Concat", taps, ["c0_taps"], axis=3, name="c0_concat"),
        helper.make_node("Pad", ["c0_taps", "c0_ones_pads", "c0_one"], ["c0_columns"], name="c0_bias_column"),
        helper.make_node("MatMul", ["c0_columns", "c0_weights"], ["c0_nhwc"], name="c0_matmul"),
        helper.make_node("Transpose", ["c0_nhwc"], [conv.output[0]], perm=[0, 3, 1, 2], name="c0_to_nchw"),
    ]
    at = nodes.index(to_nchw)
    kept = [n for n in nodes if n is not to_nchw and n is not conv]
    del graph.node[:]
    graph.node.extend(kept[:at] + new + kept[at:])
    unused = {conv.input[1], conv.input[2]}
    kept_init = [t for t in graph.initializer if t.name not in unused]
    del graph.initializer[:]
    graph.initializer.extend(kept_init + [numpy_helper.from_array(v, k) for k, v in consts.items()])
    return model


def _variable_length_p835(model: Any) -> Any:
    """Let the P.835 model take any length of audio (a multiple of 160 samples, at least 320), in place.

    The graph frames its input with two fixed slices (samples ``[0, 144000)`` and ``[160, 144160)``)
    reshaped to (N, 900, 160) and concatenated into 900 frames of 320 samples at a 160-sample hop;
    everything after (the STFT as 1-D convolutions, 3x3 convolutions, max-pooling, a global max over
    time and frequency, the dense head) works on any number of frames.  Here the input's time axis
    becomes symbolic, the first slice ends 160 samples before the end and both reshapes infer the
    frame count: ``160 * (F + 1)`` samples give ``F`` frames, and a 9.01 s input gives exactly the
    original model's 900 frames and outputs.
    """
    from onnx import numpy_helper

    graph = model.graph
    dim = graph.input[0].type.tensor_type.shape.dim[1]
    dim.Clear()
    dim.dim_param = "samples"
    replace = {
        "input_1:01_cropping_end": np.array([np.iinfo(np.int64).max, -_HOP], np.int64),
        "shape_tensor": np.array([0, -1, _HOP], np.int64),
        "shape_tensor1": np.array([0, -1, _HOP], np.int64),
    }
    kept = [t for t in graph.initializer if t.name not in replace]
    if len(kept) != len(graph.initializer) - len(replace):
        raise ModelError(f"model {DNSMOS_MODEL.name}: unexpected P.835 graph (framing constants not found)")
    del graph.initializer[:]
    graph.initializer.extend(kept + [numpy_helper.from_array(v, k) for k, v in replace.items()])
    del graph.value_info[:]  # shapes inferred for the 9.01 s input no longer hold
    return model


def _quantize_p835(src: Path, dst: Path) -> None:
    """Write the int8 (QDQ, per-channel weights, uint8 activations, MinMax-calibrated) P.835 model."""
    import onnx
    from onnx import version_converter
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter([{"input_1": w[np.newaxis]} for w in calibration_windows()])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._it, None)

    with tempfile.TemporaryDirectory(dir=dst.parent) as tmp:
        # per-channel QDQ needs DequantizeLinear's axis (opset 13)
        opset13_model = version_converter.convert_version(onnx.load(str(src)), 13)
        rewritten = _first_conv_as_matmul(_variable_length_p835(opset13_model))
        onnx.checker.check_model(rewritten)
        opset13 = Path(tmp) / "opset13.onnx"
        onnx.save(rewritten, str(opset13))
        root = logging.getLogger()
        quiet = _DropQuantizerAdvice()
        root.addFilter(quiet)  # it logs "please pre-process" advice on the root logger
        try:
            quantize_static(str(opset13), str(dst), _Reader(), quant_format=QuantFormat.QDQ,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True,
                            nodes_to_exclude=list(_QUANT_EXCLUDE), op_types_to_quantize=list(_QUANT_OPS))
        finally:
            root.removeFilter(quiet)


class _DropQuantizerAdvice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Please consider")


_QUANT_LOCK = threading.Lock()


def quantized_p835(src: Path, src_sha256: str) -> bytes:
    """The int8 P.835 model made from the checked float model ``src``, cached per user, as bytes.

    Made once per (model, recipe, onnxruntime and onnx versions) into
    ``cache_dir()/models/dnsmos-int8/`` (a temporary file in that folder, then a rename, so concurrent
    workers never see a partial file), with a JSON beside it recording what it was made from and its
    own SHA-256.  Calibration runs the float model, whose rounding can differ between CPUs and
    onnxruntime versions, so the file's bytes (and its hash) are not portable: the hash recorded at
    creation is checked on every load (a changed or corrupted file is remade).

    Raises
    ------
    ModelError
        ``onnx`` (needed to quantise) is not installed.

    Notes
    -----
    When the cache folder cannot be written, the model is made in a temporary folder for this
    process only (a warning is logged) rather than failing.
    """
    from importlib import metadata

    import onnxruntime as ort

    try:  # the version only: importing onnx costs ~0.6 s, paid only when the model is made
        onnx_version = metadata.version("onnx")
    except metadata.PackageNotFoundError as err:
        raise ModelError(f"model {DNSMOS_MODEL.name}: the int8 model is made with onnx, which is not "
                         f"installed; {DNSMOS_MODEL.install_hint}") from err
    meta = {"source_sha256": src_sha256, "recipe": _QUANT_RECIPE, "onnxruntime": ort.__version__,
            "onnx": onnx_version}
    key = hashlib.sha256(json.dumps(meta, sort_keys=True).encode()).hexdigest()[:16]
    folder = cache_dir() / "models" / "dnsmos-int8"
    target = folder / f"sig_bak_ovr.int8.{key}.onnx"
    info = target.with_suffix(".json")
    with _QUANT_LOCK:
        data = _read_checked(target, info, meta)
        if data is not None:
            return data
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with atomic_path(target) as tmp:
                _quantize_p835(src, tmp)
                data = tmp.read_bytes()
            write_text_atomic(info, json.dumps({**meta, "sha256": hashlib.sha256(data).hexdigest()}, indent=1) + "\n")
        except (OSError, OutputError) as err:
            if data is not None:  # made, only its JSON could not be written: remade next time
                return data
            log.warning("cannot cache the int8 DNSMOS model in %s (%s); making it for this process only", folder, err)
            with tempfile.TemporaryDirectory() as tmp_dir:
                made = Path(tmp_dir) / "sig_bak_ovr.int8.onnx"
                _quantize_p835(src, made)
                data = made.read_bytes()
        return data


def _read_checked(target: Path, info: Path, meta: dict[str, Any]) -> bytes | None:
    """The cached int8 model's bytes when its JSON matches ``meta`` and its SHA-256, else None."""
    try:
        recorded = json.loads(info.read_text())
        data = target.read_bytes()
    except (OSError, ValueError):
        return None
    if any(recorded.get(k) != v for k, v in meta.items()):
        return None
    return data if hashlib.sha256(data).hexdigest() == recorded.get("sha256") else None


# -- sessions --------------------------------------------------------------------------------
def _sessions(model: BundledModel, *, quantized: bool = True) -> tuple[Any, Any]:
    """The (P.835, P.808) onnxruntime sessions of ``model``, checked, then cached per process."""
    files = model_files(model)  # raises ModelError before anything is loaded (hashes cached per file)
    (p835_rel, p835_path), (_, p808_path) = files.items()
    return _load_sessions(str(p835_path), model.files[p835_rel], str(p808_path), quantized)


@one_load_at_a_time  # worker threads asking at once share one load; onnxruntime's run is thread-safe
@functools.lru_cache(maxsize=4)
def _load_sessions(p835_path: str, p835_sha256: str, p808_path: str, quantized: bool) -> tuple[Any, Any]:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    providers = ["CPUExecutionProvider"]
    p835_model = quantized_p835(Path(p835_path), p835_sha256) if quantized else _float_p835(Path(p835_path))
    p835 = ort.InferenceSession(p835_model, sess_options=opts, providers=providers)
    p808 = ort.InferenceSession(p808_path, sess_options=opts, providers=providers)
    return p835, p808


def _float_p835(src: Path) -> bytes:
    """The float P.835 model with a variable-length input (:func:`_variable_length_p835`), as bytes."""
    try:
        import onnx
    except ImportError as err:
        raise ModelError(f"model {DNSMOS_MODEL.name}: the variable-length P.835 model is made with onnx, which is "
                         f"not installed; {DNSMOS_MODEL.install_hint}") from err
    return _variable_length_p835(onnx.load(str(src))).SerializeToString()


def _resample_16k(x: np.ndarray, rate: int) -> np.ndarray:
    if rate == MODEL_RATE:
        return x
    import soxr

    return soxr.resample(x, rate, MODEL_RATE).astype(np.float32, copy=False)


def dnsmos_scores(
    audio: np.ndarray,
    *,
    sample_rate: int,
    model: BundledModel = DNSMOS_MODEL,
    quantized: bool = True,
    p808: bool = True,
    short_min_s: float | None = None,
    short_rescore_below: float | None = None,
) -> DnsmosScores | None:
    """DNSMOS P.835 (SIG, BAK, OVRL) and P.808 MOS of a clip.

    Parameters
    ----------
    audio : np.ndarray, shape (samples,) or (channels, samples)
        Multichannel audio is averaged to mono; any rate (resampled to 16 kHz); clipped to [-1, 1].
    sample_rate : int
    model : BundledModel
        The model files, P.835 then P.808 (the pinned ``speechmos`` models by default).
    quantized : bool
        Run the int8 P.835 model made from ``model`` (default; see :func:`quantized_p835`) rather
        than the float one.
    p808 : bool
        Also run the P.808 model (its mel features and model are ~10 % of a window's time);
        ``False`` leaves ``p808`` NaN.
    short_min_s : float, optional
        A clip shorter than 9.01 s is scored by the P.835 model on its own length, looped to at
        least this many seconds (default :data:`SHORT_MIN_S`; 9.01 loops every short clip to a whole
        window, as the reference does).
    short_rescore_below : float, optional
        A short clip whose OVRL or BAK on that input is below this is scored again on the 9.01 s
        loop, whose P.835 scores are kept (default :data:`SHORT_RESCORE_BELOW`; 0 never rescores).

    Returns
    -------
    DnsmosScores or None
        ``None`` for a clip shorter than 0.5 s (too little to judge).

    Raises
    ------
    prep.models.ModelError
        ``speechmos`` is missing, another version, or a model file's SHA-256 differs; ``onnx`` is
        missing (``quantized=True``).
    ImportError
        onnxruntime is not installed.
    """
    rate = check_sample_rate(sample_rate)
    x = mix_to_mono(audio)
    if x.size < rate // 2:
        return None
    y = np.clip(_resample_16k(np.asarray(x, dtype=np.float32), rate), -1.0, 1.0).astype(np.float32, copy=False)
    p835, p808_model = _sessions(model, quantized=quantized)
    if y.size < WINDOW_SAMPLES:  # P.835 on the clip's own length, P.808 on the 9.01 s loop
        return _short_scores(y, p835, p808_model if p808 else None, short_min_s, short_rescore_below)
    scores = []
    for start in window_starts(y.size):
        seg = y[start : start + WINDOW_SAMPLES]
        scores.append((*_calibrated(p835, seg), _p808(p808_model, seg) if p808 else np.nan))
    sig, bak, ovr, mos808 = (float(np.mean(column)) for column in np.asarray(scores, dtype=np.float64).T)
    return DnsmosScores(ovrl=ovr, sig=sig, bak=bak, p808=mos808, windows=len(scores))


def _calibrated(p835: Any, x: np.ndarray) -> tuple[float, float, float]:
    """(SIG, BAK, OVRL) of one P.835 input ``x`` (16 kHz, a multiple of 160 samples)."""
    raw = p835.run(None, {p835.get_inputs()[0].name: x[np.newaxis, :]})[0][0]
    return (float(np.polyval(_POLY_SIG, float(raw[0]))), float(np.polyval(_POLY_BAK, float(raw[1]))),
            float(np.polyval(_POLY_OVR, float(raw[2]))))


def _p808(p808_model: Any, x: np.ndarray) -> float:
    """P.808 MOS of one 9.01 s input ``x`` (16 kHz; its mel features leave out the last hop, as the reference)."""
    name = p808_model.get_inputs()[0].name
    return float(p808_model.run(None, {name: mel_features(x[:-_HOP])[np.newaxis]})[0][0][0])


def _short_scores(y: np.ndarray, p835: Any, p808_model: Any, min_s: float | None,
                  rescore_below: float | None) -> DnsmosScores:
    """Scores of a 16 kHz clip shorter than a window: its own length (looped to ``min_s``), then,
    when :func:`rescores_short`, the 9.01 s loop; P.808 (unless ``p808_model`` is None) on the loop."""
    rescore_below = _rescore_below(rescore_below)  # checked before any model runs
    loop = _loop_to_window(y)[:WINDOW_SAMPLES]
    first = np.resize(y, short_input_samples(y.size, min_s))
    sig, bak, ovr = _calibrated(p835, first)
    rescore = first.size < WINDOW_SAMPLES and rescores_short(ovr, bak, rescore_below)
    if rescore:
        sig, bak, ovr = _calibrated(p835, loop)
    mos808 = np.nan if p808_model is None else _p808(p808_model, loop)
    return DnsmosScores(ovrl=ovr, sig=sig, bak=bak, p808=mos808, windows=1, rescored=rescore)
