#!/usr/bin/env python3
"""What the report's source previews and players cost: run time and disk, and rendering 500 clips.

1. Run cost.  The corpus speech recordings (../shared/corpus, else the demo
   fixtures) go through ``process_job`` with the fish profile, serially; the
   CPU time (``time.process_time``: the machine may be shared) spent writing
   each clip's source preview (16-bit FLAC by default, ``--preview-format``
   to compare Opus; ``runner._write_preview``) and its figure
   (``runner._write_plot``) is timed around those calls, against the whole
   per-file CPU time.  Disk: the previews' bytes against the clip WAVs and
   the figures.
2. Report cost.  A 500-clip report is made by repeating those clips (each
   with its own clip, figure and preview files) and rendered with stored
   figures: this voiceprep (links, and ``embed_audio``) against the report
   writer before this change (``git archive`` of ``--before``, run in a
   subprocess).  Best of 3 in CPU time, BLAS on one thread (on a loaded
   machine the voice map's SVD otherwise swings by seconds from run to run).
   ``embed_audio`` encodes the clips and the FLAC previews to Opus.

    python benchmarks/report.py [--before 6115366] [--clips 500] [--preview-format flac|opus]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks._results import CORPUS, write_section

ROOT = Path(__file__).resolve().parent.parent
_EXT = {".wav", ".flac", ".mp3", ".m4a", ".ogg", ".opus"}


def _inputs() -> list[Path]:
    speech = CORPUS / "speech"
    files = sorted(p for p in speech.glob("*") if p.suffix in _EXT) if speech.is_dir() else []
    return files or sorted(p for p in (ROOT / "fixtures" / "demo").rglob("*") if p.suffix in _EXT)


def run_cost(out: Path, preview_format: str = "flac") -> dict:
    from prep.run import runner
    from prep.run.profiles import get_profile

    timed = {"preview": 0.0, "plot": 0.0}

    def timing(name, fn):
        def wrapper(*args, **kwargs):
            t0 = time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                timed[name] += time.process_time() - t0
        return wrapper

    runner._write_preview = timing("preview", runner._write_preview)
    runner._write_plot = timing("plot", runner._write_plot)
    profile = get_profile("fish")
    files = _inputs()
    runner.process_job(runner.Job(path=str(files[0]), speaker="warm"), profile.stages, out_dir=out / "warm",
                       preview_format=preview_format)
    timed.update(preview=0.0, plot=0.0)
    clips = []
    t0 = time.process_time()
    for path in files:
        clips += runner.process_job(runner.Job(path=str(path), speaker="s"), profile.stages, out_dir=out,
                                    preview_format=preview_format)
    total = time.process_time() - t0
    written = [c for c in clips if c.output]

    def size(pattern: str) -> int:
        return sum(p.stat().st_size for p in (out / "clips" / "s").glob(pattern)) + sum(
            p.stat().st_size for p in (out / "plots" / "s").glob(pattern))

    return {
        "files": len(files), "clips": len(written), "total_s": total, **timed,
        "audio_s": sum(c.span_s[1] - c.span_s[0] for c in written),
        "preview_bytes": size("*.source.*"), "wav_bytes": size("*.wav"), "jpg_bytes": size("*.jpg"),
        "clip_objects": clips,
    }


def big_report(out: Path, clips: list, n: int) -> dict:
    """A report of ``n`` clips repeating ``clips``, each with its own files in ``out``."""
    from prep.report.summary import build_report
    from prep.run.run_folder import RunFolder

    folder = RunFolder(out)
    written = [c for c in clips if c.output]
    entries = []
    for i in range(n):
        clip = written[i % len(written)]
        copy = clip.__class__.from_dict({**clip.to_dict(), "id": f"{clip.id}-{i:04d}"})
        copy = copy.__class__.from_dict({**copy.to_dict(), "output": folder.clip_output("s", copy.id)})
        for src, dst in ((folder.output_path(clip.output), folder.clip_path("s", copy.id)),
                         (folder.plot_path("s", clip.id), folder.plot_path("s", copy.id)),
                         *zip(folder.preview_paths("s", clip.id), folder.preview_paths("s", copy.id), strict=True)):
            if src.exists() and not dst.exists():
                shutil.copy2(src, dst)
        entries.append(copy)
    for plot in (out / "plots" / "s").glob("*"):
        plot.touch()  # not older than the clips they show
    return json.loads(json.dumps(build_report(entries, profile="fish")))


_RENDER = """
import json, sys, time
from prep.report.html import render_html
report = json.load(open(sys.argv[1]))
kwargs = json.loads(sys.argv[3])
best = 1e9
for _ in range(3):
    t0 = time.process_time()
    page = render_html(report, sys.argv[2], **kwargs)
    best = min(best, time.process_time() - t0)
