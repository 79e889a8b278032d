"""Stages declare what they may change of a clip, and run_stages holds them to it."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import speechlike

from prep.clip import Clip
from prep.findings import finding
from prep.metrics import Metric
from prep.run.pipeline import CHANGES, StageContractError, run_stages
from prep.run.profiles import PROFILES, get_profile


def _clip(rate: int = 16000, *, transcript: str | None = "hello there") -> Clip:
    audio, _ = speechlike.utterance(rate, phrases_s=(0.6,), pauses_s=(), lead_s=0.3, tail_s=0.3, seed=5)
    return Clip(
        id="c0",
        source="x.wav",
        source_sha256="0" * 64,
        speaker="s",
        sample_rate=rate,
        audio=audio,
        transcript=transcript,
        span_s=(0.0, audio.size / rate),
    )


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_every_stage_of_every_profile_declares_what_it_changes(profile):
    for stage in get_profile(profile).stages:
        cls = type(stage)
        assert "changes" in vars(cls), f"{cls.__name__} does not declare `changes` in its class"
        assert isinstance(cls.changes, frozenset) and cls.changes <= CHANGES, (cls.__name__, cls.changes)
        assert "keeps_timing" not in vars(cls), f"{cls.__name__} still has the old keeps_timing"


def test_declarations_match_what_the_stages_do():
    """Only cutting stages move the timing; slicing and diarising rename clips; they and transcribing set texts."""
    by_name = {stage.name: stage.changes for stage in get_profile("fish").stages}
    assert by_name["measure_input"] == frozenset() and by_name["score"] == frozenset()
    assert by_name["resample"] == {"audio", "sample_rate"}
    assert {n for n, c in by_name.items() if "timing" in c} == {"trim", "diarise", "slice"}
    assert {n for n, c in by_name.items() if "id" in c} == {"diarise", "slice"}
    assert {n for n, c in by_name.items() if "transcript" in c} == {"diarise", "slice", "transcribe"}


def test_profiles_run_within_their_declarations():
    clip = _clip(48000)
    for profile in sorted(PROFILES):
        out = run_stages(clip, get_profile(profile).stages)
        assert out and all(c.verdict != "error" for c in out), [(c.verdict, c.reasons) for c in out]


class _Stage:
    """A test stage: ``apply`` is ``edit``; ``changes`` is set per subclass."""

    name = "probe"
    changes: frozenset[str] = frozenset()

    def __init__(self, edit):
        self.edit = edit

    def apply(self, clip: Clip) -> Clip:
        return self.edit(clip)


@pytest.mark.parametrize(
    ("edit", "what"),
    [
        (lambda c: dataclasses.replace(c, id="other"), "id"),
        (lambda c: dataclasses.replace(c, transcript=None), "transcript"),
        (lambda c: dataclasses.replace(c, span_s=(0.5, 1.0)), "span"),
        (lambda c: dataclasses.replace(c, audio=c.audio * np.float32(0.5)), "audio"),
        (lambda c: dataclasses.replace(c, sample_rate=8000), "sample_rate"),
    ],
)
def test_an_undeclared_change_is_caught_by_name(edit, what):
    clip = _clip()
    with pytest.raises(StageContractError, match=rf"'probe' changed the clip's .*\b{what}\b.* on c0"):
        run_stages(clip, [_Stage(edit)])
    # the same edit, declared, is fine
    declared = type("Declared", (_Stage,), {"changes": frozenset({what, "timing"})})
    assert run_stages(clip, [declared(edit)])


def test_a_stage_that_shortens_the_audio_must_declare_timing():
    clip = _clip()

    class Cut(_Stage):
        changes = frozenset({"audio"})

    def cut(c: Clip) -> Clip:
        return dataclasses.replace(c, audio=np.ascontiguousarray(c.audio[: c.audio.size // 2]))

    with pytest.raises(StageContractError, match=r"changed the clip's timing"):
        run_stages(clip, [Cut(cut)])

    class DeclaredCut(_Stage):
        changes = frozenset({"audio", "timing"})

    assert run_stages(clip, [DeclaredCut(cut)])[0].duration_s == pytest.approx(clip.duration_s / 2, abs=1e-4)


def test_metrics_and_verdicts_need_no_declaration():
    short = finding("duration.short", metric="duration_s", value=1.0, threshold=10.0)

    class Probe(_Stage):
        metrics = (Metric("seen", "", "whether it looked", ("probe",), "process", "bool"),)  # its own metric

    stage = Probe(lambda c: c.with_metrics(seen=True).with_findings(short))
    (out,) = run_stages(_clip(), [stage])
    assert out.metrics["seen"] is True and out.verdict == "warning"


def test_a_stage_without_a_declaration_is_refused_before_anything_runs():
    ran = []

    class Undeclared:
        name = "undeclared"

        def apply(self, clip):
            ran.append(clip)
            return clip

    with pytest.raises(StageContractError, match=r"'undeclared' \(Undeclared\) does not declare what it changes"):
        run_stages(_clip(), [_Stage(lambda c: ran.append(c) or c), Undeclared()])
    assert ran == []


@pytest.mark.parametrize("bad", [{"audio"}, frozenset({"audio", "volume"}), "audio"])
def test_a_malformed_declaration_is_refused(bad):
    stage = type("Odd", (_Stage,), {"changes": bad})(lambda c: c)
    with pytest.raises(StageContractError, match="declares changes="):
        run_stages(_clip(), [stage])


def test_profile_configure_replaces_one_stage_and_validates():
    from prep.errors import ConfigError
    from prep.run.profiles import get_profile

    fish = get_profile("fish")
    louder = fish.configure("loudness", target_lufs=-16.0)
    assert louder.stage("loudness").target_lufs == -16.0
    assert fish.stage("loudness").target_lufs == -23.0  # the original is untouched
    assert [s.name for s in louder.stages] == [s.name for s in fish.stages]
    with pytest.raises(ConfigError, match="no setting"):
        fish.configure("loudness", target_lufz=-16.0)
    with pytest.raises(ConfigError, match="no stage"):
        fish.configure("nonexistent", x=1)
