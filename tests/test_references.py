"""Fish Audio reference samples (prep.deliver.references, `voiceprep references`, the report's players).

Short utterances of one source (espeak-ng speech on a room tone, cut as a diarised or sliced
recording gives them) must be joined into 10-30 s references in spoken order with their real
pauses, loudness-matched and without clicks; clips of 10 s or more are used as they are; no
reference ever holds another speaker or a clip flagged as another voice.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from findings_helpers import findings_for
from reference_fixtures import GAPS_S, RATE, one_source_run, room_tone, say, tone_clip

from prep.cli import main
from prep.deliver.references import (
    ReferenceConfig,
    build_references,
    ensure_references,
    join_utterances,
    plan_references,
    read_references,
    references_stale,
    speech_edges,
)
from prep.dsp.loudness import integrated_loudness
from prep.errors import ConfigError
from prep.findings import finding
from prep.report.html import write_report_html
from prep.report.summary import build_report, read_report, write_report_json

NO_MOS = ReferenceConfig(mos=False)


@pytest.fixture(scope="module")
def ann(tmp_path_factory):
    """16 utterances of 3-4 s cut from one source, and its references (built once)."""
    out = tmp_path_factory.mktemp("ann") / "out"
    clips, speech = one_source_run(out)
    listing = build_references(out, "ann", config=NO_MOS)
    return out, clips, speech, listing


def _wav(out: Path, rel: str) -> tuple[np.ndarray, int]:
    x, rate = sf.read(out / rel, dtype="float32")
    return x, rate


def test_short_utterances_become_10_to_30_s_references_with_texts_in_order(ann):
    out, clips, _, listing = ann
    by_id = {c.id: c for c in clips}
    refs = listing["references"]
    assert len(refs) >= 2 and listing["texts"]
    assert all(by_id[c].duration_s < 5 for c in by_id)  # every clip alone is far too short for Fish Audio
    used = []
    for ref in refs:
        audio, rate = _wav(out, ref["output"])
        assert rate == RATE
        assert 10.0 <= audio.size / rate <= 30.0
        assert ref["duration_s"] == pytest.approx(audio.size / rate, abs=1e-3)
        assert ref["joined"] and len(ref["clips"]) >= 3
        # consecutive utterances of the source, in spoken order, and their transcripts in the same order
        spans = [by_id[c].span_s[0] for c in ref["clips"]]
        assert spans == sorted(spans)
        numbers = [int(c.split("-")[1]) for c in ref["clips"]]
        assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))
        assert ref["transcript"] == " ".join(by_id[c].transcript for c in ref["clips"])
        assert [p["clip"] for p in ref["parts"]] == ref["clips"]
        used += ref["clips"]
    assert len(used) == len(set(used))  # no utterance twice
    assert listing["total_s"] == pytest.approx(sum(r["duration_s"] for r in refs), abs=0.01)


def _offset(needle: np.ndarray, hay: np.ndarray) -> int:
    """Where ``needle`` (up to gain) best matches in ``hay``, by cross-correlation."""
    from scipy.signal import correlate

    return int(np.argmax(correlate(hay, needle, mode="valid", method="fft")))


def test_pauses_are_the_real_gaps_clamped_and_the_audio_holds_them(ann):
    out, clips, speech, listing = ann
    index = {c.id: k for k, c in enumerate(clips)}
    for ref in listing["references"]:
        audio, rate = _wav(out, ref["output"])
        where = {}  # source speech start/end of each part, located in the reference by its waveform
        for part in ref["parts"]:
            k = index[part["clip"]]
            clip_audio, _ = _wav(out, clips[k].output)
            mid = clip_audio.size // 2
            at = _offset(clip_audio[mid - rate // 2 : mid + rate // 2], audio) - (mid - rate // 2)
            start = at / rate + (speech[k][0] - clips[k].span_s[0])  # where the clip's true speech starts
            where[k] = (start, start + speech[k][1] - speech[k][0])
        for part in ref["parts"][1:]:
            k = index[part["clip"]]
            real = speech[k][0] - speech[k - 1][1]
            assert real == pytest.approx(GAPS_S[(k - 1) % len(GAPS_S)], abs=0.15)
            pause = part["pause_before_s"]
            assert 0.3 <= pause <= 0.6
            wanted = min(0.6, max(0.3, real))
            assert pause == pytest.approx(wanted, abs=0.1)  # speech edges are estimated on a room tone
            # in the audio: the silence between the two utterances' speech is the real gap, shortened when
            # it was longer than 0.6 s (a pause within the range is kept to the sample)
            gap_out = where[k][0] - where[k - 1][1]
            if 0.3 < pause < 0.6:
                assert gap_out == pytest.approx(real, abs=0.005), (part, where)
            else:
                assert gap_out == pytest.approx(wanted, abs=0.1), (part, where)
            assert where[k][0] == pytest.approx(part["start_s"], abs=0.1)


def test_parts_are_loudness_matched(ann):
    out, clips, _, listing = ann
    for ref in listing["references"]:
        audio, rate = _wav(out, ref["output"])
        starts = [p["start_s"] for p in ref["parts"]]
        levels = []
        for k in range(len(ref["parts"])):
            end = starts[k + 1] - ref["parts"][k + 1]["pause_before_s"] if k + 1 < len(starts) else None
            seg = audio[round(starts[k] * rate) : None if end is None else round(end * rate)]
            levels.append(integrated_loudness(seg, sample_rate=rate))
        raw = [integrated_loudness(_wav(out, next(c.output for c in clips if c.id == p["clip"]))[0],
                                   sample_rate=rate) for p in ref["parts"]]
        assert max(raw) - min(raw) > 5.0  # the clips came at different levels
        assert max(levels) - min(levels) < 1.5, levels
        assert ref["true_peak_dbtp"] <= -1.0 + 0.05


def _hf_energy(x: np.ndarray, rate: int, win_s: float = 0.001) -> np.ndarray:
    """Energy above 4 kHz per 1 ms window (band-limited by an FFT mask): a click is a short broadband burst."""
    spec = np.fft.rfft(x.astype(np.float64))
    freqs = np.fft.rfftfreq(x.size, 1 / rate)
    spec[freqs < 4000] = 0
    hi = np.fft.irfft(spec, x.size)
    n = round(win_s * rate)
    m = hi.size // n
    return np.sum(hi[: m * n].reshape(m, n) ** 2, axis=1)


def test_no_clicks_at_the_joins(tmp_path):
    """Room tone (a 100 Hz hum at other phases on both sides) joined naively clicks; the cross-fade does not."""
    a = 0.4 * say("Fresh bread from the bakery smells wonderful.", "low", tmp_path / "a.wav")
    b = 0.4 * say("He counted the boxes twice before loading them.", "low", tmp_path / "b.wav")
    pad = round(0.25 * RATE)
    # two recordings: the hum's phase differs at the join, as between two takes
    xa = np.concatenate([np.zeros(pad, np.float32), a, np.zeros(pad, np.float32)]) + room_tone(a.size + 2 * pad,
                                                                                                 seed=1, start=0)
    xb = np.concatenate([np.zeros(pad, np.float32), b, np.zeros(pad, np.float32)]) + room_tone(b.size + 2 * pad,
                                                                                                 seed=2, start=53)
    edges = [speech_edges(xa, sample_rate=RATE), speech_edges(xb, sample_rate=RATE)]
    assert edges[0][1] < xa.size / RATE and edges[1][0] > 0  # room tone on both sides of the join
    joined = join_utterances([xa, xb], sample_rate=RATE, edges_s=edges, pauses_s=[0.4], fade_s=0.02)
    end_a = round(edges[0][1] * RATE)
    pause = slice(end_a, end_a + round(0.4 * RATE))
    assert joined.size == end_a + round(0.4 * RATE) + xb.size - round(edges[1][0] * RATE)
    np.testing.assert_array_equal(joined[:end_a], xa[:end_a])  # speech untouched
    np.testing.assert_array_equal(joined[pause.stop :], xb[round(edges[1][0] * RATE) :])

    tone_a = xa[-round(0.1 * RATE) :]  # the room tone alone: its own sample steps and high-frequency level
    step_tone = np.max(np.abs(np.diff(tone_a)))
    hf_tone = np.max(_hf_energy(tone_a, RATE))
    naive = np.concatenate([xa[: end_a + round(0.2 * RATE)], xb[round(edges[1][0] * RATE) - round(0.2 * RATE) :]])
    centre = end_a + round(0.2 * RATE)  # the join: the naive butt joint, the middle of the cross-fade
    for signal, clicks in ((naive, True), (joined, False)):
        region = signal[centre - round(0.03 * RATE) : centre + round(0.03 * RATE)]
        step = np.max(np.abs(np.diff(region)))
        hf = np.max(_hf_energy(region, RATE))
        if clicks:  # the test can fail: a butt join of the two room tones is a click
            assert step > 2 * step_tone and hf > 1.8 * hf_tone, (step / step_tone, hf / hf_tone)
        else:  # no sample step or 1 ms burst of high frequencies beyond the room tone's own
            assert step <= 1.2 * step_tone and hf <= 1.5 * hf_tone, (step / step_tone, hf / hf_tone)


def test_join_rejects_bad_arguments():
    x = np.zeros(RATE, np.float32)
    with pytest.raises(ConfigError):
        join_utterances([x, x], sample_rate=RATE, edges_s=[(0, 1)], pauses_s=[0.4])
    with pytest.raises(ConfigError):
        join_utterances([x, x], sample_rate=RATE, edges_s=[(0, 1), (0, 1)], pauses_s=[0.001], fade_s=0.02)
    with pytest.raises(ConfigError):
        ReferenceConfig(min_s=20, max_s=10)


def test_long_clips_are_references_as_they_are_not_joins(tmp_path):
    """A speaker with one long clean recording (its slices of 10-30 s) gets the slices, byte for byte."""
    out = tmp_path / "out"
    src = "in/dan/lecture.wav"
    slices = [tone_clip(out, f"lecture-{k}", speaker="dan", seconds=s, source=src, span_s=(t0, t0 + s),
                        transcript=None)
              for k, (t0, s) in enumerate([(0.0, 24.0), (24.0, 18.5), (42.5, 27.0), (69.5, 12.0)])]
    write_report_json(build_report(slices, profile="test"), out)
    listing = build_references(out, "dan", config=NO_MOS)
    refs = listing["references"]
    assert len(refs) == 4 and not any(r["joined"] for r in refs)
    clip_files = {(out / c.output).read_bytes() for c in slices}
    for ref in refs:
        assert (out / ref["output"]).read_bytes() in clip_files
        assert ref["transcript"] is None and "lack a transcript" in ref["text_note"]
    assert not listing["texts"]


def test_one_long_recording_through_the_pipeline_gives_its_slices(tmp_path):
    from prep.run.profiles import get_profile
    from prep.run.runner import Job, run_jobs

    speech = [say(s, "us", tmp_path / f"s{i}.wav") for i, s in enumerate(
        ["The museum opens at nine and closes early on public holidays.",
         "Our team finished the project two weeks ahead of the schedule.",
         "Fresh bread from the bakery smells wonderful in the early morning.",
         "He counted the boxes twice before loading them into the truck."] * 3)]
    gap = np.zeros(round(0.8 * RATE), np.float32)
    body = np.concatenate([x for s in speech for x in (0.5 * s, gap)])
    src = tmp_path / "in" / "eve" / "talk.wav"
    src.parent.mkdir(parents=True)
    sf.write(src, body + 0.001 * np.random.default_rng(3).standard_normal(body.size).astype(np.float32), RATE)
    profile = get_profile("fish").configure("measure_input", mos=False).configure("score", mos=False)
    stages = tuple(s for s in profile.stages if s.name != "voice")
    clips = run_jobs([Job(path=str(src), speaker="eve")], stages, out_dir=tmp_path / "out")
    write_report_json(build_report(clips, profile="fish"), tmp_path / "out")
    assert len(clips) >= 2 and all(10 <= c.duration_s <= 30 for c in clips), [c.duration_s for c in clips]
    listing = build_references(tmp_path / "out", "eve", config=NO_MOS)
    refs = listing["references"]
    assert len(refs) == len([c for c in clips if c.verdict == "approved"]) >= 2
    assert not any(r["joined"] for r in refs)
    outputs = {(tmp_path / "out" / c.output).read_bytes(): c.id for c in clips}
    assert sorted(outputs[(tmp_path / "out" / r["output"]).read_bytes()] for r in refs) == sorted(
        c.id for c in clips if c.verdict == "approved")


def test_never_another_speaker_or_a_flagged_voice(tmp_path):
    """A conversation: ann's turns between bob's; one of ann's turns sounds like someone else."""
    out = tmp_path / "out"
    bob_turn = tone_clip(out, "talk-bob", speaker="bob", seconds=3.0, source="in/ann/talk.wav", span_s=(5.0, 8.0))
    clips, _ = one_source_run(out, sentences=range(8), extra=[bob_turn])
    flagged = finding("voice.other", metric="voice_similarity", value=0.62, threshold=0.80)
    clips = [c if c.id != "talk-03" else dataclasses.replace(c, findings=(*c.findings, flagged)) for c in clips]
    write_report_json(build_report(clips, profile="test"), out)
    listing = build_references(out, "ann", config=NO_MOS)
    parts = [c for r in listing["references"] for c in r["clips"]]
    assert parts and "talk-bob" not in parts and "talk-03" not in parts
    assert any("another voice" in n and "talk-03" in n for n in listing["notes"])
    with pytest.raises(ConfigError, match="one speaker"):
        plan_references([c for c in clips if c.speaker == "ann"] + [bob_turn])


