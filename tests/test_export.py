"""Dataset exports, each re-read by a parser of its format.

The reference values come from outside prep.deliver.export: the fixtures' transcripts
(``fixtures/truth.json``) and the clip WAVs of the run folder.
"""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from findings_helpers import findings_for

from prep.cli import main
from prep.clip import Clip
from prep.deliver.export import MARKER, export_clips
from prep.errors import ConfigError, PrepError
from prep.io import write_wav_atomic
from prep.report.summary import build_report, write_report_json
from prep.run.transcripts import TranscriptIndex


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, demo_dir) -> Path:
    out = tmp_path_factory.mktemp("run") / "out"
    assert main(["run", str(demo_dir), "-o", str(out), "-q", "-j", "1"]) in (0, 1)
    return out


@pytest.fixture(scope="module")
def expected(run_dir, truth) -> dict[str, tuple[str, str, str]]:
    """sha256 of each exportable clip file -> (speaker, truth transcript, clip id), read without prep.deliver.export."""
    report = json.loads((run_dir / "report.json").read_text())
    out = {}
    for entry in report["clips"]:
        if entry["verdict"] != "approved" or not entry["output"]:
            continue
        key = Path(entry["source"]).relative_to(Path(entry["source"]).parents[1]).as_posix()
        digest = hashlib.sha256((run_dir / entry["output"]).read_bytes()).hexdigest()
        out[digest] = (entry["speaker"], truth[key]["transcript"], entry["id"])
    assert out, "the demo run should approve some clips"
    return out


def _lj_rows(dest: Path) -> list[list[str]]:
    """LJSpeech metadata.csv: '|'-separated, no header, no quoting."""
    with open(dest / "metadata.csv", encoding="utf-8", newline="") as fh:
        return list(csv.reader(fh, delimiter="|", quoting=csv.QUOTE_NONE))


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_fish_speech_layout(run_dir, expected, tmp_path):
    dest = tmp_path / "fs"
    result = export_clips(run_dir, "fish-speech", dest)
    wavs = sorted(dest.glob("*/*.wav"))
    assert len(wavs) == len(expected) == len(result.exported)
    for wav in wavs:
        speaker, text, _ = expected[_sha(wav)]
        assert wav.parent.name == speaker
        assert wav.with_suffix(".lab").read_text(encoding="utf-8") == text
        assert sf.info(str(wav)).frames > 0
    # fish-speech's layout is also what voiceprep reads as sidecar transcripts
    index = TranscriptIndex.from_audio_paths(wavs)
    assert all(index.lookup(w) == expected[_sha(w)][1] for w in wavs)


def test_ljspeech_layout(run_dir, expected, tmp_path):
    dest = tmp_path / "lj"
    export_clips(run_dir, "ljspeech", dest)
    rows = _lj_rows(dest)
    assert len(rows) == len(expected)
    for name, text, normalized in rows:
        wav = dest / "wavs" / f"{name}.wav"
        assert wav.is_file()
        assert text == normalized == expected[_sha(wav)][1]
    index = TranscriptIndex.from_audio_paths([], roots=[dest])  # LJSpeech metadata read back by voiceprep
    assert all(index.lookup(dest / "wavs" / f"{r[0]}.wav") == r[1] for r in rows)


def test_nemo_manifest(run_dir, expected, tmp_path):
    dest = tmp_path / "nemo"
    export_clips(run_dir, "nemo", dest)
    report = {c["id"]: c for c in json.loads((run_dir / "report.json").read_text())["clips"]}
    lines = (dest / "manifest.json").read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(expected)
    for line in lines:
        entry = json.loads(line)
        wav = dest / entry["audio_filepath"]
        speaker, text, clip_id = expected[_sha(wav)]
        assert (entry["text"], entry["speaker"], entry["id"]) == (text, speaker, clip_id)
        data, rate = sf.read(str(wav))
        assert entry["duration"] == pytest.approx(len(data) / rate)
        assert entry["duration"] == pytest.approx(report[clip_id]["duration_s"], abs=2.0 / rate)
        for key, value in report[clip_id]["metrics"].items():
            if isinstance(value, (int, float, str)) and key not in ("duration", "text", "speaker"):
                assert entry[key] == value


def test_nemo_absolute_paths(run_dir, tmp_path):
    dest = tmp_path / "nemo"
    export_clips(run_dir, "nemo", dest, absolute_paths=True, speaker="bob")
    entries = [json.loads(x) for x in (dest / "manifest.json").read_text().splitlines()]
    assert entries and all(Path(e["audio_filepath"]).is_absolute() for e in entries)
    assert all(Path(e["audio_filepath"]).is_file() and e["speaker"] == "bob" for e in entries)


