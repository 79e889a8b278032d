#!/usr/bin/env python3
"""Source previews (the report's "before" player): Opus against lossless FLAC, CPU and bytes.

The 10-minute set of ``benchmarks/pipeline.py`` (seven formats, 16-48 kHz, mono and stereo), each
file whole as one span, and the corpus speech recordings (``../shared/corpus/speech``, when
present), each as the channel mean (what the pipeline's downmix gives these files):

* **Opus**: :func:`prep.report.audio.opus_ogg`, 32 kb/s, complexity 0, ``OPUS_FRAME_MS`` packets,
  at the lowest Opus rate whose Nyquist holds the measured bandwidth (the ``--preview-format opus``
  route, and every preview before stop 22's lossless previews);
* **FLAC, ours**: :func:`prep.report.audio.flac_preview`, 16-bit at the file's rate, our encoder
  (:mod:`prep.kernels.flac`: FIXED and LPC subframes up to order ``FLAC_MAX_LPC_ORDER``, partitioned
  Rice), and the same with FIXED predictors only (orders 0-4, LPC order 0);
* **FLAC, libsndfile**: what ``flac_preview`` was before (``sf.write`` of the clipped float samples,
  16-bit), at each libsndfile compression level 0, 0.25, 0.5, 0.75, 1 (libFLAC 0-8; 0.5 = level 4 was
  the default).

CPU: ``time.process_time`` around each encode (in memory, no disk), best of ``--repeats``, the FLAC
routes interleaved (one round of every route, ``--repeats`` rounds).
LSD (Opus only; FLAC is the source within 16-bit quantisation, its largest error is given): the
decoded preview against the source resampled to its rate (soxr), aligned by cross-correlation,
20 ms Hann frames, RMS over the bins from 50 Hz to the measured bandwidth of the dB difference, mean
over the frames within 50 dB of the loudest.

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
from benchmarks._results import CORPUS, write_section
from benchmarks.pipeline import FORMATS, make_inputs
from prep.dsp.estimators import bandwidth_hz
from prep.report.audio import OPUS_FRAME_MS, _encodable, _flac_stream, flac_pcm16, flac_preview, opus_ogg, opus_rate
from prep.run.decode import load

LEVELS = (0.0, 0.25, 0.5, 0.75, 1.0)
#: libsndfile's level that was flac_preview's (libFLAC 4): the reference of the bytes ratios.
OLD_LEVEL = 0.5
_EXT = {".wav", ".flac", ".mp3", ".m4a", ".ogg", ".opus"}


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


def _best(fn, repeats: int) -> tuple[float, bytes]:
    best, data = np.inf, b""
    for _ in range(repeats):
        t = time.process_time()
        data = fn()
        best = min(best, time.process_time() - t)
    return best, data


def measure(path: Path, repeats: int) -> dict:
    """One file whole: Opus (CPU, bytes, LSD) and FLAC at each level (CPU, bytes, largest error)."""
    import soundfile as sf

    audio, rate = load(path)
    mono = audio.mean(axis=0, dtype=np.float32)
    bw = bandwidth_hz(mono, sample_rate=rate)
    row = {"file": path.name, "rate": rate, "channels": audio.shape[0], "seconds": mono.size / rate, "bw": bw}
    cpu, data = _best(lambda: opus_ogg(mono, sample_rate=rate, bandwidth_hz=bw), repeats)
    decoded, out_rate = _decode(data)
    ref = soxr.resample(mono.astype(np.float64), rate, out_rate)
    row["opus"] = {"cpu": cpu, "bytes": len(data), "rate": opus_rate(sample_rate=rate, bandwidth_hz=bw),
                   "lsd": lsd_db(ref, out_rate, decoded, min(bw, 20000.0)) if mono.size >= 4 * rate else np.nan}
    routes = {"ours": lambda: flac_preview(mono, sample_rate=rate),
              "ours, FIXED only": lambda: _fixed_only(mono, rate)}
    routes |= {level: (lambda level=level: _libsndfile(mono, rate, level)) for level in LEVELS}
    best = dict.fromkeys(routes, np.inf)
    for _ in range(repeats):
        for name, fn in routes.items():
            t = time.process_time()
            data = fn()
            best[name] = min(best[name], time.process_time() - t)
            if name not in row:
                back, _ = sf.read(io.BytesIO(data), dtype="float32")
                row[name] = {"bytes": len(data), "err": float(np.abs(back - np.clip(mono, -1, 1)).max()),
                             "int16": sf.read(io.BytesIO(data), dtype="int16")[0]}
    same = all(np.array_equal(row[name].pop("int16"), row[OLD_LEVEL]["int16"]) for name in routes if name != OLD_LEVEL)
    row[OLD_LEVEL].pop("int16")
    assert same, f"{path.name}: a FLAC route decodes to other samples than libsndfile's"
    for name in routes:
        row[name]["cpu"] = best[name]
    return row


def _libsndfile(mono: np.ndarray, rate: int, level: float) -> bytes:
    """The FLAC preview as it was before our encoder: libsndfile at compression ``level``."""
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, np.clip(mono, -1.0, 1.0), rate, format="FLAC", subtype="PCM_16", compression_level=level)
    return buf.getvalue()


def _fixed_only(mono: np.ndarray, rate: int) -> bytes:
    """Our encoder with FIXED predictors only (no LPC)."""
    rate, x = _encodable(mono, sample_rate=rate)
    return _flac_stream(flac_pcm16(x).astype(np.int32), rate, max_lpc_order=0)


def _totals(rows: list[dict], name_set: str) -> list[str]:
    total = sum(r["seconds"] for r in rows)
    pcm = sum(r["seconds"] * r["rate"] * 2 for r in rows)
    opus_cpu = sum(r["opus"]["cpu"] for r in rows)
    opus_bytes = sum(r["opus"]["bytes"] for r in rows)
    lsd = np.nanmean([r["opus"]["lsd"] for r in rows])  # files under 4 s: no LSD (its alignment needs 3 s)
    lines = [f"| {name_set}, Opus | {opus_cpu:.3f} s = {total / opus_cpu:.0f}x | {opus_bytes / 1e6:.2f} MB | "
             f"{opus_bytes / pcm:.3f} | 1.00 | | | mean LSD {lsd:.2f} dB |"]
    ref = sum(r[OLD_LEVEL]["bytes"] for r in rows)
    ref_cpu = sum(r[OLD_LEVEL]["cpu"] for r in rows)
    for name in ("ours", "ours, FIXED only", *LEVELS):
        cpu = sum(r[name]["cpu"] for r in rows)
        size = sum(r[name]["bytes"] for r in rows)
        label = f"FLAC {name}" if isinstance(name, str) else f"FLAC libsndfile {name:g}"
        label += " (default)" if name == "ours" else " (before)" if name == OLD_LEVEL else ""
        lines.append(f"| {name_set}, {label} | {cpu:.3f} s = {total / cpu:.0f}x | {size / 1e6:.2f} MB | "
                     f"{size / pcm:.3f} | {cpu / opus_cpu:.2f} | {cpu / ref_cpu:.2f} | {size / ref:.4f} | "
                     f"largest error {max(r[name]['err'] for r in rows) * 32768:.2f} LSB |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rows, corpus = [], []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "set"
        make_inputs(folder, 10.0, seed=7, formats=FORMATS)
        for path in sorted(folder.iterdir()):
            rows.append(measure(path, args.repeats))
            print(rows[-1], flush=True)
    speech = CORPUS / "speech"
    for path in sorted(p for p in speech.glob("*") if p.suffix in _EXT) if speech.is_dir() else []:
        corpus.append(measure(path, args.repeats))
        print(corpus[-1]["file"], flush=True)
    lines = ["| file | rate, channels | bandwidth | Opus: rate, CPU ms, bytes, LSD | "
             f"FLAC ours: CPU ms, bytes | FLAC libsndfile {OLD_LEVEL:g} (before): CPU ms, bytes |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        o, f, b = r["opus"], r["ours"], r[OLD_LEVEL]
        lines.append(f"| {r['file']} ({r['seconds']:.0f} s) | {r['rate']} Hz, {r['channels']} ch | {r['bw']:.0f} Hz | "
                     f"{o['rate'] // 1000} kHz, {1000 * o['cpu']:.1f}, {o['bytes']}, {o['lsd']:.2f} dB | "
                     f"{1000 * f['cpu']:.1f}, {f['bytes']} | {1000 * b['cpu']:.1f}, {b['bytes']} |")
    totals = ["| set, route | CPU (x realtime) | bytes | of 16-bit PCM at the file's rate | CPU / Opus's | "
              f"CPU / libsndfile {OLD_LEVEL:g}'s | bytes / libsndfile {OLD_LEVEL:g}'s | |",
              "|---|---:|---:|---:|---:|---:|---:|---|", *_totals(rows, "10-minute set")]
    if corpus:
        totals += _totals(corpus, f"corpus speech ({len(corpus)} files, {sum(r['seconds'] for r in corpus):.0f} s)")
    md = (
        "## Source previews: Opus against lossless FLAC (benchmarks/preview_codec.py)\n\n"
        f"The 10-minute set ({sum(r['seconds'] for r in rows) / 60:.1f} min, {len(rows)} files) and the corpus "
        "speech recordings, each file whole, as the channel mean. *Opus*: 32 kb/s, complexity 0, "
        f"{OPUS_FRAME_MS} ms packets, at the lowest Opus rate whose Nyquist holds the measured bandwidth. "
        "*FLAC*: 16-bit at the file's rate: *ours* (`prep.kernels.flac`, the default: FIXED and LPC subframes, "
        "partitioned Rice), the same with FIXED predictors only, and libsndfile at compression level 0-1 "
        f"(libFLAC 0-8; {OLD_LEVEL:g} = level 4 was `flac_preview` before); every FLAC route decodes to the same "
        "16-bit samples (checked). CPU time of the encode in memory (`time.process_time`, best of "
        f"{args.repeats}, the FLAC routes interleaved; the machine was shared). LSD: "
        "log-spectral distance of the decoded Opus to the source, 20 ms frames, 50 Hz to the measured "
        "bandwidth; FLAC's largest error is in 16-bit steps.\n\n" + "\n".join(lines) + "\n\n"
        + "\n".join(totals) + "\n"
    )
    write_section("preview_codec", md)
    print(md)


if __name__ == "__main__":
    main()
