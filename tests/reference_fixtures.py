"""Test helper: run folders whose speakers hold short utterances, for reference building and submit.

:func:`one_source_run` writes what a finished run leaves (clip WAVs and ``report.json``) for
utterances cut from one source recording at known places, as diarisation or a slicer of a
conversation gives them: espeak-ng sentences on a common room tone (a 100 Hz hum and a noise
floor, so no clip edge is digital silence), separated by known pauses, each clip padded by
0.2 s of the source on both sides and given its own level.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from espeak_voices import SENTENCES, VOICES
from findings_helpers import findings_for

from prep.clip import Clip, InputInfo
from prep.findings import finding
from prep.io import write_wav_atomic
from prep.report.summary import build_report, write_report_json

RATE = 22050  # espeak-ng's output rate
PAD_S = 0.2
#: Pauses between the utterances of :func:`one_source_run`'s source (from espeak-ng's first and last
#: non-zero samples: the audible pauses are a little longer, as quiet decays drown in the room tone).
GAPS_S = (0.35, 0.9, 0.25, 0.5, 1.4, 0.45, 0.4)
#: Level of each clip, dB (the parts must come out loudness-matched).
LEVELS_DB = (0.0, -8.0, -3.0, 2.0, -6.0, -1.0, -4.0, 0.0)


def say(text: str, voice: str, path: Path) -> np.ndarray:
    """espeak-ng speech, trimmed to its first and last non-zero sample, float32 at :data:`RATE`."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")
    subprocess.run(["espeak-ng", *VOICES[voice], "-w", str(path), text], check=True, capture_output=True)
    x, rate = sf.read(path, dtype="float32")
    assert rate == RATE
    nz = np.flatnonzero(np.abs(x) > 1e-4)
    return x[nz[0] : nz[-1] + 1]


def room_tone(n: int, *, seed: int, start: int = 0) -> np.ndarray:
    """A 100 Hz hum (0.01 FS) plus white noise (0.001 FS) from sample ``start`` of one recording."""
    t = (np.arange(n) + start) / RATE
    rng = np.random.default_rng(seed + start)
    return (0.01 * np.sin(2 * np.pi * 100.0 * t) + 0.001 * rng.standard_normal(n)).astype(np.float32)


def one_source_run(
    out: Path,
    *,
    speaker: str = "ann",
    voice: str = "low",
    sentences: Sequence[int] = (*range(8), *range(8)),
    gaps_s: Sequence[float] = GAPS_S,
    levels_db: Sequence[float] = LEVELS_DB,
    extra: Sequence[Clip] = (),
    seed: int = 0,
) -> tuple[list[Clip], list[tuple[float, float]]]:
    """Write a finished run of one source cut into one clip per utterance.

    Returns
    -------
    clips : list of Clip
        The records written to ``report.json`` (``extra`` too), in source order.
    speech : list of (start_s, end_s)
        Where each utterance's audible speech (louder than the room tone) lies in the source.
    """
    work = out.parent / f"{out.name}-tts"
    work.mkdir(parents=True, exist_ok=True)
    utterances = [say(SENTENCES[i], voice, work / f"{i}.wav") for i in sentences]
    lead = int(0.6 * RATE)
    pieces, speech, pos = [], [], lead
    tone_rms = float(np.sqrt(np.mean(room_tone(RATE, seed=seed) ** 2)))
    hop = round(0.005 * RATE)
    for k, utt in enumerate(utterances):
        # audible speech: the 5 ms frames where the speech is louder than the room tone
        n = utt.size // hop
        rms = np.sqrt(np.mean((0.4 * utt[: n * hop]).reshape(n, hop) ** 2, axis=1))
        loud = np.flatnonzero(rms > tone_rms)
        speech.append(((pos + loud[0] * hop) / RATE, (pos + (loud[-1] + 1) * hop) / RATE))
        pieces.append(utt)
        pos += utt.size
        if k < len(utterances) - 1:
            gap = np.zeros(round(gaps_s[k % len(gaps_s)] * RATE), np.float32)
            pieces.append(gap)
            pos += gap.size
    body = np.concatenate([np.zeros(lead, np.float32), *pieces, np.zeros(lead, np.float32)])
    source = 0.4 * body + room_tone(body.size, seed=seed)
    source_name = f"in/{speaker}/talk.wav"
    clips = []
    for k, (s0, s1) in enumerate(speech):
        level = levels_db[k % len(levels_db)]
        i0, i1 = round((s0 - PAD_S) * RATE), round((s1 + PAD_S) * RATE)
        audio = (source[i0:i1] * np.float32(10 ** (level / 20))).astype(np.float32)
        cid = f"talk-{k:02d}"
        rel = f"clips/{speaker}/{cid}.wav"
        write_wav_atomic(out / rel, audio, sample_rate=RATE)
        clips.append(Clip(
            id=cid, source=source_name, source_sha256="a" * 64, speaker=speaker, sample_rate=RATE,
            transcript=SENTENCES[sentences[k]], span_s=(i0 / RATE, i1 / RATE), n_samples=audio.size,
            input=InputInfo(format="WAV", codec="pcm_s16le", sample_rate=RATE, channels=1,
                            duration_s=source.size / RATE),
            # what the fish profile says of a 3-4 s clip: the one warning a reference remedies
            findings=(finding("duration.short", metric="duration_s", value=round(audio.size / RATE, 1),
                              threshold=10.0),),
            output=rel, metrics={"score": 80.0 - k, "duration_s": audio.size / RATE},
        ))
    write_report_json(build_report([*clips, *extra], profile="test"), out)
    return [*clips, *extra], speech


def tone_clip(out: Path, cid: str, *, speaker: str, seconds: float, verdict: str = "approved", **fields) -> Clip:
    """A clip record with a written WAV of a speech-band tone (for selection rules, not for listening)."""
    rel = f"clips/{speaker}/{cid}.wav"
    t = np.arange(round(seconds * RATE)) / RATE
    audio = (0.1 * np.sin(2 * np.pi * 180 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)
    write_wav_atomic(out / rel, audio, sample_rate=RATE)
    base = {"source": f"in/{speaker}/{cid}.wav", "source_sha256": "b" * 64, "transcript": f"text of {cid}",
            "span_s": (0.0, seconds), "metrics": {"score": 70.0, "duration_s": seconds}}
    base.update(fields)
    findings = base.pop("findings", findings_for(verdict))
    return Clip(id=cid, speaker=speaker, sample_rate=RATE, n_samples=audio.size, output=rel, findings=findings,
                **base)
