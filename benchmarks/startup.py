#!/usr/bin/env python3
"""Where the start-up time of ``voiceprep check`` on a 20 s clip goes (model-free profile, warm caches).

Each phase is timed in a fresh process (CPU and wall time, best of
``--repeats`` per phase): the interpreter, the imports in the order a check
pulls them in, the first clip (which loads the numba kernels from their
cache and makes the first calls), and the same clip again (the work
itself).  The whole command is timed too, as ``python -c LEAN_CLI check``.

    python benchmarks/startup.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import soundfile as sf

from benchmarks._audio import program
from benchmarks._lean import LEAN_CLI
from benchmarks._results import write_section

ROOT = Path(__file__).resolve().parent.parent
_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
_ENV["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])

_PHASES = r"""
import json, sys, time
t = [("start", time.process_time(), time.perf_counter())]
def mark(name): t.append((name, time.process_time(), time.perf_counter()))
import numpy; mark("numpy")
import prep.cli; mark("prep.cli (argparse, the run folder)")
import prep.run.profiles; mark("the stages (prep.run.profiles, prep.dsp; pocketfft alone, not scipy.fft)")
import prep.run.runner; mark("runner, decode, transcripts")
import prep.kernels.denoise, prep.kernels.loudness
mark("numba, the kernel modules, numba's CPU target (kernels/_target.py)")
from benchmarks._lean import lean
from prep.run.profiles import get_profile
from prep.run.runner import discover, process_job
p = lean(get_profile("fish"))
jobs = discover([sys.argv[1]])
process_job(jobs[0], p.stages); mark("first clip: kernels from the cache, first calls")
process_job(jobs[0], p.stages); mark("the same clip again: the work itself")
print(json.dumps([(b, c1 - c0, w1 - w0) for (a, c0, w0), (b, c1, w1) in zip(t, t[1:])]))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "clip20.wav"
        sf.write(clip, program(20.0, 44100, seed=3), 44100, subtype="PCM_16")
        best: dict[str, tuple[float, float]] = {}
        order: list[str] = []
        whole, whole_cpu, bare = [], [], []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-c", "pass"], env=_ENV, check=True)
            bare.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            subprocess.run([sys.executable, "-c", LEAN_CLI, "check", str(clip)], env=_ENV, capture_output=True)
            r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            whole.append(time.perf_counter() - t0)
            whole_cpu.append(r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime)
            done = subprocess.run([sys.executable, "-c", _PHASES, str(clip)], env=_ENV, capture_output=True,
                                  text=True, check=True)
            for name, cpu, wall in json.loads(done.stdout.strip().splitlines()[-1]):
                if name not in best:
                    order.append(name)
                old = best.get(name, (float("inf"), float("inf")))
                best[name] = (min(old[0], cpu), min(old[1], wall))
    rows = ["| phase | CPU s | wall s |", "|---|---|---|"]
    rows.append(f"| interpreter start (`python -c pass`) | – | {min(bare):.2f} |")
    rows += [f"| {name} | {best[name][0]:.2f} | {best[name][1]:.2f} |" for name in order]
    load = os.getloadavg()
    md = (
        "## Start-up (benchmarks/startup.py)\n\n"
        f"`voiceprep check` on a 20 s 44.1 kHz clip, model-free (`benchmarks/_lean.py`), warm caches: "
        f"**{min(whole):.2f} s** wall for the whole command (best of {args.repeats}; target < 0.8 s), "
        f"{min(whole_cpu):.2f} s CPU (user + system of the process and its threads, best of {args.repeats}). "
        f"Load average at the end: {load[0]:.1f} on {os.cpu_count()} cores. "
        "Where it goes, phase by phase in a fresh process (best of each; the whole command also pays the "
        "interpreter's exit):\n\n" + "\n".join(rows) + "\n\n"
        "Not imported by `check`: rich (progress bar, `run` only), PyAV (only for files libsndfile cannot "
        "read), onnxruntime/speechmos (DNSMOS, only when a stage scores and the extra is installed), the voice "
        "embedder, faster-whisper, scipy.ndimage (the limiter imports it when a peak needs limiting; the "
        "estimators use exact NumPy equivalents), `prep.voice.clips` (imported by `run_jobs`), and no SciPy "
        "package: the FFTs call SciPy's compiled pocketfft module loaded alone (`prep.dsp.fft`, bit-identical "
        "to `scipy.fft`, whose import with `scipy.special` and the array-API layer cost 0.15-0.20 s of CPU), and "
        "the kernel modules set up numba's CPU target with `scipy.linalg.cython_blas` loaded alone for its BLAS "
        "check instead of all of `scipy.linalg` (`kernels/_target.py`, `prep._scipy_ext`). The stages import "
        "numba on first use (a run's "
        "parent, which only cuts long files, never does). The `voiceprep` entry (`prep._entry`) freezes the "
        "garbage collector before the interpreter's exit (its shutdown collections over every module's "
        "objects were 0.1-0.2 s) and shortens OpenBLAS's idle-thread spin (0.1 s of CPU per BLAS library "
        "after it loads). What is left is NumPy, numba's import and its first dispatch (its CPU target's "
        "registries, then each kernel from the cache), the stages' own modules, and the work.\n"
    )
    write_section("startup", md)
    print(md)


if __name__ == "__main__":
    main()
