"""Worker for the concurrent-join test: importable by spawned processes (the test module is not, under importlib)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from prep.asr import models


def join_worker(args: tuple[list[str], str, str]) -> str:
    """Join the parts into ``folder`` as one of several processes and return the SHA-256 it then reads."""
    parts, folder, sha = args
    models._join_base([Path(p) for p in parts], [], Path(folder), expected_sha256=sha)
    return hashlib.sha256(Path(folder, "model.bin").read_bytes()).hexdigest()
