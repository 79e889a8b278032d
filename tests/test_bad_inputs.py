"""A messy folder: every bad input gets a clear per-file error or verdict, the rest process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr

from prep.cli import main
from prep.run.decode import load


@pytest.fixture(scope="module")
def speech(demo_dir):
    audio, rate = load(demo_dir / "alice" / "a01.wav")
    return audio[0], rate


@pytest.fixture(scope="module")
def messy(tmp_path_factory, demo_dir, speech):
    """The bad-input corpus, generated; returns (folder, {name: expectation})."""
    x, rate = speech
    root = tmp_path_factory.mktemp("messy") / "ünï cödé spk"
    root.mkdir()
    # name -> (verdict class, finding code the clip must have or "", text the reasons must contain)
    expect: dict[str, tuple[str, str, str]] = {}

    (root / "zero.wav").write_bytes(b"")
    expect["zero.wav"] = ("error", "decode.error", "empty file")
    data = (demo_dir / "alice" / "a03.mp3").read_bytes()
    (root / "truncated.mp3").write_bytes(data[: len(data) // 3])
    expect["truncated.mp3"] = ("any", "", "")
    data = (demo_dir / "bob" / "b04.m4a").read_bytes()
    (root / "truncated.m4a").write_bytes(data[: len(data) // 3])
    expect["truncated.m4a"] = ("any", "", "")
    (root / "text.wav").write_text("RIFF? no, just text\n" * 20)
    expect["text.wav"] = ("error", "decode.error", "not a readable audio file")
    with wave.open(str(root / "header_only.wav"), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
    expect["header_only.wav"] = ("error", "decode.error", "no audio samples")
    sf.write(root / "one_sample.wav", np.array([0.1], np.float32), 16000, subtype="PCM_16")
    expect["one_sample.wav"] = ("rejected", "", "")
    nan = x.copy()
    nan[1000:1100] = np.nan
    nan[5000] = np.inf
    sf.write(root / "nan_inf.wav", nan, rate, subtype="FLOAT")
    expect["nan_inf.wav"] = ("ok", "samples.nonfinite", "101 NaN/Inf samples replaced")
    sf.write(root / "hot_float.wav", x * 8.0, rate, subtype="FLOAT")
    expect["hot_float.wav"] = ("ok", "samples.over_full_scale", "exceed full scale")
    eight = np.zeros((x.size, 8), np.float32)
    eight[:, 0] = x
    eight[:, 1] = 0.7 * x
    eight[:, 5] = -0.5 * x
    sf.write(root / "eight_channels.wav", eight, rate, subtype="PCM_16")
    expect["eight_channels.wav"] = ("ok", "downmix.inverted", "")
    sf.write(root / "phone_8k.wav", soxr.resample(x, rate, 8000), 8000, subtype="PCM_16")
    expect["phone_8k.wav"] = ("ok", "bandwidth.narrow", "")
    sf.write(root / "hires_192k.wav", soxr.resample(x, rate, 192000), 192000, subtype="PCM_24")
    expect["hires_192k.wav"] = ("ok", "", "")
    sf.write(root / "pcm 24 bit.wav", x, rate, subtype="PCM_24")
    expect["pcm 24 bit.wav"] = ("ok", "", "")
    with sf.SoundFile(root / "silent_3h.flac", "w", 8000, 1, subtype="PCM_16") as fh:
        block = np.zeros(8000 * 600, np.int16)
        for _ in range(18):  # 3 hours
            fh.write(block)
    expect["silent_3h.flac"] = ("rejected", "longform.silent", "no signal")
    # alice's voice, as the rest of the folder (bob's would be flagged as a different voice)
    shutil.copy(demo_dir / "alice" / "a06.ogg", root / "good ögg.ogg")
    expect["good ögg.ogg"] = ("ok", "", "")
    return root, expect


def _entries(out: Path) -> dict[str, dict]:
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    by_name: dict[str, dict] = {}
    for e in report["clips"]:
        by_name.setdefault(Path(e["source"]).name, e)
    return by_name


def test_messy_folder(tmp_path, messy, capsys):
    root, expect = messy
    out = tmp_path / "out"
    status = main(["run", str(root), "-o", str(out), "-q", "--jobs", "1"])
    assert status == 1  # some files errored
    entries = _entries(out)
    assert set(entries) == set(expect)
    for name, (kind, code, text) in expect.items():
        e = entries[name]
        reasons = " | ".join(e["reasons"])
        codes = [f["code"] for f in e["findings"]]
        assert sorted(e["reasons"]) == sorted(f["message"] for f in e["findings"])  # the reasons are their messages
        if code:
            assert code in codes, (name, codes)
        if kind == "error":
            assert e["verdict"] == "error", (name, e["verdict"], reasons)
            assert len(e["reasons"]) == 1 and name in e["reasons"][0] and "\n" not in e["reasons"][0]
            assert [f["severity"] for f in e["findings"]] == ["error"]
        elif kind == "ok":
            assert e["verdict"] in ("approved", "warning"), (name, e["verdict"], reasons)
            assert e["output"] and (out / e["output"]).is_file()
        elif kind == "rejected":
            assert e["verdict"] == "rejected", (name, e["verdict"], reasons)
        else:  # truncated: partial audio processed, or a clear error
            assert e["verdict"] != "error" or (name in reasons and "\n" not in reasons), reasons
        assert text in reasons, (name, reasons)
    err = capsys.readouterr().err
    for name, (kind, _, _) in expect.items():
        if kind == "error":
            assert name in err


def test_directory_passed_as_a_file(tmp_path, messy, capsys):
    root, _ = messy
    folder = tmp_path / "folder.wav"
    folder.mkdir()
    status = main(["check", str(folder), str(root / "good ögg.ogg")])
    lines = capsys.readouterr().out.strip().splitlines()
    assert status == 1
    assert lines[0].startswith("error") and "folder.wav: is a directory" in lines[0]
    assert not lines[1].startswith("error")
    out = tmp_path / "out"
    assert main(["run", str(folder), str(root / "good ögg.ogg"), "-o", str(out), "-q"]) == 1
    folder_entry = _entries(out)["folder.wav"]
    assert folder_entry["verdict"] == "error"
    assert [f["code"] for f in folder_entry["findings"]] == ["input.error"]


def test_bad_data_in_a_file_is_that_files_error_never_a_usage_error(tmp_path, capsys):
    """Sample data that trips a validator (here a 1 Hz rate reaching a stage's frame-size check, and
    all-NaN samples) is the file's ``error``/verdict with exit 1, never the usage status 2."""
    folder = tmp_path / "odd"
    folder.mkdir()
    sf.write(folder / "one_hz.wav", np.full(100, 0.1, np.float32), 1, subtype="FLOAT")
    sf.write(folder / "all_nan.wav", np.full(32000, np.nan, np.float32), 16000, subtype="FLOAT")
    status = main(["check", str(folder / "one_hz.wav"), str(folder / "all_nan.wav")])
    lines = capsys.readouterr().out.strip().splitlines()
    assert status == 1
    assert lines[0].startswith("error") and "one_hz.wav" in lines[0] and "1 Hz" in lines[0]
    assert not lines[1].startswith("error") and "NaN/Inf samples replaced" in lines[1]
    out = tmp_path / "out"
    assert main(["run", str(folder), "-o", str(out), "-q", "--jobs", "1"]) == 1
    assert _entries(out)["one_hz.wav"]["verdict"] == "error"


