"""Transcripts: finding them, cleaning them, and checking them against the audio."""

from __future__ import annotations

import dataclasses
import json
import unicodedata
from pathlib import Path

import pytest
from findings_helpers import findings_for
from hypothesis import given, settings
from hypothesis import strategies as st

from prep.clip import Clip
from prep.errors import ConfigError, DataError
from prep.run.transcripts import TranscriptIndex, clean_text, flag_transcript_rates, read_metadata, text_chars

# -- cleaning --------------------------------------------------------------------------------------------


def test_clean_text_nfc_and_whitespace():
    decomposed = "Cafe\u0301\u00a0 au\tlait\n\n\ufeffcre\u0300me\u200b bru\u0302le\u0301e\x07 "
    cleaned = clean_text(decomposed)
    assert cleaned == "Café au lait crème brûlée"
    assert unicodedata.is_normalized("NFC", cleaned)
    assert clean_text(" \u200b\ufeff\n ") == ""


def test_clean_text_keeps_joiners_in_scripts_that_need_them():
    persian = "می\u200cخواهم"  # ZWNJ is part of the spelling
    assert clean_text(persian) == persian


@given(st.text())
@settings(max_examples=200, deadline=None)
def test_clean_text_is_idempotent_and_tidy(text):
    once = clean_text(text)
    assert clean_text(once) == once
    assert once == once.strip() and "  " not in once and "\n" not in once


def test_text_chars_counts_letters_and_digits_only():
    assert text_chars("Hello, world!") == 10
    assert text_chars("It's 42.") == 5
    assert text_chars("你好，世界。") == 4
    assert text_chars("e\u0301") == 1  # a combining accent is not another character


# -- finding -----------------------------------------------------------------------------------------------


def _touch_wav(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"RIFF")  # the index never decodes audio; existence is enough
    return path


def test_demo_fixture_transcripts_match_truth(demo_dir, truth):
    from prep.run.runner import discover

    jobs = discover([demo_dir])
    assert len(jobs) == len(truth)
    for job in jobs:
        key = Path(job.path).relative_to(demo_dir).as_posix()
        assert job.transcript == truth[key]["transcript"], key  # alice: sidecar .txt, bob: metadata.csv


def test_sidecar_txt_beats_lab_beats_metadata(tmp_path):
    wav = _touch_wav(tmp_path / "spk" / "x.wav")
    (tmp_path / "spk" / "metadata.csv").write_text("file_name,text\nx.wav,from metadata\n", encoding="utf-8")
    index = TranscriptIndex.from_audio_paths([wav])
    assert index.lookup(wav) == "from metadata"
    (tmp_path / "spk" / "x.lab").write_text("from lab\n", encoding="utf-8")
    assert index.lookup(wav) == "from lab"
    (tmp_path / "spk" / "x.txt").write_text("\ufefffrom   txt\n", encoding="utf-8")
    assert index.lookup(wav) == "from txt"
    assert any("differ" in p for p in index.problems)


def test_timed_lab_is_not_taken_as_text(tmp_path):
    wav = _touch_wav(tmp_path / "x.wav")
    (tmp_path / "x.lab").write_text("0 1200000 sil\n1200000 5000000 hello\n", encoding="utf-8")
    index = TranscriptIndex.from_audio_paths([wav])
    assert index.lookup(wav) is None
    assert any("timed label" in p for p in index.problems)


def test_metadata_csv_in_a_parent_with_speaker_column(tmp_path):
    a = _touch_wav(tmp_path / "data" / "s1" / "a.flac")
    b = _touch_wav(tmp_path / "data" / "s2" / "b.wav")
    (tmp_path / "data" / "metadata.csv").write_text(
        'path,transcription,speaker\ns1/a.flac,"Hello, there.",Ann\ns2/b.wav,  Two\u00a0 words ,Ben\n',
        encoding="utf-8",
    )
    index = TranscriptIndex.from_audio_paths([a, b])
    assert (index.lookup(a), index.speaker(a)) == ("Hello, there.", "Ann")
    assert (index.lookup(b), index.speaker(b)) == ("Two words", "Ben")


