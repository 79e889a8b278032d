"""Stages and the loop that runs them.

A *stage* is a small frozen dataclass holding a config, with a class-level
``name``, a class-level ``changes`` (which parts of a clip it may change,
from :data:`CHANGES`) and an ``apply(clip)`` method that calls the stage's
pure function on the clip's audio and returns a new clip (or several, for
slicing).  The pipeline is a plain list of stages run in order, like
audiomentations' ``Compose``.  Each stage's config is recorded in the
clip's history.  Every metric a
stage writes must be declared in :data:`prep.metrics.METRICS` as written by
that stage (or in the stage's own ``metrics`` class attribute, for stages
from outside this package); :func:`run_stages` turns an undeclared one into
an ``internal.error`` finding.
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
from ..metrics import METRICS_VERSION, undeclared
from ..timing import timed

__all__ = [
    "CHANGES",
    "Stage",
    "StageContractError",
    "declared_changes",
    "stage_config",
    "run_stages",
    "pipeline_fingerprint",
]

log = logging.getLogger(__name__)

#: What a stage may declare in its ``changes``.  Metrics, verdict, reasons
#: and history are every stage's to add to and need no declaration.
#:
#: ``"audio"``
#:     replaces the clip's audio array.
#: ``"sample_rate"``
#:     changes the clip's rate (resampling).
#: ``"timing"``
#:     moves speech in time: changes the duration (beyond one sample) or
#:     where the speech is.  A stage without it promises the clip's
#:     :attr:`~prep.clip.Clip.speech` regions stay valid (gain, resampling,
#:     denoising).
#: ``"span"``
#:     changes ``span_s``, where the clip lies in its source.
#: ``"id"``
#:     gives the clip (or the clips it returns) a new id.
#: ``"transcript"``
#:     changes or drops the transcript, its words or its
#:     :attr:`~prep.clip.Clip.transcript_info`.
CHANGES = frozenset({"audio", "sample_rate", "timing", "span", "id", "transcript"})


class StageContractError(PrepError, TypeError):
    """A stage does not declare ``changes`` properly, or changed a clip in a way it did not declare."""


@runtime_checkable
class Stage(Protocol):
    """What the pipeline loop needs of a stage.

    Attributes
    ----------
    name : str
        Stage name, recorded in the clip's history.
    changes : frozenset of str
        What :meth:`apply` may change of a clip, a subset of
        :data:`CHANGES`.  There is no default: every stage class declares it,
        ``frozenset()`` for one that only adds metrics and verdicts.
        :func:`run_stages` enforces it.
    """

    name: ClassVar[str]
    changes: ClassVar[frozenset[str]]

    def apply(self, clip: Clip) -> Clip | list[Clip]:
        """Return the processed clip (or clips, when the stage slices)."""
        ...


def stage_config(stage: Stage) -> dict[str, Any]:
    """The stage's config as a plain dict (its dataclass fields)."""
    if dataclasses.is_dataclass(stage):
        return dataclasses.asdict(stage)  # type: ignore[arg-type]
    return {}