def test_outputs_of_odd_inputs_are_valid(tmp_path, messy):
    root, _ = messy
    out = tmp_path / "out"
    names = ["hot_float.wav", "eight_channels.wav", "hires_192k.wav", "nan_inf.wav"]
    assert main(["run", *(str(root / n) for n in names), "-o", str(out), "-q", "--jobs", "1"]) == 0
    for name, e in _entries(out).items():
        audio, rate = sf.read(str(out / e["output"]), dtype="float32")
        assert audio.ndim == 1 and np.isfinite(audio).all()
        assert np.max(np.abs(audio)) <= 1.0
        assert rate <= 48000, name


def test_exit_status_strict_and_all_good(tmp_path, messy, demo_dir):
    root, _ = messy
    good = [str(root / "good ögg.ogg")]
    assert main(["run", *good, "-o", str(tmp_path / "a"), "-q"]) == 0
    warned = [str(root / "nan_inf.wav")]
    assert main(["run", *warned, "-o", str(tmp_path / "b"), "-q"]) == 0
    assert main(["run", *warned, "-o", str(tmp_path / "c"), "-q", "--strict"]) == 1


def _read_only_dir(path: Path):
    """A folder this process cannot write to, even as root; or skip."""
    path.mkdir()
    path.chmod(0o555)
    probe = path / "probe"
    try:
        probe.write_text("x")
    except OSError:
        return None  # chmod is enough (not root)
    probe.unlink()
    if shutil.which("mount") and os.geteuid() == 0:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(path)], capture_output=True)
        if done.returncode == 0:
            return lambda: subprocess.run(["umount", str(path)], check=False)
    pytest.skip("cannot make a read-only folder here")


def test_read_only_output_folder_is_a_clear_error(tmp_path, demo_dir, capsys):
    ro = tmp_path / "ro"
    cleanup = _read_only_dir(ro)
    try:
        status = main(["run", str(demo_dir / "alice" / "a01.wav"), "-o", str(ro / "out"), "-q"])
        err = capsys.readouterr().err
        assert status == 1
        assert "not writable" in err or "Read-only" in err or "cannot" in err
        assert str(ro) in err and "Traceback" not in err
        status = main(["run", str(demo_dir / "alice" / "a01.wav"), "-o", str(ro), "-q"])
        assert status == 1
    finally:
        if cleanup:
            cleanup()


def test_output_path_that_is_a_file_is_a_usage_error(tmp_path, demo_dir, capsys):
    target = tmp_path / "file.txt"
    target.write_text("x")
    assert main(["run", str(demo_dir / "alice" / "a01.wav"), "-o", str(target), "-q"]) == 2
    assert "not a folder" in capsys.readouterr().err
