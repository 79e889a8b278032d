"""The metric registry: every metric written is declared, once, with unit and scope; README and old reports."""

from __future__ import annotations

import dataclasses
import json
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from prep import metrics as registry
from prep.clip import Clip
from prep.errors import ConfigError
from prep.metrics import METRICS, RUNNER, Metric, source_metrics, source_name, undeclared, upgrade_metrics
from prep.run.longform import LongForm
from prep.run.pipeline import run_stages
from prep.run.profiles import get_profile
from prep.run.runner import discover, run_jobs

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "fixtures" / "demo"
PROFILES = ("fish", "dataset")


def _stage_names() -> set[str]:
    return {s.name for p in PROFILES for s in get_profile(p).stages}


# -- the registry itself --------------------------------------------------------------------------


def test_every_metric_is_declared_with_a_scope_unit_kind_and_known_writers():
    stages = _stage_names() | {RUNNER}
    assert len(METRICS) >= 50
    for name, m in METRICS.items():
        assert m.name == name
        assert m.scope in ("source", "output", "process"), name
        assert m.kind in ("float", "int", "bool", "str", "list", "dict"), name
        assert m.meaning.strip(), name
        assert m.written_by and set(m.written_by) <= stages, (name, m.written_by)


def test_names_say_their_scope_and_sources_pair_with_outputs():
    for name, m in METRICS.items():
        # only source metrics start with source_, and process metrics never claim source or output
        assert name.startswith("source_") == (m.scope == "source"), name
        if name.startswith("output_"):
            assert m.scope == "output", name
        assert not name.startswith("input_"), name  # the ambiguous prefix is gone
        if m.output_pair is not None:
            pair = METRICS[m.output_pair]
            assert m.scope == "source" and pair.scope == "output", name
            assert pair.unit == m.unit and pair.kind == m.kind, name
    assert source_name("snr_db") == "source_snr_db"
    assert source_name("output_lufs") == "source_lufs"
    assert source_name("gain_db") is None


@pytest.mark.parametrize(
    ("name", "unit"),
    [("source_snr_db", "dB"), ("source_lufs", "LUFS"), ("source_peak_dbfs", "dBFS"), ("pre_gain_lufs", "LUFS"),
     ("denoise_snr_in_db", "dB"), ("denoise_snr_out_db", "dB"), ("output_true_peak_dbtp", "dBTP"),
     ("speech_ratio", "ratio"), ("bandwidth_hz", "Hz"), ("pre_gain_lra_lu", "LU")],
)
def test_units_match_the_name_suffix(name, unit):
    assert METRICS[name].unit == unit


def test_unit_suffixes_agree_with_units_everywhere():
    suffix_units = {"_db": {"dB", "LU"}, "_dbfs": {"dBFS"}, "_lufs": {"LUFS"}, "_dbtp": {"dBTP"}, "_lu": {"LU"},
                    "_s": {"s"}, "_per_s": {"chars/s"}, "_hz": {"Hz"}, "_ratio": {"ratio"}}
    checked = 0
    for name, m in METRICS.items():
        suffixes = [sfx for sfx in suffix_units if name.endswith(sfx)]
        if suffixes and m.kind != "list":
            assert m.unit in suffix_units[max(suffixes, key=len)], (name, m.unit)
            checked += 1
    assert checked >= 30


def test_one_meaning_per_snr_name():
    snr = sorted(n for n in METRICS if "snr" in n)
    assert snr == ["deepfilter_lsnr_db", "denoise_snr_in_db", "denoise_snr_out_db", "snr_db", "source_snr_db"]
    assert METRICS["denoise_snr_in_db"].written_by == METRICS["deepfilter_lsnr_db"].written_by == ("denoise",)
    assert METRICS["snr_db"].written_by == ("score",)
    assert METRICS["source_snr_db"].written_by == ("measure_input",)


def test_undeclared_names_and_wrong_writers():
    assert undeclared(["snr_db", "score"], "score") == []
    problems = undeclared(["made_up_db", "gain_db"], "trim")
    assert len(problems) == 2
    assert "made_up_db" in problems[0] and "not declared" in problems[0]
    assert "gain_db" in problems[1] and "loudness" in problems[1]
    own = Metric("peeked", "", "test flag", ("peek",), "process", "bool")
    assert undeclared(["peeked"], "peek", [own]) == []