def test_similarity_and_quality_rank_and_sources_vary(tmp_path):
    out = tmp_path / "out"
    clips = [
        tone_clip(out, "a1", speaker="s", seconds=12, source="in/s/a.wav", span_s=(0, 12),
                  metrics={"score": 80.0, "duration_s": 12, "voice_similarity": 0.86}),
        tone_clip(out, "b1", speaker="s", seconds=12, source="in/s/b.wav",
                  metrics={"score": 80.0, "duration_s": 12, "voice_similarity": 0.97}),
        tone_clip(out, "b2", speaker="s", seconds=12, source="in/s/b.wav", span_s=(12, 24),
                  metrics={"score": 79.0, "duration_s": 12, "voice_similarity": 0.96}),
        tone_clip(out, "c1", speaker="s", seconds=12, source="in/s/c.wav",
                  metrics={"score": 60.0, "duration_s": 12, "dnsmos_ovrl": 3.4}),
        tone_clip(out, "w1", speaker="s", seconds=12, metrics={"score": 99.0, "duration_s": 12},
                  findings=(finding("snr.low", metric="snr_db", value=18.0, threshold=20.0),)),
    ]
    plan = plan_references(clips, config=ReferenceConfig(min_total_s=30.0, max_total_s=36.0))
    order = [r.parts[0].id for r in plan.references]
    # b1 (higher similarity) before a1; b2 (a source already used) waits behind a1; no warning clip
    assert order == ["b1", "a1", "b2"]
    assert "w1" in [r.parts[0].id for r in plan_references(clips, config=ReferenceConfig(include_warning=True))
                    .references]


