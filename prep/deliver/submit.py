"""Submitting a speaker's clips to Fish Audio (``POST /model``).

By default the speaker's reference samples are sent: 10-30 s each, built from the
best approved clips by :mod:`prep.deliver.references` (short utterances joined),
built first when missing or stale.  With ``use="clips"`` the best approved clips
themselves are sent instead (at most 20, chosen by
:func:`prep.deliver.select.select_clips`).  Either way with their transcripts, through the
official ``fish-audio-sdk`` client (``fishaudio.FishAudio``,
``client.voices.create``); the new model is then polled
(``client.voices.get``) until its state is ``trained`` or ``failed``.

Request fields: ``title``, ``type=tts``, ``visibility`` (always sent: the
API's own default is ``public``; ours is ``private``), ``train_mode=fast``,
``enhance_audio_quality`` (``false`` by default: cleanup was done locally),
one ``voices`` file part per clip and one ``texts`` field per clip, or no
``texts`` at all when any selected clip lacks a transcript (the API requires
the counts to match).

Retries.  The SDK (1.3.0) makes exactly one HTTP request per call: its
``RequestOptions.max_retries`` is accepted but unused.  All retrying is
therefore ours and deterministic: 429, 5xx, timeouts and connection errors
are retried up to :attr:`RetryPolicy.max_retries` times, waiting
``backoff_s * 2**attempt`` seconds (at least the server's ``Retry-After``),
capped at ``backoff_max_s``.  401/403/404/422 and other 4xx fail at once.

Idempotency.  ``OUT/submit.json`` records each speaker's submission.  A
record is written as ``pending`` before the upload and completed with the
model id from the answer; a second submit for the speaker then refuses to
create another model unless ``force`` is given (a model still training is
polled again instead).  A ``pending`` record left by an upload that got no
answer also requires ``force``: the model may exist.

The API key (``FISH_API_KEY``) is only ever given to the SDK; it is not
logged, printed, or written (the dry-run file shows ``Bearer <FISH_API_KEY>``).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import email.parser
import email.policy
import hashlib
import json
import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..clip import Clip
from ..errors import ConfigError, OutputError, SubmitError
from ..io import write_text_atomic
from ..run.run_folder import RunFolder
from .select import select_clips

__all__ = [
    "DEFAULT_BASE_URL",
    "MAX_VOICES",
    "USES",
    "VISIBILITIES",
    "RetryPolicy",
    "SelectedClip",
    "SubmitOptions",
    "SubmitPlan",
    "SubmitResult",
    "plan_submission",
    "read_submissions",
    "reference_audio",
    "speaker_clips",
    "submit",
]

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.fish.audio"
VISIBILITIES = ("private", "unlist", "public")
TRAIN_MODES = ("fast",)
#: What a submission sends: the reference samples (default) or the clips as they are.
USES = ("references", "clips")
TERMINAL_STATES = ("trained", "failed")
#: Most voice files one ``POST /model`` takes from voiceprep.
MAX_VOICES = 20
_KEY_PLACEHOLDER = "<FISH_API_KEY>"


# -- options --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    """How failed requests are retried.

    Attributes
    ----------
    max_retries : int
        Retries after the first attempt (0 disables retrying).
    backoff_s : float
        Wait before the first retry; doubled for each further retry.
    backoff_max_s : float
        Longest wait, also bounding a server's ``Retry-After``.
    """

    max_retries: int = 4
    backoff_s: float = 1.0
    backoff_max_s: float = 30.0

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ConfigError(f"max_retries must be >= 0, got {self.max_retries!r}")
        if not (self.backoff_s >= 0 and self.backoff_max_s >= 0) or not math.isfinite(self.backoff_max_s):
            raise ConfigError(f"backoff must be finite and >= 0, got {self.backoff_s!r}, {self.backoff_max_s!r}")

    def delay_s(self, attempt: int, retry_after_s: float | None = None) -> float:
        """Seconds to wait before retry number ``attempt`` (0-based)."""
        delay = self.backoff_s * (2.0**attempt)
        if retry_after_s is not None:
            delay = max(delay, retry_after_s)
        return min(delay, self.backoff_max_s)


@dataclass(frozen=True)
class SubmitOptions:
    """What to send to ``POST /model`` and how.

    Attributes
    ----------
    title : str
        Model title (required, non-empty).
    visibility : str
        ``private`` (default), ``unlist`` or ``public``; always sent.
    train_mode : str
        ``fast`` (the only mode the API offers).
    enhance_audio_quality : bool
        Ask the API to denoise again (off: voiceprep already cleaned the audio).
    description : str or None
    tags : tuple of str
    max_clips : int
        At most this many clips (1..20).
    include_warning : bool
        Also consider clips with a ``warning`` verdict.
    use : str
        ``references`` (default): the speaker's reference samples
        (:mod:`prep.deliver.references`, built when missing or stale); ``clips``:
        the selected clips as they are.
    base_url : str
        API root, e.g. ``https://api.fish.audio`` or a local test server.
    timeout_s : float
        Per-request network timeout.
    retry : RetryPolicy
    wait : bool
        Poll the model until ``trained``/``failed``.
    poll_interval_s : float
        Pause between polls.
    poll_timeout_s : float
        Give up polling after this long (the model keeps training; re-run to poll again).
    """

    title: str
    visibility: str = "private"
    train_mode: str = "fast"
    enhance_audio_quality: bool = False
    description: str | None = None
    tags: tuple[str, ...] = ()
    max_clips: int = MAX_VOICES
    include_warning: bool = False
    use: str = "references"
    base_url: str = DEFAULT_BASE_URL
    timeout_s: float = 120.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    wait: bool = True
    poll_interval_s: float = 5.0
    poll_timeout_s: float = 600.0

    def __post_init__(self) -> None:
        if not self.title or not self.title.strip():
            raise ConfigError("title must not be empty")
        if self.visibility not in VISIBILITIES:
            raise ConfigError(f"visibility {self.visibility!r} is not one of {VISIBILITIES}")
        if self.train_mode not in TRAIN_MODES:
            raise ConfigError(f"train_mode {self.train_mode!r} is not one of {TRAIN_MODES}")
        if not 1 <= self.max_clips <= MAX_VOICES:
            raise ConfigError(f"max_clips must be in 1..{MAX_VOICES}, got {self.max_clips!r}")
        if self.use not in USES:
            raise ConfigError(f"use {self.use!r} is not one of {USES}")
        if not self.base_url.startswith(("http://", "https://")):
            raise ConfigError(f"base_url must start with http:// or https://, got {self.base_url!r}")
        for name in ("timeout_s", "poll_interval_s", "poll_timeout_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0) or (name == "timeout_s" and value == 0):
                raise ConfigError(f"{name} must be a finite number >= 0 (timeout_s > 0), got {value!r}")


@dataclass(frozen=True)
class SelectedClip:
    """One clip chosen for upload.

    Attributes
    ----------
    id : str
        The clip's id, or the reference's (``ref-NN``).
    path : Path
        The WAV file inside the output folder.
    output : str
        Its path relative to the output folder.
    bytes : int
    sha256 : str
    duration_s : float
    text : str or None
    parts : tuple of str
        For a reference sample: the ids of the clips it is made of, in spoken order.
    """

    id: str
    path: Path
    output: str
    bytes: int
    sha256: str
    duration_s: float
    text: str | None
    parts: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (path relative to the output folder)."""
        data = {
            "id": self.id,
            "output": self.output,
            "bytes": self.bytes,
            "sha256": self.sha256,
            "duration_s": self.duration_s,
            "text": self.text,
        }
        if self.parts:
            data["clips"] = list(self.parts)
        return data