def test_source_metrics_reads_the_registry_pairs():
    m = {"snr_db": 40.0, "source_snr_db": 12.0, "output_lufs": -23.0, "source_lufs": -31.0,
         "clipping_ratio": 1e-4, "source_clipping_ratio": 3e-3, "bandwidth_hz": 8000.0,
         "source_reverb_s": float("nan"), "reverb_s": 0.3, "pre_gain_lufs": -18.0}
    src = source_metrics(m)
    assert src["snr_db"] == 12.0
    assert src["clipping_ratio"] == 3e-3  # the worse of the two
    assert src["bandwidth_hz"] == 8000.0  # no source value: the output's
    assert src["reverb_s"] == 0.3  # a non-finite source value falls back
    # an old name no longer counts as the source value
    assert source_metrics({"snr_db": 40.0, "input_snr_db": 5.0})["snr_db"] == 40.0


# -- the check in run_stages ----------------------------------------------------------------------


def _clip(seconds: float = 1.0, rate: int = 16000) -> Clip:
    audio = (0.1 * np.sin(2 * np.pi * 220 * np.arange(int(seconds * rate)) / rate)).astype(np.float32)
    return Clip(id="c", source="c.wav", source_sha256="0" * 64, speaker="s", sample_rate=rate, audio=audio)


class _Writes:
    changes = frozenset()  # metrics only

    def __init__(self, name: str, **values):
        self.name = name
        self.values = values

    def apply(self, clip):
        return clip.with_metrics(**self.values)


def test_run_stages_turns_an_undeclared_metric_into_an_error():
    out = run_stages(_clip(), [_Writes("trim", trimmed_start_s=0.0, brand_new_ratio=0.5)])
    assert [c.verdict for c in out] == ["error"]
    assert any("brand_new_ratio" in r and "trim" in r for r in out[0].reasons)
    # a later stage does not run on it
    after = run_stages(_clip(), [_Writes("trim", brand_new_ratio=0.5), _Writes("loudness", gain_db=1.0)])
    assert "gain_db" not in after[0].metrics


def test_run_stages_catches_a_metric_declared_for_another_stage():
    out = run_stages(_clip(), [_Writes("denoise", gain_db=3.0)])
    assert out[0].verdict == "error"
    assert any("gain_db" in r and "loudness" in r for r in out[0].reasons)


def test_run_stages_accepts_declared_metrics_and_a_stage_s_own():
    assert run_stages(_clip(), [_Writes("loudness", gain_db=3.0, pre_gain_lufs=-20.0)])[0].verdict == "approved"

    class Peek(_Writes):
        metrics = (Metric("peeked", "", "test flag", ("peek",), "process", "bool"),)

    assert run_stages(_clip(), [Peek("peek", peeked=True)])[0].verdict == "approved"
    # unchanged metrics an earlier stage wrote are not the later stage's
    first = _clip().with_metrics(gain_db=2.0)
    assert run_stages(first, [_Writes("trim", trimmed_start_s=0.1)])[0].verdict == "approved"


