#!/usr/bin/env python3
"""Source previews (the report's "before" player): CPU, bytes and spectral distance, old route vs new.

The 10-minute set of ``benchmarks/pipeline.py`` (seven formats, 16-48 kHz, mono and stereo), each
file whole as one span:

* **before**: every channel of the source, Opus at the lowest Opus rate at or above the file's rate;
* **now**: the channel mean (what the pipeline's downmix gives these files, and what a long
  file's preview always was), Opus at the lowest rate whose Nyquist holds the file's measured
  bandwidth (:func:`prep.dsp.estimators.bandwidth_hz`, the ``source_bandwidth_hz`` metric).

Both at 32 kb/s per channel, complexity 0, ``OPUS_FRAME_MS`` packets (:func:`prep.report.audio.opus_ogg`).
CPU: ``time.process_time`` around each encode, best of ``--repeats``.  Log-spectral distance:
the decoded preview (channels averaged) against the channel mean of the source resampled to
48 kHz (soxr), aligned by cross-correlation, 20 ms Hann frames, RMS over the bins from 50 Hz to
the measured bandwidth of the dB difference, mean over the frames within 50 dB of the loudest.

    python benchmarks/preview_codec.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soxr

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks._results import write_section
from benchmarks.pipeline import FORMATS, make_inputs
from prep.dsp.estimators import bandwidth_hz
from prep.report.audio import OPUS_FRAME_MS, opus_ogg, opus_rate
from prep.run.decode import load


def _decode(data: bytes) -> tuple[np.ndarray, int]:
    import av

    with av.open(io.BytesIO(data)) as container:
        pcm = [f.to_ndarray() for f in container.decode(audio=0)]
        rate = container.streams.audio[0].rate
    x = np.concatenate([p.reshape(p.shape[0] if p.ndim == 2 else 1, -1) for p in pcm], axis=1)
    return x.mean(axis=0), rate


def lsd_db(ref: np.ndarray, rate: int, test: np.ndarray, top_hz: float) -> float:
    """Mean over active 20 ms frames of the RMS dB difference of the power spectra, 50 Hz to ``top_hz``."""
    probe = ref[rate : 3 * rate]
    lags = range(-400, 401)
    lag = max(lags, key=lambda d: float(np.dot(probe, test[rate + d : 3 * rate + d])))
    test = test[lag:] if lag >= 0 else np.concatenate([np.zeros(-lag), test])
    n = min(ref.size, test.size)
    size = int(0.02 * rate)
    frames = n // size
    win = np.hanning(size)
    a = np.abs(np.fft.rfft(ref[: frames * size].reshape(frames, size) * win)) ** 2
    b = np.abs(np.fft.rfft(test[: frames * size].reshape(frames, size) * win)) ** 2
    freqs = np.fft.rfftfreq(size, 1.0 / rate)
    band = (freqs >= 50.0) & (freqs <= top_hz)
    energy = a.sum(axis=1)
    active = energy >= energy.max() * 1e-5
    floor = a[active][:, band].max() * 1e-10
    diff = 10 * np.log10((a[active][:, band] + floor) / (b[active][:, band] + floor))
    return float(np.mean(np.sqrt(np.mean(diff**2, axis=1))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "set"
        make_inputs(folder, 10.0, seed=7, formats=FORMATS)
        for path in sorted(folder.iterdir()):
            audio, rate = load(path)
            mono = audio.mean(axis=0, dtype=np.float32)
            bw = bandwidth_hz(mono, sample_rate=rate)
            ref48 = soxr.resample(mono.astype(np.float64), rate, 48000)
            row = {"file": path.name, "rate": rate, "channels": audio.shape[0], "seconds": mono.size / rate, "bw": bw}
            for route, signal, band in (("before", audio, None), ("now", mono, bw)):
                best, data = np.inf, b""
                for _ in range(args.repeats):
                    t = time.process_time()
                    data = opus_ogg(signal, sample_rate=rate, bandwidth_hz=band)
                    best = min(best, time.process_time() - t)
                decoded, out_rate = _decode(data)
                ref = ref48 if out_rate == 48000 else soxr.resample(ref48, 48000, out_rate)
                row[route] = {"cpu": best, "bytes": len(data), "lsd": lsd_db(ref, out_rate, decoded, min(bw, 20000.0)),
                              "opus_rate": opus_rate(sample_rate=rate, bandwidth_hz=band)}
            rows.append(row)
            print(row, flush=True)
    total = sum(r["seconds"] for r in rows)
    lines = ["| file | rate, channels | bandwidth | before: Opus rate, CPU ms, bytes, LSD | now: Opus rate, CPU ms, "
             "bytes, LSD |", "|---|---|---|---|---|"]
    for r in rows:
        b, n = r["before"], r["now"]
        lines.append(f"| {r['file']} ({r['seconds']:.0f} s) | {r['rate']} Hz, {r['channels']} ch | {r['bw']:.0f} Hz | "
                     f"{b['opus_rate'] // 1000} kHz, {1000 * b['cpu']:.1f}, {b['bytes']}, {b['lsd']:.2f} dB | "
                     f"{n['opus_rate'] // 1000} kHz, {1000 * n['cpu']:.1f}, {n['bytes']}, {n['lsd']:.2f} dB |")
    for route in ("before", "now"):
        cpu = sum(r[route]["cpu"] for r in rows)
        size = sum(r[route]["bytes"] for r in rows)
        lsd = np.mean([r[route]["lsd"] for r in rows])
        lines.append(f"| **all, {route}** | | | {cpu:.3f} s CPU = {total / cpu:.0f}x realtime, {size / 1e6:.2f} MB, "
                     f"mean LSD {lsd:.2f} dB | |")
    cpu_b, cpu_n = (sum(r[k]["cpu"] for r in rows) for k in ("before", "now"))
    md = (
        "## Source previews: CPU, bytes, spectral distance (benchmarks/preview_codec.py)\n\n"
        f"The 10-minute set ({total / 60:.1f} min, {len(rows)} files), each file whole. *before*: all channels "
        "at the lowest Opus rate at or above the file's rate; *now*: the channel mean at the lowest Opus rate "
        "whose Nyquist holds the measured bandwidth. 32 kb/s per channel, complexity 0, "
        f"{OPUS_FRAME_MS} ms packets. CPU time "
        f"(`time.process_time`, best of {args.repeats}; the machine was shared). LSD: log-spectral distance of "
        "the decoded preview (channels averaged) to the source's channel mean, 20 ms frames, 50 Hz to the "
        "measured bandwidth.\n\n" + "\n".join(lines) + "\n\n"
        f"Now / before CPU: {cpu_n / cpu_b:.2f}.\n"
    )
    write_section("preview_codec", md)
    print(md)


if __name__ == "__main__":
    main()
