"""DNSMOS P.835 and P.808 run directly on onnxruntime, on non-overlapping windows.

DNSMOS (Reddy et al., ICASSP 2022) predicts the mean opinion scores listeners would give a speech
clip: SIG (the speech itself), BAK (the background, 5 = no audible noise) and OVRL (overall), per
ITU-T P.835, plus the P.808 overall MOS.  Its models take 9.01 s of 16 kHz audio.  The models and
their polynomial calibrations are the ones ``speechmos`` 0.0.1.1 ships (Microsoft's DNS Challenge
``sig_bak_ovr.onnx`` and ``model_v8.onnx``); this module loads them through :mod:`prep.models`
(version pinned, SHA-256 of each file checked before loading) and computes what
``speechmos.dnsmos.run`` computes, with two differences:

* windows do not overlap.  The reference slides the 9.01 s window by 1 s (a 40 s clip costs 32
  model runs); here a clip is cut into consecutive 9.01 s windows and, when a remainder is left,
  one more window ending at the clip's end (40 s: 5 runs).  The clip's score is the mean of its
  windows' scores, as in the reference.  Clips shorter than 9.01 s are repeated (doubled until long
  enough, as the reference does) and scored on their first 9.01 s (the reference averages a few
  1 s shifts of the same repeated material).
* the P.808 input, a 120-band mel spectrogram in dB, is computed in numpy (the same Hann window,
  Slaney mel filters and ``power_to_db(ref=max, top_db=80)`` as the reference's librosa calls), so
  librosa is not needed at run time.

Speed: one onnxruntime intra-op thread; a window costs ~38 GFLOP of convolutions in the P.835 model
(~0.4 s of one core here), so a long recording runs at ~21x realtime per CPU core, 6x the reference
wrapper (3.4x per core on the same 60 s); a clip shorter than 9.01 s costs a whole window.
Agreement with ``speechmos.dnsmos.run``: the same single window on clips of 9.01-10 s (identical up to
float rounding); elsewhere the window grid differs, so scores differ by the spread of the clip's
windows: |ΔOVRL| mean 0.02, max 0.13 on corpus recordings (``benchmarks/RESULTS.md``, section
``snr``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..audio import check_sample_rate, mix_to_mono
from ..models import BundledModel, model_files

__all__ = [
    "DNSMOS_MODEL",
    "MODEL_RATE",
    "WINDOW_SAMPLES",
    "DnsmosScores",
    "dnsmos_scores",
    "mel_features",
    "window_starts",
]

#: DNSMOS runs at 16 kHz.
MODEL_RATE = 16000
#: The models' input: 9.01 s at 16 kHz.
WINDOW_SAMPLES = 144160
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
        P.808 overall MOS (mean over windows).
    windows : int
        Number of 9.01 s windows scored.
    """

    ovrl: float
    sig: float
    bak: float
    p808: float
    windows: int

    def as_metrics(self) -> dict[str, float]:
        """The ``dnsmos_ovrl``/``dnsmos_sig``/``dnsmos_bak``/``dnsmos_p808`` metric dict."""
        return {"dnsmos_ovrl": self.ovrl, "dnsmos_sig": self.sig, "dnsmos_bak": self.bak, "dnsmos_p808": self.p808}


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
    spec = np.fft.rfft(view * _window(), axis=1)
    power = (spec.real**2 + spec.imag**2).astype(np.float32)
    mel = power @ _mel_basis().T
    db = 10.0 * np.log10(np.maximum(mel, np.float32(1e-10)))
    db -= 10.0 * np.log10(max(float(mel.max()), 1e-10))
    db = np.maximum(db, db.max() - 80.0)
    return ((db + 40.0) / 40.0).astype(np.float32)


# -- windows -------------------------------------------------------------------------------
def window_starts(n: int) -> list[int]:
    """Start samples of the non-overlapping 9.01 s windows that cover ``n`` samples.

    Consecutive windows from 0, plus one ending at the last sample when a remainder of at least
    1 s is left (the reference also ignores the last fraction of a second).  ``n`` must be at least
    :data:`WINDOW_SAMPLES` (shorter clips are repeated first).
    """
    if n < WINDOW_SAMPLES:
        raise ValueError(f"need at least {WINDOW_SAMPLES} samples, got {n}")
    count = n // WINDOW_SAMPLES
    starts = [k * WINDOW_SAMPLES for k in range(count)]
    if n - count * WINDOW_SAMPLES >= MODEL_RATE:
        starts.append(n - WINDOW_SAMPLES)
    return starts


