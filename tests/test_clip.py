from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

from prep.clip import Clip, InputInfo, worst_verdict
from prep.errors import PrepError
from prep.run.run_folder import RunFolder


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


def test_verdict_only_gets_worse_and_reasons_accumulate():
    clip = _clip().with_verdict("warning", "short").with_verdict("approved", "fine").with_verdict("warning", "short")
    assert clip.verdict == "warning"
    assert clip.reasons == ("short", "fine")
    assert clip.with_verdict("rejected", "silent").verdict == "rejected"
    assert worst_verdict("approved", "error", "warning") == "error"
    with pytest.raises(PrepError, match="'great'"):
        clip.with_verdict("great")


def test_roundtrip_through_json_drops_audio_keeps_everything_else():
    clip = (
        _clip()
        .with_metrics(lufs=-math.inf, peak=np.float32(0.5), flags=np.array([1, 2]), nan=float("nan"))
        .with_history("downmix", {"dead_channel_db": 40.0})
        .with_verdict("warning", "quiet")
    )
    lines = [json.dumps(c.to_dict(), allow_nan=False) for c in (clip, clip.with_verdict("rejected", "x"))]
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
    assert b.verdict == "warning" and b.reasons == ("quiet",)
    assert back[1].verdict == "rejected"


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