# -- the real pipeline writes only declared metrics ----------------------------------------------


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Both profiles over a short mono file with a transcript, a stereo file and a file taken as long."""
    out = {}
    for name in PROFILES:
        profile = get_profile(name)
        folder = tmp_path_factory.mktemp(f"in-{name}")
        for src in (DEMO / "alice" / "a01.wav", DEMO / "alice" / "a01.txt", DEMO / "bob" / "b01.wav"):
            shutil.copy(src, folder / src.name)
        shutil.copy(DEMO / "alice" / "a02.flac", folder / "long.flac")  # 13.9 s: long under this LongForm
        jobs = discover([folder], speaker="spk")
        longform = LongForm(long_file_s=13.5, min_piece_s=4.0, max_piece_s=8.0, block_s=2.0)
        clips = run_jobs(jobs, profile.stages, out_dir=tmp_path_factory.mktemp(f"out-{name}"), longform=longform)
        out[name] = clips
    return out


@pytest.mark.parametrize("profile", PROFILES)
def test_every_metric_the_pipeline_writes_is_declared_by_a_stage_that_ran(runs, profile):
    clips = runs[profile]
    assert clips and all(c.verdict != "error" for c in clips), [(c.id, c.reasons) for c in clips]
    sources = {Path(c.source).name for c in clips}
    assert sources == {"a01.wav", "b01.wav", "long.flac"}
    assert any(c.metrics.get("long_file") is True for c in clips if c.source.endswith("long.flac"))
    assert any(c.metrics.get("downmix_mode") not in (None, "mono") for c in clips if c.source.endswith("b01.wav"))
    assert any("chars_per_s" in c.metrics for c in clips)  # the runner's transcript check ran
    seen = set()
    for clip in clips:
        ran = {h.stage for h in clip.history} | {RUNNER}
        for name in clip.metrics:
            assert name in METRICS, f"{clip.id}: {name!r} is not declared"
            assert set(METRICS[name].written_by) & ran, (clip.id, name, METRICS[name].written_by, ran)
            seen.add(name)
    # the renamed metrics are there under their new names
    assert {"source_snr_db", "source_lufs", "source_peak_dbfs", "pre_gain_lufs", "denoise_snr_in_db"} <= seen


def test_source_loudness_is_the_source_level_not_the_pre_gain_level(runs):
    from prep.dsp.loudness import integrated_loudness
    from prep.run.decode import load

    mono = [c for c in runs["fish"] if c.source.endswith("a01.wav")]
    assert len(mono) == 1
    audio, rate = load(mono[0].source)
    expected = integrated_loudness(audio.mean(axis=0), sample_rate=rate)  # mono file: the downmix is the file
    assert mono[0].metrics["source_lufs"] == pytest.approx(expected, abs=0.05)
    peak = float(np.max(np.abs(audio)))
    assert mono[0].metrics["source_peak_dbfs"] == pytest.approx(20 * math.log10(peak), abs=1e-6)


def test_consistency_reads_the_source_level():
    from prep.deliver.select import consistency

    def rec(i: int, source: float, pre_gain: float) -> Clip:
        return dataclasses.replace(
            _clip(), id=f"c{i}", audio=None, metrics={"source_lufs": source, "pre_gain_lufs": pre_gain}
        )

    same_source = consistency([rec(0, -20.0, -20.0), rec(1, -21.0, -40.0)])
    assert same_source["source_lufs"]["max"] == -20.0 and same_source["source_lufs"]["min"] == -21.0
    assert not any("level" in n for n in same_source["notes"])  # pre-gain spread (20 LU) is not the source's
    varied = consistency([rec(0, -18.0, -20.0), rec(1, -35.0, -20.0)])
    assert any("source level varies by 17 LU" in n for n in varied["notes"])


# -- README --------------------------------------------------------------------------------------


def _readme() -> str:
    return (ROOT / "README.md").read_text(encoding="utf-8")


def test_readme_metric_tables_are_the_registry():
    text = _readme()
    start, end = "<!-- metrics:start -->", "<!-- metrics:end -->"
    assert start in text and end in text, "README.md lost its generated metric tables"
    block = text.split(start, 1)[1].split(end, 1)[0]
    assert block.strip() == registry.markdown_tables().strip(), (
        "README metric tables differ from prep.metrics.METRICS; "
        "paste prep.metrics.markdown_tables() between the markers"
    )
    rows = {}
    for line in block.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 2 and re.fullmatch(r"`\w+`", cells[0]):
            rows[cells[0].strip("`")] = cells[1]
    judged = {n for n, m in METRICS.items() if m.scope in ("source", "output")}
    assert judged <= set(rows), sorted(judged - set(rows))
    assert set(rows) <= set(METRICS), sorted(set(rows) - set(METRICS))
    for name, unit in rows.items():
        assert unit == (METRICS[name].unit or "–"), name


def test_readme_stage_table_names_only_declared_metrics_of_that_stage():
    text = _readme()
    checked = 0
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or cells[0] not in _stage_names():
            continue
        for name in re.findall(r"`(\w+)`", cells[2]):
            assert name in METRICS, (cells[0], name)
            assert cells[0] in METRICS[name].written_by, (cells[0], name)
            checked += 1
    assert checked >= 20


def test_readme_does_not_use_the_old_names():
    text = _readme()
    for old in registry.LEGACY_NAMES:
        assert f"`{old}`" not in text or "renamed" in text, old
    assert "`input_*`" not in text


# -- reports written before the registry ----------------------------------------------------------

#: Written out by hand (not taken from the code under test): report_version 2's names.
OLD_NAMES = {
    "source_snr_db": "input_snr_db",
    "source_clipping_ratio": "input_clipping_ratio",
    "source_clipped_runs": "input_clipped_runs",
    "source_dc_offset": "input_dc_offset",
    "source_bandwidth_hz": "input_bandwidth_hz",
    "source_reverb_s": "input_reverb_s",
    "source_tonal_ratio": "input_tonal_ratio",
    "denoise_snr_in_db": "snr_before_db",
    "denoise_snr_out_db": "snr_after_db",
    "pre_gain_lufs": "input_lufs",
    "pre_gain_true_peak_dbtp": "input_true_peak_dbtp",
    "pre_gain_lra_lu": "input_lra_lu",
}


def _as_version_2(metrics: dict) -> dict:
    old = {OLD_NAMES.get(k, k): v for k, v in metrics.items() if k not in ("source_lufs", "source_peak_dbfs")}
    db = metrics.get("source_peak_dbfs")
    if isinstance(db, (int, float)):
        old["input_peak"] = 10 ** (db / 20)
    return old


@pytest.fixture(scope="module")
def _old_run_template(tmp_path_factory):
    """A real run folder whose report.json and manifest are rewritten as voiceprep wrote them at version 2."""
    from prep.cli import main

    tmp_path = tmp_path_factory.mktemp("old-run")
    src = tmp_path / "in" / "alice"
    src.mkdir(parents=True)
    for name in ("a01.wav", "a01.txt", "a02.flac", "a02.txt"):
        shutil.copy(DEMO / "alice" / name, src / name)
    out = tmp_path / "out"
    assert main(["run", str(tmp_path / "in"), "-o", str(out), "-q"]) == 0
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    current = {c["id"]: dict(c["metrics"]) for c in report["clips"]}
    report["report_version"] = 2
    for entry in report["clips"]:
        entry["metrics"] = _as_version_2(entry["metrics"])
    for speaker in report["speakers"].values():
        speaker["consistency"]["input_lufs"] = speaker["consistency"].pop("source_lufs")
    (out / "report.json").write_text(json.dumps(report), encoding="utf-8")
    lines = []
    for line in (out / "manifest.jsonl").read_text(encoding="utf-8").splitlines():
        data = json.loads(line)
        data["metrics"] = _as_version_2(data["metrics"])
        lines.append(json.dumps(data) + "\n")
    (out / "manifest.jsonl").write_text("".join(lines), encoding="utf-8")
    return out, current


@pytest.fixture()
def old_run(_old_run_template, tmp_path):
    """A fresh copy of the version 2 run folder (tests change it)."""
    template, current = _old_run_template
    out = tmp_path / "out"
    shutil.copytree(template, out)
    return out, current


def _expected_after_upgrade(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if k != "source_lufs"}


def _close(a: dict, b: dict) -> None:
    assert set(a) == set(b), sorted(set(a) ^ set(b))
    for k in a:
        if isinstance(a[k], float) and isinstance(b[k], float):
            assert a[k] == pytest.approx(b[k], rel=1e-9, abs=1e-9), k
        else:
            assert a[k] == b[k], k


def test_an_old_report_is_read_with_current_names(old_run):
    from prep.report.summary import REPORT_VERSION, read_report

    out, current = old_run
    assert REPORT_VERSION >= 3
    report = read_report(out)
    assert report["report_version"] == REPORT_VERSION and report["upgraded_from"] == 2
    for entry in report["clips"]:
        _close(entry["metrics"], _expected_after_upgrade(current[entry["id"]]))
    cons = report["speakers"]["alice"]["consistency"]
    assert "input_lufs" not in cons and cons["source_lufs"] is None


def test_report_export_and_submit_read_an_old_run(old_run, tmp_path):
    from prep.cli import main
    from prep.run.run_folder import RunFolder

    def run_clips(out):
        return RunFolder(out).read_clips()

    from prep.deliver.submit import plan_submission

    out, current = old_run
    assert main(["report", str(out), "-q"]) == 0
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "input_snr_db" not in html
    for clip in run_clips(out):
        _close(dict(clip.metrics), _expected_after_upgrade(current[clip.id]))
    dest = tmp_path / "export"
    assert main(["export", str(out), "--format", "nemo", "-d", str(dest), "--include-warning"]) == 0
    rows = [json.loads(line) for line in (dest / "manifest.json").read_text(encoding="utf-8").splitlines()]
    assert rows and all("source_snr_db" in r and "input_snr_db" not in r for r in rows)
    plan = plan_submission(out, "alice", include_warning=True)
    assert plan is not None
    # without the report there is no finished run to read (the journal is only for resuming)
    (out / "report.json").unlink()
    with pytest.raises(ConfigError, match="no such report"):
        run_clips(out)


def test_a_newer_report_is_refused_with_a_clear_message(old_run, capsys):
    from prep.cli import main
    from prep.run.run_folder import RunFolder

    def run_clips(out):
        return RunFolder(out).read_clips()

    from prep.report.summary import REPORT_VERSION

    out, _ = old_run
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    report["report_version"] = REPORT_VERSION + 1
    (out / "report.json").write_text(json.dumps(report), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"report_version \d+ is newer"):
        run_clips(out)
    assert main(["report", str(out), "-q"]) == 2
    assert "newer than this voiceprep" in capsys.readouterr().err


def test_upgrade_metrics_is_idempotent_and_converts_the_peak():
    old = {"input_snr_db": 12.0, "input_peak": 0.5, "snr_before_db": 9.0, "input_lufs": -30.0, "snr_db": 20.0}
    new = upgrade_metrics(old)
    assert new["source_snr_db"] == 12.0 and new["denoise_snr_in_db"] == 9.0 and new["pre_gain_lufs"] == -30.0
    assert new["source_peak_dbfs"] == pytest.approx(-6.0206, abs=1e-4)
    assert new["snr_db"] == 20.0 and not set(new) & set(old) - {"snr_db"}
    assert upgrade_metrics(new) == new
    assert upgrade_metrics({"input_peak": 0.0})["source_peak_dbfs"] == -math.inf
