"""Reports of a run: ``report.json`` and the terminal summary (:mod:`~prep.report.summary`), ``report.html``
(:mod:`~prep.report.html`)."""
