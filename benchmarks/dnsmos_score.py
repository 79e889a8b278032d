"""Benchmark: where DNSMOS lands on speech in noise at known SNR, to set the score's DNSMOS weights.

Read speech from the corpus (LibriSpeech, VCTK, LJSpeech, and JFK 1961 as a real old recording) is
mixed with recorded corpus noises (cafe, kitchen, restaurant) and white noise at 30, 20, 10, 5 and
0 dB (speech power over noise power, whole file, at 16 kHz) and scored with
:func:`prep.dsp.dnsmos.dnsmos_scores`.  Reported per SNR: the range and median of OVRL and BAK, how
many mixtures fall below the ``Score`` defaults (``min_dnsmos_ovrl``, ``warn_dnsmos_ovrl``,
``warn_dnsmos_bak``) and the points the OVRL ramp (:data:`prep.stages.score.PENALTIES`) takes.

Corpus: ``../shared/corpus`` beside the checkout (or ``$VOICEPREP_CORPUS``).  Needs the ``[mos]`` extra.

Run: ``python benchmarks/dnsmos_score.py``
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._results import CORPUS as _CORPUS
from benchmarks._results import versions, write_section
from prep.dsp.dnsmos import dnsmos_scores
from prep.stages.score import PENALTIES, Score, quality_score

RATE = 16000
CORPUS = Path(os.environ.get("VOICEPREP_CORPUS", _CORPUS))
SPEECH = ("libri_1088-134315-0000.wav", "libri_2412-153948-0000.flac", "libri_2412-153948-0001.flac",
          "vctk_p286_011.wav", "ljspeech_LJ050-0131.wav", "jfk.flac")
NOISES = ("noisereduce_cafe_short.wav", "sc_doing_the_dishes.wav", "dcase2013_restaurant08.wav", "white")
SNRS_DB = (30, 20, 10, 5, 0)


def _load(path: Path) -> np.ndarray:
    data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    return soxr.resample(data.mean(axis=1), rate, RATE).astype(np.float32)


def _noise(name: str, n: int, rng: np.random.Generator) -> np.ndarray:
    if name == "white":
        return rng.standard_normal(n).astype(np.float32)
    noise = _load(CORPUS / "noise" / name)
    return np.tile(noise, -(-n // noise.size))[:n]


def main() -> None:
    rng = np.random.default_rng(0)
    rules = Score()
    rows: dict[str, list[tuple[float, float]]] = {"clean": []}
    clean_by_file = []
    for name in SPEECH:
        speech = _load(CORPUS / "speech" / name)
        s = dnsmos_scores(speech, sample_rate=RATE)
        rows["clean"].append((s.ovrl, s.bak))
        clean_by_file.append(f"{name} {s.ovrl:.2f}/{s.bak:.2f}")
        power = float(np.mean(speech**2))
        for noise_name in NOISES:
            noise = _noise(noise_name, speech.size, rng)
            for snr in SNRS_DB:
                gain = np.sqrt(power / float(np.mean(noise**2)) / 10 ** (snr / 10))
                s = dnsmos_scores(speech + gain * noise, sample_rate=RATE)
                rows.setdefault(f"{snr} dB", []).append((s.ovrl, s.bak))
                print(name, noise_name, snr, f"{s.ovrl:.2f} {s.bak:.2f}", flush=True)
    good, bad, points = PENALTIES["dnsmos_ovrl"]
    lines = [
        "## DNSMOS in the score: OVRL and BAK of speech in noise at known SNR",
        "",
        f"{len(SPEECH)} corpus recordings ({', '.join(SPEECH)}) mixed with {', '.join(NOISES)} "
        "(speech power over noise power, whole file, 16 kHz); DNSMOS from prep.dsp.dnsmos. "
        f"Score defaults: OVRL penalty {good} -> {bad} ({points:g} points), `min_dnsmos_ovrl` "
        f"{rules.min_dnsmos_ovrl}, `warn_dnsmos_ovrl` {rules.warn_dnsmos_ovrl}, `warn_dnsmos_bak` "
        f"{rules.warn_dnsmos_bak}.",
        "",
        "| SNR | n | OVRL min–max (median) | BAK min–max (median) | OVRL < min | OVRL < warn | BAK < warn "
        "| OVRL penalty mean (max) |",
        "|---|---:|---|---|---:|---:|---:|---|",
    ]
    for label, values in rows.items():
        ovrl = np.array([v[0] for v in values])
        bak = np.array([v[1] for v in values])
        lost = [quality_score({"dnsmos_ovrl": o})[1].get("dnsmos_ovrl", 0.0) for o in ovrl]
        lines.append(
            f"| {label} | {ovrl.size} | {ovrl.min():.2f}–{ovrl.max():.2f} ({np.median(ovrl):.2f}) "
            f"| {bak.min():.2f}–{bak.max():.2f} ({np.median(bak):.2f}) "
            f"| {int((ovrl < rules.min_dnsmos_ovrl).sum())} | {int((ovrl < rules.warn_dnsmos_ovrl).sum())} "
            f"| {int((bak < rules.warn_dnsmos_bak).sum())} | {np.mean(lost):.1f} ({max(lost):.1f}) |"
        )
    lines += ["", "Clean recordings, OVRL/BAK: " + "; ".join(clean_by_file) + ".", "",
              f"onnxruntime/speechmos: {versions(('onnxruntime', 'speechmos'))}."]
    write_section("dnsmos_score", "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
