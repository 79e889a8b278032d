"""Exception hierarchy.

Every error voiceprep raises on purpose derives from :class:`PrepError`, so a
caller can catch one type.  Data-quality outcomes (too short, silent, clipped)
are *verdicts* on a :class:`~prep.clip.Clip`, never exceptions.

The command line maps them to its exit status: :class:`ConfigError` (a bad
parameter or usage) exits 2; every other :class:`PrepError` exits 1.  Bad
data in a file is never a :class:`ConfigError`: an input file's becomes that
file's ``error`` verdict, a metadata file's or a run report's a
:class:`DataError` naming the file.
"""

from __future__ import annotations

__all__ = ["PrepError", "DecodeError", "ConfigError", "DataError", "OutputError", "SchedulerError", "SubmitError"]


class PrepError(Exception):
    """Base class of all voiceprep errors."""


class DecodeError(PrepError):
    """An input file cannot be read as audio (missing, corrupt, unsupported)."""


class ConfigError(PrepError, ValueError):
    """A parameter, profile value or command-line usage is invalid; the message names the value."""


class DataError(PrepError):
    """A data file is unreadable or corrupt (a transcript metadata file, a run's report); the message names it."""


class OutputError(PrepError):
    """An output cannot be written (permissions, locked output folder...)."""


class SchedulerError(PrepError):
    """The Dask scheduler given with ``--scheduler`` cannot be reached."""


class SubmitError(PrepError):
    """The Fish Audio API refused or failed a request."""
