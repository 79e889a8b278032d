#!/usr/bin/env python3
"""Whole pipeline x-realtime vs two librosa + noisereduce + pyloudnorm baselines; serial vs parallel; start-up;
time per stage.

Inputs, made from real speech and noise (../shared/corpus when present, the
demo fixtures otherwise), compressed formats encoded with PyAV (FFmpeg's
libraries), in a temporary folder:

* a 6-minute mixed set: wav, flac, mp3, m4a, opus; 15-40 s files (the issue's set);
* a 10-minute set: wav, flac, mp3, m4a, ogg, opus; mono and stereo; 16-48 kHz;
* a 2-hour batch: the 10-minute set plus more files of the same kinds.

Ours: ``voiceprep run IN -o OUT`` (fish profile, denoise on) with the default
options (the runner picks serial or parallel), ``--jobs 1`` and ``--jobs 2``,
**model-free**: DNSMOS and the voice embedding are configured off
(:mod:`benchmarks._lean`), as without the ``[mos]`` and ``[voice]`` extras.
Baselines, one file at a time: *A* librosa load (resample to 44.1 kHz mono),
noisereduce (default, non-stationary), pyloudnorm (to -23 LUFS, peak-limited
by scaling), soundfile (16-bit); *B* the same with ``librosa.effects.trim``
and noisereduce ``stationary=True``.  librosa cannot read m4a here (no ffmpeg
binary for audioread): the baselines then decode with PyAV and resample with
librosa (soxr_hq, as librosa.load does).  Marginal throughput = extra audio
over extra wall time (batch minus 10-minute set), each command on the same
machinery on both sets (``--jobs 1``: serial; ``--jobs 2 --pool processes``:
two worker processes), so start-up cancels.  The CPU time of every process
of the ``--jobs 1`` and ``--jobs 2 --pool processes`` runs on those two sets is
sampled too: 2 x the batch's extra CPU in one process over its extra CPU in
the pool is the scaling 2 workers would give with both cores always busy,
a figure a busy machine barely moves.  Also
``voiceprep check`` on a 20 s clip, and an in-process table of time per stage
on the 10-minute set, model-free and with the extras.

    python benchmarks/pipeline.py [--repeats 3] [--batch-minutes 120]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks._audio import program
from benchmarks._encode import encode
from benchmarks._lean import LEAN_CLI
from benchmarks._results import write_section

ROOT = Path(__file__).resolve().parent.parent

#: (ending, rate, channels, bit rate) of the 10-minute set and the batch
FORMATS = [
    (".wav", 44100, 1, None),
    (".flac", 48000, 2, None),
    (".mp3", 44100, 2, 128000),
    (".m4a", 48000, 1, 128000),
    (".ogg", 22050, 1, None),
    (".opus", 48000, 1, 64000),
    (".wav", 16000, 1, None),
]
#: the 6-minute mixed set (the issue's formats)
MIXED_FORMATS = [
    (".wav", 44100, 1, None),
    (".flac", 48000, 2, None),
    (".mp3", 44100, 2, 128000),
    (".m4a", 48000, 1, 128000),
    (".opus", 48000, 1, 64000),
]

_BASELINE = r"""
import sys, pathlib, warnings
warnings.simplefilter("ignore")
import librosa, noisereduce, pyloudnorm, numpy as np, soundfile as sf
VARIANT = {variant!r}
*sources, dst = [pathlib.Path(a) for a in sys.argv[1:]]
dst.mkdir(parents=True, exist_ok=True)

def load(path):
    try:
        return librosa.load(path, sr=44100, mono=True)
    except Exception:  # m4a: librosa's audioread fallback needs an ffmpeg binary
        import av
        with av.open(str(path)) as c:
            s = c.streams.audio[0]
            rate = s.codec_context.sample_rate
            r = av.AudioResampler(format="flt", layout="mono", rate=rate)
            y = np.concatenate([f.to_ndarray()[0] for fr in c.decode(s) for f in r.resample(fr)])
        return librosa.resample(y, orig_sr=rate, target_sr=44100), 44100

