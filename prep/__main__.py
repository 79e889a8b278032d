"""``python -m prep``: same as the ``voiceprep`` command."""

from ._entry import main

raise SystemExit(main())
