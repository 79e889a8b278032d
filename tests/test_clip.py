from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

from prep.clip import Clip, InputInfo, worst_verdict
from prep.errors import PrepError
from prep.findings import Finding, finding
from prep.run.run_folder import RunFolder


def manifest_line(clip: Clip) -> str:
    """A journal line as the run folder writes it (strict JSON)."""
    return json.dumps(clip.to_dict(), allow_nan=False) + "\n"


def read_manifest(path) -> list[Clip]:
    """The clips of a journal file, read by the run folder's one journal reader."""
    folder = RunFolder(path.parent)
    if path != folder.manifest:
        path.replace(folder.manifest)
    return [record.clip for record in folder.read_journal()]


def _clip(**kw) -> Clip:
    base = dict(
        id="a01-12345678",
        source="in/a01.wav",
        source_sha256="12345678" * 8,
        speaker="alice",
        sample_rate=16000,
        audio=np.zeros(16000, np.float32),
        transcript="héllo wörld",
        span_s=(0.5, 1.5),
        input=InputInfo("wav", "pcm_s16", 48000, 2, 2.0, "PCM_16"),
    )
    base.update(kw)
    return Clip(**base)


def test_clip_is_immutable_and_functional_updates_copy():
    clip = _clip()
    with pytest.raises(dataclasses.FrozenInstanceError):
        clip.speaker = "bob"  # type: ignore[misc]
    new = clip.with_metrics(snr_db=20.0)
    assert "snr_db" not in clip.metrics and new.metrics["snr_db"] == 20.0


def test_verdict_only_gets_worse_and_findings_accumulate():
    short = finding("duration.short", metric="duration_s", value=8.0, threshold=10.0)
    inverted = finding("downmix.inverted", channels=[1])
    clip = _clip().with_findings(short).with_findings(inverted).with_findings(short)
    assert clip.verdict == "warning"
    assert [f.code for f in clip.findings] == ["duration.short", "downmix.inverted"]  # the repeat is dropped
    assert clip.reasons == (short.message, inverted.message)
    silent = finding("loudness.silent", threshold=-70.0)
    rejected = clip.with_findings(silent)
    assert rejected.verdict == "rejected"
    assert rejected.reasons[0] == silent.message  # worst first
    assert clip.verdict == "warning"  # the original is unchanged
    assert worst_verdict("approved", "error", "warning") == "error"
    with pytest.raises(PrepError, match="not a Finding"):
        clip.with_findings("great")  # type: ignore[arg-type]


def test_roundtrip_through_json_drops_audio_keeps_everything_else():
    clip = (
        _clip()
        .with_metrics(lufs=-math.inf, peak=np.float32(0.5), flags=np.array([1, 2]), nan=float("nan"))
        .with_history("downmix", {"dead_channel_db": 40.0})
        .with_findings(
            finding("snr.low", metric="snr_db", value=15.25, threshold=20.0), finding("downmix.inverted", channels=[1])
        )
    )
    lines = [manifest_line(c) for c in (clip, clip.with_findings(finding("speech.none")))]
    back = [Clip.from_dict(json.loads(line)) for line in lines]
    assert len(back) == 2
    b = back[0]
    assert b.audio is None
    expected = (clip.id, clip.source, "alice", "héllo wörld", (0.5, 1.5))
    assert (b.id, b.source, b.speaker, b.transcript, b.span_s) == expected
    assert b.input == clip.input
    assert b.metrics["lufs"] == -math.inf and b.metrics["peak"] == 0.5 and b.metrics["flags"] == [1, 2]
    assert b.metrics["nan"] is None
    assert b.history[0].stage == "downmix" and b.history[0].config == {"dead_channel_db": 40.0}
    assert b.findings == clip.findings
    assert b.verdict == "warning" and b.reasons == clip.reasons
    assert back[1].verdict == "rejected" and back[1].findings[-1].code == "speech.none"


def test_require_audio():
    with pytest.raises(PrepError, match="no audio"):
        _clip(audio=None).require_audio()
    assert _clip().duration_s == 1.0
    assert _clip().n_samples == 16000
    assert _clip(audio=None).duration_s == 0.0  # no audio, no length: never the span's
    written = dataclasses.replace(_clip(), audio=None)
    assert written.n_samples == 16000 and written.duration_s == 1.0  # the length stays when the audio goes


