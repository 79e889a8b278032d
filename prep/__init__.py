"""voiceprep: clean, scored, transcript-paired voice clips for cloning and TTS datasets."""

from __future__ import annotations

from .clip import Clip, InputInfo, StageRecord
from .errors import ConfigError, DecodeError, OutputError, PrepError, SubmitError

__version__ = "0.1.0"

__all__ = [
    "Clip",
    "ConfigError",
    "DecodeError",
    "InputInfo",
    "OutputError",
    "PrepError",
    "StageRecord",
    "SubmitError",
    "__version__",
]