for path in sorted(p for src in sources for p in src.iterdir()):
    y, sr = load(path)
    if VARIANT == "B":
        y, _ = librosa.effects.trim(y, top_db=30)
        y = noisereduce.reduce_noise(y=y, sr=sr, stationary=True)
    else:
        y = noisereduce.reduce_noise(y=y, sr=sr)
    meter = pyloudnorm.Meter(sr)
    lufs = meter.integrated_loudness(y)
    y = pyloudnorm.normalize.loudness(y, lufs, -23.0)
    peak = np.max(np.abs(y))
    if peak > 0.89:
        y = y * (0.89 / peak)
    sf.write(dst / (path.parent.parent.name + "-" + path.stem + ".wav"), y, sr, subtype="PCM_16")
"""
#: The command whose marginal throughput is the 2-worker one: a process pool on every set.  With the default
#: pool the runner picks threads under 20 minutes of audio and processes above (`runner.plan_workers`), so
#: the 10-minute set and the batch would run on different pools and their difference would not cancel the
#: start-up.
PROCESSES = "voiceprep run --jobs 2 --pool processes"
#: The commands whose runs' CPU time is sampled too (10-minute set and batch), for a CPU-bound estimate of the
#: marginal scaling that a busy machine does not change much.
CPU_TIMED = ("voiceprep run --jobs 1", PROCESSES)
BASELINE_A = _BASELINE.format(variant="A")
BASELINE_B = _BASELINE.format(variant="B")


def make_inputs(folder: Path, minutes: float, *, seed: int = 7, formats=FORMATS) -> float:
    """Write clips of 15-40 s in rotating formats until ``minutes`` are reached; returns seconds."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    total, k = 0.0, 0
    while total < minutes * 60:
        ext, rate, channels, bit_rate = formats[k % len(formats)]
        seconds = float(rng.uniform(15, 40))
        mono = program(seconds, rate, seed=100 * seed + k, snr_db=float(rng.uniform(5, 30)))
        audio = np.stack([mono, 0.9 * np.roll(mono, 10)]) if channels == 2 else mono[None]
        dst = folder / f"clip{k:03d}{ext}"
        if ext == ".wav":
            sf.write(dst, audio.T, rate, subtype="PCM_16")
        else:
            encode(dst, audio, rate, bit_rate=bit_rate)
        total += seconds
        k += 1
    return total