def test_rebuild_replaces_the_set_and_fresh_sets_are_kept(tmp_path):
    out = tmp_path / "out"
    one_source_run(out)
    first = build_references(out, "ann", config=NO_MOS)
    folder = out / "references" / "ann"
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [*(Path(r["output"]).name for r in first["references"]), "references.json"])
    assert references_stale(out, "ann", config=NO_MOS) is None
    mtime = (folder / "references.json").stat().st_mtime_ns
    assert ensure_references(out, "ann", config=NO_MOS) == first
    assert (folder / "references.json").stat().st_mtime_ns == mtime  # not rebuilt
    # another run (a new report) makes the set stale; the rebuild replaces every file
    fewer = ReferenceConfig(mos=False, min_total_s=10.0, max_total_s=25.0)
    assert references_stale(out, "ann", config=fewer) is not None
    second = ensure_references(out, "ann", config=fewer)
    assert len(second["references"]) == 1
    assert sorted(p.name for p in folder.iterdir()) == ["ref-01.wav", "references.json"]
    assert not list((out / "references").glob(".*"))  # no temp folder left
    (folder / "ref-01.wav").write_bytes(b"changed")
    assert "changed" in references_stale(out, "ann", config=fewer)


def test_cli_builds_references_and_the_report_shows_players(ann, tmp_path, capsys):
    out, _, _, _ = ann
    assert main(["references", str(out), "--speaker", "ann"]) == 0
    printed = capsys.readouterr().out
    assert "ann:" in printed and "joined" in printed
    listing = read_references(out, "ann")
    assert listing is not None and listing["config"]["mos"] is True  # the CLI's defaults
    page = (out / "report.html").read_text(encoding="utf-8")
    for ref in listing["references"]:
        assert f'src="{ref["output"]}"' in page
    assert main(["references", str(tmp_path / "nowhere")]) == 2


