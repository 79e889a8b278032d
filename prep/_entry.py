"""The ``voiceprep`` command's process entry: :func:`prep.cli.main` plus two process-wide start-up settings.

They belong to a process that voiceprep owns, so they are made here and not
in :func:`prep.cli.main` (which tests and other programs call in their own
process):

- ``OPENBLAS_THREAD_TIMEOUT`` (when not set already): OpenBLAS's idle threads
  busy-wait about 0.1 s after the library loads (NumPy's and SciPy's each, so in
  every process, workers included) before they sleep; 2**4 cycles instead.
  That is CPU time a short ``voiceprep check`` spent on the other core, taken
  from the other worker in a run.  It changes how long an idle BLAS thread spins
  before sleeping, nothing that BLAS computes.  It must be set before NumPy is
  imported, hence here, before :mod:`prep.cli`.
- the collector's thresholds (:data:`GC_THRESHOLDS`): imports and a run make
  millions of small objects, few of them cyclic garbage (audio is freed by
  reference counting); collecting less often cut about 0.1 s of CPU from a
  short run.
- :func:`gc.freeze` when the command is done: the interpreter's shutdown runs
  full garbage collections over every object of every imported module (numba's
  and SciPy's are many), about 0.1-0.2 s of CPU; frozen objects are skipped, and
  nothing is left to collect in a process that is about to end.

This module imports nothing heavy: ``python -m prep`` and the ``voiceprep``
script start here.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Sequence

__all__ = ["GC_THRESHOLDS", "main"]

#: The collector's thresholds in the ``voiceprep`` process (Python's default: 700, 10, 10).
GC_THRESHOLDS = (10_000, 20, 20)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``voiceprep`` command (``argv`` default: ``sys.argv[1:]``); returns its exit status."""
    os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")
    gc.set_threshold(*GC_THRESHOLDS)
    from .cli import main as cli_main

    status = cli_main(argv)
    gc.freeze()
    return status
