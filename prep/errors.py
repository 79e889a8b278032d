"""Exception hierarchy.

Every error voiceprep raises on purpose derives from :class:`PrepError`, so a
caller can catch one type.  Data-quality outcomes (too short, silent, clipped)
are *verdicts* on a :class:`~prep.clip.Clip`, never exceptions.
"""

from __future__ import annotations

__all__ = ["PrepError", "DecodeError", "ConfigError", "OutputError", "SubmitError"]


class PrepError(Exception):
    """Base class of all voiceprep errors."""


class DecodeError(PrepError):
    """An input file cannot be read as audio (missing, corrupt, unsupported)."""


class ConfigError(PrepError, ValueError):
    """A parameter or profile value is invalid; the message names the value."""


class OutputError(PrepError):
    """An output cannot be written (permissions, locked output folder...)."""


class SubmitError(PrepError):
    """The Fish Audio API refused or failed a request."""