def _loop_to_window(y: np.ndarray) -> np.ndarray:
    """Repeat a short clip as the reference does (``np.append(audio, audio)`` until long enough)."""
    while y.size < WINDOW_SAMPLES:
        y = np.concatenate([y, y])
    return y


# -- sessions --------------------------------------------------------------------------------
def _sessions(model: BundledModel) -> tuple[Any, Any]:
    """The (P.835, P.808) onnxruntime sessions of ``model``, checked, then cached per process."""
    files = model_files(model)  # raises ModelError before anything is loaded (hashes cached per file)
    p835_path, p808_path = (str(path) for path in files.values())
    return _load_sessions(p835_path, p808_path)


@functools.lru_cache(maxsize=4)
def _load_sessions(p835_path: str, p808_path: str) -> tuple[Any, Any]:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    providers = ["CPUExecutionProvider"]
    p835 = ort.InferenceSession(p835_path, sess_options=opts, providers=providers)
    p808 = ort.InferenceSession(p808_path, sess_options=opts, providers=providers)
    return p835, p808


def _resample_16k(x: np.ndarray, rate: int) -> np.ndarray:
    if rate == MODEL_RATE:
        return x
    import soxr

    return soxr.resample(x, rate, MODEL_RATE).astype(np.float32, copy=False)


def dnsmos_scores(audio: np.ndarray, *, sample_rate: int, model: BundledModel = DNSMOS_MODEL) -> DnsmosScores | None:
    """DNSMOS P.835 (SIG, BAK, OVRL) and P.808 MOS of a clip.

    Parameters
    ----------
    audio : np.ndarray, shape (samples,) or (channels, samples)
        Multichannel audio is averaged to mono; any rate (resampled to 16 kHz); clipped to [-1, 1].
    sample_rate : int
    model : BundledModel
        The model files, P.835 then P.808 (the pinned ``speechmos`` models by default).

    Returns
    -------
    DnsmosScores or None
        ``None`` for a clip shorter than 0.5 s (too little to judge).

    Raises
    ------
    prep.models.ModelError
        ``speechmos`` is missing, another version, or a model file's SHA-256 differs.
    ImportError
        onnxruntime is not installed.
    """
    rate = check_sample_rate(sample_rate)
    x = mix_to_mono(audio)
    if x.size < rate // 2:
        return None
    y = np.clip(_resample_16k(np.asarray(x, dtype=np.float32), rate), -1.0, 1.0).astype(np.float32, copy=False)
    starts = [0] if y.size < WINDOW_SAMPLES else window_starts(y.size)  # a looped clip repeats itself
    y = _loop_to_window(y)
    p835, p808 = _sessions(model)
    p835_in, p808_in = p835.get_inputs()[0].name, p808.get_inputs()[0].name
    raw = []
    for start in starts:
        seg = y[start : start + WINDOW_SAMPLES]
        sig_bak_ovr = p835.run(None, {p835_in: seg[np.newaxis, :]})[0][0]
        mos808 = p808.run(None, {p808_in: mel_features(seg[:-_HOP])[np.newaxis]})[0][0][0]
        raw.append((float(sig_bak_ovr[0]), float(sig_bak_ovr[1]), float(sig_bak_ovr[2]), float(mos808)))
    arr = np.asarray(raw, dtype=np.float64)
    sig = np.polyval(_POLY_SIG, arr[:, 0])
    bak = np.polyval(_POLY_BAK, arr[:, 1])
    ovr = np.polyval(_POLY_OVR, arr[:, 2])
    return DnsmosScores(
        ovrl=float(np.mean(ovr)),
        sig=float(np.mean(sig)),
        bak=float(np.mean(bak)),
        p808=float(np.mean(arr[:, 3])),
        windows=len(raw),
    )
