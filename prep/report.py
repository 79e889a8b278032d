"""Run reports: ``OUT/report.json``.

The JSON report holds one entry per clip (id, source, speaker, output path,
input format facts, metrics, verdict, reasons) plus a summary.
"""

from __future__ import annotations

import datetime as _dt
import json
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .clip import Clip
from .io import write_text_atomic

__all__ = ["REPORT_VERSION", "build_report", "write_report_json", "read_report"]

REPORT_VERSION = 1


def _clip_entry(clip: Clip) -> dict[str, Any]:
    data = clip.to_dict()
    return {
        "id": data["id"],
        "source": data["source"],
        "source_sha256": data["source_sha256"],
        "speaker": data["speaker"],
        "output": data["output"],
        "transcript": data["transcript"],
        "span_s": data["span_s"],
        "duration_s": data["duration_s"],
        "sample_rate": data["sample_rate"],
        "input": data["input"],
        "metrics": data["metrics"],
        "verdict": data["verdict"],
        "reasons": data["reasons"],
        "history": data["history"],
    }


def build_report(clips: Sequence[Clip], *, profile: str, stages: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    """Assemble the report dict for ``clips``.

    Parameters
    ----------
    clips : sequence of Clip
    profile : str
        Name of the profile used.
    stages : sequence of dict
        ``{"stage": name, "config": {...}}`` for each stage of the pipeline.
    """
    from . import __version__
    from .runner import summarize

    return {
        "report_version": REPORT_VERSION,
        "voiceprep_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "profile": profile,
        "pipeline": list(stages),
        "summary": summarize(clips),
        "clips": [_clip_entry(c) for c in clips],
    }


def write_report_json(report: dict[str, Any], out_dir: str | Path) -> Path:
    """Write ``out_dir/report.json`` atomically and return its path."""
    path = Path(out_dir) / "report.json"
    write_text_atomic(path, json.dumps(report, indent=1, ensure_ascii=False, allow_nan=False) + "\n")
    return path


def read_report(out_dir: str | Path) -> dict[str, Any]:
    """Read ``out_dir/report.json`` (or a path to the file itself)."""
    path = Path(out_dir)
    if path.is_dir():
        path = path / "report.json"
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)
