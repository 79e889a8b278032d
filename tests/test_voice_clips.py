"""One voice per speaker on stored embeddings (no model needed): flags, selection, several voices, summary."""

from __future__ import annotations

import io

import numpy as np
import pytest

from prep.clip import Clip
from prep.deliver.select import select_clips, speaker_summary
from prep.errors import ConfigError
from prep.findings import finding
from prep.report.summary import build_report, print_summary
from prep.stages.voice import VoiceEmbed
from prep.voice.clips import flag_other_voices, is_other_voice, speaker_voices


def _direction(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(256)
    return v / np.linalg.norm(v)


def _near(base: np.ndarray, cos: float, seed: int) -> list[float]:
    """A unit vector with cosine ``cos`` to ``base``."""
    r = np.random.default_rng(seed).standard_normal(256)
    r -= (r @ base) * base
    r /= np.linalg.norm(r)
    v = cos * base + np.sqrt(1 - cos**2) * r
    return [round(float(x), 4) for x in v]


def _clip(i: int, vector: list[float] | None, *, speaker: str = "alice", seconds: float = 12.0,
          score: float = 90.0) -> Clip:
    metrics = {"duration_s": seconds, "speech_s": seconds * 0.9, "score": score}
    if vector is not None:
        metrics["voice_embedding"] = vector
    return Clip(id=f"c{i}", source=f"c{i}.wav", source_sha256="0" * 64, speaker=speaker, sample_rate=44100,
                metrics=metrics, n_samples=int(seconds * 44100))


@pytest.fixture()
def base() -> np.ndarray:
    return _direction(1)


def test_other_voices_are_flagged_by_threshold(base):
    clips = [_clip(i, _near(base, 0.95, i)) for i in range(6)]
    # near the centre, in the warning band, in the rejection band
    clips += [_clip(6, _near(base, 0.68, 60)), _clip(7, _near(base, 0.4, 70))]  # similarity ~0.76, ~0.40
    out = flag_other_voices(clips)
    assert [c.verdict for c in out[:6]] == ["approved"] * 6
    assert all(out[i].metrics["voice_similarity"] > 0.9 for i in range(6))
    warned, rejected = out[6], out[7]
    assert [f.code for f in warned.findings] == ["voice.other"] and warned.verdict == "warning"
    assert 0.70 <= warned.metrics["voice_similarity"] < 0.80
    assert warned.findings[0].message.startswith("sounds like a different voice: similarity 0.7")
    assert warned.findings[0].message.endswith("(< 0.8)")
    assert [f.code for f in rejected.findings] == ["voice.other_reject"] and rejected.verdict == "rejected"
    assert all(is_other_voice(c) for c in (warned, rejected)) and not is_other_voice(out[0])
    # a warned other-voice clip is never selected, even with the best score
    best = warned.with_metrics(score=100.0)
    chosen = select_clips([*out[:6], best])
    assert best.id not in chosen.ids and len(chosen) == 6
    assert any("different voice were left out: c6" in n for n in chosen.notes)


def test_speakers_are_judged_apart_and_need_three_clips(base):
    other = _direction(2)
    bob = [_clip(10 + i, _near(other, 0.95, 10 + i), speaker="bob") for i in range(2)]
    alice = [_clip(i, _near(base, 0.95, i)) for i in range(3)]
    out = flag_other_voices([*alice, *bob])
    assert all("voice_similarity" in c.metrics for c in out[:3])
    assert out[3] is bob[0] and out[4] is bob[1]  # two clips: not checked, unchanged
    summary = speaker_summary(bob)
    assert summary["voices"]["checked"] is False
    assert "voice not checked: 2 clip(s) with speech embedded, 3 needed" in summary["notes"]
    # rejected clips are not judged; clips without an embedding have no voice summary
    rejected = _clip(5, _near(other, 0.95, 5)).with_findings(finding("speech.none"))
    assert "voice_similarity" not in flag_other_voices([*alice, rejected])[-1].metrics
    assert speaker_summary([_clip(1, None)])["voices"] is None
    with pytest.raises(ConfigError):
        flag_other_voices(alice, warn=0.6, reject=0.7)


def test_a_clip_on_another_channel_is_not_judged(base):
    """A phone-band clip among wideband ones: its embedding follows the channel, so no flag."""
    clips = [_clip(i, _near(base, 0.95, i)).with_metrics(bandwidth_hz=16000.0) for i in range(4)]
    phone = _clip(4, _near(base, 0.5, 40)).with_metrics(bandwidth_hz=3900.0)
    wide_other = _clip(5, _near(base, 0.5, 50)).with_metrics(bandwidth_hz=15000.0)
    out = flag_other_voices([*clips, phone, wide_other])
    assert out[4] is phone and not is_other_voice(out[4])
    assert is_other_voice(out[5])  # the same similarity on the speaker's channel is flagged
    notes = speaker_summary(out)["notes"]
    assert any("voice not judged for 1 clip(s) of a much narrower bandwidth" in n and n.endswith(": c4")
               for n in notes), notes


def test_several_voices_are_named_in_the_report(base):
    other = _direction(2)
    clips = [_clip(i, _near(base, 0.95, i), seconds=12.0) for i in range(3)]
    clips += [_clip(3 + i, _near(other, 0.95, 30 + i), seconds=10.0) for i in range(3)]
    voices = speaker_voices(clips, name="alice")
    assert voices["several"] and voices["count"] == 2
    assert [(v["name"], v["clips"]) for v in voices["voices"]] == [
        ("alice-1", ["c0", "c1", "c2"]), ("alice-2", ["c3", "c4", "c5"])
    ]
    # one stray clip among five is a planted clip, not a second voice
    stray = speaker_voices([*clips[:4], _clip(9, _near(base, 0.95, 9))], name="alice")
    assert stray["checked"] and not stray["several"] and stray["count"] == 1
    report = build_report(flag_other_voices(clips), profile="fish")
    assert report["speakers"]["alice"]["voices"]["count"] == 2
    from rich.console import Console

    buf = io.StringIO()
    print_summary(report, "out", console=Console(file=buf, width=300))
    assert "alice: 2 different voices among these clips: alice-1: 3 clip(s)" in buf.getvalue()
    assert "(c3, c4, c5)" in buf.getvalue()


def test_report_html_maps_each_speakers_voices(base, tmp_path):
    import re

    from prep.report.html import render_html

    other = _direction(2)
    clips = [_clip(i, _near(base, 0.95, i)) for i in range(3)]
    clips += [_clip(3 + i, _near(other, 0.95, 30 + i)) for i in range(3)]
    clips += [_clip(9, None, speaker="bob")]
    html = render_html(build_report(flag_other_voices(clips), profile="fish"), tmp_path, max_plots=0)
    assert html.count('class="voicemap"') == 1  # alice only: bob has no embeddings
    dots = re.findall(r'<circle cx="([\d.]+)" cy="[\d.]+" r="4.5"[^>]*><title>(c\d)', html)
    assert sorted(cid for _, cid in dots) == [f"c{i}" for i in range(6)]
    x = {cid: float(cx) for cx, cid in dots}
    # the two voices lie apart on the first axis
    a, b = [x[f"c{i}"] for i in range(3)], [x[f"c{i}"] for i in range(3, 6)]
    assert max(a) < min(b) or max(b) < min(a), x


def test_voice_stage_without_the_extra_changes_nothing():
    clip = Clip(id="x", source="x.wav", source_sha256="", speaker="a", sample_rate=16000,
                audio=np.zeros(16000, np.float32))
    assert VoiceEmbed(model="").apply(clip) is clip
    assert VoiceEmbed(model="x").apply(clip.with_findings(finding("speech.none"))).metrics == {}
