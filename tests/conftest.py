"""Shared fixtures: paths to the committed test audio."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

# Speech recognition is opt-in for tests: runs whose subject is not ASR do not pay for transcribing every
# clip.  Tests of ASR configure the transcribe stage (or pass --transcribe auto) explicitly.  Set in the
# environment, so pool and Dask workers see it too.
os.environ.setdefault("VOICEPREP_TRANSCRIBE", "never")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never download a model in tests
# What prep.asr.models pins before importing CTranslate2 (its scores depend on the OpenMP thread count,
# and Dask workers run with 1): test modules import faster-whisper at collection, before any model loads.
os.environ.setdefault("OMP_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES


@pytest.fixture(scope="session")
def demo_dir() -> Path:
    return FIXTURES / "demo"


@pytest.fixture(scope="session")
def formats_dir() -> Path:
    return FIXTURES / "formats"


@pytest.fixture(scope="session")
def truth() -> dict:
    return json.loads((FIXTURES / "truth.json").read_text(encoding="utf-8"))
