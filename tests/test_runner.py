"""Runner: executors give serial results, resume, kill -9 safety, Ctrl-C, lock."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import prep.run.profiles as profiles
from prep.cli import main
from prep.errors import ConfigError
from prep.run.longform import LongForm
from prep.run.profiles import get_profile
from prep.run.run_folder import RunFolder
from prep.run.runner import THREADS_BELOW_S, discover, plan_workers, run_jobs

# The runner is the subject here, not DNSMOS, the voice model, ASR or DeepFilterNet: its runs use the built-in
# profiles with those extras off (as without the [mos], [voice], [asr] and [enhance] extras), in this process
# and in the runs it spawns.
_LEAN = (
    "import prep.run.profiles as P\n"
    "def _lean(make):\n"
    "    return lambda: make().configure('measure_input', mos=False).configure('score', mos=False)"
    ".configure('voice', model='').configure('diarise', model='').configure('transcribe', mode='never')"
    ".configure('denoise', method='gate')\n"
    "P.PROFILES = {name: _lean(make) for name, make in P.PROFILES.items()}\n"
)
_FULL_PROFILES = dict(profiles.PROFILES)


def _lean(make):
    def lean():
        profile = make().configure("measure_input", mos=False).configure("score", mos=False)
        profile = profile.configure("voice", model="").configure("diarise", model="")
        return profile.configure("transcribe", mode="never").configure("denoise", method="gate")

    return lean


@pytest.fixture(scope="module", autouse=True)
def lean_profiles():
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(profiles, "PROFILES", {name: _lean(make) for name, make in _FULL_PROFILES.items()})
        yield


def _fingerprint(out: Path) -> dict:
    """Everything a run produced, minus timestamps: report clips and wav bytes."""
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    clips = {c["id"]: c for c in report["clips"]}
    wavs = {
        p.relative_to(out).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted((out / "clips").rglob("*.wav"))
    }
    return {"clips": clips, "wavs": wavs}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, demo_dir):
    """Demo files under several names: enough files for parallel runs and kills."""
    root = tmp_path_factory.mktemp("corpus")
    for speaker in ("alice", "bob"):
        (root / speaker).mkdir()
        for src in sorted((demo_dir / speaker).iterdir()):
            shutil.copy(src, root / speaker / src.name)
            if src.suffix in (".wav", ".mp3", ".ogg", ".m4a", ".flac", ".opus"):
                shutil.copy(src, root / speaker / f"copy {src.stem}{src.suffix}")
    return root


@pytest.fixture(scope="module")
def serial_run(tmp_path_factory, corpus):
    out = tmp_path_factory.mktemp("serial") / "out"
    assert main(["run", str(corpus), "-o", str(out), "-q", "--jobs", "1"]) == 0
    return _fingerprint(out)


def test_process_pool_equals_serial(tmp_path, corpus, serial_run):
    jobs = discover([corpus])
    stages = get_profile("fish").stages
    serial = run_jobs(jobs, stages, out_dir=tmp_path / "serial")
    with ProcessPoolExecutor(2, mp_context=get_context("spawn")) as pool:
        parallel = run_jobs(jobs, stages, out_dir=tmp_path / "pool", executor=pool)
    assert [c.to_dict() for c in parallel] == [c.to_dict() for c in serial]
    out2 = tmp_path / "cli"
    assert main(["run", str(corpus), "-o", str(out2), "-q", "--jobs", "2"]) == 0
    assert _fingerprint(out2) == serial_run


def test_process_pool_with_the_extras_equals_serial(tmp_path, demo_dir):
    """DNSMOS and the voice embedding (when installed) give the same records in worker processes."""
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("alice/a01.wav", "bob/b01.wav"):
        shutil.copy(demo_dir / name, folder / Path(name).name)
    jobs = discover([folder])
    stages = _FULL_PROFILES["fish"]().stages
    serial = run_jobs(jobs, stages, out_dir=tmp_path / "serial")
    with ProcessPoolExecutor(2, mp_context=get_context("spawn")) as pool:
        parallel = run_jobs(jobs, stages, out_dir=tmp_path / "pool", executor=pool)
    assert [c.to_dict() for c in parallel] == [c.to_dict() for c in serial]


def test_thread_pool_equals_serial(tmp_path, corpus, serial_run):
    jobs = discover([corpus])
    stages = get_profile("fish").stages
    serial = run_jobs(jobs, stages, out_dir=tmp_path / "serial")
    with ThreadPoolExecutor(2) as pool:
        parallel = run_jobs(jobs, stages, out_dir=tmp_path / "threads", executor=pool)
    assert [c.to_dict() for c in parallel] == [c.to_dict() for c in serial]
    out2 = tmp_path / "cli"
    assert main(["run", str(corpus), "-o", str(out2), "-q", "--jobs", "2", "--pool", "threads"]) == 0
    assert _fingerprint(out2) == serial_run


def test_thread_pool_cuts_a_long_file_into_pieces_run_in_parallel(tmp_path, demo_dir):
    """A long file's pieces go to the worker threads in memory (no temp files) and give the serial clips."""
    folder = tmp_path / "in"
    folder.mkdir()
    rate = 16000
    parts = [sf.read(demo_dir / name, dtype="float32", always_2d=True) for name in ("alice/a01.wav", "bob/b01.wav")]
    audio = np.concatenate([soxr_to(a.mean(axis=1), r, rate) for a, r in parts] * 2)
    sf.write(folder / "long.wav", audio, rate, subtype="PCM_16")
    long = LongForm(long_file_s=30.0, min_piece_s=8.0, max_piece_s=20.0, block_s=2.0)
    assert audio.shape[0] / rate > 40.0
    jobs = discover([folder])
    stages = get_profile("fish").stages
    serial = run_jobs(jobs, stages, out_dir=tmp_path / "serial", longform=long)
    with ThreadPoolExecutor(2) as pool:
        parallel = run_jobs(jobs, stages, out_dir=tmp_path / "threads", executor=pool, longform=long)
    assert len(serial) > 1
    assert [c.to_dict() for c in parallel] == [c.to_dict() for c in serial]
    assert not list((tmp_path / "threads").glob(".piece-*"))