print(json.dumps({"s": best, "bytes": len(page.encode())}))
"""


def render(pythonpath: Path, report_path: Path, out: Path, **kwargs) -> dict:
    done = subprocess.run([sys.executable, "-c", _RENDER, str(report_path), str(out), json.dumps(kwargs)],
                          capture_output=True, text=True, check=True,
                          env={"PYTHONPATH": str(pythonpath), "PATH": "/usr/bin:/bin", "OPENBLAS_NUM_THREADS": "1"})
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="6115366", help="commit of the report writer to compare with")
    parser.add_argument("--clips", type=int, default=500)
    parser.add_argument("--preview-format", choices=("flac", "opus"), default="flac")
    parser.add_argument("--no-write", action="store_true", help="print only, do not update RESULTS.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        out = tmp_path / "OUT"
        cost = run_cost(out, args.preview_format)
        report = big_report(out, cost.pop("clip_objects"), args.clips)
        report_path = tmp_path / "report.json"
        report_path.write_text(json.dumps(report))
        old = tmp_path / "old"
        old.mkdir()
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.before, "prep", "kernels"],
                                 capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(old)], input=archive, check=True)
        before = render(old, report_path, out)
        after = render(ROOT, report_path, out)
        embedded = render(ROOT, report_path, out, embed_audio=True)
    rt = cost["audio_s"]
    lines = [
        "Run cost: the corpus speech recordings through `process_job` (fish profile with the installed extras; "
        f"serial, one warm-up file; {args.preview_format.upper()} previews); CPU time (`time.process_time`) "
        "inside the two report writers of the workers against the whole per-file CPU time. Report cost: "
        f"`render_html` of a {args.clips}-clip report (the run's clips repeated, stored figures), CPU time, "
        "best of 3, "
        f"this voiceprep against the writer of commit {args.before} "
        "(no source previews; both read the same stored figures).",
        "",
        "| measurement | value |",
        "|---|---:|",
        f"| files / clips / source span audio | {cost['files']} / {cost['clips']} / {rt:.0f} s |",
        f"| whole per-file work (CPU) | {cost['total_s']:.2f} s ({rt / cost['total_s']:.0f}x realtime) |",
        f"| source previews ({args.preview_format.upper()} encode + write) | {cost['preview']:.3f} s "
        f"({100 * cost['preview'] / cost['total_s']:.1f} % of the run, {rt / cost['preview']:.0f}x realtime, "
        f"{1000 * cost['preview'] / cost['clips']:.0f} ms per clip) |",
        f"| figures (with axes) | {cost['plot']:.3f} s ({100 * cost['plot'] / cost['total_s']:.1f} % of the run, "
        f"{1000 * cost['plot'] / cost['clips']:.0f} ms per clip) |",
        f"| preview bytes / clip WAV bytes / figure bytes | {cost['preview_bytes'] / 1e6:.2f} / "
        f"{cost['wav_bytes'] / 1e6:.2f} / {cost['jpg_bytes'] / 1e6:.2f} MB "
        f"(previews {100 * cost['preview_bytes'] / cost['wav_bytes']:.0f} % of the WAVs) |",
        f"| render {args.clips} clips, before | {before['s']:.2f} s, {before['bytes'] / 1e6:.1f} MB |",
        f"| render {args.clips} clips, now (relative links) | {after['s']:.2f} s, {after['bytes'] / 1e6:.1f} MB "
        f"({after['s'] / before['s']:.2f}x the time before) |",
        f"| render {args.clips} clips, now, `embed_audio` | {embedded['s']:.2f} s, "
        f"{embedded['bytes'] / 1e6:.1f} MB |",
    ]
    per_s = (embedded["bytes"] - after["bytes"]) / (rt / cost["clips"] * args.clips)
    lines += ["", f"- The previews cost {cost['preview'] / cost['plot']:.1f}x the figures' time and "
              f"{100 * cost['preview_bytes'] / cost['wav_bytes']:.0f} % of the clip WAVs' bytes; embedding adds "
              f"about {per_s / 1000:.0f} kB of page per second of clip (both players, Opus 32 kb/s in base64), "
              "the time being the Opus encoding of the clips and of the FLAC previews."]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        write_section("report", "## Report: source previews, players and rendering (benchmarks/report.py)\n\n"
                      + text)


if __name__ == "__main__":
    main()
