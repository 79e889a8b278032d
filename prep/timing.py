"""Light per-stage timing: seconds accumulated per name in this process (wall time by default).

:func:`prep.run.pipeline.run_stages` adds each stage's time under the
stage's name; the runner adds ``decode``, ``write`` and ``figures``; a few
inner parts that several stages share add their own (``vad``, ``dnsmos``),
which are therefore also inside the stage times.  Nothing here reaches a
clip record (those stay deterministic); ``benchmarks/pipeline.py`` reads the
totals to print its per-stage table.  :func:`use_clock` switches the clock,
e.g. to :func:`time.process_time` for CPU seconds on a busy machine
(``benchmarks/cpu.py``).  Thread-safe: with worker threads the totals add up
over the threads.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from threading import Lock
from time import perf_counter

__all__ = ["add_time", "now", "reset_times", "stage_times", "timed", "use_clock"]

_TOTALS: dict[str, float] = {}
_COUNTS: dict[str, int] = {}
_CLOCK: list[Callable[[], float]] = [perf_counter]
_LOCK = Lock()  # worker threads add at once


def use_clock(clock: Callable[[], float] = perf_counter) -> None:
    """Time with ``clock`` from now on (default: wall time, :func:`time.perf_counter`)."""
    _CLOCK[0] = clock


def now() -> float:
    """The current reading of the timing clock, in seconds."""
    return _CLOCK[0]()


def add_time(name: str, seconds: float) -> None:
    """Add ``seconds`` (of the timing clock) to ``name``'s total."""
    with _LOCK:
        _TOTALS[name] = _TOTALS.get(name, 0.0) + seconds
        _COUNTS[name] = _COUNTS.get(name, 0) + 1


@contextmanager
def timed(name: str) -> Iterator[None]:
    """Add the time of the ``with`` block to ``name``'s total."""
    t0 = now()
    try:
        yield
    finally:
        add_time(name, now() - t0)


def stage_times() -> dict[str, tuple[float, int]]:
    """``{name: (seconds, calls)}`` accumulated in this process since the last :func:`reset_times`."""
    with _LOCK:
        return {name: (seconds, _COUNTS[name]) for name, seconds in _TOTALS.items()}


def reset_times() -> None:
    """Forget the totals."""
    with _LOCK:
        _TOTALS.clear()
        _COUNTS.clear()
