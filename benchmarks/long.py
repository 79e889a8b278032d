#!/usr/bin/env python3
"""Long recordings: peak RSS and x-realtime of ``voiceprep run`` on 10 min, 1 h and 2 h inputs.

Inputs are 48 kHz stereo FLAC built from real speech (../shared/corpus when
present) with pauses and background noise.  Each run is a separate process
(``--jobs 1``, fish profile, denoise on) whose peak RSS is read from
``/proc/self/status`` (VmHWM).  The numba cache is warmed first.

    python benchmarks/long.py [--durations 600 3600 7200]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks._audio import program
from benchmarks._results import write_section

RATE = 48000
_RUNNER = r"""
import json, resource, sys, time
from prep.cli import main
t0 = time.perf_counter()
status = main(["run", sys.argv[1], "-o", sys.argv[2], "-q", "--jobs", "1", *sys.argv[3:]])
wall = time.perf_counter() - t0
# VmHWM, not ru_maxrss: on Linux ru_maxrss survives exec, so a child of a big
# parent would report the parent's peak.
hwm = [line for line in open("/proc/self/status") if line.startswith("VmHWM:")]
peak = int(hwm[0].split()[1]) / 1024 if hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"status": status, "wall_s": wall, "peak_rss_mb": peak}))
"""


def make_input(path: Path, seconds: float) -> None:
    """Write ``seconds`` of 48 kHz stereo FLAC in 10-minute chunks (bounded memory here too)."""
    chunk_s = 600.0
    with sf.SoundFile(path, "w", RATE, 2, subtype="PCM_16") as fh:
        done, k = 0.0, 0
        while done < seconds:
            n = min(chunk_s, seconds - done)
            mono = program(n, RATE, seed=k)
            right = np.roll(mono, 24) * 0.8  # a second mic: delayed and quieter
            fh.write(np.stack([mono, right]).T)
            done += n
            k += 1


def run_one(path: Path, out: Path, extra: list[str] | None = None) -> dict:
    done = subprocess.run([sys.executable, "-c", _RUNNER, str(path), str(out), *(extra or [])],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"run failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--durations", type=float, nargs="+", default=[600.0, 3600.0, 7200.0])
    parser.add_argument("--transcribe", nargs="+", choices=("never", "auto"), default=None,
                        help="run each input with these --transcribe modes (the [asr] extra) and write the "
                             "section long_asr instead")
    args = parser.parse_args()
    if args.transcribe:
        run_asr(args.durations, args.transcribe)
        return
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmpdir = Path(tmp)
        warm = tmpdir / "warm.flac"
        make_input(warm, 20.0)
        run_one(warm, tmpdir / "warm_out")
        for seconds in args.durations:
            path = tmpdir / f"long_{int(seconds)}s.flac"
            t0 = time.perf_counter()
            make_input(path, seconds)
            print(f"made {seconds:.0f} s input in {time.perf_counter() - t0:.0f} s", flush=True)
            res = run_one(path, tmpdir / f"out_{int(seconds)}")
            res["duration_s"] = seconds
            res["x_realtime"] = seconds / res["wall_s"]
            clips = sum(1 for _ in (tmpdir / f"out_{int(seconds)}" / "clips").rglob("*.wav"))
            res["clips"] = clips
            print(json.dumps(res), flush=True)
            rows.append(res)
            path.unlink()
    table = ["| input | wall s | x realtime | peak RSS MB | clips written |", "|---|---|---|---|---|"]
    for r in rows:
        table.append(
            f"| {r['duration_s'] / 60:.0f} min 48 kHz stereo FLAC | {r['wall_s']:.1f} | {r['x_realtime']:.1f} "
            f"| {r['peak_rss_mb']:.0f} | {r['clips']} |"
        )
    linear = ""
    if len(rows) >= 2:
        per_s = [r["wall_s"] / r["duration_s"] for r in rows]
        linear = f"\nWall time per input second: {', '.join(f'{p * 1000:.1f} ms' for p in per_s)} (linear if equal).\n"
    md = (
        "## Long recordings (benchmarks/long.py)\n\n"
        "`voiceprep run FILE -o OUT --jobs 1` (fish profile, denoise on, JSON + HTML report) in its own process; "
        "peak RSS = VmHWM of that process. Target: peak RSS <= 600 MB on 2 h 48 kHz stereo, "
        "time linear in duration.\n\n"
        + "\n".join(table) + "\n" + linear
    )
    write_section("long", md)
    print(md)


def run_asr(durations: list[float], modes: list[str]) -> None:
    """Peak RSS and speed of long files with and without speech recognition (section ``long_asr``)."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmpdir = Path(tmp)
        warm = tmpdir / "warm.flac"
        make_input(warm, 20.0)
        run_one(warm, tmpdir / "warm_out")
        for seconds in durations:
            path = tmpdir / f"long_{int(seconds)}s.flac"
            make_input(path, seconds)
            for mode in modes:
                out = tmpdir / f"out_{int(seconds)}_{mode}"
                res = run_one(path, out, ["--transcribe", mode])
                report = json.loads((out / "report.json").read_text(encoding="utf-8"))
                res.update(duration_s=seconds, mode=mode, clips=len(report["clips"]),
                           texts=sum(1 for c in report["clips"] if c.get("transcript")))
                print(json.dumps(res), flush=True)
                rows.append(res)
            path.unlink()
    table = ["| input | --transcribe | wall s | x realtime | peak RSS MB | clips | clips with ASR text |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        table.append(f"| {r['duration_s'] / 60:.0f} min 48 kHz stereo FLAC | {r['mode']} | {r['wall_s']:.1f} | "
                     f"{r['duration_s'] / r['wall_s']:.1f} | {r['peak_rss_mb']:.0f} | {r['clips']} | {r['texts']} |")
    md = ("## Long recordings with speech recognition (benchmarks/long.py --transcribe never auto)\n\n"
          "As above (`--jobs 1`, own process, VmHWM), with the `[asr]` extra installed: pieces of 60-120 s are "
          "transcribed one at a time (tiny.en int8, 1 thread), so memory stays bounded by a piece plus the "
          "model (loaded once).\n\n" + "\n".join(table) + "\n")
    write_section("long_asr", md)
    print(md)


if __name__ == "__main__":
    main()
