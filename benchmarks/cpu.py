#!/usr/bin/env python3
"""CPU time of the model-free pipeline: per stage, per clip loop, whole commands; this checkout vs another.

For a machine shared with other work, where wall time says little: every
figure here is CPU time (user + system) of one process, which other loads
change much less than wall time.

* the serial path (:func:`prep.run.runner.process_job`, as a worker runs it)
  over the 10-minute set of ``benchmarks/pipeline.py``, in one process after
  one warm-up file: CPU seconds of the whole loop (best of ``--repeats``) and,
  per stage, :mod:`prep.timing` on the CPU clock (:func:`prep.timing.use_clock`
  with :func:`time.process_time`);
* whole commands, start-up included, as children of this process (user + sys
  from ``resource.getrusage(RUSAGE_CHILDREN)``, best of ``--repeats``):
  ``voiceprep run`` with default options on the 6-minute mixed set and
  ``voiceprep check`` on a 20 s clip.

Model-free (:mod:`benchmarks._lean`), warm numba cache.  ``--compare PATH``
measures another checkout (e.g. ``git worktree add /tmp/base main``) the same
way, interleaved; its per-stage table is left out when its :mod:`prep.timing`
has no CPU clock.

    python benchmarks/cpu.py [--repeats 3] [--compare /tmp/base]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks._audio import program
from benchmarks._lean import LEAN_CLI
from benchmarks._results import write_section
from benchmarks.pipeline import FORMATS, MIXED_FORMATS, make_inputs

ROOT = Path(__file__).resolve().parent.parent

_LOOP = r"""
import json, sys, tempfile, time
from pathlib import Path
from benchmarks._lean import lean
from prep.run.profiles import get_profile
from prep.run.runner import discover, process_job
import prep.timing as timing
has_clock = hasattr(timing, "use_clock")
if has_clock:
    timing.use_clock(time.process_time)
jobs = discover([sys.argv[1]])
stages = lean(get_profile("fish")).stages
out = Path(tempfile.mkdtemp())
process_job(jobs[0], stages, out_dir=out / "warm")  # imports, numba cache
timing.reset_times()
c0 = time.process_time()
for job in jobs:
    process_job(job, stages, out_dir=out / "run")
