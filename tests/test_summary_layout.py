"""The terminal summary at any width, speaker notes by the profile's purpose, and partial reports in
``export``/``submit`` (issue 16)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from findings_helpers import findings_for
from rich.console import Console

from prep.cli import main
from prep.clip import Clip
from prep.findings import finding
from prep.io import write_wav_atomic
from prep.report.summary import build_report, print_summary, write_report_json
from prep.run.pipeline import stage_config
from prep.stages.score import Score

SPEAKERS = ("librispeech_speaker_1089", "vctk_p225_mic1_session", "arctic_slt")
IDS = ("1089-134686-0000_part03", "p225_001_mic1_s02", "arctic_a0001-3f9a1c2e")
STAGES = [{"stage": "score", "config": stage_config(Score())}]


def _clip(speaker: str, cid: str, *found, seconds: float = 12.0, text: str | None = "hello", rate: int = 24000,
          out: Path | None = None) -> Clip:
    rel = f"clips/{speaker}/{cid}.wav"
    if out is not None:
        write_wav_atomic(out / rel, np.full(1600, 0.1, np.float32), sample_rate=16000)
    return Clip(id=cid, source=f"{speaker}/{cid}.wav", source_sha256="0" * 64, speaker=speaker, sample_rate=rate,
                span_s=(0.0, seconds), transcript=text, output=rel,
                metrics={"duration_s": seconds, "score": 71.0, "source_snr_db": 14.0}, findings=tuple(found))


def _clips(out: Path | None = None) -> list[Clip]:
    noisy = finding("snr.too_low", metric="snr_db", value=8.0, threshold=10.0)
    short = finding("duration.short", metric="duration_s", value=8.2, threshold=10.0)
    low = finding("snr.low", metric="snr_db", value=15.5, threshold=20.0)
    return [
        _clip(SPEAKERS[0], IDS[0], low, short, seconds=8.2, out=out),
        _clip(SPEAKERS[0], f"{IDS[0]}b", noisy, out=out),
        _clip(SPEAKERS[1], IDS[1], out=out),
        _clip(SPEAKERS[1], f"{IDS[1]}b", text=None, rate=16000, out=out),
        _clip(SPEAKERS[2], IDS[2], noisy, out=out),
    ]


def _summary(report: dict, width: int, tmp_path: Path, **kw) -> str:
    console = Console(record=True, width=width, file=io.StringIO())
    print_summary(report, tmp_path, console=console, **kw)
    return console.export_text()


def _assert_whole(text: str, width: int | None) -> None:
    assert "…" not in text
    lines = text.splitlines()
    for name in (*SPEAKERS, *IDS):
        assert any(name in line for line in lines), f"{name} is not whole in:\n{text}"
    if width is not None:
        long = [x for x in lines if len(x.rstrip()) > width and not x.startswith(("voiceprep:", "report:"))]
        assert not long, long


@pytest.mark.parametrize("width", [80, 200, 60, 40])
def test_the_summary_fits_the_width_and_never_cuts_a_name(tmp_path, width):
    report = build_report(_clips(), profile="fish", stages=STAGES)
    text = _summary(report, width, tmp_path)
    _assert_whole(text, width)
    # the counts are all there whatever the width: in the table or in the lines under it
    for name, entry in report["speakers"].items():
        block = " ".join(x for x in text.splitlines() if name in x)
        assert str(entry["clips"]) in block
    if width >= 200:
        header = next(x for x in text.splitlines() if x.startswith("speaker"))
        for column in ("clips", "approved", "warning", "rejected", "error", "approved s", "usable s", "selected",
                       "status"):
            assert column in header
        assert not any(x.startswith(f"{SPEAKERS[0]}:") and "warning," in x for x in text.splitlines())
    if width == 80:
        assert any(x.startswith(f"{SPEAKERS[0]}: ") and "1 rejected" in x for x in text.splitlines()), text


def test_the_summary_is_whole_when_piped(tmp_path):
    """`voiceprep report OUT | cat`: rich gets no terminal and lays out to 80 columns."""
    out = tmp_path / "out"
    write_report_json(build_report(_clips(out), profile="fish", stages=STAGES), out)
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parents[1]), env.get("PYTHONPATH", "")])
    proc = subprocess.run([sys.executable, "-m", "prep", "report", str(out), "--max-plots", "0"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    _assert_whole(proc.stdout, 80)
    assert "\x1b[" not in proc.stdout, "no colour codes into a pipe"


def test_fish_notes_only_under_the_fish_purpose_and_dataset_notes_under_dataset(tmp_path):
    fish = build_report(_clips(), profile="fish", stages=STAGES)
    data = build_report(_clips(), profile="dataset", stages=STAGES, purpose="dataset")
    assert fish["purpose"] == "fish" and data["purpose"] == "dataset"
    fish_notes = " ".join(n for s in fish["speakers"].values() for n in s["notes"])
    data_notes = {name: " ".join(s["notes"]) for name, s in data["speakers"].items()}
    assert "Fish Audio" in fish_notes
    assert not any("Fish Audio" in n or "selected" in n for n in data_notes.values()), data_notes
    vctk = data_notes[SPEAKERS[1]]
    assert "1 of 2 approved clip(s) have no transcript" in vctk and "--allow-missing-text" in vctk
    assert "2 sample rates (16000 Hz, 24000 Hz)" in vctk
    assert "1 warning clip(s) are exported only with --include-warning" in data_notes[SPEAKERS[0]]
    assert data["speakers"][SPEAKERS[1]]["exportable"] == 1 and data["speakers"][SPEAKERS[1]]["ready"] is True
    assert data["speakers"][SPEAKERS[2]]["ready"] is False
    text = _summary(data, 200, tmp_path)
    assert "Fish Audio" not in text and "1 to export" in text and "nothing to export" in text


def test_nothing_approved_says_which_findings_held_the_clips_back_and_which_settings_relax_them(tmp_path):
    report = build_report(_clips(), profile="fish", stages=STAGES)
    notes = report["speakers"][SPEAKERS[0]]["notes"]
    (line,) = [n for n in notes if n.startswith("nothing approved")]
    assert "snr.too_low (1 clip(s))" in line and "duration.short (1 clip(s))" in line and "snr.low (1 clip(s))" in line
    for setting in ("[score] min_snr_db (now 10)", "[score] warn_snr_db (now 20)",
                    "[score] warn_duration_s (now 10)"):
        assert setting in line, line
    assert "--profile" in line
    assert not any(n.startswith("nothing approved") for n in report["speakers"][SPEAKERS[1]]["notes"])
    # without the stage configs there is no setting to name, the findings are still counted
    bare = build_report(_clips(), profile="fish")["speakers"][SPEAKERS[2]]["notes"]
    assert [n for n in bare if n.startswith("nothing approved")] == ["nothing approved: held back by snr.too_low "
                                                                     "(1 clip(s))"]
    text = _summary(report, 200, tmp_path)
    assert sum(1 for x in text.splitlines() if "nothing approved" in x) == 2


# -- partial reports in export and submit -----------------------------------------------------------------


@pytest.fixture
def partial_out(tmp_path) -> Path:
    out = tmp_path / "out"
    clips = [_clip("alice", f"a{i}", *findings_for("approved"), seconds=12.0, out=out) for i in range(3)]
    write_report_json(build_report(clips, profile="fish", stages=STAGES, partial=True), out)
    return out


def test_export_of_a_partial_run_warns_in_one_line_and_records_it(partial_out, tmp_path, capsys):
    dest = tmp_path / "d"
    assert main(["export", str(partial_out), "--format", "ljspeech", "-d", str(dest)]) == 0
    captured = capsys.readouterr()
    (note,) = [x for x in captured.err.splitlines() if "partial" in x]
    assert str(partial_out / "report.json") in note and "run the same `voiceprep run` command again" in note
    assert "exported 3 clip(s)" in captured.out
    assert '"partial": true' in (dest / ".voiceprep-export.json").read_text()


def test_submit_refuses_a_partial_run_unless_allowed_and_a_dry_run_notes_it(partial_out, capsys, monkeypatch):
    monkeypatch.delenv("FISH_API_KEY", raising=False)
    base = ["submit", str(partial_out), "--speaker", "alice", "--title", "T", "--base-url", "http://127.0.0.1:9"]
    assert main(base) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "partial" in err and "--allow-partial" in err
    assert str(partial_out / "report.json") in err
    assert main([*base, "--allow-partial"]) == 2  # past the check: now it is the missing key
    err = capsys.readouterr().err
    assert "FISH_API_KEY" in err and "partial" not in err
    assert main([*base, "--dry-run"]) == 0
    err = capsys.readouterr().err
    assert "note:" in err and "partial" in err
    assert "partial" in (partial_out / "submit.dry-run.json").read_text()
