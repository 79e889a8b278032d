"""Benchmark: where DNSMOS lands on speech in noise at known SNR, to set the score's DNSMOS weights.

Read speech from the corpus (LibriSpeech, VCTK, LJSpeech, and JFK 1961 as a real old recording) is
mixed with recorded corpus noises (cafe, kitchen, restaurant) and white noise at 30, 20, 10, 5 and
0 dB (speech power over noise power, whole file, at 16 kHz) and scored with
:func:`prep.dsp.dnsmos.dnsmos_scores`.  Reported per SNR: the range and median of OVRL and BAK, how
many mixtures fall below the ``Score`` defaults (``min_dnsmos_ovrl``, ``warn_dnsmos_ovrl``,
``warn_dnsmos_bak``) and the points the OVRL ramp (:data:`prep.stages.score.PENALTIES`) takes, and,
when ``speechmos`` is installed, |ΔOVRL| against ``speechmos.dnsmos.run`` on the same audio (clipped
to [-1, 1] as both do) and how many short clips were rescored on the 9.01 s loop.

Corpus: ``../shared/corpus`` beside the checkout (or ``$VOICEPREP_CORPUS``).  Needs the ``[mos]`` extra.

Run: ``python benchmarks/dnsmos_score.py``
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._results import CORPUS as _CORPUS
from benchmarks._results import versions, write_section
from prep.dsp.dnsmos import SHORT_MIN_S, SHORT_RESCORE_BELOW, dnsmos_scores
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


def _reference_ovrl(x: np.ndarray) -> float:
    """speechmos.dnsmos.run's OVRL (NaN without speechmos)."""
    try:
        from speechmos import dnsmos as reference
    except ImportError:
        return float("nan")
    return float(reference.run(np.clip(x, -1.0, 1.0).astype(np.float32), RATE)["ovrl_mos"])


def main() -> None:
    rng = np.random.default_rng(0)
    rules = Score()
    rows: dict[str, list[tuple[float, float, float, bool]]] = {"clean": []}
    clean_by_file = []
    load_start, cpu_start = os.getloadavg()[0], time.process_time()
    for name in SPEECH:
        speech = _load(CORPUS / "speech" / name)
        s = dnsmos_scores(speech, sample_rate=RATE)
        rows["clean"].append((s.ovrl, s.bak, s.ovrl - _reference_ovrl(speech), s.rescored))
        clean_by_file.append(f"{name} ({speech.size / RATE:.1f} s) {s.ovrl:.2f}/{s.bak:.2f}")
        power = float(np.mean(speech**2))
        for noise_name in NOISES:
            noise = _noise(noise_name, speech.size, rng)
            for snr in SNRS_DB:
                gain = np.sqrt(power / float(np.mean(noise**2)) / 10 ** (snr / 10))
                mixed = speech + gain * noise
                s = dnsmos_scores(mixed, sample_rate=RATE)
                rows.setdefault(f"{snr} dB", []).append((s.ovrl, s.bak, s.ovrl - _reference_ovrl(mixed), s.rescored))
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
        "| OVRL penalty mean (max) | \\|ΔOVRL\\| vs speechmos mean / max | over 0.3 | short clips rescored |",
        "|---|---:|---|---|---:|---:|---:|---|---|---:|---:|",
    ]
    for label, values in rows.items():
        ovrl = np.array([v[0] for v in values])
        bak = np.array([v[1] for v in values])
        lost = [quality_score({"dnsmos_ovrl": o})[1].get("dnsmos_ovrl", 0.0) for o in ovrl]
        delta = np.abs([v[2] for v in values])
        lines.append(
            f"| {label} | {ovrl.size} | {ovrl.min():.2f}–{ovrl.max():.2f} ({np.median(ovrl):.2f}) "
            f"| {bak.min():.2f}–{bak.max():.2f} ({np.median(bak):.2f}) "
            f"| {int((ovrl < rules.min_dnsmos_ovrl).sum())} | {int((ovrl < rules.warn_dnsmos_ovrl).sum())} "
            f"| {int((bak < rules.warn_dnsmos_bak).sum())} | {np.mean(lost):.1f} ({max(lost):.1f}) "
            f"| {delta.mean():.3f} / {delta.max():.3f} | {int((delta > 0.3).sum())} | {sum(v[3] for v in values)} |"
        )
    lines += ["", "Clean recordings, OVRL/BAK: " + "; ".join(clean_by_file) + ". A clip under 9.01 s is scored on "
              f"its own length looped to {SHORT_MIN_S:g} s and rescored on the 9.01 s loop when its OVRL or BAK is "
              f"below {SHORT_RESCORE_BELOW:g} (prep.dsp.dnsmos); speechmos.dnsmos.run on the same audio clipped to "
              "[-1, 1]. "
              f"Whole run {time.process_time() - cpu_start:.0f} s of CPU (speechmos included); load average (1 min) "
              f"{load_start:.1f} at the start, {os.getloadavg()[0]:.1f} at the end ({os.cpu_count()} cores).", "",
              f"onnxruntime/speechmos: {versions(('onnxruntime', 'speechmos'))}."]
    write_section("dnsmos_score", "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
