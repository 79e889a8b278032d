"""Shared helpers for benchmark scripts: machine facts and RESULTS.md sections.

Each benchmark script owns one section of ``benchmarks/RESULTS.md``,
delimited by ``<!-- BEGIN name -->`` / ``<!-- END name -->``; writing a
section replaces only that section, so scripts never clobber each other.
"""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import os
import platform
import re
import resource
import time
from collections.abc import Callable, Iterable
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
_HEADER = "# Benchmark results\n\nWritten by the scripts in `benchmarks/`; each section says how it was measured.\n"

_PACKAGES = ("numpy", "scipy", "numba", "soundfile", "av", "soxr", "webrtcvad-wheels", "librosa",
             "pyloudnorm", "pyebur128", "noisereduce", "dask", "voiceprep")


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (or platform.processor())."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown"
    match = re.search(r"^model name\s*:\s*(.+)$", text, re.M)
    return match.group(1).strip() if match else (platform.processor() or "unknown")


def versions(packages: Iterable[str] = _PACKAGES) -> str:
    """``name version`` pairs of the installed packages among ``packages``."""
    out = []
    for name in packages:
        try:
            out.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            continue
    return ", ".join(out)


def machine_info() -> str:
    """A markdown paragraph describing where and when the numbers were taken."""
    return (
        f"Machine: {cpu_model()}, {os.cpu_count()} cores, {platform.system()} {platform.release()} "
        f"({platform.machine()}); Python {platform.python_version()}. "
        f"Packages: {versions()}. Date: {_dt.datetime.now(_dt.timezone.utc):%Y-%m-%d %H:%M} UTC."
    )


def write_section(name: str, markdown: str) -> None:
    """Replace (or append) the section ``name`` of RESULTS.md with ``markdown`` plus machine info."""
    begin, end = f"<!-- BEGIN {name} -->", f"<!-- END {name} -->"
    block = f"{begin}\n{markdown.rstrip()}\n\n{machine_info()}\n{end}\n"
    text = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else _HEADER
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end) + r"\n?", re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block
    tmp = RESULTS.with_suffix(".md.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, RESULTS)


def best_of(fn: Callable[[], object], *, repeat: int = 3) -> float:
    """Best wall time in seconds of ``repeat`` calls of ``fn``."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