cpu = time.process_time() - c0
print(json.dumps({"cpu": cpu, "stages": timing.stage_times() if has_clock else None}))
"""


def _env(tree: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = str(tree)
    return env


def child_cpu(cmd: list[str], tree: Path) -> tuple[float, subprocess.CompletedProcess]:
    """User + system CPU seconds of one child process running ``cmd``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(cmd, capture_output=True, text=True, env=_env(tree), cwd=tree)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode not in (0, 1):
        raise SystemExit(f"{cmd[:3]} failed in {tree}: {done.stderr[-2000:]}")
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--compare", type=Path, help="another checkout to measure the same way")
    parser.add_argument("--label", default="before", help="name of the --compare checkout in the tables")
    args = parser.parse_args()
    trees = {"this checkout": ROOT}
    if args.compare:
        trees[args.label] = args.compare.resolve()
    with tempfile.TemporaryDirectory() as tmp:
        tmpdir = Path(tmp)
        ten, mixed = tmpdir / "a" / "speaker", tmpdir / "m" / "speaker"
        seconds_ten = make_inputs(ten, 10.0, seed=7, formats=FORMATS)
        seconds_mixed = make_inputs(mixed, 6.0, seed=5, formats=MIXED_FORMATS)
        clip20 = tmpdir / "clip20.wav"
        sf.write(clip20, program(20.0, 44100, seed=3), 44100, subtype="PCM_16")
        loop: dict[str, list[float]] = {}
        stages: dict[str, dict] = {}
        run6: dict[str, list[float]] = {}
        check: dict[str, list[float]] = {}
        for tree in trees.values():  # warm each tree's numba cache and bytecode
            child_cpu([sys.executable, "-c", LEAN_CLI, "check", str(clip20)], tree)
        for repeat in range(args.repeats):
            for name, tree in trees.items():
                _, done = child_cpu([sys.executable, "-c", _LOOP, str(ten)], tree)
                result = json.loads(done.stdout.strip().splitlines()[-1])
                loop.setdefault(name, []).append(result["cpu"])
                if result["stages"] and result["cpu"] <= min(loop[name]):
                    stages[name] = result["stages"]
                out = tmpdir / f"out-{repeat}-{len(run6.get(name, []))}-{abs(hash(name))}"
                cpu, _ = child_cpu([sys.executable, "-c", LEAN_CLI, "run", "-q", str(mixed), "-o", str(out)], tree)
                run6.setdefault(name, []).append(cpu)
                for _ in range(2):
                    cpu, _ = child_cpu([sys.executable, "-c", LEAN_CLI, "check", str(clip20)], tree)
                    check.setdefault(name, []).append(cpu)
                print(name, repeat, f"loop {loop[name][-1]:.2f} run {run6[name][-1]:.2f} check {min(check[name]):.2f}",
                      flush=True)

    names = list(trees)
    rows = ["| CPU seconds (user + sys), best of each | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    rows.append(f"| `process_job` loop, 10-minute set ({seconds_ten / 60:.1f} min) | "
                + " | ".join(f"{min(loop[n]):.2f} s = {seconds_ten / min(loop[n]):.0f}x realtime per core"
                             for n in names) + " |")
    rows.append(f"| `voiceprep run` (default options), 6-minute mixed set ({seconds_mixed / 60:.1f} min), whole "
                "process | " + " | ".join(f"{min(run6[n]):.2f} s" for n in names) + " |")
    rows.append("| `voiceprep check`, 20 s clip, whole process | "
                + " | ".join(f"{min(check[n]):.2f} s" for n in names) + " |")
    name = "this checkout"
    times = stages[name]
    others = [n for n in names if n != name and n in stages]
    skip = ("vad", "dnsmos")  # inside other stages

    def total_of(t: dict) -> float:
        return sum(s for s, _ in t.values()) - sum(t.get(k, (0.0, 0))[0] for k in skip)

    def cell(n: str, key: str) -> str:
        return f"{stages[n].get(key, (0.0, 0))[0]:.2f}"

    total = total_of(times)
    order = sorted(times, key=lambda k: -times[k][0])
    table = ["| stage | CPU s (this checkout) | % of loop | x realtime |" + "".join(f" CPU s ({n}) |" for n in others),
             "|---|---|---|---|" + "---|" * len(others)]
    for key in order:
        s = times[key][0]
        if s <= 0.0005 and all(stages[n].get(key, (0.0, 0))[0] <= 0.0005 for n in others):
            continue
        label = f"*of which {key.upper()} (inside the stages above)*" if key in skip else key
        table.append(f"| {label} | {s:.2f} | {100 * s / min(loop[name]):.0f} | {seconds_ten / max(s, 1e-9):.0f} | "
                     + "".join(f"{cell(n, key)} | " for n in others))
    table.append(f"| **sum of the stages** | **{total:.2f}** | {100 * total / min(loop[name]):.0f} | "
                 f"{seconds_ten / total:.0f} | " + "".join(f"{total_of(stages[n]):.2f} | " for n in others))
    table.append(f"| **whole loop** | **{min(loop[name]):.2f}** | 100 | {seconds_ten / min(loop[name]):.0f} | "
                 + "".join(f"{min(loop[n]):.2f} | " for n in others))
    md = (
        "## CPU time (benchmarks/cpu.py)\n\n"
        "**CPU time, not wall time** (what other work on the machine changes least; "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores at the end). Model-free "
        "(`benchmarks/_lean.py`), warm numba cache; sets as in `benchmarks/pipeline.py`. "
        f"Best of {args.repeats}, the checkouts interleaved. x realtime per core = audio seconds over CPU "
        "seconds.\n\n" + "\n".join(rows) + "\n\n"
        "Per stage, serial path, one process (`prep.timing` on `time.process_time`, from each checkout's "
        "best loop; the stage rows add up to the loop: source previews, figures and writes are rows too):\n\n"
        + "\n".join(table) + "\n"
    )
    write_section("cpu", md)
    print(md)


if __name__ == "__main__":
    main()
