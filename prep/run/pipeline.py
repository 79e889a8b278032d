"""Stages and the loop that runs them.

A *stage* is a small frozen dataclass holding a config, with a class-level
``name`` and an ``apply(clip)`` method that calls the stage's pure function
on the clip's audio and returns a new clip (or several, for slicing).  The
pipeline is a plain list of stages run in order, like audiomentations'
``Compose``.  Each stage's config is recorded in the clip's history.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from collections.abc import Sequence
from typing import Any, ClassVar, Protocol, runtime_checkable

from ..clip import Clip
from ..errors import PrepError
from ..findings import finding

__all__ = ["Stage", "stage_config", "run_stages", "pipeline_fingerprint"]

log = logging.getLogger(__name__)


@runtime_checkable
class Stage(Protocol):
    """What the pipeline loop needs of a stage."""

    name: ClassVar[str]

    def apply(self, clip: Clip) -> Clip | list[Clip]:
        """Return the processed clip (or clips, when the stage slices)."""
        ...


def stage_config(stage: Stage) -> dict[str, Any]:
    """The stage's config as a plain dict (its dataclass fields)."""
    if dataclasses.is_dataclass(stage):
        return dataclasses.asdict(stage)  # type: ignore[arg-type]
    return {}


def pipeline_fingerprint(stages: Sequence[Stage], *extra: Any) -> str:
    """Short hash of the stage names and configs, and of any ``extra`` config dataclasses (the resume key)."""
    spec: list[Any] = [[s.name, stage_config(s)] for s in stages]
    spec += [[type(e).__name__, dataclasses.asdict(e)] for e in extra]
    blob = json.dumps(spec, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _drop_stale_speech(before: Clip, after: Clip) -> Clip:
    """``after`` without the speech regions it inherited from ``before`` if its audio changed."""
    if after.speech is not None and after.speech is before.speech and after.audio is not before.audio:
        return dataclasses.replace(after, speech=None)
    return after


def run_stages(clip: Clip, stages: Sequence[Stage]) -> list[Clip]:
    """Run ``stages`` over ``clip`` in order.

    A stage whose class sets ``keeps_timing = True`` promises that its
    output audio has its speech where its input had it (gain, resampling,
    denoising), so the clip's :attr:`~prep.clip.Clip.speech` regions stay
    valid; after any other stage that changes the audio they are dropped
    unless the stage set new ones.

    A stage that raises :class:`PrepError` (or anything else) turns that clip
    into an ``error`` verdict naming the stage and the cause; later stages
    skip it.  Other clips are unaffected.

    Returns
    -------
    list of Clip
        One clip, or more when a stage slices.
    """
    clips = [clip]
    for stage in stages:
        config = stage_config(stage)
        out: list[Clip] = []
        for item in clips:
            if item.verdict == "error":
                out.append(item)
                continue
            try:
                result = stage.apply(item)
            except PrepError as err:
                out.append(item.with_findings(finding("stage.error", stage=stage.name, detail=str(err))))
                continue
            except Exception as err:
                log.exception("stage %s failed on %s", stage.name, item.source)
                detail = f"{type(err).__name__}: {err}"
                out.append(item.with_findings(finding("internal.error", stage=stage.name, detail=detail)))
                continue
            results = [result] if isinstance(result, Clip) else list(result)
            if not getattr(stage, "keeps_timing", False):
                results = [_drop_stale_speech(item, r) for r in results]
            out.extend(r.with_history(stage.name, config) for r in results)
        clips = out
    return clips
