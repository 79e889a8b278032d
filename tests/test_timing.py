"""prep.timing: totals per name, on a clock that can be switched (CPU time for benchmarks on a busy machine)."""

from __future__ import annotations

import itertools

import numpy as np

from prep import timing
from prep.clip import Clip
from prep.run.pipeline import run_stages
from prep.stages.downmix import Downmix


def _fake_clock(step: float):
    ticks = itertools.count()
    return lambda: next(ticks) * step


def test_timed_uses_the_switched_clock():
    timing.reset_times()
    timing.use_clock(_fake_clock(0.5))  # each reading is 0.5 s after the last
    try:
        with timing.timed("a"):
            pass
        with timing.timed("a"):
            pass
        assert timing.stage_times() == {"a": (1.0, 2)}
    finally:
        timing.use_clock()
        timing.reset_times()


def test_run_stages_times_each_stage_on_the_clock():
    timing.reset_times()
    timing.use_clock(_fake_clock(0.25))
    try:
        audio = np.zeros((2, 1600), np.float32)
        clip = Clip(id="c", source="c.wav", source_sha256="", speaker="s", sample_rate=16000, audio=audio,
                    span_s=(0.0, 0.1))
        run_stages(clip, [Downmix()])
        assert timing.stage_times()["downmix"] == (0.25, 1)
    finally:
        timing.use_clock()
        timing.reset_times()