def test_metadata_jsonl(tmp_path):
    wav = _touch_wav(tmp_path / "c.wav")
    rows = [{"file_name": "c.wav", "text": "Cafe\u0301"}, {"file_name": "other.wav", "text": "x"}]
    (tmp_path / "metadata.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    assert TranscriptIndex.from_audio_paths([wav]).lookup(wav) == "Café"


def test_metadata_anywhere_under_an_input_root(tmp_path):
    wav = _touch_wav(tmp_path / "in" / "audio" / "deep" / "d.wav")
    meta = tmp_path / "in" / "annotations" / "metadata.csv"
    meta.parent.mkdir(parents=True)
    meta.write_text("file_name,text\n../audio/deep/d.wav,found it\n", encoding="utf-8")
    assert TranscriptIndex.from_audio_paths([wav]).lookup(wav) is None  # not beside or above the audio
    assert TranscriptIndex.from_audio_paths([wav], roots=[tmp_path / "in"]).lookup(wav) == "found it"


def test_ljspeech_metadata(tmp_path):
    wav = _touch_wav(tmp_path / "LJ" / "wavs" / "LJ001-0001.wav")
    (tmp_path / "LJ" / "metadata.csv").write_text(
        "LJ001-0001|Printing, in the only sense|Printing, in the only sense\n", encoding="utf-8"
    )
    assert TranscriptIndex.from_audio_paths([wav]).lookup(wav) == "Printing, in the only sense"


def test_bad_metadata_is_reported_not_fatal(tmp_path):
    wav = _touch_wav(tmp_path / "x.wav")
    (tmp_path / "metadata.csv").write_text("name,words\nx.wav,hi\n", encoding="utf-8")
    index = TranscriptIndex.from_audio_paths([wav])
    assert index.lookup(wav) is None
    assert any("metadata.csv" in p and "path column" in p for p in index.problems)
    with pytest.raises(DataError, match=r"metadata\.csv"):  # bad data, not bad usage
        read_metadata(tmp_path / "metadata.csv")


def test_duplicate_rows_and_empty_paths_are_noted(tmp_path):
    wav = _touch_wav(tmp_path / "x.wav")
    (tmp_path / "metadata.csv").write_text("file,text\nx.wav,first\nx.wav,second\n,orphan\n", encoding="utf-8")
    index = TranscriptIndex.from_audio_paths([wav])
    assert index.lookup(wav) == "second"
    assert any("twice" in p for p in index.problems) and any("empty path" in p for p in index.problems)


# -- transcript/audio agreement ------------------------------------------------------------------------------


SENTENCE = "The birch canoe slid on the smooth planks"  # 34 letters


def _clip(cid: str, text: str | None, seconds: float, *, speaker: str = "a", speech_s: float | None = None,
          verdict: str = "approved") -> Clip:
    metrics = {} if speech_s is None else {"speech_s": speech_s}
    return Clip(id=cid, source=f"{cid}.wav", source_sha256="", speaker=speaker, sample_rate=16000,
                transcript=text, span_s=(0.0, seconds), n_samples=round(seconds * 16000), metrics=metrics,
                findings=findings_for(verdict))


def _letters(text: str) -> int:
    return sum(ch.isalnum() for ch in text)


def test_rate_uses_speech_seconds_when_present():
    plain, vad = flag_transcript_rates([_clip("p", SENTENCE, 4.0), _clip("v", SENTENCE, 4.0, speech_s=2.5)])
    assert plain.metrics["chars_per_s"] == pytest.approx(_letters(SENTENCE) / 4.0)
    assert vad.metrics["chars_per_s"] == pytest.approx(_letters(SENTENCE) / 2.5)


def test_outlier_within_a_speaker_is_flagged():
    base = [_clip(f"c{i}", SENTENCE, 2.4 + 0.1 * (i % 4)) for i in range(8)]  # ~13-14 letters/s
    wrong = _clip("wrong", "Yes", 2.6)  # a transcript of another, shorter utterance: ~1 letter/s
    long_text = _clip("long", " ".join([SENTENCE] * 2), 2.5)  # twice the words for the same audio
    clips = [*base[:4], wrong, *base[4:], long_text]
    out = flag_transcript_rates(clips)
    assert [c.id for c in out] == [c.id for c in clips]
    flagged = {c.id for c in out if c.verdict == "warning"}
    assert flagged == {"wrong", "long"}
    (found,) = next(c for c in out if c.id == "long").findings
    assert (found.code, found.metric, found.threshold) == ("transcript.rate_outlier", "chars_per_s_z", 3.5)
    assert found.value > 3.5 and "chars/s" in found.message and "median" in found.message
    (slow,) = next(c for c in out if c.id == "wrong").findings  # ~1 letter/s: below the absolute bound first
    assert (slow.code, slow.threshold) == ("transcript.rate", 2.0) and slow.value < 2.0
    assert all(c.transcript == o.transcript for c, o in zip(clips, out, strict=True))


def test_a_slow_outlier_is_flagged_below_the_negative_limit():
    base = [_clip(f"c{i}", SENTENCE, 2.4 + 0.1 * (i % 4)) for i in range(8)]  # ~13-14 letters/s
    slow = _clip("slow", SENTENCE, 8.5)  # 4 letters/s: within the absolute bounds, far below the speaker's rate
    out = flag_transcript_rates([*base, slow])
    assert [c.id for c in out if c.verdict == "warning"] == ["slow"]
    (found,) = out[-1].findings
    assert (found.code, found.threshold) == ("transcript.rate_outlier", -3.5) and found.value < -3.5
    assert "< -3.5)" in found.message


def test_speakers_are_judged_separately():
    fast = [_clip(f"f{i}", SENTENCE, 2.0 + 0.05 * i, speaker="fast") for i in range(6)]
    slow = [_clip(f"s{i}", SENTENCE, 4.5 + 0.1 * i, speaker="slow") for i in range(6)]
    out = flag_transcript_rates(fast + slow)
    assert all(c.verdict == "approved" for c in out)
    assert all("chars_per_s_z" in c.metrics for c in out)


def test_absolute_bounds_apply_to_small_speakers():
    out = flag_transcript_rates([_clip("ok", SENTENCE, 3.0), _clip("slow", "Hi", 10.0, speaker="b"),
                                 _clip("fast", SENTENCE * 3, 2.0, speaker="c")])
    assert [c.verdict for c in out] == ["approved", "warning", "warning"]
    assert [[(f.code, f.metric, f.threshold) for f in c.findings] for c in out] == [
        [],
        [("transcript.rate", "chars_per_s", 2.0)],
        [("transcript.rate", "chars_per_s", 30.0)],
    ]
    assert "(< 2 chars/s)" in out[1].findings[0].message and "(> 30 chars/s)" in out[2].findings[0].message
    assert "chars_per_s_z" not in out[0].metrics  # too few clips for a robust z-score


def test_unmeasurable_and_rejected_clips_are_left_alone():
    clips = [_clip("none", None, 3.0), _clip("rej", "Hi", 10.0, verdict="rejected"), _clip("zero", "Hi", 0.0)]
    out = flag_transcript_rates(clips)
    assert [(c.verdict, dict(c.metrics)) for c in out] == [(c.verdict, dict(c.metrics)) for c in clips]


def test_rate_check_parameters_are_validated():
    with pytest.raises(ConfigError, match="min_cps"):
        flag_transcript_rates([], min_cps=5.0, max_cps=3.0)
    with pytest.raises(ConfigError, match="z_max"):
        flag_transcript_rates([], z_max=0.0)


@given(st.lists(st.tuples(st.integers(1, 200), st.floats(0.5, 30.0), st.sampled_from("ab")), max_size=12))
@settings(max_examples=60, deadline=None)
def test_flagging_never_improves_a_verdict_or_reorders(specs):
    clips = [_clip(f"c{i}", "x" * n, s, speaker=spk) for i, (n, s, spk) in enumerate(specs)]
    out = flag_transcript_rates(clips)
    assert [c.id for c in out] == [c.id for c in clips]
    assert all(o.verdict in ("approved", "warning") for o in out)
    for o in out:
        rate = o.metrics["chars_per_s"]
        assert (o.verdict == "warning") >= (rate < 2.0 or rate > 30.0)
        assert ("transcript.rate" in {f.code for f in o.findings}) == (rate < 2.0 or rate > 30.0)


def test_trim_keeps_and_slice_drops_the_transcript(demo_dir, truth):
    """End to end with the real VAD stages: trimming keeps the text, slicing without alignment drops it."""
    from prep.run.runner import discover, load_clip
    from prep.stages.slice import Slice
    from prep.stages.trim import Trim

    (job,) = [j for j in discover([demo_dir / "alice"]) if j.path.endswith("a01.wav")]
    clip = load_clip(job)
    trimmed = Trim().apply(clip)
    assert trimmed.transcript == truth["alice/a01.wav"]["transcript"]
    speech = sum(e - s for s, e in truth["alice/a01.wav"]["speech_regions_s"])
    assert trimmed.metrics["speech_s"] == pytest.approx(speech, rel=0.25)
    (rated,) = flag_transcript_rates([trimmed])
    assert rated.metrics["chars_per_s"] == pytest.approx(_letters(trimmed.transcript) / trimmed.metrics["speech_s"])
    pieces = Slice(min_s=1.0, max_s=4.0).apply(dataclasses.replace(clip))
    assert len(pieces) > 1
    assert all(p.transcript is None and "transcript.dropped" in {f.code for f in p.findings} for p in pieces)
