"""The run folder: one owner of its names, the journal's policy, and the one reader of a finished run."""

from __future__ import annotations

import ast
import json
import logging
import re
from pathlib import Path

import numpy as np
import pytest

from prep.cli import main
from prep.clip import Clip, InputInfo
from prep.deliver.export import export_clips
from prep.deliver.submit import plan_submission, speaker_clips
from prep.errors import ConfigError, DataError
from prep.findings import finding
from prep.io import write_wav_atomic
from prep.report.summary import build_report, read_report, write_report_json
from prep.run.run_folder import RunFolder, RunLock

ROOT = Path(__file__).resolve().parent.parent

# -- nobody else spells the names -------------------------------------------------------------------------

_FILE_NAMES = re.compile(
    r"(?<![\w.-])(manifest\.jsonl|report\.json|report\.html|submit\.json|submit\.dry-run\.json|\.voiceprep\.lock)(?!\w)"
)
_DIR_IN_PATH = re.compile(r"(^|/)(clips|plots)(/|$)")
_DIRS = {"clips", "plots"}
_PATH_CALLS = {"Path", "PurePath", "PurePosixPath", "joinpath", "join"}


def _spelled(source: str) -> list[str]:
    """``line: text`` of each string constant outside docstrings that spells a run-folder name.

    File names count anywhere in a string (f-string parts included); the
    folder names ``clips``/``plots`` count inside a path (``"clips/..."``)
    or as a path component (``x / "clips"``, ``Path(x, "clips")``) or a
    name's whole value (``CLIPS = "clips"``), not as dict keys.
    """
    tree = ast.parse(source)
    parents: dict[ast.AST, ast.AST] = {}
    docs: set[ast.AST] = set()
    for node in ast.walk(tree):
        for child in ast.iter_child_nodes(node):
            parents[child] = node
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            docs.add(node.value)  # docstrings and other bare strings are documentation
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Constant) or not isinstance(node.value, str) or node in docs:
            continue
        text = node.value
        parent = parents.get(node)
        if isinstance(parent, ast.JoinedStr):
            parent = parents.get(parent)
        as_component = text in _DIRS and (
            (isinstance(parent, ast.BinOp) and isinstance(parent.op, ast.Div))
            or isinstance(parent, (ast.Assign, ast.AnnAssign))  # CLIPS = "clips"
            or (isinstance(parent, ast.Call) and getattr(parent.func, "id", getattr(parent.func, "attr", None))
                in _PATH_CALLS)
        )
        if _FILE_NAMES.search(text) or (_DIR_IN_PATH.search(text) and "/" in text) or as_component:
            found.append(f"{node.lineno}: {text!r}")
    return found


def test_the_name_detector_finds_spellings_and_ignores_docs_and_keys():
    bad = '''
from pathlib import Path
a = Path(out) / "report.json"
b = out / "clips"
c = f"clips/{speaker}/{cid}.wav"
d = Path(out, "plots")
e = f"kept in {out / 'manifest.jsonl'}"
f = "OUT/submit.dry-run.json"
g = os.path.join(out, ".voiceprep.lock")
PLOTS_DIR = "plots"
'''
    assert len(_spelled(bad)) == 8
    fine = '''
"""Writes ``OUT/report.json`` and ``clips/<speaker>/<id>.wav``."""
def f():
    """Reads OUT/manifest.jsonl."""
    return {"clips": [], "plots": 1}["clips"]
x = "export.json" + "manifest.json" + "clip_plots" + "report.jsonl"
'''
    assert _spelled(fine) == []


def test_only_run_folder_spells_the_run_folder_names():
    offenders = []
    for path in sorted((ROOT / "prep").rglob("*.py")):
        if path.name == "run_folder.py":
            continue
        offenders += [f"{path.relative_to(ROOT)}:{hit}" for hit in _spelled(path.read_text(encoding="utf-8"))]
    assert offenders == []


def test_paths_are_the_documented_ones(tmp_path):
    folder = RunFolder(str(tmp_path))  # a str is accepted
    assert folder.root == tmp_path
    assert folder.manifest == tmp_path / "manifest.jsonl"
    assert folder.report_json == tmp_path / "report.json"
    assert folder.report_html == tmp_path / "report.html"
    assert folder.submit_json == tmp_path / "submit.json"
    assert folder.submit_dry_run == tmp_path / "submit.dry-run.json"
    assert folder.lock_file == tmp_path / ".voiceprep.lock"
    assert folder.clip_output("alice", "a01-1234") == "clips/alice/a01-1234.wav"
    assert folder.clip_path("alice", "a01-1234") == tmp_path / "clips" / "alice" / "a01-1234.wav"
    assert folder.output_path("clips/alice/x.wav") == tmp_path / "clips" / "alice" / "x.wav"
    assert folder.plot_path("alice", "a01-1234") == tmp_path / "plots" / "alice" / "a01-1234.jpg"
    with pytest.raises(AttributeError):
        folder.root = tmp_path / "x"  # type: ignore[misc]


