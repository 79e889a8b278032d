"""Run reports: ``OUT/report.json`` (and ``OUT/report.html`` via :mod:`prep.report.html`).

The report is the record of a finished run: :func:`read_report` (that is,
:meth:`prep.run.run_folder.RunFolder.read_report`) is what ``voiceprep report``,
``export`` and ``submit`` read.

Schema of ``report.json`` (``report_version`` 3; times in seconds, levels
in dB; a non-finite number is ``null`` for NaN, ``"inf"``/``"-inf"``
otherwise):

``report_version``, ``voiceprep_version``, ``created`` (UTC ISO 8601), ``python``
    Provenance.
``profile`` : str, ``pipeline`` : list of ``{"stage", "config"}``
    The stages run, with their configs.
``purpose`` : str
    What the profile prepares clips for (``fish`` or ``dataset``,
    :data:`prep.run.profiles.PURPOSES`); the speaker notes follow it.
    Absent from reports of voiceprep before it: read as ``fish``.
``partial`` : bool
    True when the run was interrupted (Ctrl-C or SIGTERM): the report lists
    only the files that finished; running the same command again finishes
    it and rewrites the report.
``thresholds`` : dict or null
    Config of the ``score`` stage (the verdict thresholds), if it ran.
``summary`` : dict
    ``clips`` (count), ``verdicts`` (count per verdict), ``speakers``
    (per speaker: ``clips``, ``approved``, ``approved_s``), ``findings``
    (per finding code: ``severity`` and ``clips``, the number of clips with it;
    see :func:`finding_counts`).
``speakers`` : dict of speaker -> dict
    :func:`prep.deliver.select.speaker_summary`: ``clips``, ``verdicts``,
    ``duration_s``, ``speech_s``, ``approved_s``, ``approved_speech_s``,
    ``usable_s`` (approved + warning), ``mean_score``, ``consistency``
    (``source_lufs`` / ``bandwidth_hz`` / ``snr_db`` as ``{min, max, std}``,
    ``sample_rates``, ``codecs``, ``notes``), ``selection`` (``clips``: ids
    best first, ``count``, ``total_s``, ``min_total_s``, ``max_total_s``,
    ``enough``, ``notes``), ``ready`` (``fish``: the selection is long enough;
    ``dataset``: some clip is exportable), ``exportable`` (approved clips with a
    transcript), ``voices`` (with the ``[voice]`` extra, else null:
    ``embedded``, ``checked``, ``count``, ``voices`` as ``{"name", "clips", "speech_s", "counts"}``,
    ``several``, ``notes``; :func:`prep.voice.clips.speaker_voices`)
    and ``notes`` (the selection's under ``fish``, what an export leaves out under
    ``dataset``; with nothing approved, first a line naming the findings that
    held the clips back and the profile settings that relax them).
``clips`` : list of dict
    One per clip: ``id``, ``source``, ``source_sha256``, ``speaker``,
    ``output`` (path relative to OUT, or null), ``transcript``, ``transcript_info``
    (null, or where the transcript came from: ``origin`` ``user``/``asr``/``none``, ``model``,
    ``language``, ``language_probability``, ``confidence``, ``heard`` (the ASR text),
    ``user_text``; see :class:`prep.clip.TranscriptInfo`; absent in reports written before
    speech recognition, which read back as null), ``span_s``
    (``[start, end]`` of the kept audio in source time, i.e. in the original
    file), ``pauses_cut_s`` (``[start, end]`` source ranges inside the span
    that pause compression removed), ``n_samples`` (length of the written
    clip at ``sample_rate``), ``duration_s`` (of the written clip: ``n_samples /
    sample_rate``, equal to the span's length minus the cut pauses),
    ``sample_rate``, ``input`` (source format facts), ``metrics`` (every
    name is declared, with its unit and scope, in :data:`prep.metrics.METRICS`), ``verdict`` (``approved``,
    ``warning``, ``rejected`` or ``error``; derived from the findings by
    :func:`prep.findings.verdict_of`), ``findings`` (list of ``{"code",
    "severity", "metric", "value", "threshold", "message"}``, the codes of
    :data:`prep.findings.CODES`), ``reasons`` (the findings' messages, worst
    first), ``selected`` (in its speaker's selection) and ``history`` (stages run).

Version 3 added ``findings`` (per clip and in ``summary``); a version 2
report reads back with each reason as a ``legacy.reason`` finding.

Version 3 also renamed the metrics so each name has one meaning (``input_snr_db``
-> ``source_snr_db``, the loudness stage's ``input_lufs`` -> ``pre_gain_lufs``,
...; :data:`prep.metrics.LEGACY_NAMES`) and added ``source_lufs``; a version 2
report reads back with its metrics renamed (:func:`prep.run.run_folder.upgrade_report`),
and a report newer than this version is refused.
"""

