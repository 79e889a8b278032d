"""prep.models: bundled model files are located in their pip distribution and refused unless their SHA-256 matches."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import pytest

from prep.models import BundledModel, ModelError, cache_dir, model_files

NUMPY_INIT = Path(np.__file__)
NUMPY_SHA = hashlib.sha256(NUMPY_INIT.read_bytes()).hexdigest()


def _model(**kw) -> BundledModel:
    base = {
        "name": "test model",
        "distribution": "numpy",
        "version": np.__version__,
        "files": {"numpy/__init__.py": NUMPY_SHA},
        "extra": "test",
    }
    return BundledModel(**{**base, **kw})


def test_files_found_and_checked():
    files = model_files(_model())
    assert files["numpy/__init__.py"].samefile(NUMPY_INIT)


def test_changed_file_is_refused():
    wrong = hashlib.sha256(b"not numpy").hexdigest()
    with pytest.raises(ModelError, match=r"test model: .*SHA-256 .*expected.*voiceprep\[test\]"):
        model_files(_model(files={"numpy/__init__.py": wrong}))


def test_missing_distribution_other_version_missing_file():
    with pytest.raises(ModelError, match="no-such-dist-xyz is not installed; pip install 'voiceprep\\[test\\]'"):
        model_files(_model(distribution="no-such-dist-xyz"))
    pinned = re.escape(f"numpy {np.__version__} is installed, voiceprep is pinned to 0.0.1")
    with pytest.raises(ModelError, match=pinned):
        model_files(_model(version="0.0.1"))
    with pytest.raises(ModelError, match=r"numpy/no_such_file\.bin is missing"):
        model_files(_model(files={"numpy/no_such_file.bin": NUMPY_SHA}))


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("VOICEPREP_CACHE", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c"
    monkeypatch.delenv("VOICEPREP_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert cache_dir() == tmp_path / "x" / "voiceprep"