def soxr_to(audio: np.ndarray, rate: int, target: int) -> np.ndarray:
    import soxr

    return soxr.resample(audio, rate, target).astype(np.float32) if rate != target else audio


def test_thread_pool_with_the_extras_equals_serial(tmp_path, demo_dir):
    """DNSMOS, the voice embedding, diarisation, DeepFilterNet and ASR (when installed) give the serial records
    and clip files in worker threads, and each model is loaded once for all threads."""
    from prep.asr import clear_model_cache, load_stats
    from prep.stages.transcribe import asr_engine

    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("alice/a01.wav", "alice/a01.txt", "bob/b01.wav"):  # with a transcript to verify, and without
        shutil.copy(demo_dir / name, folder / Path(name).name)
    jobs = discover([folder])
    profile = _FULL_PROFILES["fish"]().configure("denoise", method="deepfilter")
    stages = profile.configure("transcribe", mode="auto").stages if asr_engine() else profile.stages
    serial = run_jobs(jobs, stages, out_dir=tmp_path / "serial")
    clear_model_cache()
    with ThreadPoolExecutor(2) as pool:
        parallel = run_jobs(jobs, stages, out_dir=tmp_path / "threads", executor=pool)
    assert [c.to_dict() for c in parallel] == [c.to_dict() for c in serial]
    wavs = {
        p.relative_to(tmp_path / "serial").as_posix(): p.read_bytes() for p in (tmp_path / "serial").rglob("*.wav")
    }
    assert wavs and wavs == {
        p.relative_to(tmp_path / "threads").as_posix(): p.read_bytes() for p in (tmp_path / "threads").rglob("*.wav")
    }
    stats = load_stats()
    assert all(v["loads"] <= 1 for v in stats.values())
    if asr_engine():  # ASR ran in the threads, on one model load
        assert stats["tiny.en"]["requests"] >= len(jobs) and stats["tiny.en"]["loads"] == 1


