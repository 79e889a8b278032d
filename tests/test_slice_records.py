"""Per-slice judging and one truth per number: each slice is measured on its own span of the
source, and a clip's length, span and cut pauses agree with the WAV on disk and the report."""

from __future__ import annotations

import dataclasses
import itertools
import json

import numpy as np
import pytest
import soundfile as sf
from speechlike import utterance

from prep.metrics import source_metrics
from prep.report.summary import build_report, write_report_json
from prep.run.longform import LongForm
from prep.run.profiles import get_profile
from prep.run.run_folder import RunFolder
from prep.run.runner import Job, process_job, run_jobs


def _no_mos(stages):
    """The profile's stages with DNSMOS and diarisation off (speed; the source metrics are what is tested).

    The synthetic speech-like signal is no voice a speaker model knows: its clean and noisy stretches
    would read as two voices.
    """
    off = {"measure_input": {"mos": False}, "score": {"mos": False}, "diarise": {"model": ""}}
    return tuple(dataclasses.replace(s, **off[s.name]) if s.name in off else s for s in stages)


def _noise_to_snr(speech: np.ndarray, regions, rate: int, snr_db: float, seed: int) -> np.ndarray:
    """White noise scaled so speech power over ``regions`` / noise power = ``snr_db``."""
    mask = np.zeros(speech.size, bool)
    for s, e in regions:
        mask[int(s * rate) : int(e * rate)] = True
    power = np.mean(speech[mask].astype(np.float64) ** 2)
    noise = np.random.default_rng(seed).standard_normal(speech.size)
    return (noise * np.sqrt(power / 10 ** (snr_db / 10))).astype(np.float32)


def _blocks(rate: int, kinds: list[tuple[str, int]], *, snr_db: float, floor: float = 3e-5):
    """Blocks of speech-like phrases (0.3 s pauses inside, 0.9 s between blocks), some noisy.

    Returns the audio, the phrase regions and the ``(start_s, end_s, kind)`` of each block.
    """
    parts, regions, blocks, pos = [], [], [], 0
    for k, (kind, phrases) in enumerate(kinds):
        audio, regs = utterance(rate, phrases_s=(2.5,) * phrases, pauses_s=(0.3,) * (phrases - 1),
                                lead_s=0.45, tail_s=0.45, seed=10 + k, peak=0.4)
        if kind == "noisy":
            audio = audio + _noise_to_snr(audio, regs, rate, snr_db, seed=100 + k)
        regions += [(pos / rate + s, pos / rate + e) for s, e in regs]
        blocks.append((pos / rate, (pos + audio.size) / rate, kind))
        parts.append(audio)
        pos += audio.size
    x = np.concatenate(parts)
    x = x + floor * np.random.default_rng(7).standard_normal(x.size).astype(np.float32)  # a faint room floor
    return x.astype(np.float32), regions, blocks


def _kind(span, blocks, slack_s: float = 0.5) -> str | None:
    """The kind of block holding all of ``span`` (give or take ``slack_s``), or None when it straddles."""
    for start, end, kind in blocks:
        if span[0] >= start - slack_s and span[1] <= end + slack_s:
            return kind
    return None


# -- per-slice judging -------------------------------------------------------------------------------
def test_clean_half_slices_are_not_judged_by_the_noisy_half(tmp_path):
    """A 2-minute recording, clean for 60 s then 5 dB SNR: the clean slices carry no noise problem."""
    rate = 22050
    x, _regions, blocks = _blocks(rate, [("clean", 22), ("noisy", 22)], snr_db=5.0)
    assert 110.0 < x.size / rate < 130.0 and 55.0 < blocks[0][1] < 65.0
    path = tmp_path / "half.wav"
    sf.write(path, x, rate, subtype="PCM_16")
    stages = _no_mos(get_profile("fish").stages)
    rules = next(s for s in stages if s.name == "score")
    clips = process_job(Job(str(path), "spk"), stages)
    assert len(clips) >= 4 and all(c.verdict != "error" for c in clips), [c.reasons for c in clips]
    clean = [c for c in clips if _kind(c.span_s, blocks) == "clean"]
    noisy = [c for c in clips if _kind(c.span_s, blocks) == "noisy"]
    assert clean and noisy, [c.span_s for c in clips]
    for c in clean:
        snr = source_metrics(c.metrics)["snr_db"]
        assert snr is not None and snr >= rules.warn_snr_db, (c.id, snr)  # no SNR warning, let alone a reject
        assert "snr_db" not in c.metrics["score_penalties"], (c.id, c.metrics["score_penalties"])
    for c in noisy:
        snr = source_metrics(c.metrics)["snr_db"]
        assert snr is not None and abs(snr - 5.0) <= 5.0, (c.id, snr)
    worst_clean = min(c.metrics["score"] for c in clean)
    best_noisy = max(c.metrics["score"] for c in noisy)
    assert worst_clean >= best_noisy + 10.0, ([c.metrics["score"] for c in clean], [c.metrics["score"] for c in noisy])


