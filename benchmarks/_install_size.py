"""Installed size of distributions and everything they require, minus what voiceprep's core needs.

Pure standard library, so the torch venv of ``benchmarks/speakers.py`` can import it too.
"""

from __future__ import annotations

import re
from importlib import metadata

CORE = ("numpy", "scipy", "numba", "soundfile", "av", "soxr", "webrtcvad-wheels", "rich", "pillow", "fish-audio-sdk")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def closure(roots: tuple[str, ...] | list[str]) -> set[str]:
    """Names of the installed distributions ``roots`` need (no extras), roots included."""
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = _norm(todo.pop())
        if name in seen:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        seen.add(name)
        for req in dist.requires or []:
            if "extra ==" in req:
                continue
            marker = req.split(";", 1)
            if len(marker) == 2 and "python_version" in marker[1] and ">= \"3.13\"" in marker[1]:
                continue
            todo.append(re.split(r"[\s<>=!~;\[(]", marker[0].strip(), maxsplit=1)[0])
    return seen


def size_bytes(names: set[str]) -> int:
    """Bytes on disk of the files of the installed distributions ``names``."""
    total = 0
    for name in names:
        dist = metadata.distribution(name)
        for f in dist.files or []:
            try:
                total += dist.locate_file(f).stat().st_size
            except OSError:
                pass
    return total


def extra_size(roots: tuple[str, ...] | list[str]) -> tuple[int, list[str]]:
    """Bytes and names of what ``roots`` add to an install of voiceprep's core."""
    extra = closure(roots) - closure(CORE)
    return size_bytes(extra), sorted(extra)