# Python as users run it: with its bytecode cache (pip compiles an installed package; a sandbox
# may set PYTHONDONTWRITEBYTECODE, which would recompile the checkout's modules on every start).
_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
_ENV["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])


def timed(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=_ENV)
    wall = time.perf_counter() - t0
    if done.returncode not in (0, 1):
        raise SystemExit(f"{cmd[:3]} failed: {done.stderr[-2000:]}")
    return wall


def _machine_busy() -> tuple[int, int]:
    """(busy, all) jiffies of the whole machine so far (``/proc/stat``; idle and iowait count as not busy)."""
    with open("/proc/stat") as fh:
        ticks = [int(x) for x in fh.readline().split()[1:]]
    return sum(ticks) - ticks[3] - ticks[4], sum(ticks)


def _sample_tree(pid: int, cpu: dict[int, tuple[int, float]]) -> None:
    """Set ``cpu[p]`` = (depth below ``pid``, user + system CPU s) for ``pid`` and each descendant ``p``.

    Walks ``/proc/P/task/T/children`` (a few reads per process, not a scan of every process on the machine).
    """
    todo = [(pid, 0)]
    while todo:
        p, depth = todo.pop()
        try:
            with open(f"/proc/{p}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            cpu[p] = (depth, (int(fields[11]) + int(fields[12])) / _TICK)
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as fh:
                    todo.extend((int(k), depth + 1) for k in fh.read().split())
        except (OSError, IndexError, ValueError):
            continue


_TICK = os.sysconf("SC_CLK_TCK")


def timed_cpu(cmd: list[str]) -> tuple[float, float, float]:
    """Wall time, CPU seconds of every process of the run, and the machine's busy fraction during it.

    The run's own process is timed exactly (``RUSAGE_CHILDREN``); its fork server and workers, which it
    does not wait for, from their last ``/proc/PID/stat`` sample (every 0.1 s: a worker is idle at its end,
    waiting to be shut down).  The busy fraction counts every user of the machine: 1.0 with both cores busy.
    """
    busy0, all0 = _machine_busy()
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=_ENV)
    cpu: dict[int, tuple[int, float]] = {}  # pid -> (depth below the run's process, CPU s): last seen
    while proc.poll() is None:
        _sample_tree(proc.pid, cpu)
        time.sleep(0.1)
    wall = time.perf_counter() - t0
    stderr = proc.communicate()[1]
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy1, all1 = _machine_busy()
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{cmd[:3]} failed: {stderr[-2000:]}")
    own = r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime
    return wall, own + sum(c for d, c in cpu.values() if d > 0), (busy1 - busy0) / max(1, all1 - all0)


def _check_output(out: Path, n_inputs: int, *, voiceprep: bool) -> None:
    """A timed run must have done the whole job (a fast run that skipped files would flatter it)."""
    if voiceprep:
        sources = {json.loads(line)["source"] for line in (out / "manifest.jsonl").read_text().splitlines()}
        done = len(sources)
    else:
        done = len(list(out.iterdir()))
    if done != n_inputs:
        raise SystemExit(f"{out}: {done} of {n_inputs} inputs processed")


def default_pool(inputs: list[Path], *, jobs: int) -> str:
    """The pool ``voiceprep run --jobs JOBS`` picks for ``inputs`` (``runner.plan_workers``, lean fish profile)."""
    from benchmarks._lean import lean
    from prep.run.profiles import get_profile
    from prep.run.runner import discover, plan_workers, probe_durations

    profile = lean(get_profile("fish"))
    durations = probe_durations(discover(inputs))
    return plan_workers(durations, jobs=jobs, cpus=os.cpu_count() or 1, longform=profile.longform,
                        stages=profile.stages).pool


def stage_table(folder: Path, tmpdir: Path) -> tuple[str, dict]:
    """Time per stage, in this process, over the files of ``folder``: model-free and with the extras."""
    from benchmarks._lean import lean
    from prep.run.decode import probe
    from prep.run.profiles import get_profile
    from prep.run.runner import discover, process_job
    from prep.timing import reset_times, stage_times

    jobs = discover([folder])
    seconds = sum(probe(j.path).duration_s for j in jobs)
    columns = {}
    for name, profile in (("model-free", lean(get_profile("fish"))), ("with extras", get_profile("fish"))):
        process_job(jobs[0], profile.stages, out_dir=tmpdir / f"warm-{name}")  # imports, models, numba cache
        reset_times()
        t0 = time.perf_counter()
        for job in jobs:
            process_job(job, profile.stages, out_dir=tmpdir / f"stages-{name}")
        wall = time.perf_counter() - t0
        columns[name] = (wall, stage_times())
    order = ["hash", "decode", "downmix", "resample", "denoise", "trim", "slice", "measure_input", "loudness",
             "score", "voice", "figures", "previews", "write"]
    inner = ["vad", "dnsmos"]
    names = [n for n in order if any(n in t for _, t in columns.values())]
    names += sorted(n for _, t in columns.values() for n in t if n not in order and n not in inner)
    label = {"measure_input": "measure_input (source metrics)", "score": "score (output metrics)",
             "voice": "voice (embeddings)", "hash": "hash (SHA-256)"}
    head = "| stage | " + " | ".join(f"{c}: s | % | x realtime" for c in columns) + " |"
    rows = [head, "|---|" + "---|---|---|" * len(columns)]

    def cells(name: str) -> str:
        out = []
        for wall, times in columns.values():
            s = times.get(name, (0.0, 0))[0]
            out.append(f"{s:.2f} | {100 * s / wall:.0f} | {seconds / s:.0f}" if s > 0 else "– | – | –")
        return " | ".join(out)

    for name in dict.fromkeys(names):
        rows.append(f"| {label.get(name, name)} | {cells(name)} |")
    for name in inner:
        rows.append(f"| *of which {name.upper() if name == 'vad' else 'DNSMOS'} (inside the stages above)* "
                    f"| {cells(name)} |")
    rows.append("| **whole loop (wall)** | " + " | ".join(
        f"**{w:.2f}** | 100 | **{seconds / w:.0f}**" for w, _ in columns.values()) + " |")
    return "\n".join(rows), {"seconds": seconds, "files": len(jobs)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mixed-minutes", type=float, default=6.0, help="the mixed-format set")
    parser.add_argument("--minutes", type=float, default=10.0, help="the 10-minute set")
    parser.add_argument("--batch-minutes", type=float, default=120.0, help="the batch: the 10-minute set plus more")
    parser.add_argument("--repeats", type=int, default=3, help="best of this many runs of each command")
    parser.add_argument("--baseline-repeats", type=int, default=2)
    args = parser.parse_args()
    ours = [sys.executable, "-c", LEAN_CLI]
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        tmpdir = Path(tmp)
        mixed = tmpdir / "m" / "speaker"
        first, second = tmpdir / "a" / "speaker", tmpdir / "b" / "speaker"
        sets: dict[str, list[Path]] = {"6 min": [mixed], "10 min": [first], "batch": [first, second]}
        seconds = {"6 min": make_inputs(mixed, args.mixed_minutes, seed=5, formats=MIXED_FORMATS),
                   "10 min": make_inputs(first, args.minutes, seed=7)}
        more = make_inputs(second, max(args.batch_minutes - seconds["10 min"] / 60, 1.0), seed=8)
        seconds["batch"] = seconds["10 min"] + more
        n_files = {k: sum(len(list(p.iterdir())) for p in v) for k, v in sets.items()}
        # warm the numba cache and the imports
        timed([*ours, "run", str(first / "clip000.wav"), "-o", str(tmpdir / "warm"), "-q", "--jobs", "1"])
        commands = {
            "baseline A: librosa + noisereduce + pyloudnorm": ([sys.executable, "-c", BASELINE_A], False),
            "baseline B: librosa + trim + noisereduce stationary + pyloudnorm": ([sys.executable, "-c", BASELINE_B],
                                                                                 False),
            "voiceprep run (default options)": ([*ours, "run", "-q"], True),
            "voiceprep run --jobs 1": ([*ours, "run", "-q", "--jobs", "1"], True),
            "voiceprep run --jobs 2": ([*ours, "run", "-q", "--jobs", "2"], True),
            PROCESSES: ([*ours, "run", "-q", "--jobs", "2", "--pool", "processes"], True),
        }
        runs: dict[tuple[str, str], list[float]] = {}
        cpus: dict[tuple[str, str], list[tuple[float, float]]] = {}  # (CPU s of the run, machine busy fraction)
        count = itertools.count()
        # Round robin, so a slow spell of the machine hits every command alike; the best run of each counts.
        for repeat in range(args.repeats):
            for name, (cmd, is_ours) in commands.items():
                for key, inputs in sets.items():
                    if not is_ours and (key == "batch" or repeat >= args.baseline_repeats):
                        continue  # the baselines are slow and steady; the batch is for our marginal throughput
                    if key == "batch" and repeat >= 2:
                        continue
                    out = tmpdir / f"out{next(count)}"  # always a fresh folder: nothing to resume
                    argv = [*cmd, *map(str, inputs), *(["-o"] if is_ours else []), str(out)]
                    if name in CPU_TIMED and key != "6 min":
                        wall, cpu, busy = timed_cpu(argv)
                        cpus.setdefault((name, key), []).append((cpu, busy))
                    else:
                        wall = timed(argv)
                    runs.setdefault((name, key), []).append(wall)
                    _check_output(out, n_files[key], voiceprep=is_ours)
                    print(name, key, f"{runs[name, key][-1]:.2f} s", flush=True)
        walls = {k: min(v) for k, v in runs.items()}
        clip20 = tmpdir / "clip20.wav"
        sf.write(clip20, program(20.0, 44100, seed=3), 44100, subtype="PCM_16")
        check_lean = min(timed([*ours, "check", str(clip20)]) for _ in range(5))
        check_full = min(timed([sys.executable, "-m", "prep", "check", str(clip20)]) for _ in range(3))
        table_stages, stage_info = stage_table(first, tmpdir)
        pools = {key: default_pool(sets[key], jobs=2) for key in ("10 min", "batch")}

    base_b = "baseline B: librosa + trim + noisereduce stationary + pyloudnorm"
    default = "voiceprep run (default options)"
    table = [
        "| pipeline | " + " | ".join(
            f"{k} ({seconds[k] / 60:.1f} min, {n_files[k]} files): wall s | x realtime | vs baseline B"
            for k in ("6 min", "10 min")) + " | batch: wall s | x realtime |",
        "|---|" + "---|---|---|" * 2 + "---|---|",
    ]
    for name in commands:
        cells = []
        for key in ("6 min", "10 min"):
            w = walls[name, key]
            cells.append(f"{w:.2f} | {seconds[key] / w:.0f} | {walls[base_b, key] / w:.2f}x")
        if (name, "batch") in walls:
            w = walls[name, "batch"]
            cells.append(f"{w:.1f} | {seconds['batch'] / w:.0f}")
        else:
            cells.append("– | –")
        table.append(f"| {name} | " + " | ".join(cells) + " |")

    def marginal(name: str) -> float:
        """x realtime of the extra audio of the batch over the 10-minute set (start-up cancels when both runs
        use the same machinery: see :data:`PROCESSES`)."""
        return more / (walls[name, "batch"] - walls[name, "10 min"])

    m1, m2 = marginal("voiceprep run --jobs 1"), marginal(PROCESSES)
    cpu = {k: min(c for c, _ in v) for k, v in cpus.items()}  # the least disturbed run
    busy = {k: sum(b for _, b in v) / len(v) for k, v in cpus.items()}
    serial = "voiceprep run --jobs 1"
    d1 = cpu[serial, "batch"] - cpu[serial, "10 min"]
    d2 = cpu[PROCESSES, "batch"] - cpu[PROCESSES, "10 min"]
    m2_mixed = marginal("voiceprep run --jobs 2")
    mixed_note = (", which mixes two pools and adds a process pool's start-up to the batch alone: no throughput"
                  if pools["10 min"] != pools["batch"] else "")
    md = (
        "## Whole pipeline (benchmarks/pipeline.py)\n\n"
        "Fish profile, denoise on, **model-free**: DNSMOS and the voice embedding configured off "
        "(`benchmarks/_lean.py`, as a venv without the `[mos]`/`[voice]` extras runs; the stages' own cost is "
        "in the per-stage table below). Wall time of the whole command, start-up included, best of "
        f"{args.repeats} (baselines: best of {args.baseline_repeats}; batch: best of {min(2, args.repeats)}), "
        "interleaved, each run into a fresh folder, warm numba cache. Sets: 6 min of wav/flac/mp3/m4a/opus "
        "(15-40 s files, mono and stereo, 44.1/48 kHz); 10 min of wav/flac/mp3/m4a/ogg/opus (16-48 kHz); "
        f"the batch is the 10-minute set plus more ({seconds['batch'] / 60:.0f} min, {n_files['batch']} files). "
        "Real speech + noise at 5-30 dB SNR when ../shared/corpus is present; compressed files encoded with PyAV.\n\n"
        + f"Load average of the machine (all its users) at the start and end: {load_before:.1f} / "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores.\n\n"
        + "\n".join(table)
        + f"\n\n- **6-minute set, default options vs the faster baseline (B): "
        f"{walls[base_b, '6 min'] / walls[default, '6 min']:.2f}x** (target >= 4x); `--jobs 1`: "
        f"{walls[base_b, '6 min'] / walls['voiceprep run --jobs 1', '6 min']:.2f}x.\n"
        f"- Default vs `--jobs 1`: {walls['voiceprep run --jobs 1', '6 min'] / walls[default, '6 min']:.2f}x on "
        f"6 min, {walls['voiceprep run --jobs 1', '10 min'] / walls[default, '10 min']:.2f}x on 10 min, "
        f"{walls['voiceprep run --jobs 1', 'batch'] / walls[default, 'batch']:.2f}x on the batch "
        "(`-v`: the runner picks threads on all cores under 20 minutes of audio, processes above; one file "
        "runs serially).\n"
        f"- **Marginal throughput** on the batch (extra audio of the batch over the 10-minute set / extra wall "
        "time; both runs of a difference use the same machinery, so the start-up cancels and what is left is "
        "the steady state): `--jobs 1` (serial on both sets) "
        f"{m1:.0f}x realtime, `--jobs 2 --pool processes` (2 worker processes on both sets) {m2:.0f}x realtime = "
        f"**{m2 / 2:.0f}x realtime per core** (target >= 250x); 2 workers give {m2 / m1:.2f}x. "
        f"(`--jobs 2` with the default pool picks {pools['10 min']} on the 10-minute set and {pools['batch']} on "
        f"the batch (`runner.plan_workers`): its difference gives {m2_mixed:.0f}x{mixed_note}.)\n"
        f"- CPU time (user + system of every process of a run: the voiceprep process exactly, its fork server "
        "and workers from `/proc/PID/stat` sampled every 0.1 s; least of the runs): `--jobs 1` "
        f"{cpu[serial, '10 min']:.2f} s on the 10-minute set, {cpu[serial, 'batch']:.2f} s on the batch; "
        f"`--jobs 2 --pool processes` {cpu[PROCESSES, '10 min']:.2f} s and {cpu[PROCESSES, 'batch']:.2f} s. The "
        f"batch's extra audio cost {d1:.2f} s of CPU in one process and {d2:.2f} s in the process pool (all its "
        f"processes: {100 * (d2 / d1 - 1):+.1f} %), so with both cores always busy and not slowing each other "
        f"2 workers would give {2 * d1 / d2:.2f}x (the measured {m2 / m1:.2f}x differs from it by the cores' "
        "idle time, their contention and any other user of the machine). Machine busy (all its users, "
        "`/proc/stat`) during the "
        f"`--jobs 2 --pool processes` runs: {100 * busy[PROCESSES, '10 min']:.0f} % on the 10-minute set, "
        f"{100 * busy[PROCESSES, 'batch']:.0f} % on the batch (mean of the runs).\n"
        f"- `voiceprep check` on a 20 s clip (whole process, warm cache): model-free {check_lean:.2f} s "
        f"(best of 5), with the extras installed {check_full:.2f} s (best of 3; DNSMOS and the embedder load "
        "their models and score the clip).\n\n"
        f"### Time per stage, 10-minute set ({stage_info['files']} files, {stage_info['seconds'] / 60:.1f} min)\n\n"
        "One process, files one after another (`process_job`, as a worker runs them), after one warm-up file; "
        "`prep.timing` sums each stage's wall time (the VAD and DNSMOS rows are parts of the stages that call "
        "them). x realtime = audio seconds over that row's seconds.\n\n"
        + table_stages + "\n"
    )
    write_section("pipeline", md)
    print(md)


if __name__ == "__main__":
    main()
