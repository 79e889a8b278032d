"""``python -m prep``: same as the ``voiceprep`` command."""

from .cli import main

raise SystemExit(main())
