"""Benchmark: Whisper tiny.en and base (bundled, CTranslate2 int8, 1 thread) on real read speech.

Inputs (nothing is copied into the repo): every speech recording of ``../shared/corpus`` whose
``MANIFEST.md`` row carries an inline reference text (CMU ARCTIC, LibriSpeech, LibriTTS, LJSpeech, AMI,
JFK, Harvard sentences...), decoded by voiceprep, ASR at 16 kHz mono; the noise and music recordings
(first 30 s) plus synthetic silence and white/pink noise for the hallucination guards.

Measured, per model:

* mean / median / worst CER (normalised text, spaces kept) of the ASR text against the reference;
* speed as x realtime per core: audio seconds / CPU seconds of this process (``time.process_time``,
  the model runs with ``cpu_threads=1``; word timestamps on, beam 5, after one warm-up call);
* swapped transcripts: every recording verified against every *other* recording's reference (pairs
  with the same normalised text skipped): detection rate = share flagged; false alarms = share of
  recordings flagged against their own reference; at :data:`prep.asr.CER_THRESHOLD`, plus the CER
  distributions that calibrate it;
* guards: share of non-speech inputs whose text would be used (must be 0);
* the same per-clip measures with other encoder windows (``--windows MODEL:S``: ``min_window_s=S``;
  30 = Whisper's full window, the behaviour before the shortened window).

With ``--pipeline``: the whole fish profile with and without the ``transcribe`` stage (x realtime per
core of the profile and of transcription inside it, CER of the transcripts the profile writes, flagged
sidecars); see :func:`run_pipeline`.

Run: ``nice -n 15 python benchmarks/asr.py [--models tiny.en base] [--windows tiny.en:10 ...] [--quick] [--pipeline]``
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._results import CORPUS, write_section

SKIP_NOTES = ("(not available", "see ", "vad ground truth", "short (", "reverberant version", "mp3 re-encode")
NONSPEECH_S = 30.0
# Corpus labels that both models contradict the same way: scored apart (a wrong transcript the verifier
# should flag), not in the CER means or the false-alarm rate.
SUSPECT_LABELS = {
    "speech/sb_asr_spk2_snt5.wav": "labelled KEN PAIRS LACK FULL FLAVOR; tiny.en and base both hear "
                                   "'Jump the fence and hurry up the bank' (another Harvard sentence)",
}


def corpus_references() -> list[tuple[str, str]]:
    """(relative path, reference text) of the corpus speech rows with an inline transcript."""
    manifest = (CORPUS / "MANIFEST.md").read_text(encoding="utf-8")
    section = manifest.split("## Speech", 1)[1].split("\n## ", 1)[0]
    out = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 8 or not cells[0].startswith("speech/") or not cells[4]:
            continue
        text = cells[7]
        if text.lower().startswith(SKIP_NOTES) or text == "":
            continue
        text = re.sub(r"\(\d[^)]*\)", " ", text)  # "(1.46-2.82 s)" time stamps
        text = re.split(r";|\s{2}\(label", text)[0].replace(" / ", " ").strip()
        if text:
            out.append((cells[0], text))
    return out


def nonspeech_inputs(rate: int, quick: bool) -> list[tuple[str, np.ndarray]]:
    from prep.run.decode import load

    paths = sorted((CORPUS / "noise").glob("*.wav")) + [
        p for p in sorted((CORPUS / "music").glob("*")) if p.suffix in (".ogg", ".wav")
        and "Lets_Go_Fishin" not in p.name and "opera" not in p.name  # sung words are speech
    ]
    if quick:
        paths = paths[::4]
    out = []
    for p in paths:
        audio, r = load(p)
        import soxr

        x = audio.mean(axis=0)[: int(NONSPEECH_S * r)]
        out.append((f"{p.parent.name}/{p.stem}", soxr.resample(x, r, rate).astype(np.float32)))
    rng = np.random.default_rng(13)
    n = 10 * rate
    out.append(("silence", np.zeros(n, np.float32)))
    out.append(("white noise -20 dBFS", (0.1 * rng.standard_normal(n)).astype(np.float32)))
    pink = np.fft.irfft(np.fft.rfft(rng.standard_normal(n)) / np.sqrt(np.arange(1, n // 2 + 2)), n)
    out.append(("pink noise", (0.1 * pink / pink.std()).astype(np.float32)))
    return out


def speech_seconds(x: np.ndarray, rate: int) -> float:
    from prep.dsp.vad import speech_regions

    return float(sum(b - a for a, b in speech_regions(x, sample_rate=rate)))


def verification_rates(results) -> tuple[np.ndarray, float, np.ndarray, float]:
    """(own CERs, own flagged share, swapped CERs, swapped flagged share) of [(path, ref, result, problems)]."""
    from prep.asr import verify_transcript
    from prep.text import normalize_text

    own = [verify_transcript(ref, res, asr_problems=p) for _, ref, res, p in results]
    swapped = []
    for i, (_, ref_i, res, p) in enumerate(results):
        for j, (_, ref_j, _, _) in enumerate(results):
            if i != j and normalize_text(ref_j) != normalize_text(ref_i):
                swapped.append(verify_transcript(ref_j, res, asr_problems=p))
    return (np.array([v.cer for v in own]), float(np.mean([not v.matches for v in own])),
            np.array([v.cer for v in swapped]), float(np.mean([not v.matches for v in swapped])))


def run_packed(model, clips, nonspeech, rate: int) -> dict:
    """Speech clips through transcribe_many; then again with 5 s non-speech snippets between them."""
    from prep.asr import check_asr, transcribe_many
    from prep.text import cer

    xs = [x for _, _, x in clips]
    lang = "en" if model.multilingual else None
    t = time.process_time()
    res = transcribe_many(xs, sample_rate=rate, model=model, language=lang)
    cpu = time.process_time() - t
    every = [(path, ref, r, check_asr(r, duration_s=x.size / rate, speech_s=speech_seconds(x, rate)))
             for (path, ref, x), r in zip(clips, res, strict=True)]
    results = [r for r in every if r[0] not in SUSPECT_LABELS]
    own_cer, own_flag, swap_cer, swap_flag = verification_rates(results)
    snippets = [x[: 5 * rate] for _, x in nonspeech]
    mixed, kinds = [], []
    for k, x in enumerate(xs):
        mixed.append(x)
        kinds.append("speech")
        if k < len(snippets):
            mixed.append(snippets[k])
            kinds.append("other")
    mres = transcribe_many(mixed, sample_rate=rate, model=model, language=lang)
    used = [r.text for x, r, kind in zip(mixed, mres, kinds, strict=True)
            if kind == "other" and not check_asr(r, duration_s=x.size / rate, speech_s=speech_seconds(x, rate))]
    speech_res = [r for r, k in zip(mres, kinds, strict=True) if k == "speech"]
    mixed_cers = [cer(ref, r.text) for (path, ref, _), r in zip(clips, speech_res, strict=True)
                  if path not in SUSPECT_LABELS]
    cers = np.array([cer(ref, r.text) for _, ref, r, _ in results])
    return {"xrt": sum(x.size for x in xs) / rate / cpu, "cers": cers,
            "own_cer": own_cer, "own_flagged": own_flag, "swap_cer": swap_cer, "swap_flagged": swap_flag,
            "mixed_used": used, "n_mixed_other": kinds.count("other"), "mixed_cer": float(np.mean(mixed_cers)),
            "unusable_speech": [path for path, _, _, p in results if p], "suspect": suspect_outcomes(every)}


def suspect_outcomes(every) -> list[str]:
    """How the suspect-label recordings fared: CER against the label and whether the verifier flagged it."""
    from prep.asr import verify_transcript

    out = []
    for path, ref, res, problems in every:
        if path in SUSPECT_LABELS:
            v = verify_transcript(ref, res, asr_problems=problems)
            out.append(f"{path}: CER {v.cer:.2f} against the label, {'flagged' if not v.matches else 'NOT flagged'}"
                       f" ({SUSPECT_LABELS[path]})")
    return out


def run_model(name: str, clips, nonspeech, rate: int, min_window_s: float | None = None) -> dict:
    """Per-clip measures of one model; ``min_window_s`` = 30: Whisper's full window (no packed run)."""
    from prep.asr import check_asr, load_asr_model, transcribe
    from prep.text import cer

    full = min_window_s is not None
    window = {"min_window_s": min_window_s}  # None: the model's default
    t0 = time.process_time()
    model = load_asr_model(name, device="cpu")
    load_cpu = time.process_time() - t0
    transcribe(clips[0][2][: rate * 2], sample_rate=rate, model=model, **window)  # warm-up
    results, cpu, audio_s = [], 0.0, 0.0
    for path, ref, x in clips:
        t = time.process_time()
        res = transcribe(x, sample_rate=rate, model=model, language="en" if model.multilingual else None, **window)
        cpu += time.process_time() - t
        audio_s += x.size / rate
        problems = check_asr(res, duration_s=x.size / rate, speech_s=speech_seconds(x, rate))
        results.append((path, ref, res, problems))
        print(f"  {name} {path}: CER {cer(ref, res.text):.3f} {problems} | {res.text[:70]}", flush=True)
    every, results = results, [r for r in results if r[0] not in SUSPECT_LABELS]
    cers = np.array([cer(ref, res.text) for _, ref, res, _ in results])
    own_cer, own_flag, swap_cer, swap_flag = verification_rates(results)
    guarded = []
    for label, x in nonspeech:
        res = transcribe(x, sample_rate=rate, model=model, **window)
        problems = check_asr(res, duration_s=x.size / rate, speech_s=speech_seconds(x, rate))
        guarded.append((label, res.text, problems))
        print(f"  {name} {label}: {problems} | {res.text[:70]!r}", flush=True)
    bad_words = sum(1 for _, _, r, _ in every for w in r.words if not 0 <= w.start <= w.end <= r.duration_s)
    return {
        "name": (f"{name} (full 30 s window)" if min_window_s == 30 else f"{name} (window >= {min_window_s:g} s)")
        if full else name, "load_cpu": load_cpu, "bad_words": bad_words,
        "cers": cers, "xrt": audio_s / cpu, "audio_s": audio_s,
        "own_cer": own_cer, "own_flagged": own_flag, "swap_cer": swap_cer, "swap_flagged": swap_flag,
        "n_swapped": len(swap_cer), "guarded": guarded,
        "unusable_speech": [path for path, _, _, p in results if p],
        "suspect": suspect_outcomes(every),
        "packed": None if full else run_packed(model, clips, nonspeech, rate),
    }


