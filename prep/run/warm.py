"""Warm-up for worker processes.

The process pool's fork server imports this module once; every worker is
then forked with the pipeline imported and the numba kernels loaded from
their cache, instead of paying that start-up cost itself.  It runs the
run's own stages (handed over by the parent in
:data:`prep.run.runner.WARM_STAGES_ENV`), so a model the run does not use is never loaded
into the fork server and every worker.

Then it readies the fork server to be forked: the heap's freed pages go back to
the system, and every object so far is frozen out of the garbage collector
(:func:`gc.freeze`, as the Python docs advise before forking): a worker's
collections then never write to the imported modules' objects, whose memory
pages therefore stay shared with the fork server instead of being copied into
each worker.
"""

from __future__ import annotations

import base64
import dataclasses
import gc
import os
import pickle

import numpy as np

from ..clip import Clip
from .pipeline import run_stages
from .profiles import get_profile
from .runner import WARM_STAGES_ENV, _release_freed_memory

__all__ = ["warm"]


def _stages() -> tuple:
    blob = os.environ.get(WARM_STAGES_ENV)
    if blob:
        try:
            return pickle.loads(base64.b64decode(blob))  # written by our own parent process
        except Exception:  # a warm-up is an optimisation: fall back to the fish profile
            pass
    return get_profile("fish").stages


def warm() -> None:
    """Run the run's stages (default: the fish profile) on 1.5 s of a synthetic tone burst in noise;
    import the plotting parts."""
    from PIL import Image  # noqa: F401 - report figures are drawn in the workers

    from ..report.colormap import magma_lut

    magma_lut()

    rate = 16000
    t = np.arange(int(1.5 * rate)) / rate
    rng = np.random.default_rng(0)
    burst = 0.3 * np.sin(2 * np.pi * 220 * t) * (np.abs(t - 0.75) < 0.4)
    audio = (burst + 0.003 * rng.standard_normal(t.size)).astype(np.float32)[None, :]
    clip = Clip(id="warm", source="warm", source_sha256="", speaker="warm", sample_rate=rate, audio=audio)
    # No speech recognition here: a model loaded in the fork server would be shared by forked workers
    # (CTranslate2's threads do not survive a fork); each worker loads it once, on its first clip.
    stages = tuple(dataclasses.replace(s, mode="never") if s.name == "transcribe" else s for s in _stages())
    run_stages(clip, stages)


def ready_to_fork() -> None:
    """Collect once, return freed heap pages, freeze what is left (see the module docstring)."""
    gc.collect()
    _release_freed_memory()
    gc.freeze()


warm()
ready_to_fork()
