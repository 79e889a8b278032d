#!/usr/bin/env python3
"""Long recordings: x-realtime and memory of ``voiceprep run`` on one long file, ``--jobs 1`` vs 2 workers.

Input: one 48 kHz stereo m4a (AAC 128 kbit/s, encoded with PyAV) of real
speech (../shared/corpus when present) with pauses and background noise,
1 hour by default.  Each run is a separate process tree (fish profile,
denoise on, model-free as in ``benchmarks/pipeline.py``: ``benchmarks/_lean.py``),
into a fresh folder, warm numba cache.  Memory: the PSS of every process of
the run (the parent, the fork server, the workers) summed, sampled every
0.2 s, peak of the sum; and the parent's peak RSS (VmHWM).

    python benchmarks/long.py [--durations 3600] [--workers 2]
    python benchmarks/long.py --durations 1800 7200 --transcribe never auto   # section long_asr

With ``--transcribe``: ``--jobs 1`` runs of the same lean profile with the ``transcribe`` stage set to
each mode (the ``[asr]`` extra, bundled tiny.en int8, 1 thread), same memory measures, written to the
section ``long_asr``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import numpy as np

from benchmarks._audio import program
from benchmarks._encode import encode_stream
from benchmarks._lean import LEAN_CLI
from benchmarks._results import write_section
from prep.run.longform import LongForm

LONGFORM = LongForm()  # what the CLI uses

RATE = 48000
ROOT = Path(__file__).resolve().parent.parent
_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
_ENV["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])


def make_input(path: Path, seconds: float) -> None:
    """``seconds`` of 48 kHz stereo audio, made and encoded in 10-minute chunks (bounded memory here too)."""

    def chunks():
        done, k = 0.0, 0
        while done < seconds:
            n = min(600.0, seconds - done)
            mono = program(n, RATE, seed=k)
            yield np.stack([mono, np.roll(mono, 24) * 0.8])  # a second mic: delayed and quieter
            done += n
            k += 1

    encode_stream(path, chunks(), RATE, 2, bit_rate=128000)


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        kids.setdefault(ppid, []).append(int(entry))
    return kids


def tree_pss_mb(pid: int, cpu: dict[int, tuple[int, float]] | None = None, *, pss: bool = True) -> float:
    """Summed PSS (MB) of ``pid`` and all its descendants; ``cpu`` gets each one's (depth, CPU seconds).

    With ``pss=False`` only the CPU times are read (0 is returned): reading ``smaps_rollup`` walks a
    process's page tables, about 20 ms of CPU per sample of a 2-worker run, taken from the run's cores.
    """
    kids = _children()
    todo, total = [(pid, 0)], 0.0
    while todo:
        p, depth = todo.pop()
        todo.extend((k, depth + 1) for k in kids.get(p, []))
        try:
            if cpu is not None:
                with open(f"/proc/{p}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
                cpu[p] = (depth, (int(fields[11]) + int(fields[12])) / _TICK)
            if not pss:
                continue
            with open(f"/proc/{p}/smaps_rollup") as fh:
                for line in fh:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1]) / 1024
                        break
        except (OSError, IndexError, ValueError):
            continue
    return total


_TICK = os.sysconf("SC_CLK_TCK")


_RUNNER = LEAN_CLI.replace(
    "raise SystemExit(main(sys.argv[1:]))",
    "status = main(sys.argv[1:])\n"
    "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM:')]\n"
    "print('HWM', int(hwm[0].split()[1]) / 1024)\n"
    "raise SystemExit(status)",
)


def run_one(path: Path, out: Path, jobs: int, extra: list[str] | None = None, *, memory: bool = True) -> dict:
    """One run's wall time, CPU times and (with ``memory``) peak summed PSS, sampled every 0.2 s."""
    cmd = [sys.executable, "-c", _RUNNER, "run", str(path), "-o", str(out), "-q", "--jobs", str(jobs),
           *(extra or [])]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_ENV)
    peak = 0.0
    cpu: dict[int, tuple[int, float]] = {}  # pid -> (depth below the run's process, CPU s): last seen
    serial = None  # the run's own CPU s when a worker (a fork server's child, depth 2) first ran
    while proc.poll() is None:
        peak = max(peak, tree_pss_mb(proc.pid, cpu, pss=memory))
        if serial is None and any(d >= 2 and c > 0.05 for d, c in cpu.values()):
            serial = cpu[proc.pid][1]
        time.sleep(0.2)
    wall = time.perf_counter() - t0
    stdout, stderr = proc.communicate()
    if proc.returncode not in (0, 1):
        raise SystemExit(f"run failed: {stderr[-2000:]}")
    hwm = float(stdout.split("HWM")[-1].strip())
    clips = sum(1 for _ in (out / "clips").rglob("*.wav"))
    return {"jobs": jobs, "wall_s": wall, "peak_pss_mb": peak if memory else None, "parent_hwm_mb": hwm, "clips": clips,
            "cpu_s": sum(c for _, c in cpu.values()), "parent_cpu_s": cpu.get(proc.pid, (0, 0.0))[1],
            "serial_cpu_s": serial}