def test_audiofolder_metadata(run_dir, expected, tmp_path):
    dest = tmp_path / "hf"
    export_clips(run_dir, "audiofolder", dest)
    with open(dest / "metadata.csv", encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
    assert reader.fieldnames[:2] == ["file_name", "transcription"]
    assert len(rows) == len(expected)
    for row in rows:
        wav = dest / row["file_name"]
        speaker, text, _ = expected[_sha(wav)]
        assert (row["transcription"], row["speaker"]) == (text, speaker)
        info = sf.info(str(wav))
        assert float(row["duration"]) == pytest.approx(info.frames / info.samplerate, abs=1e-5)


# -- selection and safety, on a hand-made run folder ------------------------------------------------------


def _make_run(out: Path, specs: list[tuple[str, str, str | None]]) -> None:
    """A run folder with one 1 s clip per (id, verdict, transcript), speaker 's'."""
    clips = []
    for i, (cid, verdict, text) in enumerate(specs):
        rel = f"clips/s/{cid}.wav"
        tone = 0.1 * np.sin(2 * np.pi * (200 + 10 * i) * np.arange(16000) / 16000).astype(np.float32)
        write_wav_atomic(out / rel, tone, sample_rate=16000)
        clips.append(Clip(id=cid, source=f"{cid}.wav", source_sha256="0" * 64, speaker="s", sample_rate=16000,
                          transcript=text, span_s=(0.0, 1.0), n_samples=tone.size,
                          findings=findings_for(verdict), output=rel))
    write_report_json(build_report(clips, profile="test"), out)


def test_verdicts_and_missing_transcripts(tmp_path):
    out = tmp_path / "out"
    _make_run(out, [("ok", "approved", "fine"), ("warn", "warning", "so so"), ("bad", "rejected", "no"),
                    ("mute", "approved", None)])
    r = export_clips(out, "ljspeech", tmp_path / "a")
    assert r.exported == ("ok",)
    assert dict(r.skipped) == {"warn": "verdict warning", "bad": "verdict rejected", "mute": "no transcript"}
    r = export_clips(out, "ljspeech", tmp_path / "b", include_warning=True, require_text=False)
    assert set(r.exported) == {"ok", "warn", "mute"}
    rows = _lj_rows(tmp_path / "b")
    assert sorted(r[0] for r in rows) == ["mute", "ok", "warn"]


def test_pipe_in_text_keeps_ljspeech_parseable(tmp_path):
    out = tmp_path / "out"
    _make_run(out, [("p", "approved", "left | right")])
    r = export_clips(out, "ljspeech", tmp_path / "lj")
    rows = _lj_rows(tmp_path / "lj")
    assert rows == [["p", "left right", "left right"]]
    assert r.notes


def test_refuses_a_foreign_non_empty_dest(tmp_path):
    out = tmp_path / "out"
    _make_run(out, [("ok", "approved", "fine")])
    dest = tmp_path / "mine"
    dest.mkdir()
    (dest / "precious.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="not empty"):
        export_clips(out, "fish-speech", dest)
    assert (dest / "precious.txt").read_text() == "keep me"
    with pytest.raises(ConfigError, match="must not be the run folder"):
        export_clips(out, "nemo", out)


def test_reexport_replaces_the_earlier_export(tmp_path):
    out = tmp_path / "out"
    _make_run(out, [("a", "approved", "one"), ("b", "approved", "two")])
    dest = tmp_path / "d"
    export_clips(out, "fish-speech", dest)
    assert sorted(p.name for p in dest.rglob("*") if p.is_file()) == [MARKER, "a.lab", "a.wav", "b.lab", "b.wav"]
    _make_run(out, [("a", "approved", "one"), ("b", "rejected", "two")])
    export_clips(out, "fish-speech", dest)
    assert sorted(p.name for p in dest.rglob("*") if p.is_file()) == [MARKER, "a.lab", "a.wav"]
    export_clips(out, "audiofolder", dest)  # another format replaces the layout entirely
    assert not (dest / "s").exists()
    assert (dest / "metadata.csv").is_file()


def test_nothing_to_export_and_bad_format(tmp_path):
    out = tmp_path / "out"
    _make_run(out, [("bad", "rejected", "x")])
    with pytest.raises(PrepError, match="no clip"):
        export_clips(out, "nemo", tmp_path / "d")
    with pytest.raises(ConfigError, match="unknown export format"):
        export_clips(out, "kaldi", tmp_path / "d")
    with pytest.raises(ConfigError, match=r"report\.json: no such report"):
        export_clips(tmp_path / "empty", "nemo", tmp_path / "d")


def test_cli_export(tmp_path, run_dir, capsys):
    out = tmp_path / "out"
    shutil.copytree(run_dir, out)
    report_before = (out / "report.json").read_bytes()
    assert main(["export", str(out), "--format", "fish-speech", "-d", str(tmp_path / "fs")]) == 0
    assert "exported" in capsys.readouterr().out
    assert (out / "report.json").read_bytes() == report_before  # the run folder is not modified
    assert main(["export", str(out), "--format", "nemo", "-d", str(out)]) == 2
    assert main(["export", str(tmp_path / "missing"), "--format", "nemo", "-d", str(tmp_path / "x")]) == 2
    with pytest.raises(SystemExit) as info:
        main(["export", str(out), "--format", "kaldi", "-d", str(tmp_path / "k")])
    assert info.value.code == 2