def test_long_file_slices_of_one_piece_get_their_own_source_values(tmp_path):
    """Streamed in pieces: slices of the same piece differ where the audio differs (clean vs 15 dB SNR)."""
    rate = 16000
    x, _, blocks = _blocks(rate, [("clean", 7), ("noisy", 11), ("clean", 7), ("noisy", 11)], snr_db=15.0)
    path = tmp_path / "long.flac"
    sf.write(path, x, rate, subtype="PCM_16")
    config = LongForm(long_file_s=30.0, min_piece_s=35.0, max_piece_s=60.0, block_s=2.0)
    clips = process_job(Job(str(path), "spk"), _no_mos(get_profile("dataset").stages), longform=config)
    assert all(c.verdict != "error" for c in clips), [c.reasons for c in clips]
    by_piece: dict[int, dict[str, list[float]]] = {}
    for c in clips:
        kind = _kind(c.span_s, blocks)
        if kind is not None:
            snr = source_metrics(c.metrics)["snr_db"]
            by_piece.setdefault(c.metrics["piece_index"], {}).setdefault(kind, []).append(snr)
    mixed = {k: v for k, v in by_piece.items() if "clean" in v and "noisy" in v}
    assert mixed, by_piece  # at least one piece holds slices of both kinds
    for kinds in mixed.values():
        assert min(kinds["clean"]) >= max(kinds["noisy"]) + 15.0, kinds
    noisy = [s for kinds in by_piece.values() for s in kinds.get("noisy", [])]
    assert all(abs(s - 15.0) <= 6.0 for s in noisy), noisy


# -- one truth per number ------------------------------------------------------------------------------
def _paused(rate: int) -> tuple[np.ndarray, list[tuple[float, float]], list[tuple[float, float]]]:
    """About 55 s of phrases with several pauses > 1 s; the speech regions and the pauses between them."""
    phrases = (5.0, 4.0, 6.0, 3.0, 5.0, 4.0, 6.0, 5.0)
    pauses = (2.0, 0.6, 3.0, 0.7, 2.5, 1.6, 2.2)
    audio, regions = utterance(rate, phrases_s=phrases, pauses_s=pauses, lead_s=1.5, tail_s=1.5, seed=4)
    audio = audio + 3e-5 * np.random.default_rng(1).standard_normal(audio.size).astype(np.float32)
    gaps = [(a[1], b[0]) for a, b in itertools.pairwise(regions)]
    return audio.astype(np.float32), regions, gaps