from __future__ import annotations

import datetime as _dt
import json
import platform
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..clip import Clip
from ..errors import PrepError
from ..findings import SEVERITIES, Finding, findings_from_record
from ..io import write_text_atomic
from ..metrics import source_metrics
from ..run.run_folder import REPORT_VERSION, RunFolder, load_report, upgrade_report

__all__ = [
    "PARTIAL_NOTE",
    "REPORT_VERSION",
    "build_report",
    "entry_findings",
    "finding_counts",
    "print_summary",
    "read_report",
    "upgrade_report",
    "write_report_json",
]



def _clip_entry(clip: Clip, selected: bool = False) -> dict[str, Any]:
    data = clip.to_dict()
    duration = data["metrics"].get("duration_s")
    return {
        "id": data["id"],
        "source": data["source"],
        "source_sha256": data["source_sha256"],
        "speaker": data["speaker"],
        "output": data["output"],
        "transcript": data["transcript"],
        "transcript_info": data["transcript_info"],
        "span_s": data["span_s"],
        "pauses_cut_s": data["pauses_cut_s"],
        "n_samples": data["n_samples"],
        "duration_s": duration if isinstance(duration, (int, float)) else data["duration_s"],
        "sample_rate": data["sample_rate"],
        "input": data["input"],
        "metrics": data["metrics"],
        "verdict": data["verdict"],
        "reasons": data["reasons"],
        "findings": data["findings"],
        "selected": selected,
        "history": data["history"],
    }


def build_report(
    clips: Sequence[Clip],
    *,
    profile: str,
    stages: Sequence[dict[str, Any]] = (),
    partial: bool = False,
    purpose: str = "fish",
) -> dict[str, Any]:
    """Assemble the report dict for ``clips``.

    Parameters
    ----------
    clips : sequence of Clip
    profile : str
        Name of the profile used.
    stages : sequence of dict
        ``{"stage": name, "config": {...}}`` for each stage of the pipeline.
    partial : bool
        The run was interrupted: ``clips`` are those of the files that finished.
    purpose : str
        What the profile prepares clips for (:data:`prep.run.profiles.PURPOSES`):
        the speaker notes follow it.
    """
    from .. import __version__
    from ..deliver.select import summarize_speakers
    from ..run.runner import summarize

    speakers = summarize_speakers(clips, purpose=purpose, pipeline=stages)
    entries = [_clip_entry(c) for c in clips]
    chosen = {(name, cid) for name, entry in speakers.items() for cid in entry["selection"]["clips"]}
    thresholds = next((dict(s.get("config") or {}) for s in stages if s.get("stage") == "score"), None)
    return {
        "report_version": REPORT_VERSION,
        "voiceprep_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "profile": profile,
        "purpose": purpose,
        "pipeline": list(stages),
        "partial": partial,
        "thresholds": thresholds,
        "summary": {**summarize(clips), "findings": finding_counts(entries)},
        "speakers": speakers,
        "clips": [dict(e, selected=(c.speaker, c.id) in chosen) for c, e in zip(clips, entries, strict=True)],
    }