@dataclass(frozen=True)
class SubmitPlan:
    """The clips and texts one submission sends.

    Attributes
    ----------
    speaker : str
    clips : tuple of SelectedClip
    texts : tuple of str
        One per clip, or empty (no ``texts`` fields are sent).
    notes : tuple of str
        Why texts are absent, which selector was used, ...
    """

    speaker: str
    clips: tuple[SelectedClip, ...]
    texts: tuple[str, ...]
    notes: tuple[str, ...] = ()

    @property
    def total_s(self) -> float:
        """Seconds of audio sent."""
        return float(sum(c.duration_s for c in self.clips))

    def fingerprint(self) -> str:
        """Hash of the clip contents and texts (what the model is made from)."""
        blob = json.dumps([[c.sha256 for c in self.clips], list(self.texts)]).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


@dataclass(frozen=True)
class SubmitResult:
    """Outcome of :func:`submit`.

    Attributes
    ----------
    speaker : str
    model_id : str or None
        ``None`` for a dry run.
    state : str or None
        Last known model state (``created``, ``training``, ``trained``, ``failed``).
    created : bool
        A new model was created by this call.
    record_path : Path or None
        ``OUT/submit.json`` (or the dry-run file).
    plan : SubmitPlan or None
    """

    speaker: str
    model_id: str | None
    state: str | None
    created: bool
    record_path: Path | None
    plan: SubmitPlan | None = None


