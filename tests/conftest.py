"""Shared fixtures: paths to the committed test audio."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

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