def test_report_players_render_in_headless_chromium(ann, tmp_path):
    import shutil

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("no Chromium installed (.ci/run installs one)")
    out, _, _, _ = ann
    listing = read_references(out, "ann")
    page = write_report_html(read_report(out), out)
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync",
           "--disable-background-networking", f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom",
           page.resolve().as_uri()]
    dom = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=120).stdout
    section = dom[dom.index('id="references-ann"') :]
    players = [s.split('"')[0] for s in section.split('<audio controls="" preload="none" src="')[1:]]
    refs = [r["output"] for r in listing["references"]]
    assert players[: len(refs)] == refs
    for rel in refs:  # each player points at a readable WAV of 10-30 s, relative to the page
        info = sf.info(str(page.parent / rel))
        assert 10 <= info.duration <= 30


def test_speaker_with_too_little_speech_gets_notes_not_references(tmp_path):
    out = tmp_path / "out"
    clips = [tone_clip(out, "x1", speaker="s", seconds=3.0), tone_clip(out, "x2", speaker="s", seconds=2.5,
                                                                         source="in/t/x2.wav")]
    write_report_json(build_report(clips, profile="test"), out)
    listing = build_references(out, "s", config=NO_MOS)
    assert listing["references"] == []
    assert any("could not be joined" in n for n in listing["notes"])
    assert main(["references", str(out)]) == 1
    assert json.loads((out / "references" / "s" / "references.json").read_text())["count"] == 0