# -- choosing clips -------------------------------------------------------------------------------------


def speaker_clips(out_dir: str | Path, speaker: str) -> list[Clip]:
    """All clips of ``speaker`` in an output folder.

    The clips are those of the last finished run
    (:meth:`prep.run.run_folder.RunFolder.read_clips`).

    Raises
    ------
    ConfigError
        If no run has finished in the folder, or it has no clip of that
        speaker (naming those it has).
    DataError
        If the run's report cannot be read.
    """
    out = Path(out_dir)
    clips = RunFolder(out).read_clips()
    mine = [c for c in clips if c.speaker == speaker]
    if not mine:
        speakers = sorted({c.speaker for c in clips})
        raise ConfigError(f"speaker {speaker!r} has no clips in {out}; speakers there: {speakers}")
    return mine


def _select(clips: Sequence[Clip], *, max_clips: int) -> tuple[list[Clip], list[str]]:
    """The clips :func:`prep.deliver.select.select_clips` chooses (best first) and its notes."""
    selection = select_clips(list(clips), max_clips=max_clips)
    return list(selection.clips), list(selection.notes)


def plan_submission(
    out_dir: str | Path,
    speaker: str,
    *,
    max_clips: int = MAX_VOICES,
    include_warning: bool = False,
    use: str = "references",
) -> SubmitPlan:
    """Choose the speaker's samples and texts for one ``POST /model``.

    Parameters
    ----------
    out_dir : str or Path
        Output folder of ``voiceprep run``.
    speaker : str
    max_clips : int
        At most this many samples (1..20).
    include_warning : bool
        Also consider clips whose verdict is ``warning``.
    use : str
        ``references`` (default): the speaker's reference samples, best first,
        built (:func:`prep.deliver.references.ensure_references`) when missing or
        stale; when none can be built, the clips are sent, with a note.
        ``clips``: the clips the selector chooses.

    Returns
    -------
    SubmitPlan

    Raises
    ------
    ConfigError
        Unknown speaker, bad ``max_clips`` or ``use``.
    SubmitError
        No eligible clip, or a selected clip's WAV is missing.
    """
    if not 1 <= max_clips <= MAX_VOICES:
        raise ConfigError(f"max_clips must be in 1..{MAX_VOICES}, got {max_clips!r}")
    if use not in USES:
        raise ConfigError(f"use {use!r} is not one of {USES}")
    out = Path(out_dir)
    allowed = ("approved", "warning") if include_warning else ("approved",)
    clips = speaker_clips(out, speaker)
    fallback: list[str] = []
    if use == "references":
        plan = _reference_plan(out, speaker, max_clips=max_clips, include_warning=include_warning)
        if plan.clips:
            return plan
        fallback = [*plan.notes, "no reference sample could be built: the clips are sent as they are"]
    eligible = [c for c in clips if c.verdict in allowed and c.output]
    if not eligible:
        verdicts = sorted({c.verdict for c in clips})
        raise SubmitError(
            f"speaker {speaker!r} has no {' or '.join(allowed)} clip with a written file in {out} "
            f"(verdicts: {verdicts})" + ("" if include_warning else "; --include-warning also considers warnings")
        )
    chosen, notes = _select(eligible, max_clips=max_clips)
    notes = fallback + notes
    if not chosen:
        raise SubmitError(f"the selector chose no clip of speaker {speaker!r} in {out}: {'; '.join(notes)}")
    selected = [_selected(out, "clip", clip.id, str(clip.output), float(clip.duration_s), clip.transcript or None)
                for clip in chosen[:max_clips]]
    missing = [c.id for c in selected if not c.text]
    if missing:
        texts: tuple[str, ...] = ()
        notes.append(f"no texts sent: {len(missing)} of {len(selected)} clips lack a transcript ({', '.join(missing)})")
    else:
        texts = tuple(str(c.text) for c in selected)
    return SubmitPlan(speaker=speaker, clips=tuple(selected), texts=texts, notes=tuple(notes))


