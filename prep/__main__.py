"""``python -m prep``: same as the ``voiceprep`` command."""

from .cli import entry

entry()
