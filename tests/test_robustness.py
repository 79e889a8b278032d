"""New-user robustness (issue 16): run folders inside inputs, missing inputs, interrupts, resume notes,
``-v`` placement, closed pipes, slice spans in ``check`` and export's skip counts."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf
from findings_helpers import findings_for

from prep.cli import build_parser, main
from prep.clip import Clip
from prep.io import write_wav_atomic
from prep.report.summary import build_report, write_report_json
from prep.run.run_folder import RunFolder


def _inputs(tmp_path: Path, demo_dir: Path, names=("a01.wav", "a03.mp3")) -> Path:
    inp = tmp_path / "in" / "alice"
    inp.mkdir(parents=True)
    for name in names:
        shutil.copy(demo_dir / "alice" / name, inp / name)
    return inp


def _report(out: Path) -> dict:
    return json.loads(RunFolder(out).report_json.read_text(encoding="utf-8"))


def test_an_output_folder_inside_the_input_is_not_read_again(tmp_path, demo_dir, caplog):
    inp = _inputs(tmp_path, demo_dir)
    out = inp / "out"
    assert main(["run", str(inp), "-o", str(out), "-q", "--jobs", "1"]) == 0
    first = sorted(c["id"] for c in _report(out)["clips"])
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert main(["run", str(inp), "-o", str(out), "-q", "--jobs", "1"]) == 0
    assert sorted(c["id"] for c in _report(out)["clips"]) == first
    assert all(not c["source"].startswith(str(out)) for c in _report(out)["clips"])
    skipped = [r.getMessage() for r in caplog.records if "voiceprep output folder" in r.getMessage()]
    assert len(skipped) == 1 and str(out) in skipped[0]


def test_a_missing_input_is_a_usage_error_and_creates_nothing(tmp_path, demo_dir, capsys):
    inp = _inputs(tmp_path, demo_dir, names=("a01.wav",))
    gone = tmp_path / "no" / "such.wav"
    out = tmp_path / "out"
    assert main(["run", str(inp), str(gone), "-o", str(out), "-q", "--jobs", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(gone) in err and "no such file or folder" in err
    assert not out.exists()
    assert main(["check", str(gone)]) == 2
    assert str(gone) in capsys.readouterr().err


def test_verbose_is_accepted_before_and_after_the_subcommand():
    parser = build_parser()
    assert parser.parse_args(["run", "-v", "in", "-o", "out"]).verbose is True
    assert parser.parse_args(["-v", "check", "f.wav"]).verbose is True
    assert parser.parse_args(["check", "f.wav", "--verbose"]).verbose is True
    assert parser.parse_args(["check", "f.wav"]).verbose is False


def test_a_closed_stdout_pipe_ends_check_quietly(demo_dir):
    files = [demo_dir / "alice" / name for name in ("a01.wav", "a06.ogg", "a02.flac", "a03.mp3")]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}  # each line is written at once, as to a terminal
    proc = subprocess.Popen([sys.executable, "-m", "prep", "check", "--json", *map(str, files)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    first = proc.stdout.readline()
    proc.stdout.close()  # `| head -1`
    err = proc.stderr.read().decode()
    proc.wait(timeout=120)
    assert json.loads(first)["source"].endswith("a01.wav")
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
    assert proc.returncode == 141


def test_check_shows_each_slice_span_of_a_long_file(tmp_path, demo_dir, capsys):
    audio, rate = sf.read(demo_dir / "alice" / "a01.wav", dtype="float32")
    pause = np.zeros(int(0.8 * rate), np.float32)
    long = tmp_path / "long.wav"
    sf.write(long, np.concatenate([audio, pause] * 4), rate)
    assert main(["check", "--json", str(long)]) in (0, 1)
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(records) >= 2, "the file is sliced"
    main(["check", str(long)])
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(records) and len(set(lines)) == len(lines)
    for line, record in zip(lines, records, strict=True):
        start, end = record["span_s"]
        assert f"{start:.1f}–{end:.1f} s" in line


def test_export_with_nothing_approved_counts_each_cause_and_names_the_flags(tmp_path, capsys):
    out = tmp_path / "out"
    specs = [("w1", "warning", "a"), ("w2", "warning", "b"), ("w3", "warning", None), ("r1", "rejected", "c"),
             ("e1", "error", "d"), ("t1", "approved", None), ("t2", "approved", None), ("gone", "approved", "e")]
    clips = []
    for cid, verdict, text in specs:
        rel = None if verdict == "error" else f"clips/s/{cid}.wav"
        if rel and cid != "gone":
            write_wav_atomic(out / rel, np.full(1600, 0.1, np.float32), sample_rate=16000)
        clips.append(Clip(id=cid, source=f"{cid}.wav", source_sha256="0" * 64, speaker="s", sample_rate=16000,
                          transcript=text, span_s=(0.0, 0.1), n_samples=1600, findings=findings_for(verdict),
                          output=rel))
    write_report_json(build_report(clips, profile="test"), out)
    assert main(["export", str(out), "--format", "ljspeech", "-d", str(tmp_path / "d")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert "8 skipped" in err
    assert "not approved: 3 warning / 1 rejected / 1 error" in err
    assert "no transcript: 2" in err and "file missing: 1" in err
    assert "--include-warning" in err and "--allow-missing-text" in err
    assert main(["export", str(out), "--format", "ljspeech", "-d", str(tmp_path / "d"), "--include-warning"]) == 0
    printed = capsys.readouterr().out
    assert "skipped 6 (not approved: 1 rejected / 1 error; no transcript: 3; file missing: 1;" in printed
    assert "--include-warning" not in printed and "--allow-missing-text" in printed


def test_resume_says_what_it_skips_and_what_a_changed_config_redoes(tmp_path, demo_dir, capsys):
    inp = _inputs(tmp_path, demo_dir)
    out = tmp_path / "out"
    run = ["run", str(inp), "-o", str(out), "--jobs", "1"]
    assert main(run) == 0
    assert "resuming" not in capsys.readouterr().err
    assert main(run) == 0
    err = capsys.readouterr().err
    assert "resuming: 2 file(s) already done" in err and "skipped" in err
    assert "changed" not in err
    assert main([*run, "--profile", "dataset"]) == 0
    err = capsys.readouterr().err
    assert "the profile or config changed" in err and "2 file(s) done then are redone" in err
    assert "resuming" not in err


def _clip_files(out: Path) -> dict[str, str]:
    return {p.relative_to(out).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((out / "clips").glob("*/*.wav"))}


def test_sigterm_stops_like_ctrl_c_with_a_partial_report_and_resumes_to_the_same_result(tmp_path, demo_dir):
    inp = tmp_path / "in" / "alice"
    inp.mkdir(parents=True)
    for k in range(2):
        for src in sorted((demo_dir / "alice").glob("a0*")):
            if src.suffix != ".txt":
                shutil.copy(src, inp / f"{src.stem}_{k}{src.suffix}")
    ref, out = tmp_path / "ref", tmp_path / "out"
    run = ["run", str(inp), "-q", "--jobs", "2"]
    assert main([*run, "-o", str(ref)]) == 0

    proc = subprocess.Popen([sys.executable, "-m", "prep", *run, "-o", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    journal = RunFolder(out).manifest
    deadline = time.monotonic() + 120
    while not (journal.is_file() and journal.read_bytes().count(b"\n")) and time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr, stderr
    report = _report(out)
    assert report["partial"] is True
    assert "Partial report" in RunFolder(out).report_html.read_text(encoding="utf-8")
    listed = {r.clip.output for r in RunFolder(out).read_journal() if r.clip.output}
    assert set(_clip_files(out)) <= listed
    assert len(report["clips"]) < len(_report(ref)["clips"]), "stopped mid-run"
    assert not RunFolder(out).lock_file.exists()

    assert main([*run, "-o", str(out)]) == 0
    resumed = _report(out)
    assert resumed["partial"] is False
    assert [(c["id"], c["verdict"], c["output"]) for c in resumed["clips"]] == [
        (c["id"], c["verdict"], c["output"]) for c in _report(ref)["clips"]]
    assert _clip_files(out) == _clip_files(ref)