def _selected(out: Path, kind: str, sample_id: str, output: str, duration_s: float, text: str | None, *,
              parts: tuple[str, ...] = ()) -> SelectedClip:
    """A sample chosen for upload: its file (``output``, relative to ``out``) read and hashed.

    Raises
    ------
    SubmitError
        If the file cannot be read (``kind`` and ``sample_id`` name it: ``clip a01``, ``reference ref-01``).
    """
    path = out / output
    try:
        data = path.read_bytes()
    except OSError as err:
        raise SubmitError(f"{kind} {sample_id}: cannot read {path}: {err.strerror or err}") from err
    return SelectedClip(id=sample_id, path=path, output=output, bytes=len(data),
                        sha256=hashlib.sha256(data).hexdigest(), duration_s=duration_s, text=text, parts=parts)


def _reference_plan(out: Path, speaker: str, *, max_clips: int, include_warning: bool) -> SubmitPlan:
    """The speaker's reference samples (best first, at most ``max_clips``) as a plan; empty when none."""
    from .references import ReferenceConfig, ensure_references

    listing = ensure_references(out, speaker, config=ReferenceConfig(include_warning=include_warning))
    refs = listing["references"]
    notes = [f"sending reference samples: {len(refs[:max_clips])} of {len(refs)} "
             f"({RunFolder(out).reference_dir(speaker)})"] if refs else []
    notes += list(listing.get("notes") or [])
    selected = [_selected(out, "reference", str(ref["id"]), str(ref["output"]), float(ref["duration_s"]),
                          ref.get("transcript") or None, parts=tuple(ref.get("clips") or ()))
                for ref in refs[:max_clips]]
    missing = [f"{ref['id']}: {ref.get('text_note') or 'no text'}" for ref in refs[:max_clips]
               if not ref.get("transcript")]
    if missing:
        texts: tuple[str, ...] = ()
        notes.append(f"no texts sent: {len(missing)} of {len(selected)} references lack a full transcript "
                     f"({'; '.join(missing)})")
    else:
        texts = tuple(str(c.text) for c in selected)
    return SubmitPlan(speaker=speaker, clips=tuple(selected), texts=texts, notes=tuple(notes))


def reference_audio(
    out_dir: str | Path,
    speaker: str,
    *,
    max_clips: int = 3,
    max_total_s: float = 30.0,
    include_warning: bool = False,
    use: str = "references",
) -> list[Any]:
    """``ReferenceAudio`` items for instant (per-request) cloning.

    Use them as ``client.tts.convert(text=..., references=reference_audio(out, "alice"))``.

    Parameters
    ----------
    out_dir : str or Path
    speaker : str
    max_clips : int
        At most this many references.
    max_total_s : float
        Stop adding references once this much audio is reached (the first
        one is always taken).
    include_warning : bool
    use : str
        ``references`` (the reference samples, default) or ``clips`` (see :func:`plan_submission`).

    Returns
    -------
    list of fishaudio.types.ReferenceAudio
        WAV bytes and transcript of the speaker's best clips that have one.

    Raises
    ------
    SubmitError
        If none of the selected clips has a transcript (a reference needs one).
    """
    from fishaudio.types import ReferenceAudio

    plan = plan_submission(out_dir, speaker, max_clips=MAX_VOICES, include_warning=include_warning, use=use)
    refs: list[Any] = []
    total = 0.0
    for clip in plan.clips:
        if not clip.text:
            continue
        if refs and (len(refs) >= max_clips or total + clip.duration_s > max_total_s):
            break
        refs.append(ReferenceAudio(audio=clip.path.read_bytes(), text=clip.text))
        total += clip.duration_s
    if not refs:
        raise SubmitError(f"speaker {speaker!r}: no selected clip has a transcript; instant cloning needs one")
    return refs