def test_length_and_cut_pauses_survive_the_manifest_and_map_clip_time_to_source_time(tmp_path):
    # 1 s of audio kept from 10.0-12.0 s of the source, with 10.4-11.4 s cut out as a long pause
    clip = _clip(span_s=(10.0, 12.0), pauses_cut_s=((10.4, 11.4),))
    assert clip.source_time(0.3) == pytest.approx(10.3)
    assert clip.source_time(0.4) == pytest.approx(10.4)  # the join, as the end of a range
    assert clip.source_time(0.4, after_cut=True) == pytest.approx(11.4)  # the join, as the start of a range
    assert clip.source_time(0.5) == pytest.approx(11.5)
    assert clip.source_time(1.0) == pytest.approx(12.0)
    folder = RunFolder(tmp_path)
    folder.append(clip)
    (record,) = folder.read_journal()
    back = record.clip
    assert back.n_samples == 16000 and back.duration_s == 1.0
    assert back.pauses_cut_s == ((10.4, 11.4),)
    # a record from before n_samples existed takes its length from the measured duration, not the span
    data = clip.with_metrics(duration_s=0.75).to_dict()
    del data["n_samples"], data["pauses_cut_s"]
    old = Clip.from_dict(data)
    assert old.n_samples == 12000 and old.duration_s == 0.75 and old.pauses_cut_s == ()


def _old_record(**kw) -> dict:
    """A manifest line as voiceprep wrote it before findings (verdict and reasons only)."""
    record = json.loads(manifest_line(_clip()))
    del record["findings"]
    record.update(kw)
    return record


@pytest.mark.parametrize(
    ("verdict", "reasons"),
    [
        ("approved", []),
        ("approved", ["channel(s) [1] polarity-inverted; flipped before mixing"]),
        ("warning", ["short: 8.6 s (< 10 s recommended per clip)"]),
        ("rejected", ["too noisy: SNR ≈ 10 dB (< 10 dB)", "short: 8.6 s (< 10 s recommended per clip)"]),
        ("error", ["in/a01.wav: cannot decode"]),
        ("warning", []),
    ],
)
def test_old_record_without_findings_still_loads(tmp_path, verdict, reasons):
    path = tmp_path / "old.jsonl"
    path.write_text(json.dumps(_old_record(verdict=verdict, reasons=reasons)) + "\n", encoding="utf-8")
    (back,) = read_manifest(path)
    assert back.verdict == verdict
    if reasons:
        assert back.reasons == tuple(reasons)
    assert all(f.code == "legacy.reason" for f in back.findings)
    assert len(back.findings) == (len(reasons) or (verdict != "approved"))
    again = Clip.from_dict(json.loads(manifest_line(back)))  # and it is written back in the new form
    assert again.verdict == verdict and again.findings == back.findings


def test_old_record_with_an_unknown_verdict_is_an_error():
    with pytest.raises(PrepError, match="'great'"):
        Clip.from_dict(_old_record(verdict="great", reasons=["x"]))


def test_findings_roundtrip_keeps_every_field_and_non_finite_values(tmp_path):
    found = (
        finding("loudness.too_short", metric="duration_s", value=0.25, threshold=0.4),
        Finding("loudness.silent", "reject", "input_lufs", -math.inf, -70.0, "silent"),
        Finding("stage.error", "error", None, math.nan, None, "denoise: boom"),
    )
    clip = _clip().with_findings(*found)
    record = json.loads(manifest_line(clip))
    assert [f["code"] for f in record["findings"]] == ["loudness.too_short", "loudness.silent", "stage.error"]
    assert record["findings"][1]["value"] == "-inf" and record["findings"][2]["value"] is None
    assert record["verdict"] == "error" and record["reasons"][0] == "denoise: boom"
    back = Clip.from_dict(record)
    assert back.findings[:2] == found[:2]
    assert back.findings[2].value is None  # NaN is stored as null
    assert back.findings[2].message == "denoise: boom" and back.verdict == "error"


def test_clip_has_no_verdict_of_its_own():
    with pytest.raises(TypeError):
        _clip(verdict="rejected")  # the verdict is derived from the findings
