"""Benchmark: voiceprep's BS.1770-4 meter vs pyebur128 (libebur128) and pyloudnorm.

Measures, in one run on this machine, the speed (x realtime) and the peak
extra memory of an integrated-loudness measurement of 10 minutes of 44.1 kHz
mono and 48 kHz stereo audio, and of a full measurement (integrated +
loudness range + true peak; pyloudnorm has no true peak or range), plus the
cold numba compile time of the kernels.  Writes its section of
``benchmarks/RESULTS.md``.

The audio is real recordings from the shared corpus (``/work/shared/corpus``,
or ``$VOICEPREP_CORPUS``) at the scenario's rate, concatenated and tiled to
the requested length; without the corpus, speech-like synthetic noise.

Each (peer, scenario) runs in its own subprocess so peak memory can be read
from the kernel: the inputs are built in each peer's native layout first
(not timed, not counted), the peak-RSS mark is reset (``/proc/self/clear_refs``)
and the measurement's high-water mark above the resident baseline is
reported.  Times are the best of ``--repeats`` runs after a warm-up.

Run: ``python benchmarks/loudness.py [--minutes 10] [--repeats 3]``
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SCENARIOS = {"44.1 kHz mono": (44100, 1), "48 kHz stereo": (48000, 2)}
PEERS = ("voiceprep", "pyebur128", "pyloudnorm")
FULL_PEERS = ("voiceprep full", "pyebur128 full")
CORPUS = Path(os.environ.get("VOICEPREP_CORPUS", "/work/shared/corpus"))


# -- input ------------------------------------------------------------------------


def _corpus_mono(rate: int) -> tuple[list[np.ndarray], list[str]]:
    """Mono float32 recordings of the corpus recorded at exactly ``rate``."""
    import soundfile as sf

    pieces, names = [], []
    if not CORPUS.is_dir():
        return pieces, names
    for path in sorted(CORPUS.rglob("*")):
        if path.suffix.lower() not in {".wav", ".flac", ".ogg"} or "rir" in path.parts:
            continue
        try:
            info = sf.info(str(path))
            if info.samplerate != rate or info.duration < 1.0:
                continue
            data, _ = sf.read(str(path), dtype="float32", always_2d=True)
        except (RuntimeError, sf.LibsndfileError):
            continue
        pieces.append(np.ascontiguousarray(data.mean(axis=1)))
        names.append(str(path.relative_to(CORPUS)))
    return pieces, names


def build_signal(rate: int, channels: int, minutes: float) -> tuple[np.ndarray, str]:
    """(channels, samples) float32 of ``minutes`` of audio, and a description of its source."""
    n = round(minutes * 60 * rate)
    out = np.empty((channels, n), dtype=np.float32)
    pieces, names = _corpus_mono(rate)
    if pieces:
        loop = np.concatenate(pieces)
        source = f"{len(names)} corpus recordings at {rate} Hz ({loop.size / rate:.0f} s), tiled"
    else:
        rng = np.random.default_rng(0)
        t = np.arange(rate * 30) / rate
        loop = (0.1 * rng.standard_normal(t.size) * np.clip(np.sin(2 * np.pi * 4 * t), 0, None)).astype(np.float32)
        source = "synthetic speech-like noise (corpus not found), tiled"
    for c in range(channels):
        # The second channel is the same material shifted by 0.37 s (not identical to the first).
        shift = round(0.37 * rate * c) % loop.size
        src = np.roll(loop, -shift)
        for start in range(0, n, src.size):
            stop = min(n, start + src.size)
            out[c, start:stop] = src[: stop - start]
    return out, source


# -- peers --------------------------------------------------------------------------


def _prepare(peer: str, x: np.ndarray, rate: int):
    """Return a zero-argument callable measuring ``x`` with ``peer`` (inputs in the peer's native layout)."""
    channels = x.shape[0]
    if peer.startswith("voiceprep"):
        from prep.dsp.loudness import LoudnessMeter, integrated_loudness

        audio = x if channels > 1 else x[0]
        if peer == "voiceprep":
            return lambda: integrated_loudness(audio, sample_rate=rate)

        def full():
            meter = LoudnessMeter(sample_rate=rate, channels=channels).add(audio)
            return meter.integrated_lufs(), meter.loudness_range_lu(), meter.true_peak_dbtp()

        return full
    if peer.startswith("pyebur128"):
        import pyebur128 as e

        frames = np.ascontiguousarray(x.T).ravel()  # interleaved
        mode = e.MeasurementMode.MODE_I
        if peer == "pyebur128 full":
            mode |= e.MeasurementMode.MODE_LRA | e.MeasurementMode.MODE_TRUE_PEAK

        def run():
            state = e.R128State(channels, rate, mode)
            state.add_frames(frames, x.shape[1])
            if peer == "pyebur128":
                return e.get_loudness_global(state)
            peak = max(e.get_true_peak(state, c) for c in range(channels))
            return e.get_loudness_global(state), e.get_loudness_range(state), 20 * np.log10(peak)

        return run
    if peer == "pyloudnorm":
        import pyloudnorm as pyln

        data = x[0] if channels == 1 else x.T  # (samples,) or (samples, channels)
        return lambda: pyln.Meter(rate).integrated_loudness(data)
    raise SystemExit(f"unknown peer {peer!r}")


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def worker(peer: str, scenario: str, minutes: float, repeats: int) -> dict:
    """Run in a subprocess: time and peak memory of one peer on one scenario."""
    rate, channels = SCENARIOS[scenario]
    x, source = build_signal(rate, channels, minutes)
    short = np.ascontiguousarray(x[:, : 10 * rate])
    _prepare(peer, short, rate)()  # warm-up: imports, numba cache load / compile
    run = _prepare(peer, x, rate)
    gc.collect()
    baseline = _status_kb("VmRSS")
    try:
        Path("/proc/self/clear_refs").write_text("5")  # reset the peak-RSS mark (Linux >= 4.0)
        reset = True
    except OSError:
        reset = False
    t0 = time.perf_counter()
    value = run()
    times = [time.perf_counter() - t0]
    peak_kb = _status_kb("VmHWM") - baseline if reset else None
    for _ in range(repeats - 1):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    value = [float(v) for v in value] if isinstance(value, tuple) else float(value)
    return {
        "value": value,
        "best_s": min(times),
        "times_s": times,
        "peak_mb": None if peak_kb is None else max(0, peak_kb) / 1024,
        "input_mb": x.nbytes / 2**20,
        "duration_s": x.shape[1] / rate,
        "source": source,
    }


def compile_worker() -> dict:
    """Cold numba compile time of the loudness kernels (fresh, empty cache directory)."""
    t0 = time.perf_counter()
    from prep.dsp import loudness

    t_import = time.perf_counter() - t0
    x = np.random.default_rng(0).standard_normal(48000).astype(np.float32) * 0.1
    t0 = time.perf_counter()
    loudness.integrated_loudness(x, sample_rate=48000)
    t_meter = time.perf_counter() - t0
    t0 = time.perf_counter()
    loudness.true_peak(x, sample_rate=48000)
    t_peak = time.perf_counter() - t0
    t0 = time.perf_counter()
    loudness.normalize(x, sample_rate=48000, target_lufs=-10.0)
    t_norm = time.perf_counter() - t0
    return {"import_s": t_import, "meter_s": t_meter, "true_peak_s": t_peak, "normalize_s": t_norm}


def _spawn(args: list[str], env: dict | None = None) -> dict:
    out = subprocess.run([sys.executable, __file__, *args], check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


# -- report ---------------------------------------------------------------------------


def _fmt_value(value) -> str:
    if isinstance(value, list):
        return f"I {value[0]:.3f} LUFS, LRA {value[1]:.2f} LU, TP {value[2]:.2f} dBTP"
    return f"{value:.4f} LUFS"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--worker", nargs=2, metavar=("PEER", "SCENARIO"), help=argparse.SUPPRESS)
    parser.add_argument("--compile-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--no-write", action="store_true", help="print only, do not touch RESULTS.md")
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker[0], args.worker[1], args.minutes, args.repeats)))
        return
    if args.compile_worker:
        print(json.dumps(compile_worker()))
        return

    with tempfile.TemporaryDirectory() as cache:
        cold = _spawn(["--compile-worker"], env={**os.environ, "NUMBA_CACHE_DIR": cache})

    lines = [
        f"BS.1770-4 meter on {args.minutes:g} minutes of audio; best of {args.repeats} runs after a warm-up; "
        "x realtime = audio duration / wall time; peak memory = high-water RSS above the resident "
        "baseline (inputs already built in each peer's native layout: voiceprep (channels, samples) "
        "float32, pyebur128 interleaved float32, pyloudnorm (samples, channels)).",
        "",
    ]
    summary = []
    for scenario in SCENARIOS:
        results = {}
        for peer in (*PEERS, *FULL_PEERS):
            results[peer] = _spawn(
                ["--worker", peer, scenario, "--minutes", str(args.minutes), "--repeats", str(args.repeats)]
            )
            r = results[peer]
            print(
                f"{scenario:14s} {peer:16s} {r['duration_s'] / r['best_s']:9.0f}x realtime  "
                f"{r['best_s']:.3f} s  peak {r['peak_mb']} MB  {_fmt_value(r['value'])}",
                flush=True,
            )
        ours, ours_full = results["voiceprep"], results["voiceprep full"]
        lines += [
            f"### {scenario} ({ours['duration_s'] / 60:g} min, input {ours['input_mb']:.0f} MB; {ours['source']})",
            "",
            "| measurement | peer | x realtime | wall s | peak extra memory MB | result |",
            "|---|---|---:|---:|---:|---|",
        ]
        for peer, r in results.items():
            kind = "I + LRA + true peak" if peer.endswith("full") else "integrated (I)"
            name = peer.replace(" full", "")
            peak = "n/a" if r["peak_mb"] is None else f"{r['peak_mb']:.1f}"
            lines.append(
                f"| {kind} | {name} | {r['duration_s'] / r['best_s']:.0f} | {r['best_s']:.3f} | {peak} | "
                f"{_fmt_value(r['value'])} |"
            )
        speed_ebu = results["pyebur128"]["best_s"] / ours["best_s"]
        speed_pyln = results["pyloudnorm"]["best_s"] / ours["best_s"]
        speed_full = results["pyebur128 full"]["best_s"] / ours_full["best_s"]
        diff_ebu = abs(ours["value"] - results["pyebur128"]["value"])
        diff_pyln = abs(ours["value"] - results["pyloudnorm"]["value"])
        lines += [
            "",
            f"- speed-up, integrated: **{speed_ebu:.1f}x pyebur128**, **{speed_pyln:.1f}x pyloudnorm**; "
            f"I + LRA + true peak: **{speed_full:.1f}x pyebur128**",
            f"- |I - pyebur128| = {diff_ebu:.2e} LU; |I - pyloudnorm| = {diff_pyln:.3f} LU "
            "(pyloudnorm's own filter design)",
            "",
        ]
        summary.append((scenario, speed_ebu, speed_pyln, speed_full, results))
    lines += [
        f"Cold numba compile (empty cache, first calls): meter {cold['meter_s']:.2f} s, "
        f"true peak {cold['true_peak_s']:.2f} s, normalize {cold['normalize_s']:.2f} s "
        f"(import {cold['import_s']:.2f} s).",
    ]
    for scenario, s_ebu, s_pyln, s_full, _ in summary:
        print(f"{scenario}: {s_ebu:.1f}x pyebur128, {s_pyln:.1f}x pyloudnorm, full {s_full:.1f}x pyebur128")
    print(f"cold compile: {cold}")
    if not args.no_write:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
        from benchmarks._results import write_section  # shared helper: machine info + section markers

        write_section("loudness", "\n".join(lines))
        print("wrote section 'loudness' of benchmarks/RESULTS.md")


if __name__ == "__main__":
    main()