def _profile_cpu(jobs, stages) -> tuple[float, list]:
    """Process CPU seconds of :func:`process_job` over ``jobs`` (serial, in this process) and the clips."""
    from prep.run.runner import process_job

    t = time.process_time()
    clips = [c for job in jobs for c in process_job(job, stages)]
    return time.process_time() - t, clips


def run_pipeline(quick: bool) -> None:
    """Whole fish profile with and without the transcribe stage on the corpus speech (section ``asr_pipeline``).

    Two input sets from the recordings with a reference text: each recording as its own file (short
    clips, 1.5-16 s), and all of them joined with 1 s pauses into one file the profile slices into
    10-30 s clips.  Each set runs through ``process_job`` in this process (fish profile, 1 thread)
    with ``--transcribe never`` and ``auto`` (no sidecars: ASR fills every transcript) and, for the
    per-file set, ``auto`` with the reference as the sidecar (verification) and with a swapped one.
    """
    import tempfile

    import soundfile as sf

    from prep.run.decode import load
    from prep.run.profiles import get_profile
    from prep.run.runner import Job
    from prep.text import cer

    refs = [(p, r) for p, r in corpus_references() if p not in SUSPECT_LABELS]
    if quick:
        refs = refs[::4]
    # The joined file strings several speakers together: diarisation would keep only the main voice's
    # turns (--keep-voice main), so it is off here; this measures transcription, not speaker selection.
    fish = get_profile("fish").configure("diarise", model="")
    never = fish.configure("transcribe", mode="never").stages
    auto = fish.configure("transcribe", mode="auto", device="cpu").stages
    from prep.asr import load_asr_model

    load_asr_model("tiny.en", device="cpu")  # loaded once per process, as in a worker: not counted
    rows, notes = [], []
    with tempfile.TemporaryDirectory() as tmp:
        files, joined, texts = [], [], []
        for k, (path, ref) in enumerate(refs):
            audio, rate = load(CORPUS / path)
            x = audio.mean(axis=0)
            if rate != 16000:
                import soxr

                x = soxr.resample(x, rate, 16000).astype(np.float32)
            f = Path(tmp) / f"r{k:02d}.wav"
            sf.write(f, x, 16000, subtype="PCM_16")
            files.append((f, ref))
            joined += [x, np.zeros(16000, np.float32)]
            texts.append(ref)
        one = Path(tmp) / "joined.wav"
        sf.write(one, np.concatenate(joined), 16000, subtype="PCM_16")
        sets = {
            f"{len(files)} recordings, one file each": ([Job(str(f), "s") for f, _ in files],
                                                       {str(f): r for f, r in files}),
            "the same joined into one file (sliced 10-30 s)": ([Job(str(one), "s")], {str(one): " ".join(texts)}),
        }
        for label, (jobs, truth) in sets.items():
            audio_s = sum(sf.info(j.path).duration for j in jobs)
            _profile_cpu(jobs[:1], auto)  # warm-up (numba caches, first decode)
            cpu_never, _ = _profile_cpu(jobs, never)
            cpu_auto, clips = _profile_cpu(jobs, auto)
            heard: dict[str, list[str]] = {}
            for c in sorted(clips, key=lambda c: c.span_s[0]):
                if c.transcript:
                    heard.setdefault(c.source, []).append(c.transcript)
            cers = [cer(truth[src], " ".join(heard.get(src, []))) for src in truth]
            n_asr = sum(1 for c in clips if c.transcript_info and c.transcript_info.origin == "asr")
            asr_cpu = max(cpu_auto - cpu_never, 1e-9)
            rows.append(f"| {label} | {audio_s:.0f} | {len(clips)} | {audio_s / cpu_never:.1f} | "
                        f"{audio_s / cpu_auto:.1f} | {audio_s / asr_cpu:.1f} | {n_asr} | {np.mean(cers):.3f} |")
            print(rows[-1], flush=True)
        jobs = [Job(str(f), "s", transcript=r) for f, r in files]
        _, right = _profile_cpu(jobs, auto)
        swapped = [Job(str(f), "s", transcript=files[(k + 1) % len(files)][1]) for k, (f, _) in enumerate(files)]
        _, wrong = _profile_cpu(swapped, auto)

        def flagged(clips) -> int:
            return sum(1 for c in clips if any(f.code == "transcript.mismatch" for f in c.findings))

        notes.append(f"Verification inside the profile (`auto`, sidecar = the reference): "
                     f"{flagged(right)} of {len(right)} clips flagged `transcript.mismatch` (false alarms); "
                     f"with each file given the next file's reference: {flagged(wrong)} of {len(wrong)} flagged.")
    text = "\n".join([
        "## ASR inside the fish profile (benchmarks/asr.py --pipeline)", "",
        "`process_job` in one process (fish profile: denoise, trim, transcribe, slice, measure, loudness, score, "
        "voice; diarisation off: the joined file strings several speakers together; `cpu_threads=1`, "
        "tiny.en int8, beam 5, word timestamps), on the corpus recordings with a reference "
        "text, 16 kHz mono. x realtime per core = audio s / process CPU s; the model load (once per process) is "
        "not counted. `transcribe` alone = audio s / (CPU s with `auto` - CPU s with `never`), measured in the "
        "same run. CER of the clips' transcripts (joined in source order) against the references.", "",
        "| input | audio s | clips | whole profile, `--transcribe never` | whole profile, `auto` | "
        "`transcribe` alone | clips given ASR text | mean CER |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
        *rows, "", *notes,
    ])
    print(text)
    if not quick:
        write_section("asr_pipeline", text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["tiny.en", "base"])
    parser.add_argument("--windows", nargs="*", default=["tiny.en:10", "tiny.en:30", "base:15"],
                        help="MODEL:S runs with min_window_s=S besides the defaults (30 = Whisper's full window)")
    parser.add_argument("--quick", action="store_true", help="a few inputs (smoke test); results not written")
    parser.add_argument("--pipeline", action="store_true",
                        help="only the whole fish profile with and without the transcribe stage")
    args = parser.parse_args()
    if args.pipeline:
        run_pipeline(args.quick)
        return
    from prep.asr import CER_THRESHOLD, MIN_WINDOW_S, WINDOW_MARGIN_S
    from prep.run.decode import load

    if not (CORPUS / "MANIFEST.md").is_file():
        sys.exit(f"corpus not found at {CORPUS} (expected a checkout beside ../shared)")
    import soxr

    rate = 16000
    refs = corpus_references()
    if args.quick:
        refs = refs[::4]
    clips = []
    for path, ref in refs:
        audio, r = load(CORPUS / path)
        x = audio.mean(axis=0)
        clips.append((path, ref, soxr.resample(x, r, rate).astype(np.float32) if r != rate else x))
    nonspeech = nonspeech_inputs(rate, args.quick)
    t0 = time.perf_counter()
    runs = [run_model(m, clips, nonspeech, rate) for m in args.models]
    for spec in args.windows:
        m, w = spec.rsplit(":", 1)
        runs.append(run_model(m, clips, nonspeech, rate, min_window_s=float(w)))
    total_s = sum(c[2].size for c in clips if c[0] not in SUSPECT_LABELS) / rate
    n_trusted = sum(1 for c in clips if c[0] not in SUSPECT_LABELS)

    lines = ["## ASR: bundled Whisper models on real read speech", ""]
    n_src = len({p.split("/")[1].split("_")[0] for p, _ in refs})
    lines += [f"{n_trusted} corpus recordings with a reference text ({total_s:.0f} s, {n_src} sources), 16 kHz mono;"
              f"  CTranslate2 int8 on CPU, `cpu_threads=1`, beam 5, word timestamps on, "
              f"no VAD filter, `condition_on_previous_text=False`. Encoder window (default): "
              f"max({MIN_WINDOW_S:.0f} s, clip + "
              f"{WINDOW_MARGIN_S:.0f} s), at most 30 s, for English-only tiny.en, the full 30 s for multilingual "
              f"base (`prep.asr.transcribe`); rows marked *full 30 s window*: "
              f"`min_window_s=30`, Whisper's fixed window (the behaviour before); *window >= N s*: `min_window_s=N`; "
              f"same run. CER on normalised text "
              f"(`prep.text`), spaces kept. x realtime per core = audio s / process CPU s (`time.process_time`, "
              f"after a warm-up call; the machine was shared, CPU time is what is comparable).", ""]
    lines += ["| model | mean CER | median CER | worst CER | x realtime per core | load CPU s | "
              f"swapped flagged (n={runs[0]['n_swapped']}) | false alarms (n={n_trusted}) | non-speech text used | "
              "word times outside the clip |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in runs:
        used = sum(1 for _, _, p in r["guarded"] if not p)
        lines.append(
            f"| {r['name']} | {r['cers'].mean():.3f} | {np.median(r['cers']):.3f} | {r['cers'].max():.3f} | "
            f"{r['xrt']:.1f} | {'(loaded)' if r['packed'] is None else format(r['load_cpu'], '.2f')} | "
            f"{100 * r['swap_flagged']:.1f} % | "
            f"{100 * r['own_flagged']:.1f} % | {used} / {len(r['guarded'])} | {r['bad_words']} |"
        )
    lines += ["", "Packed (`transcribe_many`: consecutive clips share one 28 s Whisper window, 2 s gaps; words go "
              "to the clip their midpoint falls in; doubtful clips redone alone). "
              "Last column: the same clips with a 5 s non-speech snippet "
              "(corpus noise/music, synthetic silence/noise) packed after each of the first ones:", "",
              "| model | mean CER | median CER | worst CER | x realtime per core | swapped flagged | false alarms | "
              "mean CER / non-speech text used, interleaved |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in runs:
        p = r["packed"]
        if p is None:
            continue
        lines.append(
            f"| {r['name']} | {p['cers'].mean():.3f} | {np.median(p['cers']):.3f} | {p['cers'].max():.3f} | "
            f"{p['xrt']:.1f} | {100 * p['swap_flagged']:.1f} % | {100 * p['own_flagged']:.1f} % | "
            f"{p['mixed_cer']:.3f} / {len(p['mixed_used'])} of {p['n_mixed_other']} |"
        )
    lines += ["", f"Threshold `CER_THRESHOLD = {CER_THRESHOLD}` (a transcript is flagged when the CER exceeds it or "
              "the ASR text fails `check_asr`). Calibration, CER of own vs swapped references:", "",
              "| model | own: max / 95th pct | swapped: min / 5th pct | recordings whose ASR text failed the guards |",
              "|---|---:|---:|---|"]
    for r in runs:
        own = r["own_cer"][np.isfinite(r["own_cer"])]
        sw = r["swap_cer"][np.isfinite(r["swap_cer"])]
        lines.append(f"| {r['name']} | {own.max():.3f} / {np.percentile(own, 95):.3f} | "
                     f"{sw.min():.3f} / {np.percentile(sw, 5):.3f} | {', '.join(r['unusable_speech']) or 'none'} |")
        p = r["packed"]
        if p is None:
            continue
        own = p["own_cer"][np.isfinite(p["own_cer"])]
        sw = p["swap_cer"][np.isfinite(p["swap_cer"])]
        lines.append(f"| {r['name']}, packed | {own.max():.3f} / {np.percentile(own, 95):.3f} | "
                     f"{sw.min():.3f} / {np.percentile(sw, 5):.3f} | {', '.join(p['unusable_speech']) or 'none'} |")
    lines += ["", "Non-speech inputs (corpus noise and instrumental music, first 30 s; synthetic silence and "
              "noise): problems found by `check_asr` (text is used only when there are none):", "",
              "| input | " + " | ".join(r["name"] for r in runs) + " |", "|---" * (len(runs) + 1) + "|"]
    for k, (label, _, _) in enumerate(runs[0]["guarded"]):
        cells = []
        for r in runs:
            _, text, problems = r["guarded"][k]
            cells.append(", ".join(problems) if problems else f"USED: {text[:40]!r}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    suspects = [f"- {r['name']}{m}: {line}" for r in runs for m, lst in (("", r["suspect"]),
                (", packed", r["packed"]["suspect"] if r["packed"] else [])) for line in lst]
    if suspects:
        lines += ["", "Left out of the numbers above, a corpus label the models contradict:", "", *suspects]
    for r in runs:
        if r["packed"] and r["packed"]["mixed_used"]:
            lines += ["", f"{r['name']}, packed non-speech text that passed the guards: {r['packed']['mixed_used']}"]
    text = "\n".join(lines)
    print(text)
    print(f"({time.perf_counter() - t0:.0f} s wall)")
    if not args.quick:
        write_section("asr", text)


if __name__ == "__main__":
    main()
