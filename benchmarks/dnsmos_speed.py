"""Benchmark: DNSMOS speed per CPU core, int8 vs float P.835 model, and agreement with float and speechmos.

1. Speed, x realtime per CPU core = audio seconds / ``time.process_time()`` seconds (one onnxruntime
   thread, ``OPENBLAS_NUM_THREADS=1`` so no BLAS thread spins; warm sessions, the int8 model already
   in the cache): :func:`prep.dsp.dnsmos.dnsmos_scores` with the int8 P.835 model (default) and
   with the float one (``quantized=False``), on a 60 s program (corpus speech concatenated), on the
   corpus recordings of at least 9.01 s and on the shorter ones (one variable-length input each,
   the clip looped to at least ``SHORT_MIN_S``, rescored on the 9.01 s loop when its OVRL or BAK is
   below ``SHORT_RESCORE_BELOW``; also without P.808, with the former 6 s minimum without rescoring
   and on the former whole 9.01 s loop); ``speechmos.dnsmos.run`` on the same 60 s for reference.
   Also the CPU time of one window's parts and of batching windows in one session call.
1b. The short-clip rule (minimum length, rescoring threshold): for each candidate, agreement with
   ``speechmos`` and with the 9.01 s loop (Spearman) on every corpus recording under 9.01 s and on
   noisy mixtures of them (a corpus noise at 0, 5, 10 and 20 dB), how many are rescored, and x
   realtime per core on the recordings; then the rule chosen on the recordings of one half (and
   their mixtures) and checked on the other half.
2. Agreement of the int8 with the float model (same windows, so only quantisation differs): every
   corpus speech recording, and degraded speech (every 3rd recording plus a corpus noise at 0, 5,
   10 and 20 dB SNR): mean and max |ΔOVRL|, |ΔSIG|, |ΔBAK| and the Spearman rank correlation.
3. Agreement with ``speechmos.dnsmos.run`` (1 s hop, so the window grid differs) on every
   ``--reference-every``-th recording, int8 and float.

Corpus: ``../shared/corpus`` beside the checkout (or ``$VOICEPREP_CORPUS``).

Run: ``OPENBLAS_NUM_THREADS=1 python benchmarks/dnsmos_speed.py``
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._audio import mono_at
from benchmarks._results import CORPUS as _CORPUS
from benchmarks._results import versions, write_section
from prep.dsp import dnsmos as dn

CORPUS = Path(os.environ.get("VOICEPREP_CORPUS", str(_CORPUS)))
RATE = 16000
SUFFIXES = (".wav", ".flac", ".mp3", ".ogg")
SNRS_DB = (0, 5, 10, 20)


def read(path: Path) -> np.ndarray:
    return mono_at(path, RATE)[0]


def recordings() -> list[tuple[str, np.ndarray]]:
    files = sorted(p for p in (CORPUS / "speech").rglob("*") if p.suffix in SUFFIXES)
    return [(str(p.relative_to(CORPUS)), np.clip(read(p), -1, 1)) for p in files]


def noises() -> list[np.ndarray]:
    return [read(p) for p in sorted((CORPUS / "noise").glob("*.wav"))]


def cpu(fn) -> tuple[float, object]:
    t0 = time.process_time()
    out = fn()
    return time.process_time() - t0, out


def speed(recs: list[tuple[str, np.ndarray]]) -> list[str]:
    program = np.concatenate([x for _, x in recs])[: 60 * RATE]
    long = [x for _, x in recs if x.size >= dn.WINDOW_SAMPLES]
    short = [x for _, x in recs if RATE // 2 <= x.size < dn.WINDOW_SAMPLES]
    rows = []
    n_short = f"{len(short)} recordings < 9.01 s"
    rule = f"own length, >= {dn.SHORT_MIN_S:g} s, rescored below {dn.SHORT_RESCORE_BELOW:g}"
    former6 = {"short_min_s": 6.0, "short_rescore_below": 0.0}
    for label, quantized in (("int8 P.835 (default)", True), ("float P.835", False)):
        dn.dnsmos_scores(program[:RATE], sample_rate=RATE, quantized=quantized)  # warm
        cases = [("60 s program", [program], {}), (f"{len(long)} recordings >= 9.01 s", long, {}),
                 (f"{n_short} ({rule})", short, {})]
        if quantized:
            cases += [(f"{n_short} ({rule}), no P.808", short, {"p808": False}),
                      (f"{n_short} (former: own length, >= 6 s, no rescoring)", short, former6),
                      (f"{n_short} (former: own length, >= 6 s, no rescoring), no P.808", short,
                       {**former6, "p808": False}),
                      (f"{n_short} (former: whole 9.01 s loop)", short, {"short_min_s": 9.01}),
                      (f"{n_short} (former: whole 9.01 s loop), no P.808", short, {"short_min_s": 9.01, "p808": False})]
        for what, clips, kw in cases:
            seconds = sum(x.size for x in clips) / RATE
            spent, out = cpu(lambda clips=clips, q=quantized, kw=kw: [
                dn.dnsmos_scores(x, sample_rate=RATE, quantized=q, **kw) for x in clips])
            windows = sum(s.windows for s in out)
            rescored = sum(s.rescored for s in out)
            rows.append(f"| {label} | {what} | {seconds:.0f} | {windows} | {rescored} | {spent:.2f} | "
                        f"{1000 * spent / windows:.0f} | **{seconds / spent:.1f}** |")
    try:
        from speechmos import dnsmos as reference
    except ImportError:
        return rows
    reference.run(program[: 10 * RATE], RATE)
    spent, _ = cpu(lambda: reference.run(program, RATE))
    windows = int(np.floor(program.size / RATE) - 9.01) + 1
    rows.append(f"| speechmos.dnsmos.run (all its threads) | 60 s program | 60 | {windows} | | {spent:.2f} | "
                f"{1000 * spent / windows:.0f} | {60 / spent:.1f} |")
    return rows


def parts() -> str:
    window = dn.calibration_windows()[1]
    p835_q, p808 = dn._sessions(dn.DNSMOS_MODEL, quantized=True)
    p835_f, _ = dn._sessions(dn.DNSMOS_MODEL, quantized=False)
    mel = dn.mel_features(window[: -dn._HOP])[np.newaxis]
    steps = {
        "P.835 float": lambda: p835_f.run(None, {"input_1": window[np.newaxis]}),
        "P.835 int8": lambda: p835_q.run(None, {"input_1": window[np.newaxis]}),
        "P.808 mel features (numpy)": lambda: dn.mel_features(window[: -dn._HOP]),
        "P.808 model (float)": lambda: p808.run(None, {"input_1": mel}),
    }
    out = []
    for name, fn in steps.items():
        fn()
        spent, _ = cpu(lambda fn=fn: [fn() for _ in range(20)])
        out.append(f"{name} {1000 * spent / 20:.1f} ms")
    batched = []
    windows = np.stack(dn.calibration_windows()[:4])
    for n in (1, 2, 4):
        p835_q.run(None, {"input_1": windows[:n]})
        spent, _ = cpu(lambda n=n: [p835_q.run(None, {"input_1": windows[:n]}) for _ in range(20 // n)])
        batched.append(f"{n}: {1000 * spent / (20 // n * n):.1f} ms")
    return ("CPU time of one window's parts (mean of 20): " + "; ".join(out) + ". Int8 P.835 per window with "
            "n windows in one session call: " + "; ".join(batched) + ".")


#: Short-clip rules compared: (minimum input s, rescoring threshold; 0 = no rescoring).  The default
#: is (SHORT_MIN_S, SHORT_RESCORE_BELOW).
RULES = ((0.0, 0.0), (4.0, 0.0), (5.0, 0.0), (6.0, 0.0), (7.0, 0.0), (8.0, 0.0), (9.01, 0.0),
         (4.0, 2.0), (4.5, 2.0), (5.0, 1.75), (5.0, 2.0), (5.0, 2.25), (5.5, 2.0), (6.0, 2.0))
#: The grid the held-out choice searches (first stages at these minimums, rescored below these).
GRID_MIN_S = (4.0, 4.5, 5.0, 5.5, 6.0)
GRID_BELOW = (0.0, 1.75, 2.0, 2.25, 2.5, 2.75)


def mixtures(clips: list[np.ndarray], noise: list[np.ndarray]) -> list[np.ndarray]:
    """Every clip plus a corpus noise at each of SNRS_DB (peak at most 0.9)."""
    out = []
    for i, x in enumerate(clips):
        for snr_db in SNRS_DB:
            n = np.resize(noise[(i + snr_db) % len(noise)], x.size)
            gain = np.sqrt(np.mean(x**2) / max(float(np.mean(n**2)), 1e-12) / 10 ** (snr_db / 10))
            m = x + gain * n
            m *= np.float32(0.9 / max(1.0, float(np.max(np.abs(m)))))
            out.append(m.astype(np.float32))
    return out


def _input_s(n: int, min_s: float) -> float:
    """Seconds of audio the P.835 model reads for a short clip of ``n`` samples at minimum ``min_s``."""
    return dn.short_input_samples(n, min_s) / RATE


def short_minimum(recs: list[tuple[str, np.ndarray]]) -> str:
    """Agreement and speed of short clips against the rule (minimum input length, rescoring threshold)."""
    try:
        from speechmos import dnsmos as reference
    except ImportError:
        return "speechmos is not installed: short-clip rule not measured."
    short = [x for _, x in recs if RATE // 2 <= x.size < dn.WINDOW_SAMPLES]
    mixed = mixtures(short, noises())
    sets = {"recordings": short, "noisy mixtures": mixed}
    ref = {k: np.array([[r["ovrl_mos"], r["sig_mos"], r["bak_mos"]] for r in (reference.run(x, RATE) for x in v)])
           for k, v in sets.items()}

    def score(clips: list[np.ndarray], m: float, below: float) -> tuple[np.ndarray, np.ndarray]:
        out = [dn.dnsmos_scores(x, sample_rate=RATE, short_min_s=m, short_rescore_below=below) for x in clips]
        return np.array([[s.ovrl, s.sig, s.bak] for s in out]), np.array([s.rescored for s in out])

    ours = {(k, rule): score(v, *rule) for k, v in sets.items() for rule in RULES}
    seconds = sum(x.size for x in short) / RATE
    lines = [r"| minimum s | rescored below | audio | n | rescored | \|ΔOVRL\| mean / max | over 0.3 | "
             r"\|ΔSIG\| mean / max | \|ΔBAK\| mean / max | OVRL vs 9.01 s loop: mean Δ / max \|Δ\| | "
             "Spearman vs loop OVRL / SIG / BAK | x realtime per core (recordings, with P.808) |",
             "|---:|---:|---|---:|---:|---|---:|---|---|---|---|---:|"]
    for rule in RULES:
        spent, _ = cpu(lambda rule=rule: [dn.dnsmos_scores(x, sample_rate=RATE, short_min_s=rule[0],
                                                           short_rescore_below=rule[1]) for x in short])
        for k in sets:
            (a, rescored), loop = ours[(k, rule)], ours[(k, (9.01, 0.0))][0]
            d = np.abs(a - ref[k])
            rho = " / ".join(f"{stats.spearmanr(a[:, j], loop[:, j]).statistic:.3f}" for j in range(3))
            m = "own length" if rule[0] == 0 else f"{rule[0]:g}"
            default = rule == (dn.SHORT_MIN_S, dn.SHORT_RESCORE_BELOW)
            lines.append(f"| {'**' + m + '**' if default else m} | {rule[1]:g} | {k} | {len(a)} | "
                         f"{int(rescored.sum())} | {d[:, 0].mean():.3f} / {d[:, 0].max():.3f} | "
                         f"{int((d[:, 0] > 0.3).sum())} | {d[:, 1].mean():.3f} / {d[:, 1].max():.3f} | "
                         f"{d[:, 2].mean():.3f} / {d[:, 2].max():.3f} | {np.mean(a[:, 0] - loop[:, 0]):+.3f} / "
                         f"{np.abs(a[:, 0] - loop[:, 0]).max():.3f} | {rho} | "
                         f"{f'{seconds / spent:.1f}' if k == 'recordings' else ''} |")
    return (f"Short clips: the rule (default: minimum {dn.SHORT_MIN_S:g} s, rescored below "
            f"{dn.SHORT_RESCORE_BELOW:g}, in bold). A clip under 9.01 s is scored by the int8 P.835 model on its own "
            "length, looped to the minimum; when its OVRL or BAK is below the threshold it is scored again on the "
            "9.01 s loop (the former whole-window loop, minimum 9.01) and that score kept (0: never). |Δ| against "
            "speechmos.dnsmos.run (its loop to 9.01 s and 1 s hop); the corpus recordings under 9.01 s "
            f"({seconds:.0f} s in all) and each with a corpus noise at 0/5/10/20 dB; x realtime per core from one "
            "timed pass over the recordings per rule (CPU time):\n\n" + "\n".join(lines)
            + "\n\n" + held_out(short, mixed, ref))


def held_out(short: list[np.ndarray], mixed: list[np.ndarray], ref: dict[str, np.ndarray]) -> str:
    """The rule chosen on the recordings of one half (even or odd index) with their mixtures, checked on the other.

    Chosen among ``GRID_MIN_S`` x ``GRID_BELOW``: the P.835 input on the half's recordings (seconds read,
    the rescored ones counted twice) at most 95 % of the former 6 s minimum's, then the smallest max
    |ΔOVRL| (to 0.001), then the smallest mean.
    """
    clips = short + mixed
    r = np.concatenate([ref["recordings"], ref["noisy mixtures"]])
    half = np.concatenate([np.arange(len(short)), np.repeat(np.arange(len(short)), len(SNRS_DB))]) % 2
    is_rec = np.arange(len(clips)) < len(short)
    loop = np.array([[s.ovrl, s.bak] for s in (dn.dnsmos_scores(x, sample_rate=RATE, short_min_s=9.01) for x in clips)])
    first = {m: np.array([[s.ovrl, s.bak] for s in (dn.dnsmos_scores(x, sample_rate=RATE, short_min_s=m,
                                                                      short_rescore_below=0.0) for x in clips)])
             for m in GRID_MIN_S}
    former = np.array([_input_s(x.size, 6.0) for x in clips])
    outcome = {}
    for m in GRID_MIN_S:
        base = np.array([_input_s(x.size, m) for x in clips])
        for below in GRID_BELOW:
            again = np.array([dn.rescores_short(o, b, below) for o, b in first[m]]) & (base < dn.WINDOW_SAMPLES / RATE)
            ovrl = np.where(again, loop[:, 0], first[m][:, 0])
            outcome[(m, below)] = (np.abs(ovrl - r[:, 0]), again, base + again * dn.WINDOW_SAMPLES / RATE)
    out = ["| chosen on | rule (minimum s, below) | checked on | n | \\|ΔOVRL\\| mean / max | over 0.3 | "
           "rescored recordings / mixtures | P.835 input on recordings vs 6 s minimum |",
           "|---|---|---|---:|---|---:|---|---:|"]
    for h in (0, 1):
        chose, other = half == h, half != h

        def key(rule: tuple[float, float], mask: np.ndarray = chose) -> tuple[float, float]:
            d = outcome[rule][0][mask]
            return round(float(d.max()), 3), float(d.mean())

        affordable = [rule for rule, (_, _, cost) in outcome.items()
                      if cost[chose & is_rec].sum() <= 0.95 * former[chose & is_rec].sum()]
        best = min(affordable, key=key)
        d, again, cost = outcome[best]
        for what, mask in (("the same half", chose), ("**the other half**", other)):
            out.append(f"| half {h} | {best[0]:g} s, {best[1]:g} | {what} | {int(mask.sum())} | {d[mask].mean():.3f} / "
                       f"{d[mask].max():.3f} | {int((d[mask] > 0.3).sum())} | {int(again[mask & is_rec].sum())} / "
                       f"{int(again[mask & ~is_rec].sum())} | "
                       f"{cost[mask & is_rec].sum() / former[mask & is_rec].sum():.2f} |")
    return ("Held out: the rule chosen on the recordings of one half (even or odd index) and their mixtures, among "
            f"minimum {', '.join(f'{m:g}' for m in GRID_MIN_S)} s x rescored below "
            f"{', '.join(f'{b:g}' for b in GRID_BELOW)}: P.835 input on that half's recordings (seconds read, a "
            "rescored clip's both inputs) at most 95 % of the former 6 s minimum's, then the smallest max |ΔOVRL|, "
            "then the smallest mean; checked on the other half:\n\n" + "\n".join(out))


def agreement(recs: list[tuple[str, np.ndarray]], reference_every: int) -> str:
    noise = noises()
    real, degraded, ref = [], [], []
    try:
        from speechmos import dnsmos as reference
    except ImportError:
        reference = None

    def both(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # no rescoring: both read the same input
        q = dn.dnsmos_scores(x, sample_rate=RATE, short_rescore_below=0.0)
        f = dn.dnsmos_scores(x, sample_rate=RATE, quantized=False, short_rescore_below=0.0)
        return np.array([q.ovrl, q.sig, q.bak]), np.array([f.ovrl, f.sig, f.bak])

    for i, (_, x) in enumerate(recs):
        if x.size < RATE // 2:
            continue
        q, f = both(x)
        real.append((q, f))
        if reference is not None and i % reference_every == 0:
            r = reference.run(x, RATE)
            ref.append((q, f, np.array([r["ovrl_mos"], r["sig_mos"], r["bak_mos"]])))
        if i % 3 == 0:
            for snr_db in SNRS_DB:
                n = np.resize(noise[(i + snr_db) % len(noise)], x.size)
                gain = np.sqrt(np.mean(x**2) / max(float(np.mean(n**2)), 1e-12) / 10 ** (snr_db / 10))
                m = x + gain * n
                m *= np.float32(0.9 / max(1.0, float(np.max(np.abs(m)))))
                degraded.append(both(m.astype(np.float32)))
    lines = ["| audio | n | mean \\|ΔOVRL\\| | max \\|ΔOVRL\\| | mean \\|ΔSIG\\| | max \\|ΔSIG\\| | mean \\|ΔBAK\\| | "
             "max \\|ΔBAK\\| | Spearman OVRL / SIG / BAK |", "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for label, pairs in (("corpus recordings", real), ("degraded (corpus noise at 0-20 dB)", degraded)):
        a = np.array(pairs)
        d = np.abs(a[:, 0] - a[:, 1])
        rho = " / ".join(f"{stats.spearmanr(a[:, 0, j], a[:, 1, j]).statistic:.3f}" for j in range(3))
        lines.append(f"| {label} | {len(a)} | {d[:, 0].mean():.3f} | {d[:, 0].max():.3f} | {d[:, 1].mean():.3f} | "
                     f"{d[:, 1].max():.3f} | {d[:, 2].mean():.3f} | {d[:, 2].max():.3f} | {rho} |")
    text = ("int8 vs float P.835 model (same windows, short clips without rescoring; the quantisation's own "
            "error):\n\n") + "\n".join(lines)
    if ref:
        r = np.array(ref)
        parts_ = []
        for label, k in (("int8", 0), ("float", 1)):
            d = np.abs(r[:, k] - r[:, 2])
            parts_.append(f"{label}: OVRL mean {d[:, 0].mean():.3f}, max {d[:, 0].max():.3f}; SIG max "
                          f"{d[:, 1].max():.3f}; BAK max {d[:, 2].max():.3f}")
        text += (f"\n\nAgreement with speechmos.dnsmos.run on {len(r)} recordings (every {reference_every}. one; "
                 f"its 1 s hop is another window grid): " + "; ".join(parts_) + ".")
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--reference-every", type=int, default=3, help="run speechmos on every n-th recording")
    args = parser.parse_args()
    if not (CORPUS / "speech").is_dir():
        sys.exit(f"corpus not found at {CORPUS} (set VOICEPREP_CORPUS)")
    recs = recordings()
    load_start = os.getloadavg()[0]
    rows = speed(recs)
    short_md = short_minimum(recs)
    agreement_md = agreement(recs, max(1, args.reference_every))
    load = (f"Load average (1 min) {load_start:.1f} at the start, {os.getloadavg()[0]:.1f} at the end "
            f"({os.cpu_count()} cores).")
    md = "\n\n".join([
        "## DNSMOS speed per CPU core: int8 vs float P.835 model",
        "x realtime per core = audio s / process CPU s (`time.process_time`, one onnxruntime thread, "
        "OPENBLAS_NUM_THREADS=1, warm sessions; measured with `nice -n 10` while other jobs shared the machine, "
        "so CPU time, not wall time). A recording shorter than 9.01 s is one P.835 input of its own length, "
        f"looped to at least {dn.SHORT_MIN_S:g} s, scored again on the 9.01 s loop when its OVRL or BAK is below "
        f"{dn.SHORT_RESCORE_BELOW:g} (rescored: P.835 ran twice; formerly a 6 s minimum without rescoring, and "
        "before that a whole 9.01 s window whatever its length); the P.808 model still reads the 9.01 s loop. "
        f"{load}",
        "\n".join(["| P.835 model | audio | audio s | windows | rescored | CPU s | ms per window | "
                   "x realtime per core |", "|---|---|---:|---:|---:|---:|---:|---:|", *rows]),
        parts(),
        short_md,
        agreement_md,
        f"onnxruntime/onnx/speechmos: {versions(('onnxruntime', 'onnx', 'speechmos'))}.",
    ])
    print(md)
    if not args.no_write:
        write_section("dnsmos_speed", md)


if __name__ == "__main__":
    main()
