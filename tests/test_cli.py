"""End-to-end: the CLI on the bundled demo set and on bad inputs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf

from prep.cli import main
from prep.clip import file_sha256
from prep.run.run_folder import RunFolder

DEMO_SOURCES = 11  # files in fixtures/demo (see fixtures/truth.json)


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    demo = Path(__file__).resolve().parent.parent / "fixtures" / "demo"
    before = {p: file_sha256(p) for p in demo.rglob("*") if p.is_file()}
    out = tmp_path_factory.mktemp("run") / "out"
    status = main(["run", str(demo), "-o", str(out), "-q", "--jobs", "1"])
    after = {p: file_sha256(p) for p in demo.rglob("*") if p.is_file()}
    assert before == after, "inputs must never be modified"
    return status, out


def test_run_on_demo_writes_clips_manifest_and_report(demo_run, truth):
    status, out = demo_run
    assert status == 0
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    entries = report["clips"]
    sources = {Path(e["source"]).relative_to(Path(e["source"]).parents[1]).as_posix() for e in entries}
    assert sources == {k for k in truth if not truth[k].get("corrupt")}
    assert len(sources) == DEMO_SOURCES
    for e in entries:
        for key in ("id", "source", "speaker", "output", "input", "metrics", "verdict", "reasons", "findings"):
            assert key in e, key
        assert e["verdict"] in ("approved", "warning", "rejected")
        for f in e["findings"]:
            assert set(f) == {"code", "severity", "metric", "value", "threshold", "message"}
        assert sorted(e["reasons"]) == sorted(f["message"] for f in e["findings"])
        assert set(e["input"]) >= {"format", "codec", "sample_rate", "channels", "duration_s"}
        assert e["speaker"] == Path(e["source"]).parent.name
        if e["output"]:
            wav = out / e["output"]
            assert wav.parent.name == e["speaker"] and wav.name == f"{e['id']}.wav"
            info = sf.info(str(wav))
            assert info.subtype == "PCM_16" and info.channels == 1
    journal = RunFolder(out).read_journal()
    assert (out / "manifest.jsonl").is_file()
    assert {r.clip.id for r in journal} == {e["id"] for e in entries}
    assert not list(out.rglob("*.tmp")), "no temp files left behind"


def test_run_records_input_facts_from_the_real_files(demo_run, truth):
    _, out = demo_run
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    by_name = {Path(e["source"]).name: e for e in report["clips"]}
    assert by_name["b01.wav"]["input"]["channels"] == 2
    assert by_name["b01.wav"]["input"]["sample_rate"] == 16000
    assert by_name["b01.wav"]["metrics"]["downmix_mode"] == "polarity_corrected"
    assert "downmix.inverted" in {f["code"] for f in by_name["b01.wav"]["findings"]}
    assert by_name["a04.m4a"]["input"]["codec"] == "aac"
    assert by_name["a05.opus"]["input"]["codec"] == "opus"
    assert by_name["a03.mp3"]["input"]["codec"] == "mp3"
    assert by_name["a01.wav"]["transcript"] == truth["alice/a01.wav"]["transcript"]
    assert by_name["b04.m4a"]["transcript"] == truth["bob/b04.m4a"]["transcript"]  # from metadata.csv


def test_bad_inputs_get_error_verdicts_while_others_process(tmp_path, demo_dir, fixtures_dir, capsys):
    inp = tmp_path / "in" / "carol"
    inp.mkdir(parents=True)
    shutil.copy(demo_dir / "alice" / "a03.mp3", inp / "good one.mp3")
    shutil.copy(fixtures_dir / "bad" / "corrupt.mp3", inp / "corrupt.mp3")
    (inp / "notes.wav").write_text("not audio at all\n")
    (inp / "empty.flac").write_bytes(b"")
    out = tmp_path / "out"
    status = main(["run", str(inp), "-o", str(out), "-q", "--jobs", "1"])
    assert status == 1
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    by_name = {Path(e["source"]).name: e for e in report["clips"]}
    assert by_name["good one.mp3"]["verdict"] != "error"
    assert (out / by_name["good one.mp3"]["output"]).is_file()
    expected = {
        "corrupt.mp3": ("decode.error", "not a readable audio file"),
        "notes.wav": ("decode.error", "not a readable audio file"),
        "empty.flac": ("decode.error", "empty file"),
    }
    for name, (code, cause) in expected.items():
        entry = by_name[name]
        assert entry["verdict"] == "error"
        assert [(f["code"], f["severity"]) for f in entry["findings"]] == [(code, "error")]
        assert len(entry["reasons"]) == 1 and name in entry["reasons"][0] and cause in entry["reasons"][0]
        assert "\n" not in entry["reasons"][0]
    err = capsys.readouterr().err
    assert err.count("error") >= 4 and "corrupt.mp3" in err


def test_speaker_option_overrides_folder_name(tmp_path, demo_dir):
    out = tmp_path / "out"
    assert main(["run", str(demo_dir / "alice" / "a01.wav"), "-o", str(out), "--speaker", "narrator", "-q"]) == 0
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert [e["speaker"] for e in report["clips"]] == ["narrator"]
    assert (out / "clips" / "narrator").is_dir()


def test_check_prints_one_line_per_file_and_writes_nothing(tmp_path, demo_dir, fixtures_dir, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    files = [demo_dir / "alice" / "a01.wav", demo_dir / "bob" / "b05.ogg", fixtures_dir / "bad" / "corrupt.mp3"]
    status = main(["check", *map(str, files)])
    lines = capsys.readouterr().out.strip().splitlines()
    assert status == 1
    assert len(lines) == 3
    assert lines[0].split()[0] in ("approved", "warning", "rejected") and "a01.wav" in lines[0]
    assert lines[2].startswith("error") and "corrupt.mp3" in lines[2]
    assert main(["check", "--json", *map(str, files[:2])]) == 0
    objs = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert [Path(o["source"]).name for o in objs] == ["a01.wav", "b05.ogg"]
    assert all(o["verdict"] in ("approved", "warning", "rejected") for o in objs)
    assert all(sorted(o["reasons"]) == sorted(f["message"] for f in o["findings"]) for o in objs)
    assert "downmix.inverted" not in {f["code"] for o in objs for f in o["findings"]}  # both sources are mono
    assert list(tmp_path.iterdir()) == []


def test_usage_errors_exit_2(tmp_path, capsys):
    assert main(["run", str(tmp_path), "-o", str(tmp_path / "o"), "--profile", "nope"]) == 2
    assert "unknown profile 'nope'" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["run", str(empty), "-o", str(tmp_path / "o")]) == 2
    with pytest.raises(SystemExit) as info:
        main(["run"])
    assert info.value.code == 2


def test_an_unreachable_dask_scheduler_is_its_own_error_not_a_usage_error(tmp_path, demo_dir, capsys, monkeypatch):
    distributed = pytest.importorskip("distributed")

    def refuse(address, **kwargs):
        raise OSError(f"Timed out trying to connect to {address} after 20 s")

    monkeypatch.setattr(distributed, "Client", refuse)
    addr = "tcp://10.255.255.1:8786"
    args = ["run", str(demo_dir / "alice" / "a01.wav"), "-o", str(tmp_path / "o"), "-q", "--engine", "dask"]
    assert main([*args, "--scheduler", addr]) == 1
    err = capsys.readouterr().err
    assert f"cannot reach the dask scheduler at {addr}: Timed out" in err and err.count("\n") == 1


def test_a_corrupt_metadata_file_is_named_and_the_run_goes_on(tmp_path, demo_dir, caplog):
    src = tmp_path / "in" / "alice"
    src.mkdir(parents=True)
    shutil.copy(demo_dir / "alice" / "a01.wav", src / "a01.wav")
    (src / "metadata.jsonl").write_text('{"path": "a01.wav", "text": "hi"}\n{broken\n', encoding="utf-8")
    out = tmp_path / "out"
    assert main(["run", str(src), "-o", str(out), "-q", "--jobs", "1"]) == 0
    problems = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any(f"{src / 'metadata.jsonl'}:2: invalid JSON line" in m for m in problems), problems
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert [Path(c["source"]).name for c in report["clips"]] == ["a01.wav"]


def test_console_script_and_module_entry_points(tmp_path, demo_dir):
    exe = shutil.which("voiceprep", path=os.path.dirname(sys.executable))
    assert exe, "voiceprep console script must be installed beside the interpreter"
    done = subprocess.run([exe, "--version"], capture_output=True, text=True, check=True)
    assert done.stdout.startswith("voiceprep ")
    done = subprocess.run(
        [sys.executable, "-m", "prep", "check", str(demo_dir / "alice" / "a06.ogg")],
        capture_output=True, text=True, cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "a06.ogg" in done.stdout
    # the process entry (gc settings, then exit) keeps main's exit status and messages
    done = subprocess.run([sys.executable, "-m", "prep", "run", str(tmp_path / "missing.wav"), "-o", "out"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 2 and "missing.wav: no such file" in done.stderr


def test_workers_draw_the_report_figures_once(demo_run):
    import base64

    _, out = demo_run
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    html = (out / "report.html").read_text(encoding="utf-8")
    drawn = 0
    for e in report["clips"]:
        if not e["output"]:
            continue
        plot = out / "plots" / e["speaker"] / f"{e['id']}.jpg"
        assert plot.read_bytes()[:3] == b"\xff\xd8\xff", "a JPEG"
        assert base64.b64encode(plot.read_bytes()).decode("ascii") in html  # embedded, not redrawn
        drawn += 1
    assert drawn == sum(1 for e in report["clips"] if e["output"]) > 0


def test_importing_the_command_line_does_not_load_numpy():
    # `voiceprep run` starts its worker pool before any heavy import; `import prep` must stay light,
    # and the record types still resolve on first use.
    code = (
        "import sys, prep.cli; heavy = [m for m in ('numpy', 'numba', 'scipy') if m in sys.modules]; "
        "from prep import Clip; print(heavy, Clip.__module__)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["[]", "prep.clip"]


def test_a_runs_parent_does_not_load_numba_or_scipy():
    # The parent of a run with workers loads the profile, plans, probes and cuts long files: it never runs a
    # kernel, so numba (its import and CPU target: ~0.4 s and ~27 MB) and SciPy's packages stay out of it.
    code = (
        "import sys\n"
        "from prep.run.profiles import get_profile\n"
        "from prep.run.runner import discover, plan_workers, probe_durations, run_jobs\n"
        "from prep.run.longform import OnePass\n"
        "for name in ('fish', 'dataset'):\n"
        "    get_profile(name)\n"
        "print(sorted(m for m in ('numba', 'scipy', 'llvmlite') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def _plan_with_starts(tmp_path, monkeypatch, argv, durations_s):
    """``cli._plan_run`` on real WAV files of ``durations_s``; returns its plan, the headers read when the fork
    server was started (None: never) and the plan of all the headers read at once."""
    import numpy as np

    import prep.cli as cli
    import prep.run.runner as runner
    from prep.run.profiles import get_profile
    from prep.run.runner import discover, plan_workers, probe_durations

    folder = tmp_path / "in"
    folder.mkdir(parents=True)
    for k, seconds in enumerate(durations_s):
        sf.write(folder / f"f{k:02d}.wav", np.zeros(int(seconds * 8000), np.float32), 8000)
    read: list[str] = []
    probe = runner.probe
    monkeypatch.setattr(runner, "probe", lambda path: (read.append(path), probe(path))[1])
    started: list[int] = []
    monkeypatch.setattr(cli, "_start_workers_early", lambda args, workers, stages=(): started.append(len(read)))
    args = cli.build_parser().parse_args(["run", str(folder), "-o", str(tmp_path / "out"), *argv])
    jobs = discover([str(folder)])
    profile = get_profile("fish")
    plan = cli._plan_run(args, jobs, profile)
    assert len(read) == len(durations_s), "each header is read once"
    whole = plan_workers(probe_durations(jobs), jobs=args.jobs, cpus=os.cpu_count() or 1,
                         longform=profile.longform, stages=profile.stages, pool=args.pool)
    assert len(started) <= 1
    return plan, (started[0] if started else None), (whole.workers, whole.pool)


def test_a_process_pool_starts_as_soon_as_the_headers_settle_it(tmp_path, monkeypatch):
    # --pool processes with 2 workers: settled once 2 files are known; the other 6 headers are read while
    # the fork server warms up
    plan, started_at, whole = _plan_with_starts(tmp_path, monkeypatch, ["--jobs", "2", "--pool", "processes"],
                                                [0.5] * 8)
    assert plan == whole == (2, "processes")
    assert started_at == 2


def test_the_default_pool_starts_once_the_audio_read_so_far_crosses_its_threshold(tmp_path, monkeypatch):
    import prep.run.runner as runner

    monkeypatch.setattr(runner, "THREADS_BELOW_S", 2.5)  # processes from 2.5 s of audio: the 3rd 1 s file
    plan, started_at, whole = _plan_with_starts(tmp_path, monkeypatch, ["--jobs", "2"], [1.0] * 7)
    assert plan == whole == (2, "processes")
    assert started_at == 3


def test_threads_and_serial_runs_start_no_fork_server(tmp_path, monkeypatch):
    plan, started_at, whole = _plan_with_starts(tmp_path, monkeypatch, ["--jobs", "2"], [0.5] * 4)
    assert plan == whole == (2, "threads") and started_at is None
    plan, started_at, whole = _plan_with_starts(tmp_path / "one", monkeypatch, ["--jobs", "1"], [0.5] * 3)
    assert plan == whole == (1, "serial") and started_at is None