def test_the_default_is_serial_for_small_work_and_parallel_for_big():
    long = LongForm(long_file_s=300.0, max_piece_s=120.0)
    lean = get_profile("fish").stages
    # one file, or --jobs 1: serial, whatever the cores
    assert plan_workers([20.0], jobs=None, cpus=8, longform=long, stages=lean)[:2] == (1, "serial")
    assert plan_workers([20.0] * 16, jobs=1, cpus=8, longform=long, stages=lean)[:2] == (1, "serial")
    assert "serial" in plan_workers([5.0], jobs=None, cpus=2, longform=long).reason
    # small work: threads (no worker start-up); big work: processes; never more workers than units of work
    assert plan_workers([20.0] * 16, jobs=None, cpus=8, longform=long, stages=lean)[:2] == (8, "threads")
    assert plan_workers([THREADS_BELOW_S / 8 - 0.1] * 8, jobs=None, cpus=8, longform=long)[:2] == (8, "threads")
    assert plan_workers([THREADS_BELOW_S / 8] * 8, jobs=None, cpus=8, longform=long)[:2] == (8, "processes")
    assert plan_workers([59.0] * 20, jobs=None, cpus=2, longform=long)[:2] == (2, "threads")
    assert plan_workers([60.0] * 40, jobs=None, cpus=2, longform=long)[:2] == (2, "processes")
    assert plan_workers([300.0, 300.0], jobs=None, cpus=8, longform=long)[:2] == (2, "threads")
    # one long file is several pieces: it uses every core
    plan = plan_workers([3600.0], jobs=None, cpus=4, longform=long)
    assert plan[:2] == (4, "processes") and "30 unit(s)" in plan.reason and "3600 s" in plan.reason
    # --jobs is the most the user allows, even on small work; unknown durations count as work
    assert plan_workers([20.0], jobs=4, cpus=8, longform=long)[:2] == (1, "serial")
    assert plan_workers([20.0] * 3, jobs=2, cpus=8, longform=long)[:2] == (2, "threads")
    assert plan_workers([None] * 10, jobs=None, cpus=2, longform=long)[:2] == (2, "threads")
    # --pool forces the kind of worker (not their number)
    assert plan_workers([20.0] * 3, jobs=None, cpus=2, longform=long, pool="processes")[:2] == (2, "processes")
    assert plan_workers([3600.0], jobs=None, cpus=2, longform=long, pool="threads")[:2] == (2, "threads")
    assert plan_workers([20.0], jobs=None, cpus=2, longform=long, pool="threads")[:2] == (1, "serial")


def test_speech_recognition_runs_in_threads_only_on_small_work():
    """ASR takes turns between threads (one CTranslate2 worker per process): threads on small work (the other
    stages still run beside it), processes on big work (a model per process)."""
    long = LongForm(long_file_s=300.0, max_piece_s=120.0)
    asr = _FULL_PROFILES["fish"]().configure("transcribe", mode="always", engine="faster-whisper").stages
    plan = plan_workers([20.0] * 16, jobs=None, cpus=2, longform=long, stages=asr)
    assert plan[:2] == (2, "threads") and "speech recognition" in plan.reason
    assert plan_workers([60.0] * 10, jobs=None, cpus=2, longform=long, stages=asr)[:2] == (2, "processes")
    assert plan_workers([60.0] * 10, jobs=None, cpus=2, longform=long)[:2] == (2, "threads")
    assert plan_workers([20.0] * 3, jobs=2, cpus=8, longform=long, stages=asr)[:2] == (2, "threads")
    assert plan_workers([60.0] * 10, jobs=2, cpus=8, longform=long, stages=asr, pool="threads")[:2] == (2, "threads")
    assert plan_workers([20.0] * 16, jobs=1, cpus=2, longform=long, stages=asr)[:2] == (1, "serial")
    with pytest.raises(ConfigError, match="'fibres'"):
        plan_workers([20.0], jobs=None, cpus=2, pool="fibres")


def test_the_run_logs_its_choice_with_verbose(tmp_path, demo_dir, caplog):
    import logging

    with caplog.at_level(logging.INFO):
        assert main(["run", str(demo_dir / "alice" / "a01.wav"), "-o", str(tmp_path / "out"), "-q", "-v"]) == 0
        assert main(["run", str(demo_dir / "alice"), "-o", str(tmp_path / "out2"), "-q", "-v"]) == 0
    messages = [r.getMessage() for r in caplog.records]
    assert any("1 file(s)" in m and "serial" in m for m in messages)
    assert any("threads" in m and "under" in m for m in messages)


def test_dask_local_cluster_equals_serial(tmp_path, corpus, serial_run):
    pytest.importorskip("distributed")
    out = tmp_path / "out"
    assert main(["run", str(corpus), "-o", str(out), "-q", "--engine", "dask", "--jobs", "2"]) == 0
    assert _fingerprint(out) == serial_run


