"""Benchmark: the model-free SNR (weighted, floor of the pauses and the dips) vs its predecessors, and DNSMOS speed.

Estimators: *old* (mean power of the pauses, unweighted), *previous* (floor of the pauses,
unweighted), *before* (the new one with its floor never raised: ``FLUCTUATION_MAX_DB = 0``) and
*new* (:func:`prep.dsp.estimators.snr_estimate`: powers through K-weighting's high shelf and a
100 Hz high-pass, the lower of the pauses' floor and the dips floor, raised under a fluctuating
noise such as babble by the spread of its levels).

0. Which weighting DNSMOS BAK follows: clean corpus speech plus 16 noises (white, pink, brown, hiss,
   rumble, a mid band, three hums, six recorded noises) at 5-45 dB SNR; Spearman of BAK with the
   true SNR of powers under six weightings over all mixtures.
1. Accuracy on mixtures at known SNR (0, 10, 20, 30 dB): clean corpus speech (0.75 s of silence
   before and after, a recording's lead-in and tail) plus white, pink and recorded corpus noises;
   and a held-out babble of six corpus talkers (other speakers); reverberant speech (the corpus' measured
   room impulse responses) plus white and pink noise.  The
   true SNR is the clean (or reverberant) speech's mean power over its VAD speech frames over the
   noise's mean power, unweighted for the old and previous estimators and of weighted powers for
   the new one (the mixtures are made at the unweighted SNR).  Error = estimate - its truth.
2. Agreement with DNSMOS BAK on the corpus' real speech recordings (every speech file but the two
   reverberant copies derived from other files): Spearman rank correlation of the SNR with BAK
   (computed here with :mod:`prep.dsp.dnsmos` on the whole recording), and recordings DNSMOS calls
   clean (BAK >= 3.9) that the SNR would reject for noise (SNR < 10 dB).
3. DNSMOS speed, x realtime per CPU core (audio seconds / ``time.process_time()`` seconds, one
   onnxruntime thread): :func:`prep.dsp.dnsmos.dnsmos_scores` vs ``speechmos.dnsmos.run`` on a 60 s
   program and on the corpus recordings (warm sessions), and their agreement (|ΔOVRL|, |ΔBAK|, |ΔSIG|,
   |ΔP.808|) on every ``--reference-every``-th recording.

Corpus: ``../shared/corpus`` beside the checkout (or ``$VOICEPREP_CORPUS``).

Run: ``python benchmarks/snr.py [--quick]``
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import soxr
from scipy import ndimage, signal, stats

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._audio import mono_at
from benchmarks._results import CORPUS as _CORPUS
from benchmarks._results import versions, write_section
from prep.dsp import estimators
from prep.dsp.estimators import VAD_FRAME_S, _noise_floor, frame_powers, snr_estimate, vad_mask
from prep.dsp.loudness import kweighting_sos

CORPUS = Path(os.environ.get("VOICEPREP_CORPUS", str(_CORPUS)))
RATE = 16000
SNRS_DB = (0, 10, 20, 30)
LEAD_S = 0.75
SPEECH_FILES = (  # clean read speech (the denoise benchmark's references), female and male
    "speech/librispeech_test-other/3080-5032-0002.flac",
    "speech/librispeech_test-other/2414-128291-0004.flac",
    "speech/librispeech_test-other/2033-164914-0000.flac",
    "speech/ljspeech_LJ050-0131.wav",
    "speech/cmu_arctic_us_axb_a0004.wav",
    "speech/libritts_5142_33396_000002_000004.wav",
)
NOISE_FILES = (
    "noise/sc_doing_the_dishes.wav",
    "noise/sc_exercise_bike.wav",
    "noise/sc_running_tap.wav",
    "noise/adt_hum_50Hz_from_headphone_plug.wav",
    "noise/dcase2013_restaurant08.wav",
    "noise/noisereduce_cafe_short.wav",
)
#: Six talkers (none of SPEECH_FILES' speakers) summed into a babble: a held-out babble noise (the SNR's
#: fluctuation constants were chosen on dcase2013_restaurant08 and noisereduce_cafe_short).
BABBLE_TALKERS = (
    "speech/cmu_arctic_us_aew_a0001.wav",
    "speech/vctk_p240_00000.mp3",
    "speech/vctk_p260_00000.mp3",
    "speech/libritts_260_123440_000010_000004.wav",
    "speech/libritts_7176_92135_000004_000000.wav",
    "speech/sb_asr_spk2_snt1.wav",
)
BABBLE = "babble of 6 corpus talkers (held out)"
BABBLE_NOISES = ("dcase2013_restaurant08", "noisereduce_cafe_short", BABBLE)
RIR_FILES = (
    "rir/c4dm_Classroom_Omni_30x20y.wav",
    "rir/c4dm_GreatHall_Omni_x06y06.wav",
    "rir/c4dm_Octagon_Omni_x06y06.wav",
    "rir/rir_clap.wav",
)
DERIVED = ("speech/libri_1088-134315-0000_rvb.wav", "speech/xmas_clap_reverberant.wav")
AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg")
CLEAN_BAK = 3.9
REJECT_SNR_DB = 10.0


# -- estimators -----------------------------------------------------------------------------
def _pause_snr(x: np.ndarray, rate: int, floor, guard_s: float = 0.06, min_noise_s: float = 0.2) -> float:
    """SNR on unweighted frame powers, the noise from the frames away from speech by ``floor(powers)``."""
    power = frame_powers(x, sample_rate=rate)
    mask = np.zeros(power.size, bool)
    speech = vad_mask(x, sample_rate=rate)
    k = min(power.size, speech.size)
    mask[:k] = speech[:k]
    if not mask.any():
        return float("nan")
    guard = math.ceil(guard_s / VAD_FRAME_S)
    near = ndimage.binary_dilation(mask, structure=np.ones(2 * guard + 1, bool))
    quiet = ~near
    if quiet.sum() * VAD_FRAME_S >= min_noise_s:
        noise = floor(power[quiet])
    else:
        noise = float(np.mean(np.sort(power)[: max(1, power.size // 20)]))
    speech_power = float(np.mean(power[near])) - noise
    if noise <= 1e-12:
        return 100.0
    return -100.0 if speech_power <= 0 else min(100.0, 10 * math.log10(speech_power / noise))


def old_snr(x: np.ndarray, rate: int) -> float:
    """The old estimator: the noise is the mean power of the frames away from speech."""
    return _pause_snr(x, rate, lambda quiet: float(np.mean(quiet)))


def prev_snr(x: np.ndarray, rate: int) -> float:
    """The previous estimator: unweighted powers, the noise is the floor of the pauses only."""
    return _pause_snr(x, rate, lambda quiet: _noise_floor(quiet)[0])


def new_snr(x: np.ndarray, rate: int) -> float:
    return snr_estimate(x, sample_rate=rate).snr_db


def unraised_snr(x: np.ndarray, rate: int) -> float:
    """snr_estimate with its floor never raised (``FLUCTUATION_MAX_DB = 0``): the weighted estimator before the rise."""
    saved = estimators.FLUCTUATION_MAX_DB
    estimators.FLUCTUATION_MAX_DB = 0.0
    try:
        return snr_estimate(x, sample_rate=rate).snr_db
    finally:
        estimators.FLUCTUATION_MAX_DB = saved


def a_weighting_sos(rate: int) -> np.ndarray:
    """IEC 61672 A-weighting (analogue poles and zeros, bilinear transform), 0 dB at 1 kHz."""
    poles = [-2 * math.pi * 12194.217] * 2 + [-2 * math.pi * 737.86223, -2 * math.pi * 107.65265]
    poles += [-2 * math.pi * 20.598997] * 2
    z, p, k = signal.bilinear_zpk([0, 0, 0, 0], poles, (2 * math.pi * 12194.217) ** 2 * 10 ** (1.9997 / 20), rate)
    return signal.zpk2sos(z, p, k)


SNR_WEIGHTING = "K shelf + high-pass 100 Hz (snr_estimate's)"
WEIGHTINGS = {  # name -> sos at RATE (None: unweighted)
    "none": None,
    "K (BS.1770)": kweighting_sos(sample_rate=RATE),
    "A": a_weighting_sos(RATE),
    "high-pass 100 Hz": signal.butter(2, 100.0, "highpass", fs=RATE, output="sos"),
    "K + high-pass 80 Hz": np.vstack([kweighting_sos(sample_rate=RATE),
                                      signal.butter(2, 80.0, "highpass", fs=RATE, output="sos")]),
    SNR_WEIGHTING: np.vstack([kweighting_sos(sample_rate=RATE)[:1],
                              signal.butter(2, 100.0, "highpass", fs=RATE, output="sos")]),
}


# -- inputs ----------------------------------------------------------------------------------
def read(path: Path, rate: int | None = RATE) -> tuple[np.ndarray, int]:
    return mono_at(path, rate)


def colored(n: int, seed: int, exponent: float) -> np.ndarray:
    spec = np.fft.rfft(np.random.default_rng(seed).standard_normal(n))
    f = np.arange(spec.size, dtype=np.float64)
    f[0] = 1.0
    x = np.fft.irfft(spec / f ** (exponent / 2), n)
    return (x / np.std(x)).astype(np.float32)


def rir(path: Path) -> np.ndarray:
    h, _ = read(path)
    peak = int(np.argmax(np.abs(h)))
    h = h[max(0, peak - 16) :]
    return h / np.max(np.abs(h))


def babble(n: int, seed: int) -> np.ndarray:
    """BABBLE_TALKERS, each scaled to unit power over its VAD speech frames, looped and started at a random point."""
    rng = np.random.default_rng(seed)
    out = np.zeros(n)
    for path in BABBLE_TALKERS:
        y = read(CORPUS / path)[0]
        power = frame_powers(y, sample_rate=RATE)
        mask = vad_mask(y, sample_rate=RATE)[: power.size]
        y = y.astype(np.float64) / math.sqrt(float(np.mean(power[: mask.size][mask])))
        out += np.roll(np.resize(y, n + y.size), -int(rng.integers(y.size)))[:n]
    return out.astype(np.float32)


def mixtures(quick: bool):
    """Yield (condition, noise name, snr_db, mixture, weighted true snr_db); snr_db is the unweighted truth."""
    speech_files = SPEECH_FILES[:2] if quick else SPEECH_FILES
    lead = np.zeros(int(LEAD_S * RATE), np.float32)
    speech = [np.concatenate([lead, read(CORPUS / p)[0], lead]) for p in speech_files]
    noises: list[tuple[str, np.ndarray | None]] = [("white", None), ("pink", None)]
    noises += [(Path(p).stem, read(CORPUS / p)[0]) for p in NOISE_FILES]
    noises.append((BABBLE, None))
    rirs = [(Path(p).stem, rir(CORPUS / p)) for p in RIR_FILES]
    for i, clean in enumerate(speech):
        variants = [("dry", clean, noises)]
        for j, (_, h) in enumerate(rirs):
            if (i + j) % 2 == 0:  # half of the (speech, room) pairs
                wet = signal.fftconvolve(clean, h)[: clean.size + RATE // 2].astype(np.float32)
                variants.append(("reverberant", wet, noises[:2]))
        for condition, y, noise_list in variants:
            power = frame_powers(y, sample_rate=RATE)
            mask = vad_mask(y, sample_rate=RATE)[: power.size]
            speech_power = float(np.mean(power[: mask.size][mask]))
            band = WEIGHTINGS[SNR_WEIGHTING]
            band_power = frame_powers(signal.sosfilt(band, y).astype(np.float32), sample_rate=RATE)
            band_speech = float(np.mean(band_power[: mask.size][mask]))
            for k, (name, src) in enumerate(noise_list):
                if name == BABBLE:
                    z = babble(y.size, 10 + i)
                elif src is None:
                    z = colored(y.size, 100 * i + k, 0.0 if name == "white" else 1.0)
                else:
                    offset = (i * 7919) % max(1, src.size - y.size)
                    z = np.resize(src[offset:], y.size)
                z = z / math.sqrt(float(np.mean(z.astype(np.float64) ** 2)))
                kept = float(np.mean(signal.sosfilt(band, z) ** 2))  # weighted power of the unit noise
                for snr in SNRS_DB:
                    gain2 = speech_power / 10 ** (snr / 10)
                    yield (condition, name, snr, (y + z * math.sqrt(gain2)).astype(np.float32),
                           10 * math.log10(band_speech / (kept * gain2)))


def corpus_recordings() -> list[Path]:
    root = CORPUS / "speech"
    return sorted(p for p in root.rglob("*") if p.suffix in AUDIO_SUFFIXES)


# -- sections --------------------------------------------------------------------------------
def accuracy(quick: bool) -> str:
    errors: dict[tuple[str, str], dict[int, list[tuple[float, float, float, float, float]]]] = {}
    for condition, name, snr, x, k_truth in mixtures(quick):
        new = new_snr(x, RATE)
        errors.setdefault((condition, name), {}).setdefault(snr, []).append(
            (old_snr(x, RATE) - snr, prev_snr(x, RATE) - snr, new - k_truth, new - snr,
             unraised_snr(x, RATE) - k_truth))
    head = " | ".join(f"{s} dB before / new" for s in SNRS_DB)
    lines = [f"| speech | noise | n | {head} |", "|---|---|---:|" + "---|" * len(SNRS_DB)]
    every: list[tuple[float, float, float, float, float]] = []
    for (condition, name), by_snr in errors.items():
        cells = []
        for snr in SNRS_DB:
            rows = by_snr[snr]
            every += rows
            prev = max((r[4] for r in rows), key=abs)
            new = max((r[2] for r in rows), key=abs)
            cells.append(f"{prev:+.1f} / **{new:+.1f}**" if abs(new) <= 3 else f"{prev:+.1f} / {new:+.1f}")
        lines.append(f"| {condition} | {name} | {len(by_snr[SNRS_DB[0]])} | " + " | ".join(cells) + " |")
    e = np.abs(np.array(every))
    calm = np.array([n not in BABBLE_NOISES for (_, n), by_snr in errors.items() for s in SNRS_DB for _ in by_snr[s]])
    summary = "\n".join(
        f"- {label}: |error| <= 3 dB {np.mean(e[:, i] <= 3):.0%} (without babble {np.mean(e[calm, i] <= 3):.0%}), "
        f"mean |error| {e[:, i].mean():.2f} dB, worst {e[:, i].max():.1f} dB (without babble {e[calm, i].max():.1f})"
        for i, label in ((0, "old (mean of the pauses) vs the unweighted truth"),
                         (1, "previous (floor of the pauses) vs the unweighted truth"),
                         (4, "before (weighted floor of the pauses or dips, not raised) vs the truth under the same "
                             "weighting"),
                         (2, "**new (weighted floor, raised under fluctuating noise) vs the truth under the same "
                             "weighting**"),
                         (3, "new vs the unweighted truth (for reference: the weighting leaves out most of pink "
                             "noise's and hum's power, below 100 Hz)")))
    return "\n".join([f"Worst error (estimate - truth under the same weighting, dB) over the speech files, before "
                      f"(the weighted floor, not raised) / **new** (bold: within 3 dB); {e.shape[0]} mixtures. The new "
                      "estimator raises its floor under a fluctuating noise by the spread of its levels "
                      "(snr_estimate's FLUCTUATION_* and FEW_PAUSES constants, chosen on these mixtures with "
                      "dcase2013_restaurant08 and noisereduce_cafe_short; the 6-talker babble is held out):",
                      "", *lines, "", summary])


def weighting(quick: bool) -> str:
    """Spearman of DNSMOS BAK with the true SNR of each weighting on speech + 16 noises at 5-45 dB SNR."""
    from prep.dsp.dnsmos import dnsmos_scores

    speech_files = SPEECH_FILES[:2] if quick else SPEECH_FILES[:4]
    n_hum = (1.0, 0.5, 0.3, 0.2, 0.1)

    def hum(n: int, f0: float, harmonics: tuple[float, ...]) -> np.ndarray:
        t = np.arange(n) / RATE
        return sum(a * np.sin(2 * np.pi * f0 * (k + 1) * t + k) for k, a in enumerate(harmonics))

    def filtered(n: int, seed: int, kind: str, freq: float | list[float]) -> np.ndarray:
        sos = signal.butter(4, freq, kind, fs=RATE, output="sos")
        return signal.sosfilt(sos, np.random.default_rng(seed).standard_normal(n))

    synthetic = {
        "white": lambda n, k: colored(n, k, 0.0), "pink": lambda n, k: colored(n, k, 1.0),
        "brown > 20 Hz": lambda n, k: signal.sosfilt(signal.butter(2, 20, "highpass", fs=RATE, output="sos"),
                                                     colored(n, k, 2.0)),
        "hiss > 4 kHz": lambda n, k: filtered(n, k, "highpass", 4000.0),
        "rumble 20-150 Hz": lambda n, k: filtered(n, k, "bandpass", [20.0, 150.0]),
        "300-3000 Hz": lambda n, k: filtered(n, k, "bandpass", [300.0, 3000.0]),
        "hum 50 Hz": lambda n, k: hum(n, 50.0, n_hum), "hum 60 Hz": lambda n, k: hum(n, 60.0, n_hum),
        "pure 50 Hz": lambda n, k: hum(n, 50.0, (1.0,)),
    }
    recorded = {Path(p).stem: read(CORPUS / p)[0] for p in (*NOISE_FILES, "noise/adt_old_dusty_vinyl_recording.wav")}
    rows = []  # (bak, {weighting: true snr})
    for i, path in enumerate(speech_files):
        lead = np.zeros(RATE // 2, np.float32)
        y = np.concatenate([lead, read(CORPUS / path)[0], lead])
        mask = vad_mask(y, sample_rate=RATE)
        speech_power = {}
        for w, sos in WEIGHTINGS.items():
            p = frame_powers(y if sos is None else signal.sosfilt(sos, y).astype(np.float32), sample_rate=RATE)
            speech_power[w] = float(np.mean(p[: mask.size][mask[: p.size]]))
        for j, name in enumerate([*synthetic, *recorded]):
            if name in synthetic:
                z = synthetic[name](y.size, 1000 * i + j).astype(np.float64)
            else:
                src = recorded[name]
                z = np.resize(src[(i * 7919) % max(1, src.size - y.size):], y.size).astype(np.float64)
            z /= math.sqrt(np.mean(z**2))
            noise_power = {w: float(np.mean((z if sos is None else signal.sosfilt(sos, z)) ** 2))
                           for w, sos in WEIGHTINGS.items()}
            for snr in (5, 15, 25, 35, 45):
                gain2 = speech_power["none"] / 10 ** (snr / 10)
                bak = dnsmos_scores(np.clip(y + z * math.sqrt(gain2), -1, 1).astype(np.float32), sample_rate=RATE).bak
                rows.append((bak, {w: 10 * math.log10(speech_power[w] / (noise_power[w] * gain2)) for w in WEIGHTINGS}))
    bak = np.array([r[0] for r in rows])
    cells = []
    for w in WEIGHTINGS:
        v = np.array([r[1][w] for r in rows])
        residual = bak - np.polyval(np.polyfit(v, bak, 3), v)
        cells.append(f"| {w} | {stats.spearmanr(v, bak).statistic:.3f} | {residual.std():.3f} |")
    return "\n".join([
        f"{len(rows)} mixtures: {len(speech_files)} clean corpus recordings x {len(synthetic) + len(recorded)} noises "
        f"({', '.join([*synthetic, *recorded])}) x 5, 15, 25, 35, 45 dB unweighted SNR; DNSMOS BAK of each. "
        "How well one curve of the true SNR under each weighting explains BAK whatever the noise (Spearman over all "
        "mixtures; SD of BAK around a cubic fit):",
        "", "| weighting | Spearman vs BAK | BAK residual SD |", "|---|---:|---:|", *cells])


def program_speed(seconds: float = 60.0) -> list[str]:
    """x realtime per core of both implementations on one long program (corpus speech, concatenated)."""
    from prep.dsp.dnsmos import dnsmos_scores

    parts, total = [], 0
    for path in corpus_recordings():
        y = read(path)[0]
        parts.append(y)
        total += y.size
        if total >= seconds * RATE:
            break
    x = np.clip(np.concatenate(parts)[: int(seconds * RATE)], -1, 1)
    rows = []
    t0 = time.process_time()
    ours = dnsmos_scores(x, sample_rate=RATE)
    cpu = time.process_time() - t0
    rows.append(f"| direct (prep.dsp.dnsmos), {seconds:.0f} s program | {seconds:.0f} | {cpu:.1f} | "
                f"{seconds / cpu:.1f} | {ours.windows} | {ours.ovrl:.3f} |")
    try:
        from speechmos import dnsmos as reference
    except ImportError:
        return rows
    t0 = time.process_time()
    ref = reference.run(x, RATE)
    cpu = time.process_time() - t0
    windows = int(np.floor(x.size / RATE) - 9.01) + 1
    rows.append(f"| speechmos.dnsmos.run, {seconds:.0f} s program | {seconds:.0f} | {cpu:.1f} | "
                f"{seconds / cpu:.1f} | {windows} | {ref['ovrl_mos']:.3f} |")
    return rows


def _spearman_halves(snr: np.ndarray, bak: np.ndarray) -> tuple[float, float]:
    """Spearman on the even- and the odd-numbered recordings (a split for choosing on one, checking on the other)."""
    return stats.spearmanr(snr[::2], bak[::2]).statistic, stats.spearmanr(snr[1::2], bak[1::2]).statistic


def corpus(quick: bool, reference_every: int, bak_cache: Path | None = None,
           rank_only: bool = False) -> tuple[str, str]:
    """Rank agreement with DNSMOS BAK and DNSMOS speed.

    ``bak_cache``: JSON file of BAK per recording, written after the run; with ``rank_only`` it is read
    instead of running DNSMOS (no speed section), for fast iterations on the estimator.
    """
    import json

    from prep.dsp.dnsmos import dnsmos_scores

    cached = json.loads(bak_cache.read_text()) if rank_only and bak_cache is not None and bak_cache.exists() else {}

    rows = []
    speed = {"direct": [0.0, 0.0], "speechmos": [0.0, 0.0]}  # audio s, cpu s
    diffs = []
    try:
        from speechmos import dnsmos as reference
    except ImportError:
        reference = None
    files = corpus_recordings()
    if quick:
        files = files[::4]
    if cached:
        reference = None
    else:
        dnsmos_scores(np.zeros(RATE, np.float32) + 1e-3, sample_rate=RATE)  # warm sessions
    if reference is not None:
        reference.run(np.full(RATE * 10, 1e-3, np.float32), RATE)
    for path in files:
        name = str(path.relative_to(CORPUS))
        x, rate = read(path, None)
        y = soxr.resample(x, rate, RATE).astype(np.float32) if rate != RATE else x
        if name in cached:
            rows.append((name, cached[name], old_snr(x, rate), new_snr(x, rate), y.size / RATE, prev_snr(x, rate),
                         unraised_snr(x, rate)))
            continue
        t0 = time.process_time()
        scores = dnsmos_scores(y, sample_rate=RATE)
        speed["direct"][0] += y.size / RATE
        speed["direct"][1] += time.process_time() - t0
        if reference is not None and files.index(path) % reference_every == 0:
            t0 = time.process_time()
            ref = reference.run(np.clip(y, -1, 1), RATE)
            speed["speechmos"][0] += y.size / RATE
            speed["speechmos"][1] += time.process_time() - t0
            diffs.append((abs(scores.ovrl - ref["ovrl_mos"]), abs(scores.sig - ref["sig_mos"]),
                          abs(scores.bak - ref["bak_mos"]), abs(scores.p808 - ref["p808_mos"]), y.size / RATE))
        rows.append((name, scores.bak, old_snr(x, rate), new_snr(x, rate), y.size / RATE, prev_snr(x, rate),
                     unraised_snr(x, rate)))
    if bak_cache is not None and not cached:
        bak_cache.write_text(json.dumps({r[0]: r[1] for r in rows}, indent=1))
    real = [r for r in rows if r[0] not in DERIVED]
    bak = np.array([r[1] for r in real])
    lines = []
    for label, col in (("old (mean of pauses)", 2), ("previous (floor of pauses)", 5),
                       ("before (weighted floor of pauses or dips, not raised)", 6),
                       ("new (weighted floor, raised under fluctuating noise)", 3)):
        snr = np.array([r[col] for r in real])
        rho = stats.spearmanr(snr, bak).statistic
        even, odd = _spearman_halves(snr, bak)
        rho_all = stats.spearmanr([r[col] for r in rows], [r[1] for r in rows]).statistic
        rejected = [f"{Path(r[0]).name} (BAK {r[1]:.2f}, {r[col]:.1f} dB)" for r in real
                    if r[1] >= CLEAN_BAK and r[col] < REJECT_SNR_DB]
        lines.append(f"| {label} | {rho:.2f} | {even:.2f} / {odd:.2f} | {rho_all:.2f} | {len(rejected)} | "
                     f"{'; '.join(rejected) or '-'} |")
    moved = sorted(real, key=lambda r: -abs(r[6] - r[3]))[:6]
    rank_snr = stats.rankdata([r[3] for r in real])
    rank_bak = stats.rankdata(bak)
    worst = np.argsort(-np.abs(rank_snr - rank_bak))[:8]
    table = "\n".join([
        f"{len(real)} real speech recordings of the corpus (all {len(rows)} speech files but the derived reverberant "
        f"copies for the 'all' column); DNSMOS BAK from prep.dsp.dnsmos on the whole recording; "
        f"SNR at the native rate.",
        "",
        "| estimator | Spearman vs BAK (real) | even / odd recordings | Spearman (all) | "
        "clean (BAK >= 3.9) rejected (SNR < 10 dB) | which |",
        "|---|---:|---:|---:|---:|---|",
        *lines,
        "",
        "Largest changes (before -> new dB): "
        + "; ".join(f"{Path(r[0]).name} {r[6]:.1f} -> {r[3]:.1f} (BAK {r[1]:.2f})" for r in moved),
        "",
        f"Largest rank disagreements, new SNR rank - BAK rank of {len(real)} (SNR new / before, BAK): "
        + "; ".join(f"{Path(real[i][0]).name} {rank_snr[i] - rank_bak[i]:+.0f} ({real[i][3]:.1f} / "
                    f"{real[i][6]:.1f} dB, BAK {real[i][1]:.2f})" for i in worst),
    ])
    if cached:
        return table, ""
    out = program_speed()
    for label, (audio, cpu) in speed.items():
        if cpu > 0:
            which = f" (every {reference_every}. recording)" if label == "speechmos" else ""
            out.append(f"| {label}, corpus recordings{which} | {audio:.0f} | {cpu:.1f} | {audio / cpu:.1f} | | |")
    dtext = ""
    if diffs:
        d = np.array(diffs)
        long = d[d[:, 4] > 10.01]
        dtext = (
            f"\n\nAgreement with speechmos on {len(d)} recordings (|direct - speechmos|): "
            f"OVRL mean {d[:, 0].mean():.3f}, "
            f"max {d[:, 0].max():.3f}; SIG max {d[:, 1].max():.3f}; BAK max {d[:, 2].max():.3f}; "
            f"P.808 max {d[:, 3].max():.3f}.  Recordings of 9.01-10 s are scored on the same single window "
            f"(identical up to float rounding); on the {len(long)} recordings longer than 10 s the window grids "
            f"differ (OVRL max {long[:, 0].max() if len(long) else 0.0:.3f}); shorter ones are repeated to 9.01 s "
            f"and scored once here, at 1 s shifts of the repetition by the reference."
        )
    speed_md = "\n".join([
        "DNSMOS speed on the same recordings, x realtime per CPU core (audio s / process CPU s; one onnxruntime "
        "thread for the direct path; speechmos creates default sessions, so its CPU time covers all its threads). "
        "Every window costs the same (~39 GFLOP of convolutions in the P.835 model, run in int8 by default; "
        "benchmarks/dnsmos_speed.py compares int8 and float), and a recording shorter than 9.01 s costs a whole "
        "window, so the corpus' short recordings (median ~7 s) run slower per audio second than a long program:",
        "",
        "| implementation | audio s | CPU s | x realtime per core | windows | OVRL |",
        "|---|---:|---:|---:|---:|---:|",
        *out,
    ]) + dtext
    return table, speed_md


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer speech files (a smoke run, not for RESULTS.md)")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--reference-every", type=int, default=3, help="run speechmos on every n-th recording")
    parser.add_argument("--bak-cache", type=Path, help="JSON of DNSMOS BAK per recording (written after a full run)")
    parser.add_argument("--rank-only", action="store_true",
                        help="only the BAK agreement, BAK read from --bak-cache (implies --no-write)")
    args = parser.parse_args()
    if args.rank_only:
        print(corpus(args.quick, 1, args.bak_cache, rank_only=True)[0])
        return
    if not (CORPUS / "speech").is_dir():
        sys.exit(f"corpus not found at {CORPUS} (set VOICEPREP_CORPUS)")
    load_start = os.getloadavg()[0]
    weights = weighting(args.quick)
    acc = accuracy(args.quick)
    table, speed_md = corpus(args.quick, max(1, args.reference_every), args.bak_cache)
    load = (f"Load average (1 min) {load_start:.1f} at the start of the run, {os.getloadavg()[0]:.1f} at the end (a "
            "shared machine): the SNR and BAK numbers do not depend on it; the speed rows are CPU time, which load "
            "moves only a little.")
    md = "\n\n".join([
        "## SNR: weighted floor of the pauses or the dips, raised under fluctuating noise, vs its predecessors; "
        "DNSMOS direct on onnxruntime",
        "### Which weighting DNSMOS BAK follows", weights,
        "### Accuracy on mixtures at known SNR", acc,
        "### Rank agreement with DNSMOS BAK on real recordings", table,
        "### DNSMOS (prep.dsp.dnsmos) speed and agreement", speed_md,
        f"onnxruntime/speechmos: {versions(('onnxruntime', 'speechmos'))}.",
        load,
    ])
    print(md)
    if not args.no_write and not args.quick:
        write_section("snr", md)


if __name__ == "__main__":
    main()