# -- the API, through the official SDK -------------------------------------------------------------------


def _redact(text: str, secret: str | None) -> str:
    return text.replace(secret, "***") if secret else text


def _retry_after_s(response: Any) -> float | None:
    if response is None:
        return None
    value = response.headers.get("retry-after")
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    return seconds if seconds is not None and math.isfinite(seconds) and seconds >= 0 else None


class _Captured(Exception):
    """Raised by the dry-run transport to stop a request before it is sent."""

    def __init__(self, request: Any) -> None:
        super().__init__("captured")
        self.request = request


class _FishApi:
    """``fishaudio.FishAudio`` with our retries, error mapping and response capture."""

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str,
        timeout_s: float,
        retry: RetryPolicy,
        sleep: Callable[[float], None],
        transport: Any = None,
    ) -> None:
        import httpx
        from fishaudio import FishAudio

        self._key = api_key
        self._retry = retry
        self._sleep = sleep
        self.last_response: httpx.Response | None = None
        self._http = httpx.Client(
            base_url=base_url,
            timeout=httpx.Timeout(timeout_s),
            transport=transport,
            event_hooks={"response": [self._remember]},
        )
        self.client = FishAudio(api_key=api_key, base_url=base_url, timeout=timeout_s, httpx_client=self._http)

    def _remember(self, response: Any) -> None:
        self.last_response = response

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> _FishApi:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def raw_json(self) -> dict[str, Any] | None:
        """The last response's JSON object, if it was one."""
        try:
            data = self.last_response.json() if self.last_response is not None else None
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    def call(self, what: str, fn: Callable[[], Any]) -> Any:
        """Run one SDK call with retries; map failures to :class:`SubmitError`."""
        import httpx
        import pydantic
        from fishaudio import exceptions as fe

        attempt = 0
        while True:
            self.last_response = None
            try:
                return fn()
            except (fe.RateLimitError, fe.ServerError, httpx.TimeoutException, httpx.NetworkError,
                    httpx.RemoteProtocolError) as err:
                status = getattr(err, "status", None)
                why = f"HTTP {status}" if status else type(err).__name__
                if attempt >= self._retry.max_retries:
                    raise SubmitError(
                        f"{what}: gave up after {attempt + 1} attempt(s): {_redact(str(err), self._key) or why}"
                    ) from err
                delay = self._retry.delay_s(attempt, _retry_after_s(self.last_response))
                log.warning("%s: %s; retry %d/%d in %.1f s", what, why, attempt + 1, self._retry.max_retries, delay)
                self._sleep(delay)
                attempt += 1
            except fe.AuthenticationError as err:
                raise SubmitError(f"{what}: HTTP 401: the API key in FISH_API_KEY was rejected") from err
            except fe.PermissionError as err:
                raise SubmitError(f"{what}: HTTP 403: not permitted: {_redact(err.message, self._key)}") from err
            except fe.NotFoundError as err:
                raise SubmitError(f"{what}: HTTP 404: not found: {_redact(err.message, self._key)}") from err
            except fe.APIError as err:
                label = "request rejected (invalid fields or files)" if err.status == 422 else "request failed"
                raise SubmitError(
                    f"{what}: HTTP {err.status}: {label}: {_redact(str(err.message), self._key)}"
                ) from err
            except pydantic.ValidationError as err:
                raise _UnexpectedBody(f"{what}: unexpected answer from the API: {err.error_count()} field error(s)",
                                      self.raw_json()) from err
            except httpx.HTTPError as err:
                raise SubmitError(f"{what}: {type(err).__name__}: {_redact(str(err), self._key)}") from err