def _journal_lines(out: Path) -> int:
    path = out / "manifest.jsonl"
    return len(path.read_text(encoding="utf-8").splitlines()) if path.exists() else 0


def test_resume_skips_done_files_and_config_change_redoes(tmp_path, corpus):
    out = tmp_path / "out"
    args = ["run", str(corpus / "alice"), "-o", str(out), "-q", "--jobs", "1"]
    assert main(args) == 0
    first = _fingerprint(out)
    lines = _journal_lines(out)
    assert {key[1] for key in RunFolder(out).latest_records()} == set(first["clips"])
    assert main(args) == 0  # nothing new to do
    assert _journal_lines(out) == lines
    assert _fingerprint(out)["wavs"] == first["wavs"]
    assert main([*args, "--profile", "dataset"]) == 0  # config changed: everything redone
    assert _journal_lines(out) == 2 * lines


def test_resume_redoes_a_file_whose_content_changed(tmp_path, demo_dir):
    inp = tmp_path / "in" / "spk"
    inp.mkdir(parents=True)
    shutil.copy(demo_dir / "alice" / "a01.wav", inp / "x.wav")
    shutil.copy(demo_dir / "alice" / "a06.ogg", inp / "y.ogg")
    out = tmp_path / "out"
    assert main(["run", str(inp), "-o", str(out), "-q", "--jobs", "1"]) == 0
    lines = _journal_lines(out)
    shutil.copy(demo_dir / "alice" / "a02.flac", inp / "x.wav")  # new content, same name
    assert main(["run", str(inp), "-o", str(out), "-q", "--jobs", "1"]) == 0
    assert _journal_lines(out) == lines + 1


