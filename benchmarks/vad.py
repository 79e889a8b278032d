"""Benchmark: voiceprep's VAD trimming vs webrtcvad alone and librosa, speed and quality.

Quality is measured as *trimming*: the kept span (first to last detected
speech, plus 0.2 s) against the truth --

* ``lost`` -- seconds of speech outside the kept span (must be 0: a cut word);
* ``kept`` -- seconds of non-speech inside the kept span beyond the truth
  plus 0.2 s on each side (less is a tighter trim);

on (1) the demo fixtures (espeak-ng speech with known sentence positions,
20-30 dB pink noise, every codec) and (2) the cleanest corpus recordings
mixed with the corpus noises and white/pink noise at 0, 5, 10 and 20 dB
SNR, 0.75 s of silence added before and after, truth = first and last
frame of the clean recording within 35 dB of its speech level.

Peers, same inputs, same run: ``voiceprep`` (:func:`prep.dsp.vad.speech_regions`:
webrtcvad + spectral energy detector + hysteresis), ``webrtcvad`` alone
(mode 3, 30 ms frames at 16 kHz, first to last speech frame), and
``librosa.effects.trim`` (default ``top_db=60``, and ``top_db=30``).

Speed: x realtime of one detection over a 60 s program at 16 and 44.1 kHz,
best of ``--repeats``.

Run: ``python benchmarks/vad.py [--repeats 5] [--quick]``
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._results import best_of, write_section
from benchmarks.denoise import CORPUS, NOISE_FILES, SPEECH_FILES, _read, mixture

PAD_S = 0.2
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


# -- detectors: each returns (first_s, last_s) of speech, or None ---------------------------
def ours(x: np.ndarray, rate: int):
    from prep.dsp.vad import speech_regions

    regions = speech_regions(x, sample_rate=rate)
    return (regions[0][0], regions[-1][1]) if regions else None


def webrtc_only(x: np.ndarray, rate: int):
    import soxr
    import webrtcvad

    y = soxr.resample(x, rate, 16000) if rate != 16000 else x
    level = np.percentile(np.abs(y), 99.9) + 1e-12
    pcm = np.clip(y / level * 0.5 * 32767, -32768, 32767).astype(np.int16).tobytes()
    vad = webrtcvad.Vad(3)
    n = 480
    flags = [vad.is_speech(pcm[2 * i * n : 2 * (i + 1) * n], 16000) for i in range(len(y) // n)]
    idx = np.flatnonzero(flags)
    return (idx[0] * 0.03, (idx[-1] + 1) * 0.03) if idx.size else None


def librosa_trim(top_db: float):
    def detect(x: np.ndarray, rate: int):
        import librosa

        _, (a, b) = librosa.effects.trim(x, top_db=top_db)
        return (a / rate, b / rate) if b > a else None

    return detect


PEERS = {
    "voiceprep": ours,
    "webrtcvad alone": webrtc_only,
    "librosa trim top_db=60": librosa_trim(60),
    "librosa trim top_db=30": librosa_trim(30),
}


def score(found, truth: tuple[float, float], duration: float) -> tuple[float, float]:
    """(lost, kept) seconds for a detection ``found`` padded by PAD_S."""
    if found is None:
        return truth[1] - truth[0], 0.0
    a, b = max(0.0, found[0] - PAD_S), min(duration, found[1] + PAD_S)
    lost = max(0.0, a - truth[0]) + max(0.0, truth[1] - b)
    kept = max(0.0, (truth[0] - PAD_S) - a) + max(0.0, b - (truth[1] + PAD_S))
    return lost, kept


# -- inputs ---------------------------------------------------------------------------
def fixture_cases():
    from prep.run.decode import load
    from prep.stages.downmix import downmix

    truth = json.loads((FIXTURES / "truth.json").read_text(encoding="utf-8"))
    for name, info in truth.items():
        if info.get("corrupt"):
            continue
        audio, rate = load(FIXTURES / "demo" / name)
        regions = info["speech_regions_s"]
        yield name, downmix(audio)[0], rate, (regions[0][0], regions[-1][1])


def clean_extent(clean: np.ndarray, rate: int) -> tuple[float, float]:
    hop = int(0.01 * rate)
    n = clean.size // hop
    e = 10 * np.log10(np.mean(clean[: n * hop].reshape(n, hop).astype(np.float64) ** 2, axis=1) + 1e-20)
    idx = np.flatnonzero(e > np.percentile(e, 95) - 35.0)
    return idx[0] * hop / rate, (idx[-1] + 1) * hop / rate


def mixture_cases(rate: int, quick: bool):
    from benchmarks.denoise import LEAD_S

    speech = [_read(CORPUS / p, rate) for p in SPEECH_FILES if (CORPUS / p).exists()]
    noise = [(Path(p).stem, _read(CORPUS / p, rate)) for p in NOISE_FILES if (CORPUS / p).exists()]
    noise += [("white", None), ("pink", None)]
    if quick:
        speech, noise = speech[:2], noise[::3]
    for si, clean in enumerate(speech):
        a, b = clean_extent(clean, rate)
        for ni, (nname, nsig) in enumerate(noise):
            for snr in (0, 5, 10, 20):
                _, mix = mixture(clean, nsig, nname, snr, rate, seed=100 * si + ni + snr)
                yield snr, mix, (a + LEAD_S, b + LEAD_S)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="fewer inputs (smoke test); results not written")
    args = parser.parse_args()
    t0 = time.perf_counter()
    lines = ["## VAD trimming: voiceprep vs webrtcvad alone vs librosa", ""]

    # Fixtures.
    fx = {name: [] for name in PEERS}
    for _, x, rate, truth in fixture_cases():
        for name, fn in PEERS.items():
            fx[name].append(score(fn(x, rate), truth, x.size / rate))
    lines += [f"Demo fixtures ({len(fx['voiceprep'])} files, known sentence positions), pad {PAD_S} s:", ""]
    lines += ["| method | speech lost, total s | files with speech lost | non-speech kept, mean s |"]
    lines += ["|---|---|---|---|"]
    for name, rows in fx.items():
        lost = np.array([r[0] for r in rows])
        kept = np.array([r[1] for r in rows])
        lines.append(f"| {name} | {lost.sum():.2f} | {(lost > 0.01).sum()} | {kept.mean():.2f} |")

    # Corpus mixtures.
    if CORPUS.is_dir():
        rate = 16000
        mx: dict[tuple[str, int], list] = {}
        for snr, x, truth in mixture_cases(rate, args.quick):
            for name, fn in PEERS.items():
                mx.setdefault((name, snr), []).append(score(fn(x, rate), truth, x.size / rate))
        count = len(mx[("voiceprep", 0)])
        lines += ["", f"Corpus mixtures at 16 kHz ({count} per SNR: clean read speech x recorded/synthetic noise):", ""]
        lines += ["| method | " + " | ".join(f"lost @{s} dB (mean / worst / n>0.05 s)" for s in (0, 5, 10, 20))
                  + " | " + " | ".join(f"kept @{s} dB" for s in (0, 5, 10, 20)) + " |"]
        lines += ["|---" * 9 + "|"]
        for name in PEERS:
            cells, kepts = [], []
            for snr in (0, 5, 10, 20):
                lost = np.array([r[0] for r in mx[(name, snr)]])
                kept = np.array([r[1] for r in mx[(name, snr)]])
                cells.append(f"{lost.mean():.2f} / {lost.max():.2f} / {(lost > 0.05).sum()}")
                kepts.append(f"{kept.mean():.2f}")
            lines.append(f"| {name} | " + " | ".join(cells) + " | " + " | ".join(kepts) + " |")
    else:
        lines += ["", "(corpus not found: mixture table skipped)"]

    # Speed.
    lines += ["", "Speed, one detection over a 60 s program (x realtime):", "", "| method | 16 kHz | 44.1 kHz |",
              "|---|---|---|"]
    speeds: dict[str, list[float]] = {name: [] for name in PEERS}
    for rate in (16000, 44100):
        program = np.concatenate([x for _, x, _ in mixture_cases(rate, True)]) if CORPUS.is_dir() else None
        if program is None:
            rng = np.random.default_rng(0)
            program = (0.01 * rng.standard_normal(60 * rate)).astype(np.float32)
        program = np.resize(program, 60 * rate).astype(np.float32)
        for name, fn in PEERS.items():
            fn(program[: 2 * rate], rate)
            speeds[name].append(60.0 / best_of(lambda fn=fn, x=program, r=rate: fn(x, r), repeat=args.repeats))
    for name, (a, b) in speeds.items():
        lines.append(f"| {name} | {a:.0f} | {b:.0f} |")
    text = "\n".join(lines)
    print(text)
    print(f"({time.perf_counter() - t0:.0f} s)")
    if not args.quick:
        write_section("vad", text)


if __name__ == "__main__":
    main()
