"""Benchmark: voiceprep's spectral gate vs noisereduce, speed and quality, at 16 and 44.1 kHz.

Quality: speech + noise mixtures at 0, 5, 10 and 20 dB SNR; the score is
the SI-SDR improvement (output vs input, both against the clean speech) and,
when ``pystoi`` is installed, the STOI change.  Speech is real recordings from
the shared corpus (``/work/shared/corpus`` or ``$VOICEPREP_CORPUS``) with
0.75 s of silence before and after (a recording's lead-in and tail); noise is
the corpus' recorded noises plus synthetic white and pink noise.  Without the
corpus, speech-like synthetic signals (harmonic complexes with formants and
pauses) and synthetic noise are used, and the section says so.

Peers, all on the same mixtures, in the same run:

* ``voiceprep`` -- :func:`prep.stages.denoise.denoise`, stationary and
  non-stationary, default settings, VAD included;
* ``noisereduce`` 3.x ``reduce_noise`` with default settings, stationary and
  non-stationary (it has no VAD: the stationary mode takes its statistics
  from the whole clip);
* ``noisereduce`` stationary given ``y_noise`` = the non-speech frames our
  VAD found (an informed variant, to separate the gate from the profile).

Speed: x realtime on a 60 s program (mixtures concatenated), best of
``--repeats`` after a warm-up, single thread; our time includes the VAD.
Also the cold numba compile time (fresh cache dir, in a subprocess).

Run: ``python benchmarks/denoise.py [--repeats 3] [--quick]``
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._audio import si_sdr
from benchmarks._results import best_of, write_section

CORPUS = Path(os.environ.get("VOICEPREP_CORPUS", "/work/shared/corpus"))
RATES = (16000, 44100)
SNRS_DB = (0, 5, 10, 20)
LEAD_S = 0.75
# The cleanest recordings of the corpus (estimated SNR >= 40 dB): a noisy reference would count
# removing its own noise as distortion.  Female and male voices, read speech.
SPEECH_FILES = (
    "speech/librispeech_test-other/3080-5032-0002.flac",
    "speech/librispeech_test-other/3080-5032-0000.flac",
    "speech/librispeech_test-other/2414-128291-0004.flac",
    "speech/librispeech_test-other/2033-164914-0000.flac",
    "speech/librispeech_test-other/2033-164914-0001.flac",
    "speech/ljspeech_LJ050-0131.wav",
    "speech/cmu_arctic_us_axb_a0004.wav",
    "speech/libritts_5142_33396_000002_000004.wav",
)
NOISE_FILES = (
    "noise/sc_doing_the_dishes.wav",
    "noise/sc_exercise_bike.wav",
    "noise/sc_running_tap.wav",
    "noise/dcase2013_restaurant08.wav",
    "noise/adt_hum_50Hz_from_headphone_plug.wav",
    "noise/noisereduce_cafe_short.wav",
)


# -- inputs -----------------------------------------------------------------------
def _read(path: Path, rate: int) -> np.ndarray:
    import soundfile as sf
    import soxr

    data, native = sf.read(str(path), dtype="float32", always_2d=True)
    mono = data.mean(axis=1)
    if native != rate:
        mono = soxr.resample(mono, native, rate)
    return np.ascontiguousarray(mono, dtype=np.float32)


def _synthetic_speech(rate: int, seed: int, seconds: float = 6.0) -> np.ndarray:
    """Speech-like signal: voiced 'syllables' (harmonics under moving formants) between pauses."""
    from scipy.signal import lfilter

    rng = np.random.default_rng(seed)
    out = np.zeros(int(seconds * rate), np.float32)
    pos = int(0.2 * rate)
    while pos < out.size - int(0.3 * rate):
        dur = int(rng.uniform(0.12, 0.35) * rate)
        t = np.arange(dur) / rate
        f0 = rng.uniform(90, 220) * (1 + 0.1 * np.sin(2 * np.pi * rng.uniform(2, 5) * t))
        phase = 2 * np.pi * np.cumsum(f0) / rate
        src = sum(np.sin(k * phase) / k for k in range(1, 30) if k * f0.max() < rate / 2 - 500)
        sig = src
        for formant in (rng.uniform(300, 900), rng.uniform(900, 2500), rng.uniform(2500, 3500)):
            r = np.exp(-np.pi * 100 / rate)
            c = 2 * r * np.cos(2 * np.pi * formant / rate)
            sig = lfilter([1 - r], [1, -c, r * r], sig)
        env = np.sin(np.pi * np.arange(dur) / dur) ** 0.5
        n = min(dur, out.size - pos)
        out[pos : pos + n] += (sig * env)[:n].astype(np.float32)
        pos += dur + int(rng.choice([rng.uniform(0.02, 0.08), rng.uniform(0.2, 0.6)]) * rate)
    return (out / (np.max(np.abs(out)) + 1e-9) * 0.5).astype(np.float32)


def _colored(n: int, rng: np.random.Generator, exponent: float) -> np.ndarray:
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(spec.size, dtype=np.float64)
    f[0] = 1.0
    x = np.fft.irfft(spec / f ** (exponent / 2), n)
    return (x / np.std(x)).astype(np.float32)


def inputs(rate: int, quick: bool) -> tuple[list[tuple[str, np.ndarray]], list[tuple[str, np.ndarray | None]], str]:
    """Speech and noise banks at ``rate`` (noise None = synthetic, drawn per mixture)."""
    speech: list[tuple[str, np.ndarray]] = []
    noise: list[tuple[str, np.ndarray | None]] = []
    if CORPUS.is_dir():
        speech = [(Path(p).stem, _read(CORPUS / p, rate)) for p in SPEECH_FILES if (CORPUS / p).exists()]
        noise = [(Path(p).stem, _read(CORPUS / p, rate)) for p in NOISE_FILES if (CORPUS / p).exists()]
    source = "real recordings from the shared corpus"
    if not speech:
        speech = [(f"synthetic{i}", _synthetic_speech(rate, i)) for i in range(6)]
        source = "synthetic speech-like signals (corpus not found)"
    noise += [("white", None), ("pink", None)]
    if quick:
        speech, noise = speech[:3], noise[::2]
    return speech, noise, source


def mixture(clean: np.ndarray, noise: np.ndarray | None, name: str, snr_db: float, rate: int, seed: int):
    """Padded clean speech and its mixture with ``noise`` at ``snr_db`` (speech power over the file)."""
    rng = np.random.default_rng(seed)
    lead = np.zeros(int(LEAD_S * rate), np.float32)
    ref = np.concatenate([lead, clean, lead])
    if noise is None:
        bed = _colored(ref.size, rng, 0.0 if name == "white" else 1.0)
    else:
        reps = int(np.ceil(ref.size / noise.size)) + 1
        tiled = np.tile(noise, reps)
        off = int(rng.integers(0, tiled.size - ref.size + 1))
        bed = tiled[off : off + ref.size]
    speech_power = np.mean(clean.astype(np.float64) ** 2)
    gain = np.sqrt(speech_power / (np.mean(bed.astype(np.float64) ** 2) * 10 ** (snr_db / 10)))
    return ref, (ref + gain * bed).astype(np.float32)


# -- peers ------------------------------------------------------------------------
def peers():
    import noisereduce as nr

    from prep.dsp.vad import speech_mask
    from prep.stages.denoise import denoise, estimate_noise

    def ours(mode):
        return lambda y, sr: denoise(y, sample_rate=sr, mode=mode)[0]

    def nr_informed(y, sr):
        est = estimate_noise(y, sample_rate=sr, speech=speech_mask(y, sample_rate=sr))
        idx = np.flatnonzero(est.noise_frames)
        hop = est.hop
        noise = np.concatenate([y[i * hop : (i + 1) * hop] for i in idx]) if idx.size else y
        return nr.reduce_noise(y=y, sr=sr, stationary=True, y_noise=noise)

    return {
        "voiceprep stationary": ours("stationary"),
        "voiceprep nonstationary": ours("nonstationary"),
        "noisereduce stationary": lambda y, sr: nr.reduce_noise(y=y, sr=sr, stationary=True),
        "noisereduce nonstationary": lambda y, sr: nr.reduce_noise(y=y, sr=sr, stationary=False),
        "noisereduce stationary + our VAD noise": nr_informed,
    }


SPEED_PEERS = ("voiceprep stationary", "voiceprep nonstationary", "noisereduce stationary", "noisereduce nonstationary")


def quality(rate: int, quick: bool) -> tuple[dict, str, int]:
    try:
        from pystoi import stoi
    except ImportError:
        stoi = None
    speech, noise, source = inputs(rate, quick)
    fns = peers()
    scores: dict[tuple[str, int], list[tuple[float, float]]] = {}
    count = 0
    for si, (_, clean) in enumerate(speech):
        for ni, (nname, nsig) in enumerate(noise):
            for snr in SNRS_DB:
                ref, mix = mixture(clean, nsig, nname, snr, rate, seed=1000 * si + 10 * ni + snr)
                base = si_sdr(mix, ref)
                base_stoi = stoi(ref, mix, rate) if stoi else float("nan")
                count += 1
                for name, fn in fns.items():
                    out = fn(mix, rate)
                    d_stoi = stoi(ref, out, rate) - base_stoi if stoi else float("nan")
                    scores.setdefault((name, snr), []).append((si_sdr(out, ref) - base, d_stoi))
    return scores, source, count


def speed(rate: int, repeats: int, quick: bool) -> dict[str, float]:
    speech, noise, _ = inputs(rate, quick)
    parts = []
    total = 60 * rate
    k = 0
    while sum(p.size for p in parts) < total:
        _, clean = speech[k % len(speech)]
        nname, nsig = noise[k % len(noise)]
        parts.append(mixture(clean, nsig, nname, 10, rate, seed=k)[1])
        k += 1
    program = np.concatenate(parts)[:total]
    fns = peers()
    out = {}
    for name in SPEED_PEERS:
        fn = fns[name]
        fn(program[: 5 * rate], rate)  # warm-up (and numba cache load)
        out[name] = 60.0 / best_of(lambda fn=fn: fn(program, rate), repeat=repeats)
    from prep.dsp.vad import speech_mask
    from prep.stages.denoise import estimate_noise, spectral_gate

    est = estimate_noise(program, sample_rate=rate, speech=speech_mask(program, sample_rate=rate))
    out["voiceprep gate only (given the VAD)"] = 60.0 / best_of(
        lambda: spectral_gate(program, sample_rate=rate, noise=est), repeat=repeats
    )
    return out


def cold_compile_s() -> float:
    """Seconds for import + first gate in both modes with an empty numba cache (subprocess)."""
    code = (
        "import time; t=time.perf_counter(); import numpy as np; "
        "from prep.stages.denoise import estimate_noise, spectral_gate; "
        "x=np.random.default_rng(0).standard_normal(16000).astype(np.float32); "
        "e=estimate_noise(x, sample_rate=16000, speech=np.zeros(34, bool)); "
        "spectral_gate(x, sample_rate=16000, noise=e); "
        "spectral_gate(x, sample_rate=16000, noise=e, mode='nonstationary'); "
        "print(time.perf_counter()-t)"
    )
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    return float(res.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="fewer mixtures (smoke test); results not written")
    args = parser.parse_args()
    t_start = time.perf_counter()
    lines = ["## Denoise: voiceprep spectral gate vs noisereduce", ""]
    summary = []
    for rate in RATES:
        scores, source, count = quality(rate, args.quick)
        speeds = speed(rate, args.repeats, args.quick)
        names = list(peers())
        lines += [f"### {rate / 1000:g} kHz", "", f"Quality: {count} mixtures ({source}), mean over mixtures.", ""]
        lines += ["| method | " + " | ".join(f"ΔSI-SDR {s} dB" for s in SNRS_DB) + " | " + " | ".join(
            f"ΔSTOI {s} dB" for s in SNRS_DB) + " |"]
        lines += ["|---" * (1 + 2 * len(SNRS_DB)) + "|"]
        for name in names:
            sdr = [np.mean([v[0] for v in scores[(name, s)]]) for s in SNRS_DB]
            sto = [np.mean([v[1] for v in scores[(name, s)]]) for s in SNRS_DB]
            lines.append(
                f"| {name} | " + " | ".join(f"{v:+.2f}" for v in sdr) + " | " + " | ".join(
                    "n/a" if np.isnan(v) else f"{v:+.3f}" for v in sto) + " |"
            )
        lines += ["", "Speed on a 60 s program (x realtime, higher is faster; ratio = noisereduce time / ours):", ""]
        lines += ["| method | x realtime |", "|---|---|"]
        for name, xrt in speeds.items():
            lines.append(f"| {name} | {xrt:.0f} |")
        ours_st, ours_ns = speeds["voiceprep stationary"], speeds["voiceprep nonstationary"]
        r_st = ours_st / speeds["noisereduce stationary"]
        r_ns = ours_ns / speeds["noisereduce nonstationary"]
        lines += ["", f"Speed-up, same mode: stationary **{r_st:.1f}x**, non-stationary **{r_ns:.1f}x**.", ""]
        summary.append(f"{rate / 1000:g} kHz: stationary {r_st:.1f}x, non-stationary {r_ns:.1f}x faster")
        print(f"{rate} Hz done ({time.perf_counter() - t_start:.0f} s)", flush=True)
    compile_s = cold_compile_s()
    lines += [
        f"Cold start (empty numba cache: import, compile, first calls of both modes): {compile_s:.1f} s.",
        "",
        "Summary: " + "; ".join(summary) + ".",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.quick:
        write_section("denoise", text)


if __name__ == "__main__":
    main()