def _spawn_run(corpus: Path, out: Path) -> subprocess.Popen:
    code = _LEAN + "import sys; from prep.cli import main; raise SystemExit(main(sys.argv[1:]))"
    return subprocess.Popen(
        [sys.executable, "-c", code, "run", str(corpus), "-o", str(out), "-q", "--jobs", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=out.parent,
        # A shell starts background jobs with SIGINT ignored, and Python keeps an ignored SIGINT so: the run
        # gets the default (KeyboardInterrupt), as when started from a terminal.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def _wait_for_lines(proc: subprocess.Popen, out: Path, lines: int, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while _journal_lines(out) < lines:
        if proc.poll() is not None:
            pytest.fail(f"run ended before it could be interrupted: {proc.communicate()}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("run made no progress")
        time.sleep(0.02)


def test_sigkill_mid_run_leaves_no_partial_clip_and_resumes_to_same_result(tmp_path, corpus, serial_run):
    out = tmp_path / "out"
    proc = _spawn_run(corpus, out)
    _wait_for_lines(proc, out, 3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert _journal_lines(out) < len(serial_run["clips"]), "the kill came too late to test anything"
    for wav in (out / "clips").rglob("*.wav"):
        info = sf.info(str(wav))  # every file under a final name is complete
        data, _ = sf.read(str(wav))
        assert len(data) == info.frames > 0
    # a resumed run finishes the job and equals an uninterrupted one
    assert main(["run", str(corpus), "-o", str(out), "-q", "--jobs", "1"]) == 0
    assert _fingerprint(out) == serial_run
    assert not list(out.rglob("*.tmp"))


def test_ctrl_c_stops_cleanly_with_summary(tmp_path, corpus):
    out = tmp_path / "out"
    proc = _spawn_run(corpus, out)
    _wait_for_lines(proc, out, 2)
    proc.send_signal(signal.SIGINT)
    _stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr and "resume" in stderr
    assert "Traceback" not in stderr
    assert not (out / ".voiceprep.lock").exists(), "the lock is released on Ctrl-C"
    for line in (out / "manifest.jsonl").read_text(encoding="utf-8").splitlines():
        json.loads(line)


def test_second_run_into_same_output_is_refused(tmp_path, demo_dir, capsys):
    out = tmp_path / "out"
    out.mkdir()
    lock = out / ".voiceprep.lock"
    assert RunFolder(out).lock_file == lock
    lock.write_text(str(os.getpid()))  # a live process holds it
    assert main(["run", str(demo_dir / "alice" / "a01.wav"), "-o", str(out), "-q"]) == 1
    assert "another voiceprep run" in capsys.readouterr().err
    lock.write_text("999999999")  # stale: that process is gone
    assert main(["run", str(demo_dir / "alice" / "a01.wav"), "-o", str(out), "-q"]) == 0
    assert not lock.exists()


class _RecordingExecutor(Executor):
    """Runs each call in-process at submit, remembering the order of the files (a parallel executor's API)."""

    def __init__(self) -> None:
        self.order: list[str] = []

    def submit(self, fn, /, *args, **kwargs):
        self.order.append(Path(args[0].path).name)
        future: Future = Future()
        future.set_result(fn(*args, **kwargs))
        return future


def test_parallel_runs_start_with_the_longest_files(tmp_path, monkeypatch, formats_dir):
    import prep.run.runner as runner
    from prep.run.decode import probe

    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(formats_dir / "opus.opus", folder / "long.opus")  # small file, long audio
    rate = 48000
    seconds = probe(folder / "long.opus").duration_s / 3
    sf.write(folder / "short.wav", np.zeros((round(seconds * rate), 2), np.float32), rate, subtype="FLOAT")
    assert (folder / "short.wav").stat().st_size > 5 * (folder / "long.opus").stat().st_size
    jobs = discover([folder])
    by_duration = _RecordingExecutor()
    run_jobs(jobs, [], out_dir=tmp_path / "a", executor=by_duration)
    assert by_duration.order == ["long.opus", "short.wav"]
    monkeypatch.setattr(runner, "PROBE_TO_ORDER_MAX_FILES", 1)  # too many files to probe: by size
    by_size = _RecordingExecutor()
    run_jobs(jobs, [], out_dir=tmp_path / "b", executor=by_size)
    assert by_size.order == ["short.wav", "long.opus"]


def test_the_resume_key_includes_the_voiceprep_version(tmp_path, monkeypatch):
    import prep

    src = tmp_path / "in" / "spk"
    src.mkdir(parents=True)
    sf.write(src / "x.wav", 0.1 * np.sin(2 * np.pi * 220 * np.arange(8000) / 8000), 8000)
    out = tmp_path / "out"
    jobs = discover([src])

    def journaled() -> int:
        return len((out / "manifest.jsonl").read_text(encoding="utf-8").splitlines())

    monkeypatch.setattr(prep, "__version__", "1.0.0")
    run_jobs(jobs, [], out_dir=out)
    assert journaled() == 1
    run_jobs(jobs, [], out_dir=out)
    assert journaled() == 1, "the same version resumes"
    monkeypatch.setattr(prep, "__version__", "1.0.1")
    run_jobs(jobs, [], out_dir=out)
    assert journaled() == 2, "an upgraded voiceprep redoes the file"
    run_jobs(jobs, [], out_dir=out)
    assert journaled() == 2


def test_heap_free_bytes_counts_freed_heap_memory() -> None:
    """The trim between pieces is decided on the heap's free bytes: freeing 80 MB of heap blocks must show."""
    from prep.run.runner import _heap_free_bytes

    if _heap_free_bytes() is None:
        pytest.skip("glibc >= 2.33 only (mallinfo2)")
    blocks = [bytes(4000) for _ in range(20000)]  # above pymalloc's 512 B and below mmap's threshold: the heap
    fence = bytes(4000)  # keeps the freed blocks from merging into the heap's top, which free() gives back
    before = _heap_free_bytes()
    del blocks
    after = _heap_free_bytes()
    assert after - before >= 60 * 2**20
    del fence


def test_clip_files_are_synced_before_their_record_is_journaled(tmp_path, demo_dir, monkeypatch):
    """Workers write without fsync; the journaling process syncs each clip's files before its line."""
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(demo_dir / "alice" / "a01.wav", folder / "a01.wav")
    out = tmp_path / "out"
    events: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        events.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    clips = run_jobs(discover([folder]), get_profile("fish").stages, out_dir=out)
    written = [c for c in clips if c.output]
    assert written
    journal = str((out / "manifest.jsonl").resolve())
    first_journal = events.index(journal)
    for clip in written:
        folder = RunFolder(out)
        for path in (folder.output_path(clip.output), folder.plot_path(clip.speaker, clip.id),
                     folder.preview_path(clip.speaker, clip.id)):
            synced = [i for i, name in enumerate(events) if name == str(path.resolve())]
            assert synced, f"{path} never synced"
            assert synced[0] < first_journal, f"{path} synced after the journal line"
    assert not any(name.endswith(".tmp") for name in events), "a worker waited for the disk on a temp file"
