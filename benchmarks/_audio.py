"""Benchmark inputs: real speech from ../shared/corpus when present, the demo fixtures otherwise."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soxr

from prep.run.decode import load

from ._results import CORPUS

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "demo"


def mono_at(path: Path, sample_rate: int | None = None) -> tuple[np.ndarray, int]:
    """``path`` decoded, its channels averaged (float32) and, unless ``sample_rate`` is None or already
    the file's rate, resampled with soxr: ``(mono, rate)``."""
    audio, rate = load(path)
    mono = np.ascontiguousarray(audio.mean(axis=0), dtype=np.float32)
    if sample_rate is None or rate == sample_rate:
        return mono, rate
    return soxr.resample(mono, rate, sample_rate).astype(np.float32), sample_rate


def speech_sources() -> list[Path]:
    """Speech recordings to build benchmark inputs from."""
    if (CORPUS / "speech").is_dir():
        found = sorted(p for p in (CORPUS / "speech").rglob("*") if p.suffix in (".wav", ".flac", ".mp3"))
        if found:
            return found
    return sorted(p for p in FIXTURES.rglob("*") if p.suffix in (".wav", ".flac", ".mp3", ".ogg", ".m4a"))


def noise_sources() -> list[Path]:
    """Noise recordings (empty when the corpus is absent)."""
    if (CORPUS / "noise").is_dir():
        return sorted(p for p in (CORPUS / "noise").rglob("*") if p.suffix in (".wav", ".flac", ".ogg", ".mp3"))
    return []


def speech_bank(sample_rate: int) -> list[np.ndarray]:
    """Every speech source decoded, mono, at ``sample_rate``."""
    bank = []
    for path in speech_sources():
        bank.append(mono_at(path, sample_rate)[0])
    return bank


def noise_bank(sample_rate: int) -> list[np.ndarray]:
    bank = []
    for path in noise_sources():
        try:
            audio, rate = load(path)
        except Exception:
            continue
        mono = audio.mean(axis=0)
        bank.append(soxr.resample(mono, rate, sample_rate).astype(np.float32) if rate != sample_rate else mono)
    return bank


def program(seconds: float, sample_rate: int, *, seed: int = 0, snr_db: float = 20.0) -> np.ndarray:
    """``seconds`` of speech with pauses and background noise at ``snr_db``: float32 mono."""
    rng = np.random.default_rng(seed)
    bank = speech_bank(sample_rate)
    noise = noise_bank(sample_rate)
    total = int(seconds * sample_rate)
    out = np.zeros(total, np.float32)
    pos = int(0.5 * sample_rate)
    while pos < total:
        s = bank[int(rng.integers(len(bank)))]
        s = s / (np.max(np.abs(s)) + 1e-9) * 0.5
        n = min(len(s), total - pos)
        out[pos : pos + n] += s[:n]
        pos += n + int(rng.uniform(0.3, 1.5) * sample_rate)
    speech_power = float(np.mean(out[np.abs(out) > 1e-3] ** 2)) if np.any(np.abs(out) > 1e-3) else 1e-4
    if noise:
        bed = np.concatenate([noise[int(rng.integers(len(noise)))] for _ in range(3)])
        bed = np.resize(bed, total)
    else:
        bed = rng.standard_normal(total).astype(np.float32)
    bed = bed / (np.std(bed) + 1e-12) * np.sqrt(speech_power / 10 ** (snr_db / 10))
    return (out + bed).astype(np.float32)


def si_sdr(estimate: np.ndarray, reference: np.ndarray) -> float:
    """Scale-invariant SDR in dB (Le Roux et al. 2019), zero-mean."""
    est = estimate.astype(np.float64) - estimate.mean()
    ref = reference.astype(np.float64) - reference.mean()
    alpha = est @ ref / (ref @ ref)
    target = alpha * ref
    err = est - target
    return float(10 * np.log10((target @ target) / max(err @ err, 1e-30)))