@contextlib.contextmanager
def _warmed_folder(extra: list[str] | None = None) -> Iterator[Path]:
    """A temporary folder, after one short run (``extra`` options) has warmed the caches."""
    with tempfile.TemporaryDirectory() as tmp:
        tmpdir = Path(tmp)
        warm = tmpdir / "warm.m4a"
        make_input(warm, 20.0)
        run_one(warm, tmpdir / "warm_out", 1, extra)
        yield tmpdir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--durations", type=float, nargs="+", default=[3600.0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--transcribe", nargs="+", choices=("never", "auto"), default=None,
                        help="--jobs 1 runs with these --transcribe modes (the [asr] extra); writes long_asr")
    args = parser.parse_args()
    if args.transcribe:
        run_asr(args.durations, args.transcribe)
        return
    rows = []
    load_before = os.getloadavg()[0]
    with _warmed_folder() as tmpdir:
        for seconds in args.durations:
            path = tmpdir / f"long_{int(seconds)}s.m4a"
            t0 = time.perf_counter()
            make_input(path, seconds)
            print(f"made {seconds:.0f} s input in {time.perf_counter() - t0:.0f} s", flush=True)
            best: dict[int, dict] = {}
            # Timing runs sample CPU times only; memory runs also the PSS, whose sampling takes CPU from
            # the run (from its cores when they are all busy): their wall time is shown apart.
            for repeat in range(args.repeats):
                for jobs in (1, args.workers):
                    res = run_one(path, tmpdir / f"out_{int(seconds)}_{jobs}_{repeat}", jobs, memory=False)
                    print(json.dumps(res), flush=True)
                    if jobs not in best or res["wall_s"] < best[jobs]["wall_s"]:
                        best[jobs] = res
            for jobs in (1, args.workers):
                mem = run_one(path, tmpdir / f"out_{int(seconds)}_{jobs}_mem", jobs)
                print(json.dumps(mem), flush=True)
                best[jobs].update(peak_pss_mb=mem["peak_pss_mb"], parent_hwm_mb=mem["parent_hwm_mb"],
                                  mem_wall_s=mem["wall_s"])
            for res in best.values():
                # CPU-bound estimate for an idle machine (Amdahl): the run's own CPU until a worker first ran is
                # serial, the rest spread over the workers; --jobs 1 takes its CPU time.
                est = res["cpu_s"] if res["serial_cpu_s"] is None else (
                    res["serial_cpu_s"] + (res["cpu_s"] - res["serial_cpu_s"]) / res["jobs"])
                rows.append({**res, "duration_s": seconds, "speedup": best[1]["wall_s"] / res["wall_s"],
                             "est_s": est, "est_speedup": best[1]["cpu_s"] / est})
            path.unlink()
    table = ["| input | --jobs | wall s | x realtime | vs --jobs 1 | CPU s (all) | CPU s (parent) | serial CPU s "
             "| CPU-bound estimate s | estimate vs --jobs 1 | peak summed PSS MB | parent peak RSS MB "
             "| wall s (memory run) | clips |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        serial = "-" if r["serial_cpu_s"] is None else f"{r['serial_cpu_s']:.1f}"
        table.append(
            f"| {r['duration_s'] / 60:.0f} min 48 kHz stereo m4a | {r['jobs']} | {r['wall_s']:.1f} "
            f"| {r['duration_s'] / r['wall_s']:.0f} | {r['speedup']:.2f}x | {r['cpu_s']:.1f} | {r['parent_cpu_s']:.1f} "
            f"| {serial} | {r['est_s']:.1f} | {r['est_speedup']:.2f}x | {r['peak_pss_mb']:.0f} "
            f"| {r['parent_hwm_mb']:.0f} | {r['mem_wall_s']:.1f} | {r['clips']} |"
        )
    md = (
        "## Long recordings (benchmarks/long.py)\n\n"
        "`voiceprep run FILE -o OUT --jobs N` on one long file (fish profile, denoise on, model-free as in the "
        "pipeline benchmark), each run a fresh process tree. The parent streams the file once, cutting pieces of "
        f"{LONGFORM.min_piece_s:.0f}-{LONGFORM.max_piece_s:.0f} s under the downmix decision so far and handing "
        "each to a worker (as a temp file) as soon as it is cut, while the rest is decoded; at the end the whole "
        "file's decision and cut points are checked against what was handed out (the pieces are redone if they "
        "differ: not in this input). The file is journaled when all its pieces are done. Wall time: best of the "
        "timing runs (repeats), which sample only the CPU times. Memory: PSS of all the run's processes (parent, "
        "fork server, workers) summed, sampled every 0.2 s, peak, in one more run per row (reading the PSS costs "
        "the sampler about 20 ms of CPU per sample, taken from the run's cores when both are busy: that run's wall "
        "time is shown apart). CPU: user+system time of every process of the run (`/proc/PID/stat`, last sample), "
        "the parent's alone, and the serial part (the parent's CPU until a worker first ran); the CPU-bound "
        "estimate for an idle machine is serial + (all - serial) / workers (Amdahl), `--jobs 1` its CPU time. "
        "Targets: >= 1.7x `--jobs 1` with 2 workers on 1 hour; summed PSS <= 600 MB. Load average of the "
        "machine (all its users) at the start and end: "
        f"{load_before:.1f} / {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores.\n\n"
        + "\n".join(table) + "\n"
    )
    write_section("long", md)
    print(md)


def run_asr(durations: list[float], modes: list[str]) -> None:
    """Memory and CPU of long files with and without speech recognition, ``--jobs 1`` (section ``long_asr``)."""
    rows = []
    load_before = os.getloadavg()[0]
    with _warmed_folder(["--transcribe", "auto"]) as tmpdir:
        for seconds in durations:
            path = tmpdir / f"long_{int(seconds)}s.m4a"
            make_input(path, seconds)
            for mode in modes:
                out = tmpdir / f"out_{int(seconds)}_{mode}"
                res = run_one(path, out, 1, ["--transcribe", mode])
                report = json.loads((out / "report.json").read_text(encoding="utf-8"))
                res.update(duration_s=seconds, mode=mode,
                           texts=sum(1 for c in report["clips"] if c.get("transcript")))
                print(json.dumps(res), flush=True)
                rows.append(res)
            path.unlink()
    table = ["| input | --transcribe | CPU s | x realtime per core (CPU) | wall s | peak summed PSS MB | "
             "peak RSS MB | clips | clips with ASR text |", "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        table.append(f"| {r['duration_s'] / 60:.0f} min 48 kHz stereo m4a | {r['mode']} | {r['cpu_s']:.0f} | "
                     f"{r['duration_s'] / r['cpu_s']:.1f} | {r['wall_s']:.0f} | {r['peak_pss_mb']:.0f} | "
                     f"{r['parent_hwm_mb']:.0f} | {r['clips']} | {r['texts']} |")
    md = ("## Long recordings with speech recognition (benchmarks/long.py --transcribe never auto)\n\n"
          "`voiceprep run FILE -o OUT --jobs 1 --transcribe MODE` on the lean fish profile of the table above "
          "(model-free, gate denoise) with the `[asr]` extra installed (bundled tiny.en int8, 1 thread), each run "
          "a fresh process tree. CPU s = user + system time of the run's whole process tree; memory as above "
          "(summed PSS sampled every 0.2 s; peak RSS = the parent's VmHWM). Load average of the machine at the "
          f"start and end: {load_before:.1f} / {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (shared, so "
          "wall times are not comparable).\n\n" + "\n".join(table) + "\n")
    write_section("long_asr", md)
    print(md)


if __name__ == "__main__":
    main()
