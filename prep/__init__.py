"""voiceprep: clean, scored, transcript-paired voice clips for cloning and TTS datasets."""

from __future__ import annotations

import importlib.util as _ilu
import sys as _sys
from pathlib import Path as _Path


def _map_source_kernels() -> None:
    """In a source checkout ``kernels/`` sits beside ``prep/``: map it to ``prep.kernels``.

    Installs do the same with setuptools' package-dir mapping, so there is
    never a top-level ``kernels`` module; this only makes ``python -m prep``
    work from a checkout that is not installed.
    """
    here = _Path(__file__).resolve().parent
    beside = here.parent / "kernels" / "__init__.py"
    if (here / "kernels").is_dir() or not beside.is_file() or "prep.kernels" in _sys.modules:
        return
    spec = _ilu.spec_from_file_location("prep.kernels", beside, submodule_search_locations=[str(beside.parent)])
    if spec is None or spec.loader is None:
        return
    module = _ilu.module_from_spec(spec)
    _sys.modules["prep.kernels"] = module
    spec.loader.exec_module(module)
    globals()["kernels"] = module  # as the import system does for a submodule


_map_source_kernels()

from typing import TYPE_CHECKING  # noqa: E402

from .errors import (  # noqa: E402
    ConfigError,
    DataError,
    DecodeError,
    OutputError,
    PrepError,
    SchedulerError,
    SubmitError,
)

if TYPE_CHECKING:
    from .clip import Clip, InputInfo, StageRecord

_LAZY = {"Clip", "InputInfo", "StageRecord"}


def __getattr__(name: str):
    """The record types load numpy: imported on first use, so ``voiceprep`` starts its workers sooner."""
    if name in _LAZY:
        from . import clip

        return getattr(clip, name)
    raise AttributeError(f"module 'prep' has no attribute {name!r}")

__version__ = "0.1.0"

__all__ = [
    "Clip",
    "ConfigError",
    "DataError",
    "DecodeError",
    "InputInfo",
    "OutputError",
    "PrepError",
    "SchedulerError",
    "StageRecord",
    "SubmitError",
    "__version__",
]