class _UnexpectedBody(SubmitError):
    """A 2xx answer the SDK could not parse; ``body`` is its raw JSON object."""

    def __init__(self, message: str, body: dict[str, Any] | None) -> None:
        super().__init__(message)
        self.body = body


def _create_kwargs(plan: SubmitPlan, options: SubmitOptions) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "title": options.title,
        "voices": [c.path.read_bytes() for c in plan.clips],
        "visibility": options.visibility,
        "train_mode": options.train_mode,
        "enhance_audio_quality": options.enhance_audio_quality,
    }
    if plan.texts:
        kwargs["texts"] = list(plan.texts)
    if options.description:
        kwargs["description"] = options.description
    if options.tags:
        kwargs["tags"] = list(options.tags)
    return kwargs


def _model_fields(voice: Any, raw: dict[str, Any] | None) -> tuple[str, str | None]:
    """``(model id, state)`` from an SDK ``Voice`` or, failing that, the raw JSON."""
    if voice is not None:
        return str(voice.id), str(voice.state)
    if raw and isinstance(raw.get("_id") or raw.get("id"), str):
        state = raw.get("state")
        return str(raw.get("_id") or raw.get("id")), str(state) if isinstance(state, str) else None
    raise SubmitError("the API answered without a model id")


# -- the record -----------------------------------------------------------------------------------------


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def read_submissions(out_dir: str | Path) -> dict[str, dict[str, Any]]:
    """The submissions recorded in ``OUT/submit.json``, by speaker (empty if none).

    Raises
    ------
    SubmitError
        If the file exists but cannot be read.
    """
    path = RunFolder(out_dir).submit_json
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        subs = data["submissions"]
        if not isinstance(subs, dict):
            raise TypeError("'submissions' is not an object")
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise SubmitError(f"{path}: unreadable submission record ({err}); fix or move it away") from err
    return subs


def _write_record(out_dir: Path, speaker: str, record: dict[str, Any] | None) -> Path:
    subs = read_submissions(out_dir)
    if record is None:
        subs.pop(speaker, None)
    else:
        subs[speaker] = record
    path = RunFolder(out_dir).submit_json
    write_text_atomic(path, json.dumps({"version": 1, "submissions": subs}, indent=1, ensure_ascii=False) + "\n")
    return path


# -- dry run --------------------------------------------------------------------------------------------


def _describe_request(request: Any, plan: SubmitPlan) -> dict[str, Any]:
    """Fields and file parts of a captured multipart request."""
    body = request.read()
    content_type = request.headers.get("content-type", "")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body
    )
    fields: list[list[str]] = []
    files: list[dict[str, Any]] = []
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        filename = part.get_filename()
        payload = part.get_payload(decode=True) or b""
        if filename is None:
            fields.append([str(name), payload.decode("utf-8")])
        else:
            files.append(
                {"field": name, "filename": filename, "bytes": len(payload),
                 "sha256": hashlib.sha256(payload).hexdigest(),
                 "content_type": part.get_content_type()}
            )
    by_sha = {c.sha256: c for c in plan.clips}
    for item in files:
        clip = by_sha.get(item["sha256"])
        if clip is not None:
            item.update(clip_id=clip.id, path=clip.output, duration_s=clip.duration_s)
    headers = {k: v for k, v in request.headers.items() if k.lower() not in ("authorization", "content-length")}
    headers["authorization"] = f"Bearer {_KEY_PLACEHOLDER}"
    return {
        "method": request.method,
        "url": str(request.url),
        "headers": headers,
        "fields": fields,
        "files": files,
        "body_bytes": len(body),
    }


