#!/usr/bin/env python3
"""Whole pipeline x-realtime vs a librosa + noisereduce + pyloudnorm baseline, 1 vs 2 workers.

Input: >= 10 minutes of mixed-format audio (wav, flac, mp3, m4a, ogg, opus;
mono and stereo; 16-48 kHz) made from real speech and noise
(../shared/corpus when present, the demo fixtures otherwise) and encoded
with ffmpeg.  Ours: ``voiceprep run IN -o OUT`` (fish profile, denoise on)
with ``--jobs 1`` and ``--jobs 2``, warm numba cache.  Baseline: a script
doing the same with librosa (load, resample to 44.1 kHz mono),
noisereduce (default, stationary=False), pyloudnorm (measure, normalize to
-23 LUFS, peak-limit by scaling) and soundfile (write 16-bit), one file at
a time.  Also: ``voiceprep check`` wall time on a 20 s clip.

    python benchmarks/pipeline.py [--minutes 10]
"""

from __future__ import annotations

import argparse
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

FORMATS = [
    (".wav", 44100, 1, ()),
    (".flac", 48000, 2, ()),
    (".mp3", 44100, 2, ("-c:a", "libmp3lame", "-b:a", "128k")),
    (".m4a", 48000, 1, ("-c:a", "aac", "-b:a", "128k")),
    (".ogg", 22050, 1, ("-c:a", "libvorbis", "-q:a", "5")),
    (".opus", 48000, 1, ("-c:a", "libopus", "-b:a", "64k")),
    (".wav", 16000, 1, ()),
]

BASELINE = r"""
import sys, pathlib
import librosa, noisereduce, pyloudnorm, numpy as np, soundfile as sf
src, dst = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
dst.mkdir(parents=True, exist_ok=True)
for path in sorted(src.iterdir()):
    y, sr = librosa.load(path, sr=44100, mono=True)
    y = noisereduce.reduce_noise(y=y, sr=sr)
    meter = pyloudnorm.Meter(sr)
    lufs = meter.integrated_loudness(y)
    y = pyloudnorm.normalize.loudness(y, lufs, -23.0)
    peak = np.max(np.abs(y))
    if peak > 0.89:
        y = y * (0.89 / peak)
    sf.write(dst / (path.stem + ".wav"), y, sr, subtype="PCM_16")
"""


def make_inputs(folder: Path, minutes: float) -> float:
    """Write clips of 15-40 s in rotating formats until ``minutes`` are reached; returns seconds."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(7)
    total, k = 0.0, 0
    while total < minutes * 60:
        ext, rate, channels, ff = FORMATS[k % len(FORMATS)]
        seconds = float(rng.uniform(15, 40))
        mono = program(seconds, rate, seed=100 + k, snr_db=float(rng.uniform(5, 30)))
        audio = np.stack([mono, 0.9 * np.roll(mono, 10)]) if channels == 2 else mono[None]
        dst = folder / f"clip{k:03d}{ext}"
        if ff:
            tmp = folder / f".tmp{k}.wav"
            sf.write(tmp, audio.T, rate, subtype="FLOAT")
            cmd = ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", str(tmp), *ff, str(dst)]
            subprocess.run(cmd, check=True)
            tmp.unlink()
        else:
            sf.write(dst, audio.T, rate, subtype="PCM_16")
        total += seconds
        k += 1
    return total


def timed(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if done.returncode not in (0, 1):
        raise SystemExit(f"{cmd[:3]} failed: {done.stderr[-2000:]}")
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    args = parser.parse_args()
    exe = [sys.executable, "-m", "prep"]
    with tempfile.TemporaryDirectory() as tmp:
        tmpdir = Path(tmp)
        inp = tmpdir / "in" / "speaker"
        seconds = make_inputs(inp, args.minutes)
        n_files = len(list(inp.iterdir()))
        # warm the numba cache and imports
        timed([*exe, "run", str(inp / "clip000.wav"), "-o", str(tmpdir / "warm"), "-q", "--jobs", "1"])
        one = timed([*exe, "run", str(inp), "-o", str(tmpdir / "o1"), "-q", "--jobs", "1"])
        two = timed([*exe, "run", str(inp), "-o", str(tmpdir / "o2"), "-q", "--jobs", "2"])
        base = timed([sys.executable, "-c", BASELINE, str(inp), str(tmpdir / "base")])
        clip20 = tmpdir / "clip20.wav"
        sf.write(clip20, program(20.0, 44100, seed=3), 44100, subtype="PCM_16")
        check = min(timed([*exe, "check", str(clip20)]) for _ in range(3))
    rows = [
        ("baseline: librosa + noisereduce + pyloudnorm (1 process)", base, 1.0),
        ("voiceprep run --jobs 1", one, base / one),
        ("voiceprep run --jobs 2", two, base / two),
    ]
    table = ["| pipeline | wall s | x realtime | speed vs baseline |", "|---|---|---|---|"]
    table += [f"| {name} | {wall:.1f} | {seconds / wall:.1f} | {ratio:.2f}x |" for name, wall, ratio in rows]
    md = (
        "## Whole pipeline (benchmarks/pipeline.py)\n\n"
        f"{seconds / 60:.1f} min of mixed-format audio in {n_files} files (wav/flac/mp3/m4a/ogg/opus, 16-48 kHz, "
        "mono/stereo, real speech + noise at 5-30 dB SNR when ../shared/corpus is present). Fish profile with "
        "denoise on; warm numba cache; wall time of the whole command including start-up.\n\n"
        + "\n".join(table)
        + f"\n\nSpeed-up from 2 workers: {one / two:.2f}x. "
        f"`voiceprep check` on a 20 s clip (warm cache, best of 3, whole process): {check:.2f} s.\n"
        "Targets: >= 4x the baseline; >= 1.8x from 2 workers; check < 1.5 s.\n"
    )
    write_section("pipeline", md)
    print(md)


if __name__ == "__main__":
    main()