@pytest.mark.parametrize("long_file", [False, True], ids=["short", "long"])
def test_lengths_spans_and_totals_agree_with_the_wavs(tmp_path, long_file):
    rate = 22050
    x, regions, gaps = _paused(rate)
    path = tmp_path / "in" / "paused.wav"
    path.parent.mkdir()
    sf.write(path, x, rate, subtype="FLOAT")
    config = LongForm(long_file_s=30.0, min_piece_s=15.0, max_piece_s=30.0, block_s=2.0) if long_file else None
    out = tmp_path / "out"
    stages = _no_mos(get_profile("fish").stages)
    clips = run_jobs([Job(str(path), "spk")], stages, out_dir=out, longform=config)
    written = [c for c in clips if c.output]
    assert len(written) >= 2, [(c.verdict, c.reasons) for c in clips]
    if long_file:
        assert all(c.metrics.get("long_file") for c in clips)
    manifest = [json.loads(line) for line in (out / "manifest.jsonl").read_text(encoding="utf-8").splitlines()]
    records = {m["id"]: m for m in manifest}
    wav_s: dict[str, float] = {}
    for c in written:
        audio, wav_rate = sf.read(str(out / c.output), dtype="float32")
        assert wav_rate == c.sample_rate == rate
        seconds = audio.shape[0] / wav_rate
        # the span is in source time: it starts a pad (0.2 s, plus the VAD's hangover) before a phrase
        # and ends one after a phrase (time after pause compression would be seconds early)
        start, end = c.span_s
        assert any(0.0 <= s - start <= 0.45 for s, _ in regions), (c.id, c.span_s)
        assert any(0.0 <= end - e <= 0.45 for _, e in regions), (c.id, c.span_s)
        # the record's length is the WAV's, in samples and in every place a duration is written
        assert records[c.id]["duration_s"] == pytest.approx(seconds, abs=1e-9)
        assert c.metrics["duration_s"] == pytest.approx(seconds, abs=1e-9)
        assert c.duration_s == pytest.approx(seconds, abs=1e-9)
        assert c.n_samples == audio.shape[0] == records[c.id]["n_samples"]
        wav_s[c.id] = seconds
        # each cut pause lies inside a known pause longer than 1 s, and inside the span
        for a, b in c.pauses_cut_s:
            assert start < a < b < end
            assert any(g0 + 0.1 <= a and b <= g1 - 0.1 and g1 - g0 > 1.0 for g0, g1 in gaps), ((a, b), gaps)
        removed = sum(b - a for a, b in c.pauses_cut_s)
        assert (end - start) - removed == pytest.approx(seconds, abs=2.0 / rate)
        # and the WAV is that stretch of the source, without the cut pauses
        keep, pos = [], start
        for a, b in (*c.pauses_cut_s, (end, end)):
            keep.append(x[round(pos * rate) : round(a * rate)])
            pos = b
        expected = np.concatenate(keep)
        n = min(expected.size, audio.size)
        assert abs(expected.size - audio.size) <= 2
        corr = np.dot(expected[:n], audio[:n]) / (np.linalg.norm(expected[:n]) * np.linalg.norm(audio[:n]))
        assert corr > 0.95, (c.id, corr)
    assert any(c.pauses_cut_s for c in written)  # pause compression happened
    # every phrase is inside some clip's kept audio
    for s, e in regions:
        assert any(c.span_s[0] <= s and e <= c.span_s[1] for c in written), (s, e)
    # the report's two totals and the WAVs agree
    report = build_report(clips, profile="fish")
    approved = [c for c in written if c.verdict == "approved"]
    assert approved, [(c.verdict, c.reasons) for c in written]
    total = sum(wav_s[c.id] for c in approved)
    assert report["summary"]["speakers"]["spk"]["approved_s"] == pytest.approx(total, abs=1e-6)
    assert report["speakers"]["spk"]["approved_s"] == pytest.approx(total, abs=1e-3)
    for entry in report["clips"]:
        if entry["id"] in wav_s:
            assert entry["duration_s"] == pytest.approx(wav_s[entry["id"]], abs=1e-9)
    # and so do the records read back from the written report (what export and submit use)
    write_report_json(report, out)
    back = {c.id: c for c in RunFolder(out).read_clips()}
    for cid, seconds in wav_s.items():
        assert back[cid].duration_s == pytest.approx(seconds, abs=1e-9)
        assert back[cid].span_s == pytest.approx(next(c.span_s for c in written if c.id == cid))


@pytest.mark.parametrize("context_s", [1.0, 0.0])
def test_trimmed_background_still_counts_for_the_source_metrics(demo_dir, truth, context_s):
    """b03 holds 50 Hz hum under pink noise (fixtures/truth.json); trimming keeps only its speech.

    Measured on its trimmed span alone the hum hides under the voice; with the context that trimming
    cut off (the default ``context_s``) the background is heard again.
    """
    from prep.stages.measure import Measure

    assert "hum" in truth["bob/b03.mp3"]["how"]
    fish = _no_mos(get_profile("fish").stages)
    stages = [Measure(context_s=context_s) if s.name == "measure_input" else s for s in fish]
    (clip,) = process_job(Job(str(demo_dir / "bob" / "b03.mp3"), "bob"), stages)
    assert clip.metrics["trimmed_start_s"] > 0.5  # the span really is trimmed
    hum_found = "tonal.background" in {f.code for f in clip.findings}
    assert hum_found == (context_s > 0), clip.metrics["source_tonal_ratio"]
