"""Benchmark: does a change of background split one speaker into two voices?  Does one change of voice stay two?

1. *One speaker, background changes halfway*: each of 4 LibriSpeech test-other speakers' corpus files
   joined (0.5 s apart, 16 kHz), the second half mixed with a real corpus noise (dishes, restaurant,
   running tap) at 5 and 15 dB SNR: 24 recordings of one voice.  Counted: recordings diarised into
   several voices (:func:`prep.voice.diarise.diarise`), with and without the whole-speech check of
   one-change recordings (``ONE_CHANGE_SAME_VOICE``).
2. *Two speakers, one turn each*: every pair of 6 corpus speakers, speaker A's files then speaker B's
   (12 s at most of each file): 15 recordings of two voices with a single change.  Counted: recordings
   diarised into one voice.

Corpus: ``../shared/corpus`` beside the checkout (or ``$VOICEPREP_CORPUS``).

Run: ``python benchmarks/diarise_background.py``
"""

from __future__ import annotations

import importlib
import itertools
import os
import sys
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._results import CORPUS as _CORPUS
from benchmarks._results import machine_info, write_section

CORPUS = Path(os.environ.get("VOICEPREP_CORPUS", str(_CORPUS)))
RATE = 16000
SOLO = ("1688", "1998", "3005", "2414")
PAIRS = ("1688", "1998", "3005", "2414", "367", "3331")
NOISES = ("noise/sc_doing_the_dishes.wav", "noise/dcase2013_restaurant08.wav", "noise/sc_running_tap.wav")


def read(path: Path) -> np.ndarray:
    x, rate = sf.read(path, dtype="float32", always_2d=True)
    x = x.mean(axis=1)
    return soxr.resample(x, rate, RATE).astype(np.float32) if rate != RATE else x


def files(speaker: str) -> list[Path]:
    return sorted((CORPUS / "speech" / "librispeech_test-other").glob(f"{speaker}-*.flac"))


def count_voices(audio: np.ndarray, *, check: bool) -> int:
    diarise_module = importlib.import_module("prep.voice.diarise")
    saved = diarise_module.ONE_CHANGE_SAME_VOICE
    if not check:
        diarise_module.ONE_CHANGE_SAME_VOICE = float("inf")
    try:
        return len(diarise_module.diarise(audio, sample_rate=RATE).voices)
    finally:
        diarise_module.ONE_CHANGE_SAME_VOICE = saved


def main() -> None:
    gap = np.zeros(RATE // 2, np.float32)
    split_before = split_after = solo = 0
    for speaker in SOLO:
        x = np.concatenate([np.concatenate([read(f), gap]) for f in files(speaker)])
        half = x.size // 2
        for name in NOISES:
            noise = np.resize(read(CORPUS / name), x.size - half)
            for snr_db in (5, 15):
                y = x.copy()
                y[half:] += noise * np.sqrt(np.mean(x[half:] ** 2) / np.mean(noise**2) / 10 ** (snr_db / 10))
                solo += 1
                split_before += count_voices(y, check=False) > 1
                split_after += count_voices(y, check=True) > 1
    merged_before = merged_after = pairs = 0
    for a, b in itertools.combinations(PAIRS, 2):
        y = np.concatenate([*(np.concatenate([read(f)[: 12 * RATE], gap]) for f in files(a)),
                            *(np.concatenate([read(f)[: 12 * RATE], gap]) for f in files(b))])
        pairs += 1
        merged_before += count_voices(y, check=False) < 2
        merged_after += count_voices(y, check=True) < 2
    md = "\n".join([
        "## Diarisation: a change of background vs a change of voice (benchmarks/diarise_background.py)",
        "",
        *(" ".join(item.split()) for item in __doc__.split("\n\n")[1].strip().split("\n2. ", 1)[0:1]),
        "2. " + " ".join(__doc__.split("\n\n")[1].split("\n2. ", 1)[1].split()),
        "",
        "| case | recordings | without the whole-speech check | with it (`ONE_CHANGE_SAME_VOICE`) |",
        "|---|---:|---:|---:|",
        f"| one speaker, background changes: split into several voices | {solo} | {split_before} | {split_after} |",
        f"| two speakers, one turn each: taken as one voice | {pairs} | {merged_before} | {merged_after} |",
        "",
        machine_info(),
    ])
    write_section("diarise_background", md)
    print(md)


if __name__ == "__main__":
    main()