def test_rejected_clips_are_never_used(tmp_path):
    out = tmp_path / "out"
    good = [tone_clip(out, f"g{k}", speaker="s", seconds=11.0, source=f"in/s/g{k}.wav") for k in range(2)]
    bad = tone_clip(out, "bad", speaker="s", seconds=11.0, findings=findings_for("rejected"),
                    metrics={"score": 100.0, "duration_s": 11.0})
    write_report_json(build_report([*good, bad], profile="test"), out)
    listing = build_references(out, "s", config=ReferenceConfig(mos=False, include_warning=True))
    assert sorted(c for r in listing["references"] for c in r["clips"]) == ["g0", "g1"]


def test_tts_corpus_files_join_across_files_and_a_planted_voice_stays_out(tmp_path):
    """ARCTIC-like: one 3-4 s utterance per file, one file of a different voice, through the fish profile."""
    pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install 'voiceprep[voice]')")
    from espeak_voices import SENTENCES

    from prep.models import ModelError
    from prep.run.profiles import get_profile
    from prep.run.runner import discover, run_jobs
    from prep.voice.embed import embed_clip

    folder = tmp_path / "in" / "arc"
    folder.mkdir(parents=True)
    plan = [("low", 0), ("low", 1), ("low", 2), ("low", 3), ("high", 4), ("low", 5), ("low", 6), ("low", 7)]
    for k, (voice, sentence) in enumerate(plan):
        say(SENTENCES[sentence], voice, folder / f"arctic_a{k + 1:04d}.wav")
        (folder / f"arctic_a{k + 1:04d}.txt").write_text(SENTENCES[sentence], encoding="utf-8")
    profile = get_profile("fish").configure("measure_input", mos=False).configure("score", mos=False)
    out = tmp_path / "out"
    try:
        clips = run_jobs(discover([folder]), profile.stages, out_dir=out)
    except ModelError as err:  # pragma: no cover - depends on the environment
        pytest.skip(f"speaker embedder unavailable: {err}")
    write_report_json(build_report(clips, profile="fish"), out)
    planted = next(c for c in clips if c.source.endswith("a0005.wav"))
    assert any(f.code.startswith("voice.other") for f in planted.findings)
    assert all(c.duration_s < 10 for c in clips)

    assert main(["references", str(out)]) == 0
    listing = read_references(out, "arc")
    refs = listing["references"]
    assert refs and listing["texts"]
    by_id = {c.id: c for c in clips}
    for ref in refs:
        audio, rate = _wav(out, ref["output"])
        assert 10 <= audio.size / rate <= 30 and ref["joined"]
        sources = [by_id[c].source for c in ref["clips"]]
        assert sources == sorted(sources) and len(set(sources)) == len(sources) > 1  # consecutive files, in order
        assert ref["transcript"] == " ".join(by_id[c].transcript for c in ref["clips"])
        assert planted.id not in ref["clips"]
        assert all(p["pause_before_s"] == 0.45 for p in ref["parts"][1:])  # between files: the default pause
        # one voice: the reference's embedding is the main voice's, not the planted one's
        main_voice = embed_clip(_wav(out, by_id[ref["clips"][0]].output)[0], sample_rate=rate).vector
        other = embed_clip(_wav(out, planted.output)[0], sample_rate=rate).vector
        mine = embed_clip(audio, sample_rate=rate).vector
        assert float(mine @ main_voice) > 0.85 > float(mine @ other)