def _dry_run(out: Path, plan: SubmitPlan, options: SubmitOptions, existing: dict[str, Any] | None) -> SubmitResult:
    import httpx

    def capture(request: httpx.Request) -> httpx.Response:
        request.read()
        raise _Captured(request)

    api = _FishApi(api_key="dry-run", base_url=options.base_url, timeout_s=options.timeout_s,
                   retry=RetryPolicy(max_retries=0), sleep=lambda _s: None, transport=httpx.MockTransport(capture))
    captured = None
    with api:
        try:
            api.client.voices.create(**_create_kwargs(plan, options))
        except _Captured as cap:
            captured = cap.request
    if captured is None:  # the SDK always sends exactly one request; guard anyway
        raise SubmitError("dry run: the SDK sent no request")
    notes = list(plan.notes)
    if existing and existing.get("model_id"):
        notes.append(f"speaker already submitted as model {existing['model_id']}: a real run needs --force")
    doc = {
        "dry_run": True,
        "speaker": plan.speaker,
        "request": _describe_request(captured, plan),
        "clips": [c.to_dict() for c in plan.clips],
        "total_s": plan.total_s,
        "texts_sent": bool(plan.texts),
        "notes": notes,
        "created": _now(),
    }
    path = RunFolder(out).submit_dry_run
    write_text_atomic(path, json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    return SubmitResult(speaker=plan.speaker, model_id=None, state=None, created=False, record_path=path, plan=plan)


# -- submit ---------------------------------------------------------------------------------------------


def _poll(
    api: _FishApi,
    out: Path,
    speaker: str,
    record: dict[str, Any],
    options: SubmitOptions,
    *,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
) -> str | None:
    """Poll ``GET /model/{id}`` until a terminal state or the timeout; keep the record current."""
    model_id = str(record["model_id"])
    deadline = clock() + options.poll_timeout_s
    state = record.get("state")
    while True:
        try:
            voice = api.call(f"GET /model/{model_id}", lambda: api.client.voices.get(model_id))
            _, new_state = _model_fields(voice, None)
        except _UnexpectedBody as err:
            _, new_state = _model_fields(None, err.body)
        if new_state != state:
            log.info("model %s: state %s", model_id, new_state)
            state = new_state
            record.update(state=state, updated=_now())
            _write_record(out, speaker, record)
        if state in TERMINAL_STATES:
            return state
        if clock() >= deadline:
            raise SubmitError(
                f"model {model_id} is still {state!r} after {options.poll_timeout_s:g} s of polling; "
                f"it is recorded in {RunFolder(out).submit_json}: re-run submit to keep waiting"
            )
        sleep(options.poll_interval_s)


def submit(
    out_dir: str | Path,
    speaker: str,
    options: SubmitOptions,
    *,
    api_key: str | None = None,
    force: bool = False,
    dry_run: bool = False,
    allow_partial: bool = False,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> SubmitResult:
    """Create a Fish Audio voice model from a speaker's selected clips.

    Parameters
    ----------
    out_dir : str or Path
        Output folder of ``voiceprep run``; ``submit.json`` is written there.
    speaker : str
    options : SubmitOptions
    api_key : str, optional
        Defaults to the ``FISH_API_KEY`` environment variable.  Not needed for a dry run.
    force : bool
        Create a new model even though one is recorded for the speaker.
    dry_run : bool
        Write the exact request to ``OUT/submit.dry-run.json`` instead of sending it.
    allow_partial : bool
        Submit even though the run's report is partial (an interrupted run:
        the selection would be made from the files that finished, and a
        model once created blocks a better one without ``force``).  A dry
        run is allowed either way, with a note.
    sleep, clock : callable
        Time functions (replaceable so that tests do not wait).

    Returns
    -------
    SubmitResult

    Raises
    ------
    ConfigError
        No API key, unknown speaker, a partial report without ``allow_partial``.
    SubmitError
        Already submitted (without ``force``), API refusal (401, 422, ...),
        retries exhausted, training ``failed``, or polling timed out.
    """
    out = Path(out_dir)
    folder = RunFolder(out)
    partial = folder.partial_note(folder.read_report())
    if partial and not (dry_run or allow_partial):
        raise ConfigError(f"{partial}; or pass --allow-partial to submit what finished")
    existing = read_submissions(out).get(speaker)
    plan = plan_submission(out, speaker, max_clips=options.max_clips, include_warning=options.include_warning,
                           use=options.use)
    if partial:
        plan = dataclasses.replace(plan, notes=(*plan.notes, partial))
    for note in plan.notes:
        log.info("%s", note)
    if dry_run:
        return _dry_run(out, plan, options, existing)

    key = (api_key if api_key is not None else os.environ.get("FISH_API_KEY", "")).strip()
    if not key:
        raise ConfigError("FISH_API_KEY is not set: export your Fish Audio API key (or use --dry-run)")

    if existing and not force:
        model_id = existing.get("model_id")
        if not model_id:
            raise SubmitError(
                f"an earlier submit of speaker {speaker!r} got no answer (started {existing.get('started')}); "
                f"a model may exist: check your models, then use --force to submit again"
            )
        if existing.get("state") in TERMINAL_STATES or not options.wait:
            raise SubmitError(
                f"speaker {speaker!r} was already submitted as model {model_id} (state {existing.get('state')}, "
                f"{RunFolder(out).submit_json}); use --force to create another model"
            )
        # a model still training: poll it again instead of creating a duplicate
        log.info("model %s of %s is %s; polling again", model_id, speaker, existing.get("state"))
        with _FishApi(api_key=key, base_url=str(existing.get("base_url") or options.base_url),
                      timeout_s=options.timeout_s, retry=options.retry, sleep=sleep) as api:
            state = _poll(api, out, speaker, existing, options, sleep=sleep, clock=clock)
        _raise_if_failed(existing, state)
        return SubmitResult(speaker, str(model_id), state, False, RunFolder(out).submit_json, plan)

    record: dict[str, Any] = {
        "status": "pending",
        "model_id": None,
        "state": None,
        "title": options.title,
        "visibility": options.visibility,
        "train_mode": options.train_mode,
        "enhance_audio_quality": options.enhance_audio_quality,
        "base_url": options.base_url,
        "use": options.use,
        "texts_sent": bool(plan.texts),
        "clips": [c.to_dict() for c in plan.clips],
        "total_s": plan.total_s,
        "plan_sha256": plan.fingerprint(),
        "notes": list(plan.notes),
        "started": _now(),
        "updated": _now(),
    }
    if existing:
        record["replaces"] = {k: existing.get(k) for k in ("model_id", "state", "title", "started")}
    try:
        path = _write_record(out, speaker, record)
    except OutputError as err:
        raise SubmitError(f"cannot record the submission before sending: {err}") from err
    with _FishApi(api_key=key, base_url=options.base_url, timeout_s=options.timeout_s, retry=options.retry,
                  sleep=sleep) as api:
        kwargs = _create_kwargs(plan, options)
        try:
            voice = api.call("POST /model", lambda: api.client.voices.create(**kwargs))
            model_id, state = _model_fields(voice, None)
        except _UnexpectedBody as err:
            model_id, state = _model_fields(None, err.body)
        except SubmitError as err:
            if _no_model_created(err):  # refused (4xx) or never connected: forget the pending record
                _write_record(out, speaker, existing)
            else:
                record.update(status="unknown", error=str(err), updated=_now())
                _write_record(out, speaker, record)
            raise
        record.update(status="created", model_id=model_id, state=state, updated=_now())
        _write_record(out, speaker, record)
        log.info("created model %s for %s (%d clips, state %s)", model_id, speaker, len(plan.clips), state)
        if options.wait and state not in TERMINAL_STATES:
            state = _poll(api, out, speaker, record, options, sleep=sleep, clock=clock)
    _raise_if_failed(record, state)
    return SubmitResult(speaker, model_id, state, True, path, plan)


def _raise_if_failed(record: dict[str, Any], state: str | None) -> None:
    if state == "failed":
        raise SubmitError(f"model {record.get('model_id')} training failed (state 'failed')")


def _no_model_created(err: SubmitError) -> bool:
    """True when a failed ``POST /model`` certainly created nothing.

    That is an HTTP 4xx answer (incl. 429 after the last retry) or a
    connection that was never made; a timeout or 5xx leaves it unknown.
    """
    import httpx

    cause = err.__cause__
    status = getattr(cause, "status", None)
    if isinstance(status, int):
        return status < 500
    return isinstance(cause, httpx.ConnectError)