def pipeline_fingerprint(stages: Sequence[Stage], *extra: Any) -> str:
    """Short hash of the voiceprep version, the stage names and configs, and any ``extra`` config dataclasses.

    The metric names' version (:data:`prep.metrics.METRICS_VERSION`) is part of it.
    This is the resume key: a file is redone when any of them changes, so
    an upgraded voiceprep (whose stages may compute differently under the
    same config) does not reuse an older version's clips.
    """
    from .. import __version__

    spec: list[Any] = [["voiceprep", __version__], ["metrics", METRICS_VERSION]]
    spec += [[s.name, stage_config(s)] for s in stages]
    spec += [[type(e).__name__, dataclasses.asdict(e)] for e in extra]
    blob = json.dumps(spec, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _drop_stale_speech(before: Clip, after: Clip) -> Clip:
    """``after`` without the speech regions and words it inherited from ``before`` if its audio changed."""
    if after.audio is before.audio:
        return after
    if after.speech is not None and after.speech is before.speech:
        after = dataclasses.replace(after, speech=None)
    if after.words is not None and after.words is before.words:
        after = dataclasses.replace(after, words=None)
    return after


def _new_metrics(before: Clip, after: Clip) -> list[str]:
    """Metric names ``after`` set or changed relative to ``before`` (by identity: cheap)."""
    old = before.metrics
    return [k for k, v in after.metrics.items() if k not in old or old[k] is not v]


def _check_metrics(stage: Stage, before: Clip, after: Clip) -> Clip:
    """``after``, or ``after`` with an ``internal.error`` finding when the stage wrote an undeclared metric."""
    problems = undeclared(_new_metrics(before, after), stage.name, getattr(stage, "metrics", ()))
    if not problems:
        return after
    log.error("stage %s wrote undeclared metrics: %s", stage.name, "; ".join(problems))
    detail = f"undeclared metric(s): {'; '.join(problems)}"
    return after.with_findings(finding("internal.error", stage=stage.name, detail=detail))


def declared_changes(stage: Stage) -> frozenset[str]:
    """The stage's ``changes``, checked.

    Raises
    ------
    StageContractError
        If the stage's class does not declare ``changes`` as a frozenset of
        names from :data:`CHANGES`.
    """
    if not hasattr(type(stage), "changes"):
        raise StageContractError(
            f"stage {stage.name!r} ({type(stage).__name__}) does not declare what it changes: "
            f"give its class `changes: ClassVar[frozenset[str]]`, a subset of {sorted(CHANGES)}"
        )
    changes = stage.changes
    if not isinstance(changes, frozenset) or not changes <= CHANGES:
        raise StageContractError(
            f"stage {stage.name!r} declares changes={changes!r}; expected a frozenset, a subset of {sorted(CHANGES)}"
        )
    return changes


def _undeclared_changes(changes: frozenset[str], before: Clip, after: Clip) -> list[str]:
    """What ``after`` changed of ``before`` that ``changes`` does not allow."""
    found = []
    if "audio" not in changes and after.audio is not before.audio:
        found.append("audio")
    if "sample_rate" not in changes and after.sample_rate != before.sample_rate:
        found.append("sample_rate")
    if "timing" not in changes:
        one_sample_s = 1.0 / min(before.sample_rate, after.sample_rate)
        if abs(after.duration_s - before.duration_s) > one_sample_s:
            found.append("timing")
    if "span" not in changes and tuple(after.span_s) != tuple(before.span_s):
        found.append("span")
    if "id" not in changes and after.id != before.id:
        found.append("id")
    if "transcript" not in changes and (
        after.transcript != before.transcript or after.transcript_info != before.transcript_info
        or after.words is not before.words
    ):
        found.append("transcript")
    return found


def run_stages(clip: Clip, stages: Sequence[Stage]) -> list[Clip]:
    """Run ``stages`` over ``clip`` in order.

    Each stage may change only what its ``changes`` declares (see
    :data:`CHANGES`).  A stage that does not declare ``"timing"`` promises
    that its output has its speech where its input had it (gain,
    resampling, denoising), so the clip's :attr:`~prep.clip.Clip.speech`
    regions stay valid; after a stage that declares it and changes the
    audio they are dropped unless the stage set new ones.

    Each stage's wall time is added to :func:`prep.timing.stage_times`
    under its name (per process; never written into the clips).

    A stage that raises :class:`PrepError` (or anything else) turns that clip
    into an ``error`` verdict naming the stage and the cause; later stages
    skip it.  Other clips are unaffected.  So does a stage that sets a metric
    not declared for it (see :func:`prep.metrics.undeclared`; a stage's
    ``metrics`` class attribute, a tuple of :class:`prep.metrics.Metric`,
    declares its own).

    Returns
    -------
    list of Clip
        One clip, or more when a stage slices.

    Raises
    ------
    StageContractError
        If a stage does not declare ``changes``, or changes a clip in a way
        it does not declare (a bug in the stage, not in the audio).
    """
    changes_of = {id(stage): declared_changes(stage) for stage in stages}
    clips = [clip]
    for stage in stages:
        config = stage_config(stage)
        changes = changes_of[id(stage)]
        out: list[Clip] = []
        for item in clips:
            if item.verdict == "error":
                out.append(item)
                continue
            try:
                with timed(stage.name):
                    result = stage.apply(item)
            except PrepError as err:
                out.append(item.with_findings(finding("stage.error", stage=stage.name, detail=str(err))))
                continue
            except Exception as err:
                log.exception("stage %s failed on %s", stage.name, item.source)
                detail = f"{type(err).__name__}: {err}"
                out.append(item.with_findings(finding("internal.error", stage=stage.name, detail=detail)))
                continue
            results = [_check_metrics(stage, item, r) for r in ([result] if isinstance(result, Clip) else result)]
            for r in results:
                undeclared = _undeclared_changes(changes, item, r)
                if undeclared:
                    raise StageContractError(
                        f"stage {stage.name!r} changed the clip's {', '.join(undeclared)} on {item.id} "
                        f"but its class declares changes={sorted(changes)}"
                    )
            if "timing" in changes:
                results = [_drop_stale_speech(item, r) for r in results]
            out.extend(r.with_history(stage.name, config) for r in results)
        clips = out
    return clips