def entry_findings(entry: Mapping[str, Any]) -> tuple[Finding, ...]:
    """The findings of a report's clip entry (also of a version 2 entry: see
    :func:`prep.findings.findings_from_record`)."""
    try:
        return findings_from_record(entry)
    except PrepError:
        return ()


def finding_counts(entries: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per finding code, how many clips have it: ``{code: {"severity", "clips"}}``.

    A clip counts once per code; the severity is the worst seen with the code.
    Codes are ordered by severity (worst first), then count, then name.
    """
    counts: dict[str, dict[str, Any]] = {}
    for entry in entries:
        seen: dict[str, str] = {}
        for f in entry_findings(entry):
            if f.code not in seen or SEVERITIES.index(f.severity) > SEVERITIES.index(seen[f.code]):
                seen[f.code] = f.severity
        for code, severity in seen.items():
            item = counts.setdefault(code, {"severity": severity, "clips": 0})
            item["clips"] += 1
            if SEVERITIES.index(severity) > SEVERITIES.index(item["severity"]):
                item["severity"] = severity
    order = sorted(counts, key=lambda c: (-SEVERITIES.index(counts[c]["severity"]), -counts[c]["clips"], c))
    return {code: counts[code] for code in order}


def write_report_json(report: dict[str, Any], out_dir: str | Path) -> Path:
    """Write ``out_dir/report.json`` atomically and return its path."""
    path = RunFolder(out_dir).report_json
    write_text_atomic(path, json.dumps(report, indent=1, ensure_ascii=False, allow_nan=False) + "\n")
    return path


def read_report(out_dir: str | Path) -> dict[str, Any]:
    """Read ``out_dir/report.json`` (or a path to the file itself).

    A report of an older version is returned upgraded (:func:`upgrade_report`).

    Raises
    ------
    ConfigError
        If the file is missing: no run has finished there (a usage error).
    DataError
        If it cannot be read, is corrupt or is not a voiceprep report.
    """
    path = Path(out_dir)
    return RunFolder(path).read_report() if path.is_dir() else load_report(path)


#: Shown with a partial report (HTML and terminal).
PARTIAL_NOTE = ("the run was interrupted, so this report lists only the files that finished; "
                "run the same command again to finish it")

_STYLE = {"approved": "green", "warning": "yellow", "rejected": "red", "error": "magenta"}


def _verdict_count(verdict: str) -> Any:
    return lambda s: str((s.get("verdicts") or {}).get(verdict, 0))


def _selected(s: Mapping[str, Any]) -> str:
    sel = s.get("selection") or {}
    return f"{sel.get('count', 0)} / {float(sel.get('total_s') or 0.0):.1f} s"


def _status(purpose: str) -> Any:
    def status(s: Mapping[str, Any]) -> Any:
        from rich.text import Text

        if purpose == "dataset":
            n = int(s.get("exportable") or 0)
            return Text(f"{n} to export", style="green") if n else Text("nothing to export", style="yellow")
        if s.get("ready"):
            return Text("ready", style="green")
        sel = s.get("selection") or {}
        missing = float(sel.get("min_total_s") or 0.0) - float(sel.get("total_s") or 0.0)
        return Text(f"needs {max(0.0, missing):.0f} s more", style="yellow")

    return status


def _speaker_columns(purpose: str) -> list[tuple[str, str, int, Any, Any]]:
    """The speaker table's columns: ``(header, justify, priority, cell, below)``.

    ``priority`` orders which columns stay when the width is short (0 stays
    always); ``below`` words a dropped column's value for the line under the
    table (``None``: nothing worth a word).
    """
    def count(verdict: str) -> Any:
        return lambda s: (f"{n} {verdict}" if (n := (s.get("verdicts") or {}).get(verdict, 0)) else None)

    last = (("exportable", "right", 9, lambda s: str(s.get("exportable") or 0), None) if purpose == "dataset" else
            ("selected", "right", 9, _selected, lambda s: f"selected {_selected(s)}"))
    return [
        ("speaker", "left", 0, lambda s: None, None),
        ("clips", "right", 1, lambda s: str(s.get("clips", 0)), lambda s: f"{s.get('clips', 0)} clip(s)"),
        ("approved", "right", 2, _verdict_count("approved"), count("approved")),
        ("warning", "right", 5, _verdict_count("warning"), count("warning")),
        ("rejected", "right", 6, _verdict_count("rejected"), count("rejected")),
        ("error", "right", 7, _verdict_count("error"), count("error")),
        ("approved s", "right", 8, lambda s: f"{s.get('approved_s', 0.0):.1f}",
         lambda s: f"{s.get('approved_s', 0.0):.1f} s approved"),
        ("usable s", "right", 4, lambda s: f"{s.get('usable_s', 0.0):.1f}",
         lambda s: f"{s.get('usable_s', 0.0):.1f} s usable"),
        last,
        ("status", "left", 3, _status(purpose), lambda s: _status(purpose)(s).plain),
    ]


def _natural_width(console: Any, renderable: Any) -> int:
    """Columns ``renderable`` takes when nothing in it wraps (measured without the console's limit)."""
    from rich.measure import Measurement

    return Measurement.get(console, console.options.update_width(1 << 16), renderable).maximum


def _fits(console: Any, renderable: Any) -> bool:
    return _natural_width(console, renderable) <= console.width


def _speaker_table(console: Any, speakers: Mapping[str, Any], purpose: str) -> tuple[Any, list[Any]]:
    """The widest speaker table that fits the console without wrapping a cell, and the lines under it.

    Columns are dropped by priority until the table fits; what they held is
    listed per speaker below it.  When not even speaker, clips, approved and
    status fit, there is no table, only the lines.
    """
    from rich import box
    from rich.table import Table
    from rich.text import Text

    columns = _speaker_columns(purpose)
    for keep in range(len(columns), 3, -1):
        kept = sorted(sorted(columns, key=lambda c: c[2])[:keep], key=columns.index)
        table = Table(box=box.SIMPLE_HEAD, show_edge=False, padding=(0, 1), pad_edge=False)
        for header, justify, *_ in kept:
            table.add_column(header, justify=justify, no_wrap=True, overflow="fold")  # type: ignore[arg-type]
        for name, s in speakers.items():
            table.add_row(*[name if header == "speaker" else cell(s) for header, _, _, cell, _ in kept])
        if _fits(console, table):
            dropped = [c for c in columns if c not in kept]
            break
    else:
        table, dropped = None, columns[1:]
    lines = []
    for name, s in speakers.items():
        words = [text for *_, below in dropped if below is not None and (text := below(s))]
        if words:
            lines.append(Text.assemble((name, "bold"), ": ", ", ".join(words)))
    return table, lines


def _clip_cells(c: Mapping[str, Any]) -> tuple[str, str, str, str]:
    metrics = c.get("metrics") or {}
    score = metrics.get("score")
    snr = source_metrics(metrics)["snr_db"]
    return (
        str(c.get("verdict", "")),
        f"{score:.0f}" if isinstance(score, (int, float)) else "–",
        f"{c['duration_s']:.1f}" if isinstance(c.get("duration_s"), (int, float)) else "–",
        f"{snr:.0f}" if isinstance(snr, (int, float)) else "–",
    )


#: Narrowest reasons column of the clip table; below it each clip's reasons go on lines of their own.
_MIN_REASONS_WIDTH = 24


def _print_clips(console: Any, clips: Sequence[Mapping[str, Any]]) -> None:
    """Every clip, grouped by speaker: a table when ids and numbers fit beside a readable reasons
    column, else a line per clip with its reasons indented below.  Ids are never cut."""
    from rich.padding import Padding
    from rich.table import Table
    from rich.text import Text

    groups: dict[str, list[Mapping[str, Any]]] = {}
    for c in clips:
        groups.setdefault(str(c.get("speaker")), []).append(c)
    heads = (("clip", "left"), ("verdict", "left"), ("score", "right"), ("s", "right"), ("SNR", "right"))

    def table(with_reasons: bool) -> Any:
        t = Table(show_edge=False, box=None, padding=(0, 1), pad_edge=False)
        for name, justify in heads:
            t.add_column(name, justify=justify, no_wrap=True, overflow="fold")  # type: ignore[arg-type]
        if with_reasons:
            t.add_column("reasons", overflow="fold", min_width=_MIN_REASONS_WIDTH)
        for speaker, group in groups.items():
            t.add_row(Text(speaker, style="bold"), *([""] * (len(heads) - (0 if with_reasons else 1))))
            for c in group:
                verdict, *numbers = _clip_cells(c)
                row = [Text(f" {c.get('id')}"), Text(verdict, style=_STYLE.get(verdict, "")), *numbers]
                if with_reasons:
                    row.append(Text("; ".join(c.get("reasons") or []) or "ok"))
                t.add_row(*row)
        return t

    if _natural_width(console, table(False)) + 1 + _MIN_REASONS_WIDTH <= console.width:
        console.print(table(True))
        return
    for speaker, group in groups.items():
        console.print(Text(speaker, style="bold"))
        for c in group:
            verdict, score, seconds, snr = _clip_cells(c)
            console.print(Text.assemble(
                "  ", str(c.get("id")), "  ", (verdict, _STYLE.get(verdict, "")),
                f"  score {score}  {seconds} s  SNR {snr} dB",
            ))
            console.print(Padding(Text("; ".join(c.get("reasons") or []) or "ok"), (0, 0, 0, 4)))


def print_summary(report: dict[str, Any], out_dir: str | Path, *, console: Any = None, max_clip_rows: int = 40) -> None:
    """Print the end-of-run summary: speakers, clips, problems counted by finding code and where the reports are.

    It is laid out to the console's width (80 columns when piped, or
    ``COLUMNS``): the speaker table keeps the columns that fit and lists the
    rest below it, clips get their reasons on lines of their own when a
    table would squeeze them, and speaker names and clip ids are never cut
    or shortened; lists and notes wrap between words, and paths are never
    broken.

    Parameters
    ----------
    report : dict
        As built by :func:`build_report`.
    out_dir : str or Path
        The output folder (for the paths printed).
    console : rich.console.Console, optional
        Where to print (stdout by default).
    max_clip_rows : int
        List every clip when there are at most this many.  The problems
        (findings other than ``info``) are counted by code either way.
    """
    from rich.console import Console
    from rich.text import Text

    console = console or Console()
    out = Path(out_dir)
    clips = report.get("clips") or []
    speakers = report.get("speakers") or {}
    purpose = str(report.get("purpose") or "fish")
    # paths are never broken across lines (soft wrap): they stay whole to copy, however long
    console.print(Text.assemble(("voiceprep: ", "bold"), f"{len(clips)} clip(s) -> {out}"), soft_wrap=True)
    if speakers:
        table, lines = _speaker_table(console, speakers, purpose)
        if table is not None:
            console.print(table)
        for line in lines:
            console.print(line)
    if clips and len(clips) <= max_clip_rows:
        console.print()
        _print_clips(console, clips)
    problems = {code: n for code, n in finding_counts(clips).items() if n["severity"] != "info"}
    if problems:
        top = list(problems.items())[:12]
        more = f", and {len(problems) - len(top)} more code(s)" if len(problems) > len(top) else ""
        console.print(Text("problems by code (clips): " + ", ".join(f"{k} ({n['clips']})" for k, n in top) + more))
    for name, s in speakers.items():
        for note in s.get("notes") or []:
            console.print(Text.assemble((name, "bold"), ": ", note))
    if report.get("partial"):
        console.print(Text.assemble(("partial report: ", "bold yellow"), PARTIAL_NOTE))
    folder = RunFolder(out)
    for path in (folder.report_json, folder.report_html):
        if path.exists():
            console.print(Text(f"report: {path}"), soft_wrap=True)