def _harmonics(f0_hz: np.ndarray, rate: int) -> np.ndarray:
    phase = 2 * np.pi * np.cumsum(f0_hz) / rate
    return (0.1 * sum(np.sin(k * phase) / k for k in range(1, 12))).astype(np.float32)


def test_pitch_stats_finds_f0_and_its_spread():
    from prep.deliver.references import pitch_stats

    rate = 22050
    n = 4 * rate
    flat_hz, flat_st = pitch_stats(_harmonics(np.full(n, 150.0), rate), sample_rate=rate)
    assert flat_hz == pytest.approx(150.0, rel=0.02) and flat_st < 0.3
    glide = 100.0 * 2 ** (np.arange(n) / n)  # one octave, evenly in semitones: IQR / 1.35 = 6 / 1.35
    glide_hz, glide_st = pitch_stats(_harmonics(glide, rate), sample_rate=rate)
    assert glide_hz == pytest.approx(100.0 * 2**0.5, rel=0.03)
    assert glide_st == pytest.approx(6 / 1.35, abs=0.4)
    assert pitch_stats(np.zeros(n, np.float32), sample_rate=rate) == (None, None)


def test_intonation_decides_between_equal_candidates(tmp_path):
    out = tmp_path / "out"
    clips = [tone_clip(out, cid, speaker="s", seconds=12, source=f"in/s/{cid}.wav") for cid in ("flat", "lively")]
    config = ReferenceConfig(min_total_s=10.0, max_total_s=15.0)
    plain = plan_references(clips, config=config)
    assert [r.parts[0].id for r in plain.references] == ["lively"]  # a tie: broken by the first part's id
    assert [r.parts[0].id for r in plain.left_out] == ["flat"]
    spread = {"flat": 4.0, "lively": 0.5}  # the measured intonation turns it round
    chosen = plan_references(clips, config=config, intonation_st=spread)
    assert [r.parts[0].id for r in chosen.references] == ["flat"]