def test_lock_and_stale_temps(tmp_path):
    folder = RunFolder(tmp_path / "out")
    with folder.lock() as lock:
        assert isinstance(lock, RunLock) and (tmp_path / "out" / ".voiceprep.lock").is_file()
    assert not (tmp_path / "out" / ".voiceprep.lock").exists()
    temps = [tmp_path / "out" / ".report.json.abc.tmp", tmp_path / "out" / "clips" / "s" / ".x.wav.k2.tmp",
             tmp_path / "out" / "plots" / "s" / ".x.jpg.q1.tmp"]
    keep = tmp_path / "out" / "clips" / "s" / "x.wav"
    for p in [*temps, keep]:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")
    folder.remove_stale_temps()
    assert [p.exists() for p in temps] == [False, False, False] and keep.exists()


# -- the journal ------------------------------------------------------------------------------------------


def _clip(cid: str, **kw) -> Clip:
    base = dict(id=cid, source=f"in/{cid}.wav", source_sha256="ab" * 32, speaker="s", sample_rate=16000,
                transcript="héllo", span_s=(0.0, 1.0), input=InputInfo("wav", "pcm_s16", 16000, 1, 1.0))
    base.update(kw)
    return Clip(**base)


def test_append_and_read_back_with_pipeline_tags(tmp_path):
    folder = RunFolder(tmp_path)
    folder.append(_clip("a").with_metrics(lufs=-np.inf, nan=float("nan")), pipeline="p1")
    short = finding("duration.too_short", metric="duration_s", value=1.0, threshold=2.0)
    folder.append(_clip("b").with_findings(short))
    lines = (tmp_path / "manifest.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line).get("pipeline") for line in lines] == ["p1", None]
    records = folder.read_journal()
    assert [(r.clip.id, r.pipeline, r.line) for r in records] == [("a", "p1", 1), ("b", None, 2)]
    assert records[0].clip.metrics["lufs"] == -np.inf and records[0].clip.metrics["nan"] is None
    assert records[0].clip.transcript == "héllo" and records[1].clip.reasons == (short.message,)
    assert records[1].clip.verdict == "rejected" and records[1].clip.findings == (short,)
    assert RunFolder(tmp_path / "none").read_journal() == []


@pytest.mark.parametrize("tail", ["half", "whole"])
def test_torn_last_line_is_ignored_and_cut_by_the_next_append(tmp_path, caplog, tail):
    folder = RunFolder(tmp_path)
    folder.append(_clip("a"), pipeline="p")
    line = json.dumps(_clip("b").to_dict())
    torn = line[: len(line) // 2] if tail == "half" else line  # even a complete object lacks its newline
    with open(folder.manifest, "a", encoding="utf-8") as fh:
        fh.write(torn)
    with caplog.at_level(logging.WARNING):
        assert [r.clip.id for r in folder.read_journal()] == ["a"]
    assert not caplog.records, "an interrupted append is expected, not worth a warning"
    folder.append(_clip("c"), pipeline="p")
    text = folder.manifest.read_text(encoding="utf-8")
    assert text.endswith("\n") and all(json.loads(x) for x in text.splitlines())
    assert [r.clip.id for r in folder.read_journal()] == ["a", "c"]


@pytest.mark.parametrize("bad", ["{not json", "[1, 2]", '{"id": "x"}', "\udcff"])
def test_a_corrupt_middle_line_is_skipped_with_a_warning_naming_file_and_line(tmp_path, caplog, bad):
    folder = RunFolder(tmp_path)
    folder.append(_clip("a"), pipeline="p")
    with open(folder.manifest, "ab") as fh:
        fh.write(bad.encode("utf-8", "surrogateescape") + b"\n")
    folder.append(_clip("c"), pipeline="p")
    with caplog.at_level(logging.WARNING, logger="prep.run.run_folder"):
        records = folder.read_journal()
    assert [(r.clip.id, r.line) for r in records] == [("a", 1), ("c", 3)]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and f"{folder.manifest}:2:" in warnings[0]


def test_latest_record_per_source_and_clip_id(tmp_path):
    folder = RunFolder(tmp_path)
    folder.append(_clip("a"), pipeline="p")
    folder.append(_clip("a", source="other/a.wav"), pipeline="p")  # same id, another source
    folder.append(_clip("a").with_findings(finding("duration.short", metric="duration_s", value=1.0, threshold=10.0)))
    latest = folder.latest_records()
    assert set(latest) == {("in/a.wav", "a"), ("other/a.wav", "a")}
    assert latest[("in/a.wav", "a")].clip.verdict == "warning" and latest[("in/a.wav", "a")].line == 3
    assert latest[("other/a.wav", "a")].clip.verdict == "approved"


def test_a_corrupt_journal_line_only_costs_its_file_a_redo(tmp_path):
    from prep.run.runner import discover, run_jobs

    src = tmp_path / "in" / "spk"
    tone = 0.1 * np.sin(2 * np.pi * 220 * np.arange(8000) / 8000).astype(np.float32)
    for name in ("a", "b", "c"):
        write_wav_atomic(src / f"{name}.wav", tone * (1 + ord(name) % 3), sample_rate=8000)
    out = tmp_path / "out"
    jobs = discover([src])
    run_jobs(jobs, [], out_dir=out)
    lines = (out / "manifest.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 3
    lines[1] = "#" + lines[1][1:]  # b's record, mid-file: not JSON any more
    (out / "manifest.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    clips = run_jobs(jobs, [], out_dir=out)
    after = (out / "manifest.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(after) == 4 and json.loads(after[3])["source"].endswith("b.wav")
    assert sorted(Path(c.source).name for c in clips) == ["a.wav", "b.wav", "c.wav"]


# -- the one reader of a finished run ---------------------------------------------------------------------


def _finished_run(out: Path, ids: list[str]) -> list[Clip]:
    """A run folder whose report lists ``ids`` (approved 12 s clips with texts, speaker 's')."""
    clips = []
    for i, cid in enumerate(ids):
        rel = f"clips/s/{cid}.wav"
        tone = 0.1 * np.sin(2 * np.pi * (150 + 20 * i) * np.arange(12 * 8000) / 8000).astype(np.float32)
        write_wav_atomic(out / rel, tone, sample_rate=8000)
        clips.append(Clip(id=cid, source=f"{cid}.wav", source_sha256="0" * 64, speaker="s", sample_rate=8000,
                          transcript=f"text of {cid}", span_s=(0.0, 12.0), n_samples=tone.size, output=rel,
                          metrics={"score": 50.0}))
    write_report_json(build_report(clips, profile="test"), out)
    return clips


def test_read_clips_is_the_report(tmp_path):
    clips = _finished_run(tmp_path, ["x", "y"])
    back = RunFolder(tmp_path).read_clips()
    assert [c.to_dict() for c in back] == [c.to_dict() for c in clips]


def test_report_export_and_submit_read_the_finished_run_not_the_journal(tmp_path):
    out = tmp_path / "out"
    _finished_run(out, ["x", "y"])
    folder = RunFolder(out)
    # the journal also holds a clip the finished run does not have (an older pipeline, a dropped input)
    stale = Clip(id="stale", source="stale.wav", source_sha256="1" * 64, speaker="s", sample_rate=8000,
                 transcript="old", span_s=(0.0, 12.0), output="clips/s/x.wav", metrics={"score": 99.0})
    folder.append(stale, pipeline="old")
    assert [c["id"] for c in read_report(out)["clips"]] == ["x", "y"]
    assert sorted(c.id for c in speaker_clips(out, "s")) == ["x", "y"]
    assert sorted(c.id for c in plan_submission(out, "s", use="clips").clips) == ["x", "y"]
    assert sorted(part for c in plan_submission(out, "s").clips for part in c.parts) == ["x", "y"]  # references
    assert sorted(export_clips(out, "ljspeech", tmp_path / "d").exported) == ["x", "y"]


def test_an_unfinished_run_is_a_usage_error_everywhere(tmp_path, capsys):
    out = tmp_path / "out"
    folder = RunFolder(out)
    folder.append(_clip("a", output="clips/s/a.wav"), pipeline="p")  # a journal but no finished run
    for read in (folder.read_clips, lambda: speaker_clips(out, "s"), lambda: export_clips(out, "nemo", out / "d")):
        with pytest.raises(ConfigError, match=r"report\.json: no such report"):
            read()
    assert main(["export", str(out), "--format", "nemo", "-d", str(tmp_path / "d")]) == 2
    assert main(["submit", str(out), "--speaker", "s", "--title", "t", "--dry-run"]) == 2
    assert main(["report", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("no such report") == 3


@pytest.mark.parametrize(
    ("content", "message"),
    [("{oops", r"corrupt report \(line 1"), ('{"clips": {}}', "not a voiceprep report"),
     ('{"clips": [{"id": "x"}]}', "clip entry 1")],
)
def test_a_corrupt_report_is_a_data_error_everywhere(tmp_path, capsys, content, message):
    out = tmp_path / "out"
    out.mkdir()
    (out / "report.json").write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=message):
        RunFolder(out).read_clips()
    assert main(["export", str(out), "--format", "nemo", "-d", str(tmp_path / "d")]) == 1
    assert main(["submit", str(out), "--speaker", "s", "--title", "t", "--dry-run"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and all(str(out / "report.json") in line for line in err)
